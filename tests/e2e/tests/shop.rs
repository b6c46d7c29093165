//! Orders carry their product: `Order.product` resolves through the catalog, one lookup per
//! distinct product on a page however many orders name it.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::json;
use shopmesh_e2e::{Platform, PlatformOptions, product_input};
use shopmesh_identity::Role;
use shopmesh_openapi::catalog::CatalogClient;
use shopmesh_testkit::{self as testkit, authed_http};

#[tokio::test]
async fn an_order_page_loads_each_distinct_product_once() {
    let platform = Platform::start(PlatformOptions::default()).await.unwrap();
    let catalog = CatalogClient::new(platform.catalog_url.clone());
    let admin = platform.token(4, Role::Admin);
    let mut products = Vec::new();
    for name in ["Mug", "Tee"] {
        let input = product_input(name, 500);
        products.push(
            catalog
                .create_product(&admin, None, &input)
                .await
                .unwrap()
                .id,
        );
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

/// An order cancelled through the gateway: the new status is served at once, the timeline and
/// the shopper's notifications tell both steps, and a second cancel changes nothing.
#[tokio::test]
async fn a_cancelled_order_tells_its_story_once() {
    let platform = Platform::start(PlatformOptions::default()).await.unwrap();
    let shopper = authed_http(&platform.token(1, Role::User));
    let gql = |query: &'static str, vars: serde_json::Value| {
        let shopper = shopper.clone();
        let url = platform.gateway_url.clone();
        async move { testkit::graphql(&shopper, &url, &[], query, vars).await.1 }
    };
    let placed = gql(
        r#"mutation { createOrder(input: {userId: "1", productId: "3", quantity: 1}) { id } }"#,
        json!({}),
    )
    .await;
    let id = placed["data"]["createOrder"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{placed}"))
        .to_owned();
    let read = "query($id: ID!) { order(id: $id) { status version } }";
    assert_eq!(
        gql(read, json!({"id": id})).await["data"]["order"]["status"],
        "PENDING"
    );
    let cancel = "mutation($id: ID!) { cancelOrder(id: $id) { status version } }";
    for _ in 0..2 {
        let cancelled = gql(cancel, json!({"id": id})).await;
        assert_eq!(
            cancelled["data"]["cancelOrder"],
            json!({"status": "CANCELLED", "version": 2}),
            "{cancelled}"
        );
    }
    assert_eq!(
        gql(read, json!({"id": id})).await["data"]["order"]["status"],
        "CANCELLED"
    );
    let stranger = authed_http(&platform.token(2, Role::User));
    let (_, refused) = testkit::graphql(
        &stranger,
        &platform.gateway_url,
        &[],
        cancel,
        json!({"id": id}),
    )
    .await;
    assert_eq!(
        refused["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{refused}"
    );

    let story = "query($id: ID!) { order(id: $id) { timeline { from to cause } notifications { message } } }";
    let messages = testkit::eventually("both notifications", Duration::from_secs(20), || async {
        let body = gql(story, json!({"id": id})).await;
        let messages: Vec<String> = body["data"]["order"]["notifications"]
            .as_array()?
            .iter()
            .filter_map(|n| n["message"].as_str().map(str::to_owned))
            .collect();
        (messages.len() >= 2).then_some(messages)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let body = gql(story, json!({"id": id})).await;
    assert_eq!(
        body["data"]["order"]["timeline"],
        json!([
            {"from": null, "to": "PENDING", "cause": "placed"},
            {"from": "PENDING", "to": "CANCELLED", "cause": "cancelled by the shopper"}
        ])
    );
    let again = body["data"]["order"]["notifications"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(again, 2, "each step notified once: {messages:?}");
    assert!(
        messages
            .iter()
            .any(|m| m == &format!("Your order #{id} is now cancelled: cancelled by the shopper.")),
        "{messages:?}"
    );
    let rest = shopper
        .get(format!("{}/api/orders/{id}/timeline", platform.gateway_url))
        .send()
        .await
        .unwrap();
    assert_eq!(rest.status(), 200);
    let timeline: serde_json::Value = rest.json().await.unwrap();
    assert_eq!(timeline["items"][1]["to"], "cancelled");
}

/// A cart kept by the orders service, shown through the gateway with each product's price and
/// stock as the catalog has them now: a price change shows at once.
#[tokio::test]
async fn a_cart_shows_todays_prices_and_stock() {
    let platform = Platform::start(PlatformOptions::default()).await.unwrap();
    let catalog = CatalogClient::new(platform.catalog_url.clone());
    let admin = platform.token(4, Role::Admin);
    let mut input = product_input("Mug", 500);
    let mug = catalog.create_product(&admin, None, &input).await.unwrap();
    let adjustment = shopmesh_openapi::catalog::StockAdjustment {
        delta: 3,
        reason: "delivery".into(),
    };
    catalog
        .adjust_stock(&admin, mug.id, None, &adjustment)
        .await
        .unwrap();
    let shopper = authed_http(&platform.token(1, Role::User));
    let gql = |query: &'static str, vars: serde_json::Value| {
        let shopper = shopper.clone();
        let url = platform.gateway_url.clone();
        async move { testkit::graphql(&shopper, &url, &[], query, vars).await.1 }
    };
    let set = "mutation($p: ID!, $q: Int!) { setCartLine(productId: $p, quantity: $q) { lines { quantity } } }";
    let added = gql(set, json!({"p": mug.id.to_string(), "q": 2})).await;
    assert_eq!(
        added["data"]["setCartLine"]["lines"],
        json!([{"quantity": 2}]),
        "{added}"
    );
    let refused = gql(set, json!({"p": mug.id.to_string(), "q": 0})).await;
    assert_eq!(
        refused["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{refused}"
    );

    input.price.amount_minor = 450;
    catalog
        .update_product(&admin, mug.id, &input)
        .await
        .unwrap();
    let show =
        "{ cart { lines { quantity product { price { amountMinor } stock { available } } } } }";
    let shown = testkit::eventually("the new price", Duration::from_secs(2), || async {
        let body = gql(show, json!({})).await;
        let line = body["data"]["cart"]["lines"][0].clone();
        (line["product"]["price"]["amountMinor"] == 450).then_some(line)
    })
    .await;
    assert_eq!(
        shown,
        json!({"quantity": 2, "product": {"price": {"amountMinor": 450}, "stock": {"available": 3}}})
    );

    let rest = shopper
        .get(format!("{}/api/users/1/cart", platform.gateway_url))
        .send()
        .await
        .unwrap();
    let cart: serde_json::Value = rest.json().await.unwrap();
    assert_eq!(cart["lines"][0]["product"]["name"], "Mug", "{cart}");
    let bob = authed_http(&platform.token(2, Role::User));
    let stranger = bob
        .get(format!("{}/api/users/1/cart", platform.gateway_url))
        .send()
        .await
        .unwrap();
    assert_eq!(stranger.status(), 403);
    let cleared = gql("mutation { clearCart { lines { quantity } } }", json!({})).await;
    assert_eq!(cleared["data"]["clearCart"]["lines"], json!([]));
}
