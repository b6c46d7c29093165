//! The gateway's GraphQL and REST surfaces end to end: every operation and route, the error
//! codes before execution, introspection, the pages it serves and CORS.

mod platform;

use platform::*;

/// Lookups of ids that do not exist used to reach the users service every time (124 aliases,
/// 124 calls, again and again). "No such user" is now remembered briefly.
#[tokio::test]
async fn placing_an_order_leaves_the_user_rules_to_the_orders_service() {
    let backend = Backend::start().await;
    let gw = Running::start(&backend, backend.config()).await;
    backend.user_calls.store(0, Ordering::SeqCst);
    let order = json!({"input": {"userId": "3", "productId": "7", "quantity": 2}});
    let placed = gw.graphql(CREATE, order).await;
    assert_eq!(placed["data"]["createOrder"]["userId"], "3", "{placed}");
    let rest = gw.placed_order(2, 8).await;
    assert_eq!(rest.user_id, 2);
    assert_eq!(
        backend.user_calls.load(Ordering::SeqCst),
        0,
        "orders confirms the user; the gateway asks the users service nothing"
    );
    let short = gw
        .graphql(
            "mutation { createUser(input: {name: \"Pat\", email: \"pat@example.com\", password: \"short\"}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&short), Some("BAD_USER_INPUT"), "{short}");
    gw.server.stop().await;
    backend.stop().await;
}

#[tokio::test]
async fn every_graphql_operation_round_trips() {
    let backend = Backend::start().await;
    let gw = Running::start(&backend, backend.config()).await;

    let created = gw
        .graphql(
            CREATE,
            json!({"input": {"userId": "1", "productId": "101", "quantity": 2}}),
        )
        .await;
    let order = &created["data"]["createOrder"];
    assert_eq!(order["status"], "PENDING", "{created}");
    assert_eq!(
        (order["userId"].as_str(), order["quantity"].as_i64()),
        (Some("1"), Some(2))
    );
    let id: i64 = order["id"].as_str().unwrap().parse().unwrap();

    for message in ["first", "second"] {
        backend
            .mongo
            .insert_if_absent(&NewNotification {
                event_id: unique("evt"),
                order_id: id,
                user_id: 1,
                message: message.into(),
            })
            .await
            .unwrap();
    }
    let got = gw
        .graphql("query($id: ID!) { order(id: $id) { id quantity user { name email } notifications { message status orderId } } }", json!({"id": id.to_string()}))
        .await;
    let o = &got["data"]["order"];
    assert_eq!(o["user"]["name"], "Alice Johnson", "{got}");
    let messages: Vec<_> = o["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["message"].as_str().unwrap())
        .collect();
    assert_eq!(messages.len(), 2, "{got}");
    assert!(messages.contains(&"first") && messages.contains(&"second"));
    assert_eq!(o["notifications"][0]["status"], "SENT");

    let name = gw
        .graphql("query($id: ID!) { userName(id: $id) }", json!({"id": "1"}))
        .await;
    assert_eq!(name["data"]["userName"], "Alice Johnson");
    const CREATE_USER: &str = "mutation($input: CreateUserInput!, $key: String) \
        { createUser(input: $input, idempotencyKey: $key) { id name email } }";
    let email = format!("{}@example.com", unique("grace"));
    let grace = json!({"name": "Grace Hopper", "email": email, "password": "grace's password"});
    let made = gw
        .graphql(CREATE_USER, json!({"input": grace, "key": "grace-1"}))
        .await;
    assert_eq!(made["data"]["createUser"]["name"], "Grace Hopper", "{made}");
    let retried = gw
        .graphql(CREATE_USER, json!({"input": grace, "key": "grace-1"}))
        .await;
    assert_eq!(retried["data"], made["data"], "{retried}");
    let reused = gw
        .graphql(
            CREATE_USER,
            json!({"input": {"name": "Grace Again", "email": email, "password": "x1234567"}, "key": "grace-1"}),
        )
        .await;
    assert_eq!(error_code(&reused), Some("UNPROCESSABLE"), "{reused}");
    let again = gw
        .graphql(
            CREATE_USER,
            json!({"input": {"name": "Grace Again", "email": email, "password": "grace's password"}}),
        )
        .await;
    assert_eq!(error_code(&again), Some("CONFLICT"), "{again}");
    let bad_email = gw
        .graphql(
            CREATE_USER,
            json!({"input": {"name": "X", "email": "nope", "password": "long enough"}}),
        )
        .await;
    assert_eq!(
        error_code(&bad_email),
        Some("BAD_USER_INPUT"),
        "{bad_email}"
    );
    let user = gw
        .graphql("query { user(id: \"2\") { id name email } }", json!({}))
        .await;
    assert_eq!(user["data"]["user"]["name"], "Bob Smith");

    for product in 102..=104 {
        gw.graphql(
            CREATE,
            json!({"input": {"userId": "1", "productId": product.to_string(), "quantity": 1}}),
        )
        .await;
    }
    let page = gw.graphql("query { ordersByUser(userId: \"1\", first: 3) { nodes { id productId } pageInfo { hasNextPage endCursor } } }", json!({})).await;
    let conn = &page["data"]["ordersByUser"];
    assert_eq!(conn["nodes"].as_array().unwrap().len(), 3, "{page}");
    assert_eq!(conn["nodes"][0]["productId"], "104", "newest first");
    assert_eq!(conn["pageInfo"]["hasNextPage"], true);
    let rest_page = gw
        .graphql("query($after: String) { ordersByUser(userId: \"1\", first: 3, after: $after) { nodes { productId } pageInfo { hasNextPage } } }", json!({"after": conn["pageInfo"]["endCursor"]}))
        .await;
    assert_eq!(
        rest_page["data"]["ordersByUser"]["nodes"][0]["productId"],
        "101"
    );
    assert_eq!(
        rest_page["data"]["ordersByUser"]["pageInfo"]["hasNextPage"],
        false
    );

    // Typed errors.
    let missing = gw
        .graphql("query { order(id: \"999999\") { id } }", json!({}))
        .await;
    assert_eq!(missing["data"]["order"], Value::Null, "{missing}");
    assert!(
        missing["errors"].is_null(),
        "null, as the SDL says: {missing}"
    );
    // Every requested key stays, the missing one as null.
    let both = gw
        .graphql(
            r#"{ a: userName(id: "999999") b: userName(id: "1") }"#,
            json!({}),
        )
        .await;
    assert_eq!(
        both["data"],
        json!({"a": null, "b": "Alice Johnson"}),
        "{both}"
    );
    let bad_id = gw
        .graphql("query { order(id: \"abc\") { id } }", json!({}))
        .await;
    assert_eq!(error_code(&bad_id), Some("BAD_USER_INPUT"));
    assert_eq!(
        bad_id["data"],
        json!({"order": null}),
        "the key is kept: {bad_id}"
    );
    let no_user = gw
        .graphql(
            CREATE,
            json!({"input": {"userId": "999", "productId": "1", "quantity": 1}}),
        )
        .await;
    assert_eq!(error_code(&no_user), Some("BAD_USER_INPUT"), "{no_user}");
    let bad_qty = gw
        .graphql(
            CREATE,
            json!({"input": {"userId": "1", "productId": "1", "quantity": 0}}),
        )
        .await;
    assert_eq!(error_code(&bad_qty), Some("BAD_USER_INPUT"));
    let no_name = gw
        .graphql("query { userName(id: \"424242\") }", json!({}))
        .await;
    assert_eq!(
        (no_name["data"]["userName"].clone(), error_code(&no_name)),
        (Value::Null, None)
    );
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders")
        .fetch_one(backend.orders_store.pool())
        .await
        .unwrap();
    assert_eq!(count, 4, "rejected mutations wrote nothing");

    gw.server.stop().await;
    backend.stop().await;
}

#[tokio::test]
async fn every_rest_route_round_trips_and_docs_work_offline() {
    let backend = Backend::start().await;
    let gw = Running::start(&backend, backend.config()).await;
    let client = gw.client();
    let order = client
        .create_order(
            &gw.admin,
            None,
            &rest::CreateOrderRequest {
                user_id: 2,
                product_id: 7,
                quantity: 3,
                payment_token: None,
            },
        )
        .await
        .unwrap();
    let o = client.get_order(&gw.admin, order.id).await.unwrap();
    assert_eq!(o, order);
    assert!(matches!(
        client.get_order(&gw.admin, order.id + 100).await,
        Err(ClientError::Problem(p)) if p.status == 404
    ));
    let list = client
        .get_order_notifications(&gw.admin, order.id)
        .await
        .unwrap();
    assert!(list.items.is_empty());
    let p = client
        .list_user_orders(&gw.admin, 2, Some(10), None)
        .await
        .unwrap();
    assert_eq!(p.items, vec![order.clone()]);
    let new_user = rest::CreateUserRequest {
        name: "Linus".into(),
        email: shopmesh_openapi::runtime::Email(format!("{}@example.com", unique("linus"))),
        password: "linus's password".into(),
    };
    let key = Some("linus-sign-up");
    let u = client.create_user(key, &new_user).await.unwrap();
    assert_eq!(u.name, "Linus");
    // The key reaches the users service: a retry with it answers the same user.
    assert_eq!(client.create_user(key, &new_user).await.unwrap(), u);
    assert!(matches!(
        client.create_user(None, &new_user).await,
        Err(ClientError::Problem(p)) if p.status == 409
    ));
    let u = client.get_user(&gw.admin, 3).await.unwrap();
    assert_eq!(u.name, "Charlie Brown");
    let n = client.get_user_name(&gw.admin, 1).await.unwrap();
    assert_eq!(n.name, "Alice Johnson");
    // Any logged-in user may look up a name, as the contract says.
    let alice = backend.token(1, Role::User);
    let bob = client.get_user_name(&alice, 2).await.unwrap();
    assert_eq!((bob.id, bob.name.as_str()), (2, "Bob Smith"));
    for caller in [&gw.admin, &alice] {
        assert!(matches!(
            client.get_user_name(caller, 5000).await,
            Err(ClientError::Problem(p)) if p.status == 404
        ));
    }
    match client
        .create_order(
            &gw.admin,
            None,
            &rest::CreateOrderRequest {
                user_id: 5000,
                product_id: 7,
                quantity: 3,
                payment_token: None,
            },
        )
        .await
    {
        Err(ClientError::Problem(p)) if p.status == 400 => {
            assert!(p.detail.unwrap().contains("user 5000"));
        }
        other => panic!("{other:?}"),
    }

    let base = &gw.server.base_url;
    let spec = gw
        .http
        .get(format!("{base}/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // The committed contract itself, with its OpenAPI version, descriptions and headers.
    shopmesh_codegen::contract::assert_served(rest::CONTRACT_YAML, &spec)
        .unwrap_or_else(|e| panic!("{e}"));
    // And the routes promise the same, response headers included (the 429's `Retry-After`).
    let implemented = rest::GatewayEndpoints::implemented_spec();
    shopmesh_codegen::contract::assert_equivalent(rest::CONTRACT_YAML, &implemented)
        .unwrap_or_else(|e| panic!("{e}"));
    let page = gw
        .http
        .get(format!("{base}/graphql"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("shopmesh GraphiQL") && !page.contains("https://"),
        "GraphiQL needs no external assets"
    );
    let docs = gw.http.get(format!("{base}/docs")).send().await.unwrap();
    assert_eq!(docs.status().as_u16(), 200);
    gw.server.stop().await;
    backend.stop().await;
}

/// Every error raised before anything runs carries a conventional `extensions.code`.
#[tokio::test]
async fn errors_before_execution_carry_conventional_codes() {
    let backend = Backend::start().await;
    let mut config = backend.config();
    config.graphql.max_depth = 3;
    let gw = Running::start(&backend, config).await;
    for (query, code) in [
        ("{ order(id: ", "GRAPHQL_PARSE_FAILED"),
        ("{ nope }", "GRAPHQL_VALIDATION_FAILED"),
        (r#"{ order(id: true) { id } }"#, "GRAPHQL_VALIDATION_FAILED"),
        (
            r#"{ ordersByUser(userId: "1", first: 1) { nodes { user { name } } } }"#,
            "QUERY_LIMIT_EXCEEDED",
        ),
        (
            r#"{ ordersByUser(userId: "1", first: 100) { nodes { notifications { message } } } }"#,
            "QUERY_LIMIT_EXCEEDED",
        ),
    ] {
        let body = gw.graphql(query, json!({})).await;
        assert_eq!(error_code(&body), Some(code), "{query}: {body}");
    }
    backend.stop().await;
}

/// A web front end on a local development server can call the gateway from the browser
/// (CORS preflight and answer), and a page from an origin not allowed cannot.
#[tokio::test]
async fn browsers_on_allowed_origins_pass_cors() {
    let backend = Backend::start().await;
    let gw = Running::start(&backend, backend.config()).await;
    let url = format!("{}/graphql", gw.server.base_url);
    let preflight = gw
        .http
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "http://localhost:5173")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type, authorization",
        )
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let h = preflight.headers();
    assert_eq!(h["access-control-allow-origin"], "http://localhost:5173");
    assert_eq!(h["access-control-allow-credentials"], "true");
    let methods = h["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .to_ascii_uppercase();
    assert!(methods.contains("POST"), "{methods}");

    let answer = gw
        .http
        .post(&url)
        .header("origin", "http://localhost:5173")
        .json(&json!({"query": r#"{ userName(id: "1") }"#}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        answer.headers()["access-control-allow-origin"],
        "http://localhost:5173"
    );
    let exposed = answer.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(exposed.contains("retry-after"), "{exposed}");
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["data"]["userName"], "Alice Johnson");

    let foreign = gw
        .http
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(
        foreign
            .headers()
            .get("access-control-allow-origin")
            .is_none(),
        "{:?}",
        foreign.headers()
    );
    backend.stop().await;
}

/// graphql-js's `getIntrospectionQuery()` (default options), which GraphiQL, graphql-inspector,
/// Python gql and code generators send: 15 levels deep through `TypeRef`.
const STANDARD_INTROSPECTION: &str = r#"
query IntrospectionQuery {
  __schema {
    queryType { name }
    mutationType { name }
    subscriptionType { name }
    types { ...FullType }
    directives { name description locations args { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description
  fields(includeDeprecated: true) {
    name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason
  }
  inputFields { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
fragment TypeRef on __Type {
  kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name
    ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } }
}
"#;

/// Standard tools introspect with the depth limit on, while ordinary queries stay limited.
#[tokio::test]
async fn standard_introspection_works_under_the_depth_limit() {
    let backend = Backend::start().await;
    let gw = Running::start(&backend, backend.config()).await;
    let body = gw.graphql(STANDARD_INTROSPECTION, json!({})).await;
    assert!(body["errors"].is_null(), "{body}");
    let types = body["data"]["__schema"]["types"].as_array().unwrap();
    assert!(
        types.iter().any(|t| t["name"] == "OrderConnection"),
        "{body}"
    );
    assert_eq!(body["data"]["__schema"]["queryType"]["name"], "Query");
    backend.stop().await;
}

/// GraphiQL's page and assets, the index and the favicon are served by the gateway itself;
/// the page may load only from the gateway (its Content-Security-Policy says so), and every
/// asset it references is served.
#[tokio::test]
async fn the_shop_graphiql_the_index_and_the_favicon_are_served_from_the_gateway() {
    let backend = Backend::start().await;
    let gw = Running::start(&backend, backend.config()).await;
    let base = &gw.server.base_url;
    let get = |path: &str| gw.http.get(format!("{base}{path}")).send();
    let page = get("/graphql").await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("default-src 'self'") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
    let html = page.text().await.unwrap();
    let referenced: Vec<&str> = html
        .split(['"', '\''])
        .filter(|s| s.starts_with("/graphiql/") || s.starts_with("/favicon"))
        .collect();
    assert_eq!(referenced.len(), 6, "{referenced:?}");
    for path in referenced {
        let asset = get(path).await.unwrap();
        assert_eq!(asset.status(), 200, "{path}");
        let ty = asset.headers()["content-type"].to_str().unwrap().to_owned();
        let expected = match path.rsplit('.').next() {
            Some("js") => "text/javascript",
            Some("css") => "text/css",
            _ => "image/svg+xml",
        };
        assert!(ty.starts_with(expected), "{path}: {ty}");
        assert!(!asset.bytes().await.unwrap().is_empty(), "{path}");
    }
    // The shop at `/`: its script and stylesheet from the gateway, under a strict CSP.
    let shop = get("/").await.unwrap();
    assert_eq!(shop.status(), 200);
    let csp = shop.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self';") && !csp.contains("unsafe"),
        "{csp}"
    );
    let html = shop.text().await.unwrap();
    for asset in ["/shop/shop.js", "/shop/shop.css"] {
        assert!(html.contains(asset), "the shop loads {asset}");
        let served = get(asset).await.unwrap();
        assert_eq!(served.status(), 200, "{asset}");
        assert!(!served.bytes().await.unwrap().is_empty(), "{asset}");
    }
    let index = get("/dev").await.unwrap();
    assert_eq!(index.status(), 200);
    let index = index.text().await.unwrap();
    for link in [
        "/",
        "/graphql",
        "/docs",
        "/api/openapi.json",
        "/health/ready",
        "/metrics",
    ] {
        assert!(
            index.contains(&format!("href=\"{link}\"")),
            "the index links {link}"
        );
    }
    let favicon = get("/favicon.ico").await.unwrap();
    assert_eq!(favicon.status(), 200);
    assert!(
        favicon.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("image/svg+xml")
    );
    backend.stop().await;
}

/// The shop's script goes gzipped to a browser that accepts it (a quarter of its size) and as
/// it is to one that does not; a browser holding the current version gets 304 and no body.
#[tokio::test]
async fn the_shops_assets_are_sent_gzipped_and_revalidated() {
    use std::io::Read;
    let backend = Backend::start().await;
    let gw = Running::start(&backend, backend.config()).await;
    let url = format!("{}/shop/shop.js", gw.server.base_url);
    let plain = gw.http.get(&url).send().await.unwrap();
    assert!(plain.headers().get("content-encoding").is_none());
    let etag = plain.headers()["etag"].to_str().unwrap().to_owned();
    let plain = plain.bytes().await.unwrap();

    let zipped = gw
        .http
        .get(&url)
        .header("accept-encoding", "gzip, br")
        .send()
        .await
        .unwrap();
    assert_eq!(zipped.headers()["content-encoding"], "gzip");
    assert_eq!(zipped.headers()["vary"], "accept-encoding");
    let zipped = zipped.bytes().await.unwrap();
    assert!(
        zipped.len() * 3 < plain.len(),
        "{} of {}",
        zipped.len(),
        plain.len()
    );
    let mut unzipped = Vec::new();
    flate2::read::GzDecoder::new(&zipped[..])
        .read_to_end(&mut unzipped)
        .unwrap();
    assert_eq!(unzipped, plain);

    let cached = gw
        .http
        .get(&url)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), 304);
    assert!(cached.bytes().await.unwrap().is_empty());
    backend.stop().await;
}
