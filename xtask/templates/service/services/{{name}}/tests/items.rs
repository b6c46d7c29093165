//! The {{name}} contract's items, end to end over a real database.

mod helpers;

use helpers::Harness;
use shopmesh_openapi::{{name}}::NewItem;

#[tokio::test]
async fn a_stored_item_reads_back() {
    let h = Harness::start().await;
    let new = NewItem {
        name: "first item".to_owned(),
    };
    let created = h.client.create_item(&h.shopper, &new).await.unwrap();
    let read = h.client.get_item(&h.shopper, created.id).await.unwrap();
    assert_eq!(read.name, "first item");
    h.stop().await;
}

#[tokio::test]
async fn an_unknown_item_is_a_404_problem() {
    let h = Harness::start().await;
    let err = h.client.get_item(&h.shopper, 999_999).await.unwrap_err();
    let problem = err.problem().expect("a documented problem");
    assert_eq!(problem.status(), 404, "{problem:?}");
    h.stop().await;
}

#[tokio::test]
async fn a_request_without_a_token_is_a_401_problem() {
    let h = Harness::start().await;
    let response = reqwest::get(h.service.url("/items/1")).await.unwrap();
    assert_eq!(response.status(), 401);
    h.stop().await;
}
