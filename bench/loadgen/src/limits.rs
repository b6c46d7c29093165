//! What the machine's stores can do without the services in front of them, measured in the
//! same run as the scenarios so that each scenario's ratio to its limit compares like with
//! like: Redis GETs (`redis-benchmark`), the order + outbox transaction the orders service
//! commits per order (the service's own `OrderStore::create`, on a scratch database), and the
//! MongoDB query behind `GetNotifications` (the driver, directly).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use mongodb::bson::{Document, doc};
use shopmesh_common::cache::RedisCache;
use shopmesh_common::near_cache::ChangeChannel;
use shopmesh_orders::store::{MIGRATOR, NewOrder, OrderChanges, OrderStore};

use crate::wrk::Measured;

/// Where the stores are.
#[derive(Debug, Clone)]
pub struct Stores {
    /// `redis-benchmark`.
    pub redis_benchmark: String,
    /// Redis as `host:port`.
    pub redis: String,
    /// The orders service's database.
    pub orders_db: String,
    /// MongoDB URL.
    pub mongo_url: String,
    /// The notifications database.
    pub mongo_db: String,
}

/// Runs `call` from `concurrency` tasks for `duration` and reports throughput and latency.
pub async fn closed_loop<F, Fut>(concurrency: usize, duration: Duration, call: F) -> Measured
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let outcome = crate::drive(
        "limit",
        concurrency,
        Duration::from_millis(500),
        duration,
        None,
        call,
    )
    .await;
    outcome.measured()
}

/// Redis GET requests per second from `redis-benchmark` with `connections` clients.
pub async fn redis_get(stores: &Stores, connections: usize) -> anyhow::Result<Measured> {
    let (host, port) = stores
        .redis
        .rsplit_once(':')
        .context("Redis address is host:port")?;
    let started = Instant::now();
    let out = tokio::process::Command::new(&stores.redis_benchmark)
        .args([
            "-h", host, "-p", port, "-t", "get", "-n", "300000", "-q", "--csv",
        ])
        .arg("-c")
        .arg(connections.to_string())
        .output()
        .await
        .context("running redis-benchmark")?;
    let seconds = started.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&out.stdout);
    // "GET","<rps>","<avg ms>","<min>","<p50>","<p95>","<p99>","<max>"
    let fields: Vec<f64> = text
        .lines()
        .find(|l| l.starts_with("\"GET\""))
        .with_context(|| format!("redis-benchmark printed no GET line: {text}"))?
        .split(',')
        .skip(1)
        .filter_map(|f| f.trim_matches('"').parse().ok())
        .collect();
    let rps = *fields.first().context("no rate")?;
    Ok(Measured {
        requests: 300_000,
        errors: 0,
        seconds,
        rps,
        p50_ms: fields.get(3).copied().unwrap_or(0.0),
        p99_ms: fields.get(5).copied().unwrap_or(0.0),
        p999_ms: fields.get(6).copied().unwrap_or(0.0),
    })
}

/// A database next to the orders database, migrated like it, for measuring the raw
/// transaction rate without touching the service's data; dropped by [`ScratchOrders::drop`].
pub struct ScratchOrders {
    store: OrderStore,
    admin: sqlx::MySqlPool,
    name: String,
}

impl ScratchOrders {
    /// Creates and migrates `<orders db>_limit`.
    pub async fn create(stores: &Stores, pool_size: u32) -> anyhow::Result<Self> {
        let mut url = url::Url::parse(&stores.orders_db)?;
        let name = format!("{}_limit", url.path().trim_start_matches('/'));
        url.set_path("/");
        let admin = sqlx::MySqlPool::connect(url.as_str()).await?;
        sqlx::query(&format!("DROP DATABASE IF EXISTS `{name}`"))
            .execute(&admin)
            .await?;
        sqlx::query(&format!("CREATE DATABASE `{name}`"))
            .execute(&admin)
            .await?;
        url.set_path(&format!("/{name}"));
        // Creating orders announces nothing; the changes channel is named for this scratch.
        let changes = OrderChanges::new(
            RedisCache::new(
                &format!("redis://{}/", stores.redis),
                Duration::from_secs(1),
            )?,
            ChangeChannel::new(format!("{name}.order.changed")),
            format!("{name}:"),
            Duration::from_secs(1),
        );
        let store =
            OrderStore::connect_lazy(url.as_str(), pool_size, Duration::from_secs(10), changes)?;
        MIGRATOR.run(store.pool()).await?;
        Ok(Self { store, admin, name })
    }

    /// Order + outbox transactions per second from `concurrency` tasks, each committing the
    /// same transaction `POST /orders` commits.
    pub async fn order_transactions(&self, concurrency: usize, duration: Duration) -> Measured {
        let store = self.store.clone();
        closed_loop(concurrency, duration, move |i| {
            let store = store.clone();
            async move {
                store
                    .create(NewOrder {
                        user_id: 3,
                        product_id: (i % 100_000 + 1) as i64,
                        quantity: 1,
                    })
                    .await
                    .is_ok()
            }
        })
        .await
    }

    /// Drops the scratch database.
    pub async fn drop(self) -> anyhow::Result<()> {
        self.store.pool().close().await;
        sqlx::query(&format!("DROP DATABASE IF EXISTS `{}`", self.name))
            .execute(&self.admin)
            .await?;
        Ok(())
    }
}

/// The notifications collection, through the driver.
pub async fn notifications(stores: &Stores) -> anyhow::Result<mongodb::Collection<Document>> {
    let client = mongodb::Client::with_uri_str(&stores.mongo_url).await?;
    Ok(client
        .database(&stores.mongo_db)
        .collection::<Document>("notifications"))
}

/// `GetNotifications`' query (an order's notifications, newest first) per second from
/// `concurrency` tasks, straight to MongoDB.
pub async fn notifications_by_order(
    stores: &Stores,
    order_id: i64,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<Measured> {
    let collection = notifications(stores).await?;
    let found = Arc::new(AtomicU64::new(0));
    let counted = found.clone();
    let measured = closed_loop(concurrency, duration, move |_| {
        let (collection, found) = (collection.clone(), counted.clone());
        async move {
            let Ok(mut cursor) = collection
                .find(doc! {"orderId": order_id})
                .sort(doc! {"createdAt": -1, "_id": -1})
                .await
            else {
                return false;
            };
            let mut n = 0;
            while cursor.advance().await.unwrap_or(false) {
                n += 1;
            }
            found.store(n, Ordering::Relaxed);
            true
        }
    })
    .await;
    anyhow::ensure!(
        found.load(Ordering::Relaxed) > 0,
        "order {order_id} has no notification to query"
    );
    Ok(measured)
}

/// Waits until every order in the orders database has its notification (the pipeline has
/// drained), for at most `within`. Returns how long it waited and whether it drained.
pub async fn drained(stores: &Stores, within: Duration) -> anyhow::Result<(Duration, bool)> {
    let started = Instant::now();
    let pool = sqlx::MySqlPool::connect(&stores.orders_db).await?;
    let collection = notifications(stores).await?;
    loop {
        let orders: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders")
            .fetch_one(&pool)
            .await?;
        let stored = collection.estimated_document_count().await? as i64;
        if stored >= orders {
            return Ok((started.elapsed(), true));
        }
        if started.elapsed() > within {
            return Ok((started.elapsed(), false));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
