//! Typed configuration of the payments service, read from the environment. Defaults match
//! docker-compose (which sets the hosts) and work on a developer machine as they are.

use std::time::Duration;

use shopmesh_common::auth::AuthConfig;
use shopmesh_common::config::{ConfigError, Env, SecretUrl, mysql_url};
use shopmesh_common::http::HttpConfig;

/// Everything the payments service needs to start.
#[derive(Debug, Clone)]
pub struct PaymentsConfig {
    /// HTTP port (`PORT`, 3005).
    pub port: u16,
    /// Limits of the HTTP listener (`HTTP_*`, `BIND_ADDRESS`).
    pub http: HttpConfig,
    /// MySQL URL (`DATABASE_URL`, or `DB_HOST`/`DB_PORT`/`DB_USER`/`DB_PASSWORD`/`DB_NAME`=payments_db).
    pub database_url: SecretUrl,
    /// Pool size (`DB_POOL_SIZE`, 10).
    pub db_pool_size: u32,
    /// How long a request waits for a connection before answering 503 (`DB_ACQUIRE_TIMEOUT_MS`, 2000).
    pub db_acquire_timeout: Duration,
    /// Which tokens are accepted (`AUTH_*`).
    pub auth: AuthConfig,
    /// How long a call to the payment provider may take (`PAYMENT_PROVIDER_TIMEOUT_MS`, 2000).
    pub provider_timeout: Duration,
    /// Provider failures after which an authorization fails for good (`PAYMENT_MAX_ATTEMPTS`, 5).
    pub max_attempts: i32,
}

impl PaymentsConfig {
    /// Reads the configuration from `env`.
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        Ok(Self {
            port: env.parse_or("PORT", 3005)?,
            http: HttpConfig::from_env(env)?,
            database_url: mysql_url(env, "payments_db")?,
            db_pool_size: env.parse_or("DB_POOL_SIZE", 10)?,
            db_acquire_timeout: Duration::from_millis(env.parse_or("DB_ACQUIRE_TIMEOUT_MS", 2000)?),
            auth: AuthConfig::from_env(env)?,
            provider_timeout: Duration::from_millis(
                env.parse_or("PAYMENT_PROVIDER_TIMEOUT_MS", 2000)?,
            ),
            max_attempts: env.parse_or("PAYMENT_MAX_ATTEMPTS", 5)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn defaults_match_docker_compose_names() {
        let cfg = PaymentsConfig::from_env(&HashMap::new()).unwrap();
        assert_eq!(cfg.port, 3005);
        assert_eq!(
            cfg.database_url.expose(),
            "mysql://root@localhost:3306/payments_db"
        );
    }
}
