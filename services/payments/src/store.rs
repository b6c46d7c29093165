//! MySQL storage of payments: one row per order and the steps it took. A step runs with the
//! payment's row locked ([`PaymentStore::lock`]), so the steps of one payment never overlap.

use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use shopmesh_openapi::payments::PaymentStatus;
use sqlx::{MySql, MySqlPool, Transaction};

use crate::error::PaymentsError;

/// Migrations in `services/payments/migrations`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A stored payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRecord {
    /// Its order.
    pub order_id: i64,
    /// Amount in minor units.
    pub amount_minor: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// Where it is.
    pub status: PaymentStatus,
    /// The provider's reference of the authorization.
    pub provider_reference: Option<String>,
    /// Why the provider declined it.
    pub decline_reason: Option<String>,
    /// Authorization attempts the provider failed.
    pub failed_attempts: i32,
}

/// One status a payment reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentStepRecord {
    /// The status.
    pub status: PaymentStatus,
    /// When.
    pub at: DateTime<Utc>,
    /// The provider's reference, or why it declined or failed.
    pub detail: Option<String>,
}

/// What a step records besides the new status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepDetail {
    /// The provider's reference (kept on the payment).
    pub reference: Option<String>,
    /// Why the provider declined (kept on the payment).
    pub decline_reason: Option<String>,
    /// What the history says.
    pub note: Option<String>,
}

type PaymentRow = (
    i64,
    i64,
    String,
    String,
    Option<String>,
    Option<String>,
    i32,
);

const SELECT: &str = "SELECT order_id, amount_minor, currency, status, provider_reference, \
     decline_reason, failed_attempts FROM payments WHERE order_id = ?";

fn record(row: PaymentRow) -> Result<PaymentRecord, PaymentsError> {
    let (order_id, amount_minor, currency, status, provider_reference, decline_reason, failed) =
        row;
    let status = PaymentStatus::parse(&status).ok_or_else(|| {
        PaymentsError::Internal(format!("payment {order_id} has unknown status {status:?}"))
    })?;
    Ok(PaymentRecord {
        order_id,
        amount_minor,
        currency,
        status,
        provider_reference,
        decline_reason,
        failed_attempts: failed,
    })
}

/// Payments in MySQL.
#[derive(Clone)]
pub struct PaymentStore {
    pool: MySqlPool,
}

impl PaymentStore {
    /// A store whose pool connects on first use (see [`shopmesh_common::db::lazy_pool`]).
    pub fn connect_lazy(
        url: &str,
        size: u32,
        acquire_timeout: Duration,
    ) -> Result<Self, sqlx::Error> {
        Ok(Self {
            pool: shopmesh_common::db::lazy_pool(url, size, acquire_timeout)?,
        })
    }

    /// The pool (migrations and tests use it).
    pub fn pool(&self) -> &MySqlPool {
        &self.pool
    }

    /// Checks the database answers.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        shopmesh_common::db::ping(&self.pool).await
    }

    /// Creates the order's payment, `pending`, unless it has one.
    pub async fn open(
        &self,
        order_id: i64,
        amount_minor: i64,
        currency: &str,
    ) -> Result<(), PaymentsError> {
        let now = Utc::now().naive_utc();
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT IGNORE INTO payments \
             (order_id, amount_minor, currency, status, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(order_id)
        .bind(amount_minor)
        .bind(currency)
        .bind(PaymentStatus::INITIAL.as_str())
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 1 {
            append_step(&mut tx, order_id, PaymentStatus::INITIAL, None, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The order's payment with its row locked until the transaction ends.
    pub async fn lock(
        &self,
        order_id: i64,
    ) -> Result<(Transaction<'static, MySql>, PaymentRecord), PaymentsError> {
        let mut tx = self.pool.begin().await?;
        let row: Option<PaymentRow> = sqlx::query_as(&format!("{SELECT} FOR UPDATE"))
            .bind(order_id)
            .fetch_optional(&mut *tx)
            .await?;
        let payment = record(row.ok_or(PaymentsError::NotFound(order_id))?)?;
        Ok((tx, payment))
    }

    /// Moves the locked `payment` to `to`, as the contract's state machine allows, with its
    /// step in the history; commits.
    pub async fn advance(
        mut tx: Transaction<'static, MySql>,
        payment: &PaymentRecord,
        to: PaymentStatus,
        detail: StepDetail,
    ) -> Result<(), PaymentsError> {
        if !payment.status.may_become(to) {
            return Err(PaymentsError::IllegalStep {
                order_id: payment.order_id,
                from: payment.status,
                to,
            });
        }
        let now = Utc::now().naive_utc();
        sqlx::query(
            "UPDATE payments SET status = ?, provider_reference = COALESCE(?, provider_reference), \
             decline_reason = COALESCE(?, decline_reason), updated_at = ? WHERE order_id = ?",
        )
        .bind(to.as_str())
        .bind(&detail.reference)
        .bind(&detail.decline_reason)
        .bind(now)
        .bind(payment.order_id)
        .execute(&mut *tx)
        .await?;
        let note = detail.note.or(detail.reference).or(detail.decline_reason);
        append_step(&mut tx, payment.order_id, to, note.as_deref(), now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Counts a failed authorization of the locked `payment`; commits. Returns the count.
    pub async fn count_failure(
        mut tx: Transaction<'static, MySql>,
        payment: &PaymentRecord,
    ) -> Result<i32, PaymentsError> {
        sqlx::query("UPDATE payments SET failed_attempts = failed_attempts + 1 WHERE order_id = ?")
            .bind(payment.order_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(payment.failed_attempts + 1)
    }

    /// The order's payment and its history, if it has one.
    pub async fn get(
        &self,
        order_id: i64,
    ) -> Result<Option<(PaymentRecord, Vec<PaymentStepRecord>)>, PaymentsError> {
        let row: Option<PaymentRow> = sqlx::query_as(SELECT)
            .bind(order_id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let steps: Vec<(String, NaiveDateTime, Option<String>)> = sqlx::query_as(
            "SELECT status, at, detail FROM payment_steps WHERE order_id = ? ORDER BY seq",
        )
        .bind(order_id)
        .fetch_all(&self.pool)
        .await?;
        let history = steps
            .into_iter()
            .map(|(status, at, detail)| {
                let status = PaymentStatus::parse(&status).ok_or_else(|| {
                    PaymentsError::Internal(format!("a step of {order_id} is {status:?}"))
                })?;
                Ok(PaymentStepRecord {
                    status,
                    at: at.and_utc(),
                    detail,
                })
            })
            .collect::<Result<_, PaymentsError>>()?;
        Ok(Some((record(row)?, history)))
    }
}

async fn append_step(
    tx: &mut Transaction<'_, MySql>,
    order_id: i64,
    status: PaymentStatus,
    detail: Option<&str>,
    at: NaiveDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO payment_steps (order_id, seq, status, detail, at) \
         SELECT ?, COALESCE(MAX(seq), 0) + 1, ?, ?, ? FROM payment_steps WHERE order_id = ?",
    )
    .bind(order_id)
    .bind(status.as_str())
    .bind(detail)
    .bind(at)
    .bind(order_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
