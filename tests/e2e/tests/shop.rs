//! Orders carry their product: `Order.product` resolves through the catalog, one lookup per
//! distinct product on a page however many orders name it.

use std::sync::atomic::Ordering;

use serde_json::json;
use shopmesh_e2e::{Platform, PlatformOptions};
use shopmesh_identity::Role;
use shopmesh_openapi::catalog::{CatalogClient, Money, ProductInput};
use shopmesh_testkit::{self as testkit, authed_http, unique};

#[tokio::test]
async fn an_order_page_loads_each_distinct_product_once() {
    let platform = Platform::start(PlatformOptions::default()).await.unwrap();
    let catalog = CatalogClient::new(platform.catalog_url.clone());
    let admin = platform.token(4, Role::Admin);
    let mut products = Vec::new();
    for name in ["Mug", "Tee"] {
        let input = ProductInput {
            sku: unique("SKU"),
            name: name.to_owned(),
            description: None,
            price: Money {
                amount_minor: 500,
                currency: "EUR".into(),
            },
            active: Some(true),
            image_url: None,
        };
        products.push(catalog.create_product(&admin, &input).await.unwrap().id);
    }
    let shopper = authed_http(&platform.token(1, Role::User));
    for i in 0..6 {
        let (_, placed) = testkit::graphql(
            &shopper,
            &platform.gateway_url,
            &[],
            "mutation($i: CreateOrderInput!) { createOrder(input: $i) { id } }",
            json!({"i": {"userId": "1", "productId": products[i % 2].to_string(), "quantity": 1}}),
        )
        .await;
        assert!(placed["errors"].is_null(), "{placed}");
    }
    let before = platform
        .gateway
        .backends
        .calls
        .catalog
        .load(Ordering::Relaxed);
    let (_, page) = testkit::graphql(
        &shopper,
        &platform.gateway_url,
        &[],
        "{ ordersByUser(userId: \"1\", first: 6) { nodes { product { name price { amountMinor } } } } }",
        json!({}),
    )
    .await;
    let names: Vec<&str> = page["data"]["ordersByUser"]["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("{page}"))
        .iter()
        .map(|n| n["product"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 6, "{page}");
    assert!(names.iter().all(|n| ["Mug", "Tee"].contains(n)), "{page}");
    let calls = platform
        .gateway
        .backends
        .calls
        .catalog
        .load(Ordering::Relaxed)
        - before;
    assert!(calls <= 2, "{calls} catalog calls for 2 distinct products");
    platform.stop().await;
}
