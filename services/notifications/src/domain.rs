//! Notification rules as plain functions: what a notification says, how pages are addressed.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use shopmesh_events::{Event, EventError, OrderCreatedV1, OrderStatusChangedV1};

use crate::error::NotificationsError;

/// Page size when the request says 0.
pub const DEFAULT_PAGE_SIZE: i32 = 20;
/// Largest page size.
pub const MAX_PAGE_SIZE: i32 = 100;

/// Delivery state of a notification, stored as its lowercase name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotificationStatus {
    /// Not delivered yet.
    Pending,
    /// Delivered to the user's inbox.
    Sent,
    /// Delivery failed.
    Failed,
}

/// A notification about to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNotification {
    /// Event it was made from; unique.
    pub event_id: String,
    /// Order it is about.
    pub order_id: i64,
    /// User it is for.
    pub user_id: i64,
    /// Text shown to the user.
    pub message: String,
}

/// An event about an order that tells its user something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderEvent {
    /// The order was placed.
    Placed(OrderCreatedV1),
    /// The order's status changed.
    StatusChanged(OrderStatusChangedV1),
}

impl OrderEvent {
    /// Parses `payload` as the event its `event-type` header names (the routing key it was
    /// published with, kept through retries); messages without the header are `order.created`,
    /// as every message was before there were others.
    pub fn parse(event_type: Option<&str>, payload: &[u8]) -> Result<Self, EventError> {
        match event_type {
            None => OrderCreatedV1::from_json(payload).map(Self::Placed),
            Some(OrderCreatedV1::ROUTING_KEY) => {
                OrderCreatedV1::from_json(payload).map(Self::Placed)
            }
            Some(OrderStatusChangedV1::ROUTING_KEY) => {
                OrderStatusChangedV1::from_json(payload).map(Self::StatusChanged)
            }
            Some(other) => Err(EventError::SchemaViolation {
                schema: "event-type",
                reason: format!("no event is called {other:?}"),
            }),
        }
    }

    /// The event's id.
    pub fn event_id(&self) -> uuid::Uuid {
        match self {
            Self::Placed(e) => e.event_id(),
            Self::StatusChanged(e) => e.event_id(),
        }
    }

    /// The in-app notification it makes. In-app notifications are delivered by being stored
    /// in the user's inbox, so they are stored as sent.
    pub fn notification(&self) -> NewNotification {
        let (order_id, user_id, message) = match self {
            Self::Placed(e) => (
                e.order_id,
                e.user_id,
                format!(
                    "Your order #{} for {} x product {} has been received.",
                    e.order_id, e.quantity, e.product_id
                ),
            ),
            Self::StatusChanged(e) => (
                e.order_id,
                e.user_id,
                format!(
                    "Your order #{} is now {}: {}.",
                    e.order_id,
                    e.to.replace('_', " "),
                    e.cause
                ),
            ),
        };
        NewNotification {
            event_id: self.event_id().to_string(),
            order_id,
            user_id,
            message,
        }
    }
}

/// Validated page size: 0 means the default; otherwise 1..=MAX_PAGE_SIZE.
pub fn page_size(requested: i32) -> Result<i64, NotificationsError> {
    match requested {
        0 => Ok(i64::from(DEFAULT_PAGE_SIZE)),
        1..=MAX_PAGE_SIZE => Ok(i64::from(requested)),
        other => Err(NotificationsError::InvalidArgument(format!(
            "page_size must be 0..={MAX_PAGE_SIZE}, got {other}"
        ))),
    }
}

/// Validated id argument.
pub fn positive_id(name: &str, value: i64) -> Result<i64, NotificationsError> {
    if value >= 1 {
        Ok(value)
    } else {
        Err(NotificationsError::InvalidArgument(format!(
            "{name} must be >= 1, got {value}"
        )))
    }
}

/// Most order ids one `GetNotificationsForOrders` call may ask for.
pub const MAX_ORDER_BATCH: usize = 100;

/// Validated order ids of a batch: 1 to [`MAX_ORDER_BATCH`], each >= 1, repeats dropped (first
/// occurrence kept, in order).
pub fn order_batch(ids: &[i64]) -> Result<Vec<i64>, NotificationsError> {
    if ids.is_empty() || ids.len() > MAX_ORDER_BATCH {
        return Err(NotificationsError::InvalidArgument(format!(
            "order_ids must hold 1..={MAX_ORDER_BATCH} ids, got {}",
            ids.len()
        )));
    }
    let mut seen = std::collections::HashSet::new();
    let mut batch = Vec::with_capacity(ids.len());
    for id in ids {
        let id = positive_id("order_ids", *id)?;
        if seen.insert(id) {
            batch.push(id);
        }
    }
    Ok(batch)
}

/// Position after the last notification of a page (sorted by `createdAt`, then id, descending).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageToken {
    /// `createdAt` of the last notification returned, in milliseconds.
    pub created_at_millis: i64,
    /// Store id (hex) of the last notification returned.
    pub id: String,
}

impl PageToken {
    /// Opaque form sent to clients.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}:{}", self.created_at_millis, self.id))
    }

    /// Parses a token; empty means "first page".
    pub fn decode(text: &str) -> Result<Option<Self>, NotificationsError> {
        if text.is_empty() {
            return Ok(None);
        }
        let invalid = || NotificationsError::InvalidArgument("page_token is not valid".to_owned());
        let raw = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
        let raw = String::from_utf8(raw).map_err(|_| invalid())?;
        let (millis, id) = raw.split_once(':').ok_or_else(invalid)?;
        let created_at_millis = millis.parse().map_err(|_| invalid())?;
        if id.len() != 24 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid());
        }
        Ok(Some(Self {
            created_at_millis,
            id: id.to_owned(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use uuid::Uuid;

    use super::*;

    #[test]
    fn message_names_order_product_and_quantity() {
        let e = OrderCreatedV1 {
            event_id: Uuid::nil(),
            order_id: 9,
            user_id: 2,
            product_id: 55,
            quantity: 3,
            created_at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        };
        let n = OrderEvent::Placed(e).notification();
        assert_eq!(
            n.message,
            "Your order #9 for 3 x product 55 has been received."
        );
        assert_eq!((n.order_id, n.user_id), (9, 2));
        assert_eq!(n.event_id, Uuid::nil().to_string());
    }

    #[test]
    fn a_status_change_says_where_the_order_is_and_why() {
        let e = OrderStatusChangedV1 {
            event_id: Uuid::from_u128(5),
            order_id: 9,
            user_id: 2,
            from: "pending".into(),
            to: "stock_reserved".into(),
            cause: "every line reserved".into(),
            version: 2,
            changed_at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
            user_sequence: Some(1),
            shop_sequence: Some(1),
        };
        let payload = e.to_json();
        let parsed = OrderEvent::parse(Some("order.status-changed"), &payload).unwrap();
        let n = parsed.notification();
        assert_eq!(
            n.message,
            "Your order #9 is now stock reserved: every line reserved."
        );
        assert_eq!(n.event_id, Uuid::from_u128(5).to_string());
        assert!(
            OrderEvent::parse(None, &payload).is_err(),
            "without a type it is read as order.created, which it is not"
        );
        assert!(OrderEvent::parse(Some("order.shipped"), &payload).is_err());
    }

    #[test]
    fn order_batches_are_bounded_positive_and_deduplicated() {
        assert_eq!(order_batch(&[3, 1, 3, 2]).unwrap(), vec![3, 1, 2]);
        assert!(order_batch(&[]).is_err());
        assert!(order_batch(&[1, 0]).is_err());
        assert!(order_batch(&vec![1; MAX_ORDER_BATCH + 1]).is_err());
        assert_eq!(order_batch(&vec![7; MAX_ORDER_BATCH]).unwrap(), vec![7]);
    }

    #[test]
    fn page_size_rules() {
        assert_eq!(page_size(0).unwrap(), 20);
        assert_eq!(page_size(100).unwrap(), 100);
        assert!(page_size(101).is_err());
        assert!(page_size(-1).is_err());
    }

    #[test]
    fn page_tokens_round_trip_and_reject_garbage() {
        let t = PageToken {
            created_at_millis: 1_700_000_000_000,
            id: "0123456789abcdef01234567".into(),
        };
        assert_eq!(PageToken::decode(&t.encode()).unwrap(), Some(t));
        assert_eq!(PageToken::decode("").unwrap(), None);
        for bad in ["%%%", "Zm9v", &URL_SAFE_NO_PAD.encode("12:nothex")] {
            assert!(PageToken::decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ids_must_be_positive() {
        assert!(positive_id("order_id", 0).is_err());
        assert_eq!(positive_id("order_id", 1).unwrap(), 1);
    }
}
