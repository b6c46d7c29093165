//! Each change of status of a user's orders takes the user's next sequence number, in commit
//! order: a reader that follows "after N" never sees a number before the one under it, so it
//! cannot skip a change that commits late. The outbox relay numbers every change in the shop
//! the same way before publishing it. The live subscription resumes from these numbers.

mod harness;

use futures::StreamExt as _;
use harness::*;
use shopmesh_events::OrderStatusChangedV1;
use shopmesh_orders::store::StatusChange;

/// Changes of `user`'s orders after `after`, as (sequence, order, version), read by `token`.
async fn changes(h: &Harness, token: &AccessToken, user: i64, after: i64) -> Vec<(i64, i64, i32)> {
    let page = h
        .client
        .list_user_order_changes(token, user, Some(after), Some(500))
        .await
        .unwrap();
    assert!(page.latest >= page.items.last().map_or(0, |c| c.sequence));
    page.items
        .iter()
        .map(|c| (c.sequence, c.order_id, c.version))
        .collect()
}

/// Every change in the shop after `after`, as (shop sequence, order, version), read by an admin.
async fn shop_changes(h: &Harness, after: i64) -> Vec<(i64, i64, i32)> {
    let page = h
        .client
        .list_order_changes(&h.admin, Some(after), Some(500))
        .await
        .unwrap();
    let numbers = page.items.iter().map(|c| c.shop_sequence.unwrap_or(0));
    assert!(page.latest >= numbers.clone().max().unwrap_or(0));
    page.items
        .iter()
        .map(|c| (c.shop_sequence.unwrap_or(0), c.order_id, c.version))
        .collect()
}

/// The shop sequence numbers in the status changes among `messages`' payloads.
fn numbered(messages: impl IntoIterator<Item = (String, Vec<u8>)>) -> Vec<(i64, i64, i32)> {
    messages
        .into_iter()
        .filter(|(key, _)| key == "order.status-changed")
        .map(|(_, payload)| {
            let event = OrderStatusChangedV1::from_json(&payload).unwrap();
            (
                event.shop_sequence.unwrap_or(0),
                event.order_id,
                event.version,
            )
        })
        .collect()
}

fn cancel(store: &OrderStore, id: i64) -> impl std::future::Future<Output = ()> + use<> {
    let store = store.clone();
    async move {
        let change = StatusChange {
            from: OrderStatus::Pending,
            to: OrderStatus::Cancelled,
            cause: "race",
        };
        store.change_status(id, change).await.unwrap();
    }
}

#[tokio::test]
async fn a_reader_following_the_numbers_sees_each_change_once_and_never_a_gap() {
    let h = Harness::start().await;
    const ORDERS: i64 = 20;
    let mut ids = Vec::new();
    for _ in 0..ORDERS {
        ids.push(h.create(1, 3, 1).await.id);
    }
    // The reader moves its cursor past whatever it sees; a number seen before a lower one
    // commits would make it skip that one for good.
    let reader = {
        let (client, token) = (h.client.clone(), h.user(1));
        tokio::spawn(async move {
            let (mut cursor, mut seen) = (0, Vec::new());
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            while cursor < ORDERS && tokio::time::Instant::now() < deadline {
                let read = client.list_user_order_changes(&token, 1, Some(cursor), Some(500));
                let Ok(page) = read.await else { continue };
                for change in page.items {
                    assert_eq!(change.sequence, cursor + 1, "a gap after {cursor}");
                    cursor = change.sequence;
                    seen.push(change.order_id);
                }
            }
            seen
        })
    };
    // The first change is held up once it has its number: the key of its timeline entry is
    // taken by a transaction left open (on a connection of its own that skips the foreign key,
    // so it locks nothing else). Every other change may wait for it, but none of theirs may be
    // seen before it commits.
    let mut holder = h.store.pool().acquire().await.unwrap().detach();
    for statement in ["SET foreign_key_checks = 0", "BEGIN"] {
        sqlx::query(statement).execute(&mut holder).await.unwrap();
    }
    sqlx::query(
        "INSERT INTO order_transitions (order_id, version, to_status, cause, changed_at) \
         VALUES (?, 2, 'cancelled', 'held', NOW())",
    )
    .bind(ids[0])
    .execute(&mut holder)
    .await
    .unwrap();
    let first = tokio::spawn(cancel(&h.store, ids[0]));
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Three at a time: the pool's other connections stay free for the reader.
    let store = h.store.clone();
    let rest = futures::stream::iter(ids[1..].to_vec()).map(move |id| cancel(&store, id));
    let rest = tokio::spawn(rest.buffer_unordered(3).collect::<Vec<()>>());
    tokio::time::sleep(Duration::from_millis(500)).await;
    sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
    sqlx::Connection::close(holder).await.unwrap();
    first.await.unwrap();
    rest.await.unwrap();
    let seen: BTreeSet<i64> = reader.await.unwrap().into_iter().collect();
    assert_eq!(seen, ids.iter().copied().collect::<BTreeSet<_>>());
    let numbers: Vec<i64> = changes(&h, &h.user(1), 1, 0)
        .await
        .iter()
        .map(|c| c.0)
        .collect();
    assert_eq!(numbers, (1..=ORDERS).collect::<Vec<_>>());
    h.stop().await;
}

#[tokio::test]
async fn the_event_and_the_timeline_carry_the_number_and_users_count_apart() {
    let h = Harness::start().await;
    let first = h.create(1, 3, 1).await.id;
    let other = h.create(2, 3, 1).await.id;
    for (user, id) in [(1, first), (2, other)] {
        h.client.cancel_order(&h.user(user), id).await.unwrap();
    }
    assert_eq!(changes(&h, &h.user(1), 1, 0).await, [(1, first, 2)]);
    assert_eq!(changes(&h, &h.admin, 2, 0).await, [(1, other, 2)]);
    assert!(changes(&h, &h.user(1), 1, 1).await.is_empty());
    let timeline = h.store.timeline(first).await.unwrap();
    let numbers: Vec<_> = timeline.iter().map(|t| t.sequence).collect();
    assert_eq!(numbers, [None, Some(1)], "placing takes no number");
    let payload: String = sqlx::query_scalar(
        "SELECT payload FROM outbox WHERE routing_key = 'order.status-changed' ORDER BY id LIMIT 1",
    )
    .fetch_one(h.store.pool())
    .await
    .unwrap();
    let event: serde_json::Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(event["userSequence"], 1, "{event}");
    h.stop().await;
}

#[tokio::test]
async fn a_shopper_reads_only_their_own_changes() {
    let h = Harness::start().await;
    let answer = h
        .client
        .list_user_order_changes(&h.user(2), 1, None, None)
        .await;
    assert_eq!(problem_status(answer), 403);
    let answer = h
        .client
        .list_user_order_changes(&h.user(1), 1, Some(-1), None)
        .await;
    assert_eq!(problem_status(answer), 400);
    h.stop().await;
}

#[tokio::test]
async fn two_relays_number_every_change_in_the_shop_once_and_a_reader_never_sees_a_gap() {
    // Each relay holds two connections (its batch and its numbering), the held change one.
    let h = Harness::start_pooled(test_stack(), 12).await;
    const ORDERS: i64 = 40;
    let mut ids = Vec::new();
    for i in 0..ORDERS {
        ids.push(h.create(1 + i % 4, 3, 1).await.id);
    }
    let broker = TestBroker::declare().await;
    let (topology, ch) = (broker.topology.clone(), broker.ch.clone());
    // Two relays in small batches, so their numbering interleaves.
    let shutdown = Shutdown::new();
    let small = RelayConfig {
        batch_size: 3,
        ..fast_relay()
    };
    let reader = {
        let (client, admin) = (h.client.clone(), h.admin.clone());
        tokio::spawn(async move {
            let (mut cursor, mut seen) = (0, Vec::new());
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            while cursor < ORDERS && tokio::time::Instant::now() < deadline {
                let Ok(page) = client
                    .list_order_changes(&admin, Some(cursor), Some(500))
                    .await
                else {
                    continue;
                };
                for change in page.items {
                    assert_eq!(
                        change.shop_sequence,
                        Some(cursor + 1),
                        "a gap after {cursor}"
                    );
                    cursor += 1;
                    seen.push(change.order_id);
                }
            }
            seen
        })
    };
    // The first change is held up once it has its number: its timeline entry is locked by a
    // transaction left open, so the relay numbering it waits while holding the shop's counter.
    // The other relay must not commit numbers after it meanwhile.
    cancel(&h.store, ids[0]).await;
    let mut holder = h.store.pool().begin().await.unwrap();
    sqlx::query(
        "SELECT cause FROM order_transitions WHERE order_id = ? AND version = 2 FOR UPDATE",
    )
    .bind(ids[0])
    .execute(&mut *holder)
    .await
    .unwrap();
    let relays: Vec<_> = (0..2)
        .map(|_| {
            let relay =
                OutboxRelay::new(h.store.clone(), amqp_url(), topology.clone(), small.clone());
            tokio::spawn(relay.run(shutdown.clone()))
        })
        .collect();
    let store = h.store.clone();
    let cancels = futures::stream::iter(ids[1..].to_vec()).map(move |id| cancel(&store, id));
    cancels.buffer_unordered(4).collect::<Vec<()>>().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    holder.rollback().await.unwrap();
    let seen: BTreeSet<i64> = reader.await.unwrap().into_iter().collect();
    assert_eq!(seen, ids.iter().copied().collect::<BTreeSet<_>>());
    // The events carry the numbers the orders service lists, each number once.
    let got = drain(
        &ch,
        &topology.queue,
        2 * ORDERS as usize,
        Duration::from_secs(30),
    )
    .await;
    let messages = got.iter().map(|m| {
        let key = m.delivery.routing_key.as_str().to_owned();
        (key, m.delivery.data.clone())
    });
    let mut published = numbered(messages);
    published.sort();
    assert_eq!(published, shop_changes(&h, 0).await);
    let numbers: Vec<i64> = published.iter().map(|c| c.0).collect();
    assert_eq!(numbers, (1..=ORDERS).collect::<Vec<_>>());
    shutdown.trigger();
    for relay in relays {
        relay.await.unwrap();
    }
    broker.remove().await;
    h.stop().await;
}

#[tokio::test]
async fn a_change_published_again_keeps_its_number() {
    let h = Harness::start().await;
    let id = h.create(1, 3, 1).await.id;
    h.client.cancel_order(&h.user(1), id).await.unwrap();
    // Twice numbered, as by a relay that dies before marking its batch published and by the
    // one that publishes it again.
    for _ in 0..2 {
        let (batch, mut messages) = h.store.lock_pending(10).await.unwrap();
        h.store.number_changes(&mut messages).await.unwrap();
        let payloads = messages
            .into_iter()
            .map(|m| (m.routing_key, m.payload.into_bytes()));
        assert_eq!(numbered(payloads), [(1, id, 2)]);
        batch.rollback().await.unwrap();
    }
    assert_eq!(shop_changes(&h, 0).await, [(1, id, 2)]);
    let timeline = h.store.timeline(id).await.unwrap();
    let numbers: Vec<_> = timeline.iter().map(|t| t.shop_sequence).collect();
    assert_eq!(numbers, [None, Some(1)], "placing takes no number");
    h.stop().await;
}

#[tokio::test]
async fn only_an_admin_reads_the_shops_changes() {
    let h = Harness::start().await;
    let answer = h.client.list_order_changes(&h.user(1), None, None).await;
    assert_eq!(problem_status(answer), 403);
    let answer = h.client.list_order_changes(&h.admin, Some(-1), None).await;
    assert_eq!(problem_status(answer), 400);
    assert!(shop_changes(&h, 0).await.is_empty());
    h.stop().await;
}
