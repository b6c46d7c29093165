//! Products: prices in minor units of an ISO 4217 currency, admin-only changes, browsing.

mod helpers;

use helpers::{Harness, adjustment, input, status};
use shopmesh_testkit::unique;

#[tokio::test]
async fn a_zero_decimal_price_is_kept_as_given() {
    let h = Harness::start().await;
    let p = h.product(500, "JPY", 0).await;
    assert_eq!(
        (p.price.amount_minor, p.price.currency.as_str()),
        (500, "JPY")
    );
    h.stop().await;
}

#[tokio::test]
async fn an_unknown_currency_is_a_400_and_nothing_is_stored() {
    let h = Harness::start().await;
    let sku = unique("SKU");
    let err = h
        .client
        .create_product(&h.admin, None, &input(&sku, 100, "USX"))
        .await
        .unwrap_err();
    assert_eq!(status(&err), 400, "{err:?}");
    assert_eq!(
        status(&h.client.get_product_by_sku(sku).await.unwrap_err()),
        404
    );
    h.stop().await;
}

#[tokio::test]
async fn a_negative_price_is_refused_by_the_contract() {
    let h = Harness::start().await;
    let err = h
        .client
        .create_product(&h.admin, None, &input(&unique("SKU"), -1, "EUR"))
        .await;
    assert!(err.is_err(), "{err:?}");
    h.stop().await;
}

#[tokio::test]
async fn a_taken_sku_is_a_409() {
    let h = Harness::start().await;
    let p = h.product(100, "EUR", 0).await;
    let err = h
        .client
        .create_product(&h.admin, None, &input(&p.sku, 1, "EUR"))
        .await
        .unwrap_err();
    assert_eq!(status(&err), 409, "{err:?}");
    h.stop().await;
}

#[tokio::test]
async fn only_an_admin_changes_the_catalog() {
    let h = Harness::start().await;
    let err = h
        .client
        .create_product(&h.shopper, None, &input(&unique("SKU"), 1, "EUR"))
        .await;
    assert_eq!(status(&err.unwrap_err()), 403);
    h.stop().await;
}

#[tokio::test]
async fn removing_more_than_is_free_is_a_409_and_the_ledger_keeps_every_change() {
    let h = Harness::start().await;
    let p = h.product(100, "EUR", 3).await;
    let err = h
        .client
        .adjust_stock(&h.admin, p.id, None, &adjustment(-4))
        .await
        .unwrap_err();
    assert_eq!(status(&err), 409, "{err:?}");
    let stock = h
        .client
        .adjust_stock(&h.admin, p.id, None, &adjustment(-1))
        .await
        .unwrap();
    assert_eq!((stock.on_hand, stock.available), (2, 2));
    let ledger: Vec<(i64,)> =
        sqlx::query_as("SELECT delta FROM stock_ledger WHERE product_id = ? ORDER BY id")
            .bind(p.id)
            .fetch_all(h.store().pool())
            .await
            .unwrap();
    assert_eq!(ledger, vec![(3,), (-1,)]);
    h.stop().await;
}

#[tokio::test]
async fn pages_follow_cursors_and_search_matches_names_and_skus() {
    let h = Harness::start().await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(h.product(100, "EUR", 0).await.id);
    }
    let first = h.client.list_products(Some(2), None, None).await.unwrap();
    let second = h
        .client
        .list_products(Some(2), first.next_cursor.clone(), None)
        .await
        .unwrap();
    let seen: Vec<i64> = first
        .items
        .iter()
        .chain(&second.items)
        .map(|p| p.id)
        .collect();
    assert_eq!(seen, ids[..4]);
    let sku = h.client.get_product(ids[2]).await.unwrap().sku;
    let found = h
        .client
        .list_products(None, None, Some(sku.to_lowercase()))
        .await
        .unwrap();
    assert_eq!(
        found.items.iter().map(|p| p.id).collect::<Vec<_>>(),
        vec![ids[2]]
    );
    let bad = h
        .client
        .list_products(None, Some("bogus".into()), None)
        .await
        .unwrap_err();
    assert_eq!(status(&bad), 400);
    h.stop().await;
}
