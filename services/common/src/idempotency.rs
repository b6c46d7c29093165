//! Idempotency keys of creating requests (draft-ietf-httpapi-idempotency-key-header), kept in
//! each service's own `idempotency_keys` table: the first request with a key runs; a repeat
//! with the same request gets the stored answer, one with another request a
//! [`KeyRefused::Reused`], one while the first still runs a [`KeyRefused::InFlight`]. A request
//! that fails lets its key go, so the client may retry with it; one that succeeds stores its
//! answer in the transaction that did the work ([`IdempotencyKeys::answer`]), so the work and
//! its answer are written together or not at all.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use poem_openapi::types::{ParseFromJSON, ToJSON};
use ring::digest::{SHA256, digest};
use sqlx::{MySql, MySqlPool, Transaction};

/// How long a key is kept.
pub const KEY_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// How long a request with a key may run before a repeat takes its place (its process died).
pub const IN_FLIGHT_LIMIT: Duration = Duration::from_secs(60);

/// How often a service forgets expired keys, and how many at a time.
const PURGE_EVERY: Duration = Duration::from_secs(60);
const PURGE_BATCH: u32 = 1000;

/// The owner of keys sent without an account (sign-up).
pub const ANONYMOUS: i64 = 0;

/// A key a request holds while it runs.
#[derive(Debug, Clone)]
pub struct HeldKey {
    /// The user the key belongs to ([`ANONYMOUS`] without an account).
    pub user_id: i64,
    /// The client's key.
    pub key: String,
    /// Whether the work wrote its answer in its transaction ([`IdempotencyKeys::answer`]);
    /// shared by the clones the work was given.
    answered: Arc<AtomicBool>,
}

/// Two held keys are the same key; whether it was answered yet is bookkeeping.
impl PartialEq for HeldKey {
    fn eq(&self, other: &Self) -> bool {
        (self.user_id, &self.key) == (other.user_id, &other.key)
    }
}

impl Eq for HeldKey {}

/// What the first look at a key says.
#[derive(Debug)]
pub enum KeyUse {
    /// New (or expired, or left by a dead request): the caller runs the request.
    Run(HeldKey),
    /// Seen with the same request and answered: the stored answer, as JSON.
    Replay(String),
}

/// Why a request with a key does not run.
#[derive(Debug, thiserror::Error)]
pub enum KeyRefused {
    /// A request with this key is still running.
    #[error("a request with Idempotency-Key {0:?} is still running; retry once it has answered")]
    InFlight(String),
    /// The key came with another request before.
    #[error("Idempotency-Key {0:?} was used with another request")]
    Reused(String),
    /// The stored answer no longer parses as the operation's response (a bug or corruption).
    #[error("the stored answer of Idempotency-Key {0:?} is not valid: {1}")]
    Corrupt(String, String),
    /// The database failed.
    #[error("database unavailable: {0}")]
    Store(#[from] sqlx::Error),
}

impl KeyRefused {
    /// The HTTP status this refusal answers with.
    pub fn status(&self) -> u16 {
        match self {
            Self::InFlight(_) => 409,
            Self::Reused(_) => 422,
            Self::Corrupt(..) => 500,
            Self::Store(_) => 503,
        }
    }
}

/// The keys in one service's database.
#[derive(Clone)]
pub struct IdempotencyKeys {
    pool: MySqlPool,
    /// Seconds since the epoch of the last purge of expired keys.
    purged_at: Arc<AtomicU64>,
}

/// The SHA-256 of a request's text, hex.
pub fn fingerprint(request: &str) -> String {
    digest(&SHA256, request.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What a key's fingerprint covers: the operation and its body.
pub fn request_text(operation: &str, body: &impl ToJSON) -> String {
    format!("{operation} {}", body.to_json_string())
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl IdempotencyKeys {
    /// Keys in `pool`'s database.
    pub fn new(pool: MySqlPool) -> Self {
        Self {
            pool,
            purged_at: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Runs `work` once per `key` of `user_id` (when the client sent one): a repeat of the
    /// same `request` (see [`request_text`]) answers the stored response without doing the
    /// work again; the key is let go when `work` fails, so the client may retry with it.
    /// Work that writes must store its answer with [`Self::answer`] in its own transaction
    /// (else a crash between the two would run it twice); an answer it did not store (work
    /// that wrote nothing) is stored here.
    pub async fn run_once<T, E, F, Fut>(
        &self,
        user_id: i64,
        key: Option<String>,
        request: &str,
        work: F,
    ) -> Result<T, E>
    where
        T: ParseFromJSON + ToJSON,
        E: From<KeyRefused>,
        F: FnOnce(Option<HeldKey>) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let Some(key) = key else {
            return work(None).await;
        };
        let held = match self.claim(user_id, &key, &fingerprint(request)).await? {
            KeyUse::Run(held) => held,
            KeyUse::Replay(json) => return Ok(parse_answer(&key, &json)?),
        };
        let done = work(Some(held.clone())).await;
        match &done {
            // Answered in the work's own transaction, which committed, since the work succeeded.
            Ok(_) if held.answered.load(Ordering::Relaxed) => {}
            Ok(answer) => {
                let stored = sqlx::query(
                    "UPDATE idempotency_keys SET response = ? \
                     WHERE user_id = ? AND idem_key = ? AND response IS NULL",
                )
                .bind(answer.to_json_string())
                .bind(held.user_id)
                .bind(&held.key)
                .execute(&self.pool)
                .await;
                if let Err(e) = stored {
                    tracing::warn!(error = %e, "an idempotent answer was not stored");
                }
            }
            Err(_) => {
                if let Err(released) = self.release(&held).await {
                    tracing::warn!(error = %released, "an idempotency key was not let go");
                }
            }
        }
        done
    }

    /// Claims `key` for `user_id`'s request with fingerprint `fingerprint`.
    pub async fn claim(
        &self,
        user_id: i64,
        key: &str,
        fingerprint: &str,
    ) -> Result<KeyUse, KeyRefused> {
        self.purge_now_and_then().await;
        let held = HeldKey {
            user_id,
            key: key.to_owned(),
            answered: Arc::default(),
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
            return Err(KeyRefused::InFlight(key.to_owned()));
        }
        if stored != fingerprint {
            return Err(KeyRefused::Reused(key.to_owned()));
        }
        response
            .map(KeyUse::Replay)
            .ok_or_else(|| KeyRefused::InFlight(key.to_owned()))
    }

    /// Stores `answer` for the request holding `held`, in the transaction doing its work (a
    /// transaction that then fails fails the work, whose key is let go).
    pub async fn answer(
        tx: &mut Transaction<'_, MySql>,
        held: &HeldKey,
        answer: &impl ToJSON,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE idempotency_keys SET response = ? WHERE user_id = ? AND idem_key = ?")
            .bind(answer.to_json_string())
            .bind(held.user_id)
            .bind(&held.key)
            .execute(&mut **tx)
            .await?;
        held.answered.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Lets `held` go: its request failed.
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

    /// Forgets expired keys at most once every [`PURGE_EVERY`] per process, so no service
    /// needs a task of its own for it.
    async fn purge_now_and_then(&self) {
        let now = now_secs();
        let last = self.purged_at.load(Ordering::Relaxed);
        if now < last + PURGE_EVERY.as_secs()
            || self
                .purged_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        if let Err(e) = self.purge_expired(PURGE_BATCH).await {
            tracing::warn!(error = %e, "could not forget expired idempotency keys");
        }
    }
}

/// The stored answer of `key`, as the operation's response.
fn parse_answer<T: ParseFromJSON>(key: &str, json: &str) -> Result<T, KeyRefused> {
    let corrupt = |why: String| KeyRefused::Corrupt(key.to_owned(), why);
    let value = serde_json::from_str(json).map_err(|e| corrupt(e.to_string()))?;
    T::parse_from_json(Some(value)).map_err(|e| corrupt(e.message().to_owned()))
}
