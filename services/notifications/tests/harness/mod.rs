//! Notifications against real RabbitMQ and a MongoDB wire-protocol server, the fixture every
//! notifications test file shares: each test has its own queues and its own database.
#![allow(dead_code, unused_imports)]

pub use std::collections::BTreeSet;
pub use std::sync::Arc;
pub use std::sync::atomic::{AtomicU32, Ordering};
pub use std::time::Duration;

pub use chrono::Utc;
pub use lapin::options::{BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions};
pub use lapin::types::AMQPValue;
pub use lapin::{BasicProperties, Channel};
pub use mongodb::bson::doc;
pub use shopmesh_common::shutdown::Shutdown;
pub use shopmesh_events::{
    Event as _, ORDER_CREATED_ROUTING_KEY, OrderCreatedTopology, OrderCreatedV1, QueueType,
};
pub use shopmesh_identity::{AccessToken, Role};
pub use shopmesh_notifications::Application;
pub use shopmesh_notifications::domain::{NewNotification, PageToken};
pub use shopmesh_notifications::error::NotificationsError;
pub use shopmesh_notifications::events::{
    ConsumerConfig, ConsumerStatus, NotificationConsumer, REASON_HEADER,
};
pub use shopmesh_notifications::redrive::redrive;
pub use shopmesh_notifications::store::{
    InsertOutcome, MongoNotificationStore, NotificationStore, ORDER_INDEX, StoredNotification,
    USER_INDEX,
};
pub use shopmesh_proto::shopmesh::notification::v1 as pb;
pub use shopmesh_proto::shopmesh::notification::v1::notification_service_client::NotificationServiceClient;
pub use shopmesh_testkit::{
    AuthedChannel, GrpcBearer, Names, Running, Service, Stack, TcpProxy, TestServer, amqp_url,
    build_service, eventually, mongo_url, remove_names, reroute, serve_jwks, test_stack, token,
    topology,
};
pub use tonic::Code;
pub use tonic::transport::Channel as GrpcChannel;
pub use uuid::Uuid;

/// Wraps a real store and fails the first `failures` inserts as "unavailable".
pub struct FlakyStore {
    pub inner: Arc<dyn NotificationStore>,
    pub failures: AtomicU32,
}

#[async_trait::async_trait]
impl NotificationStore for FlakyStore {
    async fn insert_if_absent(
        &self,
        n: &NewNotification,
    ) -> Result<InsertOutcome, NotificationsError> {
        if self.failures.load(Ordering::SeqCst) > 0 {
            self.failures.fetch_sub(1, Ordering::SeqCst);
            return Err(NotificationsError::StoreUnavailable(
                "injected failure".into(),
            ));
        }
        self.inner.insert_if_absent(n).await
    }
    async fn by_order(
        &self,
        reader: i64,
        order_id: i64,
    ) -> Result<Vec<StoredNotification>, NotificationsError> {
        self.inner.by_order(reader, order_id).await
    }
    async fn by_orders(
        &self,
        reader: i64,
        order_ids: &[i64],
    ) -> Result<Vec<StoredNotification>, NotificationsError> {
        self.inner.by_orders(reader, order_ids).await
    }
    async fn by_user(
        &self,
        reader: i64,
        user_id: i64,
        limit: i64,
        after: Option<PageToken>,
    ) -> Result<(Vec<StoredNotification>, Option<PageToken>), NotificationsError> {
        self.inner.by_user(reader, user_id, limit, after).await
    }
    async fn ping(&self) -> Result<(), NotificationsError> {
        self.inner.ping().await
    }
}

pub struct Harness {
    pub mongo: MongoNotificationStore,
    pub topology: OrderCreatedTopology,
    pub status: Arc<ConsumerStatus>,
    pub grpc_url: String,
    /// The service's HTTP listener (health, metrics); absent for a component harness.
    pub http_url: Option<String>,
    pub names: Names,
    pub stack: Stack,
    pub _jwks: TestServer,
    /// The seeded admin's token: reads every notification.
    pub admin: AccessToken,
    pub run: Run,
    pub publisher: (lapin::Connection, Channel),
}

/// How the harness runs the service.
pub enum Run {
    /// The `Application`, from the stack's configuration.
    Application(Running),
    /// The consumer and gRPC server over a store with injected failures: a component test of
    /// the consumer's retry ladder, where the fault is inside the store, not configuration.
    Components(Shutdown, Vec<tokio::task::JoinHandle<()>>),
}

pub struct Options {
    pub failures: u32,
    pub grpc_max_connection_age: Duration,
    pub max_retries: u32,
    pub mongo_url: Option<String>,
    pub amqp_url: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            failures: 0,
            grpc_max_connection_age: Duration::from_secs(300),
            max_retries: 3,
            mongo_url: None,
            amqp_url: None,
        }
    }
}

impl Harness {
    /// The service's Prometheus metrics, as scraped.
    pub async fn metrics(&self) -> String {
        let url = self.http_url.clone().expect("the Application serves HTTP");
        reqwest::get(format!("{url}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// `WatchNotifications` streams open, from the service's metrics (a gauge of the process).
    pub async fn open_streams(&self) -> f64 {
        self.metrics()
            .await
            .lines()
            .find_map(|l| l.strip_prefix("notifications_watch_streams "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    }

    pub async fn start(opts: Options) -> Self {
        let stack = test_stack();
        // Tokens are verified against the stack's key, served here.
        let jwks = serve_jwks(&stack).await;
        let mut stack = stack
            .set_for(Service::Notifications, "MONGO_TIMEOUT_MS", "1500")
            .set_for(
                Service::Notifications,
                "AUTH_JWKS_URL",
                format!("{}/.well-known/jwks.json", jwks.base_url),
            );
        if let Some(url) = &opts.mongo_url {
            stack = stack.set_for(Service::Notifications, "MONGO_URL", url);
        }
        if let Some(url) = &opts.amqp_url {
            stack = stack.set_for(Service::Notifications, "RABBITMQ_URL", url);
        }
        let consumer_config = ConsumerConfig {
            prefetch: 8,
            max_retries: opts.max_retries,
            retry_base: Duration::from_millis(100),
            reconnect_min: Duration::from_millis(50),
            reconnect_max: Duration::from_millis(300),
        };
        let topology = topology(&stack.names);
        let config = consumer_config.clone();
        let app =
            build_service::<Application>(&stack.env_for(Service::Notifications).unwrap(), |c| {
                c.consumer = config;
                c.health_interval = Duration::from_millis(100);
                c.grpc_max_connection_age = opts.grpc_max_connection_age;
            })
            .await;
        let mongo = app.store().clone();
        let (status, grpc_url, http_url, run) = if opts.failures == 0 {
            let status = app.consumer_status();
            let running = Running::start(app).await;
            let urls = (running.grpc_url(), Some(running.base_url.clone()));
            (status, urls.0, urls.1, Run::Application(running))
        } else {
            mongo
                .ensure_indexes()
                .await
                .expect("MongoDB reachable (cargo xtask test starts a stand-in)");
            let store: Arc<dyn NotificationStore> = Arc::new(FlakyStore {
                inner: Arc::new(mongo.clone()),
                failures: AtomicU32::new(opts.failures),
            });
            let consumer = NotificationConsumer::new(
                store.clone(),
                opts.amqp_url.clone().unwrap_or_else(amqp_url),
                topology.clone(),
                consumer_config.clone(),
            );
            let status = consumer.status();
            let shutdown = Shutdown::new();
            let mut tasks = vec![tokio::spawn(consumer.run(shutdown.clone()))];
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let grpc_url = format!("http://{}", listener.local_addr().unwrap());
            let (st, sh) = (status.clone(), shutdown.clone());
            let dead_letter_url = opts.amqp_url.clone().unwrap_or_else(amqp_url);
            let dead_letter_topology = topology.clone();
            let verifier = shopmesh_common::auth::AuthConfig::from_env(
                &stack.env_for(Service::Notifications).unwrap(),
            )
            .unwrap()
            .verifier();
            tasks.push(tokio::spawn(async move {
                let settings = shopmesh_notifications::GrpcSettings {
                    verifier,
                    health_every: Duration::from_millis(100),
                    max_connection_age: Duration::from_secs(300),
                    watch_poll: Duration::from_millis(100),
                    dead_letters: shopmesh_notifications::redrive::DeadLetters {
                        amqp_url: dead_letter_url,
                        topology: dead_letter_topology,
                    },
                };
                shopmesh_notifications::serve_grpc(listener, store, st, settings, sh)
                    .await
                    .unwrap();
            }));
            (status, grpc_url, None, Run::Components(shutdown, tasks))
        };

        let conn =
            shopmesh_common::amqp::connect(&amqp_url(), "test-publisher", Duration::from_secs(5))
                .await
                .unwrap();
        let ch = conn.create_channel().await.unwrap();
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        NotificationConsumer::declare(&ch, &topology, &consumer_config)
            .await
            .unwrap();
        Self {
            mongo,
            topology,
            status,
            grpc_url,
            http_url,
            admin: token(&stack, 4, Role::Admin),
            names: stack.names.clone(),
            stack,
            _jwks: jwks,
            run,
            publisher: (conn, ch),
        }
    }

    /// A client calling as the admin.
    pub async fn client(&self) -> NotificationServiceClient<AuthedChannel> {
        self.client_as(&self.admin).await
    }

    /// A client calling with `token`.
    pub async fn client_as(&self, token: &AccessToken) -> NotificationServiceClient<AuthedChannel> {
        let channel = eventually("gRPC server up", Duration::from_secs(10), || async {
            GrpcChannel::from_shared(self.grpc_url.clone())
                .ok()?
                .connect()
                .await
                .ok()
        })
        .await;
        NotificationServiceClient::with_interceptor(channel, GrpcBearer(token.clone()))
    }

    /// Puts `payload` straight into the dead-letter queue, as the consumer leaves an event
    /// that failed for `reason` after its retries.
    pub async fn dead_letter(&self, payload: &[u8], reason: &str) {
        let mut headers = lapin::types::FieldTable::default();
        headers.insert(
            shopmesh_notifications::events::REASON_HEADER.into(),
            lapin::types::AMQPValue::LongString(reason.into()),
        );
        headers.insert("x-retry-count".into(), lapin::types::AMQPValue::LongUInt(5));
        self.publisher
            .1
            .basic_publish(
                "",
                &self.topology.dead_letter_queue(),
                lapin::options::BasicPublishOptions::default(),
                payload,
                lapin::BasicProperties::default().with_headers(headers),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }

    pub async fn publish_raw(&self, payload: &[u8], message_id: &str) {
        let props = BasicProperties::default()
            .with_message_id(message_id.into())
            .with_content_type("application/json".into())
            .with_delivery_mode(2);
        let confirm = self
            .publisher
            .1
            .basic_publish(
                &self.topology.exchange,
                ORDER_CREATED_ROUTING_KEY,
                BasicPublishOptions::default(),
                payload,
                props,
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(confirm.is_ack());
    }

    pub async fn publish(&self, event: &OrderCreatedV1) {
        self.publish_raw(&event.to_json(), &event.event_id.to_string())
            .await;
    }

    pub async fn stop(self) {
        match self.run {
            Run::Application(running) => running.stop().await,
            Run::Components(shutdown, tasks) => {
                shutdown.trigger();
                for t in tasks {
                    let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
                }
            }
        }
        let _ = self.publisher.0.close(200, "done").await;
        remove_names(&self.names, 5).await;
    }
}

pub fn event(order_id: i64, user_id: i64) -> OrderCreatedV1 {
    OrderCreatedV1 {
        event_id: Uuid::now_v7(),
        order_id,
        user_id,
        product_id: 10 + order_id,
        quantity: 2,
        created_at: Utc::now(),
    }
}

pub async fn for_order(
    client: &mut NotificationServiceClient<AuthedChannel>,
    order_id: i64,
) -> Vec<pb::Notification> {
    client
        .get_notifications(pb::GetNotificationsRequest { order_id })
        .await
        .unwrap()
        .into_inner()
        .notifications
}

pub async fn all_for_user(
    client: &mut NotificationServiceClient<AuthedChannel>,
    user_id: i64,
    page_size: i32,
) -> Vec<pb::Notification> {
    let mut all = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_user_notifications(pb::ListUserNotificationsRequest {
                user_id,
                page_size,
                page_token: token.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.notifications.len() <= page_size as usize);
        all.extend(page.notifications);
        if page.next_page_token.is_empty() {
            return all;
        }
        token = page.next_page_token;
    }
}

/// Messages in the dead-letter queue right now (peeked by a passive declare).
pub async fn dead_lettered(h: &Harness) -> u32 {
    h.publisher
        .1
        .queue_declare(
            &h.topology.dead_letter_queue(),
            lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await
        .unwrap()
        .message_count()
}

/// Every queue of `topology` (main, retry `1..=retries`, DLQ) with the arguments it is declared
/// with.
pub fn declared_queues(
    topology: &OrderCreatedTopology,
    retries: u32,
    retry_base_ms: i64,
) -> Vec<(String, lapin::types::FieldTable)> {
    let plain = shopmesh_common::amqp::queue_arguments(topology.queue_type);
    let mut queues = vec![
        (topology.queue.clone(), plain.clone()),
        (topology.dead_letter_queue(), plain),
    ];
    queues.extend((1..=retries).map(|n| {
        let ttl = retry_base_ms << (n - 1);
        let args =
            shopmesh_common::amqp::delay_queue_arguments(topology.queue_type, ttl, &topology.queue);
        (topology.retry_queue(n), args)
    }));
    queues
}

/// Whether `queue` is a `kind` queue: redeclared with `args` (its declared arguments) but of
/// type `kind`, the broker accepts it only when that is its type, and otherwise refuses with
/// PRECONDITION_FAILED naming `x-queue-type` (which closes the channel, so each probe opens its
/// own).
pub async fn is_queue_of_type(
    conn: &lapin::Connection,
    queue: &str,
    args: &lapin::types::FieldTable,
    kind: QueueType,
) -> bool {
    let mut args = args.clone();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(kind.as_str().into()),
    );
    let ch = conn.create_channel().await.unwrap();
    let options = lapin::options::QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    match ch.queue_declare(queue, options, args).await {
        Ok(_) => true,
        Err(e) => {
            let text = e.to_string();
            assert!(text.contains("x-queue-type"), "unexpected refusal: {text}");
            false
        }
    }
}
