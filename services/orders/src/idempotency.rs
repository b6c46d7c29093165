//! Idempotency keys of checkout requests (draft-ietf-httpapi-idempotency-key-header): the
//! first request with a key runs; a repeat with the same body gets the stored response, one
//! with another body a 422, one while the first is still running a 409. A request that fails
//! before placing an order lets its key go, so the client may retry with it.

use std::time::Duration;

use ring::digest::{SHA256, digest};
use shopmesh_openapi::orders::Order;
use sqlx::{MySql, MySqlPool, Transaction};

use crate::error::OrdersError;

/// How long a key is kept.
pub const KEY_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// How long a request with a key may run before a repeat takes its place (its process died).
pub const IN_FLIGHT_LIMIT: Duration = Duration::from_secs(60);

/// A key a request holds while it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldKey {
    /// The user the key belongs to.
    pub user_id: i64,
    /// The client's key.
    pub key: String,
}

/// What the first look at a key says.
#[derive(Debug)]
pub enum KeyUse {
    /// New (or expired, or left by a dead request): the caller runs the request.
    Run(HeldKey),
    /// Seen with the same body, and answered: here is the answer.
    Replay(Box<Order>),
}

/// The keys in MySQL.
#[derive(Clone)]
pub struct IdempotencyKeys {
    pool: MySqlPool,
}

/// The SHA-256 of a request body, hex.
pub fn fingerprint(body: &str) -> String {
    digest(&SHA256, body.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl IdempotencyKeys {
    /// Keys in `pool`'s database.
    pub fn new(pool: MySqlPool) -> Self {
        Self { pool }
    }

    /// Claims `key` for `user_id`'s request with body fingerprint `fingerprint`.
    pub async fn claim(
        &self,
        user_id: i64,
        key: &str,
        fingerprint: &str,
    ) -> Result<KeyUse, OrdersError> {
        let held = HeldKey {
            user_id,
            key: key.to_owned(),
        };
        let inserted = sqlx::query(
            "INSERT IGNORE INTO idempotency_keys (user_id, idem_key, fingerprint, started_at) \
             VALUES (?, ?, ?, UTC_TIMESTAMP(6))",
        )
        .bind(user_id)
        .bind(key)
        .bind(fingerprint)
        .execute(&self.pool)
        .await?;
        if inserted.rows_affected() == 1 {
            return Ok(KeyUse::Run(held));
        }
        let row: Option<(String, Option<String>, bool, bool)> = sqlx::query_as(
            "SELECT fingerprint, response, \
             started_at < DATE_SUB(UTC_TIMESTAMP(6), INTERVAL ? SECOND), \
             started_at < DATE_SUB(UTC_TIMESTAMP(6), INTERVAL ? SECOND) \
             FROM idempotency_keys WHERE user_id = ? AND idem_key = ?",
        )
        .bind(KEY_LIFETIME.as_secs())
        .bind(IN_FLIGHT_LIMIT.as_secs())
        .bind(user_id)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        // Gone between the two statements (let go by a failed request): take it afresh.
        let Some((stored, response, expired, stale)) = row else {
            return Box::pin(self.claim(user_id, key, fingerprint)).await;
        };
        if expired || (response.is_none() && stale) {
            let taken = sqlx::query(
                "UPDATE idempotency_keys SET fingerprint = ?, response = NULL, \
                 started_at = UTC_TIMESTAMP(6) WHERE user_id = ? AND idem_key = ? \
                 AND fingerprint = ? AND response <=> ?",
            )
            .bind(fingerprint)
            .bind(user_id)
            .bind(key)
            .bind(&stored)
            .bind(&response)
            .execute(&self.pool)
            .await?;
            if taken.rows_affected() == 1 {
                return Ok(KeyUse::Run(held));
            }
            return Err(OrdersError::KeyInFlight(key.to_owned()));
        }
        if stored != fingerprint {
            return Err(OrdersError::KeyReused(key.to_owned()));
        }
        match response {
            Some(json) => {
                let order: Order = poem_openapi::types::ParseFromJSON::parse_from_json(Some(
                    serde_json::from_str(&json)
                        .map_err(|e| OrdersError::Internal(format!("stored response: {e}")))?,
                ))
                .map_err(|e| OrdersError::Internal(format!("stored response: {}", e.message())))?;
                Ok(KeyUse::Replay(Box::new(order)))
            }
            None => Err(OrdersError::KeyInFlight(key.to_owned())),
        }
    }

    /// Stores the answer of the request holding `held`, in the transaction that placed its
    /// order.
    pub(crate) async fn answer(
        tx: &mut Transaction<'_, MySql>,
        held: &HeldKey,
        order: &Order,
    ) -> Result<(), sqlx::Error> {
        let json = poem_openapi::types::ToJSON::to_json_string(order);
        sqlx::query("UPDATE idempotency_keys SET response = ? WHERE user_id = ? AND idem_key = ?")
            .bind(json)
            .bind(held.user_id)
            .bind(&held.key)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Lets `held` go: its request failed before placing an order.
    pub async fn release(&self, held: &HeldKey) -> Result<(), sqlx::Error> {
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE user_id = ? AND idem_key = ? AND response IS NULL",
        )
        .bind(held.user_id)
        .bind(&held.key)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets up to `limit` keys past their lifetime; returns how many.
    pub async fn purge_expired(&self, limit: u32) -> Result<u64, sqlx::Error> {
        let purged = sqlx::query(
            "DELETE FROM idempotency_keys \
             WHERE started_at < DATE_SUB(UTC_TIMESTAMP(6), INTERVAL ? SECOND) LIMIT ?",
        )
        .bind(KEY_LIFETIME.as_secs())
        .bind(limit)
        .execute(&self.pool)
        .await?;
        Ok(purged.rows_affected())
    }
}
