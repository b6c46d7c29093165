//! What the service declares in RabbitMQ and MongoDB: queue types, retry queues, indexes.

mod harness;

use harness::*;

/// The queues, their retry queues and the DLQ are quorum queues unless configured otherwise,
/// and the retry ladder (TTL, then dead-lettering back to the main queue) works on them.
#[tokio::test]
async fn queues_are_quorum_queues_by_default_and_retries_flow_through_them() {
    let h = Harness::start(Options {
        failures: 2,
        ..Options::default()
    })
    .await;
    assert_eq!(h.topology.queue_type, QueueType::Quorum);
    for (q, args) in declared_queues(&h.topology, 3, 100) {
        assert!(
            is_queue_of_type(&h.publisher.0, &q, &args, QueueType::Quorum).await,
            "{q} is a quorum queue"
        );
        assert!(
            !is_queue_of_type(&h.publisher.0, &q, &args, QueueType::Classic).await,
            "{q} is not a classic queue"
        );
    }
    h.publish(&event(950, 5)).await;
    eventually(
        "stored after two retries",
        Duration::from_secs(20),
        || async { (h.status.processed.load(Ordering::SeqCst) == 1).then_some(()) },
    )
    .await;
    assert_eq!(h.status.retried.load(Ordering::SeqCst), 2);
    h.stop().await;
}

/// `RABBITMQ_QUEUE_TYPE=classic` keeps an existing classic deployment working.
#[tokio::test]
async fn classic_queues_remain_available_by_configuration() {
    let stack = test_stack().set("RABBITMQ_QUEUE_TYPE", "classic");
    let config = shopmesh_notifications::config::NotificationsConfig::from_env(
        &stack.env_for(Service::Notifications).unwrap(),
    )
    .unwrap();
    assert_eq!(config.topology.queue_type, QueueType::Classic);
    let conn = shopmesh_common::amqp::connect(&amqp_url(), "queue-type", Duration::from_secs(5))
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    NotificationConsumer::declare(&ch, &config.topology, &config.consumer)
        .await
        .unwrap();
    let base_ms = i64::try_from(config.consumer.retry_base.as_millis()).unwrap();
    for (q, args) in declared_queues(&config.topology, config.consumer.max_retries, base_ms) {
        assert!(
            is_queue_of_type(&conn, &q, &args, QueueType::Classic).await,
            "{q}"
        );
        assert!(
            !is_queue_of_type(&conn, &q, &args, QueueType::Quorum).await,
            "{q}"
        );
    }
    let _ = conn.close(200, "done").await;
    remove_names(&stack.names, config.consumer.max_retries).await;

    let bad = test_stack().set("RABBITMQ_QUEUE_TYPE", "mirrored");
    let err = shopmesh_notifications::config::NotificationsConfig::from_env(
        &bad.env_for(Service::Notifications).unwrap(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("RABBITMQ_QUEUE_TYPE"), "{err}");
}

/// A deployment made by an earlier version has the single-field order index and the user
/// index without `_id`; starting this version replaces them rather than keeping both.
#[tokio::test]
async fn indexes_an_earlier_version_made_are_replaced() {
    let database = format!("notif_replaced_{}", std::process::id());
    let client = mongodb::Client::with_uri_str(mongo_url()).await.unwrap();
    let collection = client
        .database(&database)
        .collection::<mongodb::bson::Document>("notifications");
    for (keys, name) in [
        (doc! { "orderId": 1 }, "orderId_1"),
        (
            doc! { "userId": 1, "createdAt": -1 },
            "userId_1_createdAt_-1",
        ),
    ] {
        let options = mongodb::options::IndexOptions::builder()
            .name(name.to_owned())
            .build();
        collection
            .create_index(
                mongodb::IndexModel::builder()
                    .keys(keys)
                    .options(options)
                    .build(),
            )
            .await
            .unwrap();
    }
    let store = MongoNotificationStore::connect(&mongo_url(), &database, Duration::from_secs(5))
        .await
        .unwrap();
    store.ensure_indexes().await.unwrap();
    store.ensure_indexes().await.unwrap();
    let mut names = store.index_names().await.unwrap();
    names.sort();
    assert_eq!(
        names,
        ["_id_", "eventId_unique", ORDER_INDEX, USER_INDEX],
        "old indexes dropped, new ones made, twice without error"
    );
    store.drop_database().await.unwrap();
}
