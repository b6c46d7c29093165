//! The consumer: events become notifications exactly once; poison, retries, the DLQ and
//! redrive; a store outage pauses consumption.

mod harness;

use harness::*;

#[tokio::test]
async fn published_events_become_notifications_readable_over_grpc() {
    let h = Harness::start(Options::default()).await;
    let events: Vec<_> = (1..=12).map(|i| event(i, 1 + i % 3)).collect();
    for e in &events {
        h.publish(e).await;
    }
    let mut client = h.client().await;
    eventually("12 notifications", Duration::from_secs(20), || async {
        (h.status.processed.load(Ordering::SeqCst) == 12).then_some(())
    })
    .await;

    for e in &events {
        let found = for_order(&mut client, e.order_id).await;
        assert_eq!(found.len(), 1, "order {}", e.order_id);
        let n = &found[0];
        assert_eq!(
            (n.order_id, n.user_id, n.event_id.as_str()),
            (e.order_id, e.user_id, e.event_id.to_string().as_str())
        );
        assert_eq!(n.status, pb::NotificationStatus::Sent as i32);
        assert!(n.sent_at.is_some());
        assert!(n.message.contains(&format!("#{}", e.order_id)));
    }
    // Each user's notifications, paged 2 at a time, newest first, none twice.
    let mut total = 0;
    for user in 1..=3 {
        let pages = all_for_user(&mut client, user, 2).await;
        let expected: BTreeSet<_> = events
            .iter()
            .filter(|e| e.user_id == user)
            .map(|e| e.order_id)
            .collect();
        let got: BTreeSet<_> = pages.iter().map(|n| n.order_id).collect();
        assert_eq!(got, expected);
        assert_eq!(pages.len(), expected.len(), "no duplicates across pages");
        let times: Vec<_> = pages.iter().map(|n| n.sent_at.unwrap().seconds).collect();
        assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");
        total += pages.len();
    }
    assert_eq!(total, 12);
    let http_url = h.http_url.clone().expect("the Application serves HTTP");
    let ready = reqwest::get(format!("{http_url}/health/ready"))
        .await
        .unwrap();
    assert_eq!(ready.status().as_u16(), 200, "MongoDB and RabbitMQ up");
    let metrics = h.metrics().await;
    assert!(
        metrics.contains(r#"notifications_consumed_total{outcome="stored"}"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"grpc_requests_total{service="notifications",method="GetNotifications",code="Ok"}"#
        ),
        "{metrics}"
    );
    let indexes = h.mongo.index_names().await.unwrap();
    for name in [ORDER_INDEX, USER_INDEX, "eventId_unique"] {
        assert!(indexes.iter().any(|i| i == name), "{name} in {indexes:?}");
    }
    // Both queries walk their compound index, which holds the newest-first order, so a page
    // costs the same however many notifications there are.
    let by_order = h.mongo.index_used(doc! { "orderId": 1_i64 }).await.unwrap();
    assert_eq!(by_order.as_deref(), Some(ORDER_INDEX));
    let by_user = h.mongo.index_used(doc! { "userId": 1_i64 }).await.unwrap();
    assert_eq!(by_user.as_deref(), Some(USER_INDEX));
    h.stop().await;
}

#[tokio::test]
async fn the_same_event_delivered_twice_is_stored_once() {
    let h = Harness::start(Options::default()).await;
    let e = event(501, 9);
    h.publish(&e).await;
    h.publish(&e).await;
    h.publish(&event(502, 9)).await;
    eventually("3 deliveries handled", Duration::from_secs(20), || async {
        (h.status.processed.load(Ordering::SeqCst) + h.status.duplicates.load(Ordering::SeqCst)
            == 3)
            .then_some(())
    })
    .await;
    let mut client = h.client().await;
    assert_eq!(for_order(&mut client, 501).await.len(), 1);
    assert_eq!(h.status.duplicates.load(Ordering::SeqCst), 1);
    assert_eq!(all_for_user(&mut client, 9, 10).await.len(), 2);
    h.stop().await;
}

#[tokio::test]
async fn poison_messages_go_to_the_dlq_and_the_stream_continues() {
    let h = Harness::start(Options::default()).await;
    let mut bad_schema: serde_json::Value = serde_json::from_slice(&event(1, 1).to_json()).unwrap();
    bad_schema["quantity"] = 0.into();
    h.publish_raw(b"this is not json", "poison-1").await;
    h.publish_raw(&serde_json::to_vec(&bad_schema).unwrap(), "poison-2")
        .await;
    h.publish_raw(&vec![b'{'; 70 * 1024], "poison-3").await;
    let good = event(777, 4);
    h.publish(&good).await;

    eventually(
        "valid event stored behind the poison",
        Duration::from_secs(20),
        || async { (h.status.processed.load(Ordering::SeqCst) == 1).then_some(()) },
    )
    .await;
    let mut client = h.client().await;
    assert_eq!(for_order(&mut client, 777).await.len(), 1);

    let ch = &h.publisher.1;
    let mut reasons = Vec::new();
    let start = tokio::time::Instant::now();
    while reasons.len() < 3 && start.elapsed() < Duration::from_secs(10) {
        match ch
            .basic_get(
                &h.topology.dead_letter_queue(),
                BasicGetOptions { no_ack: true },
            )
            .await
            .unwrap()
        {
            Some(m) => {
                let reason = m
                    .delivery
                    .properties
                    .headers()
                    .as_ref()
                    .and_then(|h| h.inner().get(REASON_HEADER).cloned());
                let id = m
                    .delivery
                    .properties
                    .message_id()
                    .as_ref()
                    .map(|s| s.to_string())
                    .unwrap_or_default();
                reasons.push((id, reason));
            }
            None => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    assert_eq!(reasons.len(), 3);
    reasons.sort_by(|a, b| a.0.cmp(&b.0));
    let text = |v: &Option<AMQPValue>| match v {
        Some(AMQPValue::LongString(s)) => s.to_string(),
        other => panic!("reason header missing: {other:?}"),
    };
    assert!(text(&reasons[0].1).contains("not JSON"), "{:?}", reasons[0]);
    assert!(text(&reasons[1].1).contains("violates"), "{:?}", reasons[1]);
    assert!(text(&reasons[2].1).contains("exceeds"), "{:?}", reasons[2]);
    assert_eq!(h.status.dead_lettered.load(Ordering::SeqCst), 3);
    h.stop().await;
}

#[tokio::test]
async fn transient_store_failures_are_retried_then_stored() {
    let h = Harness::start(Options {
        failures: 2,
        ..Options::default()
    })
    .await;
    let e = event(900, 5);
    h.publish(&e).await;
    eventually("stored after retries", Duration::from_secs(20), || async {
        (h.status.processed.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;
    assert_eq!(
        h.status.retried.load(Ordering::SeqCst),
        2,
        "two failures, two retries"
    );
    assert_eq!(h.status.dead_lettered.load(Ordering::SeqCst), 0);
    let mut client = h.client().await;
    assert_eq!(for_order(&mut client, 900).await.len(), 1);
    h.stop().await;
}

#[tokio::test]
async fn a_message_that_keeps_failing_ends_in_the_dlq() {
    let h = Harness::start(Options {
        failures: 1000,
        max_retries: 2,
        ..Options::default()
    })
    .await;
    h.publish(&event(901, 5)).await;
    eventually(
        "dead-lettered after max retries",
        Duration::from_secs(20),
        || async { (h.status.dead_lettered.load(Ordering::SeqCst) == 1).then_some(()) },
    )
    .await;
    assert_eq!(h.status.retried.load(Ordering::SeqCst), 2);
    let m = h
        .publisher
        .1
        .basic_get(
            &h.topology.dead_letter_queue(),
            BasicGetOptions { no_ack: true },
        )
        .await
        .unwrap()
        .expect("in DLQ");
    let e = OrderCreatedV1::from_json(&m.delivery.data).unwrap();
    assert_eq!(e.order_id, 901, "the original payload is kept for replay");
    h.stop().await;
}

/// MongoDB down longer than the whole retry ladder (1 retry after 0.1 s; each attempt fails
/// after the 1.5 s store timeout, so a message is dead-lettered after about 3 s): the
/// consumer stops consuming instead of spending retries, so no good event is dead-lettered,
/// and every one is stored once MongoDB returns.
#[tokio::test]
async fn a_store_outage_pauses_consumption_instead_of_dead_lettering() {
    let (mongo_target, _) = reroute(&mongo_url(), "x:1");
    let mongo_proxy = TcpProxy::start(&mongo_target).await;
    let (_, mongo_via) = reroute(&mongo_url(), &mongo_proxy.addr.to_string());
    let h = Harness::start(Options {
        mongo_url: Some(mongo_via),
        max_retries: 1,
        ..Options::default()
    })
    .await;

    mongo_proxy.cut();
    let events: Vec<_> = (1..=20).map(|i| event(i, 1)).collect();
    for e in &events {
        h.publish(e).await;
    }
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(dead_lettered(&h).await, 0, "an outage dead-letters nothing");
    assert_eq!(h.status.dead_lettered.load(Ordering::SeqCst), 0);

    mongo_proxy.restore();
    eventually("all 20 stored", Duration::from_secs(30), || async {
        (h.status.processed.load(Ordering::SeqCst) == 20).then_some(())
    })
    .await;
    assert_eq!(dead_lettered(&h).await, 0);
    h.stop().await;
}

/// After the cause is fixed, an operator moves dead-lettered events back: good ones (matching
/// the reason asked for) are stored, poison stays in the DLQ, and running it again is harmless.
#[tokio::test]
async fn redrive_moves_good_events_back_and_leaves_poison() {
    let h = Harness::start(Options::default()).await;
    let events: Vec<_> = (1..=3).map(|i| event(700 + i, 1)).collect();
    for e in &events {
        h.dead_letter(&e.to_json(), "store failed after 5 retries: timeout")
            .await;
    }
    h.dead_letter(b"{not json", "expected value at line 1")
        .await;
    assert_eq!(dead_lettered(&h).await, 4);

    let url = amqp_url();
    let only_other = redrive(&url, &h.topology, Some("no such reason"))
        .await
        .unwrap();
    assert_eq!((only_other.moved, only_other.kept), (0, 4));
    let report = redrive(&url, &h.topology, Some("store failed"))
        .await
        .unwrap();
    assert_eq!((report.moved, report.kept), (3, 1));
    eventually(
        "the 3 redriven events stored",
        Duration::from_secs(20),
        || async { (h.status.processed.load(Ordering::SeqCst) == 3).then_some(()) },
    )
    .await;
    assert_eq!(dead_lettered(&h).await, 1, "poison stays");
    let again = redrive(&url, &h.topology, None).await.unwrap();
    assert_eq!((again.moved, again.kept), (0, 1));
    assert_eq!(h.status.dead_lettered.load(Ordering::SeqCst), 0);
    h.stop().await;
}
