//! The examples Swagger UI prefills ("Try it out") work against a service with the demo
//! accounts: the sign-up example signs up, the log-in example logs in.

mod helpers;

use helpers::Harness;
use serde_json::Value;

#[tokio::test]
async fn the_served_specs_examples_sign_up_and_log_in() {
    let h = Harness::start().await;
    let http = reqwest::Client::new();
    let spec: Value = http
        .get(h.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let example = |schema: &str| spec["components"]["schemas"][schema]["example"].clone();
    for (path, schema, status) in [
        ("/users", "NewUser", 201),
        ("/auth/token", "Credentials", 200),
    ] {
        let resp = http
            .post(h.url(path))
            .json(&example(schema))
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status().as_u16(),
            status,
            "{schema}: {}",
            resp.text().await.unwrap()
        );
    }
    h.stop().await;
}
