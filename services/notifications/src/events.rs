//! The [`NotificationConsumer`]: turns order events (`order.created`, `order.status-changed`)
//! into stored notifications.
//!
//! - Manual acks with a prefetch window; a message is acked only after its notification is
//!   stored (or after it was safely moved to a retry queue or the DLQ with a confirmed publish).
//! - Idempotent: the store ignores an event id it already holds, so redeliveries never
//!   duplicate a notification.
//! - Retries: a message whose processing fails is republished to `<queue>.retry.<n>`, a queue
//!   whose TTL (`retry_base * 2^(n-1)`) dead-letters it back to the main queue; after
//!   `max_retries` it goes to `<queue>.dlq`.
//! - Poison (not JSON, breaks the event schema, too large) goes to the DLQ at once.
//! - A store outage spends no retries: when an insert fails and the store does not answer a
//!   ping either, the message is requeued, the consumer lets go of everything it holds and
//!   stops consuming, and it resumes once the store answers again. So an outage of any length
//!   dead-letters nothing; only failures of a live store climb the retry ladder.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection};
use shopmesh_common::amqp;
use shopmesh_common::retry::Backoff;
use shopmesh_common::shutdown::Shutdown;
use shopmesh_events::OrderCreatedTopology;
use tokio::task::JoinSet;
use tracing::{Instrument, Span};

use crate::domain::OrderEvent;
use crate::store::{InsertOutcome, NotificationStore};

/// Largest payload accepted; larger messages are dead-lettered unread.
pub const MAX_EVENT_BYTES: usize = 64 * 1024;
/// Header carrying how many times a message was retried.
pub const RETRY_HEADER: &str = "x-retry-count";
/// Header carrying why a message was dead-lettered.
pub const REASON_HEADER: &str = "x-dead-letter-reason";

/// Consumer tuning.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Unacked messages the broker may send at once (`CONSUMER_PREFETCH`, 32).
    pub prefetch: u16,
    /// Retries before a message goes to the DLQ (`CONSUMER_MAX_RETRIES`, 5).
    pub max_retries: u32,
    /// Delay of the first retry; each next one doubles (`CONSUMER_RETRY_BASE_MS`, 1000).
    pub retry_base: Duration,
    /// Reconnect backoff bounds.
    pub reconnect_min: Duration,
    /// Longest reconnect delay.
    pub reconnect_max: Duration,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            prefetch: 32,
            max_retries: 5,
            retry_base: Duration::from_millis(1000),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
        }
    }
}

/// Counters the consumer exposes (health and metrics).
#[derive(Debug, Default)]
pub struct ConsumerStatus {
    connected: AtomicBool,
    paused: AtomicBool,
    /// Notifications stored.
    pub processed: AtomicU64,
    /// Redeliveries of events already stored.
    pub duplicates: AtomicU64,
    /// Messages sent to a retry queue.
    pub retried: AtomicU64,
    /// Messages sent to the DLQ.
    pub dead_lettered: AtomicU64,
    /// Messages waiting in the DLQ, counted every [`DLQ_COUNT_EVERY`] while connected.
    pub dead_letter_depth: AtomicU64,
}

/// How often the consumer counts the messages waiting in the DLQ.
pub const DLQ_COUNT_EVERY: Duration = Duration::from_secs(5);

impl ConsumerStatus {
    /// Whether the consumer holds a broker connection.
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::SeqCst)
    }

    /// Whether consuming is paused because the store is down.
    pub fn paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }
}

/// What to do with one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Stored (or already stored): ack.
    Done(InsertOutcome),
    /// Processing failed: retry for the `n`-th time.
    Retry(u32),
    /// Give up: dead-letter with this reason.
    DeadLetter(String),
    /// The store is down: requeue without spending a retry, and pause consuming.
    StoreDown,
}

impl Verdict {
    /// A short name for logs, metrics and spans.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Done(InsertOutcome::Inserted) => "stored",
            Self::Done(InsertOutcome::Duplicate) => "duplicate",
            Self::Retry(_) => "retried",
            Self::DeadLetter(_) => "dead_lettered",
            Self::StoreDown => "requeued_store_down",
        }
    }
}

/// Decides a delivery's fate: plain logic over the payload, the retry count and the store.
pub async fn decide(
    store: &dyn NotificationStore,
    event_type: Option<&str>,
    payload: &[u8],
    retries_so_far: u32,
    max_retries: u32,
) -> Verdict {
    if payload.len() > MAX_EVENT_BYTES {
        return Verdict::DeadLetter(format!(
            "payload of {} bytes exceeds {MAX_EVENT_BYTES}",
            payload.len()
        ));
    }
    let event = match OrderEvent::parse(event_type, payload) {
        Ok(e) => e,
        Err(e) => return Verdict::DeadLetter(e.to_string()),
    };
    match store.insert_if_absent(&event.notification()).await {
        Ok(outcome) => Verdict::Done(outcome),
        // The store itself is down, not this message's fault: no retry is spent on it.
        Err(_) if store.ping().await.is_err() => Verdict::StoreDown,
        Err(e) if retries_so_far >= max_retries => {
            Verdict::DeadLetter(format!("store failed after {retries_so_far} retries: {e}"))
        }
        Err(e) => {
            tracing::warn!(error = %e, event_id = %event.event_id(), attempt = retries_so_far + 1, "storing notification failed; retrying later");
            Verdict::Retry(retries_so_far + 1)
        }
    }
}

/// Consumes `order.created` into a [`NotificationStore`].
pub struct NotificationConsumer {
    store: Arc<dyn NotificationStore>,
    amqp_url: String,
    topology: OrderCreatedTopology,
    config: ConsumerConfig,
    status: Arc<ConsumerStatus>,
}

struct Link {
    connection: Connection,
    consume: Channel,
    publish: Channel,
}

fn retry_count(delivery: &Delivery) -> u32 {
    let Some(headers) = delivery.properties.headers() else {
        return 0;
    };
    match headers.inner().get(RETRY_HEADER) {
        Some(AMQPValue::LongUInt(n)) => *n,
        Some(AMQPValue::LongInt(n)) => u32::try_from(*n).unwrap_or(0),
        Some(AMQPValue::LongLongInt(n)) => u32::try_from(*n).unwrap_or(0),
        Some(AMQPValue::ShortUInt(n)) => u32::from(*n),
        _ => 0,
    }
}

impl NotificationConsumer {
    /// A consumer storing into `store`.
    pub fn new(
        store: Arc<dyn NotificationStore>,
        amqp_url: String,
        topology: OrderCreatedTopology,
        config: ConsumerConfig,
    ) -> Self {
        Self {
            store,
            amqp_url,
            topology,
            config,
            status: Arc::default(),
        }
    }

    /// Shared counters.
    pub fn status(&self) -> Arc<ConsumerStatus> {
        self.status.clone()
    }

    /// Declares the main queue, the retry queues and the DLQ.
    pub async fn declare(
        channel: &Channel,
        topology: &OrderCreatedTopology,
        config: &ConsumerConfig,
    ) -> Result<(), lapin::Error> {
        amqp::declare_order_created(channel, topology).await?;
        let durable = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        for n in 1..=config.max_retries {
            let ttl = config
                .retry_base
                .as_millis()
                .saturating_mul(1 << (n - 1).min(20));
            let args = amqp::delay_queue_arguments(
                topology.queue_type,
                i64::try_from(ttl).unwrap_or(i64::MAX),
                &topology.queue,
            );
            channel
                .queue_declare(&topology.retry_queue(n), durable, args)
                .await?;
        }
        channel
            .queue_declare(
                &topology.dead_letter_queue(),
                durable,
                amqp::queue_arguments(topology.queue_type),
            )
            .await?;
        Ok(())
    }

    async fn connect(&self) -> Result<Link, lapin::Error> {
        let connection = amqp::connect(
            &self.amqp_url,
            "shopmesh-notifications",
            Duration::from_secs(5),
        )
        .await?;
        let consume = connection.create_channel().await?;
        let publish = amqp::confirm_channel(&connection).await?;
        Self::declare(&consume, &self.topology, &self.config).await?;
        consume
            .basic_qos(self.config.prefetch, BasicQosOptions::default())
            .await?;
        Ok(Link {
            connection,
            consume,
            publish,
        })
    }

    /// Consumes until `shutdown`; then stops taking messages, finishes (acks or requeues) the
    /// ones in flight and closes the connection.
    pub async fn run(self, shutdown: Shutdown) {
        let mut backoff = Backoff::new(self.config.reconnect_min, self.config.reconnect_max);
        while !shutdown.is_triggered() {
            let link = match self.connect().await {
                Ok(link) => link,
                Err(e) => {
                    self.status.connected.store(false, Ordering::SeqCst);
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %e, ?delay, "consumer cannot reach RabbitMQ; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = shutdown.wait() => {}
                    }
                    continue;
                }
            };
            backoff.reset();
            let stopped = self.consume(&link, &shutdown).await;
            self.status.connected.store(false, Ordering::SeqCst);
            // Closing the connection hands every message still unacked back to the queue.
            let _ = link.connection.close(200, "closing").await;
            match stopped {
                Ok(Stopped::Shutdown) => tracing::info!("consumer stopped"),
                Ok(Stopped::StoreDown) => self.wait_for_store(&shutdown).await,
                Err(e) => tracing::warn!(error = %e, "consumer lost its connection; reconnecting"),
            }
        }
    }

    /// Pings the store until it answers (or shutdown), with backoff.
    async fn wait_for_store(&self, shutdown: &Shutdown) {
        tracing::warn!("notification store unavailable; consuming paused until it returns");
        self.status.paused.store(true, Ordering::SeqCst);
        let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(5));
        while !shutdown.is_triggered() && self.store.ping().await.is_err() {
            tokio::select! {
                _ = tokio::time::sleep(backoff.next_delay()) => {}
                _ = shutdown.wait() => {}
            }
        }
        self.status.paused.store(false, Ordering::SeqCst);
        tracing::info!("notification store available again; resuming consumption");
    }

    async fn consume(&self, link: &Link, shutdown: &Shutdown) -> Result<Stopped, lapin::Error> {
        let mut consumer = link
            .consume
            .basic_consume(
                &self.topology.queue,
                "shopmesh-notifications",
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        self.status.connected.store(true, Ordering::SeqCst);
        tracing::info!(queue = %self.topology.queue, prefetch = self.config.prefetch, "consuming");
        let mut in_flight = JoinSet::new();
        let mut count_dlq = tokio::time::interval(DLQ_COUNT_EVERY);
        let result = loop {
            tokio::select! {
                _ = count_dlq.tick() => {
                    // A passive declare counts without changing anything; the DLQ was declared
                    // on connecting, so it cannot fail for a missing queue.
                    let passive = QueueDeclareOptions { passive: true, ..Default::default() };
                    match link.publish.queue_declare(&self.topology.dead_letter_queue(), passive, FieldTable::default()).await {
                        Ok(q) => self.status.dead_letter_depth.store(u64::from(q.message_count()), Ordering::Relaxed),
                        Err(e) => break Err(e),
                    }
                }
                next = consumer.next() => match next {
                    Some(Ok(delivery)) => {
                        let handler = DeliveryHandler {
                            store: self.store.clone(),
                            publish: link.publish.clone(),
                            topology: self.topology.clone(),
                            max_retries: self.config.max_retries,
                            status: self.status.clone(),
                        };
                        let span = delivery_span(&self.topology.queue, &delivery);
                        in_flight.spawn(async move { handler.handle(delivery).await }.instrument(span));
                    }
                    Some(Err(e)) => break Err(e),
                    None => break Err(lapin::Error::InvalidChannelState(lapin::ChannelState::Closed)),
                },
                Some(handled) = in_flight.join_next(), if !in_flight.is_empty() => {
                    if matches!(handled, Ok(Handled::StoreDown)) {
                        break Ok(Stopped::StoreDown);
                    }
                }
                _ = shutdown.wait() => break Ok(Stopped::Shutdown),
            }
        };
        // Stop receiving, then let every message in hand reach its ack or nack.
        let _ = link
            .consume
            .basic_cancel("shopmesh-notifications", Default::default())
            .await;
        while in_flight.join_next().await.is_some() {}
        result
    }
}

/// The span one delivery is processed in: a consumer span continuing the trace of the request
/// that created the order (through the outbox and the broker's message headers).
fn delivery_span(queue: &str, delivery: &Delivery) -> Span {
    let span = tracing::info_span!(
        "order.created process",
        otel.name = %format!("{queue} process"),
        otel.kind = "consumer",
        otel.status_code = tracing::field::Empty,
        messaging.system = "rabbitmq",
        messaging.operation.type = "process",
        messaging.destination.name = %queue,
        messaging.message.id = delivery.properties.message_id().as_ref().map(|id| id.as_str()),
        messaging.rabbitmq.redelivered = delivery.redelivered,
        shopmesh.retry = retry_count(delivery),
        shopmesh.outcome = tracing::field::Empty,
    );
    amqp::continue_trace_from_message(&span, &delivery.properties);
    span
}

/// Why [`NotificationConsumer::consume`] stopped.
enum Stopped {
    Shutdown,
    StoreDown,
}

/// How a delivery ended.
enum Handled {
    Settled,
    StoreDown,
}

struct DeliveryHandler {
    store: Arc<dyn NotificationStore>,
    publish: Channel,
    topology: OrderCreatedTopology,
    max_retries: u32,
    status: Arc<ConsumerStatus>,
}

impl DeliveryHandler {
    async fn handle(self, delivery: Delivery) -> Handled {
        let event_type = amqp::header_str(&delivery.properties, amqp::EVENT_TYPE_HEADER);
        let verdict = decide(
            self.store.as_ref(),
            event_type.as_deref(),
            &delivery.data,
            retry_count(&delivery),
            self.max_retries,
        )
        .await;
        let span = Span::current();
        span.record("shopmesh.outcome", verdict.label());
        if matches!(verdict, Verdict::DeadLetter(_)) {
            span.record("otel.status_code", "ERROR");
        }
        let moved = match &verdict {
            Verdict::StoreDown => {
                let requeued = delivery
                    .nack(BasicNackOptions {
                        requeue: true,
                        ..Default::default()
                    })
                    .await;
                if let Err(e) = requeued {
                    tracing::warn!(error = %e, "could not requeue delivery");
                }
                return Handled::StoreDown;
            }
            Verdict::Done(InsertOutcome::Inserted) => {
                self.status.processed.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
            Verdict::Done(InsertOutcome::Duplicate) => {
                self.status.duplicates.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
            Verdict::Retry(n) => self
                .republish(
                    &delivery,
                    &self.topology.retry_queue(*n),
                    RETRY_HEADER,
                    AMQPValue::LongUInt(*n),
                )
                .await
                .map(|()| {
                    self.status.retried.fetch_add(1, Ordering::SeqCst);
                }),
            Verdict::DeadLetter(reason) => {
                tracing::error!(%reason, message_id = ?delivery.properties.message_id(), "dead-lettering message");
                self.republish(
                    &delivery,
                    &self.topology.dead_letter_queue(),
                    REASON_HEADER,
                    AMQPValue::LongString(reason.clone().into()),
                )
                .await
                .map(|()| {
                    self.status.dead_lettered.fetch_add(1, Ordering::SeqCst);
                })
            }
        };
        let settled = match moved {
            Ok(()) => delivery.ack(BasicAckOptions::default()).await,
            Err(e) => {
                tracing::warn!(error = %e, "could not move message; requeueing it");
                delivery
                    .nack(BasicNackOptions {
                        requeue: true,
                        ..Default::default()
                    })
                    .await
            }
        };
        if let Err(e) = settled {
            // The channel is gone; the broker redelivers the message to the next consumer.
            tracing::warn!(error = %e, "could not settle delivery");
        }
        Handled::Settled
    }

    /// Publishes a copy of `delivery` to `queue` (via the default exchange) with one header set,
    /// and waits for the broker's confirm.
    async fn republish(
        &self,
        delivery: &Delivery,
        queue: &str,
        header: &str,
        value: AMQPValue,
    ) -> Result<(), lapin::Error> {
        let mut headers = delivery.properties.headers().clone().unwrap_or_default();
        headers.insert(ShortString::from(header), value);
        let properties = delivery.properties.clone().with_headers(headers);
        publish_confirmed(&self.publish, queue, &delivery.data, properties).await
    }
}

/// Publishes `payload` to `queue` through the default exchange (mandatory, persistent) and
/// waits for the broker's confirm; a nack or a return is an error.
pub(crate) async fn publish_confirmed(
    channel: &Channel,
    queue: &str,
    payload: &[u8],
    properties: BasicProperties,
) -> Result<(), lapin::Error> {
    let confirm = channel
        .basic_publish(
            "",
            queue,
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            payload,
            properties.with_delivery_mode(2),
        )
        .await?
        .await?;
    if confirm.is_ack() && confirm.take_message().is_none() {
        Ok(())
    } else {
        Err(lapin::Error::InvalidChannelState(
            lapin::ChannelState::Error,
        ))
    }
}
