//! RabbitMQ plumbing shared by the publisher (orders) and the consumer (notifications):
//! connecting with a timeout and declaring the `order.created` topology idempotently.

use std::time::Duration;

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use shopmesh_events::{ORDER_CREATED_ROUTING_KEY, OrderCreatedTopology};

/// Opens a connection, failing after `timeout` instead of hanging on an unresponsive host.
pub async fn connect(url: &str, name: &str, timeout: Duration) -> Result<Connection, lapin::Error> {
    let props = ConnectionProperties::default().with_connection_name(name.into());
    match tokio::time::timeout(timeout, Connection::connect(url, props)).await {
        Ok(result) => result,
        Err(_) => Err(lapin::Error::IOError(std::sync::Arc::new(
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("connecting to RabbitMQ timed out after {timeout:?}"),
            ),
        ))),
    }
}

/// Declares the durable topic exchange, the durable `order.created` queue and its binding.
/// Safe to call from every process at every start: declarations with the same arguments are
/// no-ops.
pub async fn declare_order_created(
    channel: &Channel,
    topology: &OrderCreatedTopology,
) -> Result<(), lapin::Error> {
    channel
        .exchange_declare(
            &topology.exchange,
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_declare(
            &topology.queue,
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_bind(
            &topology.queue,
            &topology.exchange,
            ORDER_CREATED_ROUTING_KEY,
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(())
}
