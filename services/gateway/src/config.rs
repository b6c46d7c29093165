//! Typed configuration of the gateway (seed names, docker-compose defaults).

use std::time::Duration;

use shopmesh_common::auth::AuthConfig;
use shopmesh_common::config::{ConfigError, Env, SecretUrl, redis_url};
use shopmesh_common::http::HttpConfig;
use shopmesh_common::near_cache::MemoryTierConfig;

/// Everything the gateway needs to start.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// HTTP port (`PORT`, 3000).
    pub port: u16,
    /// Limits of the HTTP listener (`HTTP_HEADER_READ_TIMEOUT_MS`, `HTTP_IDLE_TIMEOUT_SECS`,
    /// `HTTP_MAX_CONNECTIONS`).
    pub http: HttpConfig,
    /// Redis URL (`REDIS_URL`, or `REDIS_HOST`/`REDIS_PORT`/`REDIS_PASSWORD`).
    pub redis_url: SecretUrl,
    /// Orders service base URL (`ORDER_SERVICE_URL`, http://localhost:3002).
    pub order_service_url: String,
    /// Users service base URL (`USER_SERVICE_URL`, http://localhost:3001).
    pub user_service_url: String,
    /// Catalog service base URL (`CATALOG_SERVICE_URL`, http://localhost:3004).
    pub catalog_service_url: String,
    /// Notifications gRPC URL (`NOTIFICATION_SERVICE_URL`, http://localhost:50051).
    pub notification_service_url: String,
    /// Timeout of every downstream call (`DOWNSTREAM_TIMEOUT_MS`, 2000).
    pub downstream_timeout: Duration,
    /// Longest wait for Redis before going uncached (`REDIS_TIMEOUT_MS`, 250).
    pub redis_timeout: Duration,
    /// TTL of cached orders (`ORDER_CACHE_TTL_SECS`, 300).
    pub order_cache_ttl: Duration,
    /// Orders kept in process memory in front of Redis, and the channel the orders service
    /// announces every change of an order's status on (`ORDER_MEMORY_CACHE_ENTRIES`, 10000,
    /// 0 turns it off; `ORDER_CHANGES_CHANNEL`).
    pub order_memory: MemoryTierConfig,
    /// Longest a user stays in process memory (`USER_CACHE_TTL_SECS`, 30). A safety net only:
    /// a user is dropped as soon as the users service announces a change.
    pub user_cache_ttl: Duration,
    /// Users kept in process memory and the channel their changes are announced on
    /// (`USER_MEMORY_CACHE_ENTRIES`, `USER_CHANGES_CHANNEL`).
    pub user_memory: MemoryTierConfig,
    /// Products (and pages of them) kept in process memory and the channel the catalog
    /// announces their changes on (`PRODUCT_MEMORY_CACHE_ENTRIES`, `PRODUCT_CHANGES_CHANNEL`).
    pub product_memory: MemoryTierConfig,
    /// Longest a product stays in process memory (`PRODUCT_CACHE_TTL_SECS`, 30). A safety net
    /// only: a product is dropped as soon as the catalog announces a change.
    pub product_cache_ttl: Duration,
    /// How long "no such user" is remembered (`NOT_FOUND_CACHE_TTL_SECS`, 5; 0 turns it off),
    /// so lookups of ids that do not exist cannot make a users call every time.
    pub not_found_cache_ttl: Duration,
    /// Prefix of every Redis key the gateway writes (`CACHE_PREFIX`, empty).
    pub cache_prefix: String,
    /// Rate limit settings.
    pub rate_limit: RateLimitConfig,
    /// GraphQL limits.
    pub graphql: GraphqlConfig,
    /// Retries and circuit breaking of downstream calls.
    pub resilience: ResilienceConfig,
    /// Which web origins browsers may call the gateway from (`CORS_ALLOWED_ORIGINS`).
    pub cors: CorsOrigins,
    /// Which tokens are accepted (`AUTH_*`).
    pub auth: AuthConfig,
    /// Live updates: GraphQL subscriptions over WebSocket.
    pub live: LiveConfig,
}

/// Where status changes come from and what one WebSocket may hold.
#[derive(Debug, Clone)]
pub struct LiveConfig {
    /// RabbitMQ URL (`RABBITMQ_URL`); each replica consumes every status change through an
    /// exclusive queue of its own bound to `exchange`.
    pub rabbitmq_url: SecretUrl,
    /// The exchange the orders service publishes to (`ORDERS_EXCHANGE`, `orders`).
    pub exchange: String,
    /// Status changes a subscription may fall behind by before it is ended with
    /// `EVENTS_MISSED` (`SUBSCRIPTION_EVENT_BUFFER`, 1024; shared by the replica's subscribers).
    pub event_buffer: usize,
    /// Messages waiting to be written to one WebSocket before the client is disconnected as
    /// too slow, close code 1008 (`SUBSCRIPTION_SEND_BUFFER`, 64).
    pub send_buffer: usize,
    /// Subscriptions one WebSocket may run at once (`SUBSCRIPTIONS_PER_CONNECTION`, 20).
    pub per_connection: usize,
    /// WebSockets one user may hold on this replica (`SUBSCRIPTION_CONNECTIONS_PER_USER`, 10).
    pub connections_per_user: usize,
    /// How long a new WebSocket may take to send `connection_init` before close code 4408
    /// (`SUBSCRIPTION_INIT_TIMEOUT_MS`, 10000).
    pub init_timeout: Duration,
}

/// The origins allowed by CORS (`CORS_ALLOWED_ORIGINS`): unset, any `http://localhost:PORT` or
/// `http://127.0.0.1:PORT` (development servers such as Vite's :5173); `*`, any origin
/// (without credentials); otherwise a comma-separated list of exact origins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOrigins {
    /// Local development servers only.
    LocalDevelopment,
    /// Any origin; credentials are not allowed.
    Any,
    /// These origins exactly (`scheme://host[:port]`).
    List(Vec<String>),
}

impl CorsOrigins {
    fn from_env(env: &impl Env) -> Self {
        match env.get("CORS_ALLOWED_ORIGINS").as_deref().map(str::trim) {
            None => Self::LocalDevelopment,
            Some("*") => Self::Any,
            Some(list) => Self::List(
                list.split(',')
                    .map(|o| o.trim().trim_end_matches('/').to_owned())
                    .filter(|o| !o.is_empty())
                    .collect(),
            ),
        }
    }

    /// Whether a browser page from `origin` may call the gateway.
    pub fn allows(&self, origin: &str) -> bool {
        match self {
            Self::Any => true,
            Self::List(list) => list.iter().any(|o| o == origin),
            Self::LocalDevelopment => ["http://localhost", "http://127.0.0.1"].iter().any(|host| {
                origin == *host
                    || origin
                        .strip_prefix(host)
                        .and_then(|rest| rest.strip_prefix(':'))
                        .is_some_and(|port| port.parse::<u16>().is_ok())
            }),
        }
    }
}

/// Per-client request quota.
#[derive(Debug, Clone)]
pub struct RateLimitConfig {
    /// Requests an anonymous client (by address) may make per window (`RATE_LIMIT_MAX`, 10).
    pub max_requests: u32,
    /// Requests a logged-in user may make per window, from any address
    /// (`RATE_LIMIT_MAX_USER`, 6 times `RATE_LIMIT_MAX`).
    pub max_requests_user: u32,
    /// Requests an admin may make per window (`RATE_LIMIT_MAX_ADMIN`, 60 times
    /// `RATE_LIMIT_MAX`).
    pub max_requests_admin: u32,
    /// Window length (`RATE_LIMIT_WINDOW_SECS`, 60).
    pub window: Duration,
    /// When Redis is unavailable: `true` keeps serving with the in-process limit only,
    /// `false` rejects with 503 (`RATE_LIMIT_FAIL_OPEN`, true).
    pub fail_open: bool,
    /// Take the client address from `X-Forwarded-For` (`TRUST_FORWARDED_FOR`, false). Enable
    /// only behind a proxy that appends to it.
    pub trust_forwarded_for: bool,
    /// Proxies in front of the gateway (`TRUSTED_PROXIES`, comma-separated CIDRs, empty): the
    /// client is the right-most `X-Forwarded-For` address outside these networks; entries to
    /// its left are the client's own claims and never count.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// `TRUSTED_PROXIES`; with `TRUST_FORWARDED_FOR` on it must name at least one proxy, since
/// `X-Forwarded-For` is believed only from the peers it names.
fn trusted_proxies(env: &impl Env) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    let proxies = shopmesh_common::config::cidrs(env, "TRUSTED_PROXIES")?;
    if proxies.is_empty() && env.parse_or("TRUST_FORWARDED_FOR", false)? {
        return Err(ConfigError {
            key: "TRUSTED_PROXIES".to_owned(),
            value: String::new(),
            reason: "TRUST_FORWARDED_FOR is on: name the proxies (CIDRs) whose X-Forwarded-For is believed".to_owned(),
        });
    }
    Ok(proxies)
}

/// GraphQL hardening.
#[derive(Debug, Clone)]
pub struct GraphqlConfig {
    /// Deepest allowed selection (`GRAPHQL_MAX_DEPTH`, 10).
    pub max_depth: usize,
    /// Highest allowed complexity (`GRAPHQL_MAX_COMPLEXITY`, 250).
    pub max_complexity: usize,
    /// Whether introspection is allowed (`GRAPHQL_INTROSPECTION`, true).
    pub introspection: bool,
    /// Root fields, aliases included, one query may select (`GRAPHQL_MAX_ROOT_FIELDS`, 20).
    pub max_root_fields: usize,
    /// Longest query text, in bytes (`GRAPHQL_MAX_QUERY_BYTES`, 32768; GraphiQL's
    /// introspection query is about 2 KB).
    pub max_query_bytes: usize,
    /// Mutations (root fields of a mutation) one request may run (`GRAPHQL_MAX_MUTATIONS`, 5).
    pub max_mutations: usize,
    /// Downstream calls (retries included) one request may make; further ones fail with
    /// `QUERY_LIMIT_EXCEEDED` (`GRAPHQL_MAX_DOWNSTREAM_CALLS`, 50).
    pub max_downstream_calls: u32,
    /// Which operations run (`GRAPHQL_OPERATIONS`, `any`).
    pub operations: Operations,
}

/// Which GraphQL operations the gateway runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operations {
    /// Any valid document, sent as text or by a hash sent with its text before.
    Any,
    /// Only the SDK's operations (`sdk/typescript/src/gen/operations.json`, written by `cargo
    /// xtask gen` from `schema/graphql/operations/`), by their text or their hash: a
    /// production shop whose clients are its own.
    Registered,
}

impl std::str::FromStr for Operations {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "any" => Ok(Self::Any),
            "registered" => Ok(Self::Registered),
            other => Err(format!("`any` or `registered`, not {other:?}")),
        }
    }
}

/// Retries and circuit breaking of downstream calls (see [`crate::breaker`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResilienceConfig {
    /// Retries of a read that found its service unavailable (`DOWNSTREAM_RETRIES`, 2).
    pub retries: u32,
    /// First retry delay; each doubles, with full jitter (`DOWNSTREAM_RETRY_BASE_MS`, 50).
    pub retry_base: Duration,
    /// Retries allowed per call, on average (`DOWNSTREAM_RETRY_RATIO`, 0.2).
    pub retry_ratio: f64,
    /// Consecutive failures that open a service's circuit (`CIRCUIT_FAILURE_THRESHOLD`, 5).
    pub failure_threshold: u32,
    /// How long an open circuit fails calls before a probe (`CIRCUIT_OPEN_MS`, 5000).
    pub open_for: Duration,
}

impl GatewayConfig {
    /// Reads the configuration from `env`.
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let ms = |k: &str, d: u64| -> Result<Duration, ConfigError> {
            Ok(Duration::from_millis(env.parse_or(k, d)?))
        };
        let secs = |k: &str, d: u64| -> Result<Duration, ConfigError> {
            Ok(Duration::from_secs(env.parse_or(k, d)?))
        };
        let anonymous: u32 = env.parse_or("RATE_LIMIT_MAX", 10)?;
        Ok(Self {
            port: env.parse_or("PORT", 3000)?,
            http: HttpConfig::from_env(env)?,
            redis_url: redis_url(env)?,
            order_service_url: env.string_or("ORDER_SERVICE_URL", "http://localhost:3002"),
            user_service_url: env.string_or("USER_SERVICE_URL", "http://localhost:3001"),
            catalog_service_url: env.string_or("CATALOG_SERVICE_URL", "http://localhost:3004"),
            notification_service_url: env
                .string_or("NOTIFICATION_SERVICE_URL", "http://localhost:50051"),
            downstream_timeout: ms("DOWNSTREAM_TIMEOUT_MS", 2000)?,
            redis_timeout: ms("REDIS_TIMEOUT_MS", 250)?,
            order_cache_ttl: secs("ORDER_CACHE_TTL_SECS", 300)?,
            order_memory: MemoryTierConfig::from_env(env, "order")?,
            user_cache_ttl: secs("USER_CACHE_TTL_SECS", 30)?,
            user_memory: MemoryTierConfig::from_env(env, "user")?,
            product_memory: MemoryTierConfig::from_env(env, "product")?,
            product_cache_ttl: secs("PRODUCT_CACHE_TTL_SECS", 30)?,
            not_found_cache_ttl: secs("NOT_FOUND_CACHE_TTL_SECS", 5)?,
            cache_prefix: env.string_or("CACHE_PREFIX", ""),
            rate_limit: RateLimitConfig {
                max_requests: anonymous,
                max_requests_user: env
                    .parse_or("RATE_LIMIT_MAX_USER", anonymous.saturating_mul(6))?,
                max_requests_admin: env
                    .parse_or("RATE_LIMIT_MAX_ADMIN", anonymous.saturating_mul(60))?,
                window: secs("RATE_LIMIT_WINDOW_SECS", 60)?,
                fail_open: env.parse_or("RATE_LIMIT_FAIL_OPEN", true)?,
                trust_forwarded_for: env.parse_or("TRUST_FORWARDED_FOR", false)?,
                trusted_proxies: trusted_proxies(env)?,
            },
            graphql: GraphqlConfig {
                max_depth: env.parse_or("GRAPHQL_MAX_DEPTH", 10)?,
                max_complexity: env.parse_or("GRAPHQL_MAX_COMPLEXITY", 250)?,
                introspection: env.parse_or("GRAPHQL_INTROSPECTION", true)?,
                max_root_fields: env.parse_or("GRAPHQL_MAX_ROOT_FIELDS", 20)?,
                max_query_bytes: env.parse_or("GRAPHQL_MAX_QUERY_BYTES", 32 * 1024)?,
                max_mutations: env.parse_or("GRAPHQL_MAX_MUTATIONS", 5)?,
                max_downstream_calls: env.parse_or("GRAPHQL_MAX_DOWNSTREAM_CALLS", 50)?,
                operations: env.parse_or("GRAPHQL_OPERATIONS", Operations::Any)?,
            },
            auth: AuthConfig::from_env(env)?,
            live: LiveConfig {
                rabbitmq_url: env
                    .string_or("RABBITMQ_URL", "amqp://guest:guest@localhost:5672/%2f")
                    .into(),
                exchange: shopmesh_common::amqp::topology_from_env(env)?.exchange,
                event_buffer: env.parse_or("SUBSCRIPTION_EVENT_BUFFER", 1024)?.max(1),
                send_buffer: env.parse_or("SUBSCRIPTION_SEND_BUFFER", 64)?.max(1),
                per_connection: env.parse_or("SUBSCRIPTIONS_PER_CONNECTION", 20)?,
                connections_per_user: env.parse_or("SUBSCRIPTION_CONNECTIONS_PER_USER", 10)?,
                init_timeout: ms("SUBSCRIPTION_INIT_TIMEOUT_MS", 10_000)?,
            },
            cors: CorsOrigins::from_env(env),
            resilience: ResilienceConfig {
                retries: env.parse_or("DOWNSTREAM_RETRIES", 2)?,
                retry_base: ms("DOWNSTREAM_RETRY_BASE_MS", 50)?,
                retry_ratio: env.parse_or("DOWNSTREAM_RETRY_RATIO", 0.2)?,
                failure_threshold: env.parse_or("CIRCUIT_FAILURE_THRESHOLD", 5)?.max(1),
                open_for: ms("CIRCUIT_OPEN_MS", 5000)?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn cors_origins() {
        let dev = CorsOrigins::LocalDevelopment;
        assert!(dev.allows("http://localhost:5173"));
        assert!(dev.allows("http://127.0.0.1:3000"));
        assert!(!dev.allows("http://localhost.evil.example"));
        assert!(!dev.allows("http://localhost:5173.evil.example"));
        assert!(!dev.allows("https://shop.example"));
        let env: HashMap<String, String> = [(
            "CORS_ALLOWED_ORIGINS".to_owned(),
            "https://shop.example/, https://admin.shop.example".to_owned(),
        )]
        .into();
        let list = CorsOrigins::from_env(&env);
        assert!(list.allows("https://shop.example"));
        assert!(!list.allows("http://localhost:5173"));
    }

    #[test]
    fn defaults_follow_the_seed() {
        let c = GatewayConfig::from_env(&HashMap::new()).unwrap();
        assert_eq!(c.port, 3000);
        assert_eq!(c.rate_limit.max_requests, 10);
        assert_eq!(c.rate_limit.window, Duration::from_secs(60));
        assert_eq!(c.order_cache_ttl, Duration::from_secs(300));
        assert_eq!(c.order_service_url, "http://localhost:3002");
        assert!(c.rate_limit.fail_open && !c.rate_limit.trust_forwarded_for);
    }

    #[test]
    fn trusted_proxies_are_cidrs_or_addresses() {
        let env: HashMap<String, String> = [(
            "TRUSTED_PROXIES".to_owned(),
            "10.0.0.0/8, 192.0.2.1".to_owned(),
        )]
        .into();
        let c = GatewayConfig::from_env(&env).unwrap();
        assert_eq!(c.rate_limit.trusted_proxies.len(), 2);
        let bad: HashMap<String, String> =
            [("TRUSTED_PROXIES".to_owned(), "10.0.0.0/99".to_owned())].into();
        assert!(GatewayConfig::from_env(&bad).is_err());
    }

    #[test]
    fn invalid_bool_is_an_error() {
        let env: HashMap<String, String> =
            [("RATE_LIMIT_FAIL_OPEN".to_owned(), "maybe".to_owned())].into();
        assert!(GatewayConfig::from_env(&env).is_err());
    }
}
