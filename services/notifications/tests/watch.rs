//! `WatchNotifications`: a user's new notifications streamed as they are stored, only to the
//! user (or an admin), and a client that goes away frees its stream at once.

mod harness;

use harness::*;

#[tokio::test]
async fn a_user_watches_their_new_notifications_and_leaving_frees_the_stream() {
    let h = Harness::start(Options::default()).await;
    let me = token(&h.stack, 1, Role::User);
    let mut client = h.client_as(&me).await;
    // Someone else's notifications are not theirs to watch.
    let refused = client
        .watch_notifications(pb::WatchNotificationsRequest { user_id: 2 })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);

    let mut stream = client
        .watch_notifications(pb::WatchNotificationsRequest { user_id: 1 })
        .await
        .unwrap()
        .into_inner();
    // The stream's first look is done once a stored notification is reported as new.
    tokio::time::sleep(Duration::from_millis(800)).await;
    h.publish(&event(9001, 2)).await;
    h.publish(&event(9002, 1)).await;
    let next = tokio::time::timeout(Duration::from_secs(15), stream.message())
        .await
        .expect("a notification within 15 s")
        .unwrap()
        .expect("the stream is open")
        .notification
        .expect("a notification");
    assert_eq!(
        (next.order_id, next.user_id),
        (9002, 1),
        "user 1's, not user 2's"
    );

    assert_eq!(h.open_streams().await, 1.0);
    drop(stream);
    drop(client);
    eventually("the stream freed", Duration::from_secs(5), || async {
        (h.open_streams().await == 0.0).then_some(())
    })
    .await;
    h.stop().await;
}
