//! Connections to a real RabbitMQ: the frame size a connection proposes, and a message larger
//! than one frame arriving whole.
#![cfg(feature = "amqp")]

use std::time::Duration;

use lapin::options::{BasicGetOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use shopmesh_common::amqp::{FRAME_MAX, connect};
use shopmesh_testkit::{amqp_url, unique};

const WITHIN: Duration = Duration::from_secs(5);

#[tokio::test]
async fn a_connection_agrees_on_small_frames_and_a_larger_message_arrives_whole() {
    let connection = connect(&amqp_url(), "common-test", WITHIN).await.unwrap();
    assert_eq!(connection.configuration().frame_max(), FRAME_MAX);
    let channel = connection.create_channel().await.unwrap();
    let queue = unique("test.frames");
    let options = QueueDeclareOptions {
        auto_delete: true,
        ..Default::default()
    };
    channel
        .queue_declare(&queue, options, FieldTable::default())
        .await
        .unwrap();
    // Six frames' worth of body.
    let body: Vec<u8> = (0..6 * FRAME_MAX).map(|i| (i % 251) as u8).collect();
    channel
        .basic_publish(
            "",
            &queue,
            BasicPublishOptions::default(),
            &body,
            Default::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let got = channel
        .basic_get(&queue, BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("the message is in the queue");
    assert!(got.delivery.data == body, "the body arrived changed");
    connection.close(200, "done").await.unwrap();
}

#[tokio::test]
async fn a_frame_size_in_the_url_is_kept() {
    let url = format!("{}?frame_max=65536", amqp_url());
    let connection = connect(&url, "common-test", WITHIN).await.unwrap();
    assert_eq!(connection.configuration().frame_max(), 65536);
    connection.close(200, "done").await.unwrap();
}
