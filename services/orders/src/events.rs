//! The [`OutboxRelay`]: publishes outbox rows to RabbitMQ with publisher confirms and marks them
//! published only after the broker has confirmed them, so no event is ever lost.
//!
//! Delivery is at least once: if the process dies after the broker confirmed a batch but before
//! the rows were marked, the batch is published again; consumers deduplicate on the event id
//! (the AMQP `message_id`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use lapin::options::BasicPublishOptions;
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection};
use shopmesh_common::amqp;
use shopmesh_common::retry::Backoff;
use shopmesh_common::shutdown::Shutdown;
use shopmesh_common::telemetry;
use shopmesh_events::OrderCreatedTopology;
use tracing::{Instrument, Span};

use crate::config::RelayConfig;
use crate::store::{self, OrderStore, OutboxMessage};

/// What the relay reports about itself (for readiness details and metrics).
#[derive(Debug, Default)]
pub struct RelayStatus {
    connected: AtomicBool,
    published: AtomicU64,
}

impl RelayStatus {
    /// Whether the relay holds a broker connection right now.
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::SeqCst)
    }

    /// Events confirmed by the broker since start.
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::SeqCst)
    }
}

/// Why one relay round failed.
#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error("broker: {0}")]
    Broker(#[from] lapin::Error),
    #[error("database: {0}")]
    Store(#[from] sqlx::Error),
}

/// Moves events from the outbox table to RabbitMQ.
pub struct OutboxRelay {
    store: OrderStore,
    amqp_url: String,
    topology: OrderCreatedTopology,
    config: RelayConfig,
    status: Arc<RelayStatus>,
}

struct Link {
    connection: Connection,
    channel: Channel,
}

impl OutboxRelay {
    /// A relay for `store`'s outbox publishing to `amqp_url`.
    pub fn new(
        store: OrderStore,
        amqp_url: String,
        topology: OrderCreatedTopology,
        config: RelayConfig,
    ) -> Self {
        // The relay records gauges and counters: make sure a recorder is there to receive them.
        shopmesh_common::metrics::handle();
        Self {
            store,
            amqp_url,
            topology,
            config,
            status: Arc::default(),
        }
    }

    /// Shared status handle.
    pub fn status(&self) -> Arc<RelayStatus> {
        self.status.clone()
    }

    async fn connect(&self) -> Result<Link, lapin::Error> {
        let connection = amqp::connect(
            &self.amqp_url,
            "shopmesh-orders-outbox",
            std::time::Duration::from_secs(5),
        )
        .await?;
        let channel = amqp::confirm_channel(&connection).await?;
        amqp::declare_order_created(&channel, &self.topology).await?;
        Ok(Link {
            connection,
            channel,
        })
    }

    /// Runs until `shutdown`; on shutdown it publishes what is pending once more, then returns.
    pub async fn run(self, shutdown: Shutdown) {
        let wake = self.store.outbox_signal();
        let mut backoff = Backoff::new(self.config.backoff_min, self.config.backoff_max);
        let mut link: Option<Link> = None;
        loop {
            let stopping = shutdown.is_triggered();
            if link
                .as_ref()
                .is_some_and(|l| !l.connection.status().connected())
            {
                link = None;
            }
            if link.is_none() {
                match self.connect().await {
                    Ok(l) => {
                        tracing::info!("outbox relay connected to RabbitMQ");
                        self.status.connected.store(true, Ordering::SeqCst);
                        backoff.reset();
                        link = Some(l);
                    }
                    Err(e) => {
                        self.status.connected.store(false, Ordering::SeqCst);
                        if stopping {
                            break;
                        }
                        let delay = backoff.next_delay();
                        self.report_lag().await;
                        tracing::warn!(error = %e, ?delay, "outbox relay cannot reach RabbitMQ; events stay in the outbox");
                        tokio::select! {
                            _ = tokio::time::sleep(delay) => {}
                            _ = shutdown.wait() => {}
                        }
                        continue;
                    }
                }
            }
            let Some(l) = link.as_ref() else { continue };
            match self.publish_batch(&l.channel).await {
                Ok(n) if n as u32 >= self.config.batch_size => continue,
                Ok(_) if stopping => break,
                Ok(_) => {
                    backoff.reset();
                    self.report_lag().await;
                    tokio::select! {
                        _ = wake.notified() => {}
                        _ = tokio::time::sleep(self.config.poll_interval) => {}
                        _ = shutdown.wait() => {}
                    }
                }
                Err(e) => {
                    if matches!(e, RelayError::Broker(_)) {
                        link = None;
                        self.status.connected.store(false, Ordering::SeqCst);
                    }
                    if stopping {
                        break;
                    }
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %e, ?delay, "outbox relay round failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = shutdown.wait() => {}
                    }
                }
            }
        }
        if let Some(l) = link {
            let _ = l.connection.close(200, "shutdown").await;
        }
        self.status.connected.store(false, Ordering::SeqCst);
        tracing::info!("outbox relay stopped");
    }

    /// Sets `outbox_pending_events` and `outbox_oldest_pending_seconds`.
    async fn report_lag(&self) {
        if let Ok((pending, oldest)) = self.store.outbox_lag().await {
            metrics::gauge!("outbox_pending_events").set(pending as f64);
            metrics::gauge!("outbox_oldest_pending_seconds").set(oldest);
        }
    }

    /// Publishes one batch of pending rows; returns how many the broker confirmed.
    async fn publish_batch(&self, channel: &Channel) -> Result<usize, RelayError> {
        let (tx, mut messages) = self.store.lock_pending(self.config.batch_size).await?;
        if messages.is_empty() {
            tx.commit().await?;
            return Ok(0);
        }
        self.store.number_changes(&mut messages).await?;
        // Send the whole batch, then collect the confirms: one round trip for the batch.
        let mut pending = Vec::with_capacity(messages.len());
        for m in &messages {
            let span = publish_span(&self.topology.exchange, m);
            let confirm = channel
                .basic_publish(
                    &self.topology.exchange,
                    &m.routing_key,
                    BasicPublishOptions {
                        mandatory: true,
                        ..Default::default()
                    },
                    m.payload.as_bytes(),
                    properties(m, &span),
                )
                .instrument(span.clone())
                .await?;
            pending.push((m.id, confirm, span));
        }
        let (mut published, mut failed) = (Vec::new(), Vec::new());
        for (id, confirm, span) in pending {
            let confirmation = confirm.await?;
            // A returned message (Ack with a message) was not routed to any queue: not delivered.
            if confirmation.is_ack() && confirmation.take_message().is_none() {
                published.push(id);
            } else {
                span.record("otel.status_code", "ERROR");
                failed.push(id);
            }
        }
        store::finish_batch(tx, &published, &failed).await?;
        self.status
            .published
            .fetch_add(published.len() as u64, Ordering::SeqCst);
        metrics::counter!("outbox_published_total").increment(published.len() as u64);
        if !failed.is_empty() {
            tracing::warn!(
                count = failed.len(),
                "broker refused or could not route events; they stay pending"
            );
        }
        Ok(published.len())
    }
}

/// The producer span of one publish: a child of the request that stored the event (its
/// `traceparent` was kept in the outbox row), ending when the broker confirms.
fn publish_span(exchange: &str, m: &OutboxMessage) -> Span {
    let span = tracing::info_span!(
        "order.created publish",
        otel.name = %format!("{exchange} publish"),
        otel.kind = "producer",
        otel.status_code = tracing::field::Empty,
        messaging.system = "rabbitmq",
        messaging.operation.type = "send",
        messaging.destination.name = %exchange,
        messaging.rabbitmq.destination.routing_key = %m.routing_key,
        messaging.message.id = %m.event_id,
    );
    if let Some(traceparent) = &m.traceparent {
        telemetry::continue_remote_trace(&span, |name| {
            (name == "traceparent").then(|| traceparent.clone())
        });
    }
    span
}

fn properties(m: &OutboxMessage, span: &Span) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert(
        amqp::EVENT_TYPE_HEADER.into(),
        AMQPValue::LongString(m.routing_key.clone().into()),
    );
    amqp::insert_trace_headers(&mut headers, span);
    BasicProperties::default()
        .with_message_id(ShortString::from(m.event_id.clone()))
        .with_content_type(ShortString::from("application/json"))
        .with_type(ShortString::from(format!("{}.v1", m.routing_key)))
        .with_delivery_mode(2)
        .with_headers(headers)
}
