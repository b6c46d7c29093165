//! The whole platform in one process: users, orders (with its outbox relay), notifications
//! (consumer, gRPC and HTTP) and the gateway, each on an ephemeral port, against the real
//! MariaDB, Redis, RabbitMQ and MongoDB endpoints of the test environment, with names of its
//! own (databases, exchange, queues, cache prefixes) so several platforms can run at once.

use std::sync::Arc;
use std::time::Duration;

use shopmesh_common::cache::RedisCache;
use shopmesh_common::shutdown::Shutdown;
use shopmesh_events::OrderCreatedTopology;
use shopmesh_gateway::Gateway;
use shopmesh_gateway::config::{GatewayConfig, GraphqlConfig, RateLimitConfig};
use shopmesh_notifications::events::{ConsumerConfig, ConsumerStatus, NotificationConsumer};
use shopmesh_notifications::store::{MongoNotificationStore, NotificationStore};
use shopmesh_orders::config::RelayConfig;
use shopmesh_orders::events::{OutboxRelay, RelayStatus};
use shopmesh_orders::store::OrderStore;
use shopmesh_testkit::{TestDatabase, TestServer, amqp_url, mongo_url, redis_url, unique};
use shopmesh_users::store::UserStore;

pub mod processes;

/// How to start a [`Platform`].
#[derive(Debug, Clone)]
pub struct PlatformOptions {
    /// Gateway requests per client per minute.
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

/// A running platform.
pub struct Platform {
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
    shutdown: Shutdown,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    servers: Vec<TestServer>,
    databases: Vec<TestDatabase>,
}

/// Consumer settings for tests: quick retries.
pub fn test_consumer_config() -> ConsumerConfig {
    ConsumerConfig {
        prefetch: 32,
        max_retries: 3,
        retry_base: Duration::from_millis(200),
        reconnect_min: Duration::from_millis(50),
        reconnect_max: Duration::from_millis(500),
    }
}

impl Platform {
    /// Starts everything; returns once every server listens.
    pub async fn start(options: PlatformOptions) -> anyhow::Result<Self> {
        let shutdown = Shutdown::new();
        let prefix = format!("{}:", unique("e2e"));
        let topology = OrderCreatedTopology {
            exchange: unique("e2e.orders"),
            queue: unique("e2e.order.created"),
        };

        let users_db = TestDatabase::create().await;
        let cache = RedisCache::new(&options.redis_url, Duration::from_millis(250))?;
        let users_store = UserStore::connect_lazy(
            &users_db.url,
            10,
            Duration::from_secs(2),
            cache,
            Duration::from_secs(600),
        )?
        .with_key_prefix(prefix.clone());
        users_store.migrate(&users_db.url).await?;
        let users = TestServer::start(shopmesh_users::app(users_store)).await;

        let orders_db = TestDatabase::create().await;
        let orders_store = OrderStore::connect_lazy(&orders_db.url, 10, Duration::from_secs(2))?;
        orders_store.migrate(&orders_db.url).await?;
        let orders = TestServer::start(shopmesh_orders::app(orders_store.clone())).await;
        let relay_config = RelayConfig {
            batch_size: 100,
            poll_interval: Duration::from_millis(200),
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_millis(500),
        };
        let relay = OutboxRelay::new(
            orders_store.clone(),
            options.relay_amqp_url.clone(),
            topology.clone(),
            relay_config,
        );
        let relay_status = relay.status();
        let mut tasks = vec![tokio::spawn(relay.run(shutdown.clone()))];

        let mongo_db = unique("smt_e2e");
        let notifications_store =
            MongoNotificationStore::connect(&mongo_url(), &mongo_db, Duration::from_secs(2))
                .await?;
        notifications_store.ensure_indexes().await?;
        let store: Arc<dyn NotificationStore> = Arc::new(notifications_store.clone());
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
        let consumer = NotificationConsumer::new(
            store.clone(),
            amqp_url(),
            topology.clone(),
            test_consumer_config(),
        );
        let consumer_status = consumer.status();
        if options.run_consumer {
            tasks.push(tokio::spawn(consumer.run(shutdown.clone())));
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let grpc_url = format!("http://{}", listener.local_addr()?);
        let (st, cs, sh) = (store.clone(), consumer_status.clone(), shutdown.clone());
        tasks.push(tokio::spawn(async move {
            if let Err(e) =
                shopmesh_notifications::serve_grpc(listener, st, cs, Duration::from_millis(500), sh)
                    .await
            {
                eprintln!("gRPC server failed: {e}");
            }
        }));
        let notifications_http = TestServer::start(shopmesh_notifications::http_app(
            store,
            consumer_status.clone(),
        ))
        .await;

        let gateway = Gateway::new(GatewayConfig {
            port: 0,
            redis_url: options.redis_url.clone(),
            order_service_url: orders.base_url.clone(),
            user_service_url: users.base_url.clone(),
            notification_service_url: grpc_url.clone(),
            downstream_timeout: Duration::from_secs(2),
            redis_timeout: Duration::from_millis(250),
            order_cache_ttl: Duration::from_secs(300),
            user_cache_ttl: Duration::from_secs(30),
            cache_prefix: prefix,
            rate_limit: RateLimitConfig {
                max_requests: options.rate_limit,
                window: Duration::from_secs(60),
                fail_open: true,
                trust_forwarded_for: true,
            },
            graphql: GraphqlConfig {
                max_depth: 10,
                max_complexity: 250,
                introspection: true,
            },
        })?;
        let gateway_server = TestServer::start(gateway.app()).await;

        Ok(Self {
            gateway_url: gateway_server.base_url.clone(),
            users_url: users.base_url.clone(),
            orders_url: orders.base_url.clone(),
            grpc_url,
            notifications_http_url: notifications_http.base_url.clone(),
            gateway,
            orders_store,
            notifications_store,
            topology,
            mongo_db,
            consumer: consumer_status,
            relay: relay_status,
            shutdown,
            tasks,
            servers: vec![gateway_server, users, orders, notifications_http],
            databases: vec![users_db, orders_db],
        })
    }

    /// Number of stored notifications.
    pub async fn notification_count(&self) -> u64 {
        self.notifications_store.count().await.unwrap_or(0)
    }

    /// Stops everything and removes its databases, queues and exchange.
    pub async fn stop(self) {
        self.shutdown.trigger();
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
        for s in self.servers {
            s.stop().await;
        }
        remove_topology(&self.topology, test_consumer_config().max_retries).await;
        let _ = self.notifications_store.drop_database().await;
        for db in self.databases {
            db.drop_db().await;
        }
    }
}

/// Deletes a test's `order.created` exchange, queue, retry queues (`1..=max_retries`) and DLQ.
pub async fn remove_topology(topology: &OrderCreatedTopology, max_retries: u32) {
    let Ok(conn) =
        shopmesh_common::amqp::connect(&amqp_url(), "e2e-cleanup", Duration::from_secs(5)).await
    else {
        return;
    };
    if let Ok(ch) = conn.create_channel().await {
        let mut queues = vec![topology.queue.clone(), topology.dead_letter_queue()];
        queues.extend((1..=max_retries).map(|n| topology.retry_queue(n)));
        for q in queues {
            let _ = ch.queue_delete(&q, Default::default()).await;
        }
        let _ = ch
            .exchange_delete(&topology.exchange, Default::default())
            .await;
    }
    let _ = conn.close(200, "cleanup").await;
}
