//! Typed configuration of the orders service, read from the environment. Defaults match
//! docker-compose (which sets the hosts) and work on a developer machine as they are.

use std::time::Duration;

use shopmesh_common::auth::AuthConfig;
use shopmesh_common::config::{ConfigError, Env, SecretUrl, mysql_url, redis_url};
use shopmesh_common::http::HttpConfig;
use shopmesh_common::near_cache::{ChangeChannel, MemoryTierConfig};
use shopmesh_events::OrderCreatedTopology;

/// Everything the orders service needs to start.
#[derive(Debug, Clone)]
pub struct OrdersConfig {
    /// HTTP port (`PORT`, 3002).
    pub port: u16,
    /// Limits of the HTTP listener (`HTTP_HEADER_READ_TIMEOUT_MS`, `HTTP_IDLE_TIMEOUT_SECS`,
    /// `HTTP_MAX_CONNECTIONS`).
    pub http: HttpConfig,
    /// MySQL URL (`DATABASE_URL`, or `DB_HOST`/`DB_PORT`/`DB_USER`/`DB_PASSWORD`/`DB_NAME`=orders_db).
    pub database_url: SecretUrl,
    /// Pool size (`DB_POOL_SIZE`, 10).
    pub db_pool_size: u32,
    /// How long a request waits for a connection before answering 503 (`DB_ACQUIRE_TIMEOUT_MS`, 2000).
    pub db_acquire_timeout: Duration,
    /// RabbitMQ URL (`RABBITMQ_URL`).
    pub rabbitmq_url: SecretUrl,
    /// Exchange and queue names (`ORDERS_EXCHANGE`, `ORDER_CREATED_QUEUE`).
    pub topology: OrderCreatedTopology,
    /// Outbox relay tuning.
    pub relay: RelayConfig,
    /// Where changed orders are written for the gateways and announced to them.
    pub order_changes: OrderChangesConfig,
    /// Whether this process relays the outbox (`OUTBOX_RELAY_ENABLED`, true). Set false on
    /// replicas that only serve the API while another process relays; the relay locks rows
    /// (`FOR UPDATE SKIP LOCKED`), so several relays are also safe.
    pub relay_enabled: bool,
    /// Which tokens are accepted (`AUTH_*`).
    pub auth: AuthConfig,
    /// The users service, which confirms users an admin orders for and issues this service's
    /// own token (`USER_SERVICE_URL`, `http://localhost:3001`).
    pub users_url: String,
    /// The checkout saga.
    pub saga: SagaConfig,
}

/// The checkout saga: whom it calls, as whom, and how patiently.
#[derive(Clone)]
pub struct SagaConfig {
    /// The catalog service (`CATALOG_SERVICE_URL`, `http://localhost:3004`).
    pub catalog_url: String,
    /// The payments service (`PAYMENT_SERVICE_URL`, `http://localhost:3005`).
    pub payments_url: String,
    /// This service's client id at the users service (`SERVICE_CLIENT_ID`, `orders`).
    pub client_id: String,
    /// Its secret there (`SERVICE_CLIENT_SECRET`, its entry in the users service's
    /// `SERVICE_CLIENTS`). Without one, checkout answers 503 and no saga runs.
    pub client_secret: Option<String>,
    /// How long reserving and paying may take before the order expires and everything is
    /// given back (`CHECKOUT_TIMEOUT_SECS`, 120; keep it well under the catalog's
    /// `RESERVATION_TTL_SECS`).
    pub timeout: Duration,
    /// How long a runner holds a saga; another takes it over after a crash
    /// (`CHECKOUT_LEASE_MS`, 15000).
    pub lease: Duration,
    /// How often runners look for due sagas (`CHECKOUT_POLL_MS`, 500).
    pub poll: Duration,
    /// First delay before a step is tried again (`CHECKOUT_RETRY_MIN_MS`, 200).
    pub retry_min: Duration,
    /// Longest such delay (`CHECKOUT_RETRY_MAX_MS`, 5000).
    pub retry_max: Duration,
    /// Sagas one process drives at once (`CHECKOUT_CONCURRENCY`, 32).
    pub concurrency: usize,
}

impl std::fmt::Debug for SagaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SagaConfig")
            .field("catalog_url", &self.catalog_url)
            .field("payments_url", &self.payments_url)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("timeout", &self.timeout)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

impl SagaConfig {
    /// The delay before the `attempts`-th try of a step: doubling from `retry_min` up to
    /// `retry_max`.
    pub fn retry_delay(&self, attempts: i32) -> Duration {
        let doublings = u32::try_from(attempts.saturating_sub(1))
            .unwrap_or(0)
            .min(20);
        (self.retry_min * 2u32.pow(doublings)).min(self.retry_max)
    }
}

/// Where the gateways keep their copies of orders, which every change of status replaces.
#[derive(Debug, Clone)]
pub struct OrderChangesConfig {
    /// Redis URL (`REDIS_URL`, or `REDIS_HOST`/`REDIS_PORT`/`REDIS_PASSWORD`).
    pub redis_url: SecretUrl,
    /// Longest wait for Redis (`REDIS_TIMEOUT_MS`, 250).
    pub redis_timeout: Duration,
    /// Prefix of the keys (`CACHE_PREFIX`, as the gateways').
    pub cache_prefix: String,
    /// How long a written order lives (`ORDER_CACHE_TTL_SECS`, 300, as the gateways').
    pub ttl: Duration,
    /// The channel changed order ids are announced on (`ORDER_CHANGES_CHANNEL`, by default
    /// `order.changed` after `CACHE_PREFIX`).
    pub channel: ChangeChannel,
}

/// How the [`crate::events::OutboxRelay`] batches and retries.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Rows published per transaction (`OUTBOX_BATCH_SIZE`, 100).
    pub batch_size: u32,
    /// How often to look for pending rows without a wake-up (`OUTBOX_POLL_MS`, 1000).
    pub poll_interval: Duration,
    /// First retry delay after a broker or database failure (`OUTBOX_BACKOFF_MIN_MS`, 100).
    pub backoff_min: Duration,
    /// Longest retry delay (`OUTBOX_BACKOFF_MAX_MS`, 5000).
    pub backoff_max: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            batch_size: 100,
            poll_interval: Duration::from_millis(1000),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_millis(5000),
        }
    }
}

impl OrdersConfig {
    /// Reads the configuration from `env`.
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let d = RelayConfig::default();
        let ms = |key: &str, default: Duration| -> Result<Duration, ConfigError> {
            Ok(Duration::from_millis(
                env.parse_or(key, default.as_millis() as u64)?,
            ))
        };
        Ok(Self {
            port: env.parse_or("PORT", 3002)?,
            http: HttpConfig::from_env(env)?,
            database_url: mysql_url(env, "orders_db")?,
            db_pool_size: env.parse_or("DB_POOL_SIZE", 10)?,
            db_acquire_timeout: ms("DB_ACQUIRE_TIMEOUT_MS", Duration::from_millis(2000))?,
            rabbitmq_url: env
                .string_or("RABBITMQ_URL", "amqp://guest:guest@localhost:5672/%2f")
                .into(),
            topology: shopmesh_common::amqp::topology_from_env(env)?,
            relay: RelayConfig {
                batch_size: env.parse_or("OUTBOX_BATCH_SIZE", d.batch_size)?,
                poll_interval: ms("OUTBOX_POLL_MS", d.poll_interval)?,
                backoff_min: ms("OUTBOX_BACKOFF_MIN_MS", d.backoff_min)?,
                backoff_max: ms("OUTBOX_BACKOFF_MAX_MS", d.backoff_max)?,
            },
            order_changes: OrderChangesConfig {
                redis_url: redis_url(env)?,
                redis_timeout: ms("REDIS_TIMEOUT_MS", Duration::from_millis(250))?,
                cache_prefix: env.string_or("CACHE_PREFIX", ""),
                ttl: Duration::from_secs(env.parse_or("ORDER_CACHE_TTL_SECS", 300)?),
                channel: MemoryTierConfig::from_env(env, "order")?.channel,
            },
            relay_enabled: env.parse_or("OUTBOX_RELAY_ENABLED", true)?,
            auth: AuthConfig::from_env(env)?,
            users_url: env.string_or("USER_SERVICE_URL", "http://localhost:3001"),
            saga: SagaConfig {
                catalog_url: env.string_or("CATALOG_SERVICE_URL", "http://localhost:3004"),
                payments_url: env.string_or("PAYMENT_SERVICE_URL", "http://localhost:3005"),
                client_id: env.string_or("SERVICE_CLIENT_ID", "orders"),
                client_secret: Some(env.string_or("SERVICE_CLIENT_SECRET", ""))
                    .filter(|s| !s.is_empty()),
                timeout: Duration::from_secs(env.parse_or("CHECKOUT_TIMEOUT_SECS", 120)?),
                lease: ms("CHECKOUT_LEASE_MS", Duration::from_millis(15_000))?,
                poll: ms("CHECKOUT_POLL_MS", Duration::from_millis(500))?,
                retry_min: ms("CHECKOUT_RETRY_MIN_MS", Duration::from_millis(200))?,
                retry_max: ms("CHECKOUT_RETRY_MAX_MS", Duration::from_millis(5000))?,
                concurrency: env.parse_or("CHECKOUT_CONCURRENCY", 32)?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn defaults_match_docker_compose_names() {
        let cfg = OrdersConfig::from_env(&HashMap::new()).unwrap();
        assert_eq!(cfg.port, 3002);
        assert_eq!(
            cfg.database_url.expose(),
            "mysql://root@localhost:3306/orders_db"
        );
        assert_eq!(cfg.topology.exchange, "orders");
        assert_eq!(cfg.topology.queue, "order.created");
    }

    #[test]
    fn env_overrides() {
        let env: HashMap<String, String> = [
            ("PORT", "9000"),
            ("DB_NAME", "x"),
            ("OUTBOX_BATCH_SIZE", "7"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let cfg = OrdersConfig::from_env(&env).unwrap();
        assert_eq!(cfg.port, 9000);
        assert!(cfg.database_url.expose().ends_with("/x"));
        assert_eq!(cfg.relay.batch_size, 7);
    }
}
