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

#[tokio::test]
async fn the_gateways_own_pages_pass_an_origin_allow_list_and_others_get_a_problem() {
    let gw = Gateway::start_with(&[
        ("RATE_LIMIT_MAX", "100000"),
        ("CORS_ALLOWED_ORIGINS", "http://shop.example:8080"),
    ])
    .await;
    let base = &gw.server.base_url;
    let post_from = |origin: String| {
        gw.http
            .post(format!("{base}/graphql"))
            .header("origin", origin)
            .json(&serde_json::json!({ "query": "{ __typename }" }))
            .send()
    };
    // GraphiQL on the gateway posts with its own origin.
    let own = post_from(base.clone()).await.unwrap();
    assert_eq!(own.status().as_u16(), 200);
    let body: Value = own.json().await.unwrap();
    assert_eq!(body["data"]["__typename"], "Query", "{body}");
    let listed = post_from("http://shop.example:8080".into()).await.unwrap();
    assert_eq!(listed.status().as_u16(), 200);
    let other = post_from("http://evil.example".into()).await.unwrap();
    assert_eq!(other.status().as_u16(), 403);
    let ct = other.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("application/problem+json"), "{ct}");
    let problem: Value = other.json().await.unwrap();
    assert_eq!(problem["status"], 403, "{problem}");
    gw.server.stop().await;
}

/// A nullable field that fails is null, its key kept, with the error under its path; the
/// fields beside it are answered (GraphQL spec, "Handling Field Errors").
#[tokio::test]
async fn a_failing_nullable_field_is_null_and_its_neighbours_are_answered() {
    let gw = Gateway::start().await;
    let (status, body) = gw
        .post(serde_json::json!({"query": "{ a: userName(id: \"1\") b: __typename }"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"],
        serde_json::json!({"a": null, "b": "Query"}),
        "{body}"
    );
    assert_eq!(
        body["errors"][0]["path"],
        serde_json::json!(["a"]),
        "{body}"
    );
    assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
    gw.server.stop().await;
}

/// Errors of the request as a whole carry a code too, and no `data` was computed for them:
/// an operation that cannot be chosen, and a variable the operation needs but was not sent.
#[tokio::test]
async fn request_errors_carry_a_code() {
    let gw = Gateway::start().await;
    let two = "query A { __typename } query B { __typename }";
    for (body, expected) in [
        (
            serde_json::json!({"query": two}),
            "OPERATION_RESOLUTION_FAILURE",
        ),
        (
            serde_json::json!({"query": two, "operationName": "C"}),
            "OPERATION_RESOLUTION_FAILURE",
        ),
        (
            serde_json::json!({"query": "query($id: ID!) { product(id: $id) { id } }"}),
            "BAD_USER_INPUT",
        ),
    ] {
        let (_, answer) = gw.post(body.clone()).await;
        assert_eq!(code(&answer), expected, "{body}: {answer}");
        if expected != "BAD_USER_INPUT" {
            // Nothing ran, so there is no `data` at all (GraphQL spec, "Response Format").
            assert!(answer.get("data").is_none(), "{body}: {answer}");
        }
    }
    gw.server.stop().await;
}

/// Only the selected operation's variables apply: another operation of the same document may
/// use variables the request does not send (GraphQL spec, "CoerceVariableValues").
#[tokio::test]
async fn an_unselected_operations_variables_do_not_matter() {
    let gw = Gateway::start().await;
    let document = "query A { __typename } \
                    query B($first: Int!) { products(first: $first) { nodes { id } } }";
    let (status, body) = gw
        .post(serde_json::json!({"query": document, "operationName": "A"}))
        .await;
    assert_eq!(
        (status, &body),
        (200, &serde_json::json!({"data": {"__typename": "Query"}}))
    );
    gw.server.stop().await;
}

/// A POST sent as `content_type` with `body` and `Accept: accept`: status, content type and body.
async fn raw(
    gw: &Gateway,
    content_type: Option<&str>,
    accept: &str,
    body: &str,
) -> (u16, String, Value) {
    let mut request = gw
        .http
        .post(format!("{}/graphql", gw.server.base_url))
        .header("accept", accept)
        .body(body.to_owned());
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let media = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, media, response.json().await.unwrap_or(Value::Null))
}

/// What is not a GraphQL request never reaches the executor: a body of another media type is
/// 415, one that is not a request object 400, each with a coded error and no `data`.
#[tokio::test]
async fn bodies_that_are_not_graphql_requests_are_refused() {
    let gw = Gateway::start().await;
    let json = Some("application/json");
    for (content_type, body, status) in [
        (
            Some("text/plain;charset=UTF-8"),
            r#"{"query":"{ __typename }"}"#,
            415,
        ),
        (None, r#"{"query":"{ __typename }"}"#, 415),
        (json, "", 400),
        (json, "{ \"not JSON", 400),
        (json, "{}", 400),
        (json, r#"{"query": 5}"#, 400),
        (json, r#"[{"query":"{ __typename }"}]"#, 400),
        (json, r#"{"query":"{ __typename }","variables":[]}"#, 400),
    ] {
        let (got, _, answer) = raw(&gw, content_type, "application/json", body).await;
        assert_eq!(got, status, "{content_type:?} {body}: {answer}");
        assert!(answer.get("data").is_none(), "{body}: {answer}");
        assert!(!code(&answer).is_empty(), "{body}: {answer}");
    }
    gw.server.stop().await;
}

/// `application/graphql-response+json` is answered in kind, and a request that did not run is
/// then a 400 with no `data`; `application/json` keeps 200 for the same request.
#[tokio::test]
async fn the_graphql_response_media_type_says_with_its_status_whether_a_request_ran() {
    let gw = Gateway::start().await;
    let json = Some("application/json");
    let unknown_field = r#"{"query":"{ nosuchfield }"}"#;
    let typed = "application/graphql-response+json";
    let (status, media, answer) = raw(&gw, json, typed, unknown_field).await;
    assert_eq!(
        (status, media.as_str()),
        (400, "application/graphql-response+json; charset=utf-8"),
        "{answer}"
    );
    assert!(answer.get("data").is_none(), "{answer}");
    let (status, media, _) = raw(&gw, json, "application/json", unknown_field).await;
    assert_eq!(
        (status, media.as_str()),
        (200, "application/json; charset=utf-8")
    );
    let (status, media, answer) = raw(&gw, json, typed, r#"{"query":"{ __typename }"}"#).await;
    assert_eq!(
        (status, media.as_str()),
        (200, "application/graphql-response+json; charset=utf-8")
    );
    assert_eq!(answer["data"]["__typename"], "Query");
    gw.server.stop().await;
}
