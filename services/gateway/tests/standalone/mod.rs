//! The gateway alone, from the stack's configuration with overrides, on the stack's Redis: for
//! tests of requests it answers before calling any downstream service.
#![allow(dead_code)]

use serde_json::Value;
use shopmesh_common::service::Service as _;
use shopmesh_gateway::config::GatewayConfig;
use shopmesh_testkit::{Running, Service, test_stack};

pub struct Gateway {
    pub app: shopmesh_gateway::Gateway,
    pub server: Running,
    pub http: reqwest::Client,
}

impl Gateway {
    pub async fn start() -> Self {
        Self::start_with(&[("RATE_LIMIT_MAX", "100000")]).await
    }

    pub async fn start_with(settings: &[(&str, &str)]) -> Self {
        let mut stack = test_stack();
        for (k, v) in settings {
            stack = stack.set_for(Service::Gateway, k, *v);
        }
        let env = stack.env_for(Service::Gateway).unwrap();
        let mut config = GatewayConfig::from_env(&env).unwrap();
        config.port = 0;
        let app = shopmesh_gateway::Application::build(config).await.unwrap();
        Self {
            app: app.gateway().clone(),
            server: Running::start_live(app).await,
            http: reqwest::Client::new(),
        }
    }

    pub async fn post(&self, body: Value) -> (u16, Value) {
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

    pub async fn alive(&self) -> bool {
        let live = format!("{}/health/live", self.server.base_url);
        self.http
            .get(live)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    }
}

pub fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_default()
}
