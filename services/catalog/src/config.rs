//! Typed configuration of the catalog service, read from the environment. Defaults match
//! docker-compose (which sets the hosts) and work on a developer machine as they are.

use std::time::Duration;

use shopmesh_common::auth::AuthConfig;
use shopmesh_common::config::{ConfigError, Env, SecretUrl, mysql_url};
use shopmesh_common::http::HttpConfig;

/// Everything the catalog service needs to start.
#[derive(Debug, Clone)]
pub struct CatalogConfig {
    /// HTTP port (`PORT`, 3004).
    pub port: u16,
    /// Limits of the HTTP listener (`HTTP_*`, `BIND_ADDRESS`).
    pub http: HttpConfig,
    /// MySQL URL (`DATABASE_URL`, or `DB_HOST`/`DB_PORT`/`DB_USER`/`DB_PASSWORD`/`DB_NAME`=catalog_db).
    pub database_url: SecretUrl,
    /// Pool size (`DB_POOL_SIZE`, 10).
    pub db_pool_size: u32,
    /// How long a request waits for a connection before answering 503 (`DB_ACQUIRE_TIMEOUT_MS`, 2000).
    pub db_acquire_timeout: Duration,
    /// Which tokens are accepted (`AUTH_*`).
    pub auth: AuthConfig,
    /// How long reserved stock is held for an order before it is given back
    /// (`RESERVATION_TTL_SECS`, 900).
    pub reservation_ttl: Duration,
    /// How often expired reservations are looked for (`RESERVATION_SWEEP_MS`, 1000).
    pub sweep_interval: Duration,
}

impl CatalogConfig {
    /// Reads the configuration from `env`.
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        Ok(Self {
            port: env.parse_or("PORT", 3004)?,
            http: HttpConfig::from_env(env)?,
            database_url: mysql_url(env, "catalog_db")?,
            db_pool_size: env.parse_or("DB_POOL_SIZE", 10)?,
            db_acquire_timeout: Duration::from_millis(env.parse_or("DB_ACQUIRE_TIMEOUT_MS", 2000)?),
            auth: AuthConfig::from_env(env)?,
            reservation_ttl: Duration::from_secs(env.parse_or("RESERVATION_TTL_SECS", 900)?),
            sweep_interval: Duration::from_millis(env.parse_or("RESERVATION_SWEEP_MS", 1000)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn defaults_match_docker_compose_names() {
        let cfg = CatalogConfig::from_env(&HashMap::new()).unwrap();
        assert_eq!(cfg.port, 3004);
        assert_eq!(
            cfg.database_url.expose(),
            "mysql://root@localhost:3306/catalog_db"
        );
    }
}
