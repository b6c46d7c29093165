//! The whole flow through the gateway, against the real infrastructure: sign up, log in, place
//! 3 orders over GraphQL with the token, see their notifications arrive through RabbitMQ and
//! MongoDB, read an order twice with the second read served by the cache, then hit the rate
//! limit.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Value, json};
use shopmesh_e2e::{Platform, PlatformOptions};
use shopmesh_testkit::{self as testkit, eventually, unique};

async fn graphql(
    http: &reqwest::Client,
    platform: &Platform,
    client_ip: &str,
    query: &str,
    variables: Value,
) -> (u16, Value) {
    let headers = [("x-forwarded-for", client_ip)];
    testkit::graphql(http, &platform.gateway_url, &headers, query, variables).await
}

#[tokio::test]
async fn user_orders_notifications_cache_and_rate_limit_end_to_end() {
    let platform = Platform::start(PlatformOptions {
        rate_limit: 10,
        ..PlatformOptions::default()
    })
    .await
    .unwrap();
    let anonymous = reqwest::Client::new();

    let email = format!("{}@example.com", unique("e2e"));
    let (_, made) = graphql(
        &anonymous,
        &platform,
        "10.1.0.1",
        "mutation($i: CreateUserInput!) { createUser(input: $i) { id name } }",
        json!({"i": {"name": "E2E Shopper", "email": email, "password": "e2e shopper's password"}}),
    )
    .await;
    let user_id = made["data"]["createUser"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{made}"))
        .to_owned();
    let (_, login) = graphql(
        &anonymous,
        &platform,
        "10.1.0.1",
        "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }",
        json!({"e": email, "p": "e2e shopper's password"}),
    )
    .await;
    let token = login["data"]["login"]["accessToken"]
        .as_str()
        .unwrap_or_else(|| panic!("{login}"));
    let http = testkit::authed_http(&shopmesh_identity::AccessToken::new(token));

    let mut order_ids = Vec::new();
    for product in ["11", "12", "13"] {
        let (_, body) = graphql(
            &http,
            &platform,
            "10.1.0.1",
            "mutation($i: CreateOrderInput!) { createOrder(input: $i) { id user { name } } }",
            json!({"i": {"userId": user_id, "productId": product, "quantity": 1}}),
        )
        .await;
        assert_eq!(
            body["data"]["createOrder"]["user"]["name"], "E2E Shopper",
            "{body}"
        );
        order_ids.push(
            body["data"]["createOrder"]["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }

    // Notifications travel orders -> outbox -> RabbitMQ -> consumer -> MongoDB -> gRPC -> gateway.
    let mut poll = 0u32;
    for id in &order_ids {
        let notifications = eventually("the order's notification", Duration::from_secs(30), || {
            poll += 1;
            let ip = format!("10.2.{}.{}", poll / 250, poll % 250);
            let (http, platform, id) = (&http, &platform, id.clone());
            async move {
                let (_, body) = graphql(http, platform, &ip, "query($id: ID!) { order(id: $id) { notifications { message status orderId userId } } }", json!({"id": id})).await;
                let list = body["data"]["order"]["notifications"].as_array().cloned().unwrap_or_default();
                (!list.is_empty()).then_some(list)
            }
        })
        .await;
        assert_eq!(notifications.len(), 1);
        assert_eq!(notifications[0]["orderId"].as_str(), Some(id.as_str()));
        assert_eq!(notifications[0]["userId"].as_str(), Some(user_id.as_str()));
        assert_eq!(notifications[0]["status"], "SENT");
        assert!(
            notifications[0]["message"]
                .as_str()
                .unwrap()
                .contains(&format!("#{id}"))
        );
    }
    assert_eq!(platform.notification_count().await, 3);
    assert_eq!(platform.consumer.processed.load(Ordering::SeqCst), 3);

    // getOrder twice: the gateway placed the order, so it serves it from process memory, even
    // after Redis lost the key, with no call to Redis or the orders service.
    let backends = &platform.gateway.backends;
    platform
        .gateway
        .backends
        .cache()
        .delete(&backends.order_key(order_ids[0].parse().unwrap()))
        .await;
    let orders_calls = backends.calls.orders.load(Ordering::SeqCst);
    let hits = backends.memory_hits();
    for _ in 0..2 {
        let (_, body) = graphql(
            &http,
            &platform,
            "10.3.0.1",
            "query($id: ID!) { order(id: $id) { id quantity } }",
            json!({"id": order_ids[0]}),
        )
        .await;
        assert_eq!(
            body["data"]["order"]["id"].as_str(),
            Some(order_ids[0].as_str())
        );
    }
    assert_eq!(
        backends.calls.orders.load(Ordering::SeqCst),
        orders_calls,
        "no orders call"
    );
    assert_eq!(backends.memory_hits(), hits + 2);

    // The rate limit: 10 per minute for an anonymous client, the 11th is refused.
    let mut statuses = Vec::new();
    for _ in 0..11 {
        let (status, _) = graphql(
            &anonymous,
            &platform,
            "10.4.0.1",
            "{ me { name } }",
            json!({}),
        )
        .await;
        statuses.push(status);
    }
    assert_eq!(&statuses[..10], &[200; 10]);
    assert_eq!(statuses[10], 429);

    // Every service reports ready, and metrics show the flow.
    for url in [
        &platform.gateway_url,
        &platform.users_url,
        &platform.orders_url,
        &platform.notifications_http_url,
    ] {
        eventually(&format!("{url} ready"), Duration::from_secs(10), || {
            let req = http.get(format!("{url}/health/ready"));
            async move { (req.send().await.ok()?.status().as_u16() == 200).then_some(()) }
        })
        .await;
    }
    let metrics = http
        .get(format!("{}/metrics", platform.notifications_http_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("notifications_consumed_total"));
    platform.stop().await;
}
