//! MySQL storage of products, the stock ledger and reservations.
//!
//! Stock changes are single conditional `UPDATE`s on the product row (`... WHERE on_hand -
//! reserved >= ?`, checking rows affected), never a read, a check in Rust and a write: under
//! REPEATABLE READ a read-check-write loses updates, a conditional update acts on the current
//! row. A reservation's own row is locked (`FOR UPDATE`) while it is committed, released or
//! expired, so those three serialise per order. Transactions that lose a deadlock or a write
//! conflict are retried a bounded number of times.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use futures::future::BoxFuture;
use shopmesh_common::cache::RedisCache;
use shopmesh_common::db::{
    CONFLICT_ATTEMPTS, conflict_pause, is_retryable_conflict, mysql_error_number,
};
use shopmesh_common::idempotency::{HeldKey, IdempotencyKeys};
use shopmesh_common::near_cache::ChangeChannel;
use shopmesh_openapi::catalog::{
    ImportReport, Money, Product, ProductInput, Reservation, ReservationLine, ReservationStatus,
    Stock,
};
use sqlx::{MySql, MySqlPool, Transaction};

use crate::domain::{self, Cursor};
use crate::error::CatalogError;

/// Migrations in `services/catalog/migrations`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

const PRODUCT_COLUMNS: &str = "id, sku, name, description, price_minor, currency, active, \
     image_url, on_hand, reserved, sold, created_at, updated_at";

type ProductRow = (
    i64,
    String,
    String,
    String,
    i64,
    String,
    bool,
    Option<String>,
    i64,
    i64,
    i64,
    NaiveDateTime,
    NaiveDateTime,
);

/// Product `id` as `tx` sees it.
async fn product_in(tx: &mut Transaction<'_, MySql>, id: i64) -> Result<Product, CatalogError> {
    let sql = format!("SELECT {PRODUCT_COLUMNS} FROM products WHERE id = ?");
    let row = sqlx::query_as::<_, ProductRow>(&sql)
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    row.map(product).ok_or(CatalogError::ProductNotFound(id))
}

fn product(row: ProductRow) -> Product {
    let (id, sku, name, description, amount_minor, currency, active, image_url) =
        (row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7);
    Product {
        id,
        sku,
        name,
        description,
        price: Money {
            amount_minor,
            currency,
        },
        active,
        image_url,
        stock: Stock {
            on_hand: row.8,
            reserved: row.9,
            available: row.8 - row.9,
            sold: row.10,
        },
        created_at: row.11.and_utc(),
        updated_at: row.12.and_utc(),
    }
}

/// How a product is looked up.
#[derive(Debug, Clone, Copy)]
enum ProductKey<'a> {
    Id(i64),
    Sku(&'a str),
}

impl ProductKey<'_> {
    fn column(self) -> &'static str {
        match self {
            Self::Id(_) => "id",
            Self::Sku(_) => "sku",
        }
    }
}

/// The catalog's data in MySQL.
#[derive(Clone)]
pub struct CatalogStore {
    pool: MySqlPool,
    reservation_ttl: Duration,
    retried: Arc<AtomicU64>,
    changes: Option<(RedisCache, ChangeChannel)>,
}

/// What an announcement names: one product, or every product (an import).
const EVERY_PRODUCT: &str = "*";

impl CatalogStore {
    /// A store whose pool connects on first use; reservations made through it expire after
    /// `reservation_ttl`.
    pub fn connect_lazy(
        url: &str,
        size: u32,
        acquire_timeout: Duration,
        reservation_ttl: Duration,
    ) -> Result<Self, sqlx::Error> {
        Ok(Self {
            pool: shopmesh_common::db::lazy_pool(url, size, acquire_timeout)?,
            reservation_ttl,
            retried: Arc::default(),
            changes: None,
        })
    }

    /// Announces every committed change of a product on `channel`, before the write is
    /// acknowledged, so gateways drop what they hold of it (see
    /// [`shopmesh_common::near_cache`]).
    pub fn announcing(mut self, redis: RedisCache, channel: ChangeChannel) -> Self {
        self.changes = Some((redis, channel));
        self
    }

    async fn announce(&self, products: Vec<String>) {
        if let Some((redis, channel)) = &self.changes {
            for product in products {
                if !channel.announce(redis, &product).await {
                    tracing::warn!(
                        product,
                        "a product change was not announced; gateways stop serving products from memory until they hear the channel"
                    );
                }
            }
        }
    }

    async fn announce_lines(&self, lines: &[(i64, i64)]) {
        let products = lines
            .iter()
            .map(|(product, _)| product.to_string())
            .collect();
        self.announce(products).await;
    }

    /// The pool (migrations and tests use it).
    pub fn pool(&self) -> &MySqlPool {
        &self.pool
    }

    /// Checks the database answers.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        shopmesh_common::db::ping(&self.pool).await
    }

    /// Transactions tried again after a deadlock or write conflict, since start.
    pub fn conflicts_retried(&self) -> u64 {
        self.retried.load(Ordering::Relaxed)
    }

    /// Runs `work` in a transaction, again (up to [`CONFLICT_ATTEMPTS`] times) when the database
    /// chose it as a deadlock victim or refused it for a write conflict.
    async fn transaction<T, F>(&self, work: F) -> Result<T, CatalogError>
    where
        F: for<'t> AsyncTxFn<'t, T>,
    {
        let mut attempt = 1;
        loop {
            let mut tx = self.pool.begin().await?;
            let result = match work.call(&mut tx).await {
                Ok(value) => tx
                    .commit()
                    .await
                    .map(|()| value)
                    .map_err(CatalogError::from),
                Err(e) => Err(e),
            };
            match result {
                Err(CatalogError::Unavailable(e))
                    if is_retryable_conflict(&e) && attempt < CONFLICT_ATTEMPTS =>
                {
                    attempt += 1;
                    self.retried.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("catalog_conflicts_retried_total").increment(1);
                    conflict_pause(attempt).await;
                }
                other => return other,
            }
        }
    }

    /// Stores a new product with no stock, answering `key` with it.
    pub async fn create(
        &self,
        input: &ProductInput,
        key: Option<&HeldKey>,
    ) -> Result<Product, CatalogError> {
        check_currency(&input.price.currency)?;
        let mut tx = self.pool.begin().await?;
        let insert = sqlx::query(
            "INSERT INTO products (sku, name, description, price_minor, currency, active, image_url) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        );
        let inserted = with_product(insert, input)
            .execute(&mut *tx)
            .await
            .map_err(|e| sku_taken(e, &input.sku))?;
        let id = i64::try_from(inserted.last_insert_id())
            .map_err(|e| CatalogError::Internal(e.to_string()))?;
        let created = product_in(&mut tx, id).await?;
        if let Some(held) = key {
            IdempotencyKeys::answer(&mut tx, held, &created).await?;
        }
        tx.commit().await?;
        self.announce(vec![id.to_string()]).await;
        Ok(created)
    }

    /// Changes a product's description and price; stock is untouched.
    pub async fn update(&self, id: i64, input: &ProductInput) -> Result<Product, CatalogError> {
        check_currency(&input.price.currency)?;
        let update = sqlx::query(
            "UPDATE products SET sku = ?, name = ?, description = ?, price_minor = ?, currency = ?, \
             active = ?, image_url = ?, updated_at = CURRENT_TIMESTAMP(6) WHERE id = ?",
        );
        let updated = with_product(update, input)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(|e| sku_taken(e, &input.sku))?;
        // MySQL counts changed rows only: 0 is also an update to the same values, so the
        // product is read either way (a 404 when it does not exist).
        if updated.rows_affected() > 0 {
            self.announce(vec![id.to_string()]).await;
        }
        self.get(id).await
    }

    /// Creates or updates (by SKU) every product, in one transaction that answers `key` with
    /// the report of how many were created and how many updated.
    pub async fn import(
        &self,
        products: &[ProductInput],
        key: Option<&HeldKey>,
    ) -> Result<ImportReport, CatalogError> {
        let mut tx = self.pool.begin().await?;
        let (mut created, mut updated) = (0, 0);
        for chunk in products.chunks(500) {
            let marks = vec!["?"; chunk.len()].join(",");
            let count_sql =
                format!("SELECT COUNT(*) FROM products WHERE sku IN ({marks}) FOR UPDATE");
            let mut existing = sqlx::query_scalar::<_, i64>(&count_sql);
            for p in chunk {
                existing = existing.bind(&p.sku);
            }
            let existing = usize::try_from(existing.fetch_one(&mut *tx).await?).unwrap_or(0);
            let rows = vec!["(?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(",");
            let insert_sql = format!(
                "INSERT INTO products (sku, name, description, price_minor, currency, active, image_url) \
                 VALUES {rows} ON DUPLICATE KEY UPDATE name = VALUES(name), \
                 description = VALUES(description), price_minor = VALUES(price_minor), \
                 currency = VALUES(currency), active = VALUES(active), \
                 image_url = VALUES(image_url), updated_at = CURRENT_TIMESTAMP(6)"
            );
            let mut insert = sqlx::query(&insert_sql);
            for p in chunk {
                insert = with_product(insert, p);
            }
            insert.execute(&mut *tx).await?;
            created += chunk.len() - existing;
            updated += existing;
        }
        let report = domain::import_report(created, updated, Vec::new());
        if let Some(held) = key {
            IdempotencyKeys::answer(&mut tx, held, &report).await?;
        }
        tx.commit().await?;
        self.announce(vec![EVERY_PRODUCT.to_owned()]).await;
        Ok(report)
    }

    /// Adds `units` to each listed SKU that has never had stock (no ledger row), so a seed
    /// run again adds nothing.
    pub async fn stock_if_new(
        &self,
        units: &[(String, i32)],
        reason: &str,
    ) -> Result<(), CatalogError> {
        for (sku, delta) in units {
            let product = self.get_by_sku(sku).await?;
            let stocked: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM stock_ledger WHERE product_id = ?)",
            )
            .bind(product.id)
            .fetch_one(&self.pool)
            .await?;
            if !stocked {
                self.adjust(product.id, *delta, reason, None).await?;
            }
        }
        Ok(())
    }

    /// The product with `id`.
    pub async fn get(&self, id: i64) -> Result<Product, CatalogError> {
        self.product_where(ProductKey::Id(id))
            .await?
            .ok_or(CatalogError::ProductNotFound(id))
    }

    /// The product with `sku`.
    pub async fn get_by_sku(&self, sku: &str) -> Result<Product, CatalogError> {
        self.product_where(ProductKey::Sku(sku))
            .await?
            .ok_or_else(|| CatalogError::SkuNotFound(sku.to_owned()))
    }

    async fn product_where(&self, key: ProductKey<'_>) -> Result<Option<Product>, CatalogError> {
        let sql = format!(
            "SELECT {PRODUCT_COLUMNS} FROM products WHERE {} = ?",
            key.column()
        );
        let query = sqlx::query_as::<_, ProductRow>(&sql);
        let query = match key {
            ProductKey::Id(id) => query.bind(id),
            ProductKey::Sku(sku) => query.bind(sku),
        };
        Ok(query.fetch_optional(&self.pool).await?.map(product))
    }

    /// Active products after `after`, by id, matching `query` in name or SKU; with the cursor
    /// of the next page when there is one.
    pub async fn list(
        &self,
        first: i32,
        after: Option<Cursor>,
        query: Option<&str>,
    ) -> Result<(Vec<Product>, Option<Cursor>), CatalogError> {
        let pattern = query.map(|q| {
            let escaped = q
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            format!("%{escaped}%")
        });
        let sql = format!(
            "SELECT {PRODUCT_COLUMNS} FROM products WHERE active AND id > ? \
             AND (? IS NULL OR name LIKE ? OR sku LIKE ?) ORDER BY id LIMIT ?"
        );
        let rows: Vec<ProductRow> = sqlx::query_as(&sql)
            .bind(after.map_or(0, |c| c.0))
            .bind(&pattern)
            .bind(&pattern)
            .bind(&pattern)
            .bind(i64::from(first) + 1)
            .fetch_all(&self.pool)
            .await?;
        let mut items: Vec<Product> = rows.into_iter().map(product).collect();
        let next = if items.len() > first as usize {
            items.truncate(first as usize);
            items.last().map(|p| Cursor(p.id))
        } else {
            None
        };
        Ok((items, next))
    }

    /// Adds `delta` units on hand (negative removes), unless that leaves fewer on hand than
    /// are reserved; records it in the ledger and answers `key` with the stock, in one
    /// transaction.
    pub async fn adjust(
        &self,
        id: i64,
        delta: i32,
        reason: &str,
        key: Option<&HeldKey>,
    ) -> Result<Stock, CatalogError> {
        let reason = reason.to_owned();
        let key = key.cloned();
        let stock = self
            .transaction(Adjust {
                id,
                delta,
                reason,
                key,
            })
            .await?;
        self.announce(vec![id.to_string()]).await;
        Ok(stock)
    }

    /// Reserves every line for `order`, or nothing; the same call again returns the same
    /// reservation.
    pub async fn reserve(
        &self,
        order: i64,
        lines: &[ReservationLine],
    ) -> Result<Reservation, CatalogError> {
        let pairs: Vec<(i64, i32)> = lines.iter().map(|l| (l.product_id, l.quantity)).collect();
        let merged = domain::merged_lines(&pairs);
        let expires_at = Utc::now()
            + chrono::Duration::from_std(self.reservation_ttl)
                .map_err(|e| CatalogError::Internal(e.to_string()))?;
        let outcome = self
            .transaction(Reserve {
                order,
                lines: merged.clone(),
                expires_at,
            })
            .await?;
        let reservation = self.reservation(order).await?;
        if outcome == Reserved::Existing && merged_of(&reservation) != merged {
            return Err(CatalogError::OtherLines(order));
        }
        if outcome == Reserved::New {
            self.announce_lines(&merged).await;
        }
        Ok(reservation)
    }

    /// Ends `order`'s reservation as `to` asks, announces its products, and says how it
    /// ended.
    async fn settle(
        &self,
        order: i64,
        to: ReservationStatus,
    ) -> Result<(ReservationStatus, Reservation), CatalogError> {
        let ended = self.transaction(Settle { order, to }).await?;
        let reservation = self.reservation(order).await?;
        self.announce_lines(&merged_of(&reservation)).await;
        Ok((ended, reservation))
    }

    /// Turns `order`'s reserved units into sold ones.
    pub async fn commit(&self, order: i64) -> Result<Reservation, CatalogError> {
        let (ended, reservation) = self.settle(order, ReservationStatus::Committed).await?;
        if ended != ReservationStatus::Committed {
            return Err(CatalogError::ReservationSettled {
                order,
                status: ended,
                wanted: "committed",
            });
        }
        Ok(reservation)
    }

    /// Puts `order`'s sold units back on hand.
    pub async fn return_sold(&self, order: i64) -> Result<Reservation, CatalogError> {
        let (ended, reservation) = self.settle(order, ReservationStatus::Returned).await?;
        if ended != ReservationStatus::Returned {
            return Err(CatalogError::ReservationSettled {
                order,
                status: ended,
                wanted: "returned",
            });
        }
        Ok(reservation)
    }

    /// Gives `order`'s reserved units back.
    pub async fn release(&self, order: i64) -> Result<Reservation, CatalogError> {
        Ok(self.settle(order, ReservationStatus::Released).await?.1)
    }

    /// Expires up to `limit` reservations past their time; returns how many.
    pub async fn expire_due(&self, limit: u32) -> Result<usize, CatalogError> {
        let due: Vec<(i64,)> = sqlx::query_as(
            "SELECT order_id FROM reservations WHERE status = 'reserved' \
             AND expires_at < UTC_TIMESTAMP(6) ORDER BY expires_at LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut expired = 0;
        for (order,) in due {
            let settled = self.settle(order, ReservationStatus::Expired).await;
            match settled {
                Ok((ReservationStatus::Expired, _)) => expired += 1,
                Ok(_) => {}
                // Committed or released meanwhile: nothing to expire.
                Err(CatalogError::ReservationSettled { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(expired)
    }

    /// `order`'s reservation.
    pub async fn reservation(&self, order: i64) -> Result<Reservation, CatalogError> {
        let head: Option<(String, NaiveDateTime)> =
            sqlx::query_as("SELECT status, expires_at FROM reservations WHERE order_id = ?")
                .bind(order)
                .fetch_optional(&self.pool)
                .await?;
        let (status, expires_at) = head.ok_or(CatalogError::ReservationNotFound(order))?;
        let lines: Vec<(i64, i32)> = sqlx::query_as(
            "SELECT product_id, quantity FROM reservation_lines WHERE order_id = ? ORDER BY product_id",
        )
        .bind(order)
        .fetch_all(&self.pool)
        .await?;
        Ok(Reservation {
            order_id: order,
            status: parse_status(order, &status)?,
            lines: lines
                .into_iter()
                .map(|(product_id, quantity)| ReservationLine {
                    product_id,
                    quantity,
                })
                .collect(),
            expires_at: expires_at.and_utc(),
        })
    }
}

/// A unit of work run inside [`CatalogStore::transaction`], possibly more than once.
trait AsyncTxFn<'t, T>: Send + Sync {
    fn call(
        &self,
        tx: &'t mut Transaction<'static, MySql>,
    ) -> BoxFuture<'t, Result<T, CatalogError>>;
}

struct Adjust {
    id: i64,
    delta: i32,
    reason: String,
    key: Option<HeldKey>,
}

impl<'t> AsyncTxFn<'t, Stock> for Adjust {
    fn call(
        &self,
        tx: &'t mut Transaction<'static, MySql>,
    ) -> BoxFuture<'t, Result<Stock, CatalogError>> {
        let (id, delta, reason, key) = (self.id, self.delta, self.reason.clone(), self.key.clone());
        Box::pin(async move {
            let changed = sqlx::query(
                "UPDATE products SET on_hand = on_hand + ?, updated_at = CURRENT_TIMESTAMP(6) \
                 WHERE id = ? AND on_hand + ? >= reserved",
            )
            .bind(i64::from(delta))
            .bind(id)
            .bind(i64::from(delta))
            .execute(&mut **tx)
            .await?;
            if changed.rows_affected() == 0 {
                let row: Option<(i64, i64)> =
                    sqlx::query_as("SELECT on_hand, reserved FROM products WHERE id = ?")
                        .bind(id)
                        .fetch_optional(&mut **tx)
                        .await?;
                return Err(match row {
                    None => CatalogError::ProductNotFound(id),
                    Some((on_hand, reserved)) => CatalogError::BelowReserved {
                        product: id,
                        on_hand,
                        reserved,
                        delta,
                    },
                });
            }
            ledger(tx, id, i64::from(delta), "adjustment", &reason, None).await?;
            let stock = product_in(tx, id).await?.stock;
            if let Some(held) = &key {
                IdempotencyKeys::answer(tx, held, &stock).await?;
            }
            Ok(stock)
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reserved {
    New,
    Existing,
}

struct Reserve {
    order: i64,
    lines: Vec<(i64, i64)>,
    expires_at: DateTime<Utc>,
}

impl<'t> AsyncTxFn<'t, Reserved> for Reserve {
    fn call(
        &self,
        tx: &'t mut Transaction<'static, MySql>,
    ) -> BoxFuture<'t, Result<Reserved, CatalogError>> {
        let (order, lines, expires_at) = (self.order, self.lines.clone(), self.expires_at);
        Box::pin(async move {
            // The primary key makes a second reservation of the order a no-op: 0 rows. (sqlx
            // connects with CLIENT_FOUND_ROWS, so ON DUPLICATE KEY UPDATE would count the
            // existing row as 1 and a repeat would look new; the property test caught that.)
            let inserted = sqlx::query(
                "INSERT IGNORE INTO reservations (order_id, status, expires_at) VALUES (?, 'reserved', ?)",
            )
            .bind(order)
            .bind(expires_at.naive_utc())
            .execute(&mut **tx)
            .await?;
            if inserted.rows_affected() == 0 {
                return Ok(Reserved::Existing);
            }
            for (product, quantity) in lines {
                let held = sqlx::query(
                    "UPDATE products SET reserved = reserved + ? \
                     WHERE id = ? AND active AND on_hand - reserved >= ?",
                )
                .bind(quantity)
                .bind(product)
                .bind(quantity)
                .execute(&mut **tx)
                .await?;
                if held.rows_affected() == 0 {
                    return Err(why_not_reserved(tx, product, quantity).await);
                }
                sqlx::query(
                    "INSERT INTO reservation_lines (order_id, product_id, quantity) VALUES (?, ?, ?)",
                )
                .bind(order)
                .bind(product)
                .bind(quantity)
                .execute(&mut **tx)
                .await?;
            }
            Ok(Reserved::New)
        })
    }
}

/// Why a conditional reservation update matched no row.
async fn why_not_reserved(
    tx: &mut Transaction<'static, MySql>,
    product: i64,
    asked: i64,
) -> CatalogError {
    let row: Result<Option<(i64, i64, bool)>, _> =
        sqlx::query_as("SELECT on_hand, reserved, active FROM products WHERE id = ?")
            .bind(product)
            .fetch_optional(&mut **tx)
            .await;
    match row {
        Err(e) => e.into(),
        Ok(None) => CatalogError::ProductNotFound(product),
        Ok(Some((_, _, false))) => CatalogError::Inactive(product),
        Ok(Some((on_hand, reserved, true))) => CatalogError::InsufficientStock {
            product,
            available: on_hand - reserved,
            asked,
        },
    }
}

/// Ends a live reservation as committed, released or expired; yields how it ended (a commit
/// past the reservation's time expires it instead).
struct Settle {
    order: i64,
    to: ReservationStatus,
}

impl<'t> AsyncTxFn<'t, ReservationStatus> for Settle {
    fn call(
        &self,
        tx: &'t mut Transaction<'static, MySql>,
    ) -> BoxFuture<'t, Result<ReservationStatus, CatalogError>> {
        let (order, wanted) = (self.order, self.to);
        Box::pin(async move {
            let head: Option<(String, bool)> = sqlx::query_as(
                "SELECT status, expires_at < UTC_TIMESTAMP(6) FROM reservations \
                 WHERE order_id = ? FOR UPDATE",
            )
            .bind(order)
            .fetch_optional(&mut **tx)
            .await?;
            let (status, past_due) = head.ok_or(CatalogError::ReservationNotFound(order))?;
            let status = parse_status(order, &status)?;
            let gave_back =
                |s| matches!(s, ReservationStatus::Released | ReservationStatus::Expired);
            if status == wanted || (gave_back(status) && gave_back(wanted)) {
                return Ok(status);
            }
            // Only sold units can be returned; everything else starts from reserved.
            let starts_from = if wanted == ReservationStatus::Returned {
                ReservationStatus::Committed
            } else {
                ReservationStatus::Reserved
            };
            if status != starts_from {
                return Err(CatalogError::ReservationSettled {
                    order,
                    status,
                    wanted: wanted.as_str(),
                });
            }
            let to = if past_due && wanted == ReservationStatus::Committed {
                ReservationStatus::Expired
            } else {
                wanted
            };
            let lines: Vec<(i64, i64)> = sqlx::query_as(
                "SELECT product_id, quantity FROM reservation_lines WHERE order_id = ? ORDER BY product_id",
            )
            .bind(order)
            .fetch_all(&mut **tx)
            .await?;
            for (product, quantity) in lines {
                if to == ReservationStatus::Returned {
                    sqlx::query(
                        "UPDATE products SET on_hand = on_hand + ?, sold = sold - ? WHERE id = ?",
                    )
                    .bind(quantity)
                    .bind(quantity)
                    .bind(product)
                    .execute(&mut **tx)
                    .await?;
                    ledger(
                        tx,
                        product,
                        quantity,
                        "return",
                        "order cancelled before shipping",
                        Some(order),
                    )
                    .await?;
                } else if to == ReservationStatus::Committed {
                    sqlx::query(
                        "UPDATE products SET reserved = reserved - ?, on_hand = on_hand - ?, \
                         sold = sold + ? WHERE id = ?",
                    )
                    .bind(quantity)
                    .bind(quantity)
                    .bind(quantity)
                    .bind(product)
                    .execute(&mut **tx)
                    .await?;
                    ledger(
                        tx,
                        product,
                        -quantity,
                        "sale",
                        "order committed",
                        Some(order),
                    )
                    .await?;
                } else {
                    sqlx::query("UPDATE products SET reserved = reserved - ? WHERE id = ?")
                        .bind(quantity)
                        .bind(product)
                        .execute(&mut **tx)
                        .await?;
                }
            }
            sqlx::query(
                "UPDATE reservations SET status = ?, updated_at = CURRENT_TIMESTAMP(6) WHERE order_id = ?",
            )
            .bind(to.as_str())
            .bind(order)
            .execute(&mut **tx)
            .await?;
            Ok(to)
        })
    }
}

async fn ledger(
    tx: &mut Transaction<'static, MySql>,
    product: i64,
    delta: i64,
    kind: &str,
    reason: &str,
    order: Option<i64>,
) -> Result<(), CatalogError> {
    sqlx::query(
        "INSERT INTO stock_ledger (product_id, delta, kind, reason, order_id) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(product)
    .bind(delta)
    .bind(kind)
    .bind(reason)
    .bind(order)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn merged_of(reservation: &Reservation) -> Vec<(i64, i64)> {
    reservation
        .lines
        .iter()
        .map(|l| (l.product_id, i64::from(l.quantity)))
        .collect()
}

fn parse_status(order: i64, status: &str) -> Result<ReservationStatus, CatalogError> {
    ReservationStatus::parse(status).ok_or_else(|| {
        CatalogError::Internal(format!("reservation {order} has unknown status {status:?}"))
    })
}

fn check_currency(code: &str) -> Result<(), CatalogError> {
    domain::minor_unit_digits(code)
        .map(|_| ())
        .ok_or_else(|| CatalogError::UnknownCurrency(code.to_owned()))
}

/// `query` with a product's seven columns bound, in the order every statement here lists them:
/// sku, name, description, price_minor, currency, active, image_url.
fn with_product<'q>(
    query: sqlx::query::Query<'q, MySql, sqlx::mysql::MySqlArguments>,
    input: &'q ProductInput,
) -> sqlx::query::Query<'q, MySql, sqlx::mysql::MySqlArguments> {
    query
        .bind(&input.sku)
        .bind(&input.name)
        .bind(input.description.as_deref().unwrap_or_default())
        .bind(input.price.amount_minor)
        .bind(&input.price.currency)
        .bind(input.active.unwrap_or(true))
        .bind(&input.image_url)
}

/// A duplicate key on the SKU as the client's conflict; anything else as it is.
fn sku_taken(e: sqlx::Error, sku: &str) -> CatalogError {
    if mysql_error_number(&e) == Some(1062) {
        CatalogError::SkuTaken(sku.to_owned())
    } else {
        e.into()
    }
}
