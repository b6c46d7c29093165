//! The checkout saga, orchestrated by the orders service: it takes a checked-out order from
//! `pending` through `stock_reserved` and `paid` to `confirmed`, or gives back what the order
//! held once it ends `cancelled` or `expired`.
//!
//! Its state lives beside the order, in MySQL: the order's status says which step is next,
//! and `checkout_sagas` keeps the payment token, the deadline, whether to give back, and who is
//! working on it (a lease). Each step is a contract-checked call to the catalog or payments
//! service that is idempotent per order, and its outcome is recorded (a change of the order's
//! status, with its event through the outbox) before the next step starts. So a process may
//! die between any two steps: another runner takes the saga once the lease ends and repeats
//! at most the step whose outcome was not recorded, which the participant answers as before.
//! Compensation runs in reverse order: the payment is voided or refunded, then the stock
//! released (or, once sold, returned).

use std::sync::Arc;
use std::time::{Duration, Instant};

use shopmesh_common::retry::Backoff;
use shopmesh_common::shutdown::Shutdown;
use shopmesh_identity::AccessToken;
use shopmesh_openapi::catalog::{
    CatalogClient, ReservationLine, ReservationRequest, ReservationStatus,
};
use shopmesh_openapi::orders::{OrderLine, OrderStatus};
use shopmesh_openapi::payments::{AuthorizationRequest, Money, PaymentStatus, PaymentsClient};
use shopmesh_openapi::runtime::ClientError;
use shopmesh_openapi::users::{ClientCredentials, UsersClient};
use sqlx::{MySql, MySqlPool, Transaction};
use tokio::sync::{Mutex, Semaphore};

use crate::config::SagaConfig;
use crate::error::OrdersError;
use crate::store::{Changed, OrderRecord, OrderStore, SagaStart, StatusChange};

/// The saga rows in MySQL.
#[derive(Clone)]
pub struct SagaStore {
    pool: MySqlPool,
}

/// A saga as a runner reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SagaState {
    /// What the shopper pays with, until the payment is settled.
    pub payment_token: Option<String>,
    /// Whether reserving and paying are past their deadline.
    pub overdue: bool,
    /// Whether what the order held must be given back.
    pub compensate: bool,
    /// Whether nothing is left to do.
    pub done: bool,
    /// How many times a runner has taken it.
    pub attempts: i32,
}

impl SagaStore {
    /// Sagas in `pool`'s database.
    pub fn new(pool: MySqlPool) -> Self {
        Self { pool }
    }

    /// Starts the saga of order `order_id`, due at once, in the transaction placing it.
    pub(crate) async fn start(
        tx: &mut Transaction<'_, MySql>,
        order_id: i64,
        start: &SagaStart,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO checkout_sagas (order_id, payment_token, deadline, due_at, lease_until) \
             VALUES (?, ?, DATE_ADD(UTC_TIMESTAMP(6), INTERVAL ? MICROSECOND), \
             UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))",
        )
        .bind(order_id)
        .bind(&start.payment_token)
        .bind(micros(start.timeout))
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Asks for what order `order_id` holds to be given back, in the transaction that moves it
    /// to `cancelled` or `expired` (an order without a saga holds nothing).
    pub(crate) async fn compensate(
        tx: &mut Transaction<'_, MySql>,
        order_id: i64,
    ) -> Result<(), sqlx::Error> {
        #[cfg(not(feature = "negative-control-skip-compensation"))]
        sqlx::query(
            "UPDATE checkout_sagas SET compensate = TRUE, done = FALSE, \
             due_at = UTC_TIMESTAMP(6) WHERE order_id = ?",
        )
        .bind(order_id)
        .execute(&mut **tx)
        .await?;
        #[cfg(feature = "negative-control-skip-compensation")]
        let _ = (tx, order_id);
        Ok(())
    }

    /// Takes up to `limit` due sagas no runner holds, holding each for `lease`.
    pub async fn claim_due(&self, limit: u32, lease: Duration) -> Result<Vec<i64>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let due: Vec<(i64,)> = sqlx::query_as(
            "SELECT order_id FROM checkout_sagas WHERE done = FALSE \
             AND due_at <= UTC_TIMESTAMP(6) AND lease_until <= UTC_TIMESTAMP(6) \
             ORDER BY due_at LIMIT ? FOR UPDATE SKIP LOCKED",
        )
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        for (order_id,) in &due {
            hold(&mut *tx, *order_id, lease).await?;
        }
        tx.commit().await?;
        Ok(due.into_iter().map(|(id,)| id).collect())
    }

    /// Takes order `order_id`'s saga for `lease` if it has work and no runner holds it.
    pub async fn claim(&self, order_id: i64, lease: Duration) -> Result<bool, sqlx::Error> {
        Ok(hold(&self.pool, order_id, lease).await? == 1)
    }

    /// Order `order_id`'s saga, if it has one.
    pub async fn load(&self, order_id: i64) -> Result<Option<SagaState>, sqlx::Error> {
        let row: Option<(Option<String>, bool, bool, bool, i32)> = sqlx::query_as(
            "SELECT payment_token, deadline < UTC_TIMESTAMP(6), compensate, done, attempts \
             FROM checkout_sagas WHERE order_id = ?",
        )
        .bind(order_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(
            |(payment_token, overdue, compensate, done, attempts)| SagaState {
                payment_token,
                overdue,
                compensate,
                done,
                attempts,
            },
        ))
    }

    /// Lets the saga go until `after` from now, noting why.
    pub async fn wait(&self, order_id: i64, after: Duration, why: &str) -> Result<(), sqlx::Error> {
        let why: String = why.chars().take(500).collect();
        sqlx::query(
            "UPDATE checkout_sagas SET due_at = DATE_ADD(UTC_TIMESTAMP(6), INTERVAL ? MICROSECOND), \
             lease_until = UTC_TIMESTAMP(6), last_error = ? WHERE order_id = ?",
        )
        .bind(micros(after))
        .bind(why)
        .bind(order_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Ends the saga when its compensation flag is still the one the runner acted on (a
    /// cancellation that came meanwhile leaves it due, for the giving back).
    pub async fn finish(&self, order_id: i64, compensated: bool) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE checkout_sagas SET done = (compensate = ?), payment_token = NULL, \
             lease_until = UTC_TIMESTAMP(6), last_error = NULL WHERE order_id = ?",
        )
        .bind(compensated)
        .bind(order_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets the payment token once the payment is settled.
    pub async fn forget_token(&self, order_id: i64) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE checkout_sagas SET payment_token = NULL WHERE order_id = ?")
            .bind(order_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

async fn hold<'e>(
    executor: impl sqlx::Executor<'e, Database = MySql>,
    order_id: i64,
    lease: Duration,
) -> Result<u64, sqlx::Error> {
    let held = sqlx::query(
        "UPDATE checkout_sagas SET lease_until = DATE_ADD(UTC_TIMESTAMP(6), INTERVAL ? MICROSECOND), \
         attempts = attempts + 1 WHERE order_id = ? AND done = FALSE \
         AND lease_until <= UTC_TIMESTAMP(6)",
    )
    .bind(micros(lease))
    .bind(order_id)
    .execute(executor)
    .await?;
    Ok(held.rows_affected())
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// The orders service's own access token (role `service`), from the users service's
/// client-credentials grant, kept until most of its life is gone.
pub struct ServiceCredential {
    users: UsersClient,
    credentials: ClientCredentials,
    current: Mutex<Option<(AccessToken, Instant)>>,
}

impl ServiceCredential {
    /// Asks the users service at `users_url` as client `client_id` with `secret`.
    pub fn new(users_url: &str, client_id: String, secret: String) -> Self {
        Self {
            users: UsersClient::new(users_url).with_request_hook(crate::traced()),
            credentials: ClientCredentials {
                client_id,
                client_secret: secret,
            },
            current: Mutex::new(None),
        }
    }

    /// A token that is valid for a while yet.
    pub async fn token(&self) -> Result<AccessToken, ClientError> {
        let mut current = self.current.lock().await;
        if let Some((token, renew_at)) = current.as_ref()
            && Instant::now() < *renew_at
        {
            return Ok(token.clone());
        }
        let issued = self.users.issue_service_token(&self.credentials).await?;
        let life = Duration::from_secs(u64::try_from(issued.expires_in).unwrap_or(0));
        let token = AccessToken::new(issued.access_token);
        // Renewed at four fifths of its life, so no call carries one about to expire.
        *current = Some((token.clone(), Instant::now() + life.mul_f64(0.8)));
        Ok(token)
    }

    /// Drops the kept token (a participant refused it: keys rotated, or it expired early).
    pub async fn refused(&self) {
        *self.current.lock().await = None;
    }
}

/// The services a checkout calls, with the credential it calls them with.
pub struct Participants {
    catalog: CatalogClient,
    payments: PaymentsClient,
    credential: ServiceCredential,
}

impl Participants {
    /// The catalog and payments services at these URLs, called as the orders service.
    pub fn new(catalog_url: &str, payments_url: &str, credential: ServiceCredential) -> Self {
        Self {
            catalog: CatalogClient::new(catalog_url).with_request_hook(crate::traced()),
            payments: PaymentsClient::new(payments_url).with_request_hook(crate::traced()),
            credential,
        }
    }

    /// The catalog, for reading prices (no token needed).
    pub fn catalog(&self) -> &CatalogClient {
        &self.catalog
    }

    async fn token(&self) -> Result<AccessToken, Outcome> {
        self.credential
            .token()
            .await
            .map_err(|e| Outcome::Transient(format!("service token: {e}")))
    }

    /// Sorts a participant's answer: a documented refusal is final for this step; anything
    /// else (down, slow, 5xx, a token refused) is tried again.
    async fn outcome<T>(&self, result: Result<T, ClientError>) -> Result<T, Outcome> {
        match result {
            Ok(value) => Ok(value),
            Err(ClientError::Problem(p)) if p.status() == 401 => {
                self.credential.refused().await;
                Err(Outcome::Transient(p.to_string()))
            }
            Err(ClientError::Problem(p)) if (400..500).contains(&p.status()) => {
                Err(Outcome::Refused(p.status(), p.detail_or_title().to_owned()))
            }
            Err(e) => Err(Outcome::Transient(e.to_string())),
        }
    }
}

/// Why a participant's call did not return its value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// A documented refusal (status, detail): repeating the call would answer the same.
    Refused(u16, String),
    /// Anything that may pass: retried after a backoff, until the deadline.
    Transient(String),
}

/// What a runner does after a step.
enum Next {
    /// Look at the order again and take the following step.
    Again,
    /// Come back after a delay (a participant did not answer), noting why.
    Later(String),
    /// Nothing is left to do.
    Done,
}

/// Drives the sagas: a loop that takes due ones every poll, and [`CheckoutSaga::nudge`] for
/// one that has just become due in this process (a checkout, a cancellation), so it does not
/// wait for the poll.
#[derive(Clone)]
pub struct CheckoutSaga {
    inner: Arc<SagaInner>,
}

struct SagaInner {
    orders: OrderStore,
    sagas: SagaStore,
    participants: Participants,
    config: SagaConfig,
    running: Arc<Semaphore>,
}

impl CheckoutSaga {
    /// Sagas of `orders`, calling `participants`.
    pub fn new(orders: OrderStore, participants: Participants, config: SagaConfig) -> Self {
        let sagas = SagaStore::new(orders.pool().clone());
        let running = Arc::new(Semaphore::new(config.concurrency.max(1)));
        Self {
            inner: Arc::new(SagaInner {
                orders,
                sagas,
                participants,
                config,
                running,
            }),
        }
    }

    /// The catalog client (checkout reads prices through it).
    pub fn catalog(&self) -> &CatalogClient {
        self.inner.participants.catalog()
    }

    /// Each `(product, quantity)` at the catalog's current price; a product not on sale (or
    /// unknown) is refused.
    pub async fn price(&self, lines: &[(i64, i32)]) -> Result<Vec<OrderLine>, OrdersError> {
        use futures::StreamExt as _;
        let catalog = self.catalog().clone();
        let products: Vec<_> = futures::stream::iter(lines.to_vec())
            .map(move |(id, quantity)| {
                let catalog = catalog.clone();
                async move { (id, quantity, catalog.get_product(id).await) }
            })
            .buffered(8)
            .collect()
            .await;
        products
            .into_iter()
            .map(|(id, quantity, product)| match product {
                Ok(p) if p.active => Ok(OrderLine {
                    product_id: id,
                    quantity,
                    unit_price: Some(shopmesh_openapi::orders::Money {
                        amount_minor: p.price.amount_minor,
                        currency: p.price.currency,
                    }),
                }),
                Ok(_) => Err(OrdersError::NotForSale(id)),
                Err(ClientError::Problem(p)) if p.status() == 404 => {
                    Err(OrdersError::NotForSale(id))
                }
                Err(e) => Err(OrdersError::CatalogUnavailable(e.to_string())),
            })
            .collect()
    }

    /// How long reserving and paying may take before the order expires.
    pub fn timeout(&self) -> Duration {
        self.inner.config.timeout
    }

    /// Runs order `order_id`'s saga now in this process, unless a runner holds it; its steps
    /// continue the current request's trace (their timeline entries carry its trace id).
    pub fn nudge(&self, order_id: i64) {
        let saga = self.clone();
        let span = tracing::info_span!("checkout saga", order_id);
        let nudged = async move {
            let Ok(_permit) = saga.inner.running.clone().acquire_owned().await else {
                return;
            };
            match saga
                .inner
                .sagas
                .claim(order_id, saga.inner.config.lease)
                .await
            {
                Ok(true) => saga.drive(order_id).await,
                Ok(false) => {}
                Err(e) => tracing::warn!(order_id, error = %e, "could not take a saga"),
            }
        };
        tokio::spawn(tracing::Instrument::instrument(nudged, span));
    }

    /// Takes due sagas every poll interval until `shutdown` (at once again while a whole batch
    /// was due).
    pub async fn run(self, shutdown: Shutdown) {
        let config = &self.inner.config;
        let mut backoff = Backoff::new(config.retry_min, config.retry_max);
        loop {
            let limit = u32::try_from(config.concurrency).unwrap_or(u32::MAX);
            let wait = match self.inner.sagas.claim_due(limit, config.lease).await {
                Ok(ids) => {
                    backoff.reset();
                    let full = ids.len() as u32 == limit;
                    for id in ids {
                        let Ok(permit) = self.inner.running.clone().acquire_owned().await else {
                            return;
                        };
                        let saga = self.clone();
                        // A saga taken from the table starts a trace of its own.
                        let span =
                            tracing::info_span!(parent: None, "checkout saga", order_id = id);
                        let driven = async move {
                            saga.drive(id).await;
                            drop(permit);
                        };
                        tokio::spawn(tracing::Instrument::instrument(driven, span));
                    }
                    if full { Duration::ZERO } else { config.poll }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not take due sagas");
                    backoff.next_delay()
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.wait() => return,
            }
        }
    }

    /// Takes order `order_id`'s saga as far as it goes now, then lets it go (done, or due
    /// again after a backoff).
    async fn drive(&self, order_id: i64) {
        let sagas = &self.inner.sagas;
        let mut touched_payment = false;
        let next = loop {
            match self.step(order_id, &mut touched_payment).await {
                Ok(Next::Again) => continue,
                Ok(next) => break next,
                Err(e) => break Next::Later(e.to_string()),
            }
        };
        let settled = match next {
            Next::Again => Ok(()),
            Next::Done => match sagas.load(order_id).await {
                Ok(Some(state)) => sagas.finish(order_id, state.compensate).await,
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            },
            Next::Later(why) => {
                let attempts = sagas
                    .load(order_id)
                    .await
                    .ok()
                    .flatten()
                    .map_or(1, |s| s.attempts);
                let delay = self.inner.config.retry_delay(attempts);
                tracing::info!(order_id, ?delay, why, "saga step will be tried again");
                sagas.wait(order_id, delay, &why).await
            }
        };
        if let Err(e) = settled {
            // The lease runs out and another runner takes it from where it is.
            tracing::warn!(order_id, error = %e, "could not record where a saga is");
        }
    }

    /// One step, chosen by where the order and its saga are.
    async fn step(&self, order_id: i64, touched_payment: &mut bool) -> Result<Next, OrdersError> {
        let Some(saga) = self.inner.sagas.load(order_id).await? else {
            return Ok(Next::Done);
        };
        let order = self
            .inner
            .orders
            .get(order_id)
            .await?
            .ok_or(OrdersError::NotFound(order_id))?;
        // The persisted flag, written with the move to `cancelled` or `expired`, is what asks
        // for the giving back. A runner that called the payments service and then found the
        // order ended gives back even when another runner already did: its call may have come
        // after theirs.
        if saga.done && !(saga.compensate && *touched_payment) {
            return Ok(Next::Done);
        }
        if saga.compensate {
            return Ok(self.give_back(&order).await);
        }
        Ok(match order.status {
            OrderStatus::Pending if saga.overdue => {
                self.expire(&order, "the catalog did not reserve in time")
                    .await?
            }
            OrderStatus::Pending => self.reserve(&order).await?,
            OrderStatus::StockReserved if saga.overdue => {
                self.expire(
                    &order,
                    "the payment did not complete in time (stock released)",
                )
                .await?
            }
            OrderStatus::StockReserved => {
                *touched_payment = true;
                self.pay(&order, saga.payment_token.as_deref()).await?
            }
            OrderStatus::Paid => self.commit(&order).await?,
            _ => Next::Done,
        })
    }

    /// Records a step's outcome; an order that moved meanwhile (a cancellation) is looked at
    /// again.
    async fn record(
        &self,
        order: &OrderRecord,
        to: OrderStatus,
        cause: &str,
    ) -> Result<Next, OrdersError> {
        let change = StatusChange {
            from: order.status,
            to,
            cause,
        };
        match self.inner.orders.change_status(order.id, change).await {
            Ok(Changed::Moved(_) | Changed::Already(_)) => Ok(Next::Again),
            Err(OrdersError::IllegalTransition { .. }) => Ok(Next::Again),
            Err(e) => Err(e),
        }
    }

    async fn expire(&self, order: &OrderRecord, cause: &str) -> Result<Next, OrdersError> {
        self.record(order, OrderStatus::Expired, cause).await
    }

    async fn reserve(&self, order: &OrderRecord) -> Result<Next, OrdersError> {
        let p = &self.inner.participants;
        let token = match p.token().await {
            Ok(t) => t,
            Err(o) => return Ok(later(o)),
        };
        let request = ReservationRequest {
            lines: order
                .lines
                .iter()
                .map(|l| ReservationLine {
                    product_id: l.product_id,
                    quantity: l.quantity,
                })
                .collect(),
        };
        let reserved = p
            .outcome(p.catalog.reserve_stock(&token, order.id, &request).await)
            .await;
        match reserved {
            Ok(r)
                if matches!(
                    r.status,
                    ReservationStatus::Reserved | ReservationStatus::Committed
                ) =>
            {
                self.record(order, OrderStatus::StockReserved, "every line reserved")
                    .await
            }
            Ok(r) => {
                let cause = format!("the reservation is {}", r.status.as_str());
                self.record(order, OrderStatus::Expired, &cause).await
            }
            Err(Outcome::Refused(_, detail)) => {
                let cause = format!("not reserved: {detail}");
                self.record(order, OrderStatus::Rejected, &cause).await
            }
            Err(o) => Ok(later(o)),
        }
    }

    async fn pay(&self, order: &OrderRecord, token: Option<&str>) -> Result<Next, OrdersError> {
        let (Some(payment_token), Some(total)) = (token, order.total.as_ref()) else {
            return self
                .record(order, OrderStatus::Cancelled, "no payment method to charge")
                .await;
        };
        let p = &self.inner.participants;
        let token = match p.token().await {
            Ok(t) => t,
            Err(o) => return Ok(later(o)),
        };
        let request = AuthorizationRequest {
            amount: Money {
                amount_minor: total.amount_minor,
                currency: total.currency.clone(),
            },
            payment_token: payment_token.to_owned(),
        };
        let authorized = p
            .outcome(
                p.payments
                    .authorize_payment(&token, order.id, &request)
                    .await,
            )
            .await;
        let payment = match authorized {
            Ok(payment) => payment,
            Err(Outcome::Refused(_, detail)) => {
                let cause = format!("payment refused: {detail}");
                return self.record(order, OrderStatus::Cancelled, &cause).await;
            }
            Err(o) => return Ok(later(o)),
        };
        match payment.status {
            PaymentStatus::Authorized | PaymentStatus::Captured => {}
            PaymentStatus::Declined => {
                let reason = payment.decline_reason.unwrap_or_else(|| "declined".into());
                let cause = format!("payment declined: {reason}");
                return self.record(order, OrderStatus::Cancelled, &cause).await;
            }
            PaymentStatus::Failed => {
                return self
                    .record(
                        order,
                        OrderStatus::Cancelled,
                        "payment failed at the provider",
                    )
                    .await;
            }
            // Given back by a cancellation meanwhile, or not answered yet.
            PaymentStatus::Voided | PaymentStatus::Refunded | PaymentStatus::Pending => {
                return Ok(Next::Later(format!(
                    "the payment is {}",
                    payment.status.as_str()
                )));
            }
        }
        let captured = p
            .outcome(p.payments.capture_payment(&token, order.id).await)
            .await;
        match captured {
            Ok(payment) if payment.status == PaymentStatus::Captured => {
                let next = self
                    .record(order, OrderStatus::Paid, "payment captured")
                    .await?;
                self.inner.sagas.forget_token(order.id).await?;
                Ok(next)
            }
            Ok(payment) => Ok(Next::Later(format!(
                "the payment is {} after capture",
                payment.status.as_str()
            ))),
            // A cancellation voided it meanwhile; the order says what comes next.
            Err(Outcome::Refused(_, detail)) => Ok(Next::Later(detail)),
            Err(o) => Ok(later(o)),
        }
    }

    async fn commit(&self, order: &OrderRecord) -> Result<Next, OrdersError> {
        let p = &self.inner.participants;
        let token = match p.token().await {
            Ok(t) => t,
            Err(o) => return Ok(later(o)),
        };
        let committed = p
            .outcome(p.catalog.commit_reservation(&token, order.id).await)
            .await;
        match committed {
            Ok(_) => {
                self.record(order, OrderStatus::Confirmed, "reserved stock sold")
                    .await
            }
            Err(Outcome::Refused(_, detail)) => {
                let cause = format!("the stock could not be sold ({detail}); refunded");
                self.record(order, OrderStatus::Cancelled, &cause).await
            }
            Err(o) => Ok(later(o)),
        }
    }

    /// Gives back what the order held, the payment first and the stock after (the reverse of
    /// taking them); each call is idempotent, so a repeat after a crash changes nothing.
    async fn give_back(&self, order: &OrderRecord) -> Next {
        let p = &self.inner.participants;
        let token = match p.token().await {
            Ok(t) => t,
            Err(o) => return later(o),
        };
        match p
            .outcome(p.payments.void_payment(&token, order.id).await)
            .await
        {
            Ok(_) | Err(Outcome::Refused(404, _)) => {}
            // Captured (or never held): refund what was taken.
            Err(Outcome::Refused(..)) => {
                match p
                    .outcome(p.payments.refund_payment(&token, order.id).await)
                    .await
                {
                    // Nothing was taken (declined, failed, pending at the provider).
                    Ok(_) | Err(Outcome::Refused(..)) => {}
                    Err(o) => return later(o),
                }
            }
            Err(o) => return later(o),
        }
        match p
            .outcome(p.catalog.release_reservation(&token, order.id).await)
            .await
        {
            Ok(_) | Err(Outcome::Refused(404, _)) => {}
            // Sold already (cancelled after confirmation): the units go back on hand.
            Err(Outcome::Refused(..)) => {
                let returned = p.catalog.return_reservation(&token, order.id).await;
                match p.outcome(returned).await {
                    Ok(_) => {}
                    Err(Outcome::Refused(_, detail)) => {
                        tracing::warn!(order_id = order.id, detail, "sold stock was not returned");
                    }
                    Err(o) => return later(o),
                }
            }
            Err(o) => return later(o),
        }
        Next::Done
    }
}

fn later(outcome: Outcome) -> Next {
    match outcome {
        Outcome::Transient(why) => Next::Later(why),
        Outcome::Refused(status, detail) => Next::Later(format!("{status}: {detail}")),
    }
}
