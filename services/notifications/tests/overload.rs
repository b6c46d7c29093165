//! One caller flooding the gRPC port with reads it abandons at once must not take the store
//! away from everyone else: against the real service, the MongoDB stand-in and RabbitMQ.

use std::time::{Duration, Instant};

use futures::future::join_all;
use shopmesh_identity::Role;
use shopmesh_notifications::Application;
use shopmesh_notifications::domain::NewNotification;
use shopmesh_notifications::store::{MongoNotificationStore, NotificationStore};
use shopmesh_proto::shopmesh::notification::v1 as pb;
use shopmesh_proto::shopmesh::notification::v1::notification_service_client::NotificationServiceClient;
use shopmesh_testkit::{
    AuthedChannel, GrpcBearer, Running, Service, Stack, TestServer, build_service, remove_names,
    serve_jwks, test_stack, token,
};
use tonic::Code;
use tonic::transport::Channel;

/// The notifications service from the stack's configuration with `settings`, and its store.
struct Notifications {
    stack: Stack,
    store: MongoNotificationStore,
    running: Running,
    _jwks: TestServer,
}

impl Notifications {
    async fn start(settings: &[(&str, &str)]) -> Self {
        let stack = test_stack();
        let jwks = serve_jwks(&stack).await;
        let mut stack = stack.set_for(
            Service::Notifications,
            "AUTH_JWKS_URL",
            format!("{}/.well-known/jwks.json", jwks.base_url),
        );
        for (k, v) in settings {
            stack = stack.set_for(Service::Notifications, k, *v);
        }
        let env = stack.env_for(Service::Notifications).unwrap();
        let app = build_service::<Application>(&env, |c| {
            c.health_interval = Duration::from_millis(100);
        })
        .await;
        let store = app.store().clone();
        Self {
            running: Running::start(app).await,
            stack,
            store,
            _jwks: jwks,
        }
    }

    /// `count` notifications of `order_id` for `user_id`, stored 50 at a time.
    async fn seed(&self, order_id: i64, user_id: i64, count: usize) {
        for batch in (0..count).collect::<Vec<_>>().chunks(50) {
            let docs: Vec<_> = batch
                .iter()
                .map(|i| NewNotification {
                    event_id: format!("overload-{order_id}-{i}"),
                    order_id,
                    user_id,
                    message: format!("notification {i} of order {order_id}"),
                })
                .collect();
            join_all(docs.iter().map(|n| self.store.insert_if_absent(n))).await;
        }
    }

    async fn client_of(&self, user_id: i64) -> NotificationServiceClient<AuthedChannel> {
        let channel = Channel::from_shared(self.running.grpc_url())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let token = token(&self.stack, user_id, Role::User);
        NotificationServiceClient::with_interceptor(channel, GrpcBearer(token))
    }

    async fn serving(&self) -> bool {
        let channel = Channel::from_shared(self.running.grpc_url())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let answer = tonic_health::pb::health_client::HealthClient::new(channel)
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap();
        answer.into_inner().status
            == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    }

    async fn stop(self) {
        self.running.stop().await;
        remove_names(&self.stack.names, 0).await;
    }
}

/// `calls` reads of `order_id` at once by `client`, each given up after `deadline` (if any):
/// the error code of each, `None` for an answer.
async fn reads(
    client: &NotificationServiceClient<AuthedChannel>,
    order_id: i64,
    calls: usize,
    deadline: Option<Duration>,
) -> Vec<Option<Code>> {
    join_all((0..calls).map(|_| {
        let mut client = client.clone();
        async move {
            let mut request = tonic::Request::new(pb::GetNotificationsRequest { order_id });
            if let Some(deadline) = deadline {
                request.set_timeout(deadline);
            }
            client
                .get_notifications(request)
                .await
                .err()
                .map(|s| s.code())
        }
    }))
    .await
}

#[tokio::test]
async fn abandoned_reads_from_one_caller_leave_the_store_to_everyone_else() {
    let svc = Notifications::start(&[]).await;
    // Heavy enough that the stand-in takes ~200 ms to answer one read of it.
    svc.seed(77, 1, 2000).await;
    svc.seed(88, 2, 1).await;
    let alice = svc.client_of(1).await;
    // Warm: the keys are fetched and the token verified once, so the flood reaches the store.
    let t = Instant::now();
    assert_eq!(reads(&alice, 77, 1, None).await, [None]);
    println!("overload: one read of 2,000 took {:?}", t.elapsed());

    // 300 reads, each given up after 30 ms: long enough to reach the service, far too short
    // to be answered.
    let abandoned = reads(&alice, 77, 300, Some(Duration::from_millis(30))).await;
    assert!(abandoned.iter().all(Option::is_some), "each gave up");

    // Bob, right after: served, and the service still says it serves.
    let started = Instant::now();
    let bobs = svc
        .client_of(2)
        .await
        .get_notifications(pb::GetNotificationsRequest { order_id: 88 })
        .await
        .map(|r| r.into_inner().notifications.len())
        .map_err(|s| s.code());
    assert_eq!(bobs, Ok(1), "after {:?}", started.elapsed());
    assert!(svc.serving().await);
    println!(
        "overload: Bob served in {:?} after 300 abandoned reads",
        started.elapsed()
    );
    svc.stop().await;
}

#[tokio::test]
async fn one_caller_may_have_only_so_many_reads_running() {
    let svc = Notifications::start(&[("MONGO_MAX_READS_PER_CALLER", "4")]).await;
    // Reads long enough (~200 ms each) that the calls waiting for a place give up first.
    svc.seed(77, 1, 2000).await;
    let outcomes = reads(&svc.client_of(1).await, 77, 40, None).await;
    let refused = outcomes
        .iter()
        .filter(|c| **c == Some(Code::ResourceExhausted))
        .count();
    let served = outcomes.iter().filter(|c| c.is_none()).count();
    assert_eq!(refused + served, 40, "{outcomes:?}");
    assert!(
        refused > 0 && served >= 4,
        "{refused} refused, {served} served"
    );
    // Bob is counted on his own.
    assert_eq!(reads(&svc.client_of(2).await, 77, 1, None).await, [None]);
    svc.stop().await;
}
