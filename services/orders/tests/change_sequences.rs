//! Each change of status of a user's orders takes the user's next sequence number, in commit
//! order: a reader that follows "after N" never sees a number before the one under it, so it
//! cannot skip a change that commits late. The live subscription resumes from these numbers.

mod harness;

use futures::StreamExt as _;
use harness::*;
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
