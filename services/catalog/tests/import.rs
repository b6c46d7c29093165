//! Importing products from CSV: every row checked as the contract checks a product, all rows
//! or none; and the demo catalog.

mod helpers;

use helpers::{Harness, status};
use shopmesh_openapi::catalog::{CatalogClient, ProductImport};
use shopmesh_testkit::{Service, test_stack};

const HEADER: &str = "sku,name,description,price_minor,currency,active,image_url\n";

fn csv(rows: &str) -> ProductImport {
    ProductImport {
        csv: format!("{HEADER}{rows}"),
    }
}

async fn product_count(h: &Harness) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM products")
        .fetch_one(h.store().pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn ten_thousand_rows_import_in_one_request_and_again_as_updates() {
    let h = Harness::start().await;
    let rows: String = (0..10_000)
        .map(|i| format!("BULK-{i},Bulk item {i},,{},EUR,true,\n", 100 + i))
        .collect();
    // The generated client's 2 s default is for single products; an import is a batch.
    let patient = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(120))
        .build()
        .unwrap();
    let client = CatalogClient::with_http_client(h.service.server.base_url.clone(), patient);
    let started = std::time::Instant::now();
    let report = client
        .import_products(&h.admin, None, &csv(&rows))
        .await
        .unwrap();
    println!(
        "10,000 rows imported in {:?} (debug build)",
        started.elapsed()
    );
    assert_eq!(
        (report.imported, report.created, report.rejected.len()),
        (10_000, 10_000, 0)
    );
    let again = client
        .import_products(&h.admin, None, &csv(&rows))
        .await
        .unwrap();
    assert_eq!((again.created, again.updated), (0, 10_000));
    assert_eq!(product_count(&h).await, 10_000);
    h.stop().await;
}

#[tokio::test]
async fn one_bad_row_is_reported_and_nothing_is_written() {
    let h = Harness::start().await;
    let rows = "OK-1,Fine,,100,EUR,,\nBAD-1,Bad,,100,USX,,\nBAD-2,,,-5,EUR,,\n";
    let report = h
        .client
        .import_products(&h.admin, None, &csv(rows))
        .await
        .unwrap();
    assert_eq!(report.imported, 0);
    let rejected: Vec<(i32, Option<&str>)> = report
        .rejected
        .iter()
        .map(|r| (r.row, r.sku.as_deref()))
        .collect();
    assert_eq!(rejected, vec![(2, Some("BAD-1")), (3, Some("BAD-2"))]);
    assert_eq!(product_count(&h).await, 0);
    h.stop().await;
}

#[tokio::test]
async fn a_file_that_is_not_the_documented_csv_is_a_400() {
    let h = Harness::start().await;
    let not_csv = ProductImport {
        csv: "name;price\nx;1\n".to_owned(),
    };
    let err = h
        .client
        .import_products(&h.admin, None, &not_csv)
        .await
        .unwrap_err();
    assert_eq!(status(&err), 400, "{err:?}");
    h.stop().await;
}

#[tokio::test]
async fn the_demo_catalog_is_seeded_once_with_stock() {
    let stack = test_stack().set_for(Service::Catalog, "DEMO_SEED", "true");
    let h = Harness::start_with(stack).await;
    let mug = shopmesh_testkit::eventually(
        "the demo catalog",
        std::time::Duration::from_secs(10),
        || async {
            h.client
                .get_product_by_sku("MUG-001".to_owned())
                .await
                .ok()
                .filter(|p| p.stock.on_hand > 0)
        },
    )
    .await;
    assert_eq!(
        (mug.price.amount_minor, mug.price.currency.as_str()),
        (1200, "EUR")
    );
    let page = h.client.list_products(Some(100), None, None).await.unwrap();
    assert!(
        page.items.len() >= 25,
        "{} active demo products",
        page.items.len()
    );
    let stocked = h
        .store()
        .stock_if_new(&[("MUG-001".into(), 40)], "demo seed")
        .await;
    assert!(stocked.is_ok());
    assert_eq!(
        h.client.get_product(mug.id).await.unwrap().stock.on_hand,
        mug.stock.on_hand
    );
    h.stop().await;
}
