//! The order lifecycle: every change of status follows the contract's state machine, is
//! serialised on the order's row, lands in the timeline and leaves one event in the outbox.

mod harness;

use harness::*;
use shopmesh_orders::error::OrdersError;
use shopmesh_orders::store::{Changed, StatusChange};

fn status(result: Result<impl std::fmt::Debug, ClientError>) -> u16 {
    match result {
        Err(e) => e.problem().map_or(0, |p| p.status()),
        Ok(ok) => panic!("expected a problem, got {ok:?}"),
    }
}

async fn status_events(h: &Harness, order_id: i64) -> Vec<serde_json::Value> {
    let payloads: Vec<String> = sqlx::query_scalar(
        "SELECT payload FROM outbox WHERE routing_key = 'order.status-changed' ORDER BY id",
    )
    .fetch_all(h.store.pool())
    .await
    .unwrap();
    payloads
        .iter()
        .map(|p| serde_json::from_str::<serde_json::Value>(p).unwrap())
        .filter(|e| e["orderId"] == order_id)
        .collect()
}

/// Puts order `id` in `status` behind the store's back, to start a transition from there.
async fn force(h: &Harness, id: i64, status: OrderStatus) {
    sqlx::query("UPDATE orders SET status = ? WHERE id = ?")
        .bind(status.as_str())
        .bind(id)
        .execute(h.store.pool())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_placed_order_starts_its_timeline_pending() {
    let h = Harness::start().await;
    let order = h.create(1, 3, 1).await;
    let timeline = h
        .client
        .get_order_timeline(&h.user(1), order.id)
        .await
        .unwrap();
    let entries: Vec<_> = timeline
        .items
        .iter()
        .map(|t| (t.version, t.from, t.to, t.cause.as_str()))
        .collect();
    assert_eq!(entries, [(1, None, OrderStatus::Pending, "placed")]);
    let other = h.client.get_order_timeline(&h.user(2), order.id).await;
    assert_eq!(status(other), 404, "another shopper cannot see it");
    h.stop().await;
}

#[tokio::test]
async fn a_shopper_cancels_once_and_a_second_cancel_changes_nothing() {
    let h = Harness::start().await;
    let order = h.create(1, 3, 1).await;
    assert_eq!(
        status(h.client.cancel_order(&h.user(2), order.id).await),
        404
    );
    for _ in 0..2 {
        let cancelled = h.client.cancel_order(&h.user(1), order.id).await.unwrap();
        assert_eq!(cancelled.status, OrderStatus::Cancelled);
    }
    let timeline = h
        .client
        .get_order_timeline(&h.admin, order.id)
        .await
        .unwrap();
    let last = timeline.items.last().unwrap();
    assert_eq!(timeline.items.len(), 2);
    assert_eq!(
        (last.version, last.from, last.to, last.cause.as_str()),
        (
            2,
            Some(OrderStatus::Pending),
            OrderStatus::Cancelled,
            "cancelled by the shopper"
        )
    );
    let events = status_events(&h, order.id).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        (&events[0]["from"], &events[0]["to"], &events[0]["version"]),
        (
            &serde_json::json!("pending"),
            &serde_json::json!("cancelled"),
            &serde_json::json!(2)
        )
    );
    h.stop().await;
}

#[tokio::test]
async fn a_shipped_order_cannot_be_cancelled() {
    let h = Harness::start().await;
    let order = h.create(1, 3, 1).await;
    force(&h, order.id, OrderStatus::Shipped).await;
    assert_eq!(status(h.client.cancel_order(&h.admin, order.id).await), 409);
    assert_eq!(h.store.timeline(order.id).await.unwrap().len(), 1);
    assert!(status_events(&h, order.id).await.is_empty());
    h.stop().await;
}

#[tokio::test]
async fn exactly_the_declared_transitions_are_made() {
    let h = Harness::start().await;
    let order = h.create(1, 3, 1).await;
    let (mut made, mut refused) = (0, 0);
    for &from in OrderStatus::ALL {
        for &to in OrderStatus::ALL.iter().filter(|&&to| to != from) {
            force(&h, order.id, from).await;
            let change = StatusChange {
                from,
                to,
                cause: "test",
            };
            match h.store.change_status(order.id, change).await {
                Ok(Changed::Moved(o)) => {
                    assert!(from.may_become(to), "{from:?} -> {to:?} was made");
                    assert_eq!(o.status, to);
                    made += 1;
                }
                Err(OrdersError::IllegalTransition { .. }) => {
                    assert!(!from.may_become(to), "{from:?} -> {to:?} was refused");
                    refused += 1;
                }
                other => panic!("{from:?} -> {to:?}: {other:?}"),
            }
        }
    }
    assert_eq!(made, OrderStatus::TRANSITIONS.len());
    assert!(refused > made, "{refused} refused");
    let versions: Vec<i32> = h
        .store
        .timeline(order.id)
        .await
        .unwrap()
        .iter()
        .map(|t| t.version)
        .collect();
    assert_eq!(versions, (1..=made as i32 + 1).collect::<Vec<_>>());
    h.stop().await;
}

#[tokio::test]
async fn racing_changes_from_one_status_make_exactly_one_move() {
    let h = Harness::start().await;
    let order = h.create(1, 3, 1).await;
    let targets = [
        OrderStatus::Cancelled,
        OrderStatus::StockReserved,
        OrderStatus::Rejected,
        OrderStatus::Expired,
    ];
    // Another transaction holds the order's row while the changes start, so that all of them
    // read it before any writes: only a locking read keeps them from all moving it.
    let mut holder = h.store.pool().begin().await.unwrap();
    sqlx::query("SELECT id FROM orders WHERE id = ? FOR UPDATE")
        .bind(order.id)
        .execute(&mut *holder)
        .await
        .unwrap();
    let calls: Vec<_> = (0..24)
        .map(|i| {
            let store = h.store.clone();
            let to = targets[i % targets.len()];
            tokio::spawn(async move {
                let change = StatusChange {
                    from: OrderStatus::Pending,
                    to,
                    cause: "race",
                };
                store.change_status(order.id, change).await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    holder.commit().await.unwrap();
    let mut moved = 0;
    for call in futures::future::join_all(calls).await {
        match call.unwrap() {
            Ok(Changed::Moved(_)) => moved += 1,
            Ok(Changed::Already(_)) | Err(OrdersError::IllegalTransition { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(moved, 1);
    assert_eq!(h.store.timeline(order.id).await.unwrap().len(), 2);
    assert_eq!(status_events(&h, order.id).await.len(), 1);
    h.stop().await;
}
