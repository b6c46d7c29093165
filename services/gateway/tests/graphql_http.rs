//! GraphQL over HTTP as standard clients speak it: queries sent with GET (urql's default, and
//! what CDNs cache), GraphiQL for browsers, and mutations never over GET.

mod standalone;

use serde_json::Value;
use standalone::{Gateway, code};

async fn get(gw: &Gateway, query: &str, accept: &str) -> reqwest::Response {
    gw.http
        .get(format!("{}/graphql", gw.server.base_url))
        .query(&[("query", query)])
        .header("accept", accept)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_query_sent_with_get_is_executed_for_a_json_client() {
    let gw = Gateway::start().await;
    let resp = get(
        &gw,
        "{ __typename }",
        "application/graphql-response+json, application/json",
    )
    .await;
    assert_eq!(resp.status().as_u16(), 200);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.contains("json"), "{ct}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["data"]["__typename"], "Query", "{body}");
    gw.server.stop().await;
}

#[tokio::test]
async fn a_browser_gets_graphiql_and_a_mutation_over_get_is_refused() {
    let gw = Gateway::start().await;
    let page = get(&gw, "{ __typename }", "text/html,application/xhtml+xml").await;
    assert!(page.text().await.unwrap().contains("shopmesh GraphiQL"));
    let mutation = "mutation { logout(refreshToken: \"x\") }";
    let resp = get(&gw, mutation, "application/json").await;
    assert_eq!(resp.status().as_u16(), 405);
    assert_eq!(resp.headers()["allow"], "GET, POST");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(code(&body), "METHOD_NOT_ALLOWED", "{body}");
    gw.server.stop().await;
}
