//! What one client may cost: rate limits per client, user and role, shared across replicas;
//! query depth, complexity, aliases and the downstream-call budget.

mod platform;

use platform::*;

/// Aliases used to multiply what one request costs: 40 aliased `ordersByUser(first: 100)` with
/// notifications (4,000 gRPC calls), 124 aliased `user` lookups, 120 aliased `createOrder`
/// (120 writes under a limit of 10 requests a minute). Each is now rejected before anything
/// runs, and the downstream call counters prove it.
#[tokio::test]
async fn aliased_fan_out_is_rejected_before_any_downstream_call() {
    let backend = Backend::start().await;
    let gw = Running::start(&backend, backend.config()).await;
    let calls = |gw: &Running| {
        let c = &gw.gateway.backends.calls;
        [&c.users, &c.orders, &c.notifications].map(|n| n.load(Ordering::SeqCst))
    };
    let aliased = |n: usize, field: &str| -> String {
        (0..n)
            .map(|i| format!("a{i}: {}", field.replace("$I", &(1000 + i).to_string())))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let attacks = [
        format!(
            "{{ {} }}",
            aliased(
                40,
                r#"ordersByUser(userId: "1", first: 100) { nodes { notifications { message } } }"#
            )
        ),
        format!("{{ {} }}", aliased(124, r#"user(id: "$I") { name }"#)),
        format!(
            "mutation {{ {} }}",
            aliased(
                120,
                r#"createOrder(input: {userId: "1", productId: "$I", quantity: 1}) { id }"#
            )
        ),
    ];
    let before = calls(&gw);
    let orders_before: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders")
        .fetch_one(backend.orders_store.pool())
        .await
        .unwrap();
    for attack in &attacks {
        let body = gw.graphql(attack, json!({})).await;
        assert_eq!(error_code(&body), Some("QUERY_LIMIT_EXCEEDED"), "{body}");
        assert!(body["data"].is_null(), "nothing ran: {body}");
    }
    assert_eq!(calls(&gw), before, "no users, orders or notifications call");
    let orders_after: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders")
        .fetch_one(backend.orders_store.pool())
        .await
        .unwrap();
    assert_eq!(orders_after, orders_before, "no order written");

    // At the limits, operations still run.
    let ok = gw
        .graphql(
            &format!("{{ {} }}", aliased(20, r#"userName(id: "1")"#)),
            json!({}),
        )
        .await;
    assert!(ok["errors"].is_null(), "{ok}");
    let writes = gw
        .graphql(
            &format!(
                "mutation {{ {} }}",
                aliased(
                    5,
                    r#"createOrder(input: {userId: "1", productId: "$I", quantity: 1}) { id }"#
                )
            ),
            json!({}),
        )
        .await;
    assert!(writes["errors"].is_null(), "{writes}");
    gw.server.stop().await;
    backend.stop().await;
}

/// Behind a proxy that appends the peer to `X-Forwarded-For`, a client that writes a new
/// first entry on every request is still one client (30 of 30 got through when the first,
/// client-chosen entry was the key).
#[tokio::test]
async fn a_client_cannot_escape_the_rate_limit_by_forging_forwarded_for() {
    let backend = Backend::start().await;
    let mut config = backend.config();
    limit_every_tier(&mut config, 10);
    let gw = Running::start(&backend, config).await;
    // Anonymous: counted by address (answered 401, which still counts).
    let mut passed = 0;
    for i in 0..30 {
        let resp = gw
            .anonymous
            .get(format!("{}/api/users/1/name", gw.server.base_url))
            .header("x-forwarded-for", format!("198.18.0.{i}, 203.0.113.77"))
            .send()
            .await
            .unwrap();
        if resp.status().as_u16() != 429 {
            passed += 1;
        }
    }
    assert_eq!(
        passed, 10,
        "the limit applies to the address the proxy appended"
    );
    gw.server.stop().await;
    backend.stop().await;
}

#[tokio::test]
async fn rate_limit_rejects_the_eleventh_request_and_is_shared_between_replicas() {
    let backend = Backend::start().await;
    let mut config = backend.config();
    limit_every_tier(&mut config, 10);
    let gw = Running::start(&backend, config.clone()).await;
    let get = |gw: &Running, ip: &str, path: &str| {
        let req = gw
            .http
            .get(format!("{}{path}", gw.server.base_url))
            .header("x-forwarded-for", ip);
        async move { req.send().await.unwrap() }
    };
    for i in 0..10 {
        assert_eq!(
            get(&gw, "203.0.113.7", "/api/users/1/name")
                .await
                .status()
                .as_u16(),
            200,
            "request {}",
            i + 1
        );
    }
    let eleventh = get(&gw, "203.0.113.7", "/api/users/1/name").await;
    assert_eq!(eleventh.status().as_u16(), 429);
    let retry_after: u64 = eleventh.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
    assert!(
        eleventh.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/problem+json")
    );
    let (status, _) = gw
        .graphql_from("203.0.113.7", "{ userName(id: \"1\") }", json!({}))
        .await;
    assert_eq!(status, 429, "GraphQL is limited alike");
    let bob = testkit::authed_http(&backend.token(2, Role::User));
    let other = bob
        .get(format!("{}/api/users/2/name", gw.server.base_url))
        .header("x-forwarded-for", "203.0.113.7")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status().as_u16(), 200, "other clients unaffected");
    for _ in 0..15 {
        assert_eq!(
            get(&gw, "203.0.113.7", "/health/live")
                .await
                .status()
                .as_u16(),
            200,
            "health is not limited"
        );
    }
    assert!(gw.gateway.limiter.stats.rejected.load(Ordering::Relaxed) >= 2);
    let metrics = get(&gw, "203.0.113.7", "/metrics")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("gateway_rate_limited_total"),
        "metrics are not limited and count rejections"
    );
    for line in metrics.lines() {
        if let Some(typed) = line.strip_prefix("# TYPE ") {
            let name = typed.split_whitespace().next().unwrap_or_default();
            assert!(
                metrics.contains(&format!("# HELP {name} ")),
                "{name} has no # HELP line"
            );
        }
    }
    assert!(
        metrics.contains(
            r#"http_requests_total{service="gateway",operation="api",method="GET",status="429"}"#
        ),
        "{metrics}"
    );

    // Two replicas sharing one Redis together allow exactly the limit.
    let mut shared = config.clone();
    shared.cache_prefix = format!("{}:", unique("gwshared"));
    let (a, b) = (
        Running::start(&backend, shared.clone()).await,
        Running::start(&backend, shared).await,
    );
    let mut ok = 0;
    for i in 0..20 {
        let replica = if i % 2 == 0 { &a } else { &b };
        if get(replica, "192.0.2.44", "/api/users/2")
            .await
            .status()
            .as_u16()
            == 200
        {
            ok += 1;
        }
    }
    assert_eq!(ok, 10, "20 requests over two replicas, limit 10");

    // With a larger limit each replica leases several requests per Redis round trip; together
    // they still never exceed the limit, and at most a lease per replica goes unused.
    let mut leased = shared_config(&config, 300);
    leased.cache_prefix = format!("{}:", unique("gwlease"));
    let (c, d) = (
        Running::start(&backend, leased.clone()).await,
        Running::start(&backend, leased).await,
    );
    let mut ok = 0;
    for i in 0..400 {
        let replica = if i % 2 == 0 { &c } else { &d };
        if get(replica, "192.0.2.45", "/health/live")
            .await
            .status()
            .as_u16()
            == 200
            && get(replica, "192.0.2.45", "/api/users/2/name")
                .await
                .status()
                .as_u16()
                == 200
        {
            ok += 1;
        }
    }
    assert!(
        (296..=300).contains(&ok),
        "two replicas, limit 300, lease 3: allowed {ok}"
    );
    for r in [c, d] {
        r.server.stop().await;
    }
    for r in [a, b, gw] {
        r.server.stop().await;
    }
    backend.stop().await;
}

#[tokio::test]
async fn depth_complexity_and_introspection_limits() {
    let backend = Backend::start().await;
    let mut config = backend.config();
    config.graphql = GraphqlConfig {
        max_depth: 3,
        max_complexity: 8,
        introspection: false,
        ..config.graphql
    };
    let gw = Running::start(&backend, config).await;
    let deep = gw
        .graphql(
            "{ ordersByUser(userId: \"1\", first: 1) { nodes { user { name } } pageInfo { endCursor } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&deep), Some("QUERY_LIMIT_EXCEEDED"), "{deep}");
    assert!(
        deep["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("nested 4 levels deep"),
        "{deep}"
    );
    let wide = gw.graphql("{ a: userName(id: \"1\") b: userName(id: \"1\") c: userName(id: \"1\") d: userName(id: \"1\") e: userName(id: \"1\") f: userName(id: \"1\") g: userName(id: \"1\") h: userName(id: \"1\") i: userName(id: \"1\") }", json!({})).await;
    assert!(
        wide["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("too complex"),
        "{wide}"
    );
    let fine = gw.graphql("{ userName(id: \"1\") }", json!({})).await;
    assert_eq!(fine["data"]["userName"], "Alice Johnson");
    let intro = gw
        .graphql("{ __schema { queryType { name } } }", json!({}))
        .await;
    assert!(
        intro["data"]["__schema"].is_null(),
        "introspection disabled: {intro}"
    );
    let open = Running::start(&backend, backend.config()).await;
    let intro = open
        .graphql("{ __schema { queryType { name } } }", json!({}))
        .await;
    assert_eq!(
        intro["data"]["__schema"]["queryType"]["name"], "Query",
        "enabled by default"
    );
    open.server.stop().await;
    let big = "x".repeat(70 * 1024);
    let resp = gw
        .http
        .post(format!("{}/graphql", gw.server.base_url))
        .json(&json!({ "query": format!("{{ userName(id: \"{big}\") }}") }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 413, "body limit");
    gw.server.stop().await;
    backend.stop().await;
}

/// A list's cost is what each element selects times its `first` (the contract's
/// `@listSize`), and each order's notifications cost a gRPC call (`@cost`): one
/// `ordersByUser(first: 100)` with notifications is over the default limit of 250 and is
/// rejected before any call, while a page of 20 is served.
#[tokio::test]
async fn a_list_costs_its_first_times_what_each_element_selects() {
    let backend = Backend::start().await;
    let gw = Running::start(&backend, backend.config()).await;
    let calls = || {
        let c = &gw.gateway.backends.calls;
        [&c.users, &c.orders, &c.notifications].map(|n| n.load(Ordering::SeqCst))
    };
    let page = |first: u32| {
        format!(
            r#"{{ ordersByUser(userId: "1", first: {first}) {{ nodes {{ notifications {{ message }} }} }} }}"#
        )
    };
    let before = calls();
    let big = gw.graphql(&page(100), json!({})).await;
    let message = big["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("too complex"), "{big}");
    assert!(big["data"].is_null(), "{big}");
    assert_eq!(calls(), before, "rejected before any downstream call");

    let small = gw.graphql(&page(20), json!({})).await;
    assert!(small["errors"].is_null(), "{small}");
    assert!(small["data"]["ordersByUser"]["nodes"].is_array(), "{small}");
    backend.stop().await;
}

/// The rate limit counts operations, not HTTP requests: each mutation counts as a request, so
/// under a limit of 10 a client sending 5 createOrder per request places 10 orders, not 20.
#[tokio::test]
async fn each_mutation_counts_against_the_rate_limit() {
    let backend = Backend::start().await;
    let gw = Running::start(&backend, shared_config(&backend.config(), 10)).await;
    let five = (0..5)
        .map(|i| {
            format!(r#"o{i}: createOrder(input: {{userId: "1", productId: "{}", quantity: 1}}) {{ id }}"#, 50 + i)
        })
        .collect::<Vec<_>>()
        .join(" ");
    let mutation = format!("mutation {{ {five} }}");
    let mut placed = 0;
    let mut limited = 0;
    for _ in 0..4 {
        let (status, body) = gw.graphql_from("198.51.100.77", &mutation, json!({})).await;
        if let Some(data) = body["data"].as_object() {
            placed += data.values().filter(|o| o["id"].is_string()).count();
        }
        if status == 429 || error_code(&body) == Some("RATE_LIMITED") {
            limited += 1;
        }
    }
    assert_eq!(placed, 10, "10 orders under a limit of 10");
    assert_eq!(limited, 2, "the third and fourth requests are refused");
    backend.stop().await;
}

/// Each GraphQL request has a budget of downstream calls: with a budget of 3, a query that
/// would look up 5 uncached users makes 3 calls and answers the other 2 fields with
/// QUERY_LIMIT_EXCEEDED.
#[tokio::test]
async fn a_request_makes_no_more_downstream_calls_than_its_budget() {
    let backend = Backend::start().await;
    let mut config = backend.config();
    config.graphql.max_downstream_calls = 3;
    let gw = Running::start(&backend, config).await;
    let before = gw.gateway.backends.calls.users.load(Ordering::SeqCst);
    let query = (1..=5)
        .map(|i| format!(r#"u{i}: user(id: "{i}") {{ name }}"#))
        .collect::<Vec<_>>()
        .join(" ");
    let body = gw.graphql(&format!("{{ {query} }}"), json!({})).await;
    let calls = gw.gateway.backends.calls.users.load(Ordering::SeqCst) - before;
    assert_eq!(calls, 3, "{body}");
    let limited = body["errors"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter(|e| e["extensions"]["code"] == "QUERY_LIMIT_EXCEEDED")
                .count()
        })
        .unwrap_or(0);
    assert_eq!(limited, 2, "{body}");
    backend.stop().await;
}

/// Loading the GraphQL page or the spec is not an API call and does not use up the rate limit.
#[tokio::test]
async fn pages_and_the_spec_do_not_count_against_the_rate_limit() {
    let backend = Backend::start().await;
    let gw = Running::start(&backend, shared_config(&backend.config(), 2)).await;
    let ip = "198.51.100.91";
    for path in [
        "/",
        "/favicon.ico",
        "/graphql",
        "/graphiql/graphiql.min.js",
        "/api/openapi.json",
        "/graphql",
        "/favicon.ico",
        "/api/openapi.json",
    ] {
        let resp = gw
            .http
            .get(format!("{}{path}", gw.server.base_url))
            .header("x-forwarded-for", ip)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{path}");
    }
    for _ in 0..2 {
        let (status, body) = gw
            .graphql_from(ip, r#"{ userName(id: "1") }"#, json!({}))
            .await;
        assert_eq!(
            (status, &body["data"]["userName"]),
            (200, &json!("Alice Johnson"))
        );
    }
    let (status, _) = gw
        .graphql_from(ip, r#"{ userName(id: "1") }"#, json!({}))
        .await;
    assert_eq!(status, 429, "the third API call is over the limit of 2");
    backend.stop().await;
}

/// Every limited answer, REST and GraphQL, carries the draft-ietf-httpapi-ratelimit-headers
/// fields: the policy, and what is left; a GraphQL request that costs more takes more; a
/// refusal says 0 left and when to retry.
#[tokio::test]
async fn answers_carry_the_ratelimit_fields() {
    let backend = Backend::start().await;
    let gw = Running::start(&backend, shared_config(&backend.config(), 10)).await;
    let base = &gw.server.base_url;
    let ip = "198.51.100.91";
    let field = |r: &reqwest::Response, name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let remaining = |v: &str| -> u32 {
        let r = v.split(';').find_map(|p| p.strip_prefix("r=")).unwrap();
        r.parse().unwrap()
    };
    let rest_call = || {
        gw.http
            .get(format!("{base}/api/users/1/name"))
            .header("x-forwarded-for", ip)
            .send()
    };
    let rest = rest_call().await.unwrap();
    assert_eq!(rest.status(), 200);
    assert_eq!(
        field(&rest, "ratelimit-policy").as_deref(),
        Some("\"default\";q=10;w=60")
    );
    let left = field(&rest, "ratelimit").expect("RateLimit on a REST answer");
    assert!(left.starts_with("\"default\";r=9;t="), "{left}");

    // A GraphQL query of complexity 2..100 counts as one request more than nothing.
    let post = |query: &str| {
        gw.http
            .post(format!("{base}/graphql"))
            .header("x-forwarded-for", ip)
            .json(&json!({ "query": query }))
            .send()
    };
    let cheap = post(r#"{ userName(id: "1") }"#).await.unwrap();
    assert_eq!(
        field(&cheap, "ratelimit-policy").as_deref(),
        Some("\"default\";q=10;w=60")
    );
    assert_eq!(remaining(&field(&cheap, "ratelimit").unwrap()), 8);
    // Three mutations count as three requests: one by the middleware, two by the operation.
    let three = post(
        r#"mutation { a: createOrder(input: {userId: "1", productId: "1", quantity: 1}) { id }
                      b: createOrder(input: {userId: "1", productId: "2", quantity: 1}) { id }
                      c: createOrder(input: {userId: "1", productId: "3", quantity: 1}) { id } }"#,
    )
    .await
    .unwrap();
    assert_eq!(remaining(&field(&three, "ratelimit").unwrap()), 5);
    // Five more allowed, then refused with 0 left and Retry-After.
    for _ in 0..5 {
        post(r#"{ userName(id: "1") }"#).await.unwrap();
    }
    let refused = rest_call().await.unwrap();
    assert_eq!(refused.status(), 429);
    let retry: u64 = field(&refused, "retry-after").unwrap().parse().unwrap();
    assert_eq!(
        field(&refused, "ratelimit").unwrap(),
        format!("\"default\";r=0;t={retry}")
    );
    assert!(field(&refused, "ratelimit-policy").is_some());
    backend.stop().await;
}

/// A logged-in user is counted by who they are, with their role's limit, wherever they call
/// from; anonymous clients by address, with the anonymous limit.
#[tokio::test]
async fn the_rate_limit_is_per_user_with_limits_by_role_and_per_address_for_anonymous_clients() {
    let backend = Backend::start().await;
    let mut config = backend.config();
    config.rate_limit.max_requests = 2;
    config.rate_limit.max_requests_user = 4;
    config.rate_limit.max_requests_admin = 6;
    let gw = Running::start(&backend, config).await;
    let alice = testkit::authed_http(&backend.token(1, Role::User));
    let statuses = |http: &reqwest::Client, n: usize, addresses: &'static [&'static str]| {
        let (http, url) = (
            http.clone(),
            format!("{}/api/users/1/name", gw.server.base_url),
        );
        async move {
            let mut out = Vec::new();
            for i in 0..n {
                let resp = http
                    .get(&url)
                    .header("x-forwarded-for", addresses[i % addresses.len()])
                    .send()
                    .await
                    .unwrap();
                let policy = resp.headers().get("ratelimit-policy").cloned();
                out.push((resp.status().as_u16(), policy));
            }
            out
        }
    };
    // Alice, from three addresses: one quota of 4.
    let seen = statuses(&alice, 5, &["203.0.113.1", "203.0.113.2", "203.0.113.3"]).await;
    let codes: Vec<u16> = seen.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        codes,
        [200, 200, 200, 200, 429],
        "per user, not per address"
    );
    assert_eq!(seen[0].1.as_ref().unwrap(), "\"default\";q=4;w=60");
    // The admin has the admin's quota.
    let admin: Vec<u16> = statuses(&gw.http, 7, &["203.0.113.1"])
        .await
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(admin, [200, 200, 200, 200, 200, 200, 429]);
    // Anonymous callers from Alice's addresses are not charged for her: 2 each.
    let anonymous: Vec<u16> = statuses(&gw.anonymous, 3, &["203.0.113.1"])
        .await
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(anonymous, [401, 401, 429]);
    gw.server.stop().await;
    backend.stop().await;
}
