//! Orders service against real MariaDB and RabbitMQ: every test has its own database and its
//! own exchange/queue, so tests run in parallel.

use std::collections::BTreeSet;
use std::time::Duration;

use lapin::options::{BasicAckOptions, BasicGetOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use shopmesh_common::shutdown::Shutdown;
use shopmesh_events::{OrderCreatedTopology, OrderCreatedV1};
use shopmesh_identity::{AccessToken, Role};
use shopmesh_openapi::orders::{CreateOrderRequest, OrderStatus, OrdersClient};
use shopmesh_openapi::runtime::ClientError;
use shopmesh_orders::Application;
use shopmesh_orders::config::RelayConfig;
use shopmesh_orders::events::OutboxRelay;
use shopmesh_orders::store::OrderStore;
use shopmesh_testkit::{
    Running, Service, Stack, TcpProxy, TestServer, amqp_url, authed_http, build_service,
    eventually, remove_names, remove_topology, reroute, serve_jwks, test_stack, token, unique,
};

/// The orders API over a database of its own; the relay is off (tests run their own). Tokens
/// are verified against the stack's key, served by the test.
struct Harness {
    stack: Stack,
    store: OrderStore,
    server: Running,
    client: OrdersClient,
    _jwks: TestServer,
    /// An admin's token: reads anything.
    admin: AccessToken,
    /// An HTTP client sending the admin's token.
    http: reqwest::Client,
}

/// `stack` with orders verifying tokens against `jwks`.
fn verifying_with(stack: Stack, jwks: &TestServer) -> Stack {
    stack.set_for(
        Service::Orders,
        "AUTH_JWKS_URL",
        format!("{}/.well-known/jwks.json", jwks.base_url),
    )
}

impl Harness {
    async fn start() -> Self {
        Self::start_on(test_stack()).await
    }

    /// Starts the service from `stack` (e.g. with `DATABASE_URL` through a proxy).
    async fn start_on(stack: Stack) -> Self {
        let jwks = serve_jwks(&stack).await;
        let stack = verifying_with(stack, &jwks)
            .set_for(Service::Orders, "OUTBOX_RELAY_ENABLED", "false")
            .set_for(Service::Orders, "DB_POOL_SIZE", "5")
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
    fn user(&self, user_id: i64) -> AccessToken {
        token(&self.stack, user_id, Role::User)
    }

    async fn stop(self) {
        self.server.stop().await;
        self.store.pool().close().await;
        remove_names(&self.stack.names, 0).await;
    }

    async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(self.store.pool())
            .await
            .unwrap()
    }

    async fn create(
        &self,
        user_id: i64,
        product_id: i64,
        quantity: i32,
    ) -> shopmesh_openapi::orders::Order {
        self.client
            .create_order(
                &self.user(user_id),
                &CreateOrderRequest {
                    user_id,
                    product_id,
                    quantity,
                },
            )
            .await
            .unwrap_or_else(|e| panic!("expected 201, got {e:?}"))
    }
}

fn test_topology() -> OrderCreatedTopology {
    OrderCreatedTopology {
        exchange: unique("test.orders"),
        queue: unique("test.order.created"),
        ..OrderCreatedTopology::default()
    }
}

fn fast_relay() -> RelayConfig {
    RelayConfig {
        batch_size: 50,
        poll_interval: Duration::from_millis(200),
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(300),
    }
}

async fn amqp_channel() -> (lapin::Connection, lapin::Channel) {
    let conn = shopmesh_common::amqp::connect(&amqp_url(), "orders-test", Duration::from_secs(5))
        .await
        .expect("RabbitMQ reachable");
    let ch = conn.create_channel().await.unwrap();
    (conn, ch)
}

/// Takes messages from `queue` until `expected` arrived (or `within` passed), acking each.
async fn drain(
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

async fn queue_depth(ch: &lapin::Channel, queue: &str) -> u32 {
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
fn events(messages: &[lapin::message::BasicGetMessage]) -> Vec<OrderCreatedV1> {
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

#[tokio::test]
async fn create_get_and_list_round_trip_through_the_generated_client() {
    let h = Harness::start().await;
    let first = h.create(7, 100, 2).await;
    assert_eq!(
        (
            first.user_id,
            first.product_id,
            first.quantity,
            first.status
        ),
        (7, 100, 2, OrderStatus::Pending)
    );

    let o = h.client.get_order(&h.admin, first.id).await.unwrap();
    assert_eq!(o, first);
    match h.client.get_order(&h.admin, first.id + 1000).await {
        Err(ClientError::Problem(p)) => assert_eq!(p.status, 404),
        other => panic!("{other:?}"),
    }

    let mut created = vec![first];
    for product in 101..105 {
        created.push(h.create(7, product, 1).await);
    }
    h.create(8, 1, 1).await; // another user's order must not show up

    // Newest first, two per page, following cursors to the end.
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = h
            .client
            .list_user_orders(&h.admin, 7, Some(2), cursor.clone())
            .await
            .unwrap();
        assert!(page.items.len() <= 2);
        seen.extend(page.items);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let expected: Vec<i64> = created.iter().rev().map(|o| o.id).collect();
    assert_eq!(seen.iter().map(|o| o.id).collect::<Vec<_>>(), expected);

    // Default page size holds all five.
    let p = h
        .client
        .list_user_orders(&h.admin, 7, None, None)
        .await
        .unwrap();
    assert_eq!(p.items.len(), 5);
    assert!(p.next_cursor.is_none());
    assert_eq!(h.count("orders").await, 6);
    assert_eq!(
        h.count("outbox").await,
        6,
        "one event per order, in the same transaction"
    );
    h.stop().await;
}

#[tokio::test]
async fn bad_input_gets_a_problem_and_writes_nothing() {
    let h = Harness::start().await;
    let http = h.http.clone();
    let url = |p: &str| format!("{}{p}", h.server.base_url);
    let json = "application/json";
    let cases: Vec<(&str, &str, &str, String, u16)> = vec![
        (
            "wrong type",
            "POST",
            json,
            r#"{"userId":"x","productId":1,"quantity":1}"#.into(),
            400,
        ),
        (
            "missing field",
            "POST",
            json,
            r#"{"userId":1,"productId":1}"#.into(),
            400,
        ),
        (
            "userId 0",
            "POST",
            json,
            r#"{"userId":0,"productId":1,"quantity":1}"#.into(),
            400,
        ),
        (
            "productId -5",
            "POST",
            json,
            r#"{"userId":1,"productId":-5,"quantity":1}"#.into(),
            400,
        ),
        (
            "quantity 0",
            "POST",
            json,
            r#"{"userId":1,"productId":1,"quantity":0}"#.into(),
            400,
        ),
        (
            "quantity 1001",
            "POST",
            json,
            r#"{"userId":1,"productId":1,"quantity":1001}"#.into(),
            400,
        ),
        ("not JSON", "POST", json, "{userId: 1".into(), 400),
        ("JSON array", "POST", json, "[1,2,3]".into(), 400),
        (
            "text/plain",
            "POST",
            "text/plain",
            r#"{"userId":1,"productId":1,"quantity":1}"#.into(),
            415,
        ),
        (
            "over 64 KiB",
            "POST",
            json,
            format!(
                r#"{{"userId":1,"productId":1,"quantity":1,"pad":"{}"}}"#,
                "x".repeat(70 * 1024)
            ),
            413,
        ),
    ];
    for (name, _, ct, body, status) in cases {
        let resp = http
            .post(url("/orders"))
            .header("content-type", ct)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), status, "{name}");
        let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(
            ct.starts_with("application/problem+json"),
            "{name}: content-type {ct}"
        );
        let problem: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(problem["status"], status, "{name}: {problem}");
        assert!(
            problem["title"].is_string() && problem["type"].is_string(),
            "{name}: {problem}"
        );
    }
    for (path, status) in [
        ("/orders/0", 400),
        ("/orders/abc", 400),
        ("/orders/user/1?limit=0", 400),
        ("/orders/user/1?limit=101", 400),
        ("/orders/user/0", 400),
        ("/orders/user/1?cursor=not-a-cursor", 400),
        ("/nothing-here", 404),
    ] {
        let resp = http.get(url(path)).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), status, "{path}");
        let problem: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(problem["status"], status, "{path}: {problem}");
    }
    assert_eq!(h.count("orders").await, 0, "no order written");
    assert_eq!(h.count("outbox").await, 0, "no event written");
    h.stop().await;
}

#[tokio::test]
async fn by_user_queries_use_the_composite_index() {
    let h = Harness::start().await;
    for user in 1..=20 {
        for product in 1..=5 {
            h.store
                .create(shopmesh_orders::store::NewOrder {
                    user_id: user,
                    product_id: product,
                    quantity: 1,
                })
                .await
                .unwrap();
        }
    }
    sqlx::query("ANALYZE TABLE orders")
        .execute(h.store.pool())
        .await
        .unwrap();
    let pool = h.store.pool().clone();
    let explain = |sql: String| {
        let pool = pool.clone();
        async move {
            let row = sqlx::query(&format!("EXPLAIN {sql}"))
                .fetch_one(&pool)
                .await
                .unwrap();
            use sqlx::Row;
            let key: Option<String> = row.try_get("key").unwrap();
            let extra: Option<String> = row.try_get("Extra").unwrap();
            (key, extra)
        }
    };
    let first = shopmesh_orders::store::BY_USER_FIRST_PAGE
        .replacen('?', "3", 1)
        .replacen('?', "21", 1);
    let (key, extra) = explain(first).await;
    assert_eq!(
        key.as_deref(),
        Some("idx_orders_user_created"),
        "extra: {extra:?}"
    );
    assert!(
        !extra.unwrap_or_default().contains("filesort"),
        "newest-first must not sort"
    );

    let next = shopmesh_orders::store::BY_USER_NEXT_PAGE
        .replacen('?', "3", 1)
        .replacen('?', "'2030-01-01 00:00:00'", 2)
        .replacen('?', "1000", 1)
        .replacen('?', "21", 1);
    let (key, _) = explain(next).await;
    assert_eq!(key.as_deref(), Some("idx_orders_user_created"));
    h.stop().await;
}

#[tokio::test]
async fn database_outage_answers_503_and_recovers() {
    let stack = test_stack();
    let url = stack.env_for(Service::Orders).unwrap()["DATABASE_URL"].clone();
    let (target, _) = reroute(&url, "x:1");
    let proxy = TcpProxy::start(&target).await;
    let (_, via_proxy) = reroute(&url, &proxy.addr.to_string());
    let h = Harness::start_on(stack.set_for(Service::Orders, "DATABASE_URL", via_proxy)).await;
    let req = CreateOrderRequest {
        user_id: 1,
        product_id: 1,
        quantity: 1,
    };
    h.create(1, 1, 1).await;

    proxy.cut();
    let http = h.http.clone();
    let resp = http
        .post(format!("{}/orders", h.server.base_url))
        .json(&serde_json::json!({"userId":1,"productId":1,"quantity":1}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/problem+json")
    );
    let ready = http
        .get(format!("{}/health/ready", h.server.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        ready.status().as_u16(),
        503,
        "not ready while the database is away"
    );

    proxy.restore();
    let order = eventually("orders to recover", Duration::from_secs(20), || async {
        h.client.create_order(&h.user(1), &req).await.ok()
    })
    .await;
    assert!(order.id > 0);
    let ready = http
        .get(format!("{}/health/ready", h.server.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status().as_u16(), 200);
    assert_eq!(
        h.count("orders").await,
        2,
        "the failed request wrote nothing"
    );
    h.stop().await;
}

/// MariaDB down when the service starts: it listens at once (liveness 200, so an orchestrator
/// does not restart it), answers 503 until its migrations ran, then serves.
#[tokio::test]
async fn database_down_at_start_is_live_not_ready_then_serves() {
    let stack = test_stack();
    let url = stack.env_for(Service::Orders).unwrap()["DATABASE_URL"].clone();
    let (target, _) = reroute(&url, "x:1");
    let proxy = TcpProxy::start(&target).await;
    proxy.cut();
    let (_, via_proxy) = reroute(&url, &proxy.addr.to_string());
    let jwks = serve_jwks(&stack).await;
    let stack = verifying_with(stack, &jwks).set_for(Service::Orders, "DATABASE_URL", via_proxy);
    let app = build_service::<Application>(&stack.env_for(Service::Orders).unwrap(), |_| {}).await;
    let server = Running::start_live(app).await;
    let http = authed_http(&token(&stack, 1, Role::User));
    let status = |path: &'static str| {
        let (http, base) = (http.clone(), server.base_url.clone());
        async move {
            let resp = http.get(format!("{base}{path}")).send().await.unwrap();
            (
                resp.status().as_u16(),
                resp.headers().get("content-type").cloned(),
            )
        }
    };
    assert_eq!(status("/health/ready").await.0, 503);
    let (code, content_type) = status("/orders/1").await;
    assert_eq!(code, 503);
    assert_eq!(
        content_type.unwrap().to_str().unwrap(),
        "application/problem+json"
    );

    proxy.restore();
    eventually("migrations to finish", Duration::from_secs(30), || async {
        (status("/health/ready").await.0 == 200).then_some(())
    })
    .await;
    let resp = http
        .post(format!("{}/orders", server.base_url))
        .json(&serde_json::json!({"userId": 1, "productId": 1, "quantity": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    server.stop().await;
    remove_names(&stack.names, 0).await;
}

#[tokio::test]
async fn outbox_delivers_every_event_exactly_once_across_a_broker_outage() {
    let h = Harness::start().await;
    let topology = test_topology();
    let (conn, ch) = amqp_channel().await;
    shopmesh_common::amqp::declare_order_created(&ch, &topology)
        .await
        .unwrap();

    let (target, _) = reroute(&amqp_url(), "x:1");
    let proxy = TcpProxy::start(&target).await;
    proxy.cut();
    let (_, via_proxy) = reroute(&amqp_url(), &proxy.addr.to_string());
    let relay = OutboxRelay::new(h.store.clone(), via_proxy, topology.clone(), fast_relay());
    let status = relay.status();
    let shutdown = Shutdown::new();
    let relay_task = tokio::spawn(relay.run(shutdown.clone()));

    // The broker is unreachable: orders are still accepted.
    let mut order_ids = BTreeSet::new();
    for i in 0..100 {
        order_ids.insert(h.create(1 + i % 7, 1 + i, 1).await.id);
    }
    assert!(!status.connected());
    assert_eq!(
        queue_depth(&ch, &topology.queue).await,
        0,
        "nothing published during the outage"
    );

    proxy.restore();
    let got = drain(&ch, &topology.queue, 100, Duration::from_secs(30)).await;
    let events = events(&got);
    assert_eq!(
        events.len(),
        100,
        "all events arrive after the broker returns"
    );
    let event_ids: BTreeSet<_> = events.iter().map(|e| e.event_id).collect();
    assert_eq!(event_ids.len(), 100, "no event twice");
    let event_orders: BTreeSet<_> = events.iter().map(|e| e.order_id).collect();
    assert_eq!(event_orders, order_ids, "one event per created order");

    // Nothing more arrives, and the outbox is drained.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(queue_depth(&ch, &topology.queue).await, 0, "no duplicates");
    assert_eq!(h.store.pending_outbox().await.unwrap(), 0);
    assert_eq!(status.published(), 100);

    shutdown.trigger();
    relay_task.await.unwrap();
    remove_topology(&topology, 0).await;
    let _ = conn.close(200, "done").await;
    h.stop().await;
}

#[tokio::test]
async fn relay_restart_resumes_pending_rows() {
    let h = Harness::start().await;
    let topology = test_topology();
    let (conn, ch) = amqp_channel().await;
    shopmesh_common::amqp::declare_order_created(&ch, &topology)
        .await
        .unwrap();

    // Orders created while no relay runs stay pending.
    for i in 0..10 {
        h.create(3, 1 + i, 1).await;
    }
    assert_eq!(h.store.pending_outbox().await.unwrap(), 10);

    let run = |shutdown: Shutdown| {
        let relay = OutboxRelay::new(h.store.clone(), amqp_url(), topology.clone(), fast_relay());
        tokio::spawn(relay.run(shutdown))
    };
    let first = Shutdown::new();
    let task = run(first.clone());
    let got = drain(&ch, &topology.queue, 10, Duration::from_secs(20)).await;
    assert_eq!(events(&got).len(), 10);
    first.trigger();
    task.await.unwrap();

    // Stopped relay: new orders wait; a new relay picks them up.
    for i in 0..5 {
        h.create(4, 1 + i, 1).await;
    }
    assert_eq!(h.store.pending_outbox().await.unwrap(), 5);
    let second = Shutdown::new();
    let task = run(second.clone());
    let got = drain(&ch, &topology.queue, 5, Duration::from_secs(20)).await;
    let events = events(&got);
    assert_eq!(events.len(), 5);
    assert!(
        events.iter().all(|e| e.user_id == 4),
        "only the new events are published again"
    );
    eventually("outbox drained", Duration::from_secs(5), || async {
        (h.store.pending_outbox().await.unwrap() == 0).then_some(())
    })
    .await;
    second.trigger();
    task.await.unwrap();
    remove_topology(&topology, 0).await;
    let _ = conn.close(200, "done").await;
    h.stop().await;
}

#[tokio::test]
async fn served_spec_equals_the_committed_contract_and_docs_are_served() {
    let h = Harness::start().await;
    let http = h.http.clone();
    let served = http
        .get(format!("{}/openapi.json", h.server.base_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let contract = shopmesh_openapi::orders::CONTRACT_YAML;
    shopmesh_codegen::contract::assert_served(contract, &served).unwrap_or_else(|e| panic!("{e}"));
    // And the routes answer what the contract promises.
    let implemented = shopmesh_openapi::orders::OrdersEndpoints::implemented_spec();
    shopmesh_codegen::contract::assert_equivalent(contract, &implemented)
        .unwrap_or_else(|e| panic!("{e}"));
    let docs = http
        .get(format!("{}/docs", h.server.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(docs.status().as_u16(), 200);
    assert!(
        docs.text().await.unwrap().contains("swagger"),
        "Swagger UI page"
    );
    let live = http
        .get(format!("{}/health/live", h.server.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status().as_u16(), 200);
    let wrong_method = http
        .delete(format!("{}/orders/1", h.server.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status().as_u16(), 405);
    assert_eq!(
        wrong_method.headers()["allow"],
        "GET",
        "RFC 9110: 405 lists the allowed methods"
    );
    assert!(
        wrong_method.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/problem+json")
    );
    h.create(1, 1, 1).await;
    let metrics = http
        .get(format!("{}/metrics", h.server.base_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"http_requests_total{service="orders",operation="createOrder",method="POST",status="201"}"#),
        "{metrics}"
    );
    assert!(metrics.contains(
        r#"http_request_duration_seconds_bucket{service="orders",operation="createOrder""#
    ));
    h.stop().await;
}

/// An internal failure (here a row whose status no contract value names) answers 500, and the
/// problem body says 500 too: the response is built from the problem, so they cannot disagree.
#[tokio::test]
async fn an_internal_error_answers_500_with_a_body_that_says_500() {
    let h = Harness::start().await;
    let order = h.create(3, 4, 1).await;
    sqlx::query("UPDATE orders SET status = 'lost' WHERE id = ?")
        .bind(order.id)
        .execute(h.store.pool())
        .await
        .unwrap();
    let http = h.http.clone();
    for url in [
        format!("{}/orders/{}", h.server.base_url, order.id),
        format!("{}/orders/user/3", h.server.base_url),
    ] {
        let resp = http.get(&url).send().await.unwrap();
        let status = resp.status().as_u16();
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(
            (status, &body["status"]),
            (500, &serde_json::json!(500)),
            "{url}: {body}"
        );
        assert_eq!(
            body["detail"], "internal error",
            "no internals leak: {body}"
        );
    }
    match h.client.get_order(&h.admin, order.id).await {
        Err(ClientError::Problem(p)) => assert_eq!(p.status, 500),
        other => panic!("{other:?}"),
    }
    h.stop().await;
}

/// A cursor whose timestamp MySQL cannot hold is the client's mistake (400), not an outage
/// (it answered 503 and logged "database unavailable").
#[tokio::test]
async fn a_cursor_with_an_out_of_range_timestamp_is_a_400() {
    use base64::Engine;
    let h = Harness::start().await;
    h.create(1, 1, 1).await;
    let http = h.http.clone();
    for raw in ["-99999999999999999:1", "253402300800000000:1"] {
        let cursor = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        let resp = http
            .get(format!("{}/orders/user/1", h.server.base_url))
            .query(&[("cursor", &cursor)])
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(
            (status, &body["status"]),
            (400, &serde_json::json!(400)),
            "{raw}: {body}"
        );
    }
    h.stop().await;
}

fn problem_status<T: std::fmt::Debug>(result: Result<T, ClientError>) -> u16 {
    match result {
        Err(ClientError::Problem(p)) => p.status(),
        other => panic!("expected a problem, got {other:?}"),
    }
}

/// A shopper orders and reads only for themself; an admin orders for any user the users
/// service knows, and never for one it does not.
#[tokio::test]
async fn shoppers_reach_only_their_own_orders_and_admins_only_existing_users() {
    let stack = test_stack();
    let users = build_service::<shopmesh_users::Application>(
        &stack.env_for(Service::Users).unwrap(),
        |_| {},
    )
    .await;
    let users = Running::start(users).await;
    let stack = stack
        .set_for(Service::Orders, "USER_SERVICE_URL", users.base_url.clone())
        .set_for(
            Service::Orders,
            "AUTH_JWKS_URL",
            format!("{}/.well-known/jwks.json", users.base_url),
        )
        .set_for(Service::Orders, "OUTBOX_RELAY_ENABLED", "false");
    let app = build_service::<Application>(&stack.env_for(Service::Orders).unwrap(), |_| {}).await;
    let store = app.store().clone();
    let server = Running::start(app).await;
    let client = OrdersClient::new(server.base_url.clone());
    let (alice, bob) = (token(&stack, 1, Role::User), token(&stack, 2, Role::User));
    let admin = token(&stack, 4, Role::Admin);
    let order = |user_id| CreateOrderRequest {
        user_id,
        product_id: 9,
        quantity: 1,
    };

    let mine = client.create_order(&alice, &order(1)).await.unwrap();
    assert_eq!(mine.user_id, 1);
    assert_eq!(
        problem_status(client.create_order(&alice, &order(2)).await),
        403,
        "in Bob's name"
    );
    assert_eq!(
        problem_status(client.get_order(&bob, mine.id).await),
        404,
        "Alice's order does not exist for Bob, as a missing one"
    );
    assert_eq!(problem_status(client.get_order(&bob, 999_999).await), 404);
    assert_eq!(
        problem_status(client.list_user_orders(&bob, 1, None, None).await),
        403
    );
    assert_eq!(client.get_order(&alice, mine.id).await.unwrap(), mine);
    assert!(
        client
            .list_user_orders(&bob, 2, None, None)
            .await
            .unwrap()
            .items
            .is_empty()
    );

    let for_bob = client.create_order(&admin, &order(2)).await.unwrap();
    assert_eq!(client.get_order(&bob, for_bob.id).await.unwrap().user_id, 2);
    match client.create_order(&admin, &order(424242)).await {
        Err(ClientError::Problem(p)) => {
            assert_eq!(p.status(), 400);
            assert_eq!(p.detail.as_deref(), Some("user 424242 does not exist"));
        }
        other => panic!("{other:?}"),
    }
    let http = reqwest::Client::new();
    let anonymous = http
        .post(format!("{}/orders", server.base_url))
        .json(&serde_json::json!({"userId": 3, "productId": 1, "quantity": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(
        count, 2,
        "only Alice's own order and the admin's order for Bob"
    );
    server.stop().await;
    users.stop().await;
    store.pool().close().await;
    remove_names(&stack.names, 0).await;
}

/// Tokens of an external OpenID Connect issuer are accepted when it is configured (its JWKS
/// served here by the test), and refused when it is not.
#[tokio::test]
async fn an_external_oidc_issuer_is_trusted_only_when_configured() {
    let idp = shopmesh_identity::TokenIssuer::new(
        std::sync::Arc::new(shopmesh_identity::KeyRing::new(
            shopmesh_identity::SigningKey::generate(),
            vec![],
        )),
        shopmesh_identity::TokenPolicy {
            issuer: "https://idp.example".into(),
            audience: "shopmesh-api".into(),
            access_ttl: Duration::from_secs(300),
        },
    );
    let jwks = serde_json::to_value(idp.keys().jwks()).unwrap();
    let idp_jwks = TestServer::start(poem::Route::new().at(
        "/certs",
        poem::endpoint::make_sync(move |_| poem::web::Json(jwks.clone())),
    ))
    .await;
    let external = AccessToken::new(idp.issue(7, Role::User).token);

    let without = Harness::start().await;
    assert_eq!(
        problem_status(
            without
                .client
                .list_user_orders(&external, 7, None, None)
                .await
        ),
        401,
        "not configured: not trusted"
    );
    without.stop().await;

    let with = Harness::start_on(
        test_stack()
            .set_for(Service::Orders, "AUTH_OIDC_ISSUER", "https://idp.example")
            .set_for(Service::Orders, "AUTH_OIDC_AUDIENCE", "shopmesh-api")
            .set_for(
                Service::Orders,
                "AUTH_OIDC_JWKS_URL",
                format!("{}/certs", idp_jwks.base_url),
            ),
    )
    .await;
    let page = with
        .client
        .list_user_orders(&external, 7, None, None)
        .await
        .unwrap();
    assert!(page.items.is_empty());
    assert_eq!(
        problem_status(with.client.list_user_orders(&external, 8, None, None).await),
        403,
        "the external user is user 7, with user 7's rights"
    );
    // The platform's own tokens still work beside it.
    assert!(
        with.client
            .list_user_orders(&with.admin, 8, None, None)
            .await
            .is_ok()
    );
    with.stop().await;
    idp_jwks.stop().await;
}

/// Every kind of bad token is a 401 problem on the orders port itself, for every operation.
#[tokio::test]
async fn every_kind_of_bad_token_is_refused_on_every_operation() {
    let h = Harness::start().await;
    let http = reqwest::Client::new();
    let url = |p: &str| format!("{}{p}", h.server.base_url);
    for (what, token) in shopmesh_testkit::refused_tokens(&h.stack) {
        for (method, path) in [
            ("POST", "/orders"),
            ("GET", "/orders/1"),
            ("GET", "/orders/user/1"),
        ] {
            let mut req = match method {
                "POST" => http
                    .post(url(path))
                    .json(&serde_json::json!({"userId": 1, "productId": 1, "quantity": 1})),
                _ => http.get(url(path)),
            };
            if let Some(t) = &token {
                req = req.bearer_auth(t.expose());
            }
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status().as_u16(), 401, "{what}: {method} {path}");
        }
    }
    assert_eq!(h.count("orders").await, 0, "nothing written");
    h.stop().await;
}

/// The users service rotates its key: orders fetches the key set again when the first token
/// of the new key arrives, keeps honouring the old key while it is published, and a flood of
/// tokens from unknown keys makes at most one fetch per refetch interval.
#[tokio::test]
async fn a_rotated_key_is_fetched_once_and_unknown_keys_cannot_force_fetches() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    use shopmesh_identity::{KeyRing, SigningKey, TokenIssuer, TokenPolicy};

    let issuer_of = |signing: SigningKey, retired: Vec<SigningKey>| {
        TokenIssuer::new(
            Arc::new(KeyRing::new(signing, retired)),
            TokenPolicy::platform_default(),
        )
    };
    let (old, new) = (SigningKey::generate(), SigningKey::generate());
    let before = issuer_of(old.clone(), vec![]);
    let after = issuer_of(new, vec![old]);
    let published = Arc::new(Mutex::new(
        serde_json::to_value(before.keys().jwks()).unwrap(),
    ));
    let fetches = Arc::new(AtomicU64::new(0));
    let (set, count) = (published.clone(), fetches.clone());
    let jwks = TestServer::start(poem::Route::new().at(
        "/jwks",
        poem::endpoint::make_sync(move |_| {
            count.fetch_add(1, Ordering::SeqCst);
            poem::web::Json(set.lock().unwrap().clone())
        }),
    ))
    .await;
    let stack = test_stack()
        .set_for(
            Service::Orders,
            "AUTH_JWKS_URL",
            format!("{}/jwks", jwks.base_url),
        )
        .set_for(Service::Orders, "AUTH_JWKS_MIN_REFETCH_SECS", "2")
        .set_for(Service::Orders, "OUTBOX_RELAY_ENABLED", "false");
    let app = build_service::<Application>(&stack.env_for(Service::Orders).unwrap(), |_| {}).await;
    let store = app.store().clone();
    let server = Running::start(app).await;
    let client = OrdersClient::new(server.base_url.clone());
    let list = |token: String| {
        let client = client.clone();
        async move {
            client
                .list_user_orders(&AccessToken::new(token), 5, None, None)
                .await
        }
    };

    assert!(list(before.issue(5, Role::User).token).await.is_ok());
    assert_eq!(fetches.load(Ordering::SeqCst), 1, "fetched on first use");
    assert!(list(before.issue(5, Role::User).token).await.is_ok());
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        1,
        "then served from the cache"
    );

    // Rotated more than the refetch interval after the last fetch.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    *published.lock().unwrap() = serde_json::to_value(after.keys().jwks()).unwrap();
    assert!(
        list(after.issue(5, Role::User).token).await.is_ok(),
        "the new key"
    );
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        2,
        "one fetch for the unknown kid"
    );
    assert!(
        list(before.issue(5, Role::User).token).await.is_ok(),
        "tokens of the retired key still pass"
    );

    for _ in 0..20 {
        let stranger = issuer_of(SigningKey::generate(), vec![]);
        assert_eq!(
            problem_status(list(stranger.issue(5, Role::User).token).await),
            401
        );
    }
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        2,
        "unknown keys within the refetch interval fetch nothing"
    );
    server.stop().await;
    store.pool().close().await;
    remove_names(&stack.names, 0).await;
    jwks.stop().await;
}
