//! The checkout checker: shoppers check out against limited stock with a mix of payment
//! tokens while, one at a time, every service that takes part is SIGKILLed and restarted, the
//! broker goes away for 20 s, the database drops every connection, and the link between the
//! orders service and RabbitMQ is cut for 10 s. Once quiet, the three databases and the
//! notifications must tell one story (see [`violations`]).
//!
//! The broker and database outages go through TCP proxies in front of the shared RabbitMQ and
//! MariaDB (other tests run against them at the same time, so they are not stopped): every
//! connection drops and new ones are refused, which is what the services see of a stop or a
//! restart.
//!
//! `CHECKOUT_CHECKER_ORDERS` sets how many checkouts (2,000); `CHECKOUT_CHECKER_ORDERS_BIN`
//! names a directory holding another orders binary to run instead, and
//! `CHECKOUT_CHECKER_EXPECT=violation` makes the test pass only when the checker finds
//! something: `cargo xtask test` runs it so against a build that skips the write asking for
//! compensation (the negative control).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mongodb::bson::doc;
use shopmesh_e2e::processes::{ProcessPlatform, process_stack};
use shopmesh_identity::{AccessToken, Role};
use shopmesh_openapi::catalog::{CatalogClient, Money, ProductInput, StockAdjustment};
use shopmesh_openapi::orders::{CartLineInput, CheckoutRequest, OrdersClient};
use shopmesh_openapi::runtime::ClientError;
use shopmesh_testkit::{Service, TcpProxy, amqp_url, mysql_admin_url, reroute, unique};
use sqlx::MySqlPool;

const CLIENTS: i64 = 32;
const PRODUCTS: usize = 8;
const UNITS_EACH: i32 = 150;
/// Payment tokens by weight: most pay, some are declined, refused or flaky, a few hang.
const TOKENS: [(&str, u32); 5] = [
    ("tok_visa", 60),
    ("tok_declined", 10),
    ("tok_insufficient_funds", 10),
    ("tok_flaky_2", 15),
    ("tok_timeout", 5),
];

fn checkouts() -> usize {
    std::env::var("CHECKOUT_CHECKER_ORDERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2000)
}

fn pick_token() -> &'static str {
    let total: u32 = TOKENS.iter().map(|(_, w)| w).sum();
    let mut roll = fastrand::u32(0..total);
    for (token, weight) in TOKENS {
        if roll < weight {
            return token;
        }
        roll -= weight;
    }
    TOKENS[0].0
}

/// What the shoppers saw.
#[derive(Default)]
struct Seen {
    /// Orders a checkout answered with: (order, user).
    placed: Vec<(i64, i64)>,
    /// Checkouts refused with a problem (status, detail).
    refused: Vec<(u16, String)>,
    /// Checkouts that never got an answer within their retry budget.
    unanswered: usize,
}

/// One shopper: puts a product in the cart and checks out, again and again, retrying a
/// checkout with the same key until it is answered.
async fn shopper(
    url: String,
    user: i64,
    token: AccessToken,
    products: Arc<Vec<i64>>,
    remaining: Arc<AtomicUsize>,
    pace: Duration,
) -> Seen {
    let patient = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let orders = OrdersClient::with_http_client(url, patient);
    let mut seen = Seen::default();
    while remaining
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        let product = products[fastrand::usize(..products.len())];
        let line = CartLineInput {
            quantity: fastrand::i32(1..=2),
        };
        let started = Instant::now();
        while orders
            .set_cart_line(&token, user, product, &line)
            .await
            .is_err()
            && started.elapsed() < Duration::from_secs(60)
        {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let request = CheckoutRequest {
            user_id: user,
            payment_token: pick_token().into(),
        };
        let key = uuid::Uuid::new_v4().to_string();
        let started = Instant::now();
        loop {
            match orders.checkout(&token, &key, &request).await {
                Ok(order) => {
                    seen.placed.push((order.id, user));
                    break;
                }
                // Still running under this key (its process died): ask again.
                Err(ClientError::Problem(p))
                    if p.status() == 409 && p.detail_or_title().contains("still running") => {}
                Err(ClientError::Problem(p)) if (400..500).contains(&p.status()) => {
                    seen.refused
                        .push((p.status(), p.detail_or_title().to_owned()));
                    break;
                }
                Err(_) => {}
            }
            if started.elapsed() > Duration::from_secs(150) {
                seen.unanswered += 1;
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        tokio::time::sleep(pace).await;
    }
    seen
}

/// The three links the faults cut: the database, the broker, and orders' own broker link.
struct Links {
    database: TcpProxy,
    broker: TcpProxy,
    orders_broker: TcpProxy,
}

/// One fault at a time, each given time to heal before the next.
async fn faults(platform: &mut ProcessPlatform, links: &Links, log: &mut Vec<String>) {
    let heal = Duration::from_secs(4);
    for service in [
        Service::Orders,
        Service::Catalog,
        Service::Payments,
        Service::Notifications,
    ] {
        tokio::time::sleep(heal).await;
        platform.kill(service);
        log.push(format!("SIGKILL {}", service.name()));
        tokio::time::sleep(Duration::from_millis(500)).await;
        let bin = negative_control_bin();
        let bin = bin.as_deref().filter(|_| service == Service::Orders);
        platform.restart(service, bin).await.unwrap();
    }
    tokio::time::sleep(heal).await;
    links.broker.cut();
    log.push("RabbitMQ gone for 20 s".into());
    tokio::time::sleep(Duration::from_secs(20)).await;
    links.broker.restore();
    tokio::time::sleep(heal).await;
    links.database.cut();
    log.push("MariaDB connections dropped, refused for 3 s".into());
    tokio::time::sleep(Duration::from_secs(3)).await;
    links.database.restore();
    tokio::time::sleep(heal).await;
    links.orders_broker.cut();
    log.push("orders-RabbitMQ link cut for 10 s".into());
    tokio::time::sleep(Duration::from_secs(10)).await;
    links.orders_broker.restore();
}

fn negative_control_bin() -> Option<std::path::PathBuf> {
    std::env::var_os("CHECKOUT_CHECKER_ORDERS_BIN").map(Into::into)
}

/// The services' databases, read directly (not through the proxy).
struct Books {
    orders: MySqlPool,
    catalog: MySqlPool,
    payments: MySqlPool,
    notifications: mongodb::Collection<mongodb::bson::Document>,
}

impl Books {
    async fn open(platform: &ProcessPlatform) -> Self {
        let pool = |service| {
            let name = platform.stack.names.database(service).unwrap().clone();
            let url = format!("{}/{name}", mysql_admin_url());
            async move { MySqlPool::connect(&url).await.unwrap() }
        };
        let mongo = mongodb::Client::with_uri_str(shopmesh_testkit::mongo_url())
            .await
            .unwrap();
        Self {
            orders: pool(Service::Orders).await,
            catalog: pool(Service::Catalog).await,
            payments: pool(Service::Payments).await,
            notifications: mongo
                .database(&platform.stack.names.mongo_db)
                .collection("notifications"),
        }
    }

    async fn count(pool: &MySqlPool, sql: &str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(pool).await.unwrap_or(-1)
    }

    /// Waits until no saga has work left, the outbox is published and every event is a
    /// notification (or `within` passes).
    async fn quiet(&self, within: Duration) -> Duration {
        let started = Instant::now();
        while started.elapsed() < within {
            let open = Self::count(
                &self.orders,
                "SELECT COUNT(*) FROM checkout_sagas WHERE done = FALSE",
            )
            .await;
            let unpublished = Self::count(
                &self.orders,
                "SELECT COUNT(*) FROM outbox WHERE published_at IS NULL",
            )
            .await;
            let events = Self::count(&self.orders, "SELECT COUNT(*) FROM outbox").await;
            let notified = self
                .notifications
                .count_documents(doc! {})
                .await
                .map_or(-1, |n| n as i64);
            if open == 0 && unpublished == 0 && notified == events {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        started.elapsed()
    }
}

/// Everything that disagrees; empty when the checkout kept its promises.
async fn violations(books: &Books, seen: &Seen, products: &[i64]) -> Vec<String> {
    let mut found = Vec::new();
    let statuses: BTreeMap<i64, (String, i64)> =
        sqlx::query_as::<_, (i64, String, i64)>("SELECT id, status, user_id FROM orders")
            .fetch_all(&books.orders)
            .await
            .unwrap()
            .into_iter()
            .map(|(id, status, user)| (id, (status, user)))
            .collect();
    let status = |order: i64| statuses.get(&order).map_or("missing", |(s, _)| s.as_str());
    // Stock: nothing oversold, nothing lost, every sold unit an order's, nothing left held.
    let sold_lines: BTreeMap<i64, i64> = sqlx::query_as(
        "SELECT l.product_id, CAST(SUM(l.quantity) AS SIGNED) FROM order_lines l \
         JOIN orders o ON o.id = l.order_id WHERE o.status IN ('confirmed', 'shipped') \
         GROUP BY l.product_id",
    )
    .fetch_all(&books.orders)
    .await
    .unwrap()
    .into_iter()
    .collect();
    for &product in products {
        let (on_hand, reserved, sold): (i64, i64, i64) =
            sqlx::query_as("SELECT on_hand, reserved, sold FROM products WHERE id = ?")
                .bind(product)
                .fetch_one(&books.catalog)
                .await
                .unwrap();
        let units = i64::from(UNITS_EACH);
        if sold > units || on_hand - reserved < 0 {
            found.push(format!(
                "product {product}: oversold ({sold} sold, {on_hand} on hand, {reserved} reserved, {units} in)"
            ));
        }
        if on_hand + sold != units {
            found.push(format!(
                "product {product}: {on_hand} on hand + {sold} sold != {units} put in"
            ));
        }
        if reserved != 0 {
            found.push(format!(
                "product {product}: {reserved} units still reserved once every order ended"
            ));
        }
        let ordered = sold_lines.get(&product).copied().unwrap_or(0);
        if sold != ordered {
            found.push(format!(
                "product {product}: {sold} units sold but confirmed orders hold {ordered}"
            ));
        }
    }
    // Payments: captured only for paid orders (or refunded), refunds only for ended ones.
    let payments: Vec<(i64, String)> = sqlx::query_as("SELECT order_id, status FROM payments")
        .fetch_all(&books.payments)
        .await
        .unwrap();
    let mut captured = BTreeSet::new();
    for (order, payment) in &payments {
        let order_status = status(*order);
        let fine = match payment.as_str() {
            "captured" => {
                captured.insert(*order);
                matches!(order_status, "paid" | "confirmed" | "shipped")
            }
            "refunded" => matches!(order_status, "cancelled" | "expired"),
            // Money held for an order that no longer wants it.
            "authorized" => order_status == "stock_reserved",
            _ => true,
        };
        if !fine {
            found.push(format!(
                "order {order} is {order_status} but its payment is {payment}"
            ));
        }
    }
    for (order, (order_status, _)) in &statuses {
        if matches!(order_status.as_str(), "confirmed" | "shipped") && !captured.contains(order) {
            found.push(format!(
                "order {order} is {order_status} without a captured payment"
            ));
        }
    }
    // Sagas: none stuck, no order left half way.
    let open: Vec<(i64, Option<String>)> =
        sqlx::query_as("SELECT order_id, last_error FROM checkout_sagas WHERE done = FALSE")
            .fetch_all(&books.orders)
            .await
            .unwrap();
    for (order, why) in open {
        found.push(format!(
            "order {order}'s saga is stuck ({})",
            why.unwrap_or_default()
        ));
    }
    for (order, (order_status, _)) in &statuses {
        if matches!(order_status.as_str(), "pending" | "stock_reserved" | "paid") {
            found.push(format!("order {order} is still {order_status}"));
        }
    }
    // Reservations end as their orders did.
    let reservations: Vec<(i64, String)> =
        sqlx::query_as("SELECT order_id, status FROM reservations")
            .fetch_all(&books.catalog)
            .await
            .unwrap();
    for (order, reservation) in reservations {
        let order_status = status(order);
        let live = matches!(reservation.as_str(), "reserved" | "committed");
        let sold = matches!(order_status, "confirmed" | "shipped");
        if live != sold || (sold && reservation != "committed") {
            found.push(format!(
                "order {order} is {order_status} but its reservation is {reservation}"
            ));
        }
    }
    // Every event of the outbox is one notification, and there are no others.
    let events: BTreeSet<String> = sqlx::query_scalar("SELECT event_id FROM outbox")
        .fetch_all(&books.orders)
        .await
        .unwrap()
        .into_iter()
        .collect();
    let mut notified = BTreeSet::new();
    let mut cursor = books.notifications.find(doc! {}).await.unwrap();
    while cursor.advance().await.unwrap() {
        let doc = cursor.deserialize_current().unwrap();
        if let Ok(id) = doc.get_str("eventId")
            && !notified.insert(id.to_owned())
        {
            found.push(format!("event {id} notified twice"));
        }
    }
    let missing = events.difference(&notified).count();
    let extra = notified.difference(&events).count();
    if missing > 0 || extra > 0 {
        found.push(format!(
            "{missing} of {} events not notified, {extra} notifications of no event",
            events.len()
        ));
    }
    // Every shopper who was answered finds their order.
    for (order, user) in &seen.placed {
        match statuses.get(order) {
            Some((_, owner)) if owner == user => {}
            _ => found.push(format!(
                "user {user} was answered order {order}, which they do not have"
            )),
        }
    }
    found
}

#[tokio::test]
async fn checkouts_survive_kills_and_outages_and_the_books_agree() {
    let (db_target, _) = reroute(&mysql_admin_url(), "127.0.0.1:1");
    let database = TcpProxy::start(&db_target).await;
    let (amqp_target, _) = reroute(&amqp_url(), "127.0.0.1:1");
    let broker = TcpProxy::start(&amqp_target).await;
    let orders_broker = TcpProxy::start(&broker.addr.to_string()).await;
    let (_, broker_url) = reroute(&amqp_url(), &broker.addr.to_string());
    let (_, orders_broker_url) = reroute(&amqp_url(), &orders_broker.addr.to_string());
    let mut stack = process_stack()
        .set("RABBITMQ_URL", &broker_url)
        .set("DB_ACQUIRE_TIMEOUT_MS", "1000")
        .set_for(Service::Orders, "RABBITMQ_URL", &orders_broker_url)
        .set_for(Service::Orders, "DB_POOL_SIZE", "20")
        .set_for(Service::Orders, "CHECKOUT_TIMEOUT_SECS", "20")
        .set_for(Service::Orders, "CHECKOUT_LEASE_MS", "3000")
        .set_for(Service::Orders, "CHECKOUT_POLL_MS", "200")
        .set_for(Service::Orders, "CHECKOUT_RETRY_MIN_MS", "100")
        .set_for(Service::Orders, "CHECKOUT_RETRY_MAX_MS", "2000")
        .set_for(Service::Payments, "PAYMENT_PROVIDER_TIMEOUT_MS", "1000");
    // Every database connection goes through the one link the faults drop.
    for service in [
        Service::Users,
        Service::Orders,
        Service::Catalog,
        Service::Payments,
    ] {
        let url = stack.database_url(service).unwrap().unwrap();
        let (_, via_link) = reroute(&url, &database.addr.to_string());
        stack = stack.set_for(service, "DATABASE_URL", via_link);
    }
    let links = Links {
        database,
        broker,
        orders_broker,
    };
    let mut platform = ProcessPlatform::start_on(stack).await.unwrap();
    if let Some(bin) = negative_control_bin() {
        platform.kill(Service::Orders);
        platform.restart(Service::Orders, Some(&bin)).await.unwrap();
    }
    let admin = shopmesh_testkit::token(&platform.stack, 4, Role::Admin);
    let catalog = CatalogClient::new(platform.stack.url(Service::Catalog));
    let mut products = Vec::new();
    for _ in 0..PRODUCTS {
        let input = ProductInput {
            sku: unique("CHK"),
            name: "Checked".into(),
            description: None,
            price: Money {
                amount_minor: 100 + fastrand::i64(0..900),
                currency: "EUR".into(),
            },
            active: Some(true),
            image_url: None,
        };
        let id = catalog
            .create_product(&admin, None, &input)
            .await
            .unwrap()
            .id;
        let stock = StockAdjustment {
            delta: UNITS_EACH,
            reason: "checker stock".into(),
        };
        catalog
            .adjust_stock(&admin, id, None, &stock)
            .await
            .unwrap();
        products.push(id);
    }
    let products = Arc::new(products);
    let total = checkouts();
    let remaining = Arc::new(AtomicUsize::new(total));
    // Spread each shopper's checkouts over the fault schedule (about 80 s).
    let per_client = total as u64 / CLIENTS as u64 + 1;
    let pace = Duration::from_millis(80_000 / per_client);
    let started = Instant::now();
    let clients: Vec<_> = (1..=CLIENTS)
        .map(|user| {
            let token = shopmesh_testkit::token(&platform.stack, user, Role::User);
            tokio::spawn(shopper(
                platform.stack.url(Service::Orders),
                user,
                token,
                products.clone(),
                remaining.clone(),
                pace,
            ))
        })
        .collect();
    let mut log = Vec::new();
    faults(&mut platform, &links, &mut log).await;
    let mut seen = Seen::default();
    for client in clients {
        let s = client.await.unwrap();
        seen.placed.extend(s.placed);
        seen.refused.extend(s.refused);
        seen.unanswered += s.unanswered;
    }
    let load = started.elapsed();
    let books = Books::open(&platform).await;
    let settled = books.quiet(Duration::from_secs(180)).await;
    let found = violations(&books, &seen, &products).await;

    let by_status: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, COUNT(*) FROM orders GROUP BY status ORDER BY status")
            .fetch_all(&books.orders)
            .await
            .unwrap();
    let payments: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, COUNT(*) FROM payments GROUP BY status ORDER BY status")
            .fetch_all(&books.payments)
            .await
            .unwrap();
    let sold: i64 = sqlx::query_scalar("SELECT CAST(SUM(sold) AS SIGNED) FROM products")
        .fetch_one(&books.catalog)
        .await
        .unwrap();
    println!(
        "checkout checker: {total} checkouts from {CLIENTS} clients in {:.1} s, quiet {:.1} s later",
        load.as_secs_f64(),
        settled.as_secs_f64()
    );
    println!("  faults: {}", log.join("; "));
    println!(
        "  answered: {} orders, {} refused, {} unanswered",
        seen.placed.len(),
        seen.refused.len(),
        seen.unanswered
    );
    println!("  orders by status: {by_status:?}");
    println!("  payments by status: {payments:?}");
    println!(
        "  units sold: {sold} of {}",
        PRODUCTS as i64 * i64::from(UNITS_EACH)
    );
    println!("  violations: {}", found.len());
    for v in found.iter().take(20) {
        println!("    {v}");
    }
    platform.stop().await;
    let expect_violation = std::env::var("CHECKOUT_CHECKER_EXPECT").as_deref() == Ok("violation");
    if expect_violation {
        assert!(
            !found.is_empty(),
            "the negative control's build kept its books straight: the checker cannot see the fault"
        );
    } else {
        assert!(found.is_empty(), "{} violations: {found:#?}", found.len());
        assert!(
            seen.placed.len() as f64 >= total as f64 * 0.9,
            "only {} of {total} checkouts were answered with an order",
            seen.placed.len()
        );
    }
}
