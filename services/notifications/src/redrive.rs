//! Moving dead-lettered `order.created` messages back to the main queue, for an operator after
//! the cause is fixed: `shopmesh-notifications redrive [--reason TEXT]`.
//!
//! Each message in the DLQ is looked at once per run: one that is not poison (it parses as an
//! event, within the size limit) and whose `x-dead-letter-reason` contains `TEXT` (every one,
//! without `--reason`) goes back to the main queue with a fresh retry ladder; the rest go back
//! to the DLQ's tail. Every move is published with a confirm before the original is acked, so
//! a crash mid-run loses nothing; it can only leave a copy, which the consumer's idempotent
//! store ignores. Running it again is safe.

use lapin::BasicProperties;
use lapin::options::{BasicAckOptions, BasicGetOptions, QueueDeclareOptions};
use lapin::types::AMQPValue;
use shopmesh_common::amqp;
use shopmesh_events::OrderCreatedTopology;

use crate::domain::OrderEvent;

use crate::events::{MAX_EVENT_BYTES, REASON_HEADER, RETRY_HEADER, publish_confirmed};

/// What a redrive did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RedriveReport {
    /// Messages moved back to the main queue.
    pub moved: u32,
    /// Messages left in the DLQ (poison, or another reason than asked for).
    pub kept: u32,
}

/// Where the dead-lettered events are, for the admin's gRPC calls: counted and redriven with a
/// connection of their own, opened per call (they are rare, and must not share the consumer's).
#[derive(Clone)]
pub struct DeadLetters {
    /// The broker.
    pub amqp_url: String,
    /// The queues.
    pub topology: OrderCreatedTopology,
}

impl DeadLetters {
    /// Events in the dead-letter queue now.
    pub async fn count(&self) -> Result<u32, lapin::Error> {
        let connection = shopmesh_common::amqp::connect(
            &self.amqp_url,
            "shopmesh-notifications-dead-letters",
            std::time::Duration::from_secs(5),
        )
        .await?;
        let channel = connection.create_channel().await?;
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let queue = channel
            .queue_declare(
                &self.topology.dead_letter_queue(),
                passive,
                Default::default(),
            )
            .await?;
        let _ = connection.close(200, "counted").await;
        Ok(queue.message_count())
    }

    /// [`redrive`] of the events whose reason contains `reason` (all when empty).
    pub async fn redrive(&self, reason: &str) -> Result<RedriveReport, lapin::Error> {
        let reason = Some(reason).filter(|r| !r.is_empty());
        redrive(&self.amqp_url, &self.topology, reason).await
    }
}

/// Moves the dead-lettered messages whose reason contains `reason` (all when `None`) and that
/// are not poison back to the main queue.
pub async fn redrive(
    amqp_url: &str,
    topology: &OrderCreatedTopology,
    reason: Option<&str>,
) -> Result<RedriveReport, lapin::Error> {
    let connection = shopmesh_common::amqp::connect(
        amqp_url,
        "shopmesh-notifications-redrive",
        std::time::Duration::from_secs(5),
    )
    .await?;
    let channel = shopmesh_common::amqp::confirm_channel(&connection).await?;
    let dlq = topology.dead_letter_queue();
    let waiting = channel
        .queue_declare(
            &dlq,
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await?
        .message_count();
    let mut report = RedriveReport::default();
    // Only the messages there at the start: the ones put back at the tail are not seen twice.
    for _ in 0..waiting {
        let Some(message) = channel
            .basic_get(&dlq, BasicGetOptions { no_ack: false })
            .await?
        else {
            break;
        };
        let delivery = &message.delivery;
        let event_type = amqp::header_str(&delivery.properties, amqp::EVENT_TYPE_HEADER);
        let poison = delivery.data.len() > MAX_EVENT_BYTES
            || OrderEvent::parse(event_type.as_deref(), &delivery.data).is_err();
        let wanted = reason.is_none_or(|r| dead_letter_reason(&delivery.properties).contains(r));
        if !poison && wanted {
            let mut headers = delivery.properties.headers().clone().unwrap_or_default();
            let mut fresh = lapin::types::FieldTable::default();
            for (key, value) in headers.inner() {
                if key.as_str() != RETRY_HEADER && key.as_str() != REASON_HEADER {
                    fresh.insert(key.clone(), value.clone());
                }
            }
            headers = fresh;
            let properties = delivery.properties.clone().with_headers(headers);
            publish_confirmed(&channel, &topology.queue, &delivery.data, properties).await?;
            report.moved += 1;
        } else {
            publish_confirmed(&channel, &dlq, &delivery.data, delivery.properties.clone()).await?;
            report.kept += 1;
        }
        delivery.ack(BasicAckOptions::default()).await?;
    }
    let _ = connection.close(200, "redrive done").await;
    Ok(report)
}

fn dead_letter_reason(properties: &BasicProperties) -> String {
    match properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(REASON_HEADER))
    {
        Some(AMQPValue::LongString(s)) => s.to_string(),
        Some(AMQPValue::ShortString(s)) => s.to_string(),
        _ => String::new(),
    }
}
