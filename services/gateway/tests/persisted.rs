//! Automatic persisted queries (a query's SHA-256 in place of its text) and the HTTP caching
//! of answers to GET: public answers carry `Cache-Control` and an `ETag` (304 when it still
//! matches), private ones are never kept by a shared cache.

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
