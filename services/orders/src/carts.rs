//! Carts in MySQL: one row per product a user is about to buy, kept until checkout or until
//! they empty it. Prices and availability are not kept here: they are read from the catalog
//! when a cart is shown, and again at checkout.

use chrono::{DateTime, NaiveDateTime, Utc};
use shopmesh_common::db::retry_conflicts;
use sqlx::MySqlPool;

use crate::error::{CONFLICTS_RETRIED, OrdersError};

/// The most lines a cart holds.
pub const MAX_CART_LINES: i64 = 100;

/// A product in a cart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CartLineRecord {
    /// The product.
    pub product_id: i64,
    /// How many.
    pub quantity: i32,
    /// When it was first put in.
    pub added_at: DateTime<Utc>,
}

/// Carts in the orders database.
#[derive(Clone)]
pub struct CartStore {
    pool: MySqlPool,
}

impl CartStore {
    /// Carts in `pool`'s database.
    pub fn new(pool: MySqlPool) -> Self {
        Self { pool }
    }

    /// `user_id`'s lines, in the order they were added.
    pub async fn lines(&self, user_id: i64) -> Result<Vec<CartLineRecord>, OrdersError> {
        let rows: Vec<(i64, i32, NaiveDateTime)> = sqlx::query_as(
            "SELECT product_id, quantity, added_at FROM cart_lines WHERE user_id = ? \
             ORDER BY added_at, product_id",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(product_id, quantity, added_at)| CartLineRecord {
                product_id,
                quantity,
                added_at: added_at.and_utc(),
            })
            .collect())
    }

    /// Sets how many of `product_id` the cart holds: a new line, unless the cart is full, or
    /// the line's new quantity. The first line of an empty cart locks the gap beside other
    /// users' rows, so two users adding at once can deadlock: the loser is tried again.
    pub async fn set(
        &self,
        user_id: i64,
        product_id: i64,
        quantity: i32,
    ) -> Result<(), OrdersError> {
        retry_conflicts(CONFLICTS_RETRIED, OrdersError::database, || {
            self.try_set(user_id, product_id, quantity)
        })
        .await
    }

    async fn try_set(
        &self,
        user_id: i64,
        product_id: i64,
        quantity: i32,
    ) -> Result<(), OrdersError> {
        let mut tx = self.pool.begin().await?;
        let held: Option<i32> = sqlx::query_scalar(
            "SELECT quantity FROM cart_lines WHERE user_id = ? AND product_id = ? FOR UPDATE",
        )
        .bind(user_id)
        .bind(product_id)
        .fetch_optional(&mut *tx)
        .await?;
        if held.is_none() {
            let lines: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM cart_lines WHERE user_id = ? FOR UPDATE")
                    .bind(user_id)
                    .fetch_one(&mut *tx)
                    .await?;
            if lines >= MAX_CART_LINES {
                return Err(OrdersError::CartFull(user_id));
            }
        }
        sqlx::query(
            "INSERT INTO cart_lines (user_id, product_id, quantity, added_at) VALUES (?, ?, ?, ?) \
             ON DUPLICATE KEY UPDATE quantity = ?",
        )
        .bind(user_id)
        .bind(product_id)
        .bind(quantity)
        .bind(Utc::now().naive_utc())
        .bind(quantity)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Takes `product_id` out of the cart (nothing when it is not there).
    pub async fn remove(&self, user_id: i64, product_id: i64) -> Result<(), OrdersError> {
        sqlx::query("DELETE FROM cart_lines WHERE user_id = ? AND product_id = ?")
            .bind(user_id)
            .bind(product_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Empties the cart.
    pub async fn clear(&self, user_id: i64) -> Result<(), OrdersError> {
        sqlx::query("DELETE FROM cart_lines WHERE user_id = ?")
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
