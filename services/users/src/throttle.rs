//! Log-in and sign-up limits, counted in Redis (shared by every replica).
//!
//! A log-in attempt is counted before its password is checked, atomically with the check of
//! the locks, so concurrent guesses cannot slip past the count, and a locked attempt costs no
//! argon2 work. Attempts are counted against the account the email resolves to (its id, so
//! spelling variants of one email share one count), in three scopes:
//!
//! - the account from one address (`LOGIN_MAX_FAILURES`): guessing from one place;
//! - the address, whatever the account (`LOGIN_MAX_FAILURES_PER_ADDRESS`): one place guessing
//!   many accounts;
//! - the account from every address (`LOGIN_MAX_FAILURES_PER_ACCOUNT`): guessing spread over
//!   many places. This lock does not apply to an address the account logged in from
//!   successfully in the last 30 days, so nobody can keep the owner out from elsewhere.
//!
//! Each lock lasts `LOGIN_LOCK_SECS`, doubling with every further failure up to 15 minutes.
//! An attempt that succeeds (or that the service could not judge) is taken back from every
//! count, and a success clears the account's count for its address. Sign-ups are counted per
//! address over a window, since each costs an argon2 hash.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use poem::http::{Method, StatusCode};
use poem::{Body, Endpoint, IntoResponse, Middleware, Request, Response};
use shopmesh_common::cache::RedisCache;
use shopmesh_openapi::runtime::Problem;

use crate::config::AccountsConfig;
use crate::store::UserStore;

/// The longest lock.
const MAX_LOCK: Duration = Duration::from_secs(15 * 60);
/// How long failures are remembered.
const MEMORY: Duration = Duration::from_secs(24 * 3600);
/// How long an address an account logged in from stays exempt from the account-wide lock.
const KNOWN_ADDRESS: Duration = Duration::from_secs(30 * 24 * 3600);

/// KEYS: the failure count and lock of (account, address), (address) and (account), then the
/// account's known-address marker. ARGV: the three maxima, the first lock, the memory, the
/// longest lock (seconds).
///
/// Answers `{wait_ms, 0}` when a lock applies (nothing counted), else `{0, set}` with the
/// attempt counted in all three scopes and `set` the bits (1, 2, 4) of the locks it started.
const ADMIT: &str = r"
local function pttl(k)
  local t = redis.call('PTTL', k)
  if t > 0 then return t end
  return 0
end
local wait = math.max(pttl(KEYS[2]), pttl(KEYS[4]))
if redis.call('EXISTS', KEYS[7]) == 0 then wait = math.max(wait, pttl(KEYS[6])) end
if wait > 0 then return {wait, 0} end
local set = 0
for i = 0, 2 do
  local n = redis.call('INCR', KEYS[2 * i + 1])
  redis.call('EXPIRE', KEYS[2 * i + 1], tonumber(ARGV[5]))
  local max = tonumber(ARGV[i + 1])
  if n >= max then
    local lock = math.min(tonumber(ARGV[4]) * 2 ^ (n - max), tonumber(ARGV[6]))
    redis.call('SET', KEYS[2 * i + 2], '1', 'EX', math.floor(lock))
    set = set + 2 ^ i
  end
end
return {0, set}
";

/// Takes an admitted attempt back. KEYS as [`ADMIT`]. ARGV: the bits of the locks it
/// started, `1` when it succeeded, the known-address lifetime (seconds). A success clears the
/// (account, address) scope and marks the address known.
const TAKE_BACK: &str = r"
local set = tonumber(ARGV[1])
for i = 0, 2 do
  if i > 0 or ARGV[2] ~= '1' then
    if redis.call('DECR', KEYS[2 * i + 1]) <= 0 then redis.call('DEL', KEYS[2 * i + 1]) end
  end
  if math.floor(set / 2 ^ i) % 2 == 1 then redis.call('DEL', KEYS[2 * i + 2]) end
end
if ARGV[2] == '1' then
  redis.call('DEL', KEYS[1], KEYS[2])
  redis.call('SET', KEYS[7], '1', 'EX', tonumber(ARGV[3]))
end
return 0
";

/// Counts a sign-up from an address within the window; answers the count and the seconds
/// the window has left.
const COUNT_SIGN_UP: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1])) end
return {n, redis.call('TTL', KEYS[1])}
";

/// An attempt that was counted, to be taken back unless it failed.
struct Admitted {
    keys: [String; 7],
    locks_started: i64,
}

/// The limits and where they are counted.
pub struct LoginThrottle {
    cache: RedisCache,
    store: UserStore,
    prefix: String,
    maxima: [u32; 3],
    lock: Duration,
    sign_ups: (u32, Duration),
    trusted_proxies: Vec<ipnet::IpNet>,
    admit: redis::Script,
    take_back: redis::Script,
    count_sign_up: redis::Script,
}

impl LoginThrottle {
    /// Limits counted in `store`'s Redis under `prefix`; emails resolved through `store`.
    pub fn new(store: UserStore, prefix: &str, config: &AccountsConfig) -> Arc<Self> {
        Arc::new(Self {
            cache: store.cache().clone(),
            store,
            prefix: prefix.to_owned(),
            maxima: [
                config.max_failures_per_account_and_address.max(1),
                config.max_failures_per_address.max(1),
                config.max_failures_per_account.max(1),
            ],
            lock: config.lock,
            sign_ups: (
                config.max_sign_ups_per_address.max(1),
                config.sign_up_window,
            ),
            trusted_proxies: config.trusted_proxies.clone(),
            admit: redis::Script::new(ADMIT),
            take_back: redis::Script::new(TAKE_BACK),
            count_sign_up: redis::Script::new(COUNT_SIGN_UP),
        })
    }

    /// Whom a log-in with `email` is counted against: the account's id when one matches
    /// (as the log-in's own look-up does), else the normalised email.
    async fn account_of(&self, email: &str) -> String {
        let email = crate::domain::normalize_email(email);
        match self.store.credentials(&email).await {
            Ok(Some(account)) => format!("id:{}", account.id),
            // Unknown, or the database is down (the log-in then fails without a guess).
            _ => format!("email:{email}"),
        }
    }

    fn keys(&self, account: &str, address: &str) -> [String; 7] {
        let p = &self.prefix;
        [
            format!("{p}login:pair:{account}:{address}:failures"),
            format!("{p}login:pair:{account}:{address}:locked"),
            format!("{p}login:address:{address}:failures"),
            format!("{p}login:address:{address}:locked"),
            format!("{p}login:account:{account}:failures"),
            format!("{p}login:account:{account}:locked"),
            format!("{p}login:known:{account}:{address}"),
        ]
    }

    /// Counts an attempt, or answers the seconds until a lock that applies ends. Without
    /// Redis the limits are not enforced (logged): argon2's cost still bounds the guessing rate.
    async fn admit(&self, account: &str, address: &str) -> Result<Option<Admitted>, u64> {
        let keys = self.keys(account, address);
        let args = [
            self.maxima[0].to_string(),
            self.maxima[1].to_string(),
            self.maxima[2].to_string(),
            self.lock.as_secs().max(1).to_string(),
            MEMORY.as_secs().to_string(),
            MAX_LOCK.as_secs().to_string(),
        ];
        let key_refs = keys.each_ref().map(String::as_str);
        let answer: Option<(i64, i64)> = self.cache.run_script(&self.admit, &key_refs, &args).await;
        match answer {
            Some((wait_ms, _)) if wait_ms > 0 => Err((wait_ms as u64).div_ceil(1000)),
            Some((_, locks_started)) => Ok(Some(Admitted {
                keys,
                locks_started,
            })),
            None => Ok(None),
        }
    }

    async fn take_back(&self, attempt: Admitted, succeeded: bool) {
        let key_refs = attempt.keys.each_ref().map(String::as_str);
        let args = [
            attempt.locks_started.to_string(),
            if succeeded { "1" } else { "0" }.to_owned(),
            KNOWN_ADDRESS.as_secs().to_string(),
        ];
        let _: Option<i64> = self
            .cache
            .run_script(&self.take_back, &key_refs, &args)
            .await;
    }

    /// Counts a sign-up; the seconds until the window ends when over the limit.
    async fn sign_up_allowed(&self, address: &str) -> Result<(), u64> {
        let key = format!("{}signup:address:{address}", self.prefix);
        let (max, window) = self.sign_ups;
        let args = [window.as_secs().max(1).to_string()];
        let counted: Option<(u32, i64)> = self
            .cache
            .run_script(&self.count_sign_up, &[&key], &args)
            .await;
        match counted {
            Some((n, ttl)) if n > max => Err(ttl.max(1) as u64),
            _ => Ok(()),
        }
    }

    fn address_of(&self, req: &Request) -> String {
        let peer = req.remote_addr().as_socket_addr().map(|a| a.ip());
        let forwarded = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok());
        peer.map(|peer| {
            shopmesh_common::http::client_address(peer, forwarded, &self.trusted_proxies)
        })
        .map_or_else(|| "unknown".to_owned(), |ip: IpAddr| ip.to_string())
    }
}

/// 429 with `Retry-After`.
fn too_many(what: &str, secs: u64) -> Response {
    let problem = Problem::new(429, format!("too many {what}; retry in {secs} s"));
    let mut response = shopmesh_common::problem::response(&problem);
    if let Ok(value) = secs.to_string().parse() {
        response.headers_mut().insert("retry-after", value);
    }
    response
}

/// Applies a [`LoginThrottle`] to `POST {log_in}` and `POST {sign_up}`; other requests pass
/// untouched.
pub struct Throttled {
    /// The log-in path.
    pub log_in: &'static str,
    /// The sign-up path.
    pub sign_up: &'static str,
    /// The limits.
    pub throttle: Arc<LoginThrottle>,
}

impl<E: Endpoint> Middleware<E> for Throttled {
    type Output = ThrottledEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        ThrottledEndpoint {
            inner,
            log_in: self.log_in,
            sign_up: self.sign_up,
            throttle: self.throttle.clone(),
        }
    }
}

/// Endpoint produced by [`Throttled`].
pub struct ThrottledEndpoint<E> {
    inner: E,
    log_in: &'static str,
    sign_up: &'static str,
    throttle: Arc<LoginThrottle>,
}

impl<E: Endpoint> ThrottledEndpoint<E> {
    async fn pass(&self, req: Request) -> poem::Result<Response> {
        self.inner.call(req).await.map(IntoResponse::into_response)
    }

    async fn log_in(&self, mut req: Request) -> poem::Result<Response> {
        let body = req.take_body().into_bytes().await?;
        let email = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("email")?.as_str().map(str::to_owned));
        req.set_body(Body::from(body));
        let Some(email) = email else {
            // Not a log-in the handler will accept; it answers 400.
            return self.pass(req).await;
        };
        let address = self.throttle.address_of(&req);
        let account = self.throttle.account_of(&email).await;
        let attempt = match self.throttle.admit(&account, &address).await {
            Ok(attempt) => attempt,
            Err(secs) => return Ok(too_many("failed log-ins", secs)),
        };
        let response = self.pass(req).await?;
        if let Some(attempt) = attempt {
            match response.status() {
                StatusCode::UNAUTHORIZED => {}
                status => {
                    let succeeded = status == StatusCode::OK;
                    self.throttle.take_back(attempt, succeeded).await;
                }
            }
        }
        Ok(response)
    }
}

impl<E: Endpoint> Endpoint for ThrottledEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        if req.method() != Method::POST {
            return self.pass(req).await;
        }
        let path = req.uri().path();
        if path == self.log_in {
            return self.log_in(req).await;
        }
        if path == self.sign_up {
            let address = self.throttle.address_of(&req);
            if let Err(secs) = self.throttle.sign_up_allowed(&address).await {
                return Ok(too_many("sign-ups from this address", secs));
            }
        }
        self.pass(req).await
    }
}
