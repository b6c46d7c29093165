//! The orders REST API through the generated client: round trips, bad input, the index its
//! pages use, the served contract, internal errors.

mod harness;

use harness::*;

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

#[tokio::test]
async fn staff_list_every_users_orders_by_status_and_shoppers_may_not() {
    let h = Harness::start().await;
    let kept = h.create(7, 100, 1).await;
    let cancelled = h.create(8, 101, 1).await;
    h.client.cancel_order(&h.admin, cancelled.id).await.unwrap();
    let ids = |page: shopmesh_openapi::orders::OrderPage| {
        page.items.into_iter().map(|o| o.id).collect::<Vec<_>>()
    };

    let all = h.client.list_orders(&h.admin, None, None, None).await;
    assert_eq!(
        ids(all.unwrap()),
        vec![cancelled.id, kept.id],
        "newest first"
    );
    let pending = h
        .client
        .list_orders(&h.admin, Some("pending".into()), None, None)
        .await;
    assert_eq!(ids(pending.unwrap()), vec![kept.id]);
    let by_status = h
        .client
        .list_orders(&h.admin, Some("cancelled".into()), Some(1), None)
        .await
        .unwrap();
    assert_eq!(ids(by_status.clone()), vec![cancelled.id]);
    assert!(by_status.next_cursor.is_none());

    let unknown = h
        .client
        .list_orders(&h.admin, Some("lost".into()), None, None)
        .await;
    assert_eq!(problem_status(unknown), 400);
    let shopper = h.client.list_orders(&h.user(7), None, None, None).await;
    assert_eq!(problem_status(shopper), 403);
    h.stop().await;
}

#[tokio::test]
async fn listing_by_status_walks_an_index_newest_first() {
    let h = Harness::start().await;
    for user in 1..=10 {
        h.create(user, 1, 1).await;
    }
    sqlx::query("ANALYZE TABLE orders")
        .execute(h.store.pool())
        .await
        .unwrap();
    use sqlx::Row;
    let row = sqlx::query(
        "EXPLAIN SELECT id FROM orders WHERE status = 'confirmed' \
         ORDER BY created_at DESC, id DESC LIMIT 21",
    )
    .fetch_one(h.store.pool())
    .await
    .unwrap();
    let key: Option<String> = row.try_get("key").unwrap();
    let extra: Option<String> = row.try_get("Extra").unwrap();
    assert_eq!(key.as_deref(), Some("idx_orders_status_created"));
    assert!(!extra.unwrap_or_default().contains("filesort"));
    h.stop().await;
}
