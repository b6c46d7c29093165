//! Carts: a user's own, set by quantity (the same call twice changes nothing), bounded, kept
//! in the database until emptied.

mod harness;

use harness::*;
use shopmesh_openapi::orders::CartLineInput;

fn quantity(quantity: i32) -> CartLineInput {
    CartLineInput { quantity }
}

fn status<T: std::fmt::Debug>(result: Result<T, ClientError>) -> u16 {
    match result {
        Err(e) => e.problem().map_or(0, |p| p.status()),
        Ok(ok) => panic!("expected a problem, got {ok:?}"),
    }
}

#[tokio::test]
async fn lines_are_set_changed_removed_and_cleared() {
    let h = Harness::start().await;
    let alice = h.user(1);
    assert!(h.client.get_cart(&alice, 1).await.unwrap().lines.is_empty());
    for _ in 0..2 {
        h.client
            .set_cart_line(&alice, 1, 7, &quantity(2))
            .await
            .unwrap();
    }
    h.client
        .set_cart_line(&alice, 1, 9, &quantity(1))
        .await
        .unwrap();
    let cart = h
        .client
        .set_cart_line(&alice, 1, 7, &quantity(5))
        .await
        .unwrap();
    let lines: Vec<(i64, i32)> = cart
        .lines
        .iter()
        .map(|l| (l.product_id, l.quantity))
        .collect();
    assert_eq!(
        lines,
        [(7, 5), (9, 1)],
        "first added first, quantity replaced"
    );
    let cart = h.client.remove_cart_line(&alice, 1, 7).await.unwrap();
    assert_eq!(cart.lines.len(), 1);
    h.client.remove_cart_line(&alice, 1, 7).await.unwrap();
    assert!(
        h.client
            .clear_cart(&alice, 1)
            .await
            .unwrap()
            .lines
            .is_empty()
    );
    assert_eq!(h.count("cart_lines").await, 0);
    h.stop().await;
}

#[tokio::test]
async fn a_cart_is_its_users_own_and_an_admins() {
    let h = Harness::start().await;
    h.client
        .set_cart_line(&h.user(1), 1, 7, &quantity(1))
        .await
        .unwrap();
    let bob = h.user(2);
    assert_eq!(status(h.client.get_cart(&bob, 1).await), 403);
    assert_eq!(
        status(h.client.set_cart_line(&bob, 1, 7, &quantity(9)).await),
        403
    );
    assert_eq!(status(h.client.clear_cart(&bob, 1).await), 403);
    let seen = h.client.get_cart(&h.admin, 1).await.unwrap();
    assert_eq!(seen.lines[0].quantity, 1, "untouched by bob");
    h.stop().await;
}

#[tokio::test]
async fn a_full_cart_refuses_a_new_line_but_not_a_new_quantity() {
    let h = Harness::start().await;
    let alice = h.user(1);
    for product in 1..=shopmesh_orders::carts::MAX_CART_LINES {
        sqlx::query("INSERT INTO cart_lines (user_id, product_id, quantity, added_at) VALUES (1, ?, 1, NOW(6))")
            .bind(product)
            .execute(h.store.pool())
            .await
            .unwrap();
    }
    assert_eq!(
        status(h.client.set_cart_line(&alice, 1, 1000, &quantity(1)).await),
        409
    );
    let cart = h
        .client
        .set_cart_line(&alice, 1, 1, &quantity(3))
        .await
        .unwrap();
    assert_eq!(
        cart.lines.len() as i64,
        shopmesh_orders::carts::MAX_CART_LINES
    );
    assert_eq!(
        status(h.client.set_cart_line(&alice, 1, 2, &quantity(0)).await),
        400,
        "the contract bounds a quantity"
    );
    h.stop().await;
}

#[tokio::test]
async fn shoppers_filling_empty_carts_at_once_are_all_served() {
    // Each empty cart's first line takes locks on the gap beside its neighbours' rows, so
    // neighbours adding at once deadlock in InnoDB; the loser is tried again, never a 503.
    let h = Harness::start().await;
    let shoppers: Vec<i64> = (100..132).collect();
    for round in 0..10 {
        let adds = shoppers.iter().map(|&user| {
            let (client, token) = (h.client.clone(), h.user(user));
            async move {
                client.set_cart_line(&token, user, 7, &quantity(1)).await?;
                client.clear_cart(&token, user).await
            }
        });
        for (user, result) in shoppers.iter().zip(futures::future::join_all(adds).await) {
            assert!(result.is_ok(), "round {round}, user {user}: {result:?}");
        }
    }
    h.stop().await;
}
