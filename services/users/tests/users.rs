//! Users service against real MariaDB and Redis; each test has its own database and its own
//! cache-key namespace.

mod helpers;

use std::sync::atomic::Ordering;

use helpers::*;
use shopmesh_common::service::Service as _;
use shopmesh_identity::AccessToken;
use shopmesh_openapi::runtime::ClientError;
use shopmesh_openapi::users::{Credentials, RefreshRequest, UsersClient};
use shopmesh_testkit::{Running, Service, build_service, remove_names, test_stack};
use shopmesh_users::Application;

#[tokio::test]
async fn seeded_demo_users_exist_and_unknown_is_404() {
    let h = Harness::start().await;
    for (id, name) in [(1, "Alice Johnson"), (2, "Bob Smith"), (3, "Charlie Brown")] {
        let u = h.client.get_user(&h.admin, id).await.unwrap();
        assert_eq!(u.name, name);
    }
    match h.client.get_user(&h.admin, 999).await {
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
        .create_user(None, &sign_up("Ada Lovelace", "ada@example.com"))
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

    // Served from Redis, then from process memory.
    let hits = || h.store.cache().stats().hits.load(Ordering::Relaxed) + h.store.memory_hits();
    let hits_before = hits();
    for _ in 0..3 {
        let u = h.client.get_user(&h.admin, created.id).await.unwrap();
        assert_eq!(u, created);
    }
    assert_eq!(hits() - hits_before, 3, "served from a cache");

    // Prove reads come from the cache: change the row behind the cache's back.
    sqlx::query("UPDATE users SET name = 'Changed Directly' WHERE id = ?")
        .bind(created.id)
        .execute(h.store.pool())
        .await
        .unwrap();
    let u = h.client.get_user(&h.admin, created.id).await.unwrap();
    assert_eq!(u.name, "Ada Lovelace", "cached copy");

    // A write through the service refreshes the cache: the next read sees it.
    let u = h
        .client
        .update_user(
            &h.admin,
            created.id,
            &input("Ada King", "ada.king@example.com"),
        )
        .await
        .unwrap();
    assert_eq!(u.name, "Ada King");
    let u = h.client.get_user(&h.admin, created.id).await.unwrap();
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
    let u = h.client.get_user(&h.admin, 1).await.unwrap();
    assert_eq!(u.name, "Alice Johnson");
    let u = h
        .client
        .update_user(&h.admin, 2, &input("Robert Smith", "bob@example.com"))
        .await
        .unwrap();
    assert_eq!(u.name, "Robert Smith");
    let u = h.client.get_user(&h.admin, 2).await.unwrap();
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
            r#"{"name":"A","email":"not-an-email","password":"long enough"}"#.to_owned(),
            400,
        ),
        (
            "POST",
            "/users",
            r#"{"name":"","email":"a@example.com","password":"long enough"}"#.to_owned(),
            400,
        ),
        (
            "POST",
            "/users",
            r#"{"name":"   ","email":"a@example.com","password":"long enough"}"#.to_owned(),
            400,
        ),
        (
            "POST",
            "/users",
            format!(r#"{{"name":"{long}","email":"a@example.com","password":"long enough"}}"#),
            400,
        ),
        ("POST", "/users", r#"{"name":"A"}"#.to_owned(), 400),
        (
            "POST",
            "/users",
            r#"{"name":"A","email":"short@example.com","password":"1234567"}"#.to_owned(),
            400,
        ),
        (
            "POST",
            "/users",
            r#"{"name":"Dup","email":"alice@example.com","password":"long enough"}"#.to_owned(),
            409,
        ),
        (
            "POST",
            "/users",
            r#"{"name":"Dup","email":"ALICE@example.com","password":"long enough"}"#.to_owned(),
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
            _ => http
                .put(format!("{}{path}", h.server.base_url))
                .bearer_auth(h.admin.expose()),
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
        .bearer_auth(h.admin.expose())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    assert_eq!(h.user_count().await, 4, "nothing written");
    let u = h.client.get_user(&h.admin, 2).await.unwrap();
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

    assert_eq!(
        get(format!("{}/.well-known/jwks.json", server.base_url))
            .await
            .0,
        200
    );
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

#[tokio::test]
async fn a_shopper_signs_up_logs_in_and_reaches_only_themself() {
    let h = Harness::start().await;
    let ada = h
        .client
        .create_user(None, &sign_up("Ada Lovelace", "ada@example.com"))
        .await
        .unwrap();
    assert_eq!(ada.role, shopmesh_openapi::users::Role::User);
    let stored: String = sqlx::query_scalar("SELECT password_hash FROM users WHERE id = ?")
        .bind(ada.id)
        .fetch_one(h.store.pool())
        .await
        .unwrap();
    assert!(
        stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "argon2id at OWASP's cost: {stored}"
    );
    let raw = reqwest::Client::new()
        .post(h.url("/users"))
        .json(&serde_json::json!({"name": "Eve", "email": "eve@example.com", "password": "eve's password"}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !raw.contains("password") && !raw.contains("argon2"),
        "{raw}"
    );

    let tokens = log_in(&h, "ADA@example.com", "correct horse battery")
        .await
        .unwrap();
    assert_eq!(tokens.token_type, "Bearer");
    assert_eq!(tokens.expires_in, 900);
    let own = AccessToken::new(tokens.access_token);
    assert_eq!(
        h.client.get_user(&own, ada.id).await.unwrap().name,
        "Ada Lovelace"
    );
    assert_eq!(
        status(h.client.get_user(&own, 1).await),
        403,
        "another user's data"
    );
    assert_eq!(
        status(
            h.client
                .update_user(&own, 1, &input("Pwned", "attacker@evil.example"))
                .await
        ),
        403
    );
    assert_eq!(
        h.client.get_user(&h.admin, 1).await.unwrap().email,
        "alice@example.com",
        "unchanged"
    );
    let renamed = h
        .client
        .update_user(&own, ada.id, &input("Ada King", "ada@example.com"))
        .await
        .unwrap();
    assert_eq!(renamed.name, "Ada King");

    // The seeded admin logs in with the demo password and reads anyone.
    let admin = log_in(&h, "admin@example.com", "shopmesh-demo")
        .await
        .unwrap();
    let admin = AccessToken::new(admin.access_token);
    assert_eq!(
        h.client.get_user(&admin, ada.id).await.unwrap().name,
        "Ada King"
    );
    assert_eq!(
        h.client.get_user(&admin, 1).await.unwrap().role,
        shopmesh_openapi::users::Role::User
    );
    h.stop().await;
}

#[tokio::test]
async fn every_kind_of_bad_token_is_a_401_problem() {
    let h = Harness::start().await;
    let cases = shopmesh_testkit::refused_tokens(&h.stack);
    let http = reqwest::Client::new();
    for (what, token) in cases {
        let mut req = http.get(h.url("/users/1"));
        if let Some(t) = &token {
            req = req.bearer_auth(t.expose());
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{what}");
        assert_eq!(resp.headers()["www-authenticate"], "Bearer", "{what}");
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/problem+json"),
            "{what}"
        );
        let problem: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(problem["status"], 401, "{what}");
        assert!(
            problem["detail"].as_str().unwrap().contains("token"),
            "{what}: {problem}"
        );
    }
    let resp = http
        .get(h.url("/users/1"))
        .bearer_auth(h.admin.expose())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200, "a valid token passes");
    h.stop().await;
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_replayed_one_revokes_its_family() {
    let h = Harness::start().await;
    let first = log_in(&h, "bob@example.com", "shopmesh-demo")
        .await
        .unwrap();
    let refresh = |t: &str| {
        let body = RefreshRequest {
            refresh_token: t.to_owned(),
        };
        let client = h.client.clone();
        async move { client.refresh_token(&body).await }
    };
    let second = refresh(&first.refresh_token).await.unwrap();
    assert_ne!(second.refresh_token, first.refresh_token);
    let bob = AccessToken::new(second.access_token.clone());
    assert_eq!(h.client.get_user(&bob, 2).await.unwrap().name, "Bob Smith");
    let third = refresh(&second.refresh_token).await.unwrap();

    // The first token again: someone kept a copy. The whole family dies, the newest too.
    assert_eq!(status(refresh(&first.refresh_token).await), 401);
    assert_eq!(
        status(refresh(&third.refresh_token).await),
        401,
        "family revoked"
    );

    // A separate log-in is unaffected, until it logs out.
    let other = log_in(&h, "bob@example.com", "shopmesh-demo")
        .await
        .unwrap();
    h.client
        .logout(&RefreshRequest {
            refresh_token: other.refresh_token.clone(),
        })
        .await
        .unwrap();
    assert_eq!(
        status(refresh(&other.refresh_token).await),
        401,
        "logged out"
    );
    assert_eq!(status(refresh("never-issued").await), 401);
    let stored: Vec<Vec<u8>> = sqlx::query_scalar("SELECT token_hash FROM refresh_tokens")
        .fetch_all(h.store.pool())
        .await
        .unwrap();
    assert!(
        stored
            .iter()
            .all(|hash| hash.len() == 32 && *hash != first.refresh_token.as_bytes()),
        "only SHA-256 hashes are stored"
    );
    h.stop().await;
}

#[tokio::test]
async fn unknown_and_known_emails_get_the_same_answer_in_the_same_time() {
    let h = Harness::start_with(
        test_stack()
            .set_for(Service::Users, "LOGIN_MAX_FAILURES", "1000")
            .set_for(Service::Users, "LOGIN_MAX_FAILURES_PER_ADDRESS", "1000"),
    )
    .await;
    let http = reqwest::Client::new();
    let attempt = |email: &'static str| {
        let (http, url) = (http.clone(), h.url("/auth/token"));
        async move {
            let started = std::time::Instant::now();
            let resp = http
                .post(url)
                .json(&serde_json::json!({"email": email, "password": "wrong password"}))
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let body: serde_json::Value = resp.json().await.unwrap();
            (status, body, started.elapsed())
        }
    };
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let (s1, b1, t1) = attempt("alice@example.com").await;
        let (s2, b2, t2) = attempt("nobody@example.com").await;
        assert_eq!((s1, &b1), (s2, &b2), "one answer for both");
        assert_eq!(s1, 401);
        known.push(t1);
        unknown.push(t2);
    }
    known.sort();
    unknown.sort();
    let (k, u) = (known[2].as_secs_f64(), unknown[2].as_secs_f64());
    // Both pay one argon2 verification; without the dummy hash an unknown email would answer
    // in a fraction of a millisecond against tens of milliseconds.
    assert!(
        u > k * 0.5 && u < k * 2.0,
        "median answer times differ: known {k:.4} s, unknown {u:.4} s"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_rotated_signing_key_keeps_earlier_tokens_valid() {
    let old = shopmesh_identity::SigningKey::generate();
    let dir = std::env::temp_dir().join(shopmesh_testkit::unique("keys"));
    std::fs::create_dir_all(&dir).unwrap();
    let old_file = dir.join("old.pem");
    std::fs::write(&old_file, old.to_pem()).unwrap();
    let stack = test_stack().set_for(Service::Users, "AUTH_SIGNING_KEY", old.to_pem());
    let h = Harness::start_with(stack.clone()).await;
    let before = log_in(&h, "alice@example.com", "shopmesh-demo")
        .await
        .unwrap();
    h.server.stop().await;

    let new = shopmesh_identity::SigningKey::generate();
    let rotated = stack
        .set_for(Service::Users, "AUTH_SIGNING_KEY", new.to_pem())
        .set_for(
            Service::Users,
            "AUTH_RETIRED_KEY_FILES",
            old_file.display().to_string(),
        );
    let app = build_service::<Application>(&rotated.env_for(Service::Users).unwrap(), |_| {}).await;
    let server = Running::start(app).await;
    let client = UsersClient::new(server.base_url.clone());
    let jwks = client.get_jwks().await.unwrap();
    let kids: Vec<&str> = jwks.keys.iter().map(|k| k.kid.as_str()).collect();
    assert_eq!(
        kids,
        [new.kid(), old.kid()],
        "signing key first, retired key still published"
    );
    let old_token = AccessToken::new(before.access_token);
    assert_eq!(
        client.get_user(&old_token, 1).await.unwrap().name,
        "Alice Johnson"
    );
    let after = client
        .issue_token(&Credentials {
            email: "alice@example.com".into(),
            password: "shopmesh-demo".into(),
        })
        .await
        .unwrap();
    let header = jsonwebtoken::decode_header(&after.access_token).unwrap();
    assert_eq!(
        header.kid.as_deref(),
        Some(new.kid()),
        "new tokens use the new key"
    );
    assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA);
    server.stop().await;
    h.store.pool().close().await;
    remove_names(&h.stack.names, 0).await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn without_demo_seeding_no_demo_account_exists() {
    let h = Harness::start_with(test_stack().set_for(Service::Users, "DEMO_SEED", "false")).await;
    assert_eq!(h.user_count().await, 0);
    assert_eq!(
        status(log_in(&h, "admin@example.com", "shopmesh-demo").await),
        401
    );
    h.stop().await;
}

#[tokio::test]
async fn a_sign_up_sent_twice_with_a_key_answers_the_same_user() {
    let h = Harness::start().await;
    let key = Some("sign-up-1");
    let body = sign_up("Ada Lovelace", "ada@example.com");
    let first = h.client.create_user(key, &body).await.unwrap();
    let again = h.client.create_user(key, &body).await.unwrap();
    assert_eq!(again, first, "a retry, not a 409 for the taken email");
    let other = sign_up("Ada Lovelace", "ada.l@example.com");
    assert_eq!(status(h.client.create_user(key, &other).await), 422);
    h.stop().await;
}

#[tokio::test]
async fn a_sign_up_key_covers_the_name_and_email_but_not_the_password() {
    let h = Harness::start().await;
    let key = Some("sign-up-2");
    let body = sign_up("Ada Lovelace", "ada@example.com");
    let first = h.client.create_user(key, &body).await.unwrap();
    // Were the password in the stored fingerprint, another one would be a 422.
    let other_password = shopmesh_openapi::users::NewUser {
        password: "another horse battery".to_owned(),
        ..body
    };
    assert_eq!(
        h.client.create_user(key, &other_password).await.unwrap(),
        first
    );
    let stored: String =
        sqlx::query_scalar("SELECT response FROM idempotency_keys WHERE idem_key = ?")
            .bind("sign-up-2")
            .fetch_one(h.store.pool())
            .await
            .unwrap();
    assert!(!stored.contains("horse"), "{stored}");
    h.stop().await;
}
