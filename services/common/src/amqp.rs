//! RabbitMQ plumbing shared by the publisher (orders) and the consumer (notifications):
//! connecting with a timeout, declaring the `order.created` topology idempotently, and carrying
//! trace context in message headers.

use std::time::Duration;

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use shopmesh_events::{
    ORDER_CREATED_ROUTING_KEY, ORDER_STATUS_CHANGED_ROUTING_KEY, OrderCreatedTopology, QueueType,
};

use crate::config::{ConfigError, Env};

/// The `order.created` topology from `ORDERS_EXCHANGE`, `ORDER_CREATED_QUEUE` and
/// `RABBITMQ_QUEUE_TYPE` (`quorum`, the default, or `classic`); the publisher and the consumer
/// read it alike, since both declare the queue.
pub fn topology_from_env(env: &impl Env) -> Result<OrderCreatedTopology, ConfigError> {
    let d = OrderCreatedTopology::default();
    Ok(OrderCreatedTopology {
        exchange: env.string_or("ORDERS_EXCHANGE", &d.exchange),
        queue: env.string_or("ORDER_CREATED_QUEUE", &d.queue),
        queue_type: env.parse_or("RABBITMQ_QUEUE_TYPE", d.queue_type)?,
    })
}

/// Arguments every queue of `topology` is declared with: its `x-queue-type`.
pub fn queue_arguments(queue_type: QueueType) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(queue_type.as_str().into()),
    );
    args
}

/// Arguments of a queue that holds each message for `ttl_ms`, then dead-letters it to
/// `target` through the default exchange. On quorum queues the move is at-least-once: the
/// broker keeps the message until `target` confirms it, which needs `reject-publish` overflow.
pub fn delay_queue_arguments(queue_type: QueueType, ttl_ms: i64, target: &str) -> FieldTable {
    let mut args = queue_arguments(queue_type);
    args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(ttl_ms));
    args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString("".into()),
    );
    args.insert(
        "x-dead-letter-routing-key".into(),
        AMQPValue::LongString(target.into()),
    );
    if queue_type == QueueType::Quorum {
        args.insert(
            "x-dead-letter-strategy".into(),
            AMQPValue::LongString("at-least-once".into()),
        );
        args.insert(
            "x-overflow".into(),
            AMQPValue::LongString("reject-publish".into()),
        );
    }
    args
}

/// Opens a connection, failing after `timeout` instead of hanging on an unresponsive host.
pub async fn connect(url: &str, name: &str, timeout: Duration) -> Result<Connection, lapin::Error> {
    let props = ConnectionProperties::default().with_connection_name(name.into());
    let mut uri: lapin::uri::AMQPUri = url.parse().map_err(|e: String| {
        lapin::Error::IOError(std::sync::Arc::new(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("the RabbitMQ URL does not parse: {e}"),
        )))
    })?;
    uri.query.frame_max.get_or_insert(FRAME_MAX);
    match tokio::time::timeout(timeout, Connection::connect_uri(uri, props)).await {
        Ok(result) => result,
        Err(_) => Err(lapin::Error::IOError(std::sync::Arc::new(
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("connecting to RabbitMQ timed out after {timeout:?}"),
            ),
        ))),
    }
}

/// The largest AMQP frame a connection proposes, unless its URL names one (`?frame_max=`).
/// lapin keeps a read and a write buffer of 32 frames per connection, written through when the
/// size is agreed: at RabbitMQ's 128 KiB that is 8 MiB resident per connection, most of an
/// idle service's memory. Events are a few KiB, and a larger body is split into frames.
pub const FRAME_MAX: u32 = 16 * 1024;

/// Opens a channel in publisher-confirm mode (every publish is acked or nacked by the broker).
pub async fn confirm_channel(connection: &Connection) -> Result<Channel, lapin::Error> {
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(lapin::options::ConfirmSelectOptions::default())
        .await?;
    Ok(channel)
}

/// The message header naming the event a message carries: the routing key it was published
/// with, which retry and dead-letter hops replace but this header keeps.
pub const EVENT_TYPE_HEADER: &str = "event-type";

/// Declares the durable topic exchange, the durable `order.created` queue (of the topology's
/// queue type) and its bindings: order events of every kind (`order.created`,
/// `order.status-changed`) are consumed from it. Safe to call from every process at every start: declarations
/// with the same arguments are no-ops.
pub async fn declare_order_created(
    channel: &Channel,
    topology: &OrderCreatedTopology,
) -> Result<(), lapin::Error> {
    declare_orders_exchange(channel, &topology.exchange).await?;
    channel
        .queue_declare(
            &topology.queue,
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            queue_arguments(topology.queue_type),
        )
        .await?;
    for key in [ORDER_CREATED_ROUTING_KEY, ORDER_STATUS_CHANGED_ROUTING_KEY] {
        channel
            .queue_bind(
                &topology.queue,
                &topology.exchange,
                key,
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    Ok(())
}

/// Declares the durable topic exchange order events are published to (a no-op when it exists).
pub async fn declare_orders_exchange(
    channel: &Channel,
    exchange: &str,
) -> Result<(), lapin::Error> {
    channel
        .exchange_declare(
            exchange,
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
}

/// Adds `span`'s W3C trace context (`traceparent`, `tracestate`) to message headers, so the
/// consumer's span continues the trace. Adds nothing while trace export is off.
pub fn insert_trace_headers(headers: &mut FieldTable, span: &tracing::Span) {
    for (name, value) in crate::telemetry::trace_headers_of(span) {
        headers.insert(name.into(), AMQPValue::LongString(value.into()));
    }
}

/// A string header of a message (long or short string), if present.
pub fn header_str(properties: &BasicProperties, name: &str) -> Option<String> {
    match properties.headers().as_ref()?.inner().get(name)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

/// Makes `span` (the span that processes a message) a child of the span that published it,
/// from the message's trace-context headers.
pub fn continue_trace_from_message(span: &tracing::Span, properties: &BasicProperties) {
    crate::telemetry::continue_remote_trace(span, |name| header_str(properties, name));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_headers_are_read_whatever_their_amqp_type() {
        let mut headers = FieldTable::default();
        headers.insert("a".into(), AMQPValue::LongString("long".into()));
        headers.insert("b".into(), AMQPValue::ShortString("short".into()));
        headers.insert("c".into(), AMQPValue::LongUInt(3));
        let props = BasicProperties::default().with_headers(headers);
        assert_eq!(header_str(&props, "a").as_deref(), Some("long"));
        assert_eq!(header_str(&props, "b").as_deref(), Some("short"));
        assert_eq!(header_str(&props, "c"), None);
        assert_eq!(header_str(&props, "missing"), None);
        assert_eq!(header_str(&BasicProperties::default(), "a"), None);
    }
}
