//! The service serves exactly its committed contract, and Swagger UI.

mod helpers;

use helpers::Harness;

#[tokio::test]
async fn the_served_spec_and_the_routes_equal_the_committed_contract() {
    let h = Harness::start().await;
    let served = reqwest::get(h.service.url("/openapi.json"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let contract = shopmesh_openapi::payments::CONTRACT_YAML;
    shopmesh_codegen::contract::assert_served(contract, &served).unwrap_or_else(|e| panic!("{e}"));
    let implemented = shopmesh_openapi::payments::PaymentsEndpoints::implemented_spec();
    shopmesh_codegen::contract::assert_equivalent(contract, &implemented)
        .unwrap_or_else(|e| panic!("{e}"));
    let docs = reqwest::get(h.service.url("/docs")).await.unwrap();
    assert_eq!(docs.status().as_u16(), 200);
    h.stop().await;
}
