//! Anonymous requests built to crash or balloon the gateway. Nothing here needs a downstream
//! service: each request is refused (or cached) before anything is called, so the gateway runs
//! alone, on the stack's Redis.

mod standalone;

use serde_json::json;
use standalone::{Gateway, code};

#[tokio::test]
async fn values_nested_thousands_deep_are_a_parse_error_not_a_crash() {
    let gw = Gateway::start().await;
    let lists = format!("{}1{}", "[".repeat(2000), "]".repeat(2000));
    let objects = format!("{}1{}", "{a:".repeat(2000), "}".repeat(2000));
    let queries = [
        format!("{{ order(id: {lists}) {{ id }} }}"),
        format!("{{ order(id: {objects}) {{ id }} }}"),
        format!("query($v: [Int] = {lists}) {{ order(id: 1) {{ id }} }}"),
        format!("{}{}", "{ a ".repeat(2000), "}".repeat(2000)),
    ];
    for query in queries {
        let (status, body) = gw.post(json!({ "query": query })).await;
        assert!(status < 500, "{status} {body}");
        assert_eq!(code(&body), "GRAPHQL_PARSE_FAILED", "{body}");
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .is_some_and(|m| m.contains("deeper than 64"))
        );
    }
    // Variables arrive as JSON; serde_json's own depth limit refuses them before GraphQL does.
    let deep_json = format!("{}1{}", "[".repeat(5000), "]".repeat(5000));
    let body =
        format!(r#"{{"query":"query($v: Int) {{ __typename }}","variables":{{"v":{deep_json}}}}}"#);
    let resp = gw
        .http
        .post(format!("{}/graphql", gw.server.base_url))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_client_error(), "{}", resp.status());
    assert!(gw.alive().await, "the gateway survived every request");
    gw.server.stop().await;
}

#[tokio::test]
async fn made_up_documents_neither_fill_the_cache_nor_pass_the_size_limit() {
    let gw = Gateway::start().await;
    // 60 KB of text: refused before it is parsed.
    let huge = format!("{{ {} }}", "a ".repeat(30_000));
    let (_, body) = gw.post(json!({ "query": huge })).await;
    assert_eq!(code(&body), "QUERY_LIMIT_EXCEEDED", "{body}");
    // 50 different dense documents that parse but fail validation: none is kept.
    for i in 0..50 {
        let query = format!("{{ a{i}: me {{ {} }} }}", "id ".repeat(5_000));
        let (_, body) = gw.post(json!({ "query": query })).await;
        assert!(
            body["errors"][0]["extensions"]["code"].is_string(),
            "{body}"
        );
    }
    assert_eq!(gw.app.document_cache_bytes(), 0);
    // A valid document is kept, weighed by its parsed tree.
    let (_, body) = gw.post(json!({ "query": "{ __typename }" })).await;
    assert_eq!(body["data"]["__typename"], "Query", "{body}");
    assert!(gw.app.document_cache_bytes() > "{ __typename }".len() as u64);
    gw.server.stop().await;
}

#[tokio::test]
async fn forwarded_for_from_a_peer_that_is_not_a_trusted_proxy_is_ignored() {
    let gw = Gateway::start_with(&[
        ("RATE_LIMIT_MAX", "3"),
        ("TRUST_FORWARDED_FOR", "true"),
        ("TRUSTED_PROXIES", "10.0.0.0/8"),
    ])
    .await;
    let mut statuses = Vec::new();
    for i in 0..5 {
        let resp = gw
            .http
            .post(format!("{}/graphql", gw.server.base_url))
            .header("x-forwarded-for", format!("203.0.113.{i}"))
            .json(&json!({ "query": "{ __typename }" }))
            .send()
            .await
            .unwrap();
        statuses.push(resp.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429], "one client: the peer");
    gw.server.stop().await;
}

#[tokio::test]
async fn without_introspection_errors_suggest_no_field_names() {
    let gw = Gateway::start_with(&[("GRAPHQL_INTROSPECTION", "false")]).await;
    let (_, body) = gw
        .post(json!({ "query": "{ mee { id } ordr(id: 1) { id } }" }))
        .await;
    let messages = body["errors"].to_string();
    assert_eq!(code(&body), "GRAPHQL_VALIDATION_FAILED", "{body}");
    assert!(!messages.contains("Did you mean"), "{messages}");
    let (_, body) = gw
        .post(json!({ "query": "{ __schema { types { name } } }" }))
        .await;
    assert!(
        body["data"].is_null() || body["data"]["__schema"].is_null(),
        "{body}"
    );
    gw.server.stop().await;
}
