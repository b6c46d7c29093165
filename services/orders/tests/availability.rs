//! A database that goes away, or is not there at start: 503s, liveness without readiness,
//! recovery.

mod harness;

use harness::*;

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
        payment_token: None,
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
        h.client.create_order(&h.user(1), None, &req).await.ok()
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
