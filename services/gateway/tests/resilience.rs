//! Downstream timeouts, outages and hung services: typed errors, circuits, the rest working.

mod platform;

use platform::*;

#[tokio::test]
async fn downstream_timeout_and_outage_are_typed_errors_not_hangs() {
    let backend = Backend::start().await;
    let slow = TestServer::start(poem::endpoint::make(|_| async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        "too late"
    }))
    .await;
    let mut config = backend.config();
    config.order_service_url = slow.base_url.clone();
    config.user_service_url = "http://127.0.0.1:1".into();
    config.downstream_timeout = Duration::from_millis(300);
    let gw = Running::start(&backend, config).await;

    let start = Instant::now();
    let body = gw.graphql("{ order(id: \"1\") { id } }", json!({})).await;
    assert!(
        start.elapsed() < Duration::from_millis(1500),
        "answered within the timeout: {:?}",
        start.elapsed()
    );
    assert_eq!(error_code(&body), Some("DOWNSTREAM_TIMEOUT"), "{body}");
    assert_eq!(body["errors"][0]["extensions"]["service"], "orders");
    let rest_resp = gw
        .http
        .get(format!("{}/api/orders/1", gw.server.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(rest_resp.status().as_u16(), 504);

    let down = gw.graphql("{ userName(id: \"1\") }", json!({})).await;
    assert_eq!(error_code(&down), Some("DOWNSTREAM_UNAVAILABLE"), "{down}");
    let rest_resp = gw
        .http
        .get(format!("{}/api/users/1", gw.server.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(rest_resp.status().as_u16(), 503);
    let ready = gw
        .http
        .get(format!("{}/health/ready", gw.server.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        ready.status().as_u16(),
        200,
        "still ready: it serves what it can while downstream is away"
    );
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["status"], "degraded", "{ready}");
    assert_eq!(ready["checks"]["users"], "not answering", "{ready}");

    gw.server.stop().await;
    slow.stop().await;
    backend.stop().await;
}

/// Orders hangs (accepts connections, never answers): after a few calls time out its circuit
/// opens and order reads fail at once with DOWNSTREAM_UNAVAILABLE instead of each waiting for
/// the timeout, user reads keep working, and orders is used again by itself once it answers.
#[tokio::test]
async fn a_hung_service_trips_its_circuit_and_the_rest_keeps_working() {
    let backend = Backend::start().await;
    let target = testkit::stack::authority(&backend.orders.base_url).unwrap();
    let proxy = TcpProxy::start(&target).await;
    let mut config = backend.config();
    config.order_service_url = format!("http://{}", proxy.addr);
    config.downstream_timeout = Duration::from_millis(300);
    config.resilience.failure_threshold = 3;
    config.resilience.open_for = Duration::from_millis(1500);
    let gw = Running::start(&backend, config).await;
    let order_calls = || gw.gateway.backends.calls.orders.load(Ordering::SeqCst);
    let order = |id: u32| format!(r#"{{ order(id: "{}") {{ id }} }}"#, 990_000 + id);

    proxy.hang();
    let mut codes = Vec::new();
    for id in 0..12 {
        let body = gw.graphql(&order(id), json!({})).await;
        codes.push(error_code(&body).unwrap_or("none").to_owned());
    }
    assert_eq!(
        &codes[..3],
        ["DOWNSTREAM_TIMEOUT"; 3],
        "the first calls wait for their timeout"
    );
    assert!(
        codes[3..].iter().all(|c| c == "DOWNSTREAM_UNAVAILABLE"),
        "then the circuit is open: {codes:?}"
    );
    assert_eq!(order_calls(), 3, "an open circuit sends nothing to orders");
    let user = gw.graphql(r#"{ user(id: "1") { name } }"#, json!({})).await;
    assert_eq!(user["data"]["user"]["name"], "Alice Johnson", "{user}");

    proxy.restore();
    let recovered = eventually(
        "order reads to recover",
        Duration::from_secs(10),
        || async {
            let body = gw.graphql(&order(0), json!({})).await;
            // Order 990000 does not exist: null without an error means orders answered.
            (body["errors"].is_null() && body["data"]["order"].is_null()).then_some(body)
        },
    )
    .await;
    assert_eq!(recovered["data"]["order"], Value::Null);
    backend.stop().await;
}
