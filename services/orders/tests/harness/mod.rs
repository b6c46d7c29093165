//! The orders service against real MariaDB and RabbitMQ, the fixture every orders test file
//! shares: each test has its own database and its own exchange and queue, so tests run in
//! parallel.
#![allow(dead_code, unused_imports)]

pub use std::collections::BTreeSet;
pub use std::time::Duration;

pub use lapin::options::{BasicAckOptions, BasicGetOptions, QueueDeclareOptions};
pub use lapin::types::FieldTable;
pub use shopmesh_common::shutdown::Shutdown;
pub use shopmesh_events::{Event as _, OrderCreatedTopology, OrderCreatedV1};
pub use shopmesh_identity::{AccessToken, Role};
pub use shopmesh_openapi::orders::{CreateOrderRequest, OrderStatus, OrdersClient};
pub use shopmesh_openapi::runtime::ClientError;
pub use shopmesh_orders::Application;
pub use shopmesh_orders::config::RelayConfig;
pub use shopmesh_orders::events::OutboxRelay;
pub use shopmesh_orders::store::OrderStore;
pub use shopmesh_testkit::{
    Running, Service, Stack, TcpProxy, TestServer, amqp_url, authed_http, build_service,
    eventually, remove_names, remove_topology, reroute, serve_jwks, test_stack, token, unique,
};

/// The orders API over a database of its own; the relay is off (tests run their own). Tokens
/// are verified against the stack's key, served by the test.
pub struct Harness {
    pub stack: Stack,
    pub store: OrderStore,
    pub server: Running,
    pub client: OrdersClient,
    pub _jwks: TestServer,
    /// An admin's token: reads anything.
    pub admin: AccessToken,
    /// An HTTP client sending the admin's token.
    pub http: reqwest::Client,
}

/// `stack` with orders verifying tokens against `jwks`.
pub fn verifying_with(stack: Stack, jwks: &TestServer) -> Stack {
    stack.set_for(
        Service::Orders,
        "AUTH_JWKS_URL",
        format!("{}/.well-known/jwks.json", jwks.base_url),
    )
}

impl Harness {
    pub async fn start() -> Self {
        Self::start_on(test_stack()).await
    }

    /// Starts the service from `stack` (e.g. with `DATABASE_URL` through a proxy).
    pub async fn start_on(stack: Stack) -> Self {
        Self::start_pooled(stack, 5).await
    }

    /// The same with `pool` database connections.
    pub async fn start_pooled(stack: Stack, pool: u32) -> Self {
        let jwks = serve_jwks(&stack).await;
        let stack = verifying_with(stack, &jwks)
            .set_for(Service::Orders, "OUTBOX_RELAY_ENABLED", "false")
            .set_for(Service::Orders, "DB_POOL_SIZE", pool.to_string())
            .set_for(Service::Orders, "DB_ACQUIRE_TIMEOUT_MS", "700");
        let app =
            build_service::<Application>(&stack.env_for(Service::Orders).unwrap(), |_| {}).await;
        let store = app.store().clone();
        let server = Running::start(app).await;
        let client = OrdersClient::new(server.base_url.clone());
        let admin = token(&stack, 1_000_000, Role::Admin);
        let http = authed_http(&admin);
        Self {
            stack,
            store,
            server,
            client,
            _jwks: jwks,
            admin,
            http,
        }
    }

    /// A shopper's token.
    pub fn user(&self, user_id: i64) -> AccessToken {
        token(&self.stack, user_id, Role::User)
    }

    pub async fn stop(self) {
        self.server.stop().await;
        self.store.pool().close().await;
        remove_names(&self.stack.names, 0).await;
    }

    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(self.store.pool())
            .await
            .unwrap()
    }

    pub async fn create(
        &self,
        user_id: i64,
        product_id: i64,
        quantity: i32,
    ) -> shopmesh_openapi::orders::Order {
        self.client
            .create_order(
                &self.user(user_id),
                None,
                &CreateOrderRequest {
                    user_id,
                    product_id,
                    quantity,
                    payment_token: None,
                },
            )
            .await
            .unwrap_or_else(|e| panic!("expected 201, got {e:?}"))
    }
}

pub fn test_topology() -> OrderCreatedTopology {
    OrderCreatedTopology {
        exchange: unique("test.orders"),
        queue: unique("test.order.created"),
        ..OrderCreatedTopology::default()
    }
}

/// A topology of the test's own on the real broker, declared, with a channel to read it.
pub struct TestBroker {
    pub topology: OrderCreatedTopology,
    pub conn: lapin::Connection,
    pub ch: lapin::Channel,
}

impl TestBroker {
    pub async fn declare() -> Self {
        let topology = test_topology();
        let (conn, ch) = amqp_channel().await;
        shopmesh_common::amqp::declare_order_created(&ch, &topology)
            .await
            .unwrap();
        Self { topology, conn, ch }
    }

    /// Removes the topology and closes the connection.
    pub async fn remove(self) {
        remove_topology(&self.topology, 0).await;
        let _ = self.conn.close(200, "done").await;
    }
}

pub fn fast_relay() -> RelayConfig {
    RelayConfig {
        batch_size: 50,
        poll_interval: Duration::from_millis(200),
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(300),
    }
}

pub async fn amqp_channel() -> (lapin::Connection, lapin::Channel) {
    let conn = shopmesh_common::amqp::connect(&amqp_url(), "orders-test", Duration::from_secs(5))
        .await
        .expect("RabbitMQ reachable");
    let ch = conn.create_channel().await.unwrap();
    (conn, ch)
}

/// Takes messages from `queue` until `expected` arrived (or `within` passed), acking each.
pub async fn drain(
    ch: &lapin::Channel,
    queue: &str,
    expected: usize,
    within: Duration,
) -> Vec<lapin::message::BasicGetMessage> {
    let mut got = Vec::new();
    let start = tokio::time::Instant::now();
    while got.len() < expected && start.elapsed() < within {
        match ch
            .basic_get(queue, BasicGetOptions::default())
            .await
            .unwrap()
        {
            Some(msg) => {
                msg.delivery
                    .acker
                    .ack(BasicAckOptions::default())
                    .await
                    .unwrap();
                got.push(msg);
            }
            None => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    got
}

pub async fn queue_depth(ch: &lapin::Channel, queue: &str) -> u32 {
    ch.queue_declare(
        queue,
        QueueDeclareOptions {
            passive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap()
    .message_count()
}

/// Checks every message is a schema-valid event with the right AMQP properties; returns them.
pub fn events(messages: &[lapin::message::BasicGetMessage]) -> Vec<OrderCreatedV1> {
    messages
        .iter()
        .map(|m| {
            let event = OrderCreatedV1::from_json(&m.delivery.data)
                .expect("payload matches order-created.v1.json");
            let props = &m.delivery.properties;
            assert_eq!(
                props.message_id().as_ref().map(|s| s.as_str().to_owned()),
                Some(event.event_id.to_string())
            );
            assert_eq!(
                props.content_type().as_ref().map(|s| s.as_str()),
                Some("application/json")
            );
            assert_eq!(*props.delivery_mode(), Some(2), "persistent");
            assert_eq!(m.delivery.routing_key.as_str(), "order.created");
            event
        })
        .collect()
}

pub fn problem_status<T: std::fmt::Debug>(result: Result<T, ClientError>) -> u16 {
    match result {
        Err(ClientError::Problem(p)) => p.status(),
        other => panic!("expected a problem, got {other:?}"),
    }
}
