//! Notification storage: the [`NotificationStore`] trait and its MongoDB implementation.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use mongodb::bson::oid::ObjectId;
use mongodb::bson::{self, Document, doc};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::{ClientOptions, IndexOptions};
use mongodb::{Client, Collection, IndexModel};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::domain::{NewNotification, NotificationStatus, PageToken};
use crate::error::NotificationsError;

/// A stored notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredNotification {
    /// Store id (hex ObjectId).
    pub id: String,
    /// Event it was made from.
    pub event_id: String,
    /// Order id.
    pub order_id: i64,
    /// User id.
    pub user_id: i64,
    /// Text.
    pub message: String,
    /// Delivery state.
    pub status: NotificationStatus,
    /// When it was delivered to the inbox.
    pub sent_at: Option<DateTime<Utc>>,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
}

/// Whether an insert stored a new notification or found the event already stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertOutcome {
    /// Stored now.
    Inserted,
    /// The event id was already stored (a redelivery); nothing changed.
    Duplicate,
}

/// Where notifications live. Implemented for MongoDB; tests may wrap it to inject failures.
#[async_trait::async_trait]
pub trait NotificationStore: Send + Sync + 'static {
    /// Stores `n` unless its event id is already stored.
    async fn insert_if_absent(
        &self,
        n: &NewNotification,
    ) -> Result<InsertOutcome, NotificationsError>;
    /// An order's notifications, newest first. Reads are counted against `reader` (the
    /// caller's user id), who may have only so many running at once.
    async fn by_order(
        &self,
        reader: i64,
        order_id: i64,
    ) -> Result<Vec<StoredNotification>, NotificationsError>;
    /// The notifications of every order in `order_ids`, newest first, in one query.
    async fn by_orders(
        &self,
        reader: i64,
        order_ids: &[i64],
    ) -> Result<Vec<StoredNotification>, NotificationsError>;
    /// A page of a user's notifications, newest first, and the next page's token.
    async fn by_user(
        &self,
        reader: i64,
        user_id: i64,
        limit: i64,
        after: Option<PageToken>,
    ) -> Result<(Vec<StoredNotification>, Option<PageToken>), NotificationsError>;
    /// Checks the store answers.
    async fn ping(&self) -> Result<(), NotificationsError>;
}

/// Document shape in the `notifications` collection.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NotificationDoc {
    #[serde(rename = "_id")]
    id: ObjectId,
    event_id: String,
    order_id: i64,
    user_id: i64,
    message: String,
    status: NotificationStatus,
    sent_at: Option<bson::DateTime>,
    created_at: bson::DateTime,
}

impl From<NotificationDoc> for StoredNotification {
    fn from(d: NotificationDoc) -> Self {
        Self {
            id: d.id.to_hex(),
            event_id: d.event_id,
            order_id: d.order_id,
            user_id: d.user_id,
            message: d.message,
            status: d.status,
            sent_at: d.sent_at.map(to_chrono),
            created_at: to_chrono(d.created_at),
        }
    }
}

fn to_chrono(t: bson::DateTime) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or_default()
}

/// MongoDB-backed store: database `notifications` (configurable), collection `notifications`.
#[derive(Clone)]
pub struct MongoNotificationStore {
    client: Client,
    collection: Collection<NotificationDoc>,
    timeout: Duration,
    /// Reads running against MongoDB, in all and per reader.
    reads: Arc<ReadSlots>,
    /// Pings in a row that went unanswered in time.
    slow_pings: Arc<std::sync::atomic::AtomicU32>,
}

/// Pings in a row that may go unanswered in time before a store that still accepts
/// connections counts as down: a slow answer means busy (the ping says `StoreSlow`), a store
/// that stays silent is gone (`StoreUnavailable`).
pub const SLOW_PINGS_BEFORE_DOWN: u32 = 3;

/// Connections in the driver's pool.
pub const POOL_SIZE: u32 = 20;

/// Reads that may run at once: half the pool, so however many callers ask (or give up and
/// leave their reads running), the consumer's writes and the health pings always find a
/// connection. A read waits for its turn without touching MongoDB, so a caller that goes
/// away while it waits costs the store nothing.
pub const MAX_CONCURRENT_READS: usize = POOL_SIZE as usize / 2;

/// Who may run how many reads. A read keeps its places until it ends, even after its caller
/// gave up (the driver cannot abandon an operation mid-flight), so a caller who floods the
/// store and leaves holds no more of it than its own share.
struct ReadSlots {
    total: Arc<Semaphore>,
    per_reader: std::sync::Mutex<std::collections::HashMap<i64, Arc<Semaphore>>>,
    max_per_reader: usize,
}

/// How long a read waits for one of its reader's places before it is refused: long enough
/// for a read the same caller abandoned a moment ago to end, short enough that a caller
/// flooding the store hears "too many" instead of queueing.
const PLACE_WAIT: Duration = Duration::from_millis(100);

/// A reader's place, given back when the read ends.
struct ReaderSlot {
    slots: Arc<ReadSlots>,
    reader: i64,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl ReadSlots {
    async fn enter(self: &Arc<Self>, reader: i64) -> Result<ReaderSlot, NotificationsError> {
        let places = {
            let mut per_reader = self
                .per_reader
                .lock()
                .map_err(|e| NotificationsError::Store(e.to_string()))?;
            per_reader
                .entry(reader)
                .or_insert_with(|| Arc::new(Semaphore::new(self.max_per_reader)))
                .clone()
        };
        let waited = tokio::time::timeout(PLACE_WAIT, places.acquire_owned()).await;
        let permit = match waited {
            Ok(Ok(permit)) => permit,
            Ok(Err(e)) => return Err(NotificationsError::Store(e.to_string())),
            Err(_) => {
                return Err(NotificationsError::TooManyCalls(format!(
                    "caller {reader} has {} reads running, the most one caller may; retry when one ends",
                    self.max_per_reader
                )));
            }
        };
        Ok(ReaderSlot {
            slots: self.clone(),
            reader,
            permit: Some(permit),
        })
    }
}

impl Drop for ReaderSlot {
    fn drop(&mut self) {
        if let Ok(mut per_reader) = self.slots.per_reader.lock() {
            self.permit.take();
            // Nobody else holds or awaits this reader's places: forget the reader.
            if per_reader
                .get(&self.reader)
                .is_some_and(|places| Arc::strong_count(places) == 1)
            {
                per_reader.remove(&self.reader);
            }
        }
    }
}

/// Reads one caller may have running by default (`MONGO_MAX_READS_PER_CALLER`).
pub const DEFAULT_READS_PER_CALLER: usize = 4;

fn classify(e: mongodb::error::Error) -> NotificationsError {
    match *e.kind {
        ErrorKind::ServerSelection { .. }
        | ErrorKind::Io(_)
        | ErrorKind::ConnectionPoolCleared { .. } => {
            NotificationsError::StoreUnavailable(e.to_string())
        }
        _ if e.contains_label("RetryableWriteError") => {
            NotificationsError::StoreUnavailable(e.to_string())
        }
        _ => NotificationsError::Store(e.to_string()),
    }
}

/// The index of an order's notifications, newest first.
pub const ORDER_INDEX: &str = "orderId_1_createdAt_-1__id_-1";
/// The index of a user's notifications, newest first.
pub const USER_INDEX: &str = "userId_1_createdAt_-1__id_-1";
/// Indexes earlier versions created, which [`ORDER_INDEX`] and [`USER_INDEX`] replace.
const REPLACED_INDEXES: [&str; 2] = ["orderId_1", "userId_1_createdAt_-1"];
/// MongoDB's `IndexNotFound` error code.
const INDEX_NOT_FOUND: i32 = 27;

impl MongoNotificationStore {
    /// Every notification matching `filter`, newest first, within the store timeout.
    async fn newest_first(
        &self,
        reader: i64,
        filter: bson::Document,
    ) -> Result<Vec<StoredNotification>, NotificationsError> {
        let (collection, max_time) = (self.collection.clone(), self.timeout);
        self.detached_read(reader, async move {
            let cursor = collection
                .find(filter)
                .sort(doc! { "createdAt": -1, "_id": -1 })
                .max_time(max_time)
                .await
                .map_err(classify)?;
            let docs: Vec<NotificationDoc> = cursor.try_collect().await.map_err(classify)?;
            Ok(docs.into_iter().map(Into::into).collect())
        })
        .await
    }
    /// Connects lazily to `url` (the driver connects on first use and reconnects by itself);
    /// operations fail after `timeout` when no server answers.
    pub async fn connect(
        url: &str,
        database: &str,
        timeout: Duration,
    ) -> Result<Self, NotificationsError> {
        let mut options = ClientOptions::parse(url)
            .await
            .map_err(|e| NotificationsError::Store(format!("MONGO_URL: {e}")))?;
        options.app_name = Some("shopmesh-notifications".to_owned());
        options.server_selection_timeout = Some(timeout);
        options.connect_timeout = Some(timeout);
        options.max_pool_size = Some(POOL_SIZE);
        let client = Client::with_options(options).map_err(classify)?;
        let collection = client.database(database).collection("notifications");
        Ok(Self {
            client,
            collection,
            timeout,
            reads: Arc::new(ReadSlots {
                total: Arc::new(Semaphore::new(MAX_CONCURRENT_READS)),
                per_reader: std::sync::Mutex::default(),
                max_per_reader: DEFAULT_READS_PER_CALLER,
            }),
            slow_pings: Arc::default(),
        })
    }

    /// The same store, letting one caller run at most `n` reads at once.
    pub fn with_reads_per_caller(mut self, n: usize) -> Self {
        self.reads = Arc::new(ReadSlots {
            total: self.reads.total.clone(),
            per_reader: std::sync::Mutex::default(),
            max_per_reader: n.max(1),
        });
        self
    }

    /// A read for `reader`, run as [`Self::detached`] once one of `reader`'s places and one of
    /// the store's read slots are free; both stay taken until the read ends, even when its
    /// caller gave up. A reader whose places stay taken for [`PLACE_WAIT`] is refused.
    async fn detached_read<T, F>(&self, reader: i64, op: F) -> Result<T, NotificationsError>
    where
        F: std::future::Future<Output = Result<T, NotificationsError>> + Send + 'static,
        T: Send + 'static,
    {
        let place = self.reads.enter(reader).await?;
        let slot = tokio::time::timeout(self.timeout, self.reads.total.clone().acquire_owned())
            .await
            .map_err(|_| {
                NotificationsError::StoreSlow(format!(
                    "every read slot stayed busy for {:?}",
                    self.timeout
                ))
            })?
            .map_err(|e| NotificationsError::Store(e.to_string()))?;
        self.detached(async move {
            let _held = (slot, place);
            op.await
        })
        .await
    }

    /// Runs one store operation in a task of its own and waits at most the store's timeout.
    /// A caller that gives up (a cancelled gRPC call, a client deadline) then never drops a
    /// driver operation mid-flight, which the driver does not survive: the pooled connection
    /// stays checked out and later calls wait for it. The operation itself finishes, or ends at
    /// its server-side `maxTimeMS`, in the background.
    async fn detached<T, F>(&self, op: F) -> Result<T, NotificationsError>
    where
        F: std::future::Future<Output = Result<T, NotificationsError>> + Send + 'static,
        T: Send + 'static,
    {
        match tokio::time::timeout(self.timeout, tokio::spawn(op)).await {
            Ok(Ok(result)) => result,
            Ok(Err(failed)) => Err(NotificationsError::Store(format!(
                "store operation failed: {failed}"
            ))),
            Err(_) => Err(NotificationsError::StoreSlow(format!(
                "MongoDB did not answer within {:?}",
                self.timeout
            ))),
        }
    }

    /// Creates the indexes: by order and by user, each newest first (so both reads walk an
    /// index in the order they return, however large the collection), and unique eventId;
    /// drops the ones earlier versions made that these replace. Idempotent.
    pub async fn ensure_indexes(&self) -> Result<(), NotificationsError> {
        let index = |keys: Document, name: &str, unique: bool| {
            IndexModel::builder()
                .keys(keys)
                .options(
                    IndexOptions::builder()
                        .name(name.to_owned())
                        .unique(unique)
                        .build(),
                )
                .build()
        };
        self.collection
            .create_indexes([
                index(
                    doc! { "orderId": 1, "createdAt": -1, "_id": -1 },
                    ORDER_INDEX,
                    false,
                ),
                index(
                    doc! { "userId": 1, "createdAt": -1, "_id": -1 },
                    USER_INDEX,
                    false,
                ),
                index(doc! { "eventId": 1 }, "eventId_unique", true),
            ])
            .await
            .map_err(classify)?;
        let existing = self.index_names().await?;
        for name in REPLACED_INDEXES
            .iter()
            .filter(|n| existing.iter().any(|e| e == *n))
        {
            match self.collection.drop_index(*name).await {
                // Another replica dropped it first.
                Err(e) if matches!(*e.kind, ErrorKind::Command(ref c) if c.code == INDEX_NOT_FOUND) =>
                    {}
                other => other.map_err(classify)?,
            }
        }
        Ok(())
    }

    /// The index the newest-first read of `filter` walks, from the server's query plan
    /// (`None` for a collection scan).
    pub async fn index_used(&self, filter: Document) -> Result<Option<String>, NotificationsError> {
        let explain = doc! {
            "explain": {
                "find": self.collection.name(),
                "filter": filter,
                "sort": { "createdAt": -1, "_id": -1 },
            },
            "verbosity": "queryPlanner",
        };
        let plan = self
            .client
            .database(self.collection.namespace().db.as_str())
            .run_command(explain)
            .await
            .map_err(classify)?;
        fn scanned(stage: &Document) -> Option<String> {
            if stage.get_str("stage") == Ok("IXSCAN") {
                return stage.get_str("indexName").ok().map(str::to_owned);
            }
            let inputs = stage.get_document("inputStage").into_iter().chain(
                stage
                    .get_array("inputStages")
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s.as_document()),
            );
            inputs.into_iter().find_map(scanned)
        }
        Ok(plan
            .get_document("queryPlanner")
            .and_then(|q| q.get_document("winningPlan"))
            .ok()
            .and_then(scanned))
    }

    /// Names of the collection's indexes.
    pub async fn index_names(&self) -> Result<Vec<String>, NotificationsError> {
        self.collection.list_index_names().await.map_err(classify)
    }

    /// Number of stored notifications.
    pub async fn count(&self) -> Result<u64, NotificationsError> {
        self.collection
            .count_documents(doc! {})
            .await
            .map_err(classify)
    }

    /// Drops the whole database (tests).
    pub async fn drop_database(&self) -> Result<(), NotificationsError> {
        self.client
            .database(self.collection.namespace().db.as_str())
            .drop()
            .await
            .map_err(classify)
    }
}

#[async_trait::async_trait]
impl NotificationStore for MongoNotificationStore {
    async fn insert_if_absent(
        &self,
        n: &NewNotification,
    ) -> Result<InsertOutcome, NotificationsError> {
        let now = bson::DateTime::now();
        let doc = NotificationDoc {
            id: ObjectId::new(),
            event_id: n.event_id.clone(),
            order_id: n.order_id,
            user_id: n.user_id,
            message: n.message.clone(),
            status: NotificationStatus::Sent,
            sent_at: Some(now),
            created_at: now,
        };
        let collection = self.collection.clone();
        self.detached(async move {
            match collection.insert_one(doc).await {
                Ok(_) => Ok(InsertOutcome::Inserted),
                Err(e) => match &*e.kind {
                    ErrorKind::Write(WriteFailure::WriteError(w)) if w.code == 11000 => {
                        Ok(InsertOutcome::Duplicate)
                    }
                    _ => Err(classify(e)),
                },
            }
        })
        .await
    }

    async fn by_orders(
        &self,
        reader: i64,
        order_ids: &[i64],
    ) -> Result<Vec<StoredNotification>, NotificationsError> {
        self.newest_first(reader, doc! { "orderId": { "$in": order_ids.to_vec() } })
            .await
    }

    async fn by_order(
        &self,
        reader: i64,
        order_id: i64,
    ) -> Result<Vec<StoredNotification>, NotificationsError> {
        self.newest_first(reader, doc! { "orderId": order_id })
            .await
    }

    async fn by_user(
        &self,
        reader: i64,
        user_id: i64,
        limit: i64,
        after: Option<PageToken>,
    ) -> Result<(Vec<StoredNotification>, Option<PageToken>), NotificationsError> {
        let filter = match &after {
            None => doc! { "userId": user_id },
            Some(t) => {
                let at = bson::DateTime::from_millis(t.created_at_millis);
                let id = ObjectId::parse_str(&t.id).map_err(|_| {
                    NotificationsError::InvalidArgument("page_token is not valid".into())
                })?;
                doc! { "userId": user_id, "$or": [
                    { "createdAt": { "$lt": at } },
                    { "createdAt": at, "_id": { "$lt": id } },
                ] }
            }
        };
        let (collection, max_time) = (self.collection.clone(), self.timeout);
        let mut docs: Vec<NotificationDoc> = self
            .detached_read(reader, async move {
                let cursor = collection
                    .find(filter)
                    .sort(doc! { "createdAt": -1, "_id": -1 })
                    .limit(limit + 1)
                    .max_time(max_time)
                    .await
                    .map_err(classify)?;
                cursor.try_collect().await.map_err(classify)
            })
            .await?;
        let next = if docs.len() as i64 > limit {
            docs.truncate(limit as usize);
            docs.last().map(|d| PageToken {
                created_at_millis: d.created_at.timestamp_millis(),
                id: d.id.to_hex(),
            })
        } else {
            None
        };
        Ok((docs.into_iter().map(Into::into).collect(), next))
    }

    async fn ping(&self) -> Result<(), NotificationsError> {
        use std::sync::atomic::Ordering;
        let admin = self.client.database("admin");
        let answered = self
            .detached(async move {
                admin
                    .run_command(doc! { "ping": 1 })
                    .await
                    .map(|_| ())
                    .map_err(classify)
            })
            .await;
        match answered {
            Err(NotificationsError::StoreSlow(e)) => {
                let slow = self.slow_pings.fetch_add(1, Ordering::Relaxed) + 1;
                Err(if slow >= SLOW_PINGS_BEFORE_DOWN {
                    NotificationsError::StoreUnavailable(format!("{slow} pings in a row: {e}"))
                } else {
                    NotificationsError::StoreSlow(e)
                })
            }
            other => {
                self.slow_pings.store(0, Ordering::Relaxed);
                other
            }
        }
    }
}
