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

/// Doubling delay between `min` and `max`, reset after a success.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Starts at `min`.
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max,
            next: min,
        }
    }

    /// The delay to wait now; the following one doubles, up to `max`.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    /// Back to `min` after a success.
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_max_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let seen: Vec<_> = (0..4).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(seen, vec![100, 200, 350, 350]);
        b.reset();
        assert_eq!(b.next_delay().as_millis(), 100);
    }
}
