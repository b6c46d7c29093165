//! Automatic persisted queries (a query's SHA-256 in place of its text) and the HTTP caching
//! of answers to GET: public answers carry `Cache-Control` and an `ETag` (304 when it still
//! matches), private ones are never kept by a shared cache. With `GRAPHQL_OPERATIONS=registered`
//! only the SDK's own operations run.

mod standalone;

use serde_json::{Value, json};
use shopmesh_gateway::persisted::sha256_hex;
use standalone::{Gateway, code};

const QUERY: &str = "{ __typename }";

/// `extensions` naming `query` by its hash.
fn hashed(query: &str) -> String {
    json!({"persistedQuery": {"version": 1, "sha256Hash": sha256_hex(query.as_bytes())}})
        .to_string()
}

/// A GET of `query` by its hash alone, with `headers`.
async fn get_by_hash(gw: &Gateway, query: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = gw
        .http
        .get(format!("{}/graphql", gw.server.base_url))
        .query(&[("extensions", hashed(query))])
        .header("accept", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

/// A POST of `query` with the hash of `named` (its own when they are the same).
async fn post(gw: &Gateway, query: &str, named: &str) -> Value {
    let extensions: Value = serde_json::from_str(&hashed(named)).unwrap();
    let body = json!({"query": query, "extensions": extensions});
    gw.http
        .post(format!("{}/graphql", gw.server.base_url))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A POST of `query` with its hash, which registers it.
async fn register(gw: &Gateway, query: &str) -> Value {
    post(gw, query, query).await
}

#[tokio::test]
async fn a_hash_is_asked_for_its_query_once_and_then_answered_by_get() {
    let gw = Gateway::start().await;
    let unknown: Value = get_by_hash(&gw, QUERY, &[]).await.json().await.unwrap();
    assert_eq!(code(&unknown), "PERSISTED_QUERY_NOT_FOUND", "{unknown}");
    assert_eq!(unknown["errors"][0]["message"], "PersistedQueryNotFound");
    let registered = register(&gw, QUERY).await;
    assert_eq!(registered["data"]["__typename"], "Query", "{registered}");
    let answer = get_by_hash(&gw, QUERY, &[]).await;
    assert_eq!(answer.status().as_u16(), 200);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["data"]["__typename"], "Query", "{body}");
    gw.server.stop().await;
}

#[tokio::test]
async fn a_hash_that_is_not_the_querys_is_refused_and_a_mutation_stays_off_get() {
    let gw = Gateway::start().await;
    let wrong = post(&gw, QUERY, "{ me { id } }").await;
    assert_eq!(code(&wrong), "BAD_REQUEST", "{wrong}");
    let unknown: Value = get_by_hash(&gw, "{ me { id } }", &[])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(code(&unknown), "PERSISTED_QUERY_NOT_FOUND", "{unknown}");
    let mutation = "mutation { logout(refreshToken: \"x\") }";
    register(&gw, mutation).await;
    assert_eq!(get_by_hash(&gw, mutation, &[]).await.status().as_u16(), 405);
    gw.server.stop().await;
}

#[tokio::test]
async fn a_public_answer_is_cacheable_and_revalidated_and_a_private_one_is_not() {
    let gw = Gateway::start().await;
    register(&gw, QUERY).await;
    let first = get_by_hash(&gw, QUERY, &[]).await;
    let headers = first.headers().clone();
    assert_eq!(headers["cache-control"], "public, max-age=10");
    let etag = headers["etag"].to_str().unwrap().to_owned();
    let again = get_by_hash(&gw, QUERY, &[("if-none-match", &etag)]).await;
    assert_eq!(again.status().as_u16(), 304);
    assert_eq!(again.headers()["etag"].to_str().unwrap(), etag);
    assert!(again.text().await.unwrap().is_empty());
    let stale = get_by_hash(&gw, QUERY, &[("if-none-match", "\"other\"")]).await;
    assert_eq!(stale.status().as_u16(), 200);
    // With credentials, or when it failed, an answer is nobody else's to keep.
    let bearer = get_by_hash(&gw, QUERY, &[("authorization", "Bearer x")]).await;
    assert_eq!(bearer.headers()["cache-control"], "private, no-store");
    assert!(bearer.headers().get("etag").is_none());
    let failed = get_by_hash(&gw, "{ nope }", &[]).await;
    assert_eq!(failed.headers()["cache-control"], "private, no-store");
    gw.server.stop().await;
}

/// The SDK's operation `name` as `cargo xtask gen` registered it: (hash, document).
fn registered(name: &str) -> (String, String) {
    let manifest: Value = serde_json::from_str(include_str!(
        "../../../sdk/typescript/src/gen/operations.json"
    ))
    .unwrap();
    let operations = manifest["operations"].as_array().unwrap();
    let operation = operations.iter().find(|o| o["name"] == name).unwrap();
    let field = |key: &str| operation[key].as_str().unwrap().to_owned();
    (field("sha256"), field("document"))
}

#[tokio::test]
async fn only_the_sdks_registered_operations_run_when_the_gateway_is_told_so() {
    let settings = [
        ("RATE_LIMIT_MAX", "100000"),
        ("GRAPHQL_OPERATIONS", "registered"),
    ];
    let gw = Gateway::start_with(&settings).await;
    let (hash, products) = registered("Products");
    assert_eq!(hash, sha256_hex(products.as_bytes()));
    // As its text, and by its hash alone, it runs: no catalog answers here, so the error is
    // the one its `products` field met when it was executed.
    let ran = |body: &Value| body["errors"][0]["path"] == json!(["products"]);
    let variables = json!({"first": 1});
    let (_, by_text) = gw
        .post(json!({"query": products, "variables": variables}))
        .await;
    assert!(ran(&by_text), "{by_text}");
    let extensions: Value = serde_json::from_str(&hashed(&products)).unwrap();
    let (_, by_hash) = gw
        .post(json!({"extensions": extensions, "variables": variables}))
        .await;
    assert!(ran(&by_hash), "{by_hash}");
    // Anything else is refused, as text or by hash, and sending it does not register it.
    let (_, other) = gw.post(json!({"query": QUERY})).await;
    assert_eq!(code(&other), "OPERATION_NOT_REGISTERED", "{other}");
    assert!(other.get("data").is_none(), "{other}");
    let sent = register(&gw, QUERY).await;
    assert_eq!(code(&sent), "OPERATION_NOT_REGISTERED", "{sent}");
    let again: Value = get_by_hash(&gw, QUERY, &[]).await.json().await.unwrap();
    assert_eq!(code(&again), "OPERATION_NOT_REGISTERED", "{again}");
    // A registered hash sent with another text is a mismatch.
    let changed = post(&gw, &format!("{products} "), &products).await;
    assert_eq!(code(&changed), "BAD_REQUEST", "{changed}");
    gw.server.stop().await;
}
