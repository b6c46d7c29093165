//! Log-in locks and sign-up limits, tried as an attacker would: spelling variants of an email,
//! concurrent guesses, forged `X-Forwarded-For`, failures spread over many addresses, and a
//! flood of sign-ups.

mod helpers;

use futures::future::join_all;
use helpers::*;
use serde_json::json;
use shopmesh_testkit::{Service, test_stack};

const PASSWORD: &str = "correct horse battery";

/// A log-in from `from` (sent as `X-Forwarded-For`): the status and `Retry-After`.
async fn attempt(h: &Harness, email: &str, password: &str, from: &str) -> (u16, Option<u64>) {
    let resp = reqwest::Client::new()
        .post(h.url("/auth/token"))
        .header("x-forwarded-for", from)
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap();
    let retry = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok()?.parse().ok());
    (resp.status().as_u16(), retry)
}

async fn sign_up_from(h: &Harness, email: &str, from: &str) -> u16 {
    reqwest::Client::new()
        .post(h.url("/users"))
        .header("x-forwarded-for", from)
        .json(&json!({"name": "Lock", "email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn harness(settings: &[(&str, &str)]) -> Harness {
    let mut stack = test_stack();
    for (k, v) in settings {
        stack = stack.set_for(Service::Users, k, *v);
    }
    Harness::start_with(stack).await
}

#[tokio::test]
async fn spelling_variants_of_a_locked_email_get_no_more_guesses() {
    let h = harness(&[("LOGIN_MAX_FAILURES", "5")]).await;
    assert_eq!(
        sign_up_from(&h, "lock1@example.com", "198.51.100.1").await,
        201
    );
    let me = "198.51.100.2";
    for _ in 0..5 {
        assert_eq!(attempt(&h, "lock1@example.com", "guess", me).await.0, 401);
    }
    let variants = [
        "lock1@example.com",
        "LOCK1@example.com",
        "l\u{f3}ck1@example.com",
        "\u{ff4c}ock1@example.com",
        "lock1@ex\u{e4}mple.com",
        "lock1@EXAMPLE.com",
        " lock1@example.com",
        "lo\u{301}ck1@example.com",
    ];
    for email in variants {
        let (status, retry) = attempt(&h, email, PASSWORD, me).await;
        assert_eq!(status, 429, "{email:?} is the locked account");
        assert!(retry.is_some_and(|s| s >= 1), "{email:?}: {retry:?}");
    }
    for email in &variants[1..6] {
        assert_eq!(
            sign_up_from(&h, email, "198.51.100.3").await,
            409,
            "{email:?} collides with lock1@example.com"
        );
    }
    h.stop().await;
}

#[tokio::test]
async fn concurrent_guesses_are_counted_before_any_is_checked() {
    let h = harness(&[
        ("LOGIN_MAX_FAILURES", "5"),
        ("LOGIN_MAX_FAILURES_PER_ADDRESS", "100"),
    ])
    .await;
    let guesses = (0..40).map(|_| attempt(&h, "charlie@example.com", "guess", "198.51.100.9"));
    let statuses: Vec<u16> = join_all(guesses)
        .await
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((checked, refused), (5, 35), "{statuses:?}");
    h.stop().await;
}

#[tokio::test]
async fn failures_elsewhere_never_lock_the_owner_out() {
    let h = harness(&[
        ("LOGIN_MAX_FAILURES", "3"),
        ("LOGIN_MAX_FAILURES_PER_ACCOUNT", "8"),
        ("LOGIN_LOCK_SECS", "60"),
    ])
    .await;
    let (owner, email) = ("198.51.100.20", "bob@example.com");
    assert_eq!(attempt(&h, email, "shopmesh-demo", owner).await.0, 200);
    // One attacker address: locked out of Bob's account after 3; Bob is not.
    for _ in 0..3 {
        assert_eq!(attempt(&h, email, "guess", "203.0.113.1").await.0, 401);
    }
    assert_eq!(
        attempt(&h, email, "shopmesh-demo", "203.0.113.1").await.0,
        429
    );
    assert_eq!(attempt(&h, email, "shopmesh-demo", owner).await.0, 200);
    // Guesses spread over many addresses lock the account for every address it never
    // logged in from, but not for the owner's.
    for i in 2..7 {
        assert_eq!(
            attempt(&h, email, "guess", &format!("203.0.113.{i}"))
                .await
                .0,
            401
        );
    }
    assert_eq!(
        attempt(&h, email, "shopmesh-demo", "203.0.113.99").await.0,
        429
    );
    assert_eq!(attempt(&h, email, "shopmesh-demo", owner).await.0, 200);
    h.stop().await;
}

#[tokio::test]
async fn a_lock_grows_with_every_further_failure() {
    let h = harness(&[
        ("LOGIN_MAX_FAILURES", "3"),
        ("LOGIN_MAX_FAILURES_PER_ADDRESS", "6"),
        ("LOGIN_LOCK_SECS", "2"),
    ])
    .await;
    let me = "198.51.100.7";
    for _ in 0..3 {
        assert_eq!(attempt(&h, "carol@example.com", "guess", me).await.0, 401);
    }
    for _ in 0..3 {
        assert_eq!(attempt(&h, "charlie@example.com", "guess", me).await.0, 401);
    }
    let (status, retry) = attempt(&h, "charlie@example.com", "shopmesh-demo", me).await;
    assert_eq!(status, 429, "the account is locked for this address");
    assert!(matches!(retry, Some(1..=2)), "{retry:?}");
    // Six failures from one address lock the address, for any account.
    assert_eq!(
        attempt(&h, "bob@example.com", "shopmesh-demo", me).await.0,
        429
    );
    assert_eq!(
        attempt(&h, "bob@example.com", "shopmesh-demo", "203.0.113.2")
            .await
            .0,
        200
    );

    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(attempt(&h, "charlie@example.com", "guess", me).await.0, 401);
    let (status, retry) = attempt(&h, "charlie@example.com", "guess", me).await;
    assert_eq!(status, 429);
    assert!(matches!(retry, Some(3..=4)), "the delay doubled: {retry:?}");
    h.stop().await;
}

#[tokio::test]
async fn forwarded_for_from_a_peer_that_is_not_trusted_is_ignored() {
    let h = harness(&[("LOGIN_MAX_FAILURES", "3"), ("LOGIN_TRUSTED_PROXIES", "")]).await;
    for i in 0..3 {
        let from = format!("203.0.113.{i}");
        assert_eq!(attempt(&h, "bob@example.com", "guess", &from).await.0, 401);
    }
    let (status, _) = attempt(&h, "bob@example.com", "shopmesh-demo", "203.0.113.50").await;
    assert_eq!(status, 429, "every attempt came from the same peer");
    h.stop().await;
}

#[tokio::test]
async fn sign_ups_are_limited_per_address() {
    let h = harness(&[("SIGNUP_MAX_PER_ADDRESS", "3")]).await;
    for i in 0..3 {
        let email = format!("new{i}@example.com");
        assert_eq!(sign_up_from(&h, &email, "198.51.100.30").await, 201);
    }
    assert_eq!(
        sign_up_from(&h, "new3@example.com", "198.51.100.30").await,
        429
    );
    assert_eq!(
        sign_up_from(&h, "new4@example.com", "198.51.100.31").await,
        201
    );
    h.stop().await;
}
