//! Load generator for `cargo xtask bench`. Runs the suite ([`suite`]) against services that
//! xtask started as separate (release) processes, prints tables and writes JSON. HTTP
//! scenarios are driven by `wrk` ([`wrk`]); scenarios that need logic (gRPC, event latency,
//! the stores' own limits) by the closed loop here.
//!
//! `loadgen serve-baseline PORT` instead serves the bare poem JSON endpoint (the same poem
//! build as the services, in a process of its own). `loadgen scale` measures the replica-count
//! comparison against the gateways in `BENCH_GATEWAY_URLS`, `loadgen scale-report RUN...`
//! compares those runs, `loadgen reset` drops the bench's databases, and `loadgen report
//! FILE` writes the Markdown summary and the chart next to the finished report.

mod catalog;
mod checkout;
mod cpu;
mod limits;
mod proxy;
mod report;
mod seed;
mod subscribers;
mod suite;
mod wrk;

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{Value, json};
use shopmesh_proto::shopmesh::notification::v1 as pb;
use shopmesh_proto::shopmesh::notification::v1::notification_service_client::NotificationServiceClient;
use tokio::sync::Mutex;

/// One scenario's measurements.
struct Outcome {
    name: &'static str,
    requests: u64,
    errors: u64,
    seconds: f64,
    latency: Histogram<u64>,
}

impl Outcome {
    /// Totals and percentiles, as every driver reports them.
    fn measured(&self) -> wrk::Measured {
        let q = |p: f64| self.latency.value_at_quantile(p) as f64 / 1000.0;
        wrk::Measured {
            requests: self.requests,
            errors: self.errors,
            seconds: self.seconds,
            rps: self.requests as f64 / self.seconds,
            p50_ms: q(0.5),
            p99_ms: q(0.99),
            p999_ms: q(0.999),
        }
    }

    fn json(&self) -> Value {
        let q = |p: f64| self.latency.value_at_quantile(p) as f64 / 1000.0;
        json!({
            "scenario": self.name,
            "requests": self.requests,
            "errors": self.errors,
            "seconds": self.seconds,
            "throughput_rps": self.requests as f64 / self.seconds,
            "p50_ms": q(0.5), "p99_ms": q(0.99), "p999_ms": q(0.999),
        })
    }
}

/// The cached read both the single-gateway and the scale scenarios send.
const ORDER_QUERY: &str = "query($id: ID!) { order(id: $id) { id status quantity } }";

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

/// Runs `call` from `concurrency` workers: `warmup` first (not measured), then until `measure`
/// has passed or `max_requests` were sent.
async fn drive<F, Fut>(
    name: &'static str,
    concurrency: usize,
    warmup: Duration,
    measure: Duration,
    max_requests: Option<u64>,
    call: F,
) -> Outcome
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let call = Arc::new(call);
    let warm_end = Instant::now() + warmup;
    let mut warm = Vec::new();
    for w in 0..concurrency {
        let call = call.clone();
        warm.push(tokio::spawn(async move {
            let mut i = w as u64;
            while Instant::now() < warm_end {
                call(i).await;
                i += concurrency as u64;
            }
        }));
    }
    for w in warm {
        let _ = w.await;
    }
    let shared = Arc::new(Mutex::new((histogram(), 0u64, 0u64)));
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let start = Instant::now();
    let end = start + measure;
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (call, shared, counter) = (call.clone(), shared.clone(), counter.clone());
        workers.push(tokio::spawn(async move {
            let mut local = histogram();
            let (mut n, mut errors) = (0u64, 0u64);
            loop {
                let i = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if Instant::now() >= end || max_requests.is_some_and(|m| i >= m) {
                    break;
                }
                let t = Instant::now();
                let ok = call(1_000_000 + i).await;
                let _ = local.record(t.elapsed().as_micros().max(1) as u64);
                n += 1;
                if !ok {
                    errors += 1;
                }
            }
            let mut s = shared.lock().await;
            let _ = s.0.add(&local);
            s.1 += n;
            s.2 += errors;
        }));
    }
    for w in workers {
        let _ = w.await;
    }
    let seconds = start.elapsed().as_secs_f64();
    let (latency, requests, errors) = {
        let totals = shared.lock().await;
        (totals.0.clone(), totals.1, totals.2)
    };
    Outcome {
        name,
        requests,
        errors,
        seconds,
        latency,
    }
}

async fn graphql(
    http: &reqwest::Client,
    url: &str,
    query: &str,
    variables: Value,
) -> Option<Value> {
    let resp = http
        .post(format!("{url}/graphql"))
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .ok()?;
    if !resp.status().is_success() {
        return None;
    }
    let body: Value = resp.json().await.ok()?;
    body.get("errors").is_none().then_some(body)
}

/// A client that sends the bearer token `token` with every request.
fn authed(token: &str) -> anyhow::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse()?,
    );
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .default_headers(headers)
        .build()?)
}

/// A logged-in client: its token, and an HTTP client sending it.
#[derive(Clone)]
struct Session {
    token: String,
    http: reqwest::Client,
}

impl Session {
    /// A gRPC client of the notifications service at `url` calling with this session's token.
    async fn notifications(
        &self,
        url: &str,
    ) -> anyhow::Result<
        NotificationServiceClient<
            tonic::service::interceptor::InterceptedService<
                tonic::transport::Channel,
                impl tonic::service::Interceptor + Clone + use<>,
            >,
        >,
    > {
        let channel = tonic::transport::Channel::from_shared(url.to_owned())?
            .connect()
            .await?;
        let bearer: tonic::metadata::MetadataValue<_> = format!("Bearer {}", self.token).parse()?;
        Ok(NotificationServiceClient::with_interceptor(
            channel,
            move |mut request: tonic::Request<()>| {
                request
                    .metadata_mut()
                    .insert("authorization", bearer.clone());
                Ok(request)
            },
        ))
    }
}

/// Logs in through the gateway as a client does.
async fn log_in(gateway: &str, email: &str, password: &str) -> anyhow::Result<Session> {
    let resp = reqwest::Client::new()
        .post(format!("{gateway}/api/auth/token"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await?;
    anyhow::ensure!(
        resp.status().is_success(),
        "logging in as {email} answered {}",
        resp.status()
    );
    let body: Value = resp.json().await?;
    let token = body["accessToken"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no accessToken in {body}"))?;
    Ok(Session {
        token: token.to_owned(),
        http: authed(token)?,
    })
}

/// Signs up a new shopper and logs in as them: their id and a client carrying their token.
async fn new_shopper(gateway: &str, email: &str) -> anyhow::Result<(i64, Session)> {
    const PASSWORD: &str = "bench shopper password";
    let resp = reqwest::Client::new()
        .post(format!("{gateway}/api/users"))
        .json(&json!({"name": "Bench Shopper", "email": email, "password": PASSWORD}))
        .send()
        .await?;
    anyhow::ensure!(
        resp.status().as_u16() == 201,
        "sign-up answered {}",
        resp.status()
    );
    let user: Value = resp.json().await?;
    let id = user["id"]
        .as_i64()
        .ok_or_else(|| anyhow::anyhow!("no id in {user}"))?;
    Ok((id, log_in(gateway, email, PASSWORD).await?))
}

/// Places one order for Alice (user 1) through the gateway, to read back; its id.
async fn first_order(alice: &Session, gateway: &str) -> anyhow::Result<String> {
    let order = graphql(
        &alice.http,
        gateway,
        "mutation { createOrder(input: {userId: \"1\", productId: \"1\", quantity: 1}) { id } }",
        json!({}),
    )
    .await
    .ok_or_else(|| anyhow::anyhow!("the gateway did not create an order"))?;
    order["data"]["createOrder"]["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("no order id in {order}"))
}

/// One in this many orders of an event-latency run is also timed as a client sees it.
const CLIENT_SAMPLE: u32 = 10;

/// Posts orders for `user_id` at `rate` per second for `seconds`, then reads the user's
/// notifications over gRPC and reports order-created -> notification-stored latency from the
/// stores' own timestamps; one order in [`CLIENT_SAMPLE`] is also timed as a client sees it,
/// from its 201 until `GetNotifications` returns its notification.
async fn event_latency(
    grpc: &str,
    orders: &str,
    shopper: &Session,
    rate: u32,
    seconds: u32,
    user_id: i64,
) -> Value {
    let total = rate * seconds;
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut created = std::collections::HashMap::new();
    let mut pending = Vec::new();
    let client = match shopper.notifications(grpc).await {
        Ok(c) => c,
        Err(e) => return json!({"rate_per_s": rate, "error": e.to_string()}),
    };
    for i in 0..total {
        ticker.tick().await;
        let (http, url, mut client) = (shopper.http.clone(), orders.to_owned(), client.clone());
        pending.push(tokio::spawn(async move {
            let body = json!({"userId": user_id, "productId": 1 + i64::from(i), "quantity": 1});
            let resp = http
                .post(format!("{url}/orders"))
                .json(&body)
                .send()
                .await
                .ok()?;
            let order: Value = resp.json().await.ok()?;
            let acknowledged = Instant::now();
            let at = chrono::DateTime::parse_from_rfc3339(order["createdAt"].as_str()?).ok()?;
            let id = order["id"].as_i64()?;
            let mut seen_after = None;
            if i % CLIENT_SAMPLE == 0 {
                while acknowledged.elapsed() < Duration::from_secs(30) {
                    let found = client
                        .get_notifications(pb::GetNotificationsRequest { order_id: id })
                        .await
                        .is_ok_and(|r| !r.into_inner().notifications.is_empty());
                    if found {
                        seen_after = Some(acknowledged.elapsed());
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            Some((id, at.with_timezone(&chrono::Utc), seen_after))
        }));
    }
    let mut client_view = histogram();
    for p in pending {
        if let Ok(Some((id, at, seen_after))) = p.await {
            created.insert(id, at);
            if let Some(after) = seen_after {
                let _ = client_view.record(after.as_micros().max(1) as u64);
            }
        }
    }
    let mut client = client;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut latencies = histogram();
    loop {
        let mut seen = std::collections::HashMap::new();
        let mut token = String::new();
        loop {
            let page = client
                .list_user_notifications(pb::ListUserNotificationsRequest {
                    user_id,
                    page_size: 100,
                    page_token: token.clone(),
                })
                .await
                .map(|r| r.into_inner());
            let Ok(page) = page else { break };
            for n in page.notifications {
                if let Some(ts) = n.sent_at {
                    seen.insert(n.order_id, ts);
                }
            }
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        if seen.len() >= created.len() || Instant::now() > deadline {
            for (id, at) in &created {
                if let Some(ts) = seen.get(id) {
                    let stored_ms = ts.seconds * 1000 + i64::from(ts.nanos) / 1_000_000;
                    let lag_us = (stored_ms - at.timestamp_millis()).max(0) * 1000;
                    let _ = latencies.record(lag_us.max(1) as u64);
                }
            }
            let q = |h: &Histogram<u64>, p: f64| h.value_at_quantile(p) as f64 / 1000.0;
            return json!({
                "rate_per_s": rate, "sent": total, "accepted": created.len(), "notified": seen.len(),
                "p50_ms": q(&latencies, 0.5), "p99_ms": q(&latencies, 0.99),
                "max_ms": latencies.max() as f64 / 1000.0,
                "client_sampled": client_view.len(),
                "client_p50_ms": q(&client_view, 0.5), "client_p99_ms": q(&client_view, 0.99),
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Busy and total jiffies of the whole machine, from `/proc/stat` (zeros where unreadable).
fn cpu_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = fields.iter().take(8).sum();
    // idle and iowait are the 4th and 5th fields.
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    (total.saturating_sub(idle), total)
}

/// [`drive`], also reporting the share of the machine's CPU that was busy while it measured
/// (warm-up included: the same load).
async fn drive_measuring_cpu<F, Fut>(
    name: &'static str,
    concurrency: usize,
    seconds: u64,
    call: F,
) -> Value
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let before = cpu_jiffies();
    let outcome = drive(
        name,
        concurrency,
        Duration::from_secs(1),
        Duration::from_secs(seconds),
        None,
        call,
    )
    .await;
    let after = cpu_jiffies();
    let busy = (after.0 - before.0) as f64 / (after.1 - before.1).max(1) as f64;
    let mut row = outcome.json();
    row["cpu_busy"] = json!(busy);
    row
}

/// `loadgen scale`: the two scenarios the replica-count comparison measures, with the load
/// spread evenly (request by request) over every gateway in `gateways`.
async fn scale_run(gateways: Vec<String>, out: &str, seconds: u64) -> anyhow::Result<()> {
    anyhow::ensure!(!gateways.is_empty(), "BENCH_GATEWAY_URLS names no gateway");
    let alice = log_in(&gateways[0], "alice@example.com", DEMO_PASSWORD).await?;
    let bob = log_in(&gateways[0], "bob@example.com", DEMO_PASSWORD).await?;
    let order_id = first_order(&alice, &gateways[0]).await?;
    let gateways = Arc::new(gateways);
    let at = |gateways: &Arc<Vec<String>>, i: u64| gateways[i as usize % gateways.len()].clone();

    let (h, g) = (alice.http.clone(), gateways.clone());
    let read = drive_measuring_cpu("gateway GraphQL order(id), cached", 32, seconds, move |i| {
        let (h, u, id) = (h.clone(), at(&g, i), order_id.clone());
        async move {
            graphql(&h, &u, ORDER_QUERY, json!({"id": id}))
                .await
                .is_some()
        }
    })
    .await;
    let (h, g) = (bob.http.clone(), gateways.clone());
    let create = drive_measuring_cpu("gateway GraphQL createOrder, end to end", 16, seconds, move |i| {
        let (h, u) = (h.clone(), at(&g, i));
        async move {
            let vars = json!({"i": {"userId": "2", "productId": (i % 100_000 + 1).to_string(), "quantity": 1}});
            graphql(&h, &u, "mutation($i: CreateOrderInput!) { createOrder(input: $i) { id } }", vars)
                .await
                .is_some()
        }
    })
    .await;
    let report = json!({"replicas": gateways.len(), "http": [read, create]});
    std::fs::write(out, serde_json::to_string_pretty(&report)?)?;
    Ok(())
}

/// `loadgen scale-report RUN...`: compares the runs of `loadgen scale` (one per replica
/// count), prints throughput per replica count and its ratio to the first run, and writes the
/// comparison to `out`.
fn scale_report(runs: &[String], out: &str) -> anyhow::Result<()> {
    let runs: Vec<Value> = runs
        .iter()
        .map(|f| Ok(serde_json::from_str(&std::fs::read_to_string(f)?)?))
        .collect::<anyhow::Result<_>>()?;
    let first = runs.first().ok_or_else(|| anyhow::anyhow!("no runs"))?;
    println!(
        "\n{:<44} {:>8} {:>10} {:>8} {:>9} {:>9} {:>9}",
        "scale: scenario", "replicas", "req/s", "x 1st", "p50 ms", "p99 ms", "CPU busy"
    );
    let mut rows = Vec::new();
    for (s, base) in first["http"].as_array().into_iter().flatten().enumerate() {
        let base_rps = base["throughput_rps"]
            .as_f64()
            .unwrap_or(0.0)
            .max(f64::MIN_POSITIVE);
        for run in &runs {
            let row = &run["http"][s];
            let rps = row["throughput_rps"].as_f64().unwrap_or(0.0);
            let replicas = run["replicas"].as_u64().unwrap_or(0);
            println!(
                "{:<44} {:>8} {:>10.0} {:>8.2} {:>9.2} {:>9.2} {:>8.0}%",
                row["scenario"].as_str().unwrap_or(""),
                replicas,
                rps,
                rps / base_rps,
                row["p50_ms"].as_f64().unwrap_or(0.0),
                row["p99_ms"].as_f64().unwrap_or(0.0),
                row["cpu_busy"].as_f64().unwrap_or(0.0) * 100.0
            );
            let mut row = row.clone();
            row["replicas"] = json!(replicas);
            row["throughput_vs_first"] = json!(rps / base_rps);
            rows.push(row);
        }
    }
    std::fs::write(out, serde_json::to_string_pretty(&rows)?)?;
    Ok(())
}

/// The password of the demo accounts (seeded when `DEMO_SEED` is on, as the bench runs).
const DEMO_PASSWORD: &str = "shopmesh-demo";

#[poem::handler]
fn bare_json() -> poem::web::Json<Value> {
    poem::web::Json(json!({ "id": 1, "status": "pending", "quantity": 1 }))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("serve-baseline") {
        let port = args.get(1).map(String::as_str).unwrap_or("3199");
        let app = poem::Route::new()
            .at("/json", poem::get(bare_json))
            .at("/health/ready", poem::get(bare_json));
        poem::Server::new(poem::listener::TcpListener::bind(format!(
            "127.0.0.1:{port}"
        )))
        .run(app)
        .await?;
        return Ok(());
    }
    let get = |k: &str| {
        std::env::var(k)
            .map_err(|_| anyhow::anyhow!("{k} is not set (run through `cargo xtask bench`)"))
    };
    let seconds = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    match args.first().map(String::as_str) {
        Some("scale") => {
            let gateways = get("BENCH_GATEWAY_URLS")?
                .split(',')
                .map(str::to_owned)
                .collect();
            return scale_run(gateways, &get("BENCH_OUTPUT")?, seconds).await;
        }
        Some("scale-report") => return scale_report(&args[1..], &get("BENCH_OUTPUT")?),
        Some("report") => {
            let file = args.get(1).ok_or_else(|| anyhow::anyhow!("report FILE"))?;
            return report::write(std::path::Path::new(file));
        }
        _ => {}
    }
    let number = |k: &str, default: u64| -> anyhow::Result<u64> {
        std::env::var(k)
            .ok()
            .map(|v| v.parse().map_err(|e| anyhow::anyhow!("{k}: {e}")))
            .unwrap_or(Ok(default))
    };
    let stores = limits::Stores {
        redis_benchmark: get("BENCH_REDIS_BENCHMARK")?,
        redis: get("BENCH_REDIS_TARGET")?,
        orders_db: get("BENCH_ORDERS_DB")?,
        mongo_url: get("BENCH_MONGO_URL")?,
        mongo_db: get("BENCH_MONGO_DB")?,
    };
    if args.first().map(String::as_str) == Some("reset") {
        let databases: Vec<String> = get("BENCH_DATABASES")?.lines().map(str::to_owned).collect();
        return seed::reset(&stores, &databases).await;
    }
    let targets = suite::Targets {
        baseline: get("BENCH_BASELINE_URL")?,
        gateway: get("BENCH_GATEWAY_URL")?,
        users: get("BENCH_USERS_URL")?,
        orders: get("BENCH_ORDERS_URL")?,
        grpc: get("BENCH_GRPC_URL")?,
        redis_proxy: (get("BENCH_REDIS_PROXY")?, get("BENCH_REDIS_TARGET")?),
        stores,
        catalog: catalog::CatalogTargets {
            catalog: get("BENCH_CATALOG_URL")?,
            catalog_db: get("BENCH_CATALOG_DB")?,
            users: get("BENCH_USERS_URL")?,
            orders_client_secret: get("BENCH_ORDERS_CLIENT_SECRET")?,
        },
        wrk: wrk::Wrk::new(
            get("BENCH_WRK")?,
            std::path::Path::new(&get("BENCH_SCRATCH")?),
        )?,
        runs: number("BENCH_RUNS", 3)? as usize,
        seconds,
        data_size: number("BENCH_DATA_SIZE", 1_000_000)?,
        gateway_pid: std::env::var("BENCH_GATEWAY_PID")
            .ok()
            .and_then(|p| p.parse().ok()),
    };
    // Ten thousand subscribers are ten thousand sockets: take the hard limit on open files.
    shopmesh_common::http::descriptor_limit();
    suite::run(targets, &get("BENCH_OUTPUT")?).await
}
