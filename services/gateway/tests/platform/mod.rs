//! The gateway against real users and orders services (MariaDB), a real notifications gRPC
//! server (MongoDB wire-protocol server) and real Redis, all on ephemeral ports: the fixture
//! every gateway test file shares, and what those files import.
#![allow(dead_code, unused_imports)]

pub use std::sync::Arc;
pub use std::sync::atomic::{AtomicU64, Ordering};
pub use std::time::{Duration, Instant};

pub use serde_json::{Value, json};
pub use shopmesh_common::service::Service as _;
pub use shopmesh_gateway::Gateway;
pub use shopmesh_gateway::config::{GatewayConfig, GraphqlConfig};
pub use shopmesh_identity::{AccessToken, Role};
pub use shopmesh_notifications::domain::NewNotification;
pub use shopmesh_notifications::store::{MongoNotificationStore, NotificationStore};
pub use shopmesh_openapi::gateway as rest;
pub use shopmesh_openapi::runtime::ClientError;
pub use shopmesh_orders::store::OrderStore;
pub use shopmesh_testkit::{
    self as testkit, CountingProxy, Service, Stack, TcpProxy, TestServer, build_service,
    eventually, remove_names, test_stack, unique,
};

/// Users, orders and notifications as `Application`s from one test stack (no relay, no
/// consumer: the gateway reads only), with users behind a counting proxy.
pub struct Backend {
    pub stack: Stack,
    pub users: testkit::Running,
    pub users_proxy: CountingProxy,
    pub orders: testkit::Running,
    pub orders_store: OrderStore,
    pub user_calls: Arc<AtomicU64>,
    pub notifications: testkit::Running,
    pub mongo: MongoNotificationStore,
}

impl Backend {
    pub async fn start() -> Self {
        Self::start_on(test_stack()).await
    }

    pub async fn start_on(stack: Stack) -> Self {
        let stack = stack
            .set("REDIS_TIMEOUT_MS", "300")
            .set("DB_POOL_SIZE", "5")
            .set("OUTBOX_RELAY_ENABLED", "false")
            .set("CONSUMER_ENABLED", "false");
        let users = build_service::<shopmesh_users::Application>(
            &stack.env_for(Service::Users).unwrap(),
            |_| {},
        )
        .await;
        let users = testkit::Running::start(users).await;
        let users_proxy = CountingProxy::start(&users.base_url, "/users/").await;
        let orders = build_service::<shopmesh_orders::Application>(
            &stack.env_for(Service::Orders).unwrap(),
            |_| {},
        )
        .await;
        let orders_store = orders.store().clone();
        let orders = testkit::Running::start(orders).await;
        let notifications = build_service::<shopmesh_notifications::Application>(
            &stack.env_for(Service::Notifications).unwrap(),
            |c| c.health_interval = Duration::from_secs(1),
        )
        .await;
        let mongo = notifications.store().clone();
        let notifications = testkit::Running::start(notifications).await;
        Self {
            user_calls: users_proxy.count.clone(),
            stack,
            users,
            users_proxy,
            orders,
            orders_store,
            notifications,
            mongo,
        }
    }

    /// The gateway's configuration from the stack, with its own cache prefix each time.
    pub fn config(&self) -> GatewayConfig {
        self.config_with_prefix(&format!("{}:", unique("gw")))
    }

    /// The gateway's configuration with the services' cache prefix, as a deployment has it:
    /// the Redis entries of orders are the ones the orders service replaces.
    pub fn deployed_config(&self) -> GatewayConfig {
        self.config_with_prefix(&self.stack.names.cache_prefix)
    }

    fn config_with_prefix(&self, prefix: &str) -> GatewayConfig {
        let env = self
            .stack
            .clone()
            .set_for(
                Service::Gateway,
                "USER_SERVICE_URL",
                &self.users_proxy.server.base_url,
            )
            .set_for(Service::Gateway, "CACHE_PREFIX", prefix)
            // Where the users service announces changes (after the stack's prefix, not the
            // gateway's own).
            .set_for(
                Service::Gateway,
                "USER_CHANGES_CHANNEL",
                format!("{}user.changed", self.stack.names.cache_prefix),
            )
            .set_for(Service::Gateway, "RATE_LIMIT_MAX", "10000")
            .set_for(Service::Gateway, "TRUST_FORWARDED_FOR", "true")
            .set_for(Service::Gateway, "TRUSTED_PROXIES", "127.0.0.1/32")
            .env_for(Service::Gateway)
            .unwrap();
        GatewayConfig::from_env(&env).unwrap()
    }

    /// An order stored directly in the orders service's database (the gateway never saw it).
    pub async fn stored_order(
        &self,
        user_id: i64,
        product_id: i64,
    ) -> shopmesh_orders::store::OrderRecord {
        self.orders_store
            .create(shopmesh_orders::store::NewOrder {
                user_id,
                product_id,
                quantity: 1,
            })
            .await
            .unwrap()
    }

    /// A token signed with the stack's key.
    pub fn token(&self, user_id: i64, role: Role) -> AccessToken {
        testkit::token(&self.stack, user_id, role)
    }

    pub async fn stop(self) {
        self.users_proxy.server.stop().await;
        self.users.stop().await;
        self.orders.stop().await;
        self.notifications.stop().await;
        remove_names(&self.stack.names, 0).await;
    }
}

/// A gateway `Application` built from a configuration. Its `http` client and `graphql` calls
/// carry the seeded admin's token; `anonymous` carries none.
pub struct Running {
    pub gateway: Gateway,
    pub server: testkit::Running,
    pub http: reqwest::Client,
    pub anonymous: reqwest::Client,
    pub admin: AccessToken,
}

impl Running {
    /// An order placed through this gateway's REST API, as the admin.
    pub async fn placed_order(&self, user_id: i64, product_id: i64) -> rest::Order {
        let request = rest::CreateOrderRequest {
            user_id,
            product_id,
            quantity: 1,
            payment_token: None,
        };
        self.client()
            .create_order(&self.admin, None, &request)
            .await
            .unwrap()
    }

    pub async fn start(backend: &Backend, mut config: GatewayConfig) -> Self {
        config.port = 0;
        let app = shopmesh_gateway::Application::build(config).await.unwrap();
        let gateway = app.gateway().clone();
        let admin = backend.token(ADMIN_ID, Role::Admin);
        Self {
            gateway,
            server: testkit::Running::start(app).await,
            http: testkit::authed_http(&admin),
            anonymous: reqwest::Client::new(),
            admin,
        }
    }

    pub async fn graphql(&self, query: &str, variables: Value) -> Value {
        self.graphql_from("198.51.100.1", query, variables).await.1
    }

    pub async fn graphql_from(&self, ip: &str, query: &str, variables: Value) -> (u16, Value) {
        testkit::graphql(
            &self.http,
            &self.server.base_url,
            &[("x-forwarded-for", ip)],
            query,
            variables,
        )
        .await
    }

    pub fn client(&self) -> rest::GatewayClient {
        rest::GatewayClient::new(self.server.base_url.clone())
    }
}

/// The seeded admin (after the three demo shoppers).
pub const ADMIN_ID: i64 = 4;

pub fn shared_config(base: &GatewayConfig, max: u32) -> GatewayConfig {
    let mut c = base.clone();
    limit_every_tier(&mut c, max);
    c
}

/// The same limit for anonymous clients, users and admins (tests of the mechanism call as the
/// admin).
pub fn limit_every_tier(config: &mut GatewayConfig, max: u32) {
    config.rate_limit.max_requests = max;
    config.rate_limit.max_requests_user = max;
    config.rate_limit.max_requests_admin = max;
}

pub fn error_code(body: &Value) -> Option<&str> {
    body["errors"][0]["extensions"]["code"].as_str()
}

pub const CREATE: &str = "mutation($input: CreateOrderInput!) { createOrder(input: $input) { id userId productId quantity status createdAt } }";
