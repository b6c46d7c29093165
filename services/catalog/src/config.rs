//! Typed configuration of the catalog service, read from the environment. Defaults match
//! docker-compose (which sets the hosts) and work on a developer machine as they are.

use std::time::Duration;

use shopmesh_common::auth::AuthConfig;
use shopmesh_common::config::{ConfigError, Env, SecretUrl, mysql_url, redis_url};
use shopmesh_common::http::HttpConfig;
use shopmesh_common::near_cache::ChangeChannel;
use shopmesh_common::near_cache::MemoryTierConfig;

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
    /// Redis, where product changes are announced (`REDIS_URL`, or `REDIS_HOST`/`REDIS_PORT`/
    /// `REDIS_PASSWORD`).
    pub redis_url: SecretUrl,
    /// Longest wait for Redis (`REDIS_TIMEOUT_MS`, 250).
    pub redis_timeout: Duration,
    /// Where changed product ids are announced, for the gateways' memory tiers
    /// (`PRODUCT_CHANGES_CHANNEL`, `product.changed` after `CACHE_PREFIX`).
    pub product_changes: ChangeChannel,
    /// How long reserved stock is held for an order before it is given back
    /// (`RESERVATION_TTL_SECS`, 900).
    pub reservation_ttl: Duration,
    /// How often expired reservations are looked for (`RESERVATION_SWEEP_MS`, 1000).
    pub sweep_interval: Duration,
    /// Whether to add the demo catalog (`DEMO_SEED`, false): products created or updated by
    /// SKU, stock added only to products that never had any, so restarts add nothing.
    pub demo_seed: bool,
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
            redis_url: redis_url(env)?,
            redis_timeout: Duration::from_millis(env.parse_or("REDIS_TIMEOUT_MS", 250)?),
            product_changes: MemoryTierConfig::from_env(env, "product")?.channel,
            reservation_ttl: Duration::from_secs(env.parse_or("RESERVATION_TTL_SECS", 900)?),
            sweep_interval: Duration::from_millis(env.parse_or("RESERVATION_SWEEP_MS", 1000)?),
            demo_seed: env.parse_or("DEMO_SEED", false)?,
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
