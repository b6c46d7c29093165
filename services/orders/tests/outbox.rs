//! The transactional outbox: every event delivered exactly once across a broker outage and a
//! relay restart.

mod harness;

use harness::*;

#[tokio::test]
async fn outbox_delivers_every_event_exactly_once_across_a_broker_outage() {
    let h = Harness::start().await;
    let broker = TestBroker::declare().await;
    let (topology, ch) = (broker.topology.clone(), broker.ch.clone());

    let (target, _) = reroute(&amqp_url(), "x:1");
    let proxy = TcpProxy::start(&target).await;
    proxy.cut();
    let (_, via_proxy) = reroute(&amqp_url(), &proxy.addr.to_string());
    let relay = OutboxRelay::new(h.store.clone(), via_proxy, topology.clone(), fast_relay());
    let status = relay.status();
    let shutdown = Shutdown::new();
    let relay_task = tokio::spawn(relay.run(shutdown.clone()));

    // The broker is unreachable: orders are still accepted.
    let mut order_ids = BTreeSet::new();
    for i in 0..100 {
        order_ids.insert(h.create(1 + i % 7, 1 + i, 1).await.id);
    }
    assert!(!status.connected());
    assert_eq!(
        queue_depth(&ch, &topology.queue).await,
        0,
        "nothing published during the outage"
    );

    proxy.restore();
    let got = drain(&ch, &topology.queue, 100, Duration::from_secs(30)).await;
    let events = events(&got);
    assert_eq!(
        events.len(),
        100,
        "all events arrive after the broker returns"
    );
    let event_ids: BTreeSet<_> = events.iter().map(|e| e.event_id).collect();
    assert_eq!(event_ids.len(), 100, "no event twice");
    let event_orders: BTreeSet<_> = events.iter().map(|e| e.order_id).collect();
    assert_eq!(event_orders, order_ids, "one event per created order");

    // Nothing more arrives, and the outbox is drained.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(queue_depth(&ch, &topology.queue).await, 0, "no duplicates");
    assert_eq!(h.store.pending_outbox().await.unwrap(), 0);
    assert_eq!(status.published(), 100);

    shutdown.trigger();
    relay_task.await.unwrap();
    broker.remove().await;
    h.stop().await;
}

#[tokio::test]
async fn relay_restart_resumes_pending_rows() {
    let h = Harness::start().await;
    let broker = TestBroker::declare().await;
    let (topology, ch) = (broker.topology.clone(), broker.ch.clone());

    // Orders created while no relay runs stay pending.
    for i in 0..10 {
        h.create(3, 1 + i, 1).await;
    }
    assert_eq!(h.store.pending_outbox().await.unwrap(), 10);

    let run = |shutdown: Shutdown| {
        let relay = OutboxRelay::new(h.store.clone(), amqp_url(), topology.clone(), fast_relay());
        tokio::spawn(relay.run(shutdown))
    };
    let first = Shutdown::new();
    let task = run(first.clone());
    let got = drain(&ch, &topology.queue, 10, Duration::from_secs(20)).await;
    assert_eq!(events(&got).len(), 10);
    first.trigger();
    task.await.unwrap();

    // Stopped relay: new orders wait; a new relay picks them up.
    for i in 0..5 {
        h.create(4, 1 + i, 1).await;
    }
    assert_eq!(h.store.pending_outbox().await.unwrap(), 5);
    let second = Shutdown::new();
    let task = run(second.clone());
    let got = drain(&ch, &topology.queue, 5, Duration::from_secs(20)).await;
    let events = events(&got);
    assert_eq!(events.len(), 5);
    assert!(
        events.iter().all(|e| e.user_id == 4),
        "only the new events are published again"
    );
    eventually("outbox drained", Duration::from_secs(5), || async {
        (h.store.pending_outbox().await.unwrap() == 0).then_some(())
    })
    .await;
    second.trigger();
    task.await.unwrap();
    broker.remove().await;
    h.stop().await;
}

#[tokio::test]
async fn an_order_placed_while_the_relay_holds_its_batch_does_not_wait_for_it() {
    let h = Harness::start().await;
    h.create(1, 3, 1).await;
    // The relay's batch stays locked while it publishes. Had its locking read also locked the
    // gap where new outbox rows go, this order would wait for the batch, and the relay's
    // update of the batch could then wait for this order: a deadlock.
    let (batch, rows) = h.store.lock_pending(100).await.unwrap();
    assert_eq!(rows.len(), 1);
    let placed = tokio::time::timeout(Duration::from_secs(5), h.create(1, 3, 1)).await;
    assert!(placed.is_ok(), "the order waited for the relay's batch");
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    shopmesh_orders::store::finish_batch(batch, &ids, &[])
        .await
        .unwrap();
    assert_eq!(h.store.pending_outbox().await.unwrap(), 1);
    h.stop().await;
}
