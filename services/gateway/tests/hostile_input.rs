//! Anonymous requests built to crash or balloon the gateway. Nothing here needs a downstream
//! service: each request is refused (or cached) before anything is called, so the gateway runs
//! alone, on the stack's Redis.

use serde_json::{Value, json};
use shopmesh_common::service::Service as _;
use shopmesh_gateway::config::GatewayConfig;
use shopmesh_testkit::{Running, Service, test_stack};

struct Gateway {
    server: Running,
    http: reqwest::Client,
}

impl Gateway {
    async fn start() -> Self {
        let env = test_stack()
            .set_for(Service::Gateway, "RATE_LIMIT_MAX", "100000")
            .env_for(Service::Gateway)
            .unwrap();
        let mut config = GatewayConfig::from_env(&env).unwrap();
        config.port = 0;
        let app = shopmesh_gateway::Application::build(config).await.unwrap();
        Self {
            server: Running::start_live(app).await,
            http: reqwest::Client::new(),
        }
    }

    async fn post(&self, body: Value) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}/graphql", self.server.base_url))
            .json(&body)
            .send()
            .await
            .expect("the gateway answers");
        (
            resp.status().as_u16(),
            resp.json().await.unwrap_or(Value::Null),
        )
    }

    async fn alive(&self) -> bool {
        let live = format!("{}/health/live", self.server.base_url);
        self.http
            .get(live)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    }
}

fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_default()
}

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
