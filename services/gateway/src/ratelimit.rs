//! Per-client rate limiting: a governor limiter in each process plus a quota shared through
//! Redis, so N gateway replicas together allow no more than the limit per window. A rejected
//! request gets 429 with `Retry-After`. When Redis is unavailable the shared quota fails open
//! (in-process limit only) or closed (503), as configured.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use poem::http::StatusCode;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};
use shopmesh_common::cache::RedisCache;
use shopmesh_common::problem::Problem;

use crate::config::RateLimitConfig;

/// Lua: count a request in the caller's window, starting the window on its first request;
/// returns `{count, milliseconds left in the window}`.
const COUNT_IN_WINDOW: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
";

/// Outcome of a rate-limit check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Serve the request.
    Allow,
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
    local: DefaultKeyedRateLimiter<IpAddr>,
    shared: RedisCache,
    script: redis::Script,
    config: RateLimitConfig,
    prefix: String,
    /// Counters.
    pub stats: RateLimitStats,
}

impl ClientRateLimiter {
    /// A limiter allowing `config.max_requests` per `config.window` per client.
    pub fn new(config: RateLimitConfig, shared: RedisCache, prefix: String) -> Self {
        let max = NonZeroU32::new(config.max_requests.max(1)).unwrap_or(NonZeroU32::MIN);
        let period = (config.window / max.get()).max(Duration::from_nanos(1));
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(max))
            .allow_burst(max);
        Self {
            local: RateLimiter::keyed(quota),
            shared,
            script: redis::Script::new(COUNT_IN_WINDOW),
            config,
            prefix,
            stats: RateLimitStats::default(),
        }
    }

    /// Forgets idle clients (call periodically to bound memory).
    pub fn forget_idle(&self) {
        self.local.retain_recent();
    }

    /// Checks and counts one request from `client`.
    pub async fn check(&self, client: IpAddr) -> Decision {
        if let Err(not_until) = self.local.check_key(&client) {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            return Decision::Reject {
                retry_after_secs: retry_after_secs(wait),
            };
        }
        let key = format!("{}ratelimit:{client}", self.prefix);
        let window_ms = self.config.window.as_millis().max(1).to_string();
        match self
            .shared
            .run_script::<(i64, i64)>(&self.script, &[&key], &[window_ms])
            .await
        {
            Some((count, _)) if count <= i64::from(self.config.max_requests) => Decision::Allow,
            Some((_, ttl_ms)) => Decision::Reject {
                retry_after_secs: retry_after_secs(Duration::from_millis(ttl_ms.max(0) as u64)),
            },
            None => {
                self.stats
                    .shared_unavailable
                    .fetch_add(1, Ordering::Relaxed);
                if self.config.fail_open {
                    Decision::Allow
                } else {
                    Decision::Unavailable
                }
            }
        }
    }

    /// The client address of `req`: the peer, or the first `X-Forwarded-For` entry when trusted.
    pub fn client_of(&self, req: &Request) -> Option<IpAddr> {
        if self.config.trust_forwarded_for {
            let forwarded = req
                .headers()
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .and_then(|v| v.trim().parse().ok());
            if forwarded.is_some() {
                return forwarded;
            }
        }
        req.remote_addr().as_socket_addr().map(|a| a.ip())
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

    async fn call(&self, req: Request) -> poem::Result<Self::Output> {
        let Some(client) = self.limiter.client_of(&req) else {
            return self.inner.call(req).await.map(IntoResponse::into_response);
        };
        match self.limiter.check(client).await {
            Decision::Allow => self.inner.call(req).await.map(IntoResponse::into_response),
            Decision::Reject { retry_after_secs } => {
                self.limiter.stats.rejected.fetch_add(1, Ordering::Relaxed);
                let detail = format!(
                    "rate limit of {} requests per {} s exceeded; retry in {retry_after_secs} s",
                    self.limiter.config.max_requests,
                    self.limiter.config.window.as_secs()
                );
                let mut resp = Problem::new(StatusCode::TOO_MANY_REQUESTS, detail).into_response();
                resp.headers_mut()
                    .insert("retry-after", retry_after_secs.into());
                Ok(resp)
            }
            Decision::Unavailable => {
                let mut resp =
                    Problem::new(StatusCode::SERVICE_UNAVAILABLE, "rate limiter unavailable")
                        .into_response();
                resp.headers_mut().insert("retry-after", 1u64.into());
                Ok(resp)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(5001)), 6);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }

    #[tokio::test]
    async fn local_limit_applies_without_redis() {
        let config = RateLimitConfig {
            max_requests: 3,
            window: Duration::from_secs(60),
            fail_open: true,
            trust_forwarded_for: false,
        };
        let cache = RedisCache::new("redis://127.0.0.1:1/", Duration::from_millis(50)).unwrap();
        let limiter = ClientRateLimiter::new(config, cache, String::new());
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(limiter.check(ip).await, Decision::Allow);
        }
        match limiter.check(ip).await {
            Decision::Reject { retry_after_secs } => assert!((1..=20).contains(&retry_after_secs)),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            limiter.check("10.0.0.2".parse().unwrap()).await,
            Decision::Allow,
            "per client"
        );
    }

    #[tokio::test]
    async fn fail_closed_without_redis() {
        let config = RateLimitConfig {
            max_requests: 3,
            window: Duration::from_secs(60),
            fail_open: false,
            trust_forwarded_for: false,
        };
        let cache = RedisCache::new("redis://127.0.0.1:1/", Duration::from_millis(50)).unwrap();
        let limiter = ClientRateLimiter::new(config, cache, String::new());
        assert_eq!(
            limiter.check("10.0.0.1".parse().unwrap()).await,
            Decision::Unavailable
        );
    }
}
