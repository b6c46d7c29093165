//! Live order status: GraphQL subscriptions over WebSocket (`graphql-transport-ws` and the
//! legacy `graphql-ws`) on the gateway, fed by the orders service's `order.status-changed`
//! events through RabbitMQ; the protocol's close codes; who hears what; a slow client.

use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use shopmesh_e2e::{Platform, PlatformOptions};
use shopmesh_identity::{AccessToken, Role};
use shopmesh_openapi::orders::{CartLineInput, CheckoutRequest, OrderStatus, OrdersClient};
use shopmesh_testkit::{
    Ports, Running, Service, build_service, eventually, short_lived_token, test_stack, unique,
};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::{Message, http::HeaderValue};

const WATCH: &str = "subscription($id: ID, $after: Int) \
    { orderStatusChanged(orderId: $id, afterVersion: $after) { orderId version from to cause } }";

const WATCH_ALL: &str = "subscription($after: Int) \
    { orderStatusChanged(afterSequence: $after) { orderId version sequence to } }";

const WATCH_SHOP: &str = "subscription($after: Int) \
    { orderStatusChanged(afterShopSequence: $after) { orderId version shopSequence to } }";

const NOTIFICATIONS: &str = "subscription { notificationAdded { orderId userId message } }";

/// A WebSocket to the gateway's `/graphql`.
struct Socket(
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
);

impl Socket {
    /// Opens a socket speaking `protocol`, without sending anything.
    async fn open(platform: &Platform, protocol: &str) -> Self {
        Self::open_at(&platform.gateway_url, protocol).await
    }

    async fn open_at(base: &str, protocol: &str) -> Self {
        let url = base.replace("http://", "ws://") + "/graphql";
        let mut request = url.into_client_request().unwrap();
        request.headers_mut().insert(
            "sec-websocket-protocol",
            HeaderValue::from_str(protocol).unwrap(),
        );
        let (socket, response) = tokio_tungstenite::connect_async(request).await.unwrap();
        assert_eq!(response.headers()["sec-websocket-protocol"], protocol);
        Self(socket)
    }

    /// A `graphql-transport-ws` socket, initialised with `token` and acknowledged.
    async fn ready(platform: &Platform, token: &AccessToken) -> Self {
        Self::ready_at(&platform.gateway_url, token).await
    }

    /// The same at the gateway at `base` (another replica).
    async fn ready_at(base: &str, token: &AccessToken) -> Self {
        let mut socket = Self::open_at(base, "graphql-transport-ws").await;
        socket.init(token).await;
        assert_eq!(socket.next().await["type"], "connection_ack");
        socket
    }

    async fn init(&mut self, token: &AccessToken) {
        self.send(
            json!({"type": "connection_init", "payload": {"Authorization": token.header_value()}}),
        )
        .await;
    }

    async fn send(&mut self, message: Value) {
        self.0
            .send(Message::text(message.to_string()))
            .await
            .unwrap();
    }

    /// Subscribes as `id` to the changes of `order` (all visible ones without).
    async fn watch(&mut self, id: &str, order: Option<i64>) {
        self.resume(id, order, None).await;
    }

    /// The same, resuming after the order's version `after`.
    async fn resume(&mut self, id: &str, order: Option<i64>, after: Option<i32>) {
        let variables = json!({"id": order.map(|o| o.to_string()), "after": after});
        self.send(json!({"type": "subscribe", "id": id, "payload": {"query": WATCH, "variables": variables}}))
            .await;
    }

    /// Subscribes as `id` to the changes of all the caller's orders, resuming after `after`.
    async fn resume_all(&mut self, id: &str, after: i32) {
        let variables = json!({"after": after});
        self.send(json!({"type": "subscribe", "id": id, "payload": {"query": WATCH_ALL, "variables": variables}}))
            .await;
    }

    /// Subscribes as `id` to every change in the shop (an admin's), resuming after `after`.
    async fn resume_shop(&mut self, id: &str, after: i32) {
        let variables = json!({"after": after});
        self.send(json!({"type": "subscribe", "id": id, "payload": {"query": WATCH_SHOP, "variables": variables}}))
            .await;
    }

    /// The next protocol message (pings answered by the library are skipped).
    async fn next(&mut self) -> Value {
        loop {
            let message = tokio::time::timeout(Duration::from_secs(20), self.0.next())
                .await
                .expect("a message within 20 s")
                .expect("the socket is open")
                .unwrap();
            match message {
                Message::Text(text) => return serde_json::from_str(&text).unwrap(),
                Message::Close(frame) => panic!("closed: {frame:?}"),
                _ => {}
            }
        }
    }

    /// The code and reason the server closes the socket with.
    async fn closed(&mut self) -> (u16, String) {
        loop {
            let message = tokio::time::timeout(Duration::from_secs(20), self.0.next())
                .await
                .expect("closed within 20 s");
            match message {
                Some(Ok(Message::Close(Some(frame)))) => {
                    return (u16::from(frame.code), frame.reason.to_string());
                }
                Some(Ok(Message::Close(None))) | None | Some(Err(_)) => {
                    panic!("closed without a code")
                }
                Some(Ok(_)) => {}
            }
        }
    }
}

/// A one-line order for `user`, placed by themselves; its id.
async fn place(platform: &Platform, user: i64) -> i64 {
    platform.place_order(user).await.unwrap()
}

/// An order of user 1 bought with a test card and confirmed (versions 1 to 4); its id.
async fn confirmed_order(platform: &Platform) -> i64 {
    let orders = OrdersClient::new(platform.orders_url.clone());
    let shopper = platform.token(1, Role::User);
    let product = platform.put_on_sale(900, 5).await.unwrap();
    let line = CartLineInput { quantity: 1 };
    orders
        .set_cart_line(&shopper, 1, product, &line)
        .await
        .unwrap();
    let request = CheckoutRequest {
        user_id: 1,
        payment_token: "tok_visa".into(),
    };
    let key = unique("live");
    let id = orders.checkout(&shopper, &key, &request).await.unwrap().id;
    eventually("the order confirmed", Duration::from_secs(30), || async {
        let order = orders.get_order(&shopper, id).await.ok()?;
        (order.status == OrderStatus::Confirmed).then_some(())
    })
    .await;
    id
}

/// The changes `socket` hears next, `count` of them, and then silence.
async fn heard(socket: &mut Socket, count: usize) -> Vec<Value> {
    let mut heard = Vec::new();
    for _ in 0..count {
        let next = socket.next().await;
        heard.push(next["payload"]["data"]["orderStatusChanged"].clone());
    }
    let more = tokio::time::timeout(Duration::from_millis(500), socket.0.next()).await;
    assert!(more.is_err(), "nothing more, no duplicate: {more:?}");
    heard
}

/// The versions and statuses `socket` hears next, `count` of them, and then silence.
async fn heard_versions(socket: &mut Socket, count: usize) -> Vec<(i64, String)> {
    let field = |c: &Value, k: &str| c[k].as_str().unwrap_or("").to_owned();
    let changes = heard(socket, count).await;
    changes
        .iter()
        .map(|c| (c["version"].as_i64().unwrap_or(0), field(c, "to")))
        .collect()
}

/// Another gateway replica of `platform`, running, and its URL.
async fn gateway_replica(platform: &Platform) -> (Running, String) {
    let stack = platform.stack.replica(Ports::free().unwrap());
    let env = stack.env_for(Service::Gateway).unwrap();
    let gateway = build_service::<shopmesh_gateway::Application>(&env, |_| {}).await;
    (Running::start(gateway).await, stack.url(Service::Gateway))
}

/// An order of `user`'s, placed and cancelled; its id.
async fn cancelled_order(platform: &Platform, user: i64) -> i64 {
    let order = place(platform, user).await;
    cancel(platform, user, order).await;
    order
}

async fn cancel(platform: &Platform, user: i64, order: i64) {
    let orders = OrdersClient::new(platform.orders_url.clone());
    let token = platform.token(user, Role::User);
    orders.cancel_order(&token, order).await.unwrap();
}

#[tokio::test]
async fn a_shopper_hears_their_order_change_as_it_happens() {
    let platform = Platform::start(PlatformOptions::default()).await.unwrap();
    let order = place(&platform, 1).await;
    let mut socket = Socket::ready(&platform, &platform.token(1, Role::User)).await;
    socket.watch("1", Some(order)).await;
    // The subscription is running once a change made now reaches it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    cancel(&platform, 1, order).await;
    let next = socket.next().await;
    assert_eq!(next["type"], "next", "{next}");
    let change = &next["payload"]["data"]["orderStatusChanged"];
    assert_eq!(
        (
            change["orderId"].as_str(),
            change["from"].as_str(),
            change["to"].as_str()
        ),
        (
            Some(order.to_string().as_str()),
            Some("PENDING"),
            Some("CANCELLED")
        ),
        "{next}"
    );
    platform.stop().await;
}

#[tokio::test]
async fn a_shopper_hears_only_their_own_orders_and_an_admin_hears_all() {
    let platform = Platform::start(PlatformOptions::default()).await.unwrap();
    let (mine, theirs) = (place(&platform, 1).await, place(&platform, 2).await);
    let mut shopper = Socket::ready(&platform, &platform.token(1, Role::User)).await;
    let mut admin = Socket::ready(&platform, &platform.token(4, Role::Admin)).await;
    shopper.watch("all", None).await;
    admin.watch("all", None).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    cancel(&platform, 2, theirs).await;
    cancel(&platform, 1, mine).await;
    let heard = |m: &Value| m["payload"]["data"]["orderStatusChanged"]["orderId"].clone();
    assert_eq!(heard(&shopper.next().await), json!(mine.to_string()));
    let admin_heard = [heard(&admin.next().await), heard(&admin.next().await)];
    assert!(
        admin_heard.contains(&json!(theirs.to_string())),
        "{admin_heard:?}"
    );
    assert!(
        admin_heard.contains(&json!(mine.to_string())),
        "{admin_heard:?}"
    );
    platform.stop().await;
}

#[tokio::test]
async fn a_shopper_hears_their_own_new_notifications_and_no_one_elses() {
    let platform = Platform::start(PlatformOptions::default()).await.unwrap();
    let mut socket = Socket::ready(&platform, &platform.token(1, Role::User)).await;
    let subscribe = json!({"type": "subscribe", "id": "n", "payload": {"query": NOTIFICATIONS}});
    socket.send(subscribe).await;
    // The stream hears what is stored after it first looked; give that look time.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let theirs = place(&platform, 2).await;
    let mine = place(&platform, 1).await;
    let next = socket.next().await;
    let added = &next["payload"]["data"]["notificationAdded"];
    assert_eq!(added["orderId"], json!(mine.to_string()), "{next}");
    assert_eq!(added["userId"], "1", "not order {theirs}'s: {next}");
    // Stopping the subscription ends the gRPC stream behind it; the socket goes on.
    socket.send(json!({"type": "complete", "id": "n"})).await;
    socket.watch("after", Some(mine)).await;
    cancel(&platform, 1, mine).await;
    assert_eq!(
        heard_versions(&mut socket, 1).await,
        [(2, "CANCELLED".into())]
    );
    platform.stop().await;
}

#[tokio::test]
async fn someone_elses_order_is_not_found_not_silence() {
    let platform = Platform::start(PlatformOptions::default()).await.unwrap();
    let theirs = place(&platform, 2).await;
    let mut socket = Socket::ready(&platform, &platform.token(1, Role::User)).await;
    socket.watch("1", Some(theirs)).await;
    let answer = socket.next().await;
    assert_eq!(
        (
            answer["type"].as_str(),
            answer["payload"][0]["extensions"]["code"].as_str()
        ),
        (Some("error"), Some("NOT_FOUND")),
        "{answer}"
    );
    platform.stop().await;
}

#[tokio::test]
async fn the_legacy_graphql_ws_protocol_is_served_too() {
    let platform = Platform::start(PlatformOptions::default()).await.unwrap();
    let order = place(&platform, 1).await;
    let mut socket = Socket::open(&platform, "graphql-ws").await;
    socket.init(&platform.token(1, Role::User)).await;
    assert_eq!(socket.next().await["type"], "connection_ack");
    let variables = json!({"id": order.to_string()});
    socket
        .send(json!({"type": "start", "id": "1", "payload": {"query": WATCH, "variables": variables}}))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    cancel(&platform, 1, order).await;
    let data = socket.next().await;
    assert_eq!(data["type"], "data", "{data}");
    assert_eq!(
        data["payload"]["data"]["orderStatusChanged"]["to"],
        "CANCELLED"
    );
    platform.stop().await;
}

#[tokio::test]
async fn queries_and_mutations_are_refused_over_the_socket() {
    let platform = Platform::start(PlatformOptions::default()).await.unwrap();
    let mut socket = Socket::ready(&platform, &platform.token(1, Role::User)).await;
    socket
        .send(json!({"type": "subscribe", "id": "q", "payload": {"query": "{ me { id } }"}}))
        .await;
    let answer = socket.next().await;
    assert_eq!(answer["type"], "error", "{answer}");
    assert_eq!(answer["payload"][0]["extensions"]["code"], "BAD_REQUEST");
    platform.stop().await;
}

#[tokio::test]
async fn every_protocol_violation_closes_with_its_code() {
    let platform = Platform::start(PlatformOptions::default()).await.unwrap();
    let token = platform.token(1, Role::User);
    let forged = AccessToken::new("not.a.token");

    let mut socket = Socket::open(&platform, "graphql-transport-ws").await;
    socket.init(&forged).await;
    assert_eq!(socket.closed().await.0, 4403, "an invalid token");

    let mut socket = Socket::open(&platform, "graphql-transport-ws").await;
    socket
        .send(json!({"type": "connection_init", "payload": {}}))
        .await;
    assert_eq!(socket.closed().await.0, 4403, "no token");

    let mut socket = Socket::open(&platform, "graphql-transport-ws").await;
    socket.watch("1", None).await;
    assert_eq!(
        socket.closed().await.0,
        4401,
        "subscribe before connection_init"
    );

    let mut socket = Socket::open(&platform, "graphql-transport-ws").await;
    socket.0.send(Message::text("{not json")).await.unwrap();
    assert_eq!(socket.closed().await.0, 4400, "not JSON");

    let mut socket = Socket::ready(&platform, &token).await;
    socket.send(json!({"type": "launch"})).await;
    assert_eq!(socket.closed().await.0, 4400, "an unknown type");

    let mut socket = Socket::ready(&platform, &token).await;
    socket.watch("same", None).await;
    socket.watch("same", None).await;
    let (code, reason) = socket.closed().await;
    assert_eq!(
        (code, reason.as_str()),
        (4409, "Subscriber for same already exists")
    );

    let mut socket = Socket::ready(&platform, &token).await;
    socket.init(&token).await;
    assert_eq!(socket.closed().await.0, 4429, "a second connection_init");
    platform.stop().await;
}

#[tokio::test]
async fn a_socket_ends_when_its_access_token_expires() {
    let platform = Platform::start(PlatformOptions::default()).await.unwrap();
    let token = short_lived_token(&platform.stack, 1, Role::User, Duration::from_secs(2));
    let mut socket = Socket::ready(&platform, &token).await;
    socket.watch("1", None).await;
    let (code, reason) = socket.closed().await;
    assert_eq!(code, 4403);
    assert!(reason.contains("expired"), "{reason}");
    platform.stop().await;
}

#[tokio::test]
async fn a_socket_that_never_initialises_is_closed_with_4408() {
    let stack = test_stack().set_for(Service::Gateway, "SUBSCRIPTION_INIT_TIMEOUT_MS", "300");
    let platform = Platform::start_stack(stack, PlatformOptions::default())
        .await
        .unwrap();
    let mut socket = Socket::open(&platform, "graphql-transport-ws").await;
    assert_eq!(socket.closed().await.0, 4408);
    platform.stop().await;
}

#[tokio::test]
async fn a_socket_without_a_graphql_subprotocol_is_refused() {
    let platform = Platform::start(PlatformOptions::default()).await.unwrap();
    let url = platform.gateway_url.replace("http://", "ws://") + "/graphql";
    let refused = tokio_tungstenite::connect_async(url).await.unwrap_err();
    assert!(refused.to_string().contains("400"), "{refused}");
    platform.stop().await;
}

#[tokio::test]
async fn a_slow_client_is_disconnected_while_a_fast_one_hears_everything() {
    let platform = Platform::start(PlatformOptions::default()).await.unwrap();
    let admin = platform.token(4, Role::Admin);
    let mut slow = Socket::ready(&platform, &admin).await;
    let mut fast = Socket::ready(&platform, &admin).await;
    slow.watch("all", None).await;
    fast.watch("all", None).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Enough changes to fill the slow socket's kernel buffers, then its queue.
    const CHANGES: usize = 40_000;
    let feed = platform.gateway.feed.clone();
    let publisher = tokio::spawn(async move {
        for i in 0..CHANGES {
            feed.publish(shopmesh_e2e::status_change(i as i64 + 1, 4));
            // Paced, so that a client reading as fast as it can keeps up.
            if i % 16 == 15 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    });
    let mut heard = 0;
    while heard < CHANGES {
        assert_eq!(fast.next().await["type"], "next");
        heard += 1;
    }
    publisher.await.unwrap();
    assert_eq!(slow.closed().await.0, 1008, "the client that did not read");
    platform.stop().await;
}

#[tokio::test]
async fn every_gateway_replica_hears_every_change() {
    let platform = Platform::start(PlatformOptions::default()).await.unwrap();
    let (second, url) = gateway_replica(&platform).await;
    let order = place(&platform, 1).await;
    let token = platform.token(1, Role::User);
    let mut first = Socket::ready(&platform, &token).await;
    let mut other = Socket::ready_at(&url, &token).await;
    first.watch("1", Some(order)).await;
    other.watch("1", Some(order)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    cancel(&platform, 1, order).await;
    for socket in [&mut first, &mut other] {
        let next = socket.next().await;
        assert_eq!(
            next["payload"]["data"]["orderStatusChanged"]["to"], "CANCELLED",
            "{next}"
        );
    }
    second.stop().await;
    platform.stop().await;
}

#[tokio::test]
async fn a_user_holds_a_bounded_number_of_sockets() {
    let stack = test_stack().set_for(Service::Gateway, "SUBSCRIPTION_CONNECTIONS_PER_USER", "2");
    let platform = Platform::start_stack(stack, PlatformOptions::default())
        .await
        .unwrap();
    let token = platform.token(1, Role::User);
    let _held = [
        Socket::ready(&platform, &token).await,
        Socket::ready(&platform, &token).await,
    ];
    let mut third = Socket::open(&platform, "graphql-transport-ws").await;
    third.init(&token).await;
    assert_eq!(third.closed().await.0, 4429);
    // Another user is not counted against this one.
    Socket::ready(&platform, &platform.token(2, Role::User)).await;
    platform.stop().await;
}

#[tokio::test]
async fn a_client_resuming_after_a_gateway_restart_hears_what_it_missed_once_and_in_order() {
    let platform = Platform::start(PlatformOptions::default()).await.unwrap();
    let order = confirmed_order(&platform).await;
    let token = platform.token(1, Role::User);
    let start_replica = || gateway_replica(&platform);
    // Heard up to version 2 (stock reserved) before: the rest comes first, in order.
    let (first, url) = start_replica().await;
    let mut socket = Socket::ready_at(&url, &token).await;
    socket.resume("1", Some(order), Some(2)).await;
    let heard = heard_versions(&mut socket, 2).await;
    assert_eq!(heard, [(3, "PAID".into()), (4, "CONFIRMED".into())]);
    // The gateway restarts (a deploy) while the order ships.
    first.stop().await;
    let orders = OrdersClient::new(platform.orders_url.clone());
    orders
        .ship_order(&platform.token(4, Role::Admin), order)
        .await
        .unwrap();
    let (second, url) = start_replica().await;
    let mut socket = Socket::ready_at(&url, &token).await;
    socket.resume("1", Some(order), Some(4)).await;
    assert_eq!(
        heard_versions(&mut socket, 1).await,
        [(5, "SHIPPED".into())]
    );
    second.stop().await;
    platform.stop().await;
}

#[tokio::test]
async fn a_shopper_resuming_all_their_orders_after_a_restart_hears_each_missed_change_once() {
    let platform = Platform::start(PlatformOptions::default()).await.unwrap();
    let first = confirmed_order(&platform).await;
    let token = platform.token(1, Role::User);
    let replica = || gateway_replica(&platform);
    let seen = |c: &Value| {
        (
            c["orderId"].clone(),
            c["sequence"].as_i64(),
            c["to"].clone(),
        )
    };
    // Heard the first change (stock reserved) before: the next two come first.
    let (gateway, url) = replica().await;
    let mut socket = Socket::ready_at(&url, &token).await;
    socket.resume_all("all", 1).await;
    let changes: Vec<_> = heard(&mut socket, 2).await.iter().map(seen).collect();
    let order = json!(first.to_string());
    assert_eq!(
        changes,
        [
            (order.clone(), Some(2), json!("PAID")),
            (order.clone(), Some(3), json!("CONFIRMED"))
        ]
    );
    // While the gateway is down, the first order ships and a second is placed and cancelled.
    gateway.stop().await;
    let orders = OrdersClient::new(platform.orders_url.clone());
    let admin = platform.token(4, Role::Admin);
    orders.ship_order(&admin, first).await.unwrap();
    let second = cancelled_order(&platform, 1).await;
    let (gateway, url) = replica().await;
    let mut socket = Socket::ready_at(&url, &token).await;
    socket.resume_all("all", 3).await;
    let changes: Vec<_> = heard(&mut socket, 2).await.iter().map(seen).collect();
    assert_eq!(
        changes,
        [
            (order, Some(4), json!("SHIPPED")),
            (json!(second.to_string()), Some(5), json!("CANCELLED"))
        ]
    );
    // And the live ones follow.
    let third = cancelled_order(&platform, 1).await;
    let live: Vec<_> = heard(&mut socket, 1).await.iter().map(seen).collect();
    assert_eq!(
        live,
        [(json!(third.to_string()), Some(6), json!("CANCELLED"))]
    );
    gateway.stop().await;
    platform.stop().await;
}

#[tokio::test]
async fn an_admin_resuming_every_order_after_a_restart_hears_each_missed_change_once() {
    let platform = Platform::start(PlatformOptions::default()).await.unwrap();
    let admin = platform.token(4, Role::Admin);
    let seen = |c: &Value| (c["orderId"].clone(), c["shopSequence"].as_i64());
    let cancelled = |order: i64, n: i64| (json!(order.to_string()), Some(n));
    let first = cancelled_order(&platform, 1).await;
    let second = cancelled_order(&platform, 2).await;
    let (gateway, url) = gateway_replica(&platform).await;
    let mut socket = Socket::ready_at(&url, &admin).await;
    socket.resume_shop("shop", 0).await;
    let changes: Vec<_> = heard(&mut socket, 2).await.iter().map(seen).collect();
    assert_eq!(changes, [cancelled(first, 1), cancelled(second, 2)]);
    // While the gateway is down, two users' orders are cancelled.
    gateway.stop().await;
    let third = cancelled_order(&platform, 2).await;
    let fourth = cancelled_order(&platform, 1).await;
    let (gateway, url) = gateway_replica(&platform).await;
    let mut socket = Socket::ready_at(&url, &admin).await;
    socket.resume_shop("shop", 2).await;
    let changes: Vec<_> = heard(&mut socket, 2).await.iter().map(seen).collect();
    assert_eq!(changes, [cancelled(third, 3), cancelled(fourth, 4)]);
    // And the live ones follow.
    let fifth = cancelled_order(&platform, 2).await;
    let live: Vec<_> = heard(&mut socket, 1).await.iter().map(seen).collect();
    assert_eq!(live, [cancelled(fifth, 5)]);
    // The shop's numbers are an admin's: a shopper's resume by them is refused.
    let mut shopper = Socket::ready_at(&url, &platform.token(1, Role::User)).await;
    shopper.resume_shop("shop", 0).await;
    let answer = shopper.next().await;
    assert_eq!(
        answer["payload"][0]["extensions"]["code"], "FORBIDDEN",
        "{answer}"
    );
    gateway.stop().await;
    platform.stop().await;
}

#[tokio::test]
async fn resuming_needs_an_order_and_a_version_it_has_reached() {
    let platform = Platform::start(PlatformOptions::default()).await.unwrap();
    let order = place(&platform, 1).await;
    let mut socket = Socket::ready(&platform, &platform.token(1, Role::User)).await;
    socket.resume("all", None, Some(1)).await;
    let answer = socket.next().await;
    assert_eq!(
        answer["payload"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{answer}"
    );
    socket.resume("ahead", Some(order), Some(7)).await;
    let answer = socket.next().await;
    assert_eq!(
        answer["payload"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{answer}"
    );
    // A sequence number past the newest, and one given with an order, are refused too; so is
    // an admin's, whose stream of every user's orders follows the shop's numbers.
    socket.resume_all("sequence ahead", 1).await;
    let answer = socket.next().await;
    assert_eq!(
        answer["payload"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{answer}"
    );
    let both = json!({"query": "subscription($id: ID) { orderStatusChanged(orderId: $id, afterSequence: 0) { version } }", "variables": {"id": order.to_string()}});
    socket
        .send(json!({"type": "subscribe", "id": "both", "payload": both}))
        .await;
    let answer = socket.next().await;
    assert_eq!(
        answer["payload"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{answer}"
    );
    let mut admin = Socket::ready(&platform, &platform.token(4, Role::Admin)).await;
    admin.resume_all("admin", 0).await;
    let answer = admin.next().await;
    assert_eq!(
        answer["payload"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{answer}"
    );
    platform.stop().await;
}

#[tokio::test]
async fn sockets_and_subscriptions_count_against_the_users_rate_limit() {
    let stack = test_stack().set_for(Service::Gateway, "RATE_LIMIT_MAX_USER", "3");
    let platform = Platform::start_stack(stack, PlatformOptions::default())
        .await
        .unwrap();
    // The socket is one request, each subscription one more: the third is over.
    let mut socket = Socket::ready(&platform, &platform.token(1, Role::User)).await;
    socket.watch("1", None).await;
    socket.watch("2", None).await;
    socket.watch("3", None).await;
    let refused = socket.next().await;
    assert_eq!(
        (
            refused["id"].as_str(),
            refused["payload"][0]["extensions"]["code"].as_str()
        ),
        (Some("3"), Some("RATE_LIMITED")),
        "{refused}"
    );
    platform.stop().await;
}

/// A client that hears a change and reads the order at once gets the order as changed, even
/// while the gateway's cached copy has not yet heard of it (the cache's own announcement comes
/// on its own time): the gateway never answers a version older than one its feed has told.
#[tokio::test(flavor = "multi_thread")]
async fn an_order_read_after_its_change_was_heard_is_not_older_than_the_change() {
    let platform = Platform::start(PlatformOptions::default()).await.unwrap();
    let order = place(&platform, 1).await;
    let alice = platform.token(1, Role::User);
    let http = shopmesh_testkit::authed_http(&alice);
    let read = || async {
        let (_, body) = shopmesh_testkit::graphql(
            &http,
            &platform.gateway_url,
            &[],
            "query($id: ID!) { order(id: $id) { status version } }",
            json!({"id": order.to_string()}),
        )
        .await;
        body["data"]["order"].clone()
    };
    assert_eq!(read().await, json!({"status": "PENDING", "version": 1}));
    // The change is committed, and the cached copy not yet told (no announcement)...
    sqlx::query("UPDATE orders SET status = 'cancelled', version = 2 WHERE id = ?")
        .bind(order)
        .execute(platform.orders_store.pool())
        .await
        .unwrap();
    // ...when the gateway's feed hears it and hands it to subscribers.
    platform
        .gateway
        .feed
        .publish(shopmesh_e2e::status_change(order, 1));
    let after = read().await;
    platform.stop().await;
    assert_eq!(after, json!({"status": "CANCELLED", "version": 2}));
}

/// A socket takes messages no larger than a GraphQL request may be (twice
/// `GRAPHQL_MAX_QUERY_BYTES`, for the variables): a larger one closes it with 1009 instead of
/// being read into memory (WebSocket's own default is 64 MiB a message).
#[tokio::test(flavor = "multi_thread")]
async fn a_message_larger_than_a_request_may_be_closes_the_socket_with_1009() {
    let platform = Platform::start(PlatformOptions::default()).await.unwrap();
    let alice = platform.token(1, Role::User);
    let mut socket = Socket::ready(&platform, &alice).await;
    let padding = "x".repeat(200 * 1024);
    socket
        .send(json!({"type": "ping", "payload": {"padding": padding}}))
        .await;
    let (code, _) = socket.closed().await;
    let mut next = Socket::ready(&platform, &alice).await;
    next.send(json!({"type": "ping"})).await;
    let pong = next.next().await;
    platform.stop().await;
    assert_eq!(code, 1009);
    assert_eq!(pong["type"], "pong", "a socket of the right size is served");
}
