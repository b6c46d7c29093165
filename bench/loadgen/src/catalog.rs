//! The catalog's figures, each compared with its limit measured in the same run: cached
//! product reads through the gateway against bare HTTP; reservations per second on one hot
//! product and spread over 1,000 products against the raw conditional `UPDATE` of the same
//! database; and the time of a 10,000-row CSV import.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::limits::closed_loop;
use crate::wrk::{Measured, Request, Wrk};

/// Where the catalog is.
pub struct CatalogTargets {
    /// The catalog service.
    pub catalog: String,
    /// Its database (for the raw-UPDATE limit, in a scratch table).
    pub catalog_db: String,
    /// The users service, which issues the orders service's token.
    pub users: String,
    /// The orders service's client secret: reservations are made with its service token.
    pub orders_client_secret: String,
}

/// Products the spread reservations and the raw spread updates go over.
const SPREAD: i64 = 1_000;
/// Rows of the import.
const IMPORT_ROWS: usize = 10_000;

/// Measures everything; `bare_rps` is the bare HTTP limit of the same run.
pub async fn measure(
    c: &CatalogTargets,
    gateway: &str,
    admin_token: &str,
    wrk: &Wrk,
    connections: usize,
    duration: Duration,
    bare_rps: f64,
) -> anyhow::Result<Value> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()?;
    let bearer = format!("Bearer {admin_token}");

    println!("bench: catalog import of {IMPORT_ROWS} rows");
    let mut csv = String::from("sku,name,description,price_minor,currency,active,image_url\n");
    for i in 0..IMPORT_ROWS {
        csv.push_str(&format!(
            "BENCH-{i},Bench product {i},,{},EUR,true,\n",
            100 + i
        ));
    }
    let started = Instant::now();
    let report: Value = http
        .post(format!("{}/products/import", c.catalog))
        .header("authorization", &bearer)
        .json(&json!({ "csv": csv }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let import_seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        report["imported"] == IMPORT_ROWS,
        "the import did not take every row: {report}"
    );

    let ids = product_ids(&http, c, SPREAD).await?;
    let hot = ids[0];
    for &id in &ids {
        let units = if id == hot { 1_000_000 } else { 100_000 };
        http.post(format!("{}/products/{id}/stock-adjustments", c.catalog))
            .header("authorization", &bearer)
            .json(&json!({ "delta": units, "reason": "bench" }))
            .send()
            .await?
            .error_for_status()?;
    }

    println!("bench: catalog reads through the gateway");
    let products = Request::post_json(
        "/graphql",
        json!({"query": "{ products(first: 20) { nodes { id sku name price { amountMinor currency } stock { available } } } }"}).to_string(),
    );
    let product = Request::post_json(
        "/graphql",
        json!({"query": "query($id: ID!) { product(id: $id) { id name price { amountMinor currency } stock { available } } }", "variables": {"id": hot.to_string()}}).to_string(),
    );
    wrk.run(gateway, &products, connections, Duration::from_secs(1))
        .await?;
    wrk.run(gateway, &product, connections, Duration::from_secs(1))
        .await?;
    let products_cached = wrk.run(gateway, &products, connections, duration).await?;
    let product_cached = wrk.run(gateway, &product, connections, duration).await?;

    println!("bench: reservations against the raw conditional UPDATE");
    let raw = RawStock::create(&c.catalog_db, connections).await?;
    let raw_hot = raw.updates(connections, duration, false).await;
    let raw_spread = raw.updates(connections, duration, true).await;
    raw.drop().await?;
    let service: Value = http
        .post(format!("{}/auth/service-token", c.users))
        .json(&json!({"clientId": "orders", "clientSecret": c.orders_client_secret}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let service = format!(
        "Bearer {}",
        service["accessToken"].as_str().unwrap_or_default()
    );
    // Order ids far above any the orders service gives out, so the checkout scenario's real
    // orders never find a reservation of this one under their id.
    let orders = Arc::new(AtomicI64::new(1_000_000_000_000));
    let reserve_hot = reservations(c, &service, &orders, vec![hot], connections, duration).await;
    let reserve_spread = reservations(c, &service, &orders, ids, connections, duration).await;

    let ratio = |m: &Measured, limit: f64| m.rps / limit.max(1.0);
    Ok(json!({
        "import_10000_rows_seconds": import_seconds,
        "products_cached": {"measured": products_cached, "vs_bare": ratio(&products_cached, bare_rps)},
        "product_cached": {"measured": product_cached, "vs_bare": ratio(&product_cached, bare_rps)},
        "raw_update_hot": raw_hot,
        "raw_update_spread": raw_spread,
        "reserve_hot": {"measured": reserve_hot, "vs_raw_update": ratio(&reserve_hot, raw_hot.rps)},
        "reserve_spread": {"measured": reserve_spread, "vs_raw_update": ratio(&reserve_spread, raw_spread.rps)},
    }))
}

/// The ids of the first `n` active products, by id.
async fn product_ids(
    http: &reqwest::Client,
    c: &CatalogTargets,
    n: i64,
) -> anyhow::Result<Vec<i64>> {
    let mut ids = Vec::new();
    let mut after: Option<String> = None;
    while (ids.len() as i64) < n {
        let mut call = http
            .get(format!("{}/products", c.catalog))
            .query(&[("first", "100")]);
        if let Some(cursor) = &after {
            call = call.query(&[("after", cursor)]);
        }
        let page: Value = call.send().await?.error_for_status()?.json().await?;
        ids.extend(
            page["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["id"].as_i64()),
        );
        match page["nextCursor"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    ids.truncate(n as usize);
    anyhow::ensure!(
        ids.len() as i64 == n,
        "only {} products to spread over",
        ids.len()
    );
    Ok(ids)
}

/// One-line reservations of products picked from `products`, each for a new order.
async fn reservations(
    c: &CatalogTargets,
    bearer: &str,
    orders: &Arc<AtomicI64>,
    products: Vec<i64>,
    connections: usize,
    duration: Duration,
) -> Measured {
    let http = reqwest::Client::new();
    let (base, bearer, orders, products) = (
        c.catalog.clone(),
        bearer.to_owned(),
        orders.clone(),
        Arc::new(products),
    );
    closed_loop(connections, duration, move |n| {
        let (http, base, bearer, orders, products) = (
            http.clone(),
            base.clone(),
            bearer.clone(),
            orders.clone(),
            products.clone(),
        );
        async move {
            let order = orders.fetch_add(1, Ordering::Relaxed);
            let product = products[(n as usize) % products.len()];
            http.put(format!("{base}/reservations/{order}"))
                .header("authorization", bearer)
                .json(&json!({"lines": [{"productId": product, "quantity": 1}]}))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        }
    })
    .await
}

/// A scratch stock table in the catalog's database: the same conditional update the catalog
/// makes, with nothing around it.
struct RawStock {
    pool: sqlx::MySqlPool,
}

impl RawStock {
    async fn create(url: &str, connections: usize) -> anyhow::Result<Self> {
        let pool = sqlx::mysql::MySqlPoolOptions::new()
            .max_connections(connections as u32)
            .connect(url)
            .await?;
        sqlx::query("DROP TABLE IF EXISTS bench_stock")
            .execute(&pool)
            .await?;
        sqlx::query(
            "CREATE TABLE bench_stock (id BIGINT PRIMARY KEY, on_hand BIGINT NOT NULL, reserved BIGINT NOT NULL) ENGINE = InnoDB",
        )
        .execute(&pool)
        .await?;
        let rows = vec!["(?, 1000000000000, 0)"; SPREAD as usize].join(",");
        let sql = format!("INSERT INTO bench_stock (id, on_hand, reserved) VALUES {rows}");
        let mut insert = sqlx::query(&sql);
        for id in 1..=SPREAD {
            insert = insert.bind(id);
        }
        insert.execute(&pool).await?;
        Ok(Self { pool })
    }

    async fn updates(&self, connections: usize, duration: Duration, spread: bool) -> Measured {
        let pool = self.pool.clone();
        closed_loop(connections, duration, move |n| {
            let pool = pool.clone();
            async move {
                let id = if spread { (n as i64) % SPREAD + 1 } else { 1 };
                sqlx::query(
                    "UPDATE bench_stock SET reserved = reserved + 1 WHERE id = ? AND on_hand - reserved >= 1",
                )
                .bind(id)
                .execute(&pool)
                .await
                .is_ok_and(|r| r.rows_affected() == 1)
            }
        })
        .await
    }

    async fn drop(self) -> anyhow::Result<()> {
        sqlx::query("DROP TABLE IF EXISTS bench_stock")
            .execute(&self.pool)
            .await?;
        self.pool.close().await;
        Ok(())
    }
}

/// Lines for the printed summary.
pub fn print(figures: &Value) {
    let f = |v: &Value| v.as_f64().unwrap_or(0.0);
    println!("\ncatalog");
    println!(
        "  CSV import of 10,000 rows: {:.2} s",
        f(&figures["import_10000_rows_seconds"])
    );
    for (key, limit_key, limit) in [
        ("products_cached", "vs_bare", "bare HTTP"),
        ("product_cached", "vs_bare", "bare HTTP"),
        (
            "reserve_hot",
            "vs_raw_update",
            "raw conditional UPDATE, one row",
        ),
        (
            "reserve_spread",
            "vs_raw_update",
            "raw conditional UPDATE, 1,000 rows",
        ),
    ] {
        let m = &figures[key]["measured"];
        println!(
            "  {key:<16} {:>9.0} req/s  p99 {:>7.2} ms  errors {}  {:.2}x {limit}",
            f(&m["rps"]),
            f(&m["p99_ms"]),
            m["errors"],
            f(&figures[key][limit_key])
        );
    }
    for key in ["raw_update_hot", "raw_update_spread"] {
        println!("  {key:<16} {:>9.0} updates/s", f(&figures[key]["rps"]));
    }
}
