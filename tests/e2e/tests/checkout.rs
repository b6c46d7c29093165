//! Checkout: a cart becomes an order at the catalog's prices, and the orders service's saga
//! takes it to `confirmed` (stock sold, payment captured) or gives back what it held.

use std::time::Duration;

use shopmesh_e2e::{Platform, PlatformOptions};
use shopmesh_identity::{AccessToken, Role};
use shopmesh_openapi::catalog::CatalogClient;
use shopmesh_openapi::orders::{
    CartLineInput, CheckoutRequest, CreateOrderRequest, Order, OrderStatus, OrdersClient,
};
use shopmesh_openapi::payments::{PaymentStatus, PaymentsClient};
use shopmesh_openapi::runtime::ClientError;
use shopmesh_testkit::{eventually, unique};

/// The platform with a shopper (user 1) and the admin (user 4).
struct Shop {
    platform: Platform,
    orders: OrdersClient,
    catalog: CatalogClient,
    payments: PaymentsClient,
    shopper: AccessToken,
    admin: AccessToken,
}

impl Shop {
    async fn open() -> Self {
        let platform = Platform::start(PlatformOptions::default()).await.unwrap();
        Self {
            orders: OrdersClient::new(platform.orders_url.clone()),
            catalog: CatalogClient::new(platform.catalog_url.clone()),
            payments: PaymentsClient::new(platform.payments_url.clone()),
            shopper: platform.token(1, Role::User),
            admin: platform.token(4, Role::Admin),
            platform,
        }
    }

    /// A product at `amount_minor` EUR with `units` on hand.
    async fn product(&self, amount_minor: i64, units: i32) -> i64 {
        self.platform
            .put_on_sale(amount_minor, units)
            .await
            .unwrap()
    }

    /// Puts `lines` in the shopper's cart and checks it out with `token`.
    async fn check_out(&self, lines: &[(i64, i32)], token: &str) -> Order {
        for &(product, quantity) in lines {
            self.orders
                .set_cart_line(&self.shopper, 1, product, &CartLineInput { quantity })
                .await
                .unwrap();
        }
        let request = CheckoutRequest {
            user_id: 1,
            payment_token: token.into(),
        };
        let key = unique("checkout");
        self.orders
            .checkout(&self.shopper, &key, &request)
            .await
            .unwrap()
    }

    /// Waits until order `id` reaches `status`.
    async fn reaches(&self, id: i64, status: OrderStatus) -> Order {
        eventually(
            &format!("order {id} {}", status.as_str()),
            Duration::from_secs(20),
            || async {
                let order = self.orders.get_order(&self.shopper, id).await.ok()?;
                (order.status == status).then_some(order)
            },
        )
        .await
    }

    async fn stock(&self, product: i64) -> (i64, i64, i64) {
        let p = self.catalog.get_product(product).await.unwrap();
        (p.stock.on_hand, p.stock.reserved, p.stock.sold)
    }

    async fn payment(&self, order: i64) -> Option<PaymentStatus> {
        let token = &self.admin;
        match self.payments.get_payment(token, order).await {
            Ok(p) => Some(p.status),
            Err(ClientError::Problem(p)) if p.status() == 404 => None,
            Err(e) => panic!("payments: {e}"),
        }
    }

    async fn timeline(&self, id: i64) -> Vec<OrderStatus> {
        let timeline = self
            .orders
            .get_order_timeline(&self.shopper, id)
            .await
            .unwrap();
        timeline.items.iter().map(|t| t.to).collect()
    }
}

#[tokio::test]
async fn a_paid_checkout_is_confirmed_with_its_stock_sold_and_payment_captured() {
    let shop = Shop::open().await;
    let (mug, tee) = (shop.product(1250, 5).await, shop.product(300, 5).await);
    let placed = shop.check_out(&[(mug, 2), (tee, 1)], "tok_visa").await;
    assert_eq!(placed.status, OrderStatus::Pending);
    let total = placed.total.clone().expect("a checkout has a total");
    assert_eq!((total.amount_minor, total.currency.as_str()), (2800, "EUR"));
    assert_eq!(placed.lines.len(), 2);
    shop.reaches(placed.id, OrderStatus::Confirmed).await;
    use OrderStatus::*;
    assert_eq!(
        shop.timeline(placed.id).await,
        [Pending, StockReserved, Paid, Confirmed]
    );
    assert_eq!(shop.stock(mug).await, (3, 0, 2));
    assert_eq!(shop.payment(placed.id).await, Some(PaymentStatus::Captured));
    let cart = shop.orders.get_cart(&shop.shopper, 1).await.unwrap();
    assert!(cart.lines.is_empty(), "the checked-out lines left the cart");
    shop.platform.stop().await;
}

#[tokio::test]
async fn an_order_beyond_the_stock_is_rejected_and_nothing_is_charged() {
    let shop = Shop::open().await;
    let mug = shop.product(1250, 1).await;
    let placed = shop.check_out(&[(mug, 2)], "tok_visa").await;
    shop.reaches(placed.id, OrderStatus::Rejected).await;
    assert_eq!(
        shop.payment(placed.id).await,
        None,
        "no payment was asked for"
    );
    assert_eq!(shop.stock(mug).await, (1, 0, 0));
    shop.platform.stop().await;
}

#[tokio::test]
async fn a_declined_card_cancels_the_order_and_releases_its_stock() {
    let shop = Shop::open().await;
    let mug = shop.product(1250, 3).await;
    let placed = shop.check_out(&[(mug, 2)], "tok_declined").await;
    shop.reaches(placed.id, OrderStatus::Cancelled).await;
    eventually("the stock released", Duration::from_secs(10), || async {
        (shop.stock(mug).await == (3, 0, 0)).then_some(())
    })
    .await;
    assert_eq!(shop.payment(placed.id).await, Some(PaymentStatus::Declined));
    shop.platform.stop().await;
}

#[tokio::test]
async fn cancelling_a_confirmed_order_refunds_its_payment() {
    let shop = Shop::open().await;
    let mug = shop.product(1250, 3).await;
    let placed = shop.check_out(&[(mug, 1)], "tok_visa").await;
    shop.reaches(placed.id, OrderStatus::Confirmed).await;
    let cancelled = shop
        .orders
        .cancel_order(&shop.shopper, placed.id)
        .await
        .unwrap();
    assert_eq!(cancelled.status, OrderStatus::Cancelled);
    eventually("the refund", Duration::from_secs(10), || async {
        (shop.payment(placed.id).await == Some(PaymentStatus::Refunded)).then_some(())
    })
    .await;
    eventually(
        "the sold unit back on hand",
        Duration::from_secs(10),
        || async { (shop.stock(mug).await == (3, 0, 0)).then_some(()) },
    )
    .await;
    shop.platform.stop().await;
}

#[tokio::test]
async fn an_admin_ships_a_confirmed_order_and_only_a_confirmed_one() {
    let shop = Shop::open().await;
    let mug = shop.product(1250, 3).await;
    let placed = shop.check_out(&[(mug, 1)], "tok_visa").await;
    let early = shop.orders.ship_order(&shop.admin, placed.id).await;
    let refused = shop.orders.ship_order(&shop.shopper, placed.id).await;
    assert_eq!(
        refused.unwrap_err().problem().map(|p| p.status()),
        Some(403)
    );
    shop.reaches(placed.id, OrderStatus::Confirmed).await;
    if let Err(e) = early {
        assert_eq!(e.problem().map(|p| p.status()), Some(409), "{e}");
    }
    let shipped = shop
        .orders
        .ship_order(&shop.admin, placed.id)
        .await
        .unwrap();
    assert_eq!(shipped.status, OrderStatus::Shipped);
    let late = shop.orders.cancel_order(&shop.shopper, placed.id).await;
    assert_eq!(late.unwrap_err().problem().map(|p| p.status()), Some(409));
    shop.platform.stop().await;
}

#[tokio::test]
async fn a_one_line_order_with_a_payment_token_goes_through_the_saga() {
    let shop = Shop::open().await;
    let mug = shop.product(700, 2).await;
    let request = CreateOrderRequest {
        user_id: 1,
        product_id: mug,
        quantity: 2,
        payment_token: Some("tok_visa".into()),
    };
    let placed = shop
        .orders
        .create_order(&shop.shopper, None, &request)
        .await
        .unwrap();
    assert_eq!(placed.total.map(|t| t.amount_minor), Some(1400));
    shop.reaches(placed.id, OrderStatus::Confirmed).await;
    assert_eq!(shop.stock(mug).await, (0, 0, 2));
    shop.platform.stop().await;
}

#[tokio::test]
async fn an_idempotency_key_answers_a_repeat_and_refuses_another_body() {
    let shop = Shop::open().await;
    let mug = shop.product(500, 5).await;
    shop.orders
        .set_cart_line(&shop.shopper, 1, mug, &CartLineInput { quantity: 1 })
        .await
        .unwrap();
    let request = CheckoutRequest {
        user_id: 1,
        payment_token: "tok_visa".into(),
    };
    let key = unique("key");
    let first = shop
        .orders
        .checkout(&shop.shopper, &key, &request)
        .await
        .unwrap();
    let again = shop
        .orders
        .checkout(&shop.shopper, &key, &request)
        .await
        .unwrap();
    assert_eq!(again.id, first.id, "the stored answer, not a second order");
    let other = CheckoutRequest {
        payment_token: "tok_declined".into(),
        ..request.clone()
    };
    let reused = shop.orders.checkout(&shop.shopper, &key, &other).await;
    assert_eq!(reused.unwrap_err().problem().map(|p| p.status()), Some(422));
    let orders: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders")
        .fetch_one(shop.platform.orders_store.pool())
        .await
        .unwrap();
    assert_eq!(orders, 1);
    let keyless = reqwest::Client::new()
        .post(format!("{}/checkouts", shop.platform.orders_url))
        .bearer_auth(shop.shopper.expose())
        .json(&serde_json::json!({"userId": 1, "paymentToken": "tok_visa"}))
        .send()
        .await
        .unwrap();
    assert_eq!(keyless.status(), 400, "checkout without a key");
    shop.platform.stop().await;
}

#[tokio::test]
async fn an_empty_cart_cannot_be_checked_out_and_its_key_is_let_go() {
    let shop = Shop::open().await;
    let request = CheckoutRequest {
        user_id: 1,
        payment_token: "tok_visa".into(),
    };
    let key = unique("key");
    let empty = shop.orders.checkout(&shop.shopper, &key, &request).await;
    assert_eq!(empty.unwrap_err().problem().map(|p| p.status()), Some(409));
    let mug = shop.product(500, 5).await;
    shop.orders
        .set_cart_line(&shop.shopper, 1, mug, &CartLineInput { quantity: 1 })
        .await
        .unwrap();
    let retried = shop.orders.checkout(&shop.shopper, &key, &request).await;
    assert!(
        retried.is_ok(),
        "the failed request did not keep the key: {retried:?}"
    );
    shop.platform.stop().await;
}

/// A GraphQL call through the gateway as `who`.
async fn graphql(
    shop: &Shop,
    who: &AccessToken,
    query: &str,
    variables: serde_json::Value,
) -> serde_json::Value {
    let http = shopmesh_testkit::authed_http(who);
    shopmesh_testkit::graphql(&http, &shop.platform.gateway_url, &[], query, variables)
        .await
        .1
}

#[tokio::test]
async fn a_shopper_buys_through_graphql_and_an_admin_ships() {
    let shop = Shop::open().await;
    let mug = shop.product(1250, 4).await;
    let added = graphql(
        &shop,
        &shop.shopper,
        "mutation($p: ID!) { setCartLine(productId: $p, quantity: 2) { lines { id } } }",
        serde_json::json!({"p": mug.to_string()}),
    )
    .await;
    assert!(added["errors"].is_null(), "{added}");
    let buy = "mutation($k: String!, $t: String!) { checkout(paymentToken: $t, idempotencyKey: $k) \
               { id status total { amountMinor currency } lines { id quantity unitPrice { amountMinor } product { name } } } }";
    let key = unique("key");
    let bought = graphql(
        &shop,
        &shop.shopper,
        buy,
        serde_json::json!({"k": key, "t": "tok_visa"}),
    )
    .await;
    let order = &bought["data"]["checkout"];
    assert_eq!(order["status"], "PENDING", "{bought}");
    assert_eq!(
        order["total"],
        serde_json::json!({"amountMinor": 2500, "currency": "EUR"})
    );
    assert_eq!(order["lines"][0]["product"]["name"], "Mug");
    assert_eq!(order["lines"][0]["unitPrice"]["amountMinor"], 1250);
    let id: i64 = order["id"].as_str().unwrap().parse().unwrap();
    let other = graphql(
        &shop,
        &shop.shopper,
        buy,
        serde_json::json!({"k": key, "t": "tok_declined"}),
    )
    .await;
    assert_eq!(
        other["errors"][0]["extensions"]["code"], "UNPROCESSABLE",
        "{other}"
    );
    assert!(other["data"].is_null(), "{other}");
    shop.reaches(id, OrderStatus::Confirmed).await;
    let ship = "mutation($id: ID!) { shipOrder(id: $id) { status } }";
    let refused = graphql(
        &shop,
        &shop.shopper,
        ship,
        serde_json::json!({"id": id.to_string()}),
    )
    .await;
    assert_eq!(
        refused["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{refused}"
    );
    let shipped = graphql(
        &shop,
        &shop.admin,
        ship,
        serde_json::json!({"id": id.to_string()}),
    )
    .await;
    assert_eq!(
        shipped["data"]["shipOrder"]["status"], "SHIPPED",
        "{shipped}"
    );
    shop.platform.stop().await;
}

#[tokio::test]
async fn rest_checkout_needs_an_idempotency_key_and_answers_a_repeat_with_the_same_order() {
    let shop = Shop::open().await;
    let mug = shop.product(800, 4).await;
    let http = shopmesh_testkit::authed_http(&shop.shopper);
    let api = &shop.platform.gateway_url;
    let put = http
        .put(format!("{api}/api/users/1/cart/lines/{mug}"))
        .json(&serde_json::json!({"quantity": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    let body = serde_json::json!({"userId": 1, "paymentToken": "tok_visa"});
    let keyless = http
        .post(format!("{api}/api/checkout"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(keyless.status(), 400);
    let key = unique("key");
    let mut ids = Vec::new();
    for _ in 0..2 {
        let answer = http
            .post(format!("{api}/api/checkout"))
            .header("Idempotency-Key", &key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 201);
        let order: serde_json::Value = answer.json().await.unwrap();
        assert_eq!(order["total"]["amountMinor"], 800);
        ids.push(order["id"].as_i64().unwrap());
    }
    assert_eq!(ids[0], ids[1]);
    shop.reaches(ids[0], OrderStatus::Confirmed).await;
    shop.platform.stop().await;
}

#[tokio::test]
async fn an_order_placed_with_an_idempotency_key_is_placed_once() {
    let shop = Shop::open().await;
    let request = CreateOrderRequest {
        user_id: 1,
        product_id: 7,
        quantity: 1,
        payment_token: None,
    };
    let key = unique("key");
    let first = shop
        .orders
        .create_order(&shop.shopper, Some(&key), &request)
        .await
        .unwrap();
    let again = shop
        .orders
        .create_order(&shop.shopper, Some(&key), &request)
        .await
        .unwrap();
    assert_eq!(again.id, first.id);
    let other = CreateOrderRequest {
        quantity: 2,
        ..request.clone()
    };
    let reused = shop
        .orders
        .create_order(&shop.shopper, Some(&key), &other)
        .await;
    assert_eq!(reused.unwrap_err().problem().map(|p| p.status()), Some(422));
    let keyless = shop
        .orders
        .create_order(&shop.shopper, None, &request)
        .await;
    assert_ne!(
        keyless.unwrap().id,
        first.id,
        "without a key each request places one"
    );
    let graphql_once = "mutation($k: String) { createOrder(input: {userId: \"1\", productId: \"7\", quantity: 1}, idempotencyKey: $k) { id } }";
    let gql_key = unique("key");
    let mut ids = Vec::new();
    for _ in 0..2 {
        let placed = graphql(
            &shop,
            &shop.shopper,
            graphql_once,
            serde_json::json!({"k": gql_key}),
        )
        .await;
        ids.push(placed["data"]["createOrder"]["id"].clone());
    }
    assert!(ids[0].is_string() && ids[0] == ids[1], "{ids:?}");
    shop.platform.stop().await;
}
