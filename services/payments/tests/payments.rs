//! A payment's steps: authorized or declined by the token, captured, voided or refunded once,
//! each idempotent, and only by a platform service.

mod helpers;

use helpers::{Harness, status};
use shopmesh_openapi::payments::PaymentStatus;

fn steps(p: &shopmesh_openapi::payments::Payment) -> Vec<PaymentStatus> {
    p.history.iter().map(|s| s.status).collect()
}

#[tokio::test]
async fn a_good_card_is_authorized_captured_and_refunded_once_each() {
    let h = Harness::start().await;
    for _ in 0..2 {
        let p = h.authorize(1, 1999, "tok_visa").await.unwrap();
        assert_eq!(p.status, PaymentStatus::Authorized);
        assert_eq!(
            p.provider_reference.as_deref(),
            Some("fake-order-1-authorize")
        );
    }
    for _ in 0..2 {
        let p = h.client.capture_payment(&h.orders, 1).await.unwrap();
        assert_eq!(p.status, PaymentStatus::Captured);
    }
    assert_eq!(status(h.client.void_payment(&h.orders, 1).await), 409);
    let refunded = h.client.refund_payment(&h.orders, 1).await.unwrap();
    let refunded_again = h.client.refund_payment(&h.orders, 1).await.unwrap();
    assert_eq!(refunded, refunded_again);
    assert_eq!(
        steps(&refunded),
        [
            PaymentStatus::Pending,
            PaymentStatus::Authorized,
            PaymentStatus::Captured,
            PaymentStatus::Refunded
        ]
    );
    for step in ["authorize", "capture", "refund"] {
        assert_eq!(h.provider_calls(1, step), 1, "{step}");
    }
    h.stop().await;
}

#[tokio::test]
async fn declined_cards_say_why_and_cannot_be_captured() {
    let h = Harness::start().await;
    for (order, token, reason) in [
        (1, "tok_declined", "card declined"),
        (2, "tok_insufficient_funds", "insufficient funds"),
    ] {
        let p = h.authorize(order, 500, token).await.unwrap();
        assert_eq!(p.status, PaymentStatus::Declined);
        assert_eq!(p.decline_reason.as_deref(), Some(reason));
        assert_eq!(
            status(h.client.capture_payment(&h.orders, order).await),
            409
        );
    }
    h.stop().await;
}

#[tokio::test]
async fn a_provider_that_does_not_answer_leaves_the_payment_pending_then_failed() {
    let h = Harness::start().await;
    for _ in 0..4 {
        assert_eq!(status(h.authorize(1, 500, "tok_timeout").await), 503);
    }
    let p = h.client.get_payment(&h.admin, 1).await.unwrap();
    assert_eq!(p.status, PaymentStatus::Pending);
    let failed = h.authorize(1, 500, "tok_timeout").await.unwrap();
    assert_eq!(
        failed.status,
        PaymentStatus::Failed,
        "the fifth attempt gives up"
    );
    assert_eq!(status(h.client.capture_payment(&h.orders, 1).await), 409);
    h.stop().await;
}

#[tokio::test]
async fn a_flaky_provider_is_retried_with_the_same_call() {
    let h = Harness::start().await;
    for _ in 0..2 {
        assert_eq!(status(h.authorize(1, 500, "tok_flaky_2").await), 503);
    }
    let p = h.authorize(1, 500, "tok_flaky_2").await.unwrap();
    assert_eq!(p.status, PaymentStatus::Authorized);
    assert_eq!(
        steps(&p),
        [PaymentStatus::Pending, PaymentStatus::Authorized]
    );
    h.stop().await;
}

#[tokio::test]
async fn another_amount_for_the_same_order_is_a_409() {
    let h = Harness::start().await;
    h.authorize(1, 500, "tok_visa").await.unwrap();
    assert_eq!(status(h.authorize(1, 501, "tok_visa").await), 409);
    assert_eq!(status(h.client.refund_payment(&h.orders, 1).await), 409);
    assert_eq!(status(h.client.capture_payment(&h.orders, 2).await), 404);
    h.stop().await;
}

#[tokio::test]
async fn racing_captures_reach_the_provider_once() {
    let h = Harness::start().await;
    h.authorize(1, 500, "tok_visa").await.unwrap();
    // Another transaction holds the payment's row while the captures start, so all of them
    // read it before any finishes: only a locking read keeps them from all calling.
    let mut holder = h.service.part.0.pool().begin().await.unwrap();
    sqlx::query("SELECT order_id FROM payments WHERE order_id = 1 FOR UPDATE")
        .execute(&mut *holder)
        .await
        .unwrap();
    let captures =
        futures::future::join_all((0..10).map(|_| h.client.capture_payment(&h.orders, 1)));
    let release = async {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        holder.commit().await.unwrap();
    };
    let (captured, ()) = tokio::join!(captures, release);
    for captured in captured {
        assert_eq!(captured.unwrap().status, PaymentStatus::Captured);
    }
    assert_eq!(h.provider_calls(1, "capture"), 1);
    let p = h.client.get_payment(&h.admin, 1).await.unwrap();
    assert_eq!(steps(&p).len(), 3, "pending, authorized, captured: {p:?}");
    h.stop().await;
}

#[tokio::test]
async fn only_a_platform_service_moves_a_payment() {
    let h = Harness::start().await;
    let body = shopmesh_openapi::payments::AuthorizationRequest {
        amount: shopmesh_openapi::payments::Money {
            amount_minor: 500,
            currency: "EUR".into(),
        },
        payment_token: "tok_visa".into(),
    };
    for person in [&h.shopper, &h.admin] {
        let refused = h.client.authorize_payment(person, 1, &body).await;
        assert_eq!(status(refused), 403);
    }
    assert_eq!(status(h.client.get_payment(&h.orders, 1).await), 403);
    assert_eq!(status(h.client.get_payment(&h.admin, 1).await), 404);
    h.stop().await;
}
