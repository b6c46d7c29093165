//! Typed configuration of the notifications service (seed names, docker-compose defaults).

use std::time::Duration;

use shopmesh_common::auth::AuthConfig;
use shopmesh_common::config::{ConfigError, Env, SecretUrl};
use shopmesh_common::http::HttpConfig;
use shopmesh_events::OrderCreatedTopology;

use crate::events::ConsumerConfig;

/// Everything the notifications service needs to start.
#[derive(Debug, Clone)]
pub struct NotificationsConfig {
    /// gRPC port (`GRPC_PORT`, 50051).
    pub grpc_port: u16,
    /// HTTP port for `/health/*` and `/metrics` (`HTTP_PORT`, 3003).
    pub http_port: u16,
    /// Limits of the HTTP listener (`HTTP_HEADER_READ_TIMEOUT_MS`, `HTTP_IDLE_TIMEOUT_SECS`,
    /// `HTTP_MAX_CONNECTIONS`).
    pub http: HttpConfig,
    /// MongoDB URL (`MONGO_URL`, mongodb://localhost:27017).
    pub mongo_url: SecretUrl,
    /// Database name (`MONGO_DB`, notifications).
    pub mongo_db: String,
    /// How long a store call waits for MongoDB (`MONGO_TIMEOUT_MS`, 2000).
    pub mongo_timeout: Duration,
    /// RabbitMQ URL (`RABBITMQ_URL`).
    pub rabbitmq_url: SecretUrl,
    /// Exchange and queue names (`ORDERS_EXCHANGE`, `ORDER_CREATED_QUEUE`).
    pub topology: OrderCreatedTopology,
    /// Prefetch, retries (`CONSUMER_PREFETCH`, `CONSUMER_MAX_RETRIES`, `CONSUMER_RETRY_BASE_MS`).
    pub consumer: ConsumerConfig,
    /// How often gRPC health re-checks MongoDB and the consumer (2 s).
    pub health_interval: Duration,
    /// A gRPC connection older than this is closed, with a GOAWAY and up to 30 s more for
    /// calls in flight (`GRPC_MAX_CONNECTION_AGE_SECS`, 300): idle or silent connections
    /// cannot pile up, and clients reconnect (and rebalance) now and then.
    pub grpc_max_connection_age: Duration,
    /// Reads of MongoDB one caller (a user, by token) may have running, counting those it
    /// gave up on that still run (`MONGO_MAX_READS_PER_CALLER`, 4); a call that finds none
    /// free within 100 ms gets RESOURCE_EXHAUSTED.
    pub mongo_max_reads_per_caller: usize,
    /// Whether this process consumes `order.created` (`CONSUMER_ENABLED`, true). Without a
    /// consumer the service serves stored notifications and reports itself not ready.
    pub consumer_enabled: bool,
    /// Which tokens are accepted (`AUTH_*`).
    pub auth: AuthConfig,
    /// How often each `WatchNotifications` stream reads the store for new notifications
    /// (`WATCH_POLL_MS`, 500): reading the store, a stream hears notifications whichever
    /// replica's consumer stored them.
    pub watch_poll: Duration,
}

impl NotificationsConfig {
    /// Reads the configuration from `env`.
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let d = ConsumerConfig::default();
        Ok(Self {
            grpc_port: env.parse_or("GRPC_PORT", 50051)?,
            http_port: env.parse_or("HTTP_PORT", 3003)?,
            http: HttpConfig::from_env(env)?,
            mongo_url: env
                .string_or("MONGO_URL", "mongodb://localhost:27017")
                .into(),
            mongo_db: env.string_or("MONGO_DB", "notifications"),
            mongo_timeout: Duration::from_millis(env.parse_or("MONGO_TIMEOUT_MS", 2000)?),
            rabbitmq_url: env
                .string_or("RABBITMQ_URL", "amqp://guest:guest@localhost:5672/%2f")
                .into(),
            topology: shopmesh_common::amqp::topology_from_env(env)?,
            consumer: ConsumerConfig {
                prefetch: env.parse_or("CONSUMER_PREFETCH", d.prefetch)?,
                max_retries: env.parse_or("CONSUMER_MAX_RETRIES", d.max_retries)?,
                retry_base: Duration::from_millis(
                    env.parse_or("CONSUMER_RETRY_BASE_MS", d.retry_base.as_millis() as u64)?,
                ),
                ..d
            },
            auth: AuthConfig::from_env(env)?,
            health_interval: Duration::from_secs(2),
            grpc_max_connection_age: Duration::from_secs(
                env.parse_or("GRPC_MAX_CONNECTION_AGE_SECS", 300)?,
            ),
            mongo_max_reads_per_caller: env.parse_or(
                "MONGO_MAX_READS_PER_CALLER",
                crate::store::DEFAULT_READS_PER_CALLER,
            )?,
            consumer_enabled: env.parse_or("CONSUMER_ENABLED", true)?,
            watch_poll: Duration::from_millis(env.parse_or("WATCH_POLL_MS", 500)?.max(10)),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn defaults_follow_the_seed() {
        let c = NotificationsConfig::from_env(&HashMap::new()).unwrap();
        assert_eq!(c.grpc_port, 50051);
        assert_eq!(c.mongo_db, "notifications");
        assert_eq!(c.consumer.prefetch, 32);
        assert_eq!(c.consumer.max_retries, 5);
        assert_eq!(c.topology.queue, "order.created");
    }
}
