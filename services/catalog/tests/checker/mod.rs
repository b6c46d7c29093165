//! A Jepsen-bank-style check that stock is never oversold: many clients reserve, commit and
//! release (and let reservations expire) at random on a few hot and many cold products, then
//! every product's counters are compared with the ledger and the reservations.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::MySqlPool;

/// What became of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done.
    Done,
    /// Refused (not enough stock, already settled ...).
    Refused,
    /// Unknown: the service or the database was unreachable.
    Unknown,
}

/// A way of reserving stock: the catalog's API, or a deliberately unsafe path.
#[async_trait::async_trait]
pub trait Reservations: Send + Sync {
    async fn reserve(&self, order: i64, lines: &[(i64, i32)]) -> Outcome;
    async fn commit(&self, order: i64) -> Outcome;
    async fn release(&self, order: i64) -> Outcome;
    /// An admin's stock adjustment, recorded in the ledger.
    async fn adjust(&self, product: i64, delta: i32) -> Outcome;
}

/// The products a run works on: a few hot ones with little stock, many cold ones.
pub struct Products {
    pub hot: Vec<i64>,
    pub cold: Vec<i64>,
}

/// What the clients did and saw.
#[derive(Default)]
pub struct History {
    pub calls: BTreeMap<(&'static str, &'static str), u64>,
    pub lowest_available_read: AtomicI64,
    pub reads: AtomicU64,
    pub committed: std::sync::Mutex<Vec<i64>>,
    pub released: std::sync::Mutex<Vec<i64>>,
}

fn outcome_name(o: Outcome) -> &'static str {
    match o {
        Outcome::Done => "done",
        Outcome::Refused => "refused",
        Outcome::Unknown => "unknown",
    }
}

/// `clients` clients doing random operations for `length`; every read of availability taken
/// on `pool` is recorded.
pub async fn run(
    reservations: Arc<dyn Reservations>,
    pool: MySqlPool,
    products: &Products,
    clients: u32,
    length: Duration,
) -> History {
    let history = Arc::new(History {
        lowest_available_read: AtomicI64::new(i64::MAX),
        ..History::default()
    });
    let calls = Arc::new(std::sync::Mutex::new(BTreeMap::new()));
    let (hot, cold) = (
        Arc::new(products.hot.clone()),
        Arc::new(products.cold.clone()),
    );
    let until = Instant::now() + length;
    let mut tasks = Vec::new();
    for client in 0..clients {
        let (r, pool, history, calls) = (
            reservations.clone(),
            pool.clone(),
            history.clone(),
            calls.clone(),
        );
        let (hot, cold) = (hot.clone(), cold.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(u64::from(client));
            let mut live: Vec<i64> = Vec::new();
            let mut next = i64::from(client) * 1_000_000 + 1;
            while Instant::now() < until {
                let roll = rng.u8(0..100);
                let (kind, outcome) = if roll < 45 || live.is_empty() {
                    let order = next;
                    next += 1;
                    let lines: Vec<(i64, i32)> = (0..rng.usize(1..=3))
                        .map(|_| {
                            let pool = if rng.u8(0..100) < 70 { &hot } else { &cold };
                            (pool[rng.usize(0..pool.len())], rng.i32(1..=3))
                        })
                        .collect();
                    let o = r.reserve(order, &lines).await;
                    if o == Outcome::Done {
                        live.push(order);
                    }
                    ("reserve", o)
                } else if roll < 65 {
                    let order = live.swap_remove(rng.usize(0..live.len()));
                    let o = r.commit(order).await;
                    if o == Outcome::Done {
                        history.committed.lock().unwrap().push(order);
                    }
                    ("commit", o)
                } else if roll < 80 {
                    let order = live.swap_remove(rng.usize(0..live.len()));
                    let o = r.release(order).await;
                    if o == Outcome::Done {
                        history.released.lock().unwrap().push(order);
                    }
                    ("release", o)
                } else if roll < 90 {
                    // Deliveries and write-offs while orders come in.
                    let pool = if rng.bool() { &hot } else { &cold };
                    let product = pool[rng.usize(0..pool.len())];
                    ("adjust", r.adjust(product, rng.i32(-1..=3)).await)
                } else {
                    // Leave one to expire; read what is available meanwhile.
                    live.pop();
                    let rows: Result<Vec<(i64,)>, _> =
                        sqlx::query_as("SELECT CAST(on_hand - reserved AS SIGNED) FROM products")
                            .fetch_all(&pool)
                            .await;
                    let o = match rows {
                        Ok(rows) => {
                            for (available,) in rows {
                                history
                                    .lowest_available_read
                                    .fetch_min(available, Ordering::Relaxed);
                                history.reads.fetch_add(1, Ordering::Relaxed);
                            }
                            Outcome::Done
                        }
                        Err(_) => Outcome::Unknown,
                    };
                    ("read", o)
                };
                *calls
                    .lock()
                    .unwrap()
                    .entry((kind, outcome_name(outcome)))
                    .or_insert(0u64) += 1;
                if outcome == Outcome::Unknown {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut history = Arc::try_unwrap(history).ok().unwrap();
    history.calls = calls.lock().unwrap().clone();
    history
}

/// Every way the stock could disagree with itself, the ledger, the reservations or what the
/// clients saw; empty when nothing was oversold.
pub async fn violations(pool: &MySqlPool, history: &History) -> Vec<String> {
    let mut found = Vec::new();
    // One snapshot for every read: the catalog's sweeper may still be expiring reservations,
    // and counters read a moment apart would disagree without anything being wrong.
    let mut snapshot = pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM products LIMIT 1")
        .execute(&mut *snapshot)
        .await
        .unwrap();
    let products: Vec<(i64, i64, i64, i64)> =
        sqlx::query_as("SELECT id, on_hand, reserved, sold FROM products ORDER BY id")
            .fetch_all(&mut *snapshot)
            .await
            .unwrap();
    let mut sums = Vec::new();
    for sql in [
        "SELECT product_id, CAST(SUM(delta) AS SIGNED) FROM stock_ledger WHERE kind = 'adjustment' GROUP BY product_id",
        "SELECT product_id, CAST(SUM(delta) AS SIGNED) FROM stock_ledger WHERE kind = 'adjustment' AND delta > 0 GROUP BY product_id",
        "SELECT product_id, CAST(-SUM(delta) AS SIGNED) FROM stock_ledger WHERE kind IN ('sale', 'return') GROUP BY product_id",
        "SELECT l.product_id, CAST(SUM(l.quantity) AS SIGNED) FROM reservation_lines l JOIN reservations r USING (order_id) WHERE r.status = 'reserved' GROUP BY l.product_id",
        "SELECT l.product_id, CAST(SUM(l.quantity) AS SIGNED) FROM reservation_lines l JOIN reservations r USING (order_id) WHERE r.status = 'committed' GROUP BY l.product_id",
    ] {
        let rows: Vec<(i64, i64)> = sqlx::query_as(sql).fetch_all(&mut *snapshot).await.unwrap();
        sums.push(rows.into_iter().collect::<BTreeMap<i64, i64>>());
    }
    let [adjusted, added, sold_ledger, held, sold_lines] = &sums[..] else {
        unreachable!("five sums")
    };
    for (id, on_hand, reserved, sold) in products {
        let get = |m: &BTreeMap<i64, i64>| m.get(&id).copied().unwrap_or(0);
        if on_hand + sold != get(adjusted) {
            found.push(format!(
                "product {id}: on hand {on_hand} + sold {sold} != stock put in {}",
                get(adjusted)
            ));
        }
        if reserved != get(held) {
            found.push(format!(
                "product {id}: reserved {reserved} != units in live reservations {}",
                get(held)
            ));
        }
        if sold != get(sold_lines) || sold != get(sold_ledger) {
            found.push(format!(
                "product {id}: sold {sold}, committed lines {}, ledger sales {}",
                get(sold_lines),
                get(sold_ledger)
            ));
        }
        if on_hand - reserved < 0 {
            found.push(format!(
                "product {id}: available {} < 0",
                on_hand - reserved
            ));
        }
        if sold > get(added) {
            found.push(format!(
                "product {id}: {sold} sold of {} ever on hand",
                get(added)
            ));
        }
    }
    let lowest = history.lowest_available_read.load(Ordering::Relaxed);
    if lowest < 0 {
        found.push(format!("a read during the run saw {lowest} available"));
    }
    let orphans: Vec<(i64,)> = sqlx::query_as(
        "SELECT DISTINCT l.order_id FROM reservation_lines l LEFT JOIN reservations r USING (order_id) WHERE r.order_id IS NULL",
    )
    .fetch_all(&mut *snapshot)
    .await
    .unwrap();
    if !orphans.is_empty() {
        found.push(format!(
            "{} reservation lines without a reservation",
            orphans.len()
        ));
    }
    let status_of = |order: i64| async move {
        sqlx::query_as::<_, (String,)>("SELECT status FROM reservations WHERE order_id = ?")
            .bind(order)
            .fetch_optional(pool)
            .await
            .unwrap()
            .map(|(s,)| s)
    };
    let committed = history.committed.lock().unwrap().clone();
    for order in committed {
        let status = status_of(order).await;
        if status.as_deref() != Some("committed") {
            found.push(format!("order {order} was committed, now {status:?}"));
        }
    }
    let released = history.released.lock().unwrap().clone();
    for order in released {
        let status = status_of(order).await;
        if !matches!(status.as_deref(), Some("released" | "expired")) {
            found.push(format!("order {order} was released, now {status:?}"));
        }
    }
    found
}

/// One line per kind of call and outcome.
pub fn report(history: &History) -> String {
    let total: u64 = history.calls.values().sum();
    let mut text = format!(
        "{total} operations, {} availability reads",
        history.reads.load(Ordering::Relaxed)
    );
    for ((kind, outcome), n) in &history.calls {
        text.push_str(&format!("; {kind} {outcome} {n}"));
    }
    text
}
