//! MySQL storage of orders and of the transactional outbox.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use shopmesh_events::{Event, OrderCreatedV1, OrderStatusChangedV1};
use shopmesh_openapi::orders::{Money, OrderLine, OrderStatus};
use sqlx::{MySql, MySqlPool, Transaction};
use tokio::sync::Notify;
use uuid::Uuid;

use poem_openapi::types::ToJSON as _;
use shopmesh_common::cache::RedisCache;
use shopmesh_common::near_cache::ChangeChannel;

use crate::domain::{self, Cursor};
use crate::error::OrdersError;

/// Migrations in `services/orders/migrations`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// What a client asks to order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewOrder {
    /// Ordering user.
    pub user_id: i64,
    /// Ordered product.
    pub product_id: i64,
    /// Item count, 1..=1000.
    pub quantity: i32,
}

/// An order to place: its lines (priced when bought through checkout) and, for a checkout,
/// what its saga starts with.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    /// Ordering user.
    pub user_id: i64,
    /// What is ordered, one line per product; at least one.
    pub lines: Vec<OrderLine>,
    /// The sum of the priced lines.
    pub total: Option<Money>,
    /// The saga that takes the order through reservation and payment, when there is one.
    pub saga: Option<SagaStart>,
    /// The idempotency key the request holds, answered in the transaction placing the order.
    pub idempotency: Option<shopmesh_common::idempotency::HeldKey>,
    /// Whether the lines come from the user's cart, which then loses them (a line changed
    /// meanwhile stays).
    pub from_cart: bool,
}

/// How a checkout saga starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SagaStart {
    /// What the shopper pays with.
    pub payment_token: String,
    /// How long reserving and paying may take.
    pub timeout: Duration,
}

impl From<NewOrder> for Placement {
    /// A one-line order without price or saga (`POST /orders` without a payment token).
    fn from(new: NewOrder) -> Self {
        Self {
            user_id: new.user_id,
            lines: vec![OrderLine {
                product_id: new.product_id,
                quantity: new.quantity,
                unit_price: None,
            }],
            total: None,
            saga: None,
            idempotency: None,
            from_cart: false,
        }
    }
}

/// A stored order.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderRecord {
    /// Id.
    pub id: i64,
    /// Ordering user.
    pub user_id: i64,
    /// Ordered product.
    pub product_id: i64,
    /// Item count.
    pub quantity: i32,
    /// Lifecycle state.
    pub status: OrderStatus,
    /// 1 when placed; one more with every change of status.
    pub version: i32,
    /// What was ordered.
    pub lines: Vec<OrderLine>,
    /// The sum of the priced lines.
    pub total: Option<Money>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

type OrderRow = (
    i64,
    i64,
    i64,
    i32,
    String,
    NaiveDateTime,
    i32,
    Option<i64>,
    Option<String>,
);

/// The columns an [`OrderRow`] reads, in its order.
const ORDER_COLUMNS: &str =
    "id, user_id, product_id, quantity, status, created_at, version, total_minor, currency";

/// order id, product, quantity, unit price, currency.
type LineRow = (i64, i64, i32, Option<i64>, Option<String>);

fn money(amount_minor: Option<i64>, currency: Option<String>) -> Option<Money> {
    Some(Money {
        amount_minor: amount_minor?,
        currency: currency?,
    })
}

/// One row of `order_transitions`, read with [`TRANSITION_COLUMNS`].
#[derive(sqlx::FromRow)]
struct TransitionRow {
    order_id: i64,
    user_id: Option<i64>,
    version: i32,
    from_status: Option<String>,
    to_status: String,
    cause: String,
    trace_id: Option<String>,
    changed_at: NaiveDateTime,
    user_sequence: Option<i64>,
    shop_sequence: Option<i64>,
}

/// The columns of a [`TransitionRow`].
const TRANSITION_COLUMNS: &str = "order_id, user_id, version, from_status, to_status, cause, \
     trace_id, changed_at, user_sequence, shop_sequence";

impl TryFrom<OrderRow> for OrderRecord {
    type Error = OrdersError;

    /// The one place a stored status string becomes the contract's enum.
    fn try_from(
        (id, user_id, product_id, quantity, status, created_at, version, total, currency): OrderRow,
    ) -> Result<Self, OrdersError> {
        let status = OrderStatus::parse(&status).ok_or_else(|| {
            OrdersError::Internal(format!("order {id} has unknown status {status:?}"))
        })?;
        Ok(Self {
            id,
            user_id,
            product_id,
            quantity,
            status,
            version,
            // Filled by [`OrderStore::with_lines`].
            lines: Vec::new(),
            total: money(total, currency),
            created_at: created_at.and_utc(),
        })
    }
}

/// A change of status an order is asked to make: from the status its caller last saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusChange<'a> {
    /// The status the caller expects the order in.
    pub from: OrderStatus,
    /// The status it should reach.
    pub to: OrderStatus,
    /// Why, in a few words (kept in the timeline and the event).
    pub cause: &'a str,
}

/// What a [`StatusChange`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Changed {
    /// The order moved; its timeline and the outbox have the change.
    Moved(OrderRecord),
    /// The order had already reached the status (a repeated request): nothing changed.
    Already(OrderRecord),
}

/// One entry of an order's timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineEntry {
    /// The order's version once this status was reached (1: placed).
    pub version: i32,
    /// The status it left; none for placing the order.
    pub from: Option<OrderStatus>,
    /// The status it reached.
    pub to: OrderStatus,
    /// Why.
    pub cause: String,
    /// The W3C trace id of the request that made the change, when it was traced.
    pub trace_id: Option<String>,
    /// When.
    pub at: DateTime<Utc>,
    /// For a change of status, its number among the changes of all the user's orders.
    pub sequence: Option<i64>,
    /// For a change of status the outbox relay has numbered, its number in the shop.
    pub shop_sequence: Option<i64>,
}

/// A change of status listed after a sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedChange {
    /// The order that changed.
    pub order_id: i64,
    /// The user who placed it.
    pub user_id: i64,
    /// The change, as the order's timeline has it.
    pub entry: TimelineEntry,
}

/// What placing an order records as its cause.
pub const PLACED: &str = "placed";

/// An outbox row waiting to be published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    /// Row id.
    pub id: i64,
    /// Event id, sent as the AMQP `message_id`.
    pub event_id: String,
    /// Routing key.
    pub routing_key: String,
    /// JSON payload.
    pub payload: String,
    /// W3C `traceparent` of the request that created the event, when it was traced.
    pub traceparent: Option<String>,
}

/// Where the gateways' copies of orders are told about changes: the order's new state is
/// written over the shared Redis entry (`order:{id}`, kept only if newer, by version) and its
/// id announced on the order channel, which every gateway's memory tier follows.
#[derive(Clone)]
pub struct OrderChanges {
    redis: RedisCache,
    channel: ChangeChannel,
    prefix: String,
    ttl: Duration,
}

impl OrderChanges {
    /// Announces on `channel` through `redis`; entries are `order:{id}` after `prefix` and
    /// live `ttl`.
    pub fn new(redis: RedisCache, channel: ChangeChannel, prefix: String, ttl: Duration) -> Self {
        Self {
            redis,
            channel,
            prefix,
            ttl,
        }
    }

    /// After a committed change, before it is acknowledged. Redis being down costs the
    /// gateways their memory tier (they stop hearing the channel too), never coherence.
    async fn announce(&self, order: &OrderRecord) {
        let json = crate::api::to_contract(order.clone()).to_json_string();
        let version = u64::try_from(order.version).unwrap_or(0);
        let key = shopmesh_common::cache::order_key(&self.prefix, order.id);
        self.redis
            .set_versioned(&key, version, &json, self.ttl)
            .await;
        self.channel.announce(&self.redis, order.id).await;
    }
}

/// Orders and outbox in MySQL.
#[derive(Clone)]
pub struct OrderStore {
    pool: MySqlPool,
    created: Arc<Notify>,
    changes: OrderChanges,
}

impl OrderStore {
    /// A store whose pool connects lazily, so the service starts (and answers 503) while the
    /// database is down, and recovers by itself when it returns.
    pub fn connect_lazy(
        url: &str,
        pool_size: u32,
        acquire_timeout: Duration,
        changes: OrderChanges,
    ) -> Result<Self, sqlx::Error> {
        let pool = shopmesh_common::db::lazy_pool(url, pool_size, acquire_timeout)?;
        Ok(Self {
            pool,
            created: Arc::new(Notify::new()),
            changes,
        })
    }

    /// The connection pool.
    pub fn pool(&self) -> &MySqlPool {
        &self.pool
    }

    /// Woken after every committed event (an order placed or changed), so the relay publishes
    /// without waiting for its poll.
    pub fn outbox_signal(&self) -> Arc<Notify> {
        self.created.clone()
    }

    /// Checks the database answers.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        shopmesh_common::db::ping(&self.pool).await
    }

    /// Stores a one-line order without price or saga and its `order.created` event.
    pub async fn create(&self, new: NewOrder) -> Result<OrderRecord, OrdersError> {
        self.place(new.into()).await
    }

    /// Stores the order, its lines, its saga (if any) and its `order.created` event in one
    /// transaction, emptying the user's cart when asked. The outbox row keeps the current
    /// span's `traceparent`, so the published event continues the request's trace.
    pub async fn place(&self, placement: Placement) -> Result<OrderRecord, OrdersError> {
        let first = placement
            .lines
            .first()
            .cloned()
            .ok_or_else(|| OrdersError::Internal("an order without lines".into()))?;
        let created_at = domain::creation_time();
        let mut tx = self.pool.begin().await?;
        let result = sqlx::query(
            "INSERT INTO orders (user_id, product_id, quantity, status, created_at, total_minor, currency) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(placement.user_id)
        .bind(first.product_id)
        .bind(first.quantity)
        .bind(OrderStatus::INITIAL.as_str())
        .bind(created_at.naive_utc())
        .bind(placement.total.as_ref().map(|m| m.amount_minor))
        .bind(placement.total.as_ref().map(|m| m.currency.as_str()))
        .execute(&mut *tx)
        .await?;
        let id = i64::try_from(result.last_insert_id())
            .map_err(|_| OrdersError::Internal("order id overflow".into()))?;
        for line in &placement.lines {
            sqlx::query(
                "INSERT INTO order_lines (order_id, product_id, quantity, unit_price_minor, currency) \
                 VALUES (?, ?, ?, ?, ?)",
            )
            .bind(id)
            .bind(line.product_id)
            .bind(line.quantity)
            .bind(line.unit_price.as_ref().map(|m| m.amount_minor))
            .bind(line.unit_price.as_ref().map(|m| m.currency.as_str()))
            .execute(&mut *tx)
            .await?;
        }
        if let Some(saga) = &placement.saga {
            crate::checkout::SagaStore::start(&mut tx, id, saga).await?;
        }
        if placement.from_cart {
            for line in &placement.lines {
                sqlx::query(
                    "DELETE FROM cart_lines WHERE user_id = ? AND product_id = ? AND quantity = ?",
                )
                .bind(placement.user_id)
                .bind(line.product_id)
                .bind(line.quantity)
                .execute(&mut *tx)
                .await?;
            }
        }
        let event = OrderCreatedV1 {
            event_id: Uuid::now_v7(),
            order_id: id,
            user_id: placement.user_id,
            product_id: first.product_id,
            quantity: first.quantity,
            created_at,
        };
        let traceparent = shopmesh_common::telemetry::current_traceparent();
        insert_transition(
            &mut tx,
            Transition {
                order_id: id,
                version: 1,
                from: None,
                to: OrderStatus::INITIAL,
                cause: PLACED,
                user: None,
            },
            traceparent.as_deref(),
            created_at,
        )
        .await?;
        insert_outbox(&mut tx, &event, traceparent.as_deref()).await?;
        let order = OrderRecord {
            id,
            user_id: placement.user_id,
            product_id: first.product_id,
            quantity: first.quantity,
            status: OrderStatus::INITIAL,
            version: 1,
            lines: placement.lines,
            total: placement.total,
            created_at,
        };
        if let Some(held) = &placement.idempotency {
            let answer = crate::api::to_contract(order.clone());
            shopmesh_common::idempotency::IdempotencyKeys::answer(&mut tx, held, &answer).await?;
        }
        tx.commit().await?;
        self.created.notify_one();
        Ok(order)
    }

    /// `orders` with their lines read (one query for all).
    async fn with_lines(
        &self,
        mut orders: Vec<OrderRecord>,
    ) -> Result<Vec<OrderRecord>, OrdersError> {
        if orders.is_empty() {
            return Ok(orders);
        }
        let placeholders = vec!["?"; orders.len()].join(",");
        let sql = format!(
            "SELECT order_id, product_id, quantity, unit_price_minor, currency FROM order_lines \
             WHERE order_id IN ({placeholders}) ORDER BY order_id, product_id"
        );
        let mut query = sqlx::query_as::<_, LineRow>(&sql);
        for o in &orders {
            query = query.bind(o.id);
        }
        let mut by_order: std::collections::HashMap<i64, Vec<OrderLine>> =
            std::collections::HashMap::new();
        for (order_id, product_id, quantity, price, currency) in query.fetch_all(&self.pool).await?
        {
            by_order.entry(order_id).or_default().push(OrderLine {
                product_id,
                quantity,
                unit_price: money(price, currency),
            });
        }
        for o in &mut orders {
            o.lines = by_order.remove(&o.id).unwrap_or_default();
        }
        Ok(orders)
    }

    async fn one_with_lines(&self, order: OrderRecord) -> Result<OrderRecord, OrdersError> {
        self.with_lines(vec![order])
            .await?
            .pop()
            .ok_or_else(|| OrdersError::Internal("an order went missing".into()))
    }

    /// Moves order `id` as `change` asks, in one transaction: the order's row is locked, the
    /// contract's state machine must allow the move and the order must be where the caller
    /// saw it; then its version goes up, the timeline gains the entry and the outbox an
    /// `order.status-changed` event. An order already in `change.to` is left as it is.
    pub async fn change_status(
        &self,
        id: i64,
        change: StatusChange<'_>,
    ) -> Result<Changed, OrdersError> {
        // Two first changes of a new user's orders at once can deadlock on creating the
        // user's counter: the loser is tried again.
        shopmesh_common::db::retry_conflicts(
            crate::error::CONFLICTS_RETRIED,
            OrdersError::database,
            || self.try_change_status(id, change),
        )
        .await
    }

    async fn try_change_status(
        &self,
        id: i64,
        change: StatusChange<'_>,
    ) -> Result<Changed, OrdersError> {
        let mut tx = self.pool.begin().await?;
        let row: Option<OrderRow> = sqlx::query_as(&format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE id = ? FOR UPDATE"
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Err(OrdersError::NotFound(id));
        };
        let order = OrderRecord::try_from(row)?;
        if order.status == change.to {
            tx.commit().await?;
            return Ok(Changed::Already(self.one_with_lines(order).await?));
        }
        if order.status != change.from || !change.from.may_become(change.to) {
            return Err(OrdersError::IllegalTransition {
                id,
                from: order.status,
                to: change.to,
            });
        }
        let version = order.version + 1;
        let changed_at = domain::creation_time();
        sqlx::query("UPDATE orders SET status = ?, version = ? WHERE id = ?")
            .bind(change.to.as_str())
            .bind(version)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if matches!(change.to, OrderStatus::Cancelled | OrderStatus::Expired) {
            crate::checkout::SagaStore::compensate(&mut tx, id).await?;
        }
        // The user's counter is the last lock taken (what follows only inserts), so holding it
        // to the commit orders the user's changes without waiting on anything else.
        let sequence = next_user_sequence(&mut tx, order.user_id).await?;
        let traceparent = shopmesh_common::telemetry::current_traceparent();
        insert_transition(
            &mut tx,
            Transition {
                order_id: id,
                version,
                from: Some(change.from),
                to: change.to,
                cause: change.cause,
                user: Some((order.user_id, sequence)),
            },
            traceparent.as_deref(),
            changed_at,
        )
        .await?;
        let event = OrderStatusChangedV1 {
            event_id: Uuid::now_v7(),
            order_id: id,
            user_id: order.user_id,
            from: change.from.as_str().to_owned(),
            to: change.to.as_str().to_owned(),
            cause: change.cause.to_owned(),
            version,
            changed_at,
            user_sequence: Some(sequence),
            // The relay numbers it in the shop just before publishing it.
            shop_sequence: None,
        };
        insert_outbox(&mut tx, &event, traceparent.as_deref()).await?;
        tx.commit().await?;
        self.created.notify_one();
        let mut order = self.one_with_lines(order).await?;
        order.status = change.to;
        order.version = version;
        self.changes.announce(&order).await;
        Ok(Changed::Moved(order))
    }

    /// Up to `limit` changes of `user`'s orders numbered after `after`, oldest first, and the
    /// user's newest number. A user's numbers commit in their order, so whatever a read sees
    /// past `after` has no gap before it.
    pub async fn changes_after(
        &self,
        user: i64,
        after: i64,
        limit: i32,
    ) -> Result<(Vec<ListedChange>, i64), OrdersError> {
        let latest: Option<i64> = sqlx::query_scalar(
            "SELECT last_sequence FROM order_change_sequences WHERE user_id = ?",
        )
        .bind(user)
        .fetch_optional(&self.pool)
        .await?;
        let rows: Vec<TransitionRow> = sqlx::query_as(&format!(
            "SELECT {TRANSITION_COLUMNS} FROM order_transitions \
             WHERE user_id = ? AND user_sequence > ? ORDER BY user_sequence LIMIT ?"
        ))
        .bind(user)
        .bind(after)
        .bind(limit.clamp(1, 500))
        .fetch_all(&self.pool)
        .await?;
        // A change committed after the counter was read may be listed: count it too.
        let newest = rows.last().and_then(|r| r.user_sequence).unwrap_or(0);
        Ok((listed(rows)?, newest.max(latest.unwrap_or(0))))
    }

    /// Up to `limit` changes in the shop numbered after `after`, oldest first, and the shop's
    /// newest number. The relay's numbers commit in their order, so whatever a read sees past
    /// `after` has no gap before it.
    pub async fn shop_changes_after(
        &self,
        after: i64,
        limit: i32,
    ) -> Result<(Vec<ListedChange>, i64), OrdersError> {
        let latest: Option<i64> =
            sqlx::query_scalar("SELECT last_sequence FROM shop_change_sequence WHERE id = 1")
                .fetch_optional(&self.pool)
                .await?;
        let rows: Vec<TransitionRow> = sqlx::query_as(&format!(
            "SELECT {TRANSITION_COLUMNS} FROM order_transitions \
             WHERE shop_sequence > ? ORDER BY shop_sequence LIMIT ?"
        ))
        .bind(after)
        .bind(limit.clamp(1, 500))
        .fetch_all(&self.pool)
        .await?;
        let newest = rows.last().and_then(|r| r.shop_sequence).unwrap_or(0);
        Ok((listed(rows)?, newest.max(latest.unwrap_or(0))))
    }

    /// Every status order `id` has had, oldest first.
    pub async fn timeline(&self, id: i64) -> Result<Vec<TimelineEntry>, OrdersError> {
        let rows: Vec<TransitionRow> = sqlx::query_as(&format!(
            "SELECT {TRANSITION_COLUMNS} FROM order_transitions WHERE order_id = ? ORDER BY version"
        ))
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(timeline_entry).collect()
    }

    /// One order.
    pub async fn get(&self, id: i64) -> Result<Option<OrderRecord>, OrdersError> {
        let row: Option<OrderRow> =
            sqlx::query_as(&format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = ?"))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        match row {
            Some(row) => Ok(Some(self.one_with_lines(row.try_into()?).await?)),
            None => Ok(None),
        }
    }

    /// A page of a user's orders, newest first, and the cursor of the next page.
    pub async fn list_by_user(
        &self,
        user_id: i64,
        limit: i32,
        after: Option<Cursor>,
    ) -> Result<(Vec<OrderRecord>, Option<Cursor>), OrdersError> {
        let limit = domain::page_size(limit);
        let rows: Vec<OrderRow> = match after {
            None => {
                sqlx::query_as(BY_USER_FIRST_PAGE)
                    .bind(user_id)
                    .bind(limit + 1)
                    .fetch_all(&self.pool)
                    .await?
            }
            Some(c) => {
                let at = c.created_at.naive_utc();
                sqlx::query_as(BY_USER_NEXT_PAGE)
                    .bind(user_id)
                    .bind(at)
                    .bind(at)
                    .bind(c.id)
                    .bind(limit + 1)
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        self.page_of(rows, limit).await
    }

    /// Up to `limit` of `rows` (read newest first, one more than the page) with their lines,
    /// and the cursor of the next page when there is one.
    async fn page_of(
        &self,
        rows: Vec<OrderRow>,
        limit: i32,
    ) -> Result<(Vec<OrderRecord>, Option<Cursor>), OrdersError> {
        let records = rows
            .into_iter()
            .map(OrderRecord::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        let records = self.with_lines(records).await?;
        Ok(domain::paginate(records, limit, |o: &OrderRecord| Cursor {
            created_at: o.created_at,
            id: o.id,
        }))
    }

    /// Every user's orders, newest first, only those in `status` when given.
    pub async fn list(
        &self,
        status: Option<OrderStatus>,
        limit: i32,
        after: Option<Cursor>,
    ) -> Result<(Vec<OrderRecord>, Option<Cursor>), OrdersError> {
        let limit = domain::page_size(limit);
        let mut filters = Vec::new();
        if status.is_some() {
            filters.push("status = ?");
        }
        if after.is_some() {
            filters.push("(created_at < ? OR (created_at = ? AND id < ?))");
        }
        let filter = if filters.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", filters.join(" AND "))
        };
        let sql = format!(
            "SELECT {ORDER_COLUMNS} FROM orders {filter} ORDER BY created_at DESC, id DESC LIMIT ?"
        );
        let mut query = sqlx::query_as::<_, OrderRow>(&sql);
        if let Some(status) = status {
            query = query.bind(status.as_str());
        }
        if let Some(c) = &after {
            let at = c.created_at.naive_utc();
            query = query.bind(at).bind(at).bind(c.id);
        }
        let rows = query.bind(limit + 1).fetch_all(&self.pool).await?;
        self.page_of(rows, limit).await
    }

    /// Number of outbox rows not yet confirmed by the broker.
    pub async fn pending_outbox(&self) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE published_at IS NULL")
            .fetch_one(&self.pool)
            .await
    }

    /// `(pending rows, age in seconds of the oldest pending row)`, for the outbox lag metrics.
    pub async fn outbox_lag(&self) -> Result<(i64, f64), sqlx::Error> {
        let (count, micros): (i64, Option<i64>) = sqlx::query_as(
            "SELECT COUNT(*), CAST(TIMESTAMPDIFF(MICROSECOND, MIN(created_at), CURRENT_TIMESTAMP(6)) AS SIGNED) \
             FROM outbox WHERE published_at IS NULL",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok((count, micros.unwrap_or(0).max(0) as f64 / 1e6))
    }

    /// Starts a transaction that locks up to `limit` pending outbox rows (skipping rows another
    /// relay replica holds) and returns them oldest first.
    pub async fn lock_pending(
        &self,
        limit: u32,
    ) -> Result<(Transaction<'static, MySql>, Vec<OutboxMessage>), sqlx::Error> {
        // READ COMMITTED: the locking read takes the rows and no gaps. Under REPEATABLE READ it
        // also locked the gap where new outbox rows go, so an order being placed waited for
        // the relay while the relay's update waited for that order's row: a deadlock, and a
        // 503 for the shopper.
        let mut tx = self
            .pool
            .begin_with("SET TRANSACTION ISOLATION LEVEL READ COMMITTED; START TRANSACTION")
            .await?;
        let rows: Vec<(i64, String, String, String, Option<String>)> = sqlx::query_as(
            "SELECT id, event_id, routing_key, payload, traceparent FROM outbox \
             WHERE published_at IS NULL ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED",
        )
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let messages = rows
            .into_iter()
            .map(
                |(id, event_id, routing_key, payload, traceparent)| OutboxMessage {
                    id,
                    event_id,
                    routing_key,
                    payload,
                    traceparent,
                },
            )
            .collect();
        Ok((tx, messages))
    }

    /// Gives each status change among `messages` its number in the shop and writes it into
    /// the message's payload; a change numbered before (by a relay that died before it could
    /// mark the change published) keeps its number. The numbers are taken in a transaction of
    /// their own that holds the shop's counter until it commits, so they commit in their order
    /// and are stored before any event carrying one is published.
    pub async fn number_changes(&self, messages: &mut [OutboxMessage]) -> Result<(), sqlx::Error> {
        let mut changes: Vec<(&mut OutboxMessage, OrderStatusChangedV1)> = messages
            .iter_mut()
            .filter(|m| m.routing_key == OrderStatusChangedV1::ROUTING_KEY)
            .filter_map(|m| {
                let change = serde_json::from_str(&m.payload).ok()?;
                Some((m, change))
            })
            .collect();
        if changes.is_empty() {
            return Ok(());
        }
        let mut tx = self
            .pool
            .begin_with("SET TRANSACTION ISOLATION LEVEL READ COMMITTED; START TRANSACTION")
            .await?;
        let mut last: i64 = sqlx::query_scalar(
            "SELECT last_sequence FROM shop_change_sequence WHERE id = 1 FOR UPDATE",
        )
        .fetch_one(&mut *tx)
        .await?;
        let orders = vec!["?"; changes.len()].join(",");
        let sql = format!(
            "SELECT order_id, version, shop_sequence FROM order_transitions WHERE order_id IN ({orders})"
        );
        let mut query = sqlx::query_as(&sql);
        for (_, change) in &changes {
            query = query.bind(change.order_id);
        }
        let given: Vec<(i64, i32, Option<i64>)> = query.fetch_all(&mut *tx).await?;
        let taken = last;
        for (_, change) in &mut changes {
            let entry = given.iter().find(|(order, version, _)| {
                *order == change.order_id && *version == change.version
            });
            // A change whose timeline entry is missing is published as it is, unnumbered.
            let Some((order, version, number)) = entry else {
                continue;
            };
            let number = match number {
                Some(n) => *n,
                None => {
                    last += 1;
                    sqlx::query(
                        "UPDATE order_transitions SET shop_sequence = ? WHERE order_id = ? AND version = ?",
                    )
                    .bind(last)
                    .bind(order)
                    .bind(version)
                    .execute(&mut *tx)
                    .await?;
                    last
                }
            };
            change.shop_sequence = Some(number);
        }
        if last > taken {
            sqlx::query("UPDATE shop_change_sequence SET last_sequence = ? WHERE id = 1")
                .bind(last)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        for (message, change) in changes {
            if change.shop_sequence.is_some() {
                message.payload =
                    serde_json::to_string(&change).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
            }
        }
        Ok(())
    }
}

/// First page of a user's orders: served by `idx_orders_user_created` (user_id, created_at),
/// whose entries also carry the primary key, so no filesort is needed.
pub const BY_USER_FIRST_PAGE: &str = "SELECT id, user_id, product_id, quantity, status, created_at, version, total_minor, currency FROM orders \
     WHERE user_id = ? ORDER BY created_at DESC, id DESC LIMIT ?";

/// Following pages: strictly after the cursor's `(created_at, id)`.
pub const BY_USER_NEXT_PAGE: &str = "SELECT id, user_id, product_id, quantity, status, created_at, version, total_minor, currency FROM orders \
     WHERE user_id = ? AND (created_at < ? OR (created_at = ? AND id < ?)) \
     ORDER BY created_at DESC, id DESC LIMIT ?";

/// The timeline entry `row` holds.
fn timeline_entry(row: TransitionRow) -> Result<TimelineEntry, OrdersError> {
    let order = row.order_id;
    let status = |s: &str| {
        OrderStatus::parse(s).ok_or_else(|| {
            OrdersError::Internal(format!("order {order}'s timeline has unknown status {s:?}"))
        })
    };
    Ok(TimelineEntry {
        version: row.version,
        from: row.from_status.as_deref().map(status).transpose()?,
        to: status(&row.to_status)?,
        cause: row.cause,
        trace_id: row.trace_id,
        at: row.changed_at.and_utc(),
        sequence: row.user_sequence,
        shop_sequence: row.shop_sequence,
    })
}

/// Changes of status read from `order_transitions`, each with its order and user.
fn listed(rows: Vec<TransitionRow>) -> Result<Vec<ListedChange>, OrdersError> {
    rows.into_iter()
        .map(|row| {
            let order_id = row.order_id;
            let user_id = row.user_id.ok_or_else(|| {
                OrdersError::Internal(format!("order {order_id}'s change has no user"))
            })?;
            Ok(ListedChange {
                order_id,
                user_id,
                entry: timeline_entry(row)?,
            })
        })
        .collect()
}

/// One entry of an order's timeline, as it is written.
struct Transition<'a> {
    order_id: i64,
    version: i32,
    from: Option<OrderStatus>,
    to: OrderStatus,
    cause: &'a str,
    /// The user and their sequence number, for a change of status (placing has none).
    user: Option<(i64, i64)>,
}

/// Appends one entry to an order's timeline.
async fn insert_transition(
    tx: &mut Transaction<'_, MySql>,
    t: Transition<'_>,
    traceparent: Option<&str>,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    // `00-<trace id>-<span id>-<flags>`: the timeline keeps the trace id.
    let trace_id = traceparent.and_then(|t| t.split('-').nth(1));
    sqlx::query(
        "INSERT INTO order_transitions \
         (order_id, version, from_status, to_status, cause, trace_id, changed_at, user_id, user_sequence) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(t.order_id)
    .bind(t.version)
    .bind(t.from.map(OrderStatus::as_str))
    .bind(t.to.as_str())
    .bind(t.cause)
    .bind(trace_id)
    .bind(at.naive_utc())
    .bind(t.user.map(|(user, _)| user))
    .bind(t.user.map(|(_, sequence)| sequence))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Takes `user`'s next change sequence number, locking their counter until `tx` ends.
async fn next_user_sequence(
    tx: &mut Transaction<'_, MySql>,
    user: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query(
        "INSERT INTO order_change_sequences (user_id, last_sequence) VALUES (?, 1) \
         ON DUPLICATE KEY UPDATE last_sequence = last_sequence + 1",
    )
    .bind(user)
    .execute(&mut **tx)
    .await?;
    sqlx::query_scalar("SELECT last_sequence FROM order_change_sequences WHERE user_id = ?")
        .bind(user)
        .fetch_one(&mut **tx)
        .await
}

async fn insert_outbox<E: Event>(
    tx: &mut Transaction<'_, MySql>,
    event: &E,
    traceparent: Option<&str>,
) -> Result<(), sqlx::Error> {
    // A payload that cannot be written fails the order's transaction: an event is never
    // stored empty.
    let payload = serde_json::to_string(event).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query(
        "INSERT INTO outbox (event_id, routing_key, payload, traceparent) VALUES (?, ?, ?, ?)",
    )
    .bind(event.event_id().to_string())
    .bind(E::ROUTING_KEY)
    .bind(payload)
    .bind(traceparent)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Marks rows published and records attempts of the failed ones, then commits.
pub async fn finish_batch(
    mut tx: Transaction<'static, MySql>,
    published: &[i64],
    failed: &[i64],
) -> Result<(), sqlx::Error> {
    for (ids, sql) in [
        (
            published,
            "UPDATE outbox SET published_at = CURRENT_TIMESTAMP(6), attempts = attempts + 1 WHERE id IN ",
        ),
        (
            failed,
            "UPDATE outbox SET attempts = attempts + 1 WHERE id IN ",
        ),
    ] {
        if ids.is_empty() {
            continue;
        }
        let placeholders = vec!["?"; ids.len()].join(",");
        let sql = format!("{sql}({placeholders})");
        let mut q = sqlx::query(&sql);
        for id in ids {
            q = q.bind(id);
        }
        q.execute(&mut *tx).await?;
    }
    tx.commit().await
}
