//! Log-in attempt limits: failed log-ins are counted per account and per client address in
//! Redis (shared by every replica); past a threshold, further attempts are refused with 429 and
//! `Retry-After` for a delay that doubles with every further failure, up to 15 minutes. A
//! successful log-in clears its account's count. The check runs before the password is
//! hashed, so a locked account costs the service no argon2 work.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use poem::http::{Method, StatusCode};
use poem::{Body, Endpoint, IntoResponse, Middleware, Request, Response};
use shopmesh_common::cache::RedisCache;
use shopmesh_openapi::runtime::Problem;

/// The longest lock.
const MAX_LOCK: Duration = Duration::from_secs(15 * 60);
/// How long failures are remembered.
const MEMORY: Duration = Duration::from_secs(24 * 3600);

/// Counts a failure; at or past `max` it (re)sets the lock key for `base · 2^(n − max)`
/// seconds, capped. Returns the count.
const RECORD_FAILURE: &str = r"
local n = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
local max = tonumber(ARGV[1])
if n >= max then
  local lock = math.min(tonumber(ARGV[2]) * 2 ^ (n - max), tonumber(ARGV[4]))
  redis.call('SET', KEYS[2], '1', 'EX', math.floor(lock))
end
return n
";

/// The limits and where they are counted.
pub struct LoginThrottle {
    cache: RedisCache,
    prefix: String,
    max_per_account: u32,
    max_per_address: u32,
    lock: Duration,
    trusted_proxies: Vec<ipnet::IpNet>,
    script: redis::Script,
}

impl LoginThrottle {
    /// Limits counted in `cache` under `prefix`.
    pub fn new(
        cache: RedisCache,
        prefix: &str,
        config: &crate::config::AccountsConfig,
    ) -> Arc<Self> {
        Arc::new(Self {
            cache,
            prefix: prefix.to_owned(),
            max_per_account: config.max_failures_per_account.max(1),
            max_per_address: config.max_failures_per_address.max(1),
            lock: config.lock,
            trusted_proxies: config.trusted_proxies.clone(),
            script: redis::Script::new(RECORD_FAILURE),
        })
    }

    fn keys(&self, scope: &str, who: &str) -> (String, String) {
        let base = format!("{}login:{scope}:{who}", self.prefix);
        (format!("{base}:failures"), format!("{base}:locked"))
    }

    /// Seconds until the longer of the two locks ends, if either is set. Without Redis the
    /// limits are not enforced (logged): argon2's cost still bounds the guessing rate.
    async fn locked_for(&self, account: &str, address: &str) -> Option<u64> {
        let mut longest = None;
        for (scope, who) in [("account", account), ("address", address)] {
            let (_, lock) = self.keys(scope, who);
            let ttl: Option<i64> = self.cache.run(redis::cmd("TTL").arg(&lock)).await;
            if let Some(ttl) = ttl.filter(|t| *t > 0) {
                longest = longest.max(Some(ttl as u64));
            }
        }
        longest
    }

    async fn record_failure(&self, account: &str, address: &str) {
        for (scope, who, max) in [
            ("account", account, self.max_per_account),
            ("address", address, self.max_per_address),
        ] {
            let (failures, lock) = self.keys(scope, who);
            let args = [
                max.to_string(),
                self.lock.as_secs().max(1).to_string(),
                MEMORY.as_secs().to_string(),
                MAX_LOCK.as_secs().to_string(),
            ];
            let _: Option<i64> = self
                .cache
                .run_script(&self.script, &[&failures, &lock], &args)
                .await;
        }
    }

    async fn clear(&self, account: &str) {
        let (failures, lock) = self.keys("account", account);
        let _: Option<i64> = self
            .cache
            .run(redis::cmd("DEL").arg(&failures).arg(&lock))
            .await;
    }

    fn address_of(&self, req: &Request) -> String {
        let peer = req.remote_addr().as_socket_addr().map(|a| a.ip());
        let trusted = |ip: &IpAddr| self.trusted_proxies.iter().any(|n| n.contains(ip));
        let forwarded = peer.filter(trusted).and_then(|_| {
            req.headers()
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| shopmesh_common::http::forwarded_client(v, &self.trusted_proxies))
        });
        forwarded
            .or(peer)
            .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
    }
}

/// Applies a [`LoginThrottle`] to `POST {path}`; other requests pass untouched.
pub struct Throttled {
    /// The log-in path.
    pub path: &'static str,
    /// The limits.
    pub throttle: Arc<LoginThrottle>,
}

impl<E: Endpoint> Middleware<E> for Throttled {
    type Output = ThrottledEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        ThrottledEndpoint {
            inner,
            path: self.path,
            throttle: self.throttle.clone(),
        }
    }
}

/// Endpoint produced by [`Throttled`].
pub struct ThrottledEndpoint<E> {
    inner: E,
    path: &'static str,
    throttle: Arc<LoginThrottle>,
}

impl<E: Endpoint> Endpoint for ThrottledEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        if req.method() != Method::POST || req.uri().path() != self.path {
            return self.inner.call(req).await.map(IntoResponse::into_response);
        }
        let body = req.take_body().into_bytes().await?;
        let account = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("email")?.as_str().map(|e| e.trim().to_lowercase()));
        req.set_body(Body::from(body));
        let Some(account) = account else {
            // Not a log-in the handler will accept; it answers 400.
            return self.inner.call(req).await.map(IntoResponse::into_response);
        };
        let address = self.throttle.address_of(&req);
        if let Some(secs) = self.throttle.locked_for(&account, &address).await {
            let problem = Problem::new(429, format!("too many failed log-ins; retry in {secs} s"));
            let mut response = shopmesh_common::problem::response(&problem);
            if let Ok(value) = secs.to_string().parse() {
                response.headers_mut().insert("retry-after", value);
            }
            return Ok(response);
        }
        let response = self.inner.call(req).await?.into_response();
        match response.status() {
            StatusCode::UNAUTHORIZED => self.throttle.record_failure(&account, &address).await,
            StatusCode::OK => self.throttle.clear(&account).await,
            _ => {}
        }
        Ok(response)
    }
}
