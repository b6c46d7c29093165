//! The orders service: REST on :3002 over MySQL, publishing `order.created` through a
//! transactional outbox.
//!
//! - [`api`] implements the generated `OrdersApi` trait;
//! - [`store`] holds orders and the outbox in MySQL;
//! - [`events`] relays the outbox to RabbitMQ with publisher confirms;
//! - [`domain`] holds the rules (cursors, page sizes) as plain functions.

pub mod api;
pub mod config;
pub mod domain;
pub mod error;
pub mod events;
pub mod store;

use std::sync::Arc;

use poem::{Endpoint, EndpointExt, Response, Route};
use shopmesh_common::health::{self, ReadinessCheck};
use shopmesh_openapi::orders::OrdersEndpoints;

use crate::config::OrdersConfig;
use crate::events::OutboxRelay;
use crate::store::OrderStore;

/// The HTTP application: contract routes at `/`, spec at `/openapi.json`, Swagger UI at
/// `/docs`, health at `/health/live` and `/health/ready`, Prometheus metrics at `/metrics`.
pub fn app(store: OrderStore) -> impl Endpoint<Output = Response> {
    let service =
        OrdersEndpoints::new(Arc::new(api::OrdersService::new(store.clone()))).into_service();
    let spec = service.spec_endpoint();
    let docs = service.swagger_ui();
    let ready_store = store.clone();
    let checks = vec![ReadinessCheck::new("mysql", move || {
        let s = ready_store.clone();
        async move { s.ping().await.map_err(|e| e.to_string()) }
    })];
    shopmesh_common::http::standard(
        "orders",
        Route::new()
            .nest("/", service)
            .at("/openapi.json", spec)
            .nest("/docs", docs)
            .nest("/health", health::routes(checks))
            .at("/metrics", shopmesh_common::metrics::endpoint(Vec::new())),
    )
    .with(shopmesh_common::http::AllowHeader::new(
        shopmesh_openapi::orders::ROUTES,
        &[("/openapi.json", &["GET"])],
    ))
}

/// Connects the store (lazily), builds the relay; migrations are run by the caller.
pub fn build(config: &OrdersConfig) -> anyhow::Result<(OrderStore, OutboxRelay)> {
    let store = OrderStore::connect_lazy(
        &config.database_url,
        config.db_pool_size,
        config.db_acquire_timeout,
    )?;
    let relay = OutboxRelay::new(
        store.clone(),
        config.rabbitmq_url.clone(),
        config.topology.clone(),
        config.relay.clone(),
    );
    Ok((store, relay))
}
