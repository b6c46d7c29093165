//! Tokens and ownership: shoppers reach their own orders, admins only existing users; external
//! issuers; bad tokens; key rotation.

mod harness;

use harness::*;

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
        payment_token: None,
    };

    let mine = client.create_order(&alice, None, &order(1)).await.unwrap();
    assert_eq!(mine.user_id, 1);
    assert_eq!(
        problem_status(client.create_order(&alice, None, &order(2)).await),
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

    let for_bob = client.create_order(&admin, None, &order(2)).await.unwrap();
    assert_eq!(client.get_order(&bob, for_bob.id).await.unwrap().user_id, 2);
    match client.create_order(&admin, None, &order(424242)).await {
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
