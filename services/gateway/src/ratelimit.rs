//! Per-client rate limiting: a governor limiter in each process plus a quota shared through
//! Redis, so N gateway replicas together allow no more than the limit per window. A rejected
//! request gets 429 with `Retry-After`. When Redis is unavailable the shared quota fails open
//! (in-process limit only) or closed (503), as configured.
//!
//! A request with a valid access token is counted against its user, with the limit of the
//! user's role; any other request against its client address, with the anonymous limit.
//!
//! Every limited answer carries the `RateLimit-Policy` and `RateLimit` fields of
//! draft-ietf-httpapi-ratelimit-headers, so clients can slow down before they are refused.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};
use shopmesh_common::cache::RedisCache;
use shopmesh_common::problem::{self, Problem};
use shopmesh_identity::{Principal, Role, TokenVerifier};

use crate::config::RateLimitConfig;

/// Whom a request is counted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateKey {
    /// An anonymous client, by address.
    Address(IpAddr),
    /// A logged-in user, whatever address they call from, with their role's limit.
    User {
        /// The user id.
        id: i64,
        /// Their role.
        role: Role,
    },
}

impl RateKey {
    /// The key of `caller`.
    pub fn of(caller: &Principal) -> Self {
        Self::User {
            id: caller.user_id,
            role: caller.role,
        }
    }

    fn tier(self) -> usize {
        match self {
            Self::Address(_) => 0,
            // A service has no business at the gateway beyond what anyone may read.
            Self::User {
                role: Role::User | Role::Service,
                ..
            } => 1,
            Self::User {
                role: Role::Admin, ..
            } => 2,
        }
    }
}

impl std::fmt::Display for RateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Address(ip) => write!(f, "ip:{ip}"),
            Self::User { id, .. } => write!(f, "user:{id}"),
        }
    }
}

/// One tier's limit: anonymous, user or admin.
struct Tier {
    local: DefaultKeyedRateLimiter<RateKey>,
    max_requests: u32,
    lease: u32,
}

impl Tier {
    fn new(max_requests: u32, window: Duration) -> Self {
        let max = NonZeroU32::new(max_requests.max(1)).unwrap_or(NonZeroU32::MIN);
        let period = (window / max.get()).max(Duration::from_nanos(1));
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(max))
            .allow_burst(max);
        Self {
            local: RateLimiter::keyed(quota),
            max_requests,
            lease: lease_size(max_requests),
        }
    }
}

/// Lua: take `ARGV[2]` requests' worth of the caller's window quota, starting the window
/// (`ARGV[1]` ms) on its first use; returns `{count after taking, milliseconds left}`.
const TAKE_FROM_WINDOW: &str = r"
local n = redis.call('INCRBY', KEYS[1], ARGV[2])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
";

/// How many requests a process takes from the shared quota per Redis round trip: 1% of the
/// limit (at least 1, at most 1000). With the default 10 per minute that is 1, so every request
/// is counted in Redis; with large limits it saves a round trip on most requests. Leased
/// requests are counted in Redis when taken, so all replicas together never exceed the limit;
/// a replica can hold at most `lease - 1` unused ones until the window ends.
pub fn lease_size(max_requests: u32) -> u32 {
    (max_requests / 100).clamp(1, 1000)
}

/// Requests granted from a lease of `lease` when the window count is `count` after taking it.
pub fn granted(lease: u32, count: i64, max_requests: u32) -> i64 {
    let over = (count - i64::from(max_requests)).max(0);
    (i64::from(lease) - over).max(0)
}

/// Requests a client may still make from its current lease, until `expires`.
struct Lease {
    remaining: u32,
    /// What the shared window had left when the lease was taken (beyond the lease).
    window_left: u32,
    expires: std::time::Instant,
}

/// What is left of a client's quota after a request was counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Left {
    /// Requests the client may still make in this window.
    pub requests: u32,
    /// Seconds until the window ends.
    pub reset_secs: u64,
}

impl Left {
    /// The `RateLimit` field value: `"default";r=REMAINING;t=SECONDS`.
    pub fn field(&self) -> String {
        format!("\"{POLICY}\";r={};t={}", self.requests, self.reset_secs)
    }
}

/// The name of the one quota policy the gateway announces.
pub const POLICY: &str = "default";

/// Outcome of a rate-limit check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Serve the request; what is left, when the shared quota could be read.
    Allow(Option<Left>),
    /// Reject with 429; retry after this many seconds.
    Reject {
        /// Seconds until a request will be accepted.
        retry_after_secs: u64,
    },
    /// The shared quota cannot be checked and the limiter fails closed: 503.
    Unavailable,
}

/// Seconds to announce in `Retry-After` for a wait: rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_millis().div_ceil(1000).max(1) as u64
}

/// Counters of the limiter.
#[derive(Debug, Default)]
pub struct RateLimitStats {
    /// Requests rejected with 429.
    pub rejected: AtomicU64,
    /// Checks made without the shared quota because Redis was unavailable.
    pub shared_unavailable: AtomicU64,
}

/// The limiter shared by all limited routes of one gateway process.
pub struct ClientRateLimiter {
    /// Anonymous, user and admin.
    tiers: [Tier; 3],
    leases: std::sync::Mutex<std::collections::HashMap<RateKey, Lease>>,
    verifier: TokenVerifier,
    shared: RedisCache,
    script: redis::Script,
    config: RateLimitConfig,
    prefix: String,
    /// Counters.
    pub stats: RateLimitStats,
}

impl ClientRateLimiter {
    /// A limiter allowing each tier's limit per `config.window`; `verifier` tells logged-in
    /// callers from anonymous ones.
    pub fn new(
        config: RateLimitConfig,
        shared: RedisCache,
        prefix: String,
        verifier: TokenVerifier,
    ) -> Self {
        let window = config.window;
        Self {
            tiers: [
                Tier::new(config.max_requests, window),
                Tier::new(config.max_requests_user, window),
                Tier::new(config.max_requests_admin, window),
            ],
            leases: std::sync::Mutex::default(),
            verifier,
            shared,
            script: redis::Script::new(TAKE_FROM_WINDOW),
            config,
            prefix,
            stats: RateLimitStats::default(),
        }
    }

    /// Forgets idle clients and ended leases (call periodically to bound memory).
    pub fn forget_idle(&self) {
        for tier in &self.tiers {
            tier.local.retain_recent();
        }
        let now = std::time::Instant::now();
        if let Ok(mut leases) = self.leases.lock() {
            leases.retain(|_, l| l.expires > now);
        }
    }

    /// Takes one request from `client`'s current lease, if it has one; returns what is left.
    fn take_leased(&self, client: RateKey) -> Option<Left> {
        let mut leases = self.leases.lock().ok()?;
        let now = std::time::Instant::now();
        match leases.get_mut(&client) {
            Some(l) if l.remaining > 0 && l.expires > now => {
                l.remaining -= 1;
                Some(Left {
                    requests: l.remaining + l.window_left,
                    reset_secs: retry_after_secs(l.expires - now),
                })
            }
            _ => None,
        }
    }

    /// The `RateLimit-Policy` field value for `client`: `"default";q=LIMIT;w=WINDOW_SECONDS`.
    pub fn policy(&self, client: RateKey) -> String {
        format!(
            "\"{POLICY}\";q={};w={}",
            self.tiers[client.tier()].max_requests,
            self.config.window.as_secs().max(1)
        )
    }

    /// Sets `RateLimit-Policy`, and `RateLimit` when `left` is known, on `headers`, unless
    /// the inner handler already set them (a GraphQL request charged for its cost).
    pub fn annotate(
        &self,
        client: RateKey,
        headers: &mut poem::http::HeaderMap,
        left: Option<Left>,
    ) {
        if let Ok(policy) = self.policy(client).parse() {
            headers.entry("ratelimit-policy").or_insert(policy);
        }
        if let Some(value) = left.and_then(|l| l.field().parse().ok()) {
            headers.entry("ratelimit").or_insert(value);
        }
    }

    /// Checks and counts one request from `client`.
    pub async fn check(&self, client: RateKey) -> Decision {
        self.charge(client, 1).await
    }

    /// Checks and counts `n` requests' worth from `client` (a GraphQL request is charged for
    /// each mutation it runs and for its cost, see `limits`); all or nothing.
    pub async fn charge(&self, client: RateKey, n: u32) -> Decision {
        let Some(amount) = NonZeroU32::new(n) else {
            return Decision::Allow(None);
        };
        let tier = &self.tiers[client.tier()];
        match tier.local.check_key_n(&client, amount) {
            Ok(Ok(())) => {}
            Ok(Err(not_until)) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                return Decision::Reject {
                    retry_after_secs: retry_after_secs(wait),
                };
            }
            Err(_) => {
                // More than the whole burst: never allowed within one window.
                return Decision::Reject {
                    retry_after_secs: retry_after_secs(self.config.window),
                };
            }
        }
        if n == 1
            && let Some(left) = self.take_leased(client)
        {
            return Decision::Allow(Some(left));
        }
        // A single request may take a lease for later ones; a larger charge takes exactly n.
        let take = if n == 1 { tier.lease } else { n };
        let key = format!("{}ratelimit:{client}", self.prefix);
        let window_ms = self.config.window.as_millis().max(1).to_string();
        let args = [window_ms, take.to_string()];
        match self
            .shared
            .run_script::<(i64, i64)>(&self.script, &[&key], &args)
            .await
        {
            Some((count, ttl_ms)) => {
                let got = granted(take, count, tier.max_requests);
                let ttl = Duration::from_millis(ttl_ms.max(0) as u64);
                if got == 0 || (n > 1 && got < i64::from(n)) {
                    return Decision::Reject {
                        retry_after_secs: retry_after_secs(ttl),
                    };
                }
                let window_left = u32::try_from((i64::from(tier.max_requests) - count).max(0))
                    .unwrap_or(u32::MAX);
                let leased = if n == 1 { (got - 1) as u32 } else { 0 };
                if leased > 0
                    && let Ok(mut leases) = self.leases.lock()
                {
                    let expires = std::time::Instant::now() + ttl;
                    leases.insert(
                        client,
                        Lease {
                            remaining: leased,
                            window_left,
                            expires,
                        },
                    );
                }
                Decision::Allow(Some(Left {
                    requests: window_left + leased,
                    reset_secs: retry_after_secs(ttl),
                }))
            }
            None => {
                self.stats
                    .shared_unavailable
                    .fetch_add(1, Ordering::Relaxed);
                if self.config.fail_open {
                    Decision::Allow(None)
                } else {
                    Decision::Unavailable
                }
            }
        }
    }

    /// The client address of `req`: the peer, or, when `X-Forwarded-For` is trusted and the
    /// peer is one of the trusted proxies, the address the nearest untrusted hop appended
    /// (see [`shopmesh_common::http::client_address`]).
    pub fn client_of(&self, req: &Request) -> Option<IpAddr> {
        let peer = req.remote_addr().as_socket_addr().map(|a| a.ip())?;
        if !self.config.trust_forwarded_for {
            return Some(peer);
        }
        let forwarded = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok());
        Some(shopmesh_common::http::client_address(
            peer,
            forwarded,
            &self.config.trusted_proxies,
        ))
    }

    /// Whom `req` is counted against: its user when it carries a valid access token (the
    /// verified caller is kept in the request, so the handler does not verify again), else
    /// its address.
    pub async fn key_of(&self, req: &mut Request) -> Option<RateKey> {
        let bearer = req
            .headers()
            .get(poem::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(|t| t.trim().to_owned());
        if let Some(token) = bearer
            && let Ok(caller) = self.verifier.verify(&token).await
        {
            let key = RateKey::of(&caller);
            req.extensions_mut().insert(caller);
            return Some(key);
        }
        self.client_of(req).map(RateKey::Address)
    }
}

/// Middleware applying a [`ClientRateLimiter`] to the routes it wraps.
#[derive(Clone)]
pub struct RateLimit(pub Arc<ClientRateLimiter>);

impl<E: Endpoint> Middleware<E> for RateLimit {
    type Output = RateLimitEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        RateLimitEndpoint {
            inner: ep,
            limiter: self.0.clone(),
        }
    }
}

/// Endpoint produced by [`RateLimit`].
pub struct RateLimitEndpoint<E> {
    inner: E,
    limiter: Arc<ClientRateLimiter>,
}

impl<E: Endpoint> Endpoint for RateLimitEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Self::Output> {
        let Some(client) = self.limiter.key_of(&mut req).await else {
            return self.inner.call(req).await.map(IntoResponse::into_response);
        };
        req.extensions_mut().insert(client);
        match self.limiter.check(client).await {
            Decision::Allow(left) => {
                let mut resp = self.inner.call(req).await?.into_response();
                self.limiter.annotate(client, resp.headers_mut(), left);
                Ok(resp)
            }
            Decision::Reject { retry_after_secs } => {
                self.limiter.stats.rejected.fetch_add(1, Ordering::Relaxed);
                let detail = format!(
                    "rate limit of {} requests per {} s exceeded; retry in {retry_after_secs} s",
                    self.limiter.tiers[client.tier()].max_requests,
                    self.limiter.config.window.as_secs()
                );
                let mut resp = problem::response(&Problem::new(429, detail));
                resp.headers_mut()
                    .insert("retry-after", retry_after_secs.into());
                self.limiter.annotate(
                    client,
                    resp.headers_mut(),
                    Some(Left {
                        requests: 0,
                        reset_secs: retry_after_secs,
                    }),
                );
                Ok(resp)
            }
            Decision::Unavailable => {
                let mut resp = problem::response(&Problem::new(503, "rate limiter unavailable"));
                resp.headers_mut().insert("retry-after", 1u64.into());
                Ok(resp)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shopmesh_common::http::forwarded_client;

    #[test]
    fn leases_are_one_percent_of_the_limit() {
        assert_eq!(
            lease_size(10),
            1,
            "small limits count every request in Redis"
        );
        assert_eq!(lease_size(1000), 10);
        assert_eq!(lease_size(u32::MAX), 1000);
    }

    #[test]
    fn a_lease_is_cut_at_the_limit() {
        assert_eq!(granted(10, 50, 100), 10, "well under the limit");
        assert_eq!(granted(10, 104, 100), 6, "only what is left");
        assert_eq!(granted(10, 110, 100), 0, "nothing left");
        assert_eq!(granted(1, 11, 10), 0);
        assert_eq!(granted(1, 10, 10), 1);
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(5001)), 6);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }

    #[test]
    fn the_client_is_the_right_most_untrusted_forwarded_address() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        // The client wrote the first entry; the edge proxy appended the real peer.
        assert_eq!(
            forwarded_client("1.2.3.4, 203.0.113.9", &[]),
            ip("203.0.113.9")
        );
        assert_eq!(
            forwarded_client("1.2.3.4, 203.0.113.9, 10.1.2.3", &trusted),
            ip("203.0.113.9"),
            "internal proxies are skipped"
        );
        assert_eq!(
            forwarded_client("10.0.0.1, 10.0.0.2", &trusted),
            ip("10.0.0.1")
        );
        assert_eq!(
            forwarded_client("garbage, 203.0.113.9", &[]),
            ip("203.0.113.9")
        );
        assert_eq!(forwarded_client("garbage", &[]), None);
    }

    #[tokio::test]
    async fn local_limit_applies_without_redis() {
        let config = RateLimitConfig {
            max_requests: 3,
            max_requests_user: 5,
            max_requests_admin: 7,
            window: Duration::from_secs(60),
            fail_open: true,
            trust_forwarded_for: false,
            trusted_proxies: Vec::new(),
        };
        let cache = RedisCache::new("redis://127.0.0.1:1/", Duration::from_millis(50)).unwrap();
        let limiter = ClientRateLimiter::new(config, cache, String::new(), no_issuer());
        let ip = RateKey::Address("10.0.0.1".parse().unwrap());
        for _ in 0..3 {
            assert!(matches!(limiter.check(ip).await, Decision::Allow(_)));
        }
        match limiter.check(ip).await {
            Decision::Reject { retry_after_secs } => assert!((1..=20).contains(&retry_after_secs)),
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(
                limiter
                    .check(RateKey::Address("10.0.0.2".parse().unwrap()))
                    .await,
                Decision::Allow(_)
            ),
            "per client"
        );
        // Each tier has its own limit: a user 5, an admin 7.
        for (key, limit) in [
            (
                RateKey::User {
                    id: 1,
                    role: Role::User,
                },
                5,
            ),
            (
                RateKey::User {
                    id: 2,
                    role: Role::Admin,
                },
                7,
            ),
        ] {
            for _ in 0..limit {
                assert!(
                    matches!(limiter.check(key).await, Decision::Allow(_)),
                    "{key}"
                );
            }
            assert!(
                matches!(limiter.check(key).await, Decision::Reject { .. }),
                "{key}"
            );
        }
        assert_eq!(
            limiter.policy(RateKey::User {
                id: 1,
                role: Role::User
            }),
            "\"default\";q=5;w=60"
        );
    }

    fn no_issuer() -> TokenVerifier {
        TokenVerifier::new(Vec::new())
    }

    #[tokio::test]
    async fn fail_closed_without_redis() {
        let config = RateLimitConfig {
            max_requests: 3,
            max_requests_user: 5,
            max_requests_admin: 7,
            window: Duration::from_secs(60),
            fail_open: false,
            trust_forwarded_for: false,
            trusted_proxies: Vec::new(),
        };
        let cache = RedisCache::new("redis://127.0.0.1:1/", Duration::from_millis(50)).unwrap();
        let limiter = ClientRateLimiter::new(config, cache, String::new(), no_issuer());
        assert_eq!(
            limiter
                .check(RateKey::Address("10.0.0.1".parse().unwrap()))
                .await,
            Decision::Unavailable
        );
    }
}
