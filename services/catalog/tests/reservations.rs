//! Reservations: all lines or none, idempotent per order, committed, released or expired once.

mod helpers;

use std::time::Duration;

use helpers::{Harness, line, status};
use shopmesh_openapi::catalog::{ReservationRequest, ReservationStatus};
use shopmesh_testkit::{Service, test_stack};

fn request(lines: Vec<shopmesh_openapi::catalog::ReservationLine>) -> ReservationRequest {
    ReservationRequest { lines }
}

#[tokio::test]
async fn one_short_line_reserves_nothing() {
    let h = Harness::start().await;
    let (a, b) = (
        h.product(100, "EUR", 5).await,
        h.product(100, "EUR", 1).await,
    );
    let err = h
        .client
        .reserve_stock(&h.orders, 1, &request(vec![line(a.id, 2), line(b.id, 2)]))
        .await
        .unwrap_err();
    assert_eq!(status(&err), 409, "{err:?}");
    assert_eq!(h.client.get_product(a.id).await.unwrap().stock.reserved, 0);
    assert_eq!(
        status(&h.client.get_reservation(&h.admin, 1).await.unwrap_err()),
        404
    );
    h.stop().await;
}

#[tokio::test]
async fn reserving_an_order_again_reserves_nothing_twice() {
    let h = Harness::start().await;
    let p = h.product(100, "EUR", 5).await;
    let body = request(vec![line(p.id, 2)]);
    for _ in 0..3 {
        h.client.reserve_stock(&h.orders, 7, &body).await.unwrap();
    }
    assert_eq!(h.client.get_product(p.id).await.unwrap().stock.reserved, 2);
    let other = h
        .client
        .reserve_stock(&h.orders, 7, &request(vec![line(p.id, 1)]))
        .await;
    assert_eq!(status(&other.unwrap_err()), 409);
    h.stop().await;
}

#[tokio::test]
async fn a_commit_sells_and_a_committed_reservation_cannot_be_released() {
    let h = Harness::start().await;
    let p = h.product(100, "EUR", 5).await;
    h.client
        .reserve_stock(&h.orders, 8, &request(vec![line(p.id, 2)]))
        .await
        .unwrap();
    for _ in 0..2 {
        let r = h.client.commit_reservation(&h.orders, 8).await.unwrap();
        assert_eq!(r.status, ReservationStatus::Committed);
    }
    let stock = h.client.get_product(p.id).await.unwrap().stock;
    assert_eq!((stock.on_hand, stock.reserved, stock.sold), (3, 0, 2));
    assert_eq!(
        status(
            &h.client
                .release_reservation(&h.orders, 8)
                .await
                .unwrap_err()
        ),
        409
    );
    h.stop().await;
}

#[tokio::test]
async fn sold_units_return_on_hand_once_and_only_after_a_commit() {
    let h = Harness::start().await;
    let p = h.product(100, "EUR", 5).await;
    let body = request(vec![line(p.id, 2)]);
    h.client.reserve_stock(&h.orders, 9, &body).await.unwrap();
    let early = h.client.return_reservation(&h.orders, 9).await;
    assert_eq!(
        status(&early.unwrap_err()),
        409,
        "reserved units are released, not returned"
    );
    h.client.commit_reservation(&h.orders, 9).await.unwrap();
    for _ in 0..2 {
        let r = h.client.return_reservation(&h.orders, 9).await.unwrap();
        assert_eq!(r.status, ReservationStatus::Returned);
    }
    let stock = h.client.get_product(p.id).await.unwrap().stock;
    assert_eq!((stock.on_hand, stock.reserved, stock.sold), (5, 0, 0));
    let again = h.client.commit_reservation(&h.orders, 9).await;
    assert_eq!(status(&again.unwrap_err()), 409);
    h.stop().await;
}

#[tokio::test]
async fn an_expired_reservation_gives_its_units_back_and_cannot_be_committed() {
    let stack = test_stack()
        .set_for(Service::Catalog, "RESERVATION_TTL_SECS", "1")
        .set_for(Service::Catalog, "RESERVATION_SWEEP_MS", "100");
    let h = Harness::start_with(stack).await;
    let p = h.product(100, "EUR", 1).await;
    h.client
        .reserve_stock(&h.orders, 9, &request(vec![line(p.id, 1)]))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let r = h.client.get_reservation(&h.admin, 9).await.unwrap();
    assert_eq!(r.status, ReservationStatus::Expired);
    assert_eq!(h.client.get_product(p.id).await.unwrap().stock.available, 1);
    assert_eq!(
        status(&h.client.commit_reservation(&h.orders, 9).await.unwrap_err()),
        409
    );
    h.stop().await;
}

#[tokio::test]
async fn only_a_service_reserves_commits_or_releases() {
    let h = Harness::start().await;
    let p = h.product(100, "EUR", 1).await;
    let one = request(vec![line(p.id, 1)]);
    for person in [&h.shopper, &h.admin] {
        let reserve = h.client.reserve_stock(person, 1, &one).await;
        assert_eq!(status(&reserve.unwrap_err()), 403);
    }
    assert_eq!(h.client.get_product(p.id).await.unwrap().stock.reserved, 0);
    h.client.reserve_stock(&h.orders, 1, &one).await.unwrap();
    for person in [&h.shopper, &h.admin] {
        let commit = h.client.commit_reservation(person, 1).await;
        assert_eq!(status(&commit.unwrap_err()), 403);
        let release = h.client.release_reservation(person, 1).await;
        assert_eq!(status(&release.unwrap_err()), 403);
    }
    let stock = h.client.get_product(p.id).await.unwrap().stock;
    assert_eq!(
        (stock.reserved, stock.sold),
        (1, 0),
        "still reserved, unsold"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_service_cannot_change_the_catalog_or_read_a_reservation() {
    let h = Harness::start().await;
    let created = h
        .client
        .create_product(
            &h.orders,
            None,
            &helpers::input(&shopmesh_testkit::unique("SKU"), 1, "EUR"),
        )
        .await;
    assert_eq!(status(&created.unwrap_err()), 403);
    let read = h.client.get_reservation(&h.orders, 1).await;
    assert_eq!(status(&read.unwrap_err()), 403);
    h.stop().await;
}
