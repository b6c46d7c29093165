//! Checkout, end to end: shoppers each put a product in the cart, check out with `tok_visa`
//! and wait for the order to be `confirmed`, over and over. Reported: confirmed checkouts per
//! second and p50/p99 from the checkout request to the moment the order was confirmed (the
//! time of that transition in the order's timeline: the same clock), against the raw order
//! transaction (`POST /orders` without a payment, same shoppers, same concurrency) measured
//! in the same run.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::Session;

/// Products the shoppers spread over (stock enough for the whole run on each).
const PRODUCTS: usize = 50;

/// What one closed-loop run measured.
struct Run {
    done: u64,
    /// Failed attempts by cause (a status and the step, or how the order ended).
    failed: BTreeMap<String, u64>,
    seconds: f64,
    latency: Histogram<u64>,
}

impl Run {
    fn json(&self) -> Value {
        let ms = |q: f64| self.latency.value_at_quantile(q) as f64 / 1000.0;
        json!({
            "per_s": self.done as f64 / self.seconds,
            "done": self.done,
            "failed": self.failed.values().sum::<u64>(),
            "failures": self.failed,
            "p50_ms": ms(0.5),
            "p99_ms": ms(0.99),
        })
    }
}

/// Runs `one` by every shopper in a loop for `duration`; `one` returns the latency it
/// measured, or why it failed.
async fn closed_loop<F, Fut>(shoppers: &[(i64, Session)], duration: Duration, one: F) -> Run
where
    F: Fn(i64, Session, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Duration, String>> + Send,
{
    let one = Arc::new(one);
    let totals = Arc::new(Mutex::new((
        Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).expect("valid bounds"),
        0u64,
        BTreeMap::<String, u64>::new(),
    )));
    let start = Instant::now();
    let end = start + duration;
    let workers: Vec<_> = shoppers
        .iter()
        .map(|(user, session)| {
            let (one, totals, user, session) =
                (one.clone(), totals.clone(), *user, session.clone());
            tokio::spawn(async move {
                let mut i = 0u64;
                while Instant::now() < end {
                    let outcome = one(user, session.clone(), i).await;
                    i += 1;
                    let mut t = totals.lock().await;
                    match outcome {
                        Ok(latency) => {
                            let _ = t.0.record(latency.as_micros().max(1) as u64);
                            t.1 += 1;
                        }
                        Err(cause) => *t.2.entry(cause).or_default() += 1,
                    }
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.await;
    }
    let seconds = start.elapsed().as_secs_f64();
    let (latency, done, failed) = Arc::try_unwrap(totals)
        .map(|m| m.into_inner())
        .unwrap_or_else(|_| unreachable!("every worker has finished"));
    Run {
        done,
        failed,
        seconds,
        latency,
    }
}

/// The response of `step`, or why it failed (its status and, for a problem, its detail).
async fn answer(step: &str, sent: reqwest::Result<reqwest::Response>) -> Result<Value, String> {
    let resp = sent.map_err(|e| format!("{step}: {}", transport(&e)))?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(body);
    }
    let detail = body["detail"].as_str().unwrap_or_default();
    // Ids and keys differ per attempt; the rest of the detail names the cause.
    let detail: String = detail
        .split(' ')
        .map(|w| {
            if w.chars().any(|c| c.is_ascii_digit()) {
                "N"
            } else {
                w
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    Err(format!("{step}: {} {detail}", status.as_u16()))
}

fn transport(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection refused"
    } else {
        "transport error"
    }
}

/// One checkout by `user`, from the request to `confirmed`.
async fn check_out(
    orders: &str,
    user: i64,
    session: &Session,
    product: i64,
) -> Result<Duration, String> {
    let http = &session.http;
    let put = http
        .put(format!("{orders}/carts/{user}/lines/{product}"))
        .json(&json!({"quantity": 1}))
        .send()
        .await;
    answer("cart", put).await?;
    let asked = chrono::Utc::now();
    let posted = http
        .post(format!("{orders}/checkouts"))
        .header("idempotency-key", uuid_like())
        .json(&json!({"userId": user, "paymentToken": "tok_visa"}))
        .send()
        .await;
    let order = answer("checkout", posted).await?;
    let id = order["id"].as_i64().ok_or("checkout: no order id")?;
    let waited = Instant::now();
    while waited.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        // A poll that fails (the service busy answering the shoppers' own polls) is not the
        // checkout's failure: the order's timeline says how it ended.
        let Some(timeline) = poll_timeline(http, orders, id).await else {
            continue;
        };
        let Some(items) = timeline["items"].as_array() else {
            continue;
        };
        if let Some(confirmed) = items.iter().find(|t| t["to"] == "confirmed") {
            let at: chrono::DateTime<chrono::Utc> = confirmed["at"]
                .as_str()
                .and_then(|at| at.parse().ok())
                .ok_or("timeline: no time")?;
            return Ok((at - asked).to_std().unwrap_or(Duration::from_micros(1)));
        }
        if let Some(end) = items
            .iter()
            .find(|t| matches!(t["to"].as_str(), Some("rejected" | "cancelled" | "expired")))
        {
            return Err(format!("ended {}: {}", end["to"], end["cause"]));
        }
    }
    Err("not confirmed within 60 s".to_owned())
}

async fn poll_timeline(http: &reqwest::Client, orders: &str, id: i64) -> Option<Value> {
    let resp = http
        .get(format!("{orders}/orders/{id}/timeline"))
        .send()
        .await
        .ok()?;
    resp.error_for_status().ok()?.json().await.ok()
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "bench-{}-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_micros(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Measures checkouts against the raw order transaction; `products` are on sale with stock.
pub async fn measure(
    orders: &str,
    shoppers: &[(i64, Session)],
    products: &[i64],
    duration: Duration,
) -> anyhow::Result<Value> {
    anyhow::ensure!(!products.is_empty(), "no products to check out");
    let products: Arc<Vec<i64>> = Arc::new(products.to_vec());
    println!(
        "bench: raw order transaction (POST /orders), {} shoppers",
        shoppers.len()
    );
    let (url, list) = (orders.to_owned(), products.clone());
    let raw = closed_loop(shoppers, duration, move |user, session, i| {
        let (url, list) = (url.clone(), list.clone());
        async move {
            let t = Instant::now();
            let body =
                json!({"userId": user, "productId": list[i as usize % list.len()], "quantity": 1});
            let sent = session
                .http
                .post(format!("{url}/orders"))
                .json(&body)
                .send()
                .await;
            answer("order", sent).await.map(|_| t.elapsed())
        }
    })
    .await;
    println!("bench: checkout to confirmed, {} shoppers", shoppers.len());
    let (url, list) = (orders.to_owned(), products.clone());
    let checkout = closed_loop(shoppers, duration, move |user, session, i| {
        let (url, list) = (url.clone(), list.clone());
        async move {
            let product = list[(user as usize + i as usize) % list.len()];
            check_out(&url, user, &session, product).await
        }
    })
    .await;
    let raw_rate = raw.done as f64 / raw.seconds;
    let checkout_rate = checkout.done as f64 / checkout.seconds;
    Ok(json!({
        "raw_order": raw.json(),
        "checkout_to_confirmed": checkout.json(),
        "vs_raw_order": checkout_rate / raw_rate.max(0.001),
        "orders_database_failures": database_failures(orders).await,
    }))
}

/// The orders service's database failures by kind since it started (its
/// `orders_database_failures_total`): why requests were answered 503.
async fn database_failures(orders: &str) -> Value {
    let Ok(resp) = reqwest::get(format!("{orders}/metrics")).await else {
        return Value::Null;
    };
    let text = resp.text().await.unwrap_or_default();
    let kinds: serde_json::Map<String, Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("orders_database_failures_total{kind=\""))
        .filter_map(|l| {
            let (kind, rest) = l.split_once("\"}")?;
            Some((kind.to_owned(), json!(rest.trim().parse::<f64>().ok()?)))
        })
        .collect();
    Value::Object(kinds)
}

/// Puts `PRODUCTS` products on sale with a million units each; their ids.
pub async fn products(catalog: &str, admin_token: &str) -> anyhow::Result<Vec<i64>> {
    let http = reqwest::Client::new();
    let bearer = format!("Bearer {admin_token}");
    let mut ids = Vec::new();
    for i in 0..PRODUCTS {
        let product: Value = http
            .post(format!("{catalog}/products"))
            .header("authorization", &bearer)
            .json(&json!({
                "sku": format!("CHECKOUT-{}-{i}", std::process::id()),
                "name": format!("Checkout product {i}"),
                "price": {"amountMinor": 500 + i as i64, "currency": "EUR"},
                "active": true
            }))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let id = product["id"]
            .as_i64()
            .ok_or_else(|| anyhow::anyhow!("no id in {product}"))?;
        http.post(format!("{catalog}/products/{id}/stock-adjustments"))
            .header("authorization", &bearer)
            .json(&json!({"delta": 1_000_000, "reason": "bench"}))
            .send()
            .await?
            .error_for_status()?;
        ids.push(id);
    }
    Ok(ids)
}

/// Prints the figures.
pub fn print(figures: &Value) {
    let f = |v: &Value| v.as_f64().unwrap_or(0.0);
    println!("\ncheckout (orchestrated saga: reserve, authorize, capture, commit)");
    for key in ["raw_order", "checkout_to_confirmed"] {
        let m = &figures[key];
        println!(
            "  {key:<22} {:>8.1} /s  p50 {:>8.2} ms  p99 {:>8.2} ms  failed {}",
            f(&m["per_s"]),
            f(&m["p50_ms"]),
            f(&m["p99_ms"]),
            m["failed"]
        );
        if let Some(causes) = m["failures"].as_object() {
            for (cause, n) in causes {
                println!("    {n:>6} x {cause}");
            }
        }
    }
    println!(
        "  checkouts confirmed per second: {:.3}x the raw order transaction",
        f(&figures["vs_raw_order"])
    );
    println!(
        "  the orders service's database failures by kind: {}",
        figures["orders_database_failures"]
    );
}
