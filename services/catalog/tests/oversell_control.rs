//! The never-oversell checker's negative control: the same workload through a reservation
//! path that reads the stock, checks it in Rust, then writes it back (the way eShop checks
//! stock) must be reported as overselling. A checker that cannot fail proves nothing.

mod checker;
mod helpers;

use std::sync::Arc;
use std::time::Duration;

use checker::{Outcome, Products, Reservations};
use helpers::Harness;
use sqlx::MySqlPool;

/// Read, check, then write: compiled only for this test.
struct ReadCheckWrite {
    pool: MySqlPool,
}

#[async_trait::async_trait]
impl Reservations for ReadCheckWrite {
    async fn reserve(&self, order: i64, lines: &[(i64, i32)]) -> Outcome {
        let Ok(mut tx) = self.pool.begin().await else {
            return Outcome::Unknown;
        };
        let head = sqlx::query("INSERT INTO reservations (order_id, status, expires_at) VALUES (?, 'reserved', UTC_TIMESTAMP(6) + INTERVAL 1 SECOND)")
            .bind(order)
            .execute(&mut *tx)
            .await;
        if head.is_err() {
            return Outcome::Refused;
        }
        for &(product, quantity) in lines {
            let row: Result<(i64, i64), _> =
                sqlx::query_as("SELECT on_hand, reserved FROM products WHERE id = ?")
                    .bind(product)
                    .fetch_one(&mut *tx)
                    .await;
            let Ok((on_hand, reserved)) = row else {
                return Outcome::Unknown;
            };
            if on_hand - reserved < i64::from(quantity) {
                return Outcome::Refused;
            }
            let wrote = sqlx::query("UPDATE products SET reserved = ? WHERE id = ?")
                .bind(reserved + i64::from(quantity))
                .bind(product)
                .execute(&mut *tx)
                .await;
            let line = sqlx::query("INSERT INTO reservation_lines (order_id, product_id, quantity) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE quantity = quantity + VALUES(quantity)")
                .bind(order)
                .bind(product)
                .bind(quantity)
                .execute(&mut *tx)
                .await;
            if wrote.is_err() || line.is_err() {
                return Outcome::Unknown;
            }
        }
        match tx.commit().await {
            Ok(()) => Outcome::Done,
            Err(_) => Outcome::Unknown,
        }
    }

    async fn commit(&self, order: i64) -> Outcome {
        self.settle(order, "committed").await
    }

    async fn release(&self, order: i64) -> Outcome {
        self.settle(order, "released").await
    }

    /// Adjustments stay atomic here: only the reservation path is unsafe.
    async fn adjust(&self, product: i64, delta: i32) -> Outcome {
        let Ok(mut tx) = self.pool.begin().await else {
            return Outcome::Unknown;
        };
        let changed = sqlx::query(
            "UPDATE products SET on_hand = on_hand + ? WHERE id = ? AND on_hand + ? >= reserved",
        )
        .bind(delta)
        .bind(product)
        .bind(delta)
        .execute(&mut *tx)
        .await;
        if !changed.is_ok_and(|c| c.rows_affected() == 1) {
            return Outcome::Refused;
        }
        let logged = sqlx::query("INSERT INTO stock_ledger (product_id, delta, kind, reason) VALUES (?, ?, 'adjustment', 'control')")
            .bind(product)
            .bind(delta)
            .execute(&mut *tx)
            .await;
        match (logged, tx.commit().await) {
            (Ok(_), Ok(())) => Outcome::Done,
            _ => Outcome::Unknown,
        }
    }
}

impl ReadCheckWrite {
    async fn settle(&self, order: i64, to: &str) -> Outcome {
        let Ok(mut tx) = self.pool.begin().await else {
            return Outcome::Unknown;
        };
        let moved = sqlx::query(
            "UPDATE reservations SET status = ? WHERE order_id = ? AND status = 'reserved'",
        )
        .bind(to)
        .bind(order)
        .execute(&mut *tx)
        .await;
        if !moved.is_ok_and(|m| m.rows_affected() == 1) {
            return Outcome::Refused;
        }
        let lines: Vec<(i64, i64)> =
            sqlx::query_as("SELECT product_id, quantity FROM reservation_lines WHERE order_id = ?")
                .bind(order)
                .fetch_all(&mut *tx)
                .await
                .unwrap_or_default();
        for (product, q) in lines {
            // GREATEST keeps the CHECK constraints quiet: the counter may already be short.
            let updated = if to == "committed" {
                sqlx::query("UPDATE products SET reserved = GREATEST(reserved - ?, 0), on_hand = on_hand - ?, sold = sold + ? WHERE id = ?")
                    .bind(q)
                    .bind(q)
                    .bind(q)
                    .bind(product)
                    .execute(&mut *tx)
                    .await
            } else {
                sqlx::query("UPDATE products SET reserved = GREATEST(reserved - ?, 0) WHERE id = ?")
                    .bind(q)
                    .bind(product)
                    .execute(&mut *tx)
                    .await
            };
            if updated.is_err() {
                return Outcome::Unknown;
            }
            if to == "committed" {
                let _ = sqlx::query("INSERT INTO stock_ledger (product_id, delta, kind, reason, order_id) VALUES (?, ?, 'sale', 'control', ?)")
                    .bind(product)
                    .bind(-q)
                    .bind(order)
                    .execute(&mut *tx)
                    .await;
            }
        }
        match tx.commit().await {
            Ok(()) => Outcome::Done,
            Err(_) => Outcome::Unknown,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_checker_reports_a_read_check_write_reservation_path_as_overselling() {
    let h = Harness::start().await;
    let mut products = Products {
        hot: Vec::new(),
        cold: Vec::new(),
    };
    for i in 0..105 {
        let p = h.product(100, "EUR", if i < 5 { 10 } else { 3 }).await;
        if i < 5 {
            products.hot.push(p.id)
        } else {
            products.cold.push(p.id)
        }
    }
    let unsafe_path = Arc::new(ReadCheckWrite {
        pool: h.store().pool().clone(),
    });
    let history = checker::run(
        unsafe_path,
        h.store().pool().clone(),
        &products,
        32,
        Duration::from_secs(6),
    )
    .await;
    let found = checker::violations(h.store().pool(), &history).await;
    println!(
        "negative control: {}; {} violations, e.g. {:?}",
        checker::report(&history),
        found.len(),
        found.first()
    );
    assert!(
        !found.is_empty(),
        "the checker found nothing wrong with read-check-write: it cannot fail"
    );
    h.stop().await;
}
