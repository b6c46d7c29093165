//! Tokens and ownership: who reaches what through GraphQL and REST, log-in limits per client,
//! every kind of bad token refused.

mod platform;

use platform::*;

/// Without a token only sign-up and log-in answer; with Alice's token, Alice's data and only
/// hers, also when the gateway serves it from its cache; an admin reads everything.
#[tokio::test]
async fn a_token_reaches_its_own_data_only_through_graphql_and_rest() {
    let backend = Backend::start().await;
    let gw = Running::start(&backend, backend.config()).await;
    let base = gw.server.base_url.clone();
    let as_client = |http: &reqwest::Client, query: &str, variables: Value| {
        let (http, base, query) = (http.clone(), base.clone(), query.to_owned());
        async move { testkit::graphql(&http, &base, &[], &query, variables).await }
    };

    // The admin orders for Bob; the order is now in the gateway's cache.
    let bobs = gw
        .graphql(
            CREATE,
            json!({"input": {"userId": "2", "productId": "5", "quantity": 1}}),
        )
        .await;
    let bobs_id = bobs["data"]["createOrder"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Anonymous: guarded fields answer UNAUTHENTICATED, public ones work.
    for query in [
        r#"{ order(id: "1") { id } }"#,
        "{ me { id } }",
        r#"{ ordersByUser(userId: "1") { nodes { id } } }"#,
        r#"mutation { createOrder(input: {userId: "1", productId: "1", quantity: 1}) { id } }"#,
    ] {
        let (_, body) = as_client(&gw.anonymous, query, json!({})).await;
        assert_eq!(
            error_code(&body),
            Some("UNAUTHENTICATED"),
            "{query}: {body}"
        );
    }
    let (_, login) = as_client(
        &gw.anonymous,
        "mutation { login(email: \"alice@example.com\", password: \"shopmesh-demo\") { accessToken refreshToken expiresIn tokenType } }",
        json!({}),
    )
    .await;
    let tokens = &login["data"]["login"];
    assert_eq!(tokens["tokenType"], "Bearer", "{login}");
    let (_, wrong) = as_client(
        &gw.anonymous,
        "mutation { login(email: \"alice@example.com\", password: \"not it\") { accessToken } }",
        json!({}),
    )
    .await;
    assert_eq!(error_code(&wrong), Some("UNAUTHENTICATED"), "{wrong}");

    // Alice.
    let alice = AccessToken::new(tokens["accessToken"].as_str().unwrap());
    let as_alice = testkit::authed_http(&alice);
    let (_, me) = as_client(&as_alice, "{ me { id name } }", json!({})).await;
    assert_eq!(
        me["data"]["me"],
        json!({"id": "1", "name": "Alice Johnson"}),
        "{me}"
    );
    // Bob's order answers as a missing one does: null, nothing to tell them apart.
    let mut answers = Vec::new();
    for id in [bobs_id.to_string(), "999999".to_owned()] {
        let query = format!(r#"{{ order(id: "{id}") {{ id }} }}"#);
        answers.push(as_client(&as_alice, &query, json!({})).await.1);
    }
    assert_eq!(answers[0], json!({"data": {"order": null}}));
    assert_eq!(answers[0], answers[1]);
    // A display name is for any logged-in user (the contract says so); a missing one is null.
    let (_, names) = as_client(
        &as_alice,
        r#"{ b: userName(id: "2") none: userName(id: "999999") }"#,
        json!({}),
    )
    .await;
    assert_eq!(names, json!({"data": {"b": "Bob Smith", "none": null}}));
    for query in [
        r#"{ user(id: "2") { name } }"#.to_owned(),
        r#"{ ordersByUser(userId: "2") { nodes { id } } }"#.to_owned(),
        r#"mutation { createOrder(input: {userId: "2", productId: "1", quantity: 1}) { id } }"#
            .to_owned(),
    ] {
        let (_, body) = as_client(&as_alice, &query, json!({})).await;
        assert_eq!(error_code(&body), Some("FORBIDDEN"), "{query}: {body}");
    }
    let (_, own) = as_client(
        &as_alice,
        r#"mutation { createOrder(input: {userId: "1", productId: "3", quantity: 1}) { id user { name } } }"#,
        json!({}),
    )
    .await;
    assert_eq!(
        own["data"]["createOrder"]["user"]["name"], "Alice Johnson",
        "{own}"
    );

    // A token that does not verify is refused as a whole: 401, no data.
    let forged = testkit::authed_http(&AccessToken::new("eyJhbGciOiJub25lIn0.e30."));
    let (status, body) = as_client(&forged, r#"{ userName(id: "1") }"#, json!({})).await;
    assert_eq!(
        (status, error_code(&body)),
        (401, Some("UNAUTHENTICATED")),
        "{body}"
    );

    // REST: the same rules, as problems.
    let rest = |http: &reqwest::Client, path: &str| {
        let (http, url) = (http.clone(), format!("{base}{path}"));
        async move {
            let resp = http.get(url).send().await.unwrap();
            let status = resp.status().as_u16();
            let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
            (status, ct)
        }
    };
    let (status, ct) = rest(&gw.anonymous, "/api/users/1").await;
    assert_eq!(status, 401);
    assert!(ct.starts_with("application/problem+json"), "{ct}");
    assert_eq!(
        rest(&as_alice, &format!("/api/orders/{bobs_id}")).await.0,
        404,
        "cached, still Bob's: as missing as an order that never was"
    );
    assert_eq!(rest(&as_alice, "/api/orders/999999").await.0, 404);
    assert_eq!(
        rest(&as_alice, &format!("/api/orders/{bobs_id}/notifications"))
            .await
            .0,
        404,
        "Bob's order, through its notifications, is as missing"
    );
    assert_eq!(
        rest(&as_alice, "/api/orders/999999/notifications").await.0,
        404
    );
    assert_eq!(rest(&as_alice, "/api/users/2").await.0, 403);
    assert_eq!(rest(&as_alice, "/api/users/1").await.0, 200);
    assert_eq!(
        rest(&gw.http, &format!("/api/orders/{bobs_id}")).await.0,
        200,
        "the admin"
    );
    let issued = gw
        .anonymous
        .post(format!("{base}/api/auth/token"))
        .json(&json!({"email": "bob@example.com", "password": "shopmesh-demo"}))
        .send()
        .await
        .unwrap();
    assert_eq!(issued.status().as_u16(), 200);
    let issued: Value = issued.json().await.unwrap();
    let bob = AccessToken::new(issued["accessToken"].as_str().unwrap());
    assert_eq!(
        rest(
            &testkit::authed_http(&bob),
            &format!("/api/orders/{bobs_id}")
        )
        .await
        .0,
        200
    );

    // Refresh and log out through GraphQL.
    let refresh = tokens["refreshToken"].as_str().unwrap();
    let (_, renewed) = as_client(
        &gw.anonymous,
        "mutation($r: String!) { refreshToken(refreshToken: $r) { refreshToken } }",
        json!({"r": refresh}),
    )
    .await;
    let next = renewed["data"]["refreshToken"]["refreshToken"]
        .as_str()
        .unwrap();
    let (_, out) = as_client(
        &gw.anonymous,
        "mutation($r: String!) { logout(refreshToken: $r) }",
        json!({"r": next}),
    )
    .await;
    assert_eq!(out["data"]["logout"], true, "{out}");
    let (_, dead) = as_client(
        &gw.anonymous,
        "mutation($r: String!) { refreshToken(refreshToken: $r) { refreshToken } }",
        json!({"r": next}),
    )
    .await;
    assert_eq!(error_code(&dead), Some("UNAUTHENTICATED"), "{dead}");
    gw.server.stop().await;
    backend.stop().await;
}

/// Failed log-ins through the gateway count against the client that made them (the gateway
/// forwards its address), not against the gateway: one client locking itself out does not lock
/// out the others, and its 429 says when to retry, over REST and GraphQL.
#[tokio::test]
async fn log_in_limits_through_the_gateway_are_per_client() {
    let backend = Backend::start_on(
        test_stack()
            .set_for(Service::Users, "LOGIN_MAX_FAILURES", "100")
            .set_for(Service::Users, "LOGIN_MAX_FAILURES_PER_ADDRESS", "3")
            .set_for(Service::Users, "LOGIN_LOCK_SECS", "60"),
    )
    .await;
    let gw = Running::start(&backend, backend.config()).await;
    let log_in = |from: &'static str, password: &'static str| {
        let (http, url) = (
            gw.anonymous.clone(),
            format!("{}/api/auth/token", gw.server.base_url),
        );
        async move {
            let resp = http
                .post(url)
                .header("x-forwarded-for", from)
                .json(&json!({"email": "alice@example.com", "password": password}))
                .send()
                .await
                .unwrap();
            let retry = resp
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            (resp.status().as_u16(), retry)
        }
    };
    for _ in 0..3 {
        assert_eq!(log_in("203.0.113.50", "guess").await.0, 401);
    }
    let (status, retry) = log_in("203.0.113.50", "shopmesh-demo").await;
    assert_eq!(status, 429, "this client is locked out");
    let secs: u64 = retry.expect("Retry-After").parse().unwrap();
    assert!((1..=60).contains(&secs), "{secs}");
    assert_eq!(
        log_in("203.0.113.51", "shopmesh-demo").await.0,
        200,
        "another client is not"
    );
    let (_, body) = gw
        .graphql_from(
            "203.0.113.50",
            r#"mutation { login(email: "bob@example.com", password: "shopmesh-demo") { accessToken } }"#,
            json!({}),
        )
        .await;
    assert_eq!(error_code(&body), Some("TOO_MANY_REQUESTS"), "{body}");
    assert!(
        body["errors"][0]["extensions"]["retryAfter"]
            .as_u64()
            .is_some(),
        "{body}"
    );
    gw.server.stop().await;
    backend.stop().await;
}

/// Every kind of bad token is refused by the gateway: a 401 problem on REST, a 401 with
/// `UNAUTHENTICATED` on GraphQL, before anything runs downstream.
#[tokio::test]
async fn every_kind_of_bad_token_is_refused_on_rest_and_graphql() {
    let backend = Backend::start().await;
    let gw = Running::start(&backend, backend.config()).await;
    let base = gw.server.base_url.clone();
    let before = gw.gateway.backends.calls.users.load(Ordering::SeqCst)
        + gw.gateway.backends.calls.orders.load(Ordering::SeqCst);
    for (what, token) in testkit::refused_tokens(&backend.stack) {
        let with = |req: reqwest::RequestBuilder| match &token {
            Some(t) => req.bearer_auth(t.expose()),
            None => req,
        };
        let rest = with(gw.anonymous.get(format!("{base}/api/users/1")))
            .send()
            .await
            .unwrap();
        assert_eq!(rest.status().as_u16(), 401, "{what}: REST");
        let graphql = with(gw.anonymous.post(format!("{base}/graphql")))
            .json(&json!({"query": "{ user(id: \"1\") { name } }"}))
            .send()
            .await
            .unwrap();
        let status = graphql.status().as_u16();
        let body: Value = graphql.json().await.unwrap();
        assert_eq!(error_code(&body), Some("UNAUTHENTICATED"), "{what}: {body}");
        // No token: the guarded field refuses (200); a token that does not verify: 401.
        assert_eq!(status, if token.is_some() { 401 } else { 200 }, "{what}");
    }
    let after = gw.gateway.backends.calls.users.load(Ordering::SeqCst)
        + gw.gateway.backends.calls.orders.load(Ordering::SeqCst);
    assert_eq!(after, before, "no downstream call");
    gw.server.stop().await;
    backend.stop().await;
}
