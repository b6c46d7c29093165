//! Idempotency-Key on the catalog's creating requests: a retry answers the stored result and
//! changes nothing more; another body with the key is a 422; a failed request lets it go.

mod helpers;

use helpers::{Harness, adjustment, input, status};
use shopmesh_openapi::catalog::{ProductImport, Stock};
use shopmesh_openapi::runtime::ClientError;
use shopmesh_testkit::unique;

async fn ledger_rows(h: &Harness, product: i64) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM stock_ledger WHERE product_id = ?")
        .bind(product)
        .fetch_one(h.store().pool())
        .await
        .unwrap()
}

/// Adds `units` to `product` with idempotency `key`.
async fn adjust(h: &Harness, product: i64, key: &str, units: i32) -> Result<Stock, ClientError> {
    let body = adjustment(units);
    h.client
        .adjust_stock(&h.admin, product, Some(key), &body)
        .await
}

#[tokio::test]
async fn a_stock_adjustment_sent_twice_with_a_key_adds_its_units_once() {
    let h = Harness::start().await;
    let p = h.product(100, "EUR", 0).await;
    let key = unique("adjust");
    let first = adjust(&h, p.id, &key, 5).await.unwrap();
    let again = adjust(&h, p.id, &key, 5).await.unwrap();
    assert_eq!((first.on_hand, again), (5, first.clone()));
    assert_eq!(h.client.get_product(p.id).await.unwrap().stock.on_hand, 5);
    assert_eq!(ledger_rows(&h, p.id).await, 1);
    h.stop().await;
}

#[tokio::test]
async fn a_key_sent_with_another_body_is_a_422_and_changes_nothing() {
    let h = Harness::start().await;
    let p = h.product(100, "EUR", 0).await;
    let key = unique("adjust");
    adjust(&h, p.id, &key, 5).await.unwrap();
    assert_eq!(status(&adjust(&h, p.id, &key, 6).await.unwrap_err()), 422);
    assert_eq!(h.client.get_product(p.id).await.unwrap().stock.on_hand, 5);
    h.stop().await;
}

#[tokio::test]
async fn a_refused_adjustment_lets_its_key_go_for_a_corrected_retry() {
    let h = Harness::start().await;
    let p = h.product(100, "EUR", 2).await;
    let key = unique("adjust");
    assert_eq!(status(&adjust(&h, p.id, &key, -3).await.unwrap_err()), 409);
    assert_eq!(adjust(&h, p.id, &key, -1).await.unwrap().on_hand, 1);
    h.stop().await;
}

#[tokio::test]
async fn a_product_created_twice_with_a_key_is_one_product() {
    let h = Harness::start().await;
    let body = input(&unique("SKU"), 250, "EUR");
    let key = Some(unique("create"));
    let create = || h.client.create_product(&h.admin, key.as_deref(), &body);
    let first = create().await.unwrap();
    assert_eq!(
        create().await.unwrap(),
        first,
        "a retry, not a 409 for the taken SKU"
    );
    h.stop().await;
}

#[tokio::test]
async fn an_import_sent_twice_with_a_key_answers_the_first_report() {
    let h = Harness::start().await;
    let csv = format!(
        "sku,name,description,price_minor,currency,active,image_url\n{},Mug,,900,EUR,,\n",
        unique("IMP")
    );
    let body = ProductImport { csv };
    let key = Some(unique("import"));
    let import = || h.client.import_products(&h.admin, key.as_deref(), &body);
    let first = import().await.unwrap();
    let again = import().await.unwrap();
    assert_eq!((first.created, first.updated), (1, 0));
    assert_eq!(
        again, first,
        "the stored report, not a second run's (0 created, 1 updated)"
    );
    h.stop().await;
}

#[tokio::test]
async fn an_import_that_wrote_nothing_still_answers_its_retry() {
    // A rejected row means nothing is written, so no transaction stored the answer: it is
    // stored after the work, or the retry would find the key still running (409).
    let h = Harness::start().await;
    let csv = "sku,name,description,price_minor,currency,active,image_url\nBAD,Bad,,1,USX,,\n";
    let body = ProductImport { csv: csv.into() };
    let key = Some(unique("import"));
    let import = || h.client.import_products(&h.admin, key.as_deref(), &body);
    let first = import().await.unwrap();
    assert_eq!(first.rejected.len(), 1);
    assert_eq!(import().await.unwrap(), first);
    h.stop().await;
}
