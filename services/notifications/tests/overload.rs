//! One caller flooding the gRPC port with reads it abandons at once must not take the store
//! away from everyone else: against the real service, the MongoDB stand-in and RabbitMQ.

use std::time::Duration;

use chrono::Utc;
use futures::future::join_all;
use shopmesh_identity::Role;
use shopmesh_notifications::Application;
use shopmesh_notifications::domain::NewNotification;
use shopmesh_notifications::store::NotificationStore;
use shopmesh_proto::shopmesh::notification::v1 as pb;
use shopmesh_proto::shopmesh::notification::v1::notification_service_client::NotificationServiceClient;
use shopmesh_testkit::{
    AuthedChannel, GrpcBearer, Running, Service, build_service, remove_names, serve_jwks,
    test_stack, token,
};
use tonic::Code;
use tonic::transport::Channel;

async fn client(
    url: &str,
    token: shopmesh_identity::AccessToken,
) -> NotificationServiceClient<AuthedChannel> {
    let channel = Channel::from_shared(url.to_owned())
        .unwrap()
        .connect()
        .await
        .unwrap();
    NotificationServiceClient::with_interceptor(channel, GrpcBearer(token))
}

fn notification(order_id: i64, user_id: i64, i: usize) -> NewNotification {
    NewNotification {
        event_id: format!("overload-{order_id}-{i}"),
        order_id,
        user_id,
        message: format!("notification {i} of order {order_id}"),
        order_created_at: Utc::now(),
    }
}

#[tokio::test]
async fn abandoned_reads_from_one_caller_leave_the_store_to_everyone_else() {
    let stack = test_stack();
    let jwks = serve_jwks(&stack).await;
    let stack = stack.set_for(
        Service::Notifications,
        "AUTH_JWKS_URL",
        format!("{}/.well-known/jwks.json", jwks.base_url),
    );
    let app = build_service::<Application>(&stack.env_for(Service::Notifications).unwrap(), |c| {
        c.health_interval = Duration::from_millis(100);
    })
    .await;
    let store = app.store().clone();
    let running = Running::start(app).await;
    // Heavy enough that the stand-in takes tens of milliseconds to answer one read of it.
    for batch in (0..2000).collect::<Vec<_>>().chunks(50) {
        let docs: Vec<_> = batch.iter().map(|i| notification(77, 1, *i)).collect();
        join_all(docs.iter().map(|n| store.insert_if_absent(n))).await;
    }
    store
        .insert_if_absent(&notification(88, 2, 0))
        .await
        .unwrap();

    // Alice: 300 reads of a 2,000-notification order (one takes the stand-in ~200 ms), each
    // given up after 30 ms: long enough to reach the service, far too short to be answered.
    let alice = client(&running.grpc_url(), token(&stack, 1, Role::User)).await;
    // Warm: the keys are fetched and the token verified once, so the flood reaches the store.
    let t = std::time::Instant::now();
    let warm = alice
        .clone()
        .get_notifications(pb::GetNotificationsRequest { order_id: 77 })
        .await;
    assert_eq!(warm.unwrap().into_inner().notifications.len(), 2000);
    println!("overload: one read of 2,000 took {:?}", t.elapsed());
    let flood = (0..300).map(|_| {
        let mut alice = alice.clone();
        async move {
            let mut request = tonic::Request::new(pb::GetNotificationsRequest { order_id: 77 });
            request.set_timeout(Duration::from_millis(30));
            alice
                .get_notifications(request)
                .await
                .err()
                .map(|s| s.code())
        }
    });
    let abandoned = join_all(flood).await;
    assert!(abandoned.iter().all(Option::is_some), "each gave up");

    // Bob, right after: served, and the service still says it serves.
    let mut bob = client(&running.grpc_url(), token(&stack, 2, Role::User)).await;
    let started = std::time::Instant::now();
    let bobs = bob
        .get_notifications(pb::GetNotificationsRequest { order_id: 88 })
        .await
        .map(|r| r.into_inner().notifications.len())
        .map_err(|s| s.code());
    assert_eq!(bobs, Ok(1), "after {:?}", started.elapsed());
    let channel = Channel::from_shared(running.grpc_url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let health = tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        health.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    println!(
        "overload: Bob served in {:?} after 300 abandoned reads",
        started.elapsed()
    );
    running.stop().await;
    remove_names(&stack.names, 0).await;
}

#[tokio::test]
async fn one_caller_may_have_only_so_many_reads_running() {
    let stack = test_stack();
    let jwks = serve_jwks(&stack).await;
    let stack = stack
        .set_for(
            Service::Notifications,
            "AUTH_JWKS_URL",
            format!("{}/.well-known/jwks.json", jwks.base_url),
        )
        .set_for(Service::Notifications, "MONGO_MAX_READS_PER_CALLER", "4");
    let app =
        build_service::<Application>(&stack.env_for(Service::Notifications).unwrap(), |_| {}).await;
    let store = app.store().clone();
    let running = Running::start(app).await;
    for i in 0..200 {
        store
            .insert_if_absent(&notification(77, 1, i))
            .await
            .unwrap();
    }
    let alice = client(&running.grpc_url(), token(&stack, 1, Role::User)).await;
    let calls = (0..40).map(|_| {
        let mut alice = alice.clone();
        async move {
            let request = pb::GetNotificationsRequest { order_id: 77 };
            alice
                .get_notifications(request)
                .await
                .err()
                .map(|s| s.code())
        }
    });
    let outcomes = join_all(calls).await;
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
    let mut bob = client(&running.grpc_url(), token(&stack, 2, Role::User)).await;
    assert!(
        bob.get_notifications(pb::GetNotificationsRequest { order_id: 77 })
            .await
            .is_ok()
    );
    running.stop().await;
    remove_names(&stack.names, 0).await;
}
