//! The catalog through the gateway: GraphQL and REST reads, served from process memory and
//! coherent across gateway replicas within 100 ms of a change the catalog acknowledged.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use shopmesh_catalog::store::CatalogStore;
use shopmesh_identity::{AccessToken, Role};
use shopmesh_openapi::catalog::{CatalogClient, Money, ProductInput, StockAdjustment};
use shopmesh_testkit::{Ports, Service, Stack, Started, graphql, start, test_stack, token, unique};

/// The catalog and `replicas` gateways in front of it, all from one stack.
struct Shop {
    catalog: Started<CatalogStore>,
    gateways: Vec<Started<shopmesh_gateway::Gateway>>,
    client: CatalogClient,
    admin: AccessToken,
    http: reqwest::Client,
}

impl Shop {
    async fn start(replicas: usize) -> Self {
        Self::start_with(replicas, test_stack()).await
    }

    async fn start_with(replicas: usize, stack: Stack) -> Self {
        let stack = stack.set_for(Service::Gateway, "RATE_LIMIT_MAX", "100000");
        let catalog =
            start::<shopmesh_catalog::Application, _>(stack.clone(), Service::Catalog, |app| {
                app.store().clone()
            })
            .await;
        let mut gateways = Vec::new();
        for i in 0..replicas {
            let at: Stack = if i == 0 {
                stack.clone()
            } else {
                stack.replica(Ports::free().unwrap())
            };
            gateways.push(
                start::<shopmesh_gateway::Application, _>(at, Service::Gateway, |app| {
                    app.gateway().clone()
                })
                .await,
            );
        }
        let client = CatalogClient::new(catalog.server.base_url.clone());
        let admin = token(&catalog.stack, 4, Role::Admin);
        Self {
            catalog,
            gateways,
            client,
            admin,
            http: reqwest::Client::new(),
        }
    }

    async fn product(&self, amount_minor: i64, units: i32) -> i64 {
        let input = input(&unique("SKU"), "Product", amount_minor);
        let p = self
            .client
            .create_product(&self.admin, None, &input)
            .await
            .unwrap();
        if units > 0 {
            let adjustment = StockAdjustment {
                delta: units,
                reason: "test".into(),
            };
            self.client
                .adjust_stock(&self.admin, p.id, None, &adjustment)
                .await
                .unwrap();
        }
        p.id
    }

    async fn query(&self, gateway: usize, query: &str, variables: Value) -> Value {
        let (status, body) = graphql(
            &self.http,
            &self.gateways[gateway].server.base_url,
            &[],
            query,
            variables,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// A GraphQL request to the first gateway as the holder of `token`.
    async fn query_as(&self, token: &AccessToken, query: &str, variables: Value) -> Value {
        let auth = token.header_value();
        let base = &self.gateways[0].server.base_url;
        let headers = [("authorization", auth.as_str())];
        graphql(&self.http, base, &headers, query, variables)
            .await
            .1
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        let base = &self.gateways[0].server.base_url;
        self.http.get(format!("{base}{path}")).send().await.unwrap()
    }

    fn catalog_calls(&self, gateway: usize) -> u64 {
        self.gateways[gateway]
            .part
            .backends
            .calls
            .catalog
            .load(Ordering::Relaxed)
    }

    async fn stop(self) {
        for g in self.gateways {
            g.server.stop().await;
        }
        self.catalog.part.pool().close().await;
        self.catalog.stop().await;
    }
}

fn input(sku: &str, name: &str, amount_minor: i64) -> ProductInput {
    ProductInput {
        sku: sku.to_owned(),
        name: name.to_owned(),
        description: None,
        price: Money {
            amount_minor,
            currency: "EUR".into(),
        },
        active: Some(true),
        image_url: None,
    }
}

const PRODUCT: &str = "query($id: ID!) { product(id: $id) { name price { amountMinor currency } stock { available } } }";

#[tokio::test]
async fn products_page_by_cursor_and_search_by_sku_anonymously() {
    let shop = Shop::start(1).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(shop.product(100, 1).await);
    }
    let page = "query($after: String, $q: String) { products(first: 2, after: $after, query: $q) { nodes { id sku } pageInfo { hasNextPage endCursor } } }";
    let first = shop.query(0, page, json!({})).await;
    let cursor = first["data"]["products"]["pageInfo"]["endCursor"].clone();
    assert_eq!(
        first["data"]["products"]["pageInfo"]["hasNextPage"], true,
        "{first}"
    );
    let second = shop.query(0, page, json!({ "after": cursor })).await;
    let seen: Vec<Value> = [&first, &second]
        .iter()
        .flat_map(|b| b["data"]["products"]["nodes"].as_array().unwrap().clone())
        .map(|n| n["id"].clone())
        .collect();
    assert_eq!(
        seen,
        ids.iter()
            .map(|id| json!(id.to_string()))
            .collect::<Vec<_>>()
    );
    let sku = second["data"]["products"]["nodes"][0]["sku"]
        .as_str()
        .unwrap()
        .to_owned();
    let found = shop
        .query(0, page, json!({ "q": sku.to_lowercase() }))
        .await;
    assert_eq!(
        found["data"]["products"]["nodes"][0]["sku"],
        sku.as_str(),
        "{found}"
    );
    let by_sku = shop
        .query(
            0,
            "query($s: String!) { productBySku(sku: $s) { id } }",
            json!({ "s": sku }),
        )
        .await;
    assert_eq!(
        by_sku["data"]["productBySku"]["id"],
        json!(ids[2].to_string()),
        "{by_sku}"
    );
    shop.stop().await;
}

#[tokio::test]
async fn an_unknown_product_is_null_with_its_key_kept() {
    let shop = Shop::start(1).await;
    let body = shop.query(0, PRODUCT, json!({ "id": "999999" })).await;
    assert_eq!(body["data"], json!({ "product": null }), "{body}");
    assert!(body.get("errors").is_none(), "{body}");
    let two = shop
        .query(
            0,
            r#"{ a: product(id: "x") { id } b: product(id: "999999") { id } }"#,
            json!({}),
        )
        .await;
    assert_eq!(two["data"], json!({ "a": null, "b": null }), "{two}");
    assert_eq!(two["errors"][0]["path"], json!(["a"]), "{two}");
    let bad = shop.query(0, PRODUCT, json!({ "id": "x" })).await;
    assert_eq!(bad["data"], json!({ "product": null }), "{bad}");
    assert_eq!(
        bad["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{bad}"
    );
    shop.stop().await;
}

#[tokio::test]
async fn rest_serves_the_same_products() {
    let shop = Shop::start(1).await;
    let id = shop.product(1999, 4).await;
    let product: Value = shop
        .get(&format!("/api/products/{id}"))
        .await
        .json()
        .await
        .unwrap();
    let price = json!({ "amountMinor": 1999, "currency": "EUR" });
    assert_eq!(product["price"], price, "{product}");
    assert_eq!(product["stock"]["available"], 4);
    let missing = shop.get("/api/products/999999").await;
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.headers()["content-type"],
        "application/problem+json"
    );
    let page: Value = shop
        .get("/api/products?first=1")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"][0]["id"], id, "{page}");
    shop.stop().await;
}

#[tokio::test]
async fn a_product_read_twice_is_served_from_memory() {
    let shop = Shop::start(1).await;
    let id = shop.product(100, 1).await;
    shop.query(0, PRODUCT, json!({ "id": id.to_string() }))
        .await;
    let calls = shop.catalog_calls(0);
    for _ in 0..5 {
        shop.query(0, PRODUCT, json!({ "id": id.to_string() }))
            .await;
    }
    assert_eq!(
        shop.catalog_calls(0),
        calls,
        "repeated reads called the catalog"
    );
    shop.stop().await;
}

#[tokio::test]
async fn a_price_change_reaches_every_gateway_within_100_ms() {
    let shop = Shop::start(2).await;
    let id = shop.product(100, 1).await;
    let variables = json!({ "id": id.to_string() });
    let price = |body: &Value| body["data"]["product"]["price"]["amountMinor"].clone();
    // Both gateways hold the product in memory (a second read calls nothing).
    for g in 0..2 {
        shop.query(g, PRODUCT, variables.clone()).await;
        let calls = shop.catalog_calls(g);
        assert_eq!(price(&shop.query(g, PRODUCT, variables.clone()).await), 100);
        assert_eq!(
            shop.catalog_calls(g),
            calls,
            "gateway {g} did not keep the product"
        );
    }
    let mut worst = Duration::ZERO;
    for new_price in [250, 399, 1200] {
        let sku = shop.client.get_product(id).await.unwrap().sku;
        let input = input(&sku, "Renamed", new_price);
        shop.client
            .update_product(&shop.admin, id, &input)
            .await
            .unwrap();
        let acknowledged = Instant::now();
        // How stale a gateway is: when the first request that saw the new price was sent
        // (not when it came back, which measures the machine's load, not the cache).
        // Both gateways are asked at once.
        let stale_for = |g: usize| {
            let variables = variables.clone();
            let shop = &shop;
            async move {
                loop {
                    let sent = acknowledged.elapsed();
                    if price(&shop.query(g, PRODUCT, variables.clone()).await) == new_price {
                        return sent;
                    }
                    assert!(
                        sent < Duration::from_secs(2),
                        "gateway {g} still serves the old price"
                    );
                }
            }
        };
        let (a, b) = tokio::join!(stale_for(0), stale_for(1));
        worst = worst.max(a).max(b);
    }
    println!("a request sent {worst:?} after the acknowledgement saw the change on both gateways");
    assert!(worst <= Duration::from_millis(100), "{worst:?}");
    shop.stop().await;
}

/// The negative control of the bound above: a gateway that follows another channel than the
/// catalog announces on keeps serving the price it holds.
#[tokio::test]
async fn a_gateway_deaf_to_the_catalog_keeps_the_old_price() {
    let stack = test_stack().set_for(
        Service::Gateway,
        "PRODUCT_CHANGES_CHANNEL",
        unique("elsewhere"),
    );
    let shop = Shop::start_with(1, stack).await;
    let id = shop.product(100, 1).await;
    let variables = json!({ "id": id.to_string() });
    let price = |body: &Value| body["data"]["product"]["price"]["amountMinor"].clone();
    shop.query(0, PRODUCT, variables.clone()).await;
    let sku = shop.client.get_product(id).await.unwrap().sku;
    shop.client
        .update_product(&shop.admin, id, &input(&sku, "Renamed", 250))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(price(&shop.query(0, PRODUCT, variables).await), 100);
    shop.stop().await;
}

const CREATE: &str = "mutation($input: ProductInput!, $key: String) { createProduct(input: $input, idempotencyKey: $key) { id active } }";
const ADJUST: &str = "mutation($id: ID!) { adjustStock(productId: $id, delta: 5, reason: \"delivery\", idempotencyKey: \"k-1\") { stock { onHand } } }";

fn product_json(sku: &str, active: bool) -> Value {
    json!({"sku": sku, "name": "Teapot", "price": {"amountMinor": 1990, "currency": "EUR"}, "active": active})
}

#[tokio::test]
async fn staff_manage_products_through_graphql() {
    let shop = Shop::start(1).await;
    let sku = unique("ADM");
    let vars = json!({"input": product_json(&sku, true), "key": unique("key")});
    let created = shop.query_as(&shop.admin, CREATE, vars.clone()).await;
    let id = created["data"]["createProduct"]["id"].clone();
    assert!(id.is_string(), "{created}");
    let again = shop.query_as(&shop.admin, CREATE, vars).await;
    assert_eq!(
        again["data"]["createProduct"]["id"], id,
        "a retried key answers the same product"
    );

    // Taken off sale.
    let update = "mutation($id: ID!, $input: ProductInput!) { updateProduct(id: $id, input: $input) { active } }";
    let vars = json!({"id": id, "input": product_json(&sku, false)});
    let updated = shop.query_as(&shop.admin, update, vars).await;
    assert_eq!(
        updated["data"]["updateProduct"]["active"], false,
        "{updated}"
    );

    // A retried adjustment adds its units once.
    for _ in 0..2 {
        let adjusted = shop.query_as(&shop.admin, ADJUST, json!({"id": id})).await;
        assert_eq!(
            adjusted["data"]["adjustStock"]["stock"]["onHand"], 5,
            "{adjusted}"
        );
    }

    let import = "mutation($csv: String!) { importProducts(csv: $csv) { imported rejected { row reason } } }";
    let csv = format!(
        "sku,name,description,price_minor,currency,active,image_url\n{sku}-2,Mug,,900,EUR,true,\n{sku}-3,Mug,,900,XXX,true,\n"
    );
    let report = shop
        .query_as(&shop.admin, import, json!({"csv": csv}))
        .await;
    let report = &report["data"]["importProducts"];
    assert_eq!(report["imported"], 0, "all rows or none: {report}");
    assert_eq!(report["rejected"][0]["row"], 2, "{report}");
    shop.stop().await;
}

#[tokio::test]
async fn a_shopper_may_not_change_the_catalog() {
    let shop = Shop::start(1).await;
    let shopper = token(&shop.catalog.stack, 7, Role::User);
    let id = shop.product(1000, 3).await;
    let vars = json!({"input": product_json(&unique("ADM"), true)});
    for (query, vars) in [(CREATE, vars), (ADJUST, json!({"id": id.to_string()}))] {
        let refused = shop.query_as(&shopper, query, vars).await;
        assert_eq!(
            refused["errors"][0]["extensions"]["code"], "FORBIDDEN",
            "{refused}"
        );
        assert_eq!(refused["data"], Value::Null, "{refused}");
    }
    let product = shop.query(0, PRODUCT, json!({"id": id.to_string()})).await;
    assert_eq!(
        product["data"]["product"]["stock"]["available"], 3,
        "unchanged"
    );
    shop.stop().await;
}
