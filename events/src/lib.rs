//! Event contracts that services exchange over RabbitMQ.
//!
//! The JSON Schema of each event is committed under `schema/events/`; a test keeps the Rust
//! types and those files in agreement, and [`Event::from_json`] validates incoming
//! payloads against the committed schema, so a producer and a consumer can only disagree loudly.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Topic exchange that order events are published to.
pub const ORDERS_EXCHANGE: &str = "orders";
/// Routing key of [`OrderCreatedV1`].
pub const ORDER_CREATED_ROUTING_KEY: &str = "order.created";
/// Queue the notifications service consumes [`OrderCreatedV1`] from.
pub const ORDER_CREATED_QUEUE: &str = "order.created";
/// The committed JSON Schema of [`OrderCreatedV1`].
pub const ORDER_CREATED_V1_SCHEMA: &str = include_str!("../../schema/events/order-created.v1.json");

/// Emitted once for every order that the orders service stores.
///
/// Consumers ignore fields they do not know (the schema leaves `additionalProperties` open),
/// so a producer may add an optional field without a new version: during a rolling deploy the
/// old consumers accept the new producers' events. Any other change needs a new version
/// (`order-created.v2.json`), which `cargo xtask lint` enforces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(
    title = "OrderCreatedV1",
    description = "Emitted once for every order that the orders service stores (routing key `order.created`)."
)]
pub struct OrderCreatedV1 {
    /// Unique id of this event; consumers deduplicate on it.
    pub event_id: Uuid,
    /// Id of the created order.
    #[schemars(range(min = 1))]
    pub order_id: i64,
    /// Id of the user who placed the order.
    #[schemars(range(min = 1))]
    pub user_id: i64,
    /// Id of the ordered product.
    #[schemars(range(min = 1))]
    pub product_id: i64,
    /// Number of items, 1 to 1000.
    #[schemars(range(min = 1, max = 1000))]
    pub quantity: i32,
    /// When the order was created (RFC 3339, UTC).
    pub created_at: DateTime<Utc>,
}

/// Why a payload is not a valid event.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// The payload is not JSON.
    #[error("payload is not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    /// The payload is JSON but breaks the committed schema.
    #[error("payload violates {schema}: {reason}")]
    SchemaViolation {
        /// Which schema was broken.
        schema: &'static str,
        /// The first violation found.
        reason: String,
    },
}

/// An event contract: its Rust type, the JSON Schema committed for it under `schema/events/`,
/// and its routing key. A test keeps the two in agreement; consumers parse through
/// [`Event::from_json`], which checks the payload against the committed schema first.
pub trait Event: Serialize + for<'de> Deserialize<'de> + JsonSchema + Sized {
    /// The committed schema's file name (`order-created.v1.json`).
    const SCHEMA_FILE: &'static str;
    /// The committed schema.
    const SCHEMA: &'static str;
    /// The routing key it is published with.
    const ROUTING_KEY: &'static str;

    /// The committed schema, compiled once.
    fn validator() -> &'static jsonschema::Validator;

    /// Unique id of this event; consumers deduplicate on it.
    fn event_id(&self) -> Uuid;

    /// Parses and schema-validates a payload as received from the broker.
    fn from_json(payload: &[u8]) -> Result<Self, EventError> {
        let value: serde_json::Value =
            serde_json::from_slice(payload).map_err(EventError::NotJson)?;
        if let Some(err) = Self::validator().iter_errors(&value).next() {
            return Err(EventError::SchemaViolation {
                schema: Self::SCHEMA_FILE,
                reason: format!("{} at {}", err, err.instance_path),
            });
        }
        serde_json::from_value(value).map_err(|e| EventError::SchemaViolation {
            schema: Self::SCHEMA_FILE,
            reason: e.to_string(),
        })
    }

    /// Serializes the event as published to the broker.
    fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("event serializes")
    }

    /// The schema derived from the Rust type, as it must be committed.
    fn derived_schema() -> serde_json::Value {
        serde_json::to_value(schemars::schema_for!(Self)).expect("schema serializes")
    }
}

/// Compiles a committed schema (start-up: the schemas are part of the binary).
fn compile(schema: &str) -> jsonschema::Validator {
    let schema: serde_json::Value =
        serde_json::from_str(schema).expect("committed event schema is JSON");
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("committed event schema is a valid JSON Schema")
}

impl Event for OrderCreatedV1 {
    const SCHEMA_FILE: &'static str = "order-created.v1.json";
    const SCHEMA: &'static str = ORDER_CREATED_V1_SCHEMA;
    const ROUTING_KEY: &'static str = ORDER_CREATED_ROUTING_KEY;

    fn validator() -> &'static jsonschema::Validator {
        static VALIDATOR: LazyLock<jsonschema::Validator> =
            LazyLock::new(|| compile(ORDER_CREATED_V1_SCHEMA));
        &VALIDATOR
    }

    fn event_id(&self) -> Uuid {
        self.event_id
    }
}

/// Routing key of [`OrderStatusChangedV1`].
pub const ORDER_STATUS_CHANGED_ROUTING_KEY: &str = "order.status-changed";
/// The committed JSON Schema of [`OrderStatusChangedV1`].
pub const ORDER_STATUS_CHANGED_V1_SCHEMA: &str =
    include_str!("../../schema/events/order-status-changed.v1.json");

/// Emitted once for every change of an order's status, in the transaction that makes it;
/// `version` orders an order's changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(
    title = "OrderStatusChangedV1",
    description = "Emitted once for every change of an order's status (routing key `order.status-changed`). Statuses are the `OrderStatus` values of schema/openapi/orders.yaml."
)]
pub struct OrderStatusChangedV1 {
    /// Unique id of this event; consumers deduplicate on it.
    pub event_id: Uuid,
    /// Id of the order.
    #[schemars(range(min = 1))]
    pub order_id: i64,
    /// Id of the user who placed it.
    #[schemars(range(min = 1))]
    pub user_id: i64,
    /// The status it left.
    #[schemars(regex(pattern = r"^[a-z_]{1,32}$"))]
    pub from: String,
    /// The status it reached.
    #[schemars(regex(pattern = r"^[a-z_]{1,32}$"))]
    pub to: String,
    /// What caused the change, in a few words.
    #[schemars(length(min = 1, max = 200))]
    pub cause: String,
    /// The order's version after the change: 2 for its first change, one more for each next.
    #[schemars(range(min = 2))]
    pub version: i32,
    /// When it changed (RFC 3339, UTC).
    pub changed_at: DateTime<Utc>,
    #[doc = "The change's place among the status changes of all the user's orders: 1 for the first, one more for each next, numbered in commit order. Absent from events of orders services older than it."]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub user_sequence: Option<i64>,
    #[doc = "The change's place among every status change in the shop: numbered by the outbox relay just before it publishes the change, in the order the numbers commit, and kept if the change is published again. Absent from events of orders services older than it."]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub shop_sequence: Option<i64>,
}

impl Event for OrderStatusChangedV1 {
    const SCHEMA_FILE: &'static str = "order-status-changed.v1.json";
    const SCHEMA: &'static str = ORDER_STATUS_CHANGED_V1_SCHEMA;
    const ROUTING_KEY: &'static str = ORDER_STATUS_CHANGED_ROUTING_KEY;

    fn validator() -> &'static jsonschema::Validator {
        static VALIDATOR: LazyLock<jsonschema::Validator> =
            LazyLock::new(|| compile(ORDER_STATUS_CHANGED_V1_SCHEMA));
        &VALIDATOR
    }

    fn event_id(&self) -> Uuid {
        self.event_id
    }
}

/// The kind of RabbitMQ queue `order.created`, its retry queues and its DLQ are
/// (`RABBITMQ_QUEUE_TYPE`). A queue's type is fixed when it is first declared: declaring it
/// again as the other type fails, so every process of one deployment must agree.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum QueueType {
    /// Raft-replicated across the cluster's nodes; survives the loss of a minority of them.
    /// Retry queues dead-letter at-least-once (`x-dead-letter-strategy`).
    #[default]
    Quorum,
    /// A single node's queue: lost with its node unless mirrored; dead-lettering is
    /// at-most-once. For brokers older than RabbitMQ 3.10 and existing classic deployments.
    Classic,
}

impl QueueType {
    /// Its `x-queue-type` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Quorum => "quorum",
            Self::Classic => "classic",
        }
    }
}

impl std::fmt::Display for QueueType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `RABBITMQ_QUEUE_TYPE` that is neither `quorum` nor `classic`.
#[derive(Debug, thiserror::Error)]
#[error("unknown queue type {0:?}: expected `quorum` or `classic`")]
pub struct UnknownQueueType(String);

impl std::str::FromStr for QueueType {
    type Err = UnknownQueueType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "quorum" => Ok(Self::Quorum),
            "classic" => Ok(Self::Classic),
            _ => Err(UnknownQueueType(s.to_owned())),
        }
    }
}

/// Names of the RabbitMQ objects that carry [`OrderCreatedV1`]. Production uses
/// [`OrderCreatedTopology::default`]; tests give each run its own names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderCreatedTopology {
    /// Durable topic exchange the orders service publishes to.
    pub exchange: String,
    /// Durable queue the notifications service consumes; bound with [`ORDER_CREATED_ROUTING_KEY`].
    pub queue: String,
    /// The type of the queue, its retry queues and its DLQ.
    pub queue_type: QueueType,
}

impl Default for OrderCreatedTopology {
    fn default() -> Self {
        Self {
            exchange: ORDERS_EXCHANGE.to_owned(),
            queue: ORDER_CREATED_QUEUE.to_owned(),
            queue_type: QueueType::default(),
        }
    }
}

impl OrderCreatedTopology {
    /// Queue that holds a message for its `attempt`-th retry (1-based) until its TTL expires.
    pub fn retry_queue(&self, attempt: u32) -> String {
        format!("{}.retry.{attempt}", self.queue)
    }

    /// Dead-letter queue for messages that cannot be processed.
    pub fn dead_letter_queue(&self) -> String {
        format!("{}.dlq", self.queue)
    }
}
