//! Typed configuration of the users service (seed names, docker-compose defaults).

use std::time::Duration;

use shopmesh_common::config::{ConfigError, Env, SecretUrl, mysql_url, redis_url};
use shopmesh_common::http::HttpConfig;

/// Everything the users service needs to start.
#[derive(Debug, Clone)]
pub struct UsersConfig {
    /// HTTP port (`PORT`, 3001).
    pub port: u16,
    /// Limits of the HTTP listener (`HTTP_HEADER_READ_TIMEOUT_MS`, `HTTP_IDLE_TIMEOUT_SECS`,
    /// `HTTP_MAX_CONNECTIONS`).
    pub http: HttpConfig,
    /// MySQL URL (`DATABASE_URL` or `DB_*`, database `users_db`).
    pub database_url: SecretUrl,
    /// Pool size (`DB_POOL_SIZE`, 10).
    pub db_pool_size: u32,
    /// How long a request waits for a connection (`DB_ACQUIRE_TIMEOUT_MS`, 2000).
    pub db_acquire_timeout: Duration,
    /// Redis URL (`REDIS_URL`, or `REDIS_HOST`/`REDIS_PORT`/`REDIS_PASSWORD`).
    pub redis_url: SecretUrl,
    /// Cache TTL (`USER_CACHE_TTL_SECS`, 600).
    pub cache_ttl: Duration,
    /// Longest wait for Redis before serving uncached (`REDIS_TIMEOUT_MS`, 250).
    pub redis_timeout: Duration,
    /// Prefix of the cache keys (`CACHE_PREFIX`, empty: keys are `user:{id}`). Set it when
    /// several deployments with different databases share one Redis.
    pub cache_prefix: String,
}

impl UsersConfig {
    /// Reads the configuration from `env`.
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        Ok(Self {
            port: env.parse_or("PORT", 3001)?,
            http: HttpConfig::from_env(env)?,
            database_url: mysql_url(env, "users_db")?,
            db_pool_size: env.parse_or("DB_POOL_SIZE", 10)?,
            db_acquire_timeout: Duration::from_millis(env.parse_or("DB_ACQUIRE_TIMEOUT_MS", 2000)?),
            redis_url: redis_url(env)?,
            cache_ttl: Duration::from_secs(env.parse_or("USER_CACHE_TTL_SECS", 600)?),
            redis_timeout: Duration::from_millis(env.parse_or("REDIS_TIMEOUT_MS", 250)?),
            cache_prefix: env.string_or("CACHE_PREFIX", ""),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn defaults() {
        let c = UsersConfig::from_env(&HashMap::new()).unwrap();
        assert_eq!(c.port, 3001);
        assert!(c.database_url.expose().ends_with("/users_db"));
        assert_eq!(c.cache_ttl, Duration::from_secs(600));
        assert_eq!(c.redis_url.expose(), "redis://localhost:6379/");
        assert_eq!(c.cache_prefix, "", "keys are user:{{id}} by default");
        let env: HashMap<String, String> =
            [("CACHE_PREFIX".to_owned(), "staging:".to_owned())].into();
        assert_eq!(
            UsersConfig::from_env(&env).unwrap().cache_prefix,
            "staging:"
        );
    }
}
