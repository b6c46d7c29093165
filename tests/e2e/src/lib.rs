//! The whole platform for platform-level tests, started through the platform's [`Stack`]:
//! [`Platform`] runs every service's `Application` in this process,
//! [`processes::ProcessPlatform`] runs the binaries. Each has names of its own (databases, exchange, queues, cache
//! prefix) and free ports, so several platforms can run at once against the same
//! infrastructure.

use std::sync::Arc;
use std::time::Duration;

use shopmesh_events::{Event as _, OrderCreatedTopology, OrderCreatedV1};
use shopmesh_gateway::Gateway;
use shopmesh_notifications::events::{ConsumerConfig, ConsumerStatus, NotificationConsumer};
use shopmesh_notifications::store::MongoNotificationStore;
use shopmesh_orders::events::RelayStatus;
use shopmesh_orders::store::OrderStore;
use shopmesh_testkit::{
    Running, Service, Stack, amqp_url, build_service, redis_url, remove_names, test_stack, topology,
};

pub mod deployment;
pub mod processes;

/// Retries before dead-lettering, kept low for tests.
pub const MAX_RETRIES: u32 = 3;

/// How to start a [`Platform`].
#[derive(Debug, Clone)]
pub struct PlatformOptions {
    /// Gateway requests per anonymous client per minute.
    pub rate_limit: u32,
    /// RabbitMQ URL the orders relay publishes to (e.g. through a proxy).
    pub relay_amqp_url: String,
    /// Whether to run the notifications consumer in this process.
    pub run_consumer: bool,
    /// Redis URL for users and the gateway.
    pub redis_url: String,
}

impl Default for PlatformOptions {
    fn default() -> Self {
        Self {
            rate_limit: 10_000,
            relay_amqp_url: amqp_url(),
            run_consumer: true,
            redis_url: redis_url(),
        }
    }
}

/// What the admin puts on sale: `name` at `amount_minor` EUR, with a SKU of its own.
pub fn product_input(name: &str, amount_minor: i64) -> shopmesh_openapi::catalog::ProductInput {
    shopmesh_openapi::catalog::ProductInput {
        sku: shopmesh_testkit::unique("SKU"),
        name: name.to_owned(),
        description: None,
        price: shopmesh_openapi::catalog::Money {
            amount_minor,
            currency: "EUR".into(),
        },
        active: Some(true),
        image_url: None,
    }
}

/// A status change of `order` (placed by `user`) as the orders service publishes it, with a
/// long cause, for feeding subscriptions directly.
pub fn status_change(order: i64, user: i64) -> shopmesh_events::OrderStatusChangedV1 {
    shopmesh_events::OrderStatusChangedV1 {
        event_id: uuid::Uuid::new_v4(),
        order_id: order,
        user_id: user,
        from: "pending".into(),
        to: "cancelled".into(),
        cause: "x".repeat(200),
        version: 2,
        changed_at: chrono::Utc::now(),
        user_sequence: None,
        shop_sequence: None,
    }
}

/// A running platform.
pub struct Platform {
    /// The stack it was started from (to start more of it, e.g. another consumer process).
    pub stack: Stack,
    /// Gateway base URL.
    pub gateway_url: String,
    /// Users base URL.
    pub users_url: String,
    /// Orders base URL.
    pub orders_url: String,
    /// Notifications gRPC URL.
    pub grpc_url: String,
    /// Notifications HTTP (health, metrics) URL.
    pub notifications_http_url: String,
    /// Catalog base URL.
    pub catalog_url: String,
    /// Payments base URL.
    pub payments_url: String,
    /// The gateway's shared state (cache, limiter, counters).
    pub gateway: Gateway,
    /// Orders store (to count rows).
    pub orders_store: OrderStore,
    /// Notifications store (to count documents).
    pub notifications_store: MongoNotificationStore,
    /// RabbitMQ names this platform uses.
    pub topology: OrderCreatedTopology,
    /// MongoDB database name of the notifications.
    pub mongo_db: String,
    /// Consumer counters.
    pub consumer: Arc<ConsumerStatus>,
    /// Relay counters.
    pub relay: Arc<RelayStatus>,
    running: Vec<Running>,
}

/// Consumer settings for tests: quick retries and reconnects.
pub fn test_consumer_config() -> ConsumerConfig {
    ConsumerConfig {
        prefetch: 32,
        max_retries: MAX_RETRIES,
        retry_base: Duration::from_millis(200),
        reconnect_min: Duration::from_millis(50),
        reconnect_max: Duration::from_millis(500),
    }
}

impl Platform {
    /// A token for `user_id` with `role`, signed with the platform's key (the seeded admin is
    /// user 4).
    pub fn token(
        &self,
        user_id: i64,
        role: shopmesh_identity::Role,
    ) -> shopmesh_identity::AccessToken {
        shopmesh_testkit::token(&self.stack, user_id, role)
    }

    /// Starts everything; returns once every service serves.
    pub async fn start(options: PlatformOptions) -> anyhow::Result<Self> {
        Self::start_stack(test_stack(), options).await
    }

    /// Starts everything from `stack` (with settings of its own), with the test settings of
    /// `options` on top.
    pub async fn start_stack(stack: Stack, options: PlatformOptions) -> anyhow::Result<Self> {
        let stack = stack
            .set("REDIS_URL", &options.redis_url)
            .set_for(Service::Orders, "RABBITMQ_URL", &options.relay_amqp_url)
            .set_for(Service::Orders, "OUTBOX_POLL_MS", "200")
            .set_for(Service::Orders, "OUTBOX_BACKOFF_MIN_MS", "50")
            .set_for(Service::Orders, "OUTBOX_BACKOFF_MAX_MS", "500")
            .set_for(Service::Orders, "CHECKOUT_POLL_MS", "100")
            .set_for(Service::Orders, "CHECKOUT_RETRY_MIN_MS", "50")
            .set_for(Service::Orders, "CHECKOUT_RETRY_MAX_MS", "500")
            .set_for(
                Service::Notifications,
                "CONSUMER_ENABLED",
                options.run_consumer.to_string(),
            )
            .set_for(
                Service::Gateway,
                "RATE_LIMIT_MAX",
                options.rate_limit.to_string(),
            )
            .set_for(Service::Gateway, "TRUST_FORWARDED_FOR", "true")
            .set_for(Service::Gateway, "TRUSTED_PROXIES", "127.0.0.1/32");
        // Logged-in callers are not what these tests limit (the gateway's own tests cover the
        // tiers), unless the stack given says otherwise.
        let gateway_env = stack.env_for(Service::Gateway)?;
        let mut stack = stack;
        for tier in ["RATE_LIMIT_MAX_USER", "RATE_LIMIT_MAX_ADMIN"] {
            if !gateway_env.contains_key(tier) {
                stack = stack.set_for(Service::Gateway, tier, "1000000");
            }
        }
        let topology = topology(&stack.names);
        // Declare the consumer's topology now, so events published before it connects are kept.
        let conn = shopmesh_common::amqp::connect(&amqp_url(), "e2e-setup", Duration::from_secs(5))
            .await?;
        NotificationConsumer::declare(
            &conn.create_channel().await?,
            &topology,
            &test_consumer_config(),
        )
        .await?;
        let _ = conn.close(200, "declared").await;

        let env = |s: Service| stack.env_for(s);
        let users =
            build_service::<shopmesh_users::Application>(&env(Service::Users)?, |_| {}).await;
        let orders =
            build_service::<shopmesh_orders::Application>(&env(Service::Orders)?, |_| {}).await;
        let (orders_store, relay) = (
            orders.store().clone(),
            orders.relay_status().expect("the relay runs"),
        );
        let notifications = build_service::<shopmesh_notifications::Application>(
            &env(Service::Notifications)?,
            |c| {
                c.consumer = test_consumer_config();
                c.health_interval = Duration::from_millis(500);
            },
        )
        .await;
        let (notifications_store, consumer) = (
            notifications.store().clone(),
            notifications.consumer_status(),
        );
        let catalog =
            build_service::<shopmesh_catalog::Application>(&env(Service::Catalog)?, |_| {}).await;
        let payments =
            build_service::<shopmesh_payments::Application>(&env(Service::Payments)?, |_| {}).await;
        let gateway =
            build_service::<shopmesh_gateway::Application>(&env(Service::Gateway)?, |_| {}).await;
        let gateway_state = gateway.gateway().clone();
        let running = vec![
            Running::start(users).await,
            Running::start(orders).await,
            Running::start(notifications).await,
            Running::start(catalog).await,
            Running::start(payments).await,
            Running::start(gateway).await,
        ];
        Ok(Self {
            gateway_url: stack.url(Service::Gateway),
            users_url: stack.url(Service::Users),
            orders_url: stack.url(Service::Orders),
            grpc_url: stack.grpc_url(),
            notifications_http_url: stack.url(Service::Notifications),
            catalog_url: stack.url(Service::Catalog),
            payments_url: stack.url(Service::Payments),
            gateway: gateway_state,
            orders_store,
            notifications_store,
            topology,
            mongo_db: stack.names.mongo_db.clone(),
            consumer,
            relay,
            running,
            stack,
        })
    }

    /// A product at `amount_minor` EUR with `units` on hand, put on sale by the admin; its id.
    pub async fn put_on_sale(&self, amount_minor: i64, units: i32) -> anyhow::Result<i64> {
        self.sell("Mug", amount_minor, units).await
    }

    /// Puts `name` on sale at `amount_minor` EUR with `units` in stock; returns its id.
    pub async fn sell(&self, name: &str, amount_minor: i64, units: i32) -> anyhow::Result<i64> {
        use shopmesh_openapi::catalog::{CatalogClient, StockAdjustment};
        let catalog = CatalogClient::new(self.catalog_url.clone());
        let admin = self.token(4, shopmesh_identity::Role::Admin);
        let input = product_input(name, amount_minor);
        let id = catalog.create_product(&admin, None, &input).await?.id;
        let stock = StockAdjustment {
            delta: units,
            reason: "delivery".into(),
        };
        catalog.adjust_stock(&admin, id, None, &stock).await?;
        Ok(id)
    }

    /// A one-line order (no payment) that `user` placed themselves; its id.
    pub async fn place_order(&self, user: i64) -> anyhow::Result<i64> {
        use shopmesh_openapi::orders::{CreateOrderRequest, OrdersClient};
        let orders = OrdersClient::new(self.orders_url.clone());
        let body = CreateOrderRequest {
            user_id: user,
            product_id: 1,
            quantity: 1,
            payment_token: None,
        };
        let token = self.token(user, shopmesh_identity::Role::User);
        Ok(orders.create_order(&token, None, &body).await?.id)
    }

    /// Leaves `event` in the notifications' dead-letter queue, as the consumer does with one that
    /// failed for `reason` after its retries.
    pub async fn dead_letter(&self, event: &OrderCreatedV1, reason: &str) -> anyhow::Result<()> {
        use lapin::types::{AMQPValue, FieldTable};
        let conn =
            shopmesh_common::amqp::connect(&amqp_url(), "e2e-dlq", Duration::from_secs(5)).await?;
        let channel = conn.create_channel().await?;
        let mut headers = FieldTable::default();
        headers.insert(
            shopmesh_notifications::events::REASON_HEADER.into(),
            AMQPValue::LongString(reason.into()),
        );
        let properties = lapin::BasicProperties::default().with_headers(headers);
        channel
            .basic_publish(
                "",
                &self.topology.dead_letter_queue(),
                lapin::options::BasicPublishOptions::default(),
                &event.to_json(),
                properties,
            )
            .await?
            .await?;
        conn.close(200, "done").await?;
        Ok(())
    }

    /// Number of stored notifications.
    pub async fn notification_count(&self) -> u64 {
        self.notifications_store.count().await.unwrap_or(0)
    }

    /// Stops everything (the gateway first) and removes its databases, queues and exchange.
    pub async fn stop(mut self) {
        while let Some(service) = self.running.pop() {
            service.stop().await;
        }
        remove_names(&self.stack.names, MAX_RETRIES).await;
    }
}
