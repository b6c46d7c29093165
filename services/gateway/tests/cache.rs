//! What the gateway keeps and for how long: orders and users in memory and Redis, coherent
//! across replicas; batching; parsed query documents.

mod platform;

use platform::*;

#[tokio::test]
async fn unknown_users_are_remembered_briefly_and_creating_one_replaces_that() {
    let backend = Backend::start().await;
    let gw = Running::start(&backend, backend.config()).await;
    let query = (0..10)
        .map(|i| format!(r#"u{i}: userName(id: "{}")"#, 900_000 + i))
        .collect::<Vec<_>>()
        .join(" ");
    let query = format!("{{ {query} }}");
    backend.user_calls.store(0, Ordering::SeqCst);
    for round in 0..3 {
        let body = gw.graphql(&query, json!({})).await;
        assert!(body["errors"].is_null(), "round {round}: {body}");
        for i in 0..10 {
            let key = format!("u{i}");
            assert_eq!(body["data"][&key], Value::Null, "round {round}: {body}");
        }
    }
    assert_eq!(
        backend.user_calls.load(Ordering::SeqCst),
        10,
        "one users call per unknown id, then none while remembered"
    );
    // REST reads share the memory.
    let resp = gw
        .http
        .get(format!("{}/api/users/900000", gw.server.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    assert_eq!(backend.user_calls.load(Ordering::SeqCst), 10);

    // The next id (the test database holds the 3 demo shoppers and the admin) is remembered
    // as missing; the user created through the gateway under that id is served at once, not
    // a 404.
    let next = format!("{}/api/users/5", gw.server.base_url);
    assert_eq!(
        gw.http.get(&next).send().await.unwrap().status().as_u16(),
        404
    );
    let created = gw
        .client()
        .create_user(
            None,
            &rest::CreateUserRequest {
                name: "Grace".into(),
                email: shopmesh_openapi::runtime::Email(format!("{}@example.com", unique("grace"))),
                password: "grace's password".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(created.id, 5);
    assert_eq!(
        gw.http.get(&next).send().await.unwrap().status().as_u16(),
        200
    );
    gw.server.stop().await;
    backend.stop().await;
}

#[tokio::test]
async fn order_user_is_batched_one_call_per_distinct_user() {
    let backend = Backend::start().await;
    // 150 orders with their users cost 603 (GRAPHQL_MAX_COMPLEXITY is 250 by default).
    let mut config = backend.config();
    config.graphql.max_complexity = 1000;
    let gw = Running::start(&backend, config).await;
    for (user, count) in [(1, 20), (2, 20), (3, 10)] {
        for p in 0..count {
            backend
                .orders_store
                .create(shopmesh_orders::store::NewOrder {
                    user_id: user,
                    product_id: 1 + p,
                    quantity: 1,
                })
                .await
                .unwrap();
        }
    }
    backend.user_calls.store(0, Ordering::SeqCst);
    let q = "{ a: ordersByUser(userId: \"1\", first: 50) { nodes { id user { name } } }
               b: ordersByUser(userId: \"2\", first: 50) { nodes { id user { name } } }
               c: ordersByUser(userId: \"3\", first: 50) { nodes { id user { name } } } }";
    let body = gw.graphql(q, json!({})).await;
    let total: usize = ["a", "b", "c"]
        .iter()
        .map(|k| body["data"][k]["nodes"].as_array().unwrap().len())
        .sum();
    assert_eq!(total, 50, "{body}");
    assert_eq!(
        body["data"]["c"]["nodes"][0]["user"]["name"],
        "Charlie Brown"
    );
    assert_eq!(
        backend.user_calls.load(Ordering::SeqCst),
        3,
        "50 orders, 3 distinct users, 3 users calls"
    );
    gw.server.stop().await;
    backend.stop().await;
}

/// A gateway keeps the orders it has seen in process memory, coherent with the orders
/// service's announcements: a read needs neither a Redis read nor the orders service, even
/// when Redis lost the key (evicted, flushed, or written by another replica that is gone).
#[tokio::test]
async fn an_order_seen_once_is_served_from_memory_without_redis_or_orders() {
    let backend = Backend::start().await;
    let gw = Running::start(&backend, backend.config()).await;
    let client = gw.client();
    let placed = gw.placed_order(1, 5).await;
    let stored = backend.stored_order(2, 9).await;
    // The stored order, read once through the gateway: it is remembered from now on.
    client.get_order(&gw.admin, stored.id).await.unwrap();

    let backends = &gw.gateway.backends;
    for id in [placed.id, stored.id] {
        let _: Option<i64> = backends
            .cache()
            .run(redis::cmd("DEL").arg(backends.order_key(id)))
            .await;
    }
    let calls = backends.calls.orders.load(Ordering::SeqCst);
    let redis_reads = || {
        let stats = backends.cache().stats();
        stats.hits.load(Ordering::Relaxed) + stats.misses.load(Ordering::Relaxed)
    };
    let reads = redis_reads();
    for id in [placed.id, stored.id] {
        assert_eq!(client.get_order(&gw.admin, id).await.unwrap().id, id);
        let g = gw
            .graphql(
                "query($id: ID!) { order(id: $id) { id } }",
                json!({"id": id.to_string()}),
            )
            .await;
        assert_eq!(g["data"]["order"]["id"], id.to_string());
    }
    assert_eq!(
        backends.calls.orders.load(Ordering::SeqCst),
        calls,
        "no orders call"
    );
    assert_eq!(redis_reads(), reads, "no Redis read");
    assert_eq!(backends.memory_hits(), 4, "four reads served from memory");

    // The memory holds the order, not the answer: another user is still refused.
    let stranger = backend.token(77, Role::User);
    assert!(client.get_order(&stranger, placed.id).await.is_err());
    gw.server.stop().await;
    backend.stop().await;
}

/// How soon after `PUT /users/{id}` is acknowledged every replica must serve the new value
/// (the bound the README documents for the user caches).
const USER_CHANGE_BOUND: Duration = Duration::from_millis(100);

/// A user updated at one users replica: every gateway and the other users replica serve the
/// new name within [`USER_CHANGE_BOUND`] of the acknowledgement, although each cached the old
/// one (the gateways' cache TTL is 30 s) and nothing reads through to MySQL.
#[tokio::test]
async fn a_user_update_reaches_every_gateway_and_users_replica_within_the_bound() {
    let backend = Backend::start().await;
    let gateways = [
        Running::start(&backend, backend.config()).await,
        Running::start(&backend, backend.config()).await,
    ];
    let other_users = build_service::<shopmesh_users::Application>(
        &backend.stack.env_for(Service::Users).unwrap(),
        |c| c.port = 0,
    )
    .await;
    let other_users = testkit::Running::start(other_users).await;
    let admin = testkit::authed_http(&backend.token(ADMIN_ID, Role::Admin));
    let name_at = |url: String| {
        let admin = admin.clone();
        async move {
            let body: Value = admin.get(url).send().await.unwrap().json().await.unwrap();
            body["name"].as_str().unwrap_or_default().to_owned()
        }
    };
    let readers: Vec<String> = gateways
        .iter()
        .map(|g| format!("{}/api/users/2", g.server.base_url))
        .chain([
            format!("{}/users/2", backend.users.base_url),
            format!("{}/users/2", other_users.base_url),
        ])
        .collect();
    let mut worst = Duration::ZERO;
    for round in 0..5 {
        for url in &readers {
            name_at(url.clone()).await; // each replica holds the current name
        }
        let name = format!("Bob, round {round}");
        let writer = [&backend.users.base_url, &other_users.base_url][round % 2];
        let updated = admin
            .put(format!("{writer}/users/2"))
            .json(&json!({"name": name, "email": "bob@example.com"}))
            .send()
            .await
            .unwrap();
        assert_eq!(updated.status(), 200);
        let acknowledged = Instant::now();
        for url in &readers {
            loop {
                if name_at(url.clone()).await == name {
                    break;
                }
                let stale = acknowledged.elapsed();
                assert!(
                    stale <= Duration::from_secs(2),
                    "round {round}: {url} still serves the old name {stale:?} after the update"
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        worst = worst.max(acknowledged.elapsed());
    }
    println!("every replica served the update within {worst:?}");
    for g in &gateways {
        assert!(
            g.gateway.backends.user_memory_hits() > 0,
            "the gateways served users from memory between the updates"
        );
    }
    assert!(
        worst <= USER_CHANGE_BOUND,
        "stale for {worst:?}, beyond {USER_CHANGE_BOUND:?}"
    );
    for g in gateways {
        g.server.stop().await;
    }
    other_users.stop().await;
    backend.stop().await;
}

/// A query document the gateway has parsed once is not parsed again: the next request with
/// the same text (other variables) is served from the parsed-document cache, with the same
/// answer; text that does not parse is never cached and fails alike every time.
#[tokio::test]
async fn the_same_query_text_is_parsed_once() {
    let backend = Backend::start().await;
    let gw = Running::start(&backend, backend.config()).await;
    let placed = [gw.placed_order(1, 3).await, gw.placed_order(2, 4).await];
    let query = "query($id: ID!) { order(id: $id) { id quantity } }";
    let cached = || gw.gateway.document_cache_hits();
    let before = cached();
    for order in &placed {
        let body = gw.graphql(query, json!({"id": order.id.to_string()})).await;
        assert_eq!(body["data"]["order"]["id"], order.id.to_string(), "{body}");
    }
    assert_eq!(
        cached() - before,
        1,
        "the second request reused the first one's parse"
    );
    for _ in 0..2 {
        let body = gw.graphql("query { order(id: ", json!({})).await;
        assert_eq!(
            body["errors"][0]["extensions"]["code"],
            "GRAPHQL_PARSE_FAILED"
        );
    }
    assert_eq!(cached() - before, 1, "a parse failure is not cached");
    gw.server.stop().await;
    backend.stop().await;
}

#[tokio::test]
async fn orders_are_cached_written_through_and_served_without_redis() {
    let backend = Backend::start().await;
    let gw = Running::start(&backend, backend.config()).await;
    let client = gw.client();
    let order = gw.placed_order(1, 5).await;
    let key = gw.gateway.backends.order_key(order.id);
    let ttl: i64 = gw
        .gateway
        .backends
        .cache()
        .run(redis::cmd("TTL").arg(&key))
        .await
        .unwrap();
    assert!(
        (290..=300).contains(&ttl),
        "created order written through with TTL 300, got {ttl}"
    );

    let calls = || gw.gateway.backends.calls.orders.load(Ordering::SeqCst);
    let before = calls();
    let hits = gw.gateway.backends.memory_hits();
    for _ in 0..2 {
        assert!(client.get_order(&gw.admin, order.id).await.is_ok());
        let g = gw
            .graphql(
                "query($id: ID!) { order(id: $id) { id } }",
                json!({"id": order.id.to_string()}),
            )
            .await;
        assert_eq!(g["data"]["order"]["id"], order.id.to_string());
    }
    assert_eq!(calls(), before, "served from the cache, no orders call");
    assert_eq!(
        gw.gateway.backends.memory_hits() - hits,
        4,
        "the placed order is remembered in memory too"
    );

    // An order the gateway has not seen: first read misses, second hits.
    let other = backend.stored_order(2, 9).await;
    client.get_order(&gw.admin, other.id).await.unwrap();
    client.get_order(&gw.admin, other.id).await.unwrap();
    assert_eq!(calls(), before + 1, "one miss, then a hit");

    // Redis down: still served, from the orders service each time: a gateway that cannot
    // hear the order channel would not hear a change either, so memory serves nothing.
    let mut config = backend.config();
    config.redis_url = "redis://127.0.0.1:1/".into();
    let no_redis = Running::start(&backend, config).await;
    let c2 = no_redis.client();
    for _ in 0..2 {
        assert!(c2.get_order(&no_redis.admin, order.id).await.is_ok());
    }
    assert_eq!(
        no_redis
            .gateway
            .backends
            .calls
            .orders
            .load(Ordering::SeqCst),
        2,
        "both reads downstream"
    );
    assert!(!no_redis.gateway.backends.cache().is_up());
    no_redis.server.stop().await;
    gw.server.stop().await;
    backend.stop().await;
}

/// An order cancelled at the orders service, after the gateway cached it in memory and Redis:
/// the gateway serves the new status within the bound, over REST and GraphQL, and its late
/// write of the old copy cannot put it back in Redis.
#[tokio::test]
async fn a_changed_order_reaches_the_gateway_within_the_bound() {
    let backend = Backend::start().await;
    let gw = Running::start(&backend, backend.deployed_config()).await;
    let client = gw.client();
    let order = gw.placed_order(1, 5).await;
    let old = client.get_order(&gw.admin, order.id).await.unwrap();
    assert_eq!(old.status, rest::OrderStatus::Pending);
    let change = shopmesh_orders::store::StatusChange {
        from: shopmesh_openapi::orders::OrderStatus::Pending,
        to: shopmesh_openapi::orders::OrderStatus::Cancelled,
        cause: "cancelled by the shopper",
    };
    backend
        .orders_store
        .change_status(order.id, change)
        .await
        .unwrap();
    let acknowledged = std::time::Instant::now();
    let rest_status = loop {
        let now = client.get_order(&gw.admin, order.id).await.unwrap();
        if now.status != rest::OrderStatus::Pending || acknowledged.elapsed() > USER_CHANGE_BOUND {
            break now.status;
        }
    };
    let waited = acknowledged.elapsed();
    assert_eq!(
        rest_status,
        rest::OrderStatus::Cancelled,
        "after {waited:?}"
    );
    assert!(waited <= USER_CHANGE_BOUND, "{waited:?}");
    let g = gw
        .graphql(
            "query($id: ID!) { order(id: $id) { status version } }",
            json!({"id": order.id.to_string()}),
        )
        .await;
    assert_eq!(
        g["data"]["order"],
        json!({"status": "CANCELLED", "version": 2})
    );

    // A gateway that read the order before the change writes its copy late: it loses.
    let backends = &gw.gateway.backends;
    let stale = serde_json::to_string(&json!({
        "id": order.id, "userId": 1, "productId": 5, "quantity": 1,
        "status": "pending", "version": 1, "createdAt": order.created_at,
    }))
    .unwrap();
    let written = backends
        .cache()
        .set_versioned(
            &backends.order_key(order.id),
            1,
            &stale,
            Duration::from_secs(60),
        )
        .await;
    assert!(!written, "an older version never replaces a newer one");
    gw.server.stop().await;
    backend.stop().await;
}

/// A page of orders with their notifications costs one notifications call, not one per order,
/// and each order gets its own notifications.
#[tokio::test]
async fn a_page_of_orders_fetches_its_notifications_in_one_call() {
    let backend = Backend::start().await;
    let gw = Running::start(&backend, backend.config()).await;
    let user = 3;
    let mut ids = Vec::new();
    for p in 0..6 {
        let order = backend
            .orders_store
            .create(shopmesh_orders::store::NewOrder {
                user_id: user,
                product_id: 300 + p,
                quantity: 1,
            })
            .await
            .unwrap();
        ids.push(order.id);
    }
    for id in ids.iter().take(3) {
        backend
            .mongo
            .insert_if_absent(&NewNotification {
                event_id: unique("evt"),
                order_id: *id,
                user_id: user,
                message: format!("about {id}"),
            })
            .await
            .unwrap();
    }
    let before = gw
        .gateway
        .backends
        .calls
        .notifications
        .load(Ordering::SeqCst);
    let body = gw
        .graphql(
            r#"{ ordersByUser(userId: "3", first: 6) { nodes { id notifications { message } } } }"#,
            json!({}),
        )
        .await;
    let calls = gw
        .gateway
        .backends
        .calls
        .notifications
        .load(Ordering::SeqCst)
        - before;
    assert_eq!(calls, 1, "one call for 6 orders: {body}");
    let nodes = body["data"]["ordersByUser"]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 6, "{body}");
    for node in nodes {
        let id: i64 = node["id"].as_str().unwrap().parse().unwrap();
        let messages: Vec<_> = node["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["message"].as_str().unwrap().to_owned())
            .collect();
        let expected = if ids[..3].contains(&id) {
            vec![format!("about {id}")]
        } else {
            vec![]
        };
        assert_eq!(messages, expected, "{body}");
    }
    backend.stop().await;
}
