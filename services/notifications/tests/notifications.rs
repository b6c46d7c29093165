//! Notifications against real RabbitMQ and a MongoDB wire-protocol server: each test has its
//! own queues and its own database.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use chrono::Utc;
use lapin::options::{BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::AMQPValue;
use lapin::{BasicProperties, Channel};
use mongodb::bson::doc;
use shopmesh_common::shutdown::Shutdown;
use shopmesh_events::{ORDER_CREATED_ROUTING_KEY, OrderCreatedTopology, OrderCreatedV1, QueueType};
use shopmesh_identity::{AccessToken, Role};
use shopmesh_notifications::Application;
use shopmesh_notifications::domain::{NewNotification, PageToken};
use shopmesh_notifications::error::NotificationsError;
use shopmesh_notifications::events::{
    ConsumerConfig, ConsumerStatus, NotificationConsumer, REASON_HEADER,
};
use shopmesh_notifications::redrive::redrive;
use shopmesh_notifications::store::{
    InsertOutcome, MongoNotificationStore, NotificationStore, ORDER_INDEX, StoredNotification,
    USER_INDEX,
};
use shopmesh_proto::shopmesh::notification::v1 as pb;
use shopmesh_proto::shopmesh::notification::v1::notification_service_client::NotificationServiceClient;
use shopmesh_testkit::{
    AuthedChannel, GrpcBearer, Names, Running, Service, Stack, TcpProxy, TestServer, amqp_url,
    build_service, eventually, mongo_url, remove_names, reroute, serve_jwks, test_stack, token,
    topology,
};
use tonic::Code;
use tonic::transport::Channel as GrpcChannel;
use uuid::Uuid;

/// Wraps a real store and fails the first `failures` inserts as "unavailable".
struct FlakyStore {
    inner: Arc<dyn NotificationStore>,
    failures: AtomicU32,
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

struct Harness {
    mongo: MongoNotificationStore,
    topology: OrderCreatedTopology,
    status: Arc<ConsumerStatus>,
    grpc_url: String,
    /// The service's HTTP listener (health, metrics); absent for a component harness.
    http_url: Option<String>,
    names: Names,
    stack: Stack,
    _jwks: TestServer,
    /// The seeded admin's token: reads every notification.
    admin: AccessToken,
    run: Run,
    publisher: (lapin::Connection, Channel),
}

/// How the harness runs the service.
enum Run {
    /// The `Application`, from the stack's configuration.
    Application(Running),
    /// The consumer and gRPC server over a store with injected failures: a component test of
    /// the consumer's retry ladder, where the fault is inside the store, not configuration.
    Components(Shutdown, Vec<tokio::task::JoinHandle<()>>),
}

struct Options {
    failures: u32,
    grpc_max_connection_age: Duration,
    max_retries: u32,
    mongo_url: Option<String>,
    amqp_url: Option<String>,
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
    async fn start(opts: Options) -> Self {
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
    async fn client(&self) -> NotificationServiceClient<AuthedChannel> {
        self.client_as(&self.admin).await
    }

    /// A client calling with `token`.
    async fn client_as(&self, token: &AccessToken) -> NotificationServiceClient<AuthedChannel> {
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

    async fn publish_raw(&self, payload: &[u8], message_id: &str) {
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

    async fn publish(&self, event: &OrderCreatedV1) {
        self.publish_raw(&event.to_json(), &event.event_id.to_string())
            .await;
    }

    async fn stop(self) {
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

fn event(order_id: i64, user_id: i64) -> OrderCreatedV1 {
    OrderCreatedV1 {
        event_id: Uuid::now_v7(),
        order_id,
        user_id,
        product_id: 10 + order_id,
        quantity: 2,
        created_at: Utc::now(),
    }
}

async fn for_order(
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

async fn all_for_user(
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

#[tokio::test]
async fn published_events_become_notifications_readable_over_grpc() {
    let h = Harness::start(Options::default()).await;
    let events: Vec<_> = (1..=12).map(|i| event(i, 1 + i % 3)).collect();
    for e in &events {
        h.publish(e).await;
    }
    let mut client = h.client().await;
    eventually("12 notifications", Duration::from_secs(20), || async {
        (h.status.processed.load(Ordering::SeqCst) == 12).then_some(())
    })
    .await;

    for e in &events {
        let found = for_order(&mut client, e.order_id).await;
        assert_eq!(found.len(), 1, "order {}", e.order_id);
        let n = &found[0];
        assert_eq!(
            (n.order_id, n.user_id, n.event_id.as_str()),
            (e.order_id, e.user_id, e.event_id.to_string().as_str())
        );
        assert_eq!(n.status, pb::NotificationStatus::Sent as i32);
        assert!(n.sent_at.is_some());
        assert!(n.message.contains(&format!("#{}", e.order_id)));
    }
    // Each user's notifications, paged 2 at a time, newest first, none twice.
    let mut total = 0;
    for user in 1..=3 {
        let pages = all_for_user(&mut client, user, 2).await;
        let expected: BTreeSet<_> = events
            .iter()
            .filter(|e| e.user_id == user)
            .map(|e| e.order_id)
            .collect();
        let got: BTreeSet<_> = pages.iter().map(|n| n.order_id).collect();
        assert_eq!(got, expected);
        assert_eq!(pages.len(), expected.len(), "no duplicates across pages");
        let times: Vec<_> = pages.iter().map(|n| n.sent_at.unwrap().seconds).collect();
        assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");
        total += pages.len();
    }
    assert_eq!(total, 12);
    let http_url = h.http_url.clone().expect("the Application serves HTTP");
    let ready = reqwest::get(format!("{http_url}/health/ready"))
        .await
        .unwrap();
    assert_eq!(ready.status().as_u16(), 200, "MongoDB and RabbitMQ up");
    let metrics = reqwest::get(format!("{http_url}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"notifications_consumed_total{outcome="stored"}"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"grpc_requests_total{service="notifications",method="GetNotifications",code="Ok"}"#
        ),
        "{metrics}"
    );
    let indexes = h.mongo.index_names().await.unwrap();
    for name in [ORDER_INDEX, USER_INDEX, "eventId_unique"] {
        assert!(indexes.iter().any(|i| i == name), "{name} in {indexes:?}");
    }
    // Both queries walk their compound index, which holds the newest-first order, so a page
    // costs the same however many notifications there are.
    let by_order = h.mongo.index_used(doc! { "orderId": 1_i64 }).await.unwrap();
    assert_eq!(by_order.as_deref(), Some(ORDER_INDEX));
    let by_user = h.mongo.index_used(doc! { "userId": 1_i64 }).await.unwrap();
    assert_eq!(by_user.as_deref(), Some(USER_INDEX));
    h.stop().await;
}

#[tokio::test]
async fn the_same_event_delivered_twice_is_stored_once() {
    let h = Harness::start(Options::default()).await;
    let e = event(501, 9);
    h.publish(&e).await;
    h.publish(&e).await;
    h.publish(&event(502, 9)).await;
    eventually("3 deliveries handled", Duration::from_secs(20), || async {
        (h.status.processed.load(Ordering::SeqCst) + h.status.duplicates.load(Ordering::SeqCst)
            == 3)
            .then_some(())
    })
    .await;
    let mut client = h.client().await;
    assert_eq!(for_order(&mut client, 501).await.len(), 1);
    assert_eq!(h.status.duplicates.load(Ordering::SeqCst), 1);
    assert_eq!(all_for_user(&mut client, 9, 10).await.len(), 2);
    h.stop().await;
}

#[tokio::test]
async fn poison_messages_go_to_the_dlq_and_the_stream_continues() {
    let h = Harness::start(Options::default()).await;
    let mut bad_schema: serde_json::Value = serde_json::from_slice(&event(1, 1).to_json()).unwrap();
    bad_schema["quantity"] = 0.into();
    h.publish_raw(b"this is not json", "poison-1").await;
    h.publish_raw(&serde_json::to_vec(&bad_schema).unwrap(), "poison-2")
        .await;
    h.publish_raw(&vec![b'{'; 70 * 1024], "poison-3").await;
    let good = event(777, 4);
    h.publish(&good).await;

    eventually(
        "valid event stored behind the poison",
        Duration::from_secs(20),
        || async { (h.status.processed.load(Ordering::SeqCst) == 1).then_some(()) },
    )
    .await;
    let mut client = h.client().await;
    assert_eq!(for_order(&mut client, 777).await.len(), 1);

    let ch = &h.publisher.1;
    let mut reasons = Vec::new();
    let start = tokio::time::Instant::now();
    while reasons.len() < 3 && start.elapsed() < Duration::from_secs(10) {
        match ch
            .basic_get(
                &h.topology.dead_letter_queue(),
                BasicGetOptions { no_ack: true },
            )
            .await
            .unwrap()
        {
            Some(m) => {
                let reason = m
                    .delivery
                    .properties
                    .headers()
                    .as_ref()
                    .and_then(|h| h.inner().get(REASON_HEADER).cloned());
                let id = m
                    .delivery
                    .properties
                    .message_id()
                    .as_ref()
                    .map(|s| s.to_string())
                    .unwrap_or_default();
                reasons.push((id, reason));
            }
            None => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    assert_eq!(reasons.len(), 3);
    reasons.sort_by(|a, b| a.0.cmp(&b.0));
    let text = |v: &Option<AMQPValue>| match v {
        Some(AMQPValue::LongString(s)) => s.to_string(),
        other => panic!("reason header missing: {other:?}"),
    };
    assert!(text(&reasons[0].1).contains("not JSON"), "{:?}", reasons[0]);
    assert!(text(&reasons[1].1).contains("violates"), "{:?}", reasons[1]);
    assert!(text(&reasons[2].1).contains("exceeds"), "{:?}", reasons[2]);
    assert_eq!(h.status.dead_lettered.load(Ordering::SeqCst), 3);
    h.stop().await;
}

#[tokio::test]
async fn transient_store_failures_are_retried_then_stored() {
    let h = Harness::start(Options {
        failures: 2,
        ..Options::default()
    })
    .await;
    let e = event(900, 5);
    h.publish(&e).await;
    eventually("stored after retries", Duration::from_secs(20), || async {
        (h.status.processed.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;
    assert_eq!(
        h.status.retried.load(Ordering::SeqCst),
        2,
        "two failures, two retries"
    );
    assert_eq!(h.status.dead_lettered.load(Ordering::SeqCst), 0);
    let mut client = h.client().await;
    assert_eq!(for_order(&mut client, 900).await.len(), 1);
    h.stop().await;
}

#[tokio::test]
async fn a_message_that_keeps_failing_ends_in_the_dlq() {
    let h = Harness::start(Options {
        failures: 1000,
        max_retries: 2,
        ..Options::default()
    })
    .await;
    h.publish(&event(901, 5)).await;
    eventually(
        "dead-lettered after max retries",
        Duration::from_secs(20),
        || async { (h.status.dead_lettered.load(Ordering::SeqCst) == 1).then_some(()) },
    )
    .await;
    assert_eq!(h.status.retried.load(Ordering::SeqCst), 2);
    let m = h
        .publisher
        .1
        .basic_get(
            &h.topology.dead_letter_queue(),
            BasicGetOptions { no_ack: true },
        )
        .await
        .unwrap()
        .expect("in DLQ");
    let e = OrderCreatedV1::from_json(&m.delivery.data).unwrap();
    assert_eq!(e.order_id, 901, "the original payload is kept for replay");
    h.stop().await;
}

#[tokio::test]
async fn invalid_arguments_and_store_outage_map_to_grpc_codes() {
    let (target, _) = reroute(&mongo_url(), "x:1");
    let proxy = TcpProxy::start(&target).await;
    let (_, via_proxy) = reroute(&mongo_url(), &proxy.addr.to_string());
    let h = Harness::start(Options {
        mongo_url: Some(via_proxy),
        ..Options::default()
    })
    .await;
    let mut client = h.client().await;
    let code = |r: Result<tonic::Response<pb::GetNotificationsResponse>, tonic::Status>| {
        r.unwrap_err().code()
    };
    assert_eq!(
        code(
            client
                .get_notifications(pb::GetNotificationsRequest { order_id: 0 })
                .await
        ),
        Code::InvalidArgument
    );
    for req in [
        pb::ListUserNotificationsRequest {
            user_id: 0,
            page_size: 0,
            page_token: String::new(),
        },
        pb::ListUserNotificationsRequest {
            user_id: 1,
            page_size: 101,
            page_token: String::new(),
        },
        pb::ListUserNotificationsRequest {
            user_id: 1,
            page_size: -1,
            page_token: String::new(),
        },
        pb::ListUserNotificationsRequest {
            user_id: 1,
            page_size: 0,
            page_token: "garbage!".into(),
        },
    ] {
        let err = client
            .list_user_notifications(req.clone())
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{req:?}");
    }
    proxy.cut();
    assert_eq!(
        code(
            client
                .get_notifications(pb::GetNotificationsRequest { order_id: 1 })
                .await
        ),
        Code::Unavailable
    );
    proxy.restore();
    eventually("store back", Duration::from_secs(15), || {
        let mut client = client.clone();
        async move {
            client
                .get_notifications(pb::GetNotificationsRequest { order_id: 1 })
                .await
                .ok()
        }
    })
    .await;
    h.stop().await;
}

#[tokio::test]
async fn reflection_lists_the_service_and_health_follows_dependencies() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let (mongo_target, _) = reroute(&mongo_url(), "x:1");
    let mongo_proxy = TcpProxy::start(&mongo_target).await;
    let (_, mongo_via) = reroute(&mongo_url(), &mongo_proxy.addr.to_string());
    let (amqp_target, _) = reroute(&amqp_url(), "x:1");
    let amqp_proxy = TcpProxy::start(&amqp_target).await;
    let (_, amqp_via) = reroute(&amqp_url(), &amqp_proxy.addr.to_string());
    let h = Harness::start(Options {
        mongo_url: Some(mongo_via),
        amqp_url: Some(amqp_via),
        ..Options::default()
    })
    .await;
    h.client().await;

    let channel = GrpcChannel::from_shared(h.grpc_url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut reflection = ServerReflectionClient::new(channel.clone());
    let ask = |m: MessageRequest| {
        tokio_stream::iter(vec![ServerReflectionRequest {
            host: String::new(),
            message_request: Some(m),
        }])
    };
    let mut stream = reflection
        .server_reflection_info(ask(MessageRequest::ListServices(String::new())))
        .await
        .unwrap()
        .into_inner();
    let services = match stream.message().await.unwrap().unwrap().message_response {
        Some(MessageResponse::ListServicesResponse(l)) => {
            l.service.into_iter().map(|s| s.name).collect::<Vec<_>>()
        }
        other => panic!("{other:?}"),
    };
    assert!(
        services.contains(&shopmesh_notifications::SERVICE_NAME.to_owned()),
        "{services:?}"
    );
    assert!(
        services.contains(&"grpc.health.v1.Health".to_owned()),
        "{services:?}"
    );
    let mut stream = reflection
        .server_reflection_info(ask(MessageRequest::FileContainingSymbol(
            shopmesh_notifications::SERVICE_NAME.into(),
        )))
        .await
        .unwrap()
        .into_inner();
    match stream.message().await.unwrap().unwrap().message_response {
        Some(MessageResponse::FileDescriptorResponse(f)) => {
            assert!(!f.file_descriptor_proto.is_empty())
        }
        other => panic!("describe failed: {other:?}"),
    }

    let mut health = HealthClient::new(channel);
    let status = |service: &str| {
        let mut health = health.clone();
        let service = service.to_owned();
        async move {
            health
                .check(HealthCheckRequest { service })
                .await
                .unwrap()
                .into_inner()
                .status
        }
    };
    let serving = ServingStatus::Serving as i32;
    let not_serving = ServingStatus::NotServing as i32;
    let wait_for = |want: i32, what: &'static str| {
        let status = &status;
        async move {
            eventually(what, Duration::from_secs(20), || async move {
                (status("").await == want
                    && status(shopmesh_notifications::SERVICE_NAME).await == want)
                    .then_some(())
            })
            .await
        }
    };
    wait_for(serving, "SERVING with both dependencies up").await;
    mongo_proxy.cut();
    wait_for(not_serving, "NOT_SERVING while MongoDB is away").await;
    mongo_proxy.restore();
    wait_for(serving, "SERVING after MongoDB returns").await;
    amqp_proxy.cut();
    wait_for(not_serving, "NOT_SERVING while RabbitMQ is away").await;
    amqp_proxy.restore();
    wait_for(serving, "SERVING after RabbitMQ returns").await;
    let _ = health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await;
    h.stop().await;
}

/// Callers that give up mid-call (client timeouts, a gateway's short downstream deadline) must
/// not wedge the service: tonic drops a cancelled handler, and a store operation dropped
/// mid-flight used to leave the MongoDB pool stuck, so every later call missed its deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_calls_do_not_wedge_the_store() {
    let h = Harness::start(Options::default()).await;
    // 500 calls cancelled mid-flight, 20 per connection: more resets on one HTTP/2 connection
    // trip the server's rapid-reset protection (GOAWAY), which is right but not under test.
    let mut cancelled = tokio::task::JoinSet::new();
    for round in 0..25 {
        let client = h.client().await;
        for i in 0..20 {
            let mut c = client.clone();
            cancelled.spawn(async move {
                let request = pb::GetNotificationsRequest {
                    order_id: 1 + round * 20 + i,
                };
                let _ = tokio::time::timeout(
                    Duration::from_micros(500 + 100 * i as u64),
                    c.get_notifications(request),
                )
                .await;
            });
        }
        while cancelled.join_next().await.is_some() {}
    }
    let client = h.client().await;
    for attempt in 0..3 {
        let started = std::time::Instant::now();
        let mut c = client.clone();
        let answer = tokio::time::timeout(
            Duration::from_secs(3),
            c.get_notifications(pb::GetNotificationsRequest { order_id: 7 }),
        )
        .await;
        assert!(
            matches!(answer, Ok(Ok(_))),
            "call {attempt} after the cancellations: {answer:?} in {:?}",
            started.elapsed()
        );
    }
    h.stop().await;
}

/// Messages in the dead-letter queue right now (peeked by a passive declare).
async fn dead_lettered(h: &Harness) -> u32 {
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

/// MongoDB down longer than the whole retry ladder (1 retry after 0.1 s; each attempt fails
/// after the 1.5 s store timeout, so a message is dead-lettered after about 3 s): the
/// consumer stops consuming instead of spending retries, so no good event is dead-lettered,
/// and every one is stored once MongoDB returns.
#[tokio::test]
async fn a_store_outage_pauses_consumption_instead_of_dead_lettering() {
    let (mongo_target, _) = reroute(&mongo_url(), "x:1");
    let mongo_proxy = TcpProxy::start(&mongo_target).await;
    let (_, mongo_via) = reroute(&mongo_url(), &mongo_proxy.addr.to_string());
    let h = Harness::start(Options {
        mongo_url: Some(mongo_via),
        max_retries: 1,
        ..Options::default()
    })
    .await;

    mongo_proxy.cut();
    let events: Vec<_> = (1..=20).map(|i| event(i, 1)).collect();
    for e in &events {
        h.publish(e).await;
    }
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(dead_lettered(&h).await, 0, "an outage dead-letters nothing");
    assert_eq!(h.status.dead_lettered.load(Ordering::SeqCst), 0);

    mongo_proxy.restore();
    eventually("all 20 stored", Duration::from_secs(30), || async {
        (h.status.processed.load(Ordering::SeqCst) == 20).then_some(())
    })
    .await;
    assert_eq!(dead_lettered(&h).await, 0);
    h.stop().await;
}

/// After the cause is fixed, an operator moves dead-lettered events back: good ones (matching
/// the reason asked for) are stored, poison stays in the DLQ, and running it again is harmless.
#[tokio::test]
async fn redrive_moves_good_events_back_and_leaves_poison() {
    let h = Harness::start(Options::default()).await;
    let dead_letter = |payload: Vec<u8>, reason: &'static str| {
        let ch = h.publisher.1.clone();
        let dlq = h.topology.dead_letter_queue();
        async move {
            let mut headers = lapin::types::FieldTable::default();
            headers.insert(REASON_HEADER.into(), AMQPValue::LongString(reason.into()));
            headers.insert("x-retry-count".into(), AMQPValue::LongUInt(5));
            ch.basic_publish(
                "",
                &dlq,
                BasicPublishOptions::default(),
                &payload,
                BasicProperties::default().with_headers(headers),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        }
    };
    let events: Vec<_> = (1..=3).map(|i| event(700 + i, 1)).collect();
    for e in &events {
        dead_letter(e.to_json(), "store failed after 5 retries: timeout").await;
    }
    dead_letter(b"{not json".to_vec(), "expected value at line 1").await;
    assert_eq!(dead_lettered(&h).await, 4);

    let url = amqp_url();
    let only_other = redrive(&url, &h.topology, Some("no such reason"))
        .await
        .unwrap();
    assert_eq!((only_other.moved, only_other.kept), (0, 4));
    let report = redrive(&url, &h.topology, Some("store failed"))
        .await
        .unwrap();
    assert_eq!((report.moved, report.kept), (3, 1));
    eventually(
        "the 3 redriven events stored",
        Duration::from_secs(20),
        || async { (h.status.processed.load(Ordering::SeqCst) == 3).then_some(()) },
    )
    .await;
    assert_eq!(dead_lettered(&h).await, 1, "poison stays");
    let again = redrive(&url, &h.topology, None).await.unwrap();
    assert_eq!((again.moved, again.kept), (0, 1));
    assert_eq!(h.status.dead_lettered.load(Ordering::SeqCst), 0);
    h.stop().await;
}

/// `GetNotificationsForOrders`: one call answers each requested order, in request order, and
/// a batch breaking the contract (empty, over 100, an id below 1) is INVALID_ARGUMENT.
#[tokio::test]
async fn notifications_for_many_orders_in_one_call() {
    let h = Harness::start(Options::default()).await;
    let events = [event(41, 1), event(42, 1), event(41, 1)];
    for e in &events {
        h.publish(e).await;
    }
    eventually("3 notifications", Duration::from_secs(20), || async {
        (h.status.processed.load(Ordering::SeqCst) == 3).then_some(())
    })
    .await;
    let mut client = h.client().await;
    let answer = client
        .get_notifications_for_orders(pb::GetNotificationsForOrdersRequest {
            order_ids: vec![42, 43, 41, 42],
        })
        .await
        .unwrap()
        .into_inner();
    let got: Vec<(i64, usize)> = answer
        .orders
        .iter()
        .map(|o| (o.order_id, o.notifications.len()))
        .collect();
    assert_eq!(got, vec![(42, 1), (43, 0), (41, 2)]);
    assert!(
        answer.orders[2]
            .notifications
            .iter()
            .all(|n| n.order_id == 41)
    );
    for bad in [vec![], vec![1, 0], vec![1; 101]] {
        let status = client
            .get_notifications_for_orders(pb::GetNotificationsForOrdersRequest { order_ids: bad })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    }
    h.stop().await;
}

/// A connection to the gRPC port that never says anything (nor anything useful) is closed at
/// the maximum connection age rather than held forever, while real calls keep working.
#[tokio::test]
async fn silent_grpc_connections_are_closed_at_their_maximum_age() {
    use tokio::io::AsyncReadExt;
    let h = Harness::start(Options {
        grpc_max_connection_age: Duration::from_secs(1),
        ..Options::default()
    })
    .await;
    let addr = h.grpc_url.trim_start_matches("http://").to_owned();
    let mut silent = Vec::new();
    for _ in 0..5 {
        silent.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    let mut client = h.client().await;
    client
        .get_notifications(pb::GetNotificationsRequest { order_id: 1 })
        .await
        .unwrap();
    for stream in &mut silent {
        let mut buf = [0u8; 256];
        let closed = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {} // the server's SETTINGS and GOAWAY frames
                }
            }
        })
        .await;
        assert!(
            closed.is_ok(),
            "a silent connection outlived its maximum age"
        );
    }
    h.stop().await;
}

/// Every method needs a token (the contract's `(shopmesh.auth.v1.access)`), checked before
/// the method runs; a user reads only notifications about their own orders, an admin all;
/// health and reflection stay open.
#[tokio::test]
async fn grpc_callers_need_a_token_and_reach_only_their_own_notifications() {
    let h = Harness::start(Options::default()).await;
    for (order_id, user_id) in [(10, 1), (11, 2)] {
        h.mongo
            .insert_if_absent(&NewNotification {
                event_id: Uuid::new_v4().to_string(),
                order_id,
                user_id,
                message: format!("order {order_id}"),
                order_created_at: Utc::now(),
            })
            .await
            .unwrap();
    }
    let alice = token(&h.stack, 1, Role::User);
    let mut as_alice = h.client_as(&alice).await;
    let own = as_alice
        .get_notifications(pb::GetNotificationsRequest { order_id: 10 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(own.notifications.len(), 1);
    // Bob's order reads as one without notifications, like a missing one: ids cannot be probed.
    let bobs = as_alice
        .get_notifications(pb::GetNotificationsRequest { order_id: 11 })
        .await
        .unwrap()
        .into_inner();
    assert!(bobs.notifications.is_empty());
    let mixed = as_alice
        .get_notifications_for_orders(pb::GetNotificationsForOrdersRequest {
            order_ids: vec![10, 11],
        })
        .await
        .unwrap()
        .into_inner();
    let counts: Vec<usize> = mixed.orders.iter().map(|o| o.notifications.len()).collect();
    assert_eq!(counts, [1, 0], "only Alice's own");
    let denied = [as_alice
        .list_user_notifications(pb::ListUserNotificationsRequest {
            user_id: 2,
            page_size: 10,
            page_token: String::new(),
        })
        .await
        .map(|_| ())];
    for (i, outcome) in denied.into_iter().enumerate() {
        assert_eq!(
            outcome.unwrap_err().code(),
            Code::PermissionDenied,
            "call {i}"
        );
    }
    let mut as_admin = h.client().await;
    let both = as_admin
        .get_notifications_for_orders(pb::GetNotificationsForOrdersRequest {
            order_ids: vec![10, 11],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        both.orders
            .iter()
            .map(|o| o.notifications.len())
            .sum::<usize>(),
        2
    );

    let channel = GrpcChannel::from_shared(h.grpc_url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut anonymous = NotificationServiceClient::new(channel.clone());
    let status = anonymous
        .get_notifications(pb::GetNotificationsRequest { order_id: 10 })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("bearer token"), "{status:?}");
    let forged = AccessToken::new("eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.");
    let mut forger =
        NotificationServiceClient::with_interceptor(channel.clone(), GrpcBearer(forged));
    let status = forger
        .list_user_notifications(pb::ListUserNotificationsRequest {
            user_id: 1,
            page_size: 10,
            page_token: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    assert!(
        health
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new()
            })
            .await
            .is_ok(),
        "health needs no token"
    );
    h.stop().await;
}

/// Every queue of `topology` (main, retry `1..=retries`, DLQ) with the arguments it is declared
/// with.
fn declared_queues(
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
async fn is_queue_of_type(
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

/// The queues, their retry queues and the DLQ are quorum queues unless configured otherwise,
/// and the retry ladder (TTL, then dead-lettering back to the main queue) works on them.
#[tokio::test]
async fn queues_are_quorum_queues_by_default_and_retries_flow_through_them() {
    let h = Harness::start(Options {
        failures: 2,
        ..Options::default()
    })
    .await;
    assert_eq!(h.topology.queue_type, QueueType::Quorum);
    for (q, args) in declared_queues(&h.topology, 3, 100) {
        assert!(
            is_queue_of_type(&h.publisher.0, &q, &args, QueueType::Quorum).await,
            "{q} is a quorum queue"
        );
        assert!(
            !is_queue_of_type(&h.publisher.0, &q, &args, QueueType::Classic).await,
            "{q} is not a classic queue"
        );
    }
    h.publish(&event(950, 5)).await;
    eventually(
        "stored after two retries",
        Duration::from_secs(20),
        || async { (h.status.processed.load(Ordering::SeqCst) == 1).then_some(()) },
    )
    .await;
    assert_eq!(h.status.retried.load(Ordering::SeqCst), 2);
    h.stop().await;
}

/// `RABBITMQ_QUEUE_TYPE=classic` keeps an existing classic deployment working.
#[tokio::test]
async fn classic_queues_remain_available_by_configuration() {
    let stack = test_stack().set("RABBITMQ_QUEUE_TYPE", "classic");
    let config = shopmesh_notifications::config::NotificationsConfig::from_env(
        &stack.env_for(Service::Notifications).unwrap(),
    )
    .unwrap();
    assert_eq!(config.topology.queue_type, QueueType::Classic);
    let conn = shopmesh_common::amqp::connect(&amqp_url(), "queue-type", Duration::from_secs(5))
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    NotificationConsumer::declare(&ch, &config.topology, &config.consumer)
        .await
        .unwrap();
    let base_ms = i64::try_from(config.consumer.retry_base.as_millis()).unwrap();
    for (q, args) in declared_queues(&config.topology, config.consumer.max_retries, base_ms) {
        assert!(
            is_queue_of_type(&conn, &q, &args, QueueType::Classic).await,
            "{q}"
        );
        assert!(
            !is_queue_of_type(&conn, &q, &args, QueueType::Quorum).await,
            "{q}"
        );
    }
    let _ = conn.close(200, "done").await;
    remove_names(&stack.names, config.consumer.max_retries).await;

    let bad = test_stack().set("RABBITMQ_QUEUE_TYPE", "mirrored");
    let err = shopmesh_notifications::config::NotificationsConfig::from_env(
        &bad.env_for(Service::Notifications).unwrap(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("RABBITMQ_QUEUE_TYPE"), "{err}");
}

/// A deployment made by an earlier version has the single-field order index and the user
/// index without `_id`; starting this version replaces them rather than keeping both.
#[tokio::test]
async fn indexes_an_earlier_version_made_are_replaced() {
    let database = format!("notif_replaced_{}", std::process::id());
    let client = mongodb::Client::with_uri_str(mongo_url()).await.unwrap();
    let collection = client
        .database(&database)
        .collection::<mongodb::bson::Document>("notifications");
    for (keys, name) in [
        (doc! { "orderId": 1 }, "orderId_1"),
        (
            doc! { "userId": 1, "createdAt": -1 },
            "userId_1_createdAt_-1",
        ),
    ] {
        let options = mongodb::options::IndexOptions::builder()
            .name(name.to_owned())
            .build();
        collection
            .create_index(
                mongodb::IndexModel::builder()
                    .keys(keys)
                    .options(options)
                    .build(),
            )
            .await
            .unwrap();
    }
    let store = MongoNotificationStore::connect(&mongo_url(), &database, Duration::from_secs(5))
        .await
        .unwrap();
    store.ensure_indexes().await.unwrap();
    store.ensure_indexes().await.unwrap();
    let mut names = store.index_names().await.unwrap();
    names.sort();
    assert_eq!(
        names,
        ["_id_", "eventId_unique", ORDER_INDEX, USER_INDEX],
        "old indexes dropped, new ones made, twice without error"
    );
    store.drop_database().await.unwrap();
}
