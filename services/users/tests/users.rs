//! Users service against real MariaDB and Redis; each test has its own database and its own
//! cache-key namespace.

use std::sync::atomic::Ordering;

use poem_openapi::types::Email;
use shopmesh_common::service::Service as _;
use shopmesh_openapi::runtime::ClientError;
use shopmesh_openapi::users::{UserInput, UsersClient};
use shopmesh_testkit::{
    Running, Service, Stack, build_service, redis_url, remove_names, test_stack,
};
use shopmesh_users::Application;
use shopmesh_users::store::UserStore;

struct Harness {
    stack: Stack,
    store: UserStore,
    server: Running,
    client: UsersClient,
}

impl Harness {
    async fn start() -> Self {
        Self::start_with_redis(&redis_url()).await
    }

    async fn start_with_redis(redis: &str) -> Self {
        let stack = test_stack()
            .set_for(Service::Users, "REDIS_URL", redis)
            .set_for(Service::Users, "REDIS_TIMEOUT_MS", "300")
            .set_for(Service::Users, "DB_POOL_SIZE", "5");
        let app =
            build_service::<Application>(&stack.env_for(Service::Users).unwrap(), |_| {}).await;
        let store = app.store().clone();
        let server = Running::start(app).await;
        let client = UsersClient::new(server.base_url.clone());
        Self {
            stack,
            store,
            server,
            client,
        }
    }

    async fn stop(self) {
        for id in 1..=10 {
            self.store.cache().delete(&self.store.cache_key(id)).await;
        }
        self.server.stop().await;
        self.store.pool().close().await;
        remove_names(&self.stack.names, 0).await;
    }

    async fn user_count(&self) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(self.store.pool())
            .await
            .unwrap()
    }
}

fn input(name: &str, email: &str) -> UserInput {
    UserInput {
        name: name.to_owned(),
        email: Email(email.to_owned()),
    }
}

#[tokio::test]
async fn seeded_demo_users_exist_and_unknown_is_404() {
    let h = Harness::start().await;
    for (id, name) in [(1, "Alice Johnson"), (2, "Bob Smith"), (3, "Charlie Brown")] {
        let u = h.client.get_user(id).await.unwrap();
        assert_eq!(u.name, name);
    }
    match h.client.get_user(999).await {
        Err(ClientError::Problem(p)) => assert_eq!(p.status, 404),
        other => panic!("expected 404, got {other:?}"),
    }
    h.stop().await;
}

#[tokio::test]
async fn reads_are_cached_and_a_read_after_a_write_sees_the_write() {
    let h = Harness::start().await;
    let created = h
        .client
        .create_user(&input("Ada Lovelace", "ada@example.com"))
        .await
        .unwrap();
    let key = h.store.cache_key(created.id);
    let cached: Option<String> = h
        .store
        .cache()
        .run(redis::cmd("GET").arg(&key))
        .await
        .unwrap();
    assert!(cached.unwrap().starts_with("1:"), "create caches version 1");
    let ttl: i64 = h
        .store
        .cache()
        .run(redis::cmd("TTL").arg(&key))
        .await
        .unwrap();
    assert!((590..=600).contains(&ttl), "TTL {ttl}");

    let hits_before = h.store.cache().stats().hits.load(Ordering::Relaxed);
    for _ in 0..3 {
        let u = h.client.get_user(created.id).await.unwrap();
        assert_eq!(u, created);
    }
    assert_eq!(
        h.store.cache().stats().hits.load(Ordering::Relaxed) - hits_before,
        3,
        "served from Redis"
    );

    // Prove reads come from the cache: change the row behind the cache's back.
    sqlx::query("UPDATE users SET name = 'Changed Directly' WHERE id = ?")
        .bind(created.id)
        .execute(h.store.pool())
        .await
        .unwrap();
    let u = h.client.get_user(created.id).await.unwrap();
    assert_eq!(u.name, "Ada Lovelace", "cached copy");

    // A write through the service refreshes the cache: the next read sees it.
    let u = h
        .client
        .update_user(created.id, &input("Ada King", "ada.king@example.com"))
        .await
        .unwrap();
    assert_eq!(u.name, "Ada King");
    let u = h.client.get_user(created.id).await.unwrap();
    assert_eq!(
        (u.name.as_str(), u.email.as_str()),
        ("Ada King", "ada.king@example.com")
    );
    let cached: Option<String> = h
        .store
        .cache()
        .run(redis::cmd("GET").arg(&key))
        .await
        .unwrap();
    assert!(cached.unwrap().starts_with("2:"), "update caches version 2");
    h.stop().await;
}

#[tokio::test]
async fn redis_down_falls_back_to_mysql() {
    let h = Harness::start_with_redis("redis://127.0.0.1:1/").await;
    let u = h.client.get_user(1).await.unwrap();
    assert_eq!(u.name, "Alice Johnson");
    let u = h
        .client
        .update_user(2, &input("Robert Smith", "bob@example.com"))
        .await
        .unwrap();
    assert_eq!(u.name, "Robert Smith");
    let u = h.client.get_user(2).await.unwrap();
    assert_eq!(u.name, "Robert Smith");
    assert!(!h.store.cache().is_up());
    assert!(
        h.store.cache().stats().errors.load(Ordering::Relaxed) >= 1,
        "outage counted"
    );
    let ready = reqwest::get(format!("{}/health/ready", h.server.base_url))
        .await
        .unwrap();
    assert_eq!(ready.status().as_u16(), 200, "ready without Redis");
    h.stop().await;
}

#[tokio::test]
async fn bad_input_gets_a_problem_and_writes_nothing() {
    let h = Harness::start().await;
    let http = reqwest::Client::new();
    let long = "x".repeat(201);
    let cases = [
        (
            "POST",
            "/users",
            r#"{"name":"A","email":"not-an-email"}"#.to_owned(),
            400,
        ),
        (
            "POST",
            "/users",
            r#"{"name":"","email":"a@example.com"}"#.to_owned(),
            400,
        ),
        (
            "POST",
            "/users",
            r#"{"name":"   ","email":"a@example.com"}"#.to_owned(),
            400,
        ),
        (
            "POST",
            "/users",
            format!(r#"{{"name":"{long}","email":"a@example.com"}}"#),
            400,
        ),
        ("POST", "/users", r#"{"name":"A"}"#.to_owned(), 400),
        (
            "POST",
            "/users",
            r#"{"name":"Dup","email":"alice@example.com"}"#.to_owned(),
            409,
        ),
        (
            "POST",
            "/users",
            r#"{"name":"Dup","email":"ALICE@example.com"}"#.to_owned(),
            409,
        ),
        (
            "PUT",
            "/users/2",
            r#"{"name":"Bob","email":"alice@example.com"}"#.to_owned(),
            409,
        ),
        (
            "PUT",
            "/users/2",
            r#"{"name":"","email":"bob@example.com"}"#.to_owned(),
            400,
        ),
        (
            "PUT",
            "/users/999",
            r#"{"name":"Nobody","email":"nobody@example.com"}"#.to_owned(),
            404,
        ),
        (
            "PUT",
            "/users/0",
            r#"{"name":"Nobody","email":"nobody@example.com"}"#.to_owned(),
            400,
        ),
    ];
    for (method, path, body, status) in cases {
        let req = match method {
            "POST" => http.post(format!("{}{path}", h.server.base_url)),
            _ => http.put(format!("{}{path}", h.server.base_url)),
        };
        let resp = req
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), status, "{method} {path} {body}");
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/problem+json")
        );
        let problem: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(problem["status"], status);
    }
    let resp = http
        .get(format!("{}/users/abc", h.server.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    assert_eq!(h.user_count().await, 3, "nothing written");
    let u = h.client.get_user(2).await.unwrap();
    assert_eq!(
        (u.name.as_str(), u.email.as_str()),
        ("Bob Smith", "bob@example.com"),
        "unchanged"
    );
    h.stop().await;
}

#[tokio::test]
async fn served_spec_equals_the_committed_contract() {
    let h = Harness::start().await;
    let served = reqwest::get(format!("{}/openapi.json", h.server.base_url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let contract = shopmesh_openapi::users::CONTRACT_YAML;
    shopmesh_codegen::contract::assert_served(contract, &served).unwrap_or_else(|e| panic!("{e}"));
    // And the routes answer what the contract promises.
    let implemented = shopmesh_openapi::users::UsersEndpoints::implemented_spec();
    shopmesh_codegen::contract::assert_equivalent(contract, &implemented)
        .unwrap_or_else(|e| panic!("{e}"));
    h.stop().await;
}

/// With `METRICS_PORT` set, `/metrics` moves to its own listener (with the probes), and the
/// public one no longer serves it.
#[tokio::test]
async fn metrics_can_be_served_on_an_internal_port_only() {
    let stack = test_stack().set_for(Service::Users, "METRICS_PORT", "0");
    let app = build_service::<Application>(&stack.env_for(Service::Users).unwrap(), |_| {}).await;
    let metrics = app.addrs().metrics.expect("a metrics listener");
    let server = Running::start(app).await;
    let internal = format!("http://127.0.0.1:{}", metrics.port());
    let http = reqwest::Client::new();
    let get = |url: String| {
        let http = http.clone();
        async move {
            let resp = http.get(url).send().await.unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        }
    };

    assert_eq!(get(format!("{}/users/1", server.base_url)).await.0, 200);
    let (status, _) = get(format!("{}/metrics", server.base_url)).await;
    assert_eq!(status, 404, "the public listener does not serve /metrics");
    let (status, body) = get(format!("{internal}/metrics")).await;
    assert_eq!(status, 200);
    assert!(body.contains("http_requests_total"), "{body}");
    assert_eq!(get(format!("{internal}/health/ready")).await.0, 200);
    assert_eq!(
        get(format!("{internal}/users/1")).await.0,
        404,
        "no API on it"
    );
    server.stop().await;
    remove_names(&stack.names, 0).await;
}
