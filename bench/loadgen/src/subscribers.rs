//! Live order status at scale: how many subscribers one gateway holds, what an idle one costs
//! it in memory, and how long a status change takes to reach all of them.
//!
//! For each count, that many WebSockets (`graphql-transport-ws`, as GraphiQL and the SDK speak
//! it) each run one `orderStatusChanged` subscription for all of one shopper's orders. Once
//! every socket is acknowledged and idle, the gateway's RSS is read; then the shopper's orders
//! are cancelled one at a time and every subscriber times each change from its `at` (stamped
//! in the orders service's transaction, just before it commits) to the frame's arrival.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt as _, StreamExt as _};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

use crate::Session;

/// Sockets opened at once while a count is built up.
const OPENING_AT_ONCE: usize = 200;
/// Status changes timed at each count, one every [`CHANGE_INTERVAL`].
const CHANGES: usize = 20;
const CHANGE_INTERVAL: Duration = Duration::from_millis(200);
const SUBSCRIPTION: &str = "subscription { orderStatusChanged { orderId to at } }";

/// Where the gateway and the orders service listen, and the gateway's process.
pub struct LiveTargets<'a> {
    pub gateway: &'a str,
    pub orders: &'a str,
    pub gateway_pid: Option<u32>,
}

/// One subscriber's socket.
type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a socket for `token`, acknowledged and subscribed.
async fn subscribe(url: &str, token: &str) -> anyhow::Result<Socket> {
    let mut request = url.into_client_request()?;
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "graphql-transport-ws".parse()?);
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await?;
    let init =
        json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {token}")}});
    socket.send(Message::text(init.to_string())).await?;
    match socket.next().await {
        Some(Ok(Message::Text(text))) if text.contains("connection_ack") => {}
        other => anyhow::bail!("no connection_ack: {other:?}"),
    }
    let subscribe = json!({"type": "subscribe", "id": "1", "payload": {"query": SUBSCRIPTION}});
    socket.send(Message::text(subscribe.to_string())).await?;
    Ok(socket)
}

/// The process's resident memory in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Reads `socket` until `expected` cancellations arrived or `until`: each one's latency in µs
/// from its `at`.
async fn listen(mut socket: Socket, expected: usize, until: Instant) -> (Histogram<u64>, usize) {
    let mut latency = crate::histogram();
    let mut heard = 0;
    while heard < expected {
        let Ok(Some(Ok(frame))) = tokio::time::timeout_at(until.into(), socket.next()).await else {
            break;
        };
        let Message::Text(text) = frame else { continue };
        let arrived = chrono::Utc::now();
        let Ok(message) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        let change = &message["payload"]["data"]["orderStatusChanged"];
        if change["to"] != "CANCELLED" {
            continue;
        }
        let Some(at) = change["at"]
            .as_str()
            .and_then(|a| chrono::DateTime::parse_from_rfc3339(a).ok())
        else {
            continue;
        };
        let micros = (arrived - at.with_timezone(&chrono::Utc))
            .num_microseconds()
            .unwrap_or(0);
        let _ = latency.record(u64::try_from(micros).unwrap_or(0).max(1));
        heard += 1;
    }
    let _ = socket.close(None).await;
    (latency, heard)
}

/// Places `n` orders for `user` (one unit of product 1) as `shopper`; their ids.
async fn place(orders: &str, shopper: &Session, user: i64, n: usize) -> anyhow::Result<Vec<i64>> {
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        let body = json!({"userId": user, "productId": 1, "quantity": 1});
        let order: Value = shopper
            .http
            .post(format!("{orders}/orders"))
            .json(&body)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        ids.push(
            order["id"]
                .as_i64()
                .ok_or_else(|| anyhow::anyhow!("no id in {order}"))?,
        );
    }
    Ok(ids)
}

/// One count: subscribers held, memory per idle subscriber, fan-out latency.
async fn at_count(
    t: &LiveTargets<'_>,
    shopper: &Session,
    user: i64,
    count: usize,
) -> anyhow::Result<Value> {
    let url = t.gateway.replace("http://", "ws://") + "/graphql";
    let orders = place(t.orders, shopper, user, CHANGES).await?;
    // Events of the placing must not be counted: let them pass before anyone listens.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = t.gateway_pid.and_then(rss_kib);
    let opened_at = Instant::now();
    let token = Arc::new(shopper.token.clone());
    let url = Arc::new(url);
    let mut sockets = Vec::with_capacity(count);
    let mut refused = Vec::new();
    let mut opening = futures::stream::iter(0..count)
        .map(|_| {
            let (url, token) = (url.clone(), token.clone());
            async move { subscribe(&url, &token).await }
        })
        .buffer_unordered(OPENING_AT_ONCE);
    while let Some(opened) = opening.next().await {
        match opened {
            Ok(socket) => sockets.push(socket),
            Err(e) if refused.len() < 3 => refused.push(e.to_string()),
            Err(_) => refused.push(String::new()),
        }
    }
    let opening_seconds = opened_at.elapsed().as_secs_f64();
    // Subscriptions start once their frame is read; give the last ones time, then let the
    // allocator settle before reading the gateway's memory.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let held = sockets.len();
    let idle = t.gateway_pid.and_then(rss_kib);
    let per_subscriber_kib = match (before, idle) {
        (Some(b), Some(i)) if held > 0 => Some((i.saturating_sub(b)) as f64 / held as f64),
        _ => None,
    };

    let until = Instant::now() + Duration::from_secs(60);
    let listeners: Vec<_> = sockets
        .into_iter()
        .map(|s| tokio::spawn(listen(s, CHANGES, until)))
        .collect();
    for id in &orders {
        shopper
            .http
            .post(format!("{}/orders/{id}/cancel", t.orders))
            .send()
            .await?
            .error_for_status()?;
        tokio::time::sleep(CHANGE_INTERVAL).await;
    }
    let mut latency = crate::histogram();
    let mut delivered = 0usize;
    for listener in listeners {
        let (heard, n) = listener.await?;
        latency.add(&heard)?;
        delivered += n;
    }
    let q = |p: f64| latency.value_at_quantile(p) as f64 / 1000.0;
    Ok(json!({
        "subscribers": count,
        "held": held,
        "refused": refused.len(),
        "refusals": refused.into_iter().filter(|r| !r.is_empty()).collect::<Vec<_>>(),
        "opening_seconds": opening_seconds,
        "gateway_rss_before_kib": before,
        "gateway_rss_idle_kib": idle,
        "rss_per_idle_subscriber_kib": per_subscriber_kib,
        "changes": CHANGES,
        "expected_deliveries": held * CHANGES,
        "delivered": delivered,
        "fanout_p50_ms": q(0.5),
        "fanout_p99_ms": q(0.99),
        "fanout_max_ms": latency.max() as f64 / 1000.0,
    }))
}

/// Every count in `counts`, one after the other (each count's sockets closed before the next).
pub async fn measure(
    t: &LiveTargets<'_>,
    shopper: &Session,
    user: i64,
    counts: &[usize],
) -> anyhow::Result<Value> {
    let mut points = Vec::new();
    for &count in counts {
        println!("bench: {count} subscribers on one gateway");
        points.push(at_count(t, shopper, user, count).await?);
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    Ok(Value::Array(points))
}

/// The table of [`measure`]'s points.
pub fn print(points: &Value) {
    println!(
        "\nLive status on one gateway: {CHANGES} status changes, each timed at every subscriber from its commit to delivery"
    );
    println!(
        "{:>12} {:>8} {:>10} {:>14} {:>12} {:>12} {:>12}",
        "subscribers", "held", "delivered", "KiB/idle sub", "p50 ms", "p99 ms", "max ms"
    );
    for p in points.as_array().into_iter().flatten() {
        println!(
            "{:>12} {:>8} {:>10} {:>14} {:>12.1} {:>12.1} {:>12.1}",
            p["subscribers"],
            p["held"],
            format!("{}/{}", p["delivered"], p["expected_deliveries"]),
            p["rss_per_idle_subscriber_kib"]
                .as_f64()
                .map_or("n/a".to_owned(), |k| format!("{k:.1}")),
            p["fanout_p50_ms"].as_f64().unwrap_or(f64::NAN),
            p["fanout_p99_ms"].as_f64().unwrap_or(f64::NAN),
            p["fanout_max_ms"].as_f64().unwrap_or(f64::NAN),
        );
    }
}
