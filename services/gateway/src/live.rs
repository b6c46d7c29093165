//! Where live order status comes from: every gateway replica consumes every
//! `order.status-changed` event through an exclusive queue of its own (server-named, gone when
//! the replica is), so a subscriber on any replica hears every change. Events fan out to the
//! replica's subscriptions through one bounded ring ([`tokio::sync::broadcast`]): a
//! subscription that falls further behind than the ring holds is ended with `EVENTS_MISSED`
//! instead of slowing the others or growing memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt as _;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use shopmesh_common::retry::Backoff;
use shopmesh_common::shutdown::Shutdown;
use shopmesh_events::{ORDER_STATUS_CHANGED_ROUTING_KEY, OrderStatusChangedV1};
use shopmesh_graphql as gql;
use shopmesh_identity::Principal;
use tokio::sync::broadcast;

use crate::config::LiveConfig;
use crate::error::GatewayError;

/// One status change as every subscription of the replica shares it.
pub type StatusChange = Arc<OrderStatusChangedV1>;

/// Orders whose change the replica's feed has handed to subscribers: each one's newest version
/// heard. A subscriber that hears a change and reads the order at once must not be answered
/// from a cached copy older than the change, which the cache's own invalidation may not have
/// reached yet; the gateway's order reads ask the orders service instead.
#[derive(Clone)]
pub struct HeardVersions(moka::sync::Cache<i64, i32>);

/// Orders [`HeardVersions`] remembers, and for how long: longer than an announcement takes.
const HEARD_ORDERS: u64 = 100_000;
const HEARD_FOR: Duration = Duration::from_secs(60);

impl HeardVersions {
    /// Nothing heard yet.
    pub fn new() -> Self {
        Self(
            moka::sync::Cache::builder()
                .max_capacity(HEARD_ORDERS)
                .time_to_live(HEARD_FOR)
                .build(),
        )
    }

    fn record(&self, order: i64, version: i32) {
        self.0
            .entry(order)
            .and_upsert_with(|seen| seen.map_or(version, |v| v.into_value().max(version)));
    }

    /// Whether a copy of `order` at `version` is older than a change the feed has told.
    pub fn is_behind(&self, order: i64, version: i32) -> bool {
        self.0.get(&order).is_some_and(|heard| version < heard)
    }
}

impl Default for HeardVersions {
    fn default() -> Self {
        Self::new()
    }
}

/// The replica's feed of status changes.
#[derive(Clone)]
pub struct OrderFeed {
    changes: broadcast::Sender<StatusChange>,
    heard: HeardVersions,
    consuming: Arc<AtomicBool>,
}

impl OrderFeed {
    /// A feed whose subscriptions may fall `buffer` changes behind, recording in `heard` each
    /// change before any subscriber hears it.
    pub fn new(buffer: usize, heard: HeardVersions) -> Self {
        Self {
            changes: broadcast::channel(buffer.max(1)).0,
            heard,
            consuming: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The changes `principal` may see, of order `order` alone when given, from now on. Whether
    /// `principal` may see that order at all is the caller's check, made before it hands the
    /// stream out (and after calling this, so that no change falls between the two).
    pub fn changes_for(
        &self,
        principal: &Principal,
        order: Option<i64>,
    ) -> BoxStream<'static, Result<StatusChange, GatewayError>> {
        let principal = principal.clone();
        let wanted = move |c: &OrderStatusChangedV1| {
            order.is_none_or(|id| id == c.order_id) && principal.sees(c.user_id)
        };
        futures::stream::unfold(Some(self.changes.subscribe()), move |rx| {
            let wanted = wanted.clone();
            async move {
                let mut rx = rx?;
                loop {
                    match rx.recv().await {
                        Ok(change) if wanted(&change) => return Some((Ok(change), Some(rx))),
                        Ok(_) => {}
                        Err(broadcast::error::RecvError::Lagged(missed)) => {
                            return Some((Err(GatewayError::EventsMissed(missed)), None));
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            }
        })
        .boxed()
    }

    /// Hands `change` to the replica's subscriptions.
    pub fn publish(&self, change: OrderStatusChangedV1) {
        self.heard.record(change.order_id, change.version);
        // No subscriber is not an error: nobody is listening now.
        let _ = self.changes.send(Arc::new(change));
    }

    /// Consumes the replica's queue until `shutdown`, connecting again after a failure.
    pub async fn run(self, config: LiveConfig, shutdown: Shutdown) {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        loop {
            let consumed = tokio::select! {
                result = self.consume(&config) => result,
                () = shutdown.wait() => return,
            };
            if self.consuming.swap(false, Ordering::Relaxed) {
                backoff.reset();
            }
            if let Err(e) = consumed {
                tracing::warn!(error = %e, "order status feed lost; reconnecting");
            }
            tokio::select! {
                () = tokio::time::sleep(backoff.next_delay()) => {}
                () = shutdown.wait() => return,
            }
        }
    }

    async fn consume(&self, config: &LiveConfig) -> Result<(), lapin::Error> {
        let connection = shopmesh_common::amqp::connect(
            config.rabbitmq_url.expose(),
            "shopmesh-gateway-live",
            Duration::from_secs(5),
        )
        .await?;
        let channel = connection.create_channel().await?;
        shopmesh_common::amqp::declare_orders_exchange(&channel, &config.exchange).await?;
        let queue = channel
            .queue_declare(
                "",
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        channel
            .queue_bind(
                queue.name().as_str(),
                &config.exchange,
                ORDER_STATUS_CHANGED_ROUTING_KEY,
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        // Live updates are best effort by design (a client resumes by re-reading): no acks.
        let mut deliveries = channel
            .basic_consume(
                queue.name().as_str(),
                "shopmesh-gateway-live",
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        self.consuming.store(true, Ordering::Relaxed);
        tracing::info!(queue = %queue.name(), "order status feed consuming");
        while let Some(delivery) = deliveries.next().await {
            let delivery = delivery?;
            match serde_json::from_slice::<OrderStatusChangedV1>(&delivery.data) {
                Ok(change) => self.publish(change),
                Err(e) => tracing::warn!(error = %e, "an order status change did not parse"),
            }
        }
        Ok(())
    }
}

/// `missed` (oldest first), then `live` without the changes `missed` already holds or the
/// client had `heard` before: a resumed subscription hears every change once. Changes are told
/// apart by order and version, so a live one arriving out of order is still heard, not dropped.
pub fn resumed(
    missed: Vec<gql::OrderStatusChange>,
    heard: impl Fn(&gql::OrderStatusChange) -> bool + Send + 'static,
    live: impl futures::Stream<Item = Result<gql::OrderStatusChange, GatewayError>> + Send + 'static,
) -> BoxStream<'static, Result<gql::OrderStatusChange, GatewayError>> {
    let key = |c: &gql::OrderStatusChange| (c.order_id.to_string(), c.version);
    let replayed: std::collections::HashSet<_> = missed.iter().map(key).collect();
    let live = live.scan(replayed, move |replayed, change| {
        let fresh = match &change {
            Ok(c) => !heard(c) && replayed.insert(key(c)),
            Err(_) => true,
        };
        futures::future::ready(Some(fresh.then_some(change)))
    });
    futures::stream::iter(missed.into_iter().map(Ok))
        .chain(live.filter_map(futures::future::ready))
        .boxed()
}

/// `live` passed on in the order of the numbers `number` reads, after `last` (or from the
/// first change heard): a change numbered at or below the last one passed on was heard or
/// replayed already and is dropped, and a gap before a change is filled first with the changes
/// numbered in between, which `fill(last, next)` reads. The numbers are stored before any
/// change carrying one is published, so a gap is only ever a change still on its way (from
/// another relay, or one that died before publishing it). A change without a number (from an
/// older orders service) is passed on as it comes.
pub fn in_order<F>(
    live: BoxStream<'static, Result<gql::OrderStatusChange, GatewayError>>,
    number: fn(&gql::OrderStatusChange) -> Option<i32>,
    last: Option<i64>,
    fill: F,
) -> BoxStream<'static, Result<gql::OrderStatusChange, GatewayError>>
where
    F: Fn(i64, i64) -> BoxFuture<'static, Result<Vec<gql::OrderStatusChange>, GatewayError>>
        + Send
        + Sync
        + 'static,
{
    futures::stream::unfold(Some((live, last, fill)), move |state| async move {
        let (mut live, mut last, fill) = state?;
        loop {
            let change = match live.next().await? {
                Ok(change) => change,
                Err(e) => return Some((vec![Err(e)], None)),
            };
            let Some(n) = number(&change).map(i64::from) else {
                return Some((vec![Ok(change)], Some((live, last, fill))));
            };
            let mut passed = match last {
                Some(l) if n <= l => continue,
                Some(l) if n > l + 1 => match fill(l, n).await {
                    Ok(missed) => missed,
                    Err(e) => return Some((vec![Err(e)], None)),
                },
                _ => Vec::new(),
            };
            passed.push(change);
            last = Some(n);
            let passed: Vec<_> = passed.into_iter().map(Ok).collect();
            return Some((passed, Some((live, last, fill))));
        }
    })
    .flat_map(futures::stream::iter)
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(version: i32) -> gql::OrderStatusChange {
        gql::OrderStatusChange {
            order_id: 7.into(),
            user_id: 1.into(),
            version,
            sequence: Some(version),
            shop_sequence: Some(version),
            from: gql::OrderStatus::Pending,
            to: gql::OrderStatus::Cancelled,
            cause: "test".into(),
            at: chrono::Utc::now(),
        }
    }

    #[tokio::test]
    async fn a_resumed_stream_hears_each_version_once_even_out_of_order() {
        let live = futures::stream::iter([2, 4, 6, 5, 6].map(|v| Ok(change(v))));
        let heard: Vec<i32> = resumed(vec![change(3), change(4)], |c| c.version <= 2, live)
            .map(|c| c.map(|c| c.version).unwrap_or(0))
            .collect()
            .await;
        assert_eq!(heard, [3, 4, 6, 5]);
    }

    /// The changes numbered after `last` and before `next`, as an orders service holding
    /// changes 1..=9 lists them.
    fn stored(
        last: i64,
        next: i64,
    ) -> BoxFuture<'static, Result<Vec<gql::OrderStatusChange>, GatewayError>> {
        let changes = (last + 1..next.min(10)).map(|n| change(n as i32)).collect();
        futures::FutureExt::boxed(futures::future::ready(Ok(changes)))
    }

    #[tokio::test]
    async fn a_numbered_stream_is_passed_on_in_order_with_its_gaps_filled() {
        let live = futures::stream::iter([4, 3, 5, 8, 6, 7, 9, 9].map(|n| Ok(change(n)))).boxed();
        let heard: Vec<i32> = in_order(live, |c| c.shop_sequence, Some(2), stored)
            .map(|c| c.map(|c| c.version).unwrap_or(0))
            .collect()
            .await;
        assert_eq!(heard, [3, 4, 5, 6, 7, 8, 9]);
    }

    #[tokio::test]
    async fn a_numbered_stream_starts_at_the_first_change_heard() {
        let live = futures::stream::iter([5, 4, 6].map(|n| Ok(change(n)))).boxed();
        let heard: Vec<i32> = in_order(live, |c| c.shop_sequence, None, stored)
            .map(|c| c.map(|c| c.version).unwrap_or(0))
            .collect()
            .await;
        assert_eq!(heard, [5, 6]);
    }
}
