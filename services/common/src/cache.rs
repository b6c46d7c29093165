//! A Redis cache that never takes a service down: every call has a short timeout, and while
//! Redis is unreachable reads are misses and writes are skipped. The outage is logged once
//! (and once more on recovery) and counted.
//!
//! A circuit breaker keeps an outage from costing every call its timeout: the first failure
//! opens it, calls then skip Redis at once, and a background probe pings Redis every
//! [`PROBE_INTERVAL`] on a fresh connection and closes the breaker when it answers.
//!
//! Values can be written with a version ([`RedisCache::set_versioned`]): Redis keeps the write
//! only if it is newer than what it holds, so a slow reader that fetched an old row can never
//! overwrite the value a writer just refreshed.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::ConnectionManager;

/// How often an open breaker probes Redis.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(250);

/// Lua: set `KEYS[1]` to `ARGV[1]:ARGV[2]` with TTL `ARGV[3]` unless it holds a version >= ARGV[1].
const SET_IF_NEWER: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur then
  local v = tonumber(string.match(cur, '^(%d+):'))
  if v and v >= tonumber(ARGV[1]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. ARGV[2], 'EX', tonumber(ARGV[3]))
return 1
";

/// Counters of cache use.
#[derive(Debug, Default)]
pub struct CacheStats {
    /// Reads served from Redis.
    pub hits: AtomicU64,
    /// Reads Redis did not have (or could not answer).
    pub misses: AtomicU64,
    /// Calls that failed because Redis was unreachable or slow.
    pub errors: AtomicU64,
    /// Calls that skipped Redis because the circuit breaker was open.
    pub bypassed: AtomicU64,
}

/// Shared, fail-soft Redis handle.
#[derive(Clone)]
pub struct RedisCache {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    conn: Mutex<Option<ConnectionManager>>,
    /// The breaker: open while Redis is failing; a probe task runs while it is open.
    down: AtomicBool,
    timeout: Duration,
    stats: CacheStats,
    set_if_newer: redis::Script,
}

/// Where gateways keep an order (`order:{id}` after the deployment's `CACHE_PREFIX`), and
/// where the orders service writes it anew when it changes.
pub fn order_key(prefix: &str, id: i64) -> String {
    format!("{prefix}order:{id}")
}

impl RedisCache {
    /// A cache for `url`; connects on first use. Each call waits at most `timeout`.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, redis::RedisError> {
        Ok(Self {
            inner: Arc::new(Inner {
                client: redis::Client::open(url)?,
                conn: Mutex::new(None),
                down: AtomicBool::new(false),
                timeout,
                stats: CacheStats::default(),
                set_if_newer: redis::Script::new(SET_IF_NEWER),
            }),
        })
    }

    /// Hit/miss/error counters.
    pub fn stats(&self) -> &CacheStats {
        &self.inner.stats
    }

    /// Whether the breaker is closed (the last call, or the last probe, reached Redis).
    pub fn is_up(&self) -> bool {
        !self.inner.down.load(Ordering::SeqCst)
    }

    /// The shared connection, made on first use; `None` (at once) while the breaker is open.
    async fn connection(&self) -> Option<ConnectionManager> {
        if self.inner.down.load(Ordering::Acquire) {
            self.inner.stats.bypassed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        if let Some(c) = self.shared_connection() {
            return Some(c);
        }
        match self.connect().await {
            Ok(c) => {
                if let Ok(mut slot) = self.inner.conn.lock() {
                    *slot = Some(c.clone());
                }
                Some(c)
            }
            Err(why) => {
                self.failed(&why);
                None
            }
        }
    }

    fn shared_connection(&self) -> Option<ConnectionManager> {
        self.inner.conn.lock().ok()?.clone()
    }

    async fn connect(&self) -> Result<ConnectionManager, String> {
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(self.inner.timeout)
            .set_response_timeout(self.inner.timeout)
            .set_number_of_retries(1);
        tokio::time::timeout(
            self.inner.timeout,
            ConnectionManager::new_with_config(self.inner.client.clone(), config),
        )
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|e| e.to_string())
    }

    /// Opens the breaker (once per outage: logs, drops the connection, starts the probe).
    fn failed(&self, why: &str) {
        self.inner.stats.errors.fetch_add(1, Ordering::Relaxed);
        if self.inner.down.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::warn!(
            error = why,
            "Redis unavailable; serving without cache until it returns"
        );
        // A hung connection may never fail by itself; the probe starts from a fresh one.
        if let Ok(mut slot) = self.inner.conn.lock() {
            *slot = None;
        }
        let cache = self.clone();
        tokio::spawn(async move { cache.probe_until_up().await });
    }

    async fn probe_until_up(&self) {
        loop {
            tokio::time::sleep(PROBE_INTERVAL).await;
            let Ok(mut conn) = self.connect().await else {
                continue;
            };
            let ping = redis::cmd("PING");
            let answer = ping.query_async::<String>(&mut conn);
            if let Ok(Ok(_)) = tokio::time::timeout(self.inner.timeout, answer).await {
                if let Ok(mut slot) = self.inner.conn.lock() {
                    *slot = Some(conn);
                }
                self.inner.down.store(false, Ordering::Release);
                tracing::info!("Redis available again");
                return;
            }
        }
    }

    /// Awaits a Redis call within the timeout, recording success or failure.
    async fn finish<T>(
        &self,
        what: &str,
        call: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Option<T> {
        match tokio::time::timeout(self.inner.timeout, call).await {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() => {
                self.failed(&e.to_string());
                None
            }
            Ok(Err(e)) => {
                // Redis answered, with an error: the link is fine, so the breaker stays shut.
                self.inner.stats.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "Redis {what} failed");
                None
            }
            Err(_) => {
                self.failed(&format!("{what} timed out"));
                None
            }
        }
    }

    /// Runs `cmd` against Redis within the timeout; `None` when Redis is unavailable.
    pub async fn run<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Option<T> {
        let mut conn = self.connection().await?;
        self.finish("command", cmd.query_async::<T>(&mut conn))
            .await
    }

    /// Runs a Lua script within the timeout; `None` when Redis is unavailable.
    pub async fn run_script<T: redis::FromRedisValue>(
        &self,
        script: &redis::Script,
        keys: &[&str],
        args: &[String],
    ) -> Option<T> {
        let mut conn = self.connection().await?;
        let mut invocation = script.prepare_invoke();
        for k in keys {
            invocation.key(*k);
        }
        for a in args {
            invocation.arg(a);
        }
        self.finish("script", invocation.invoke_async::<T>(&mut conn))
            .await
    }

    /// Reads `key`, counting a hit or a miss.
    pub async fn get(&self, key: &str) -> Option<String> {
        let value: Option<String> = self
            .run(&redis::cmd("GET").arg(key).to_owned())
            .await
            .flatten();
        let counter = if value.is_some() {
            &self.inner.stats.hits
        } else {
            &self.inner.stats.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        value
    }

    /// Writes `key` with a TTL.
    pub async fn set(&self, key: &str, value: &str, ttl: Duration) {
        let _: Option<()> = self
            .run(
                redis::cmd("SET")
                    .arg(key)
                    .arg(value)
                    .arg("EX")
                    .arg(ttl.as_secs().max(1)),
            )
            .await;
    }

    /// Deletes `key`.
    pub async fn delete(&self, key: &str) {
        let _: Option<i64> = self.run(redis::cmd("DEL").arg(key)).await;
    }

    /// Reads a value written by [`RedisCache::set_versioned`], without its version.
    pub async fn get_versioned(&self, key: &str) -> Option<String> {
        let raw = self.get(key).await?;
        raw.split_once(':').map(|(_, v)| v.to_owned())
    }

    /// Writes `value` at `version` unless Redis already holds the same or a newer version.
    /// Returns whether it was written.
    pub async fn set_versioned(&self, key: &str, version: u64, value: &str, ttl: Duration) -> bool {
        let args = [
            version.to_string(),
            value.to_owned(),
            ttl.as_secs().max(1).to_string(),
        ];
        self.run_script::<i64>(&self.inner.set_if_newer, &[key], &args)
            .await
            == Some(1)
    }

    /// A connection of its own for subscribing to channels, made within the timeout.
    pub async fn pubsub(&self) -> Result<redis::aio::PubSub, String> {
        tokio::time::timeout(self.inner.timeout, self.inner.client.get_async_pubsub())
            .await
            .map_err(|_| "connect timed out".to_owned())?
            .map_err(|e| e.to_string())
    }

    /// `PING`, for readiness.
    pub async fn ping(&self) -> Result<(), String> {
        match self.run::<String>(&redis::cmd("PING")).await {
            Some(_) => Ok(()),
            None => Err("redis unavailable".to_owned()),
        }
    }
}
