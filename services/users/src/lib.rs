//! The users service: REST on :3001 over MySQL (`users_db`), with a Redis cache-aside layer
//! (key `user:{id}`, TTL 600 s) that every write refreshes.
//!
//! - [`api`] implements the generated `UsersApi` trait;
//! - [`store`] reads through the cache and writes to MySQL;
//! - [`domain`] holds the validation rules.

pub mod api;
pub mod config;
pub mod domain;
pub mod error;
pub mod store;

use std::sync::Arc;

use poem::{Endpoint, EndpointExt, Response, Route};
use shopmesh_common::cache::RedisCache;
use shopmesh_common::health::{self, ReadinessCheck};
use shopmesh_common::metrics::{Collector, cache_metrics};
use shopmesh_openapi::users::UsersEndpoints;

use crate::config::UsersConfig;
use crate::store::UserStore;

/// The HTTP application: contract routes, `/openapi.json`, `/docs`, `/health/*`, `/metrics`. Readiness
/// needs MySQL only: without Redis the service still answers, uncached.
pub fn app(store: UserStore) -> impl Endpoint<Output = Response> {
    let service =
        UsersEndpoints::new(Arc::new(api::UsersService::new(store.clone()))).into_service();
    let spec = service.spec_endpoint();
    let docs = service.swagger_ui();
    let cache = store.cache().clone();
    let checks = vec![ReadinessCheck::new("mysql", move || {
        let s = store.clone();
        async move { s.ping().await.map_err(|e| e.to_string()) }
    })];
    let collectors: Vec<Collector> = vec![Arc::new(move || cache_metrics("users", &cache))];
    shopmesh_common::http::standard(
        "users",
        Route::new()
            .nest("/", service)
            .at("/openapi.json", spec)
            .nest("/docs", docs)
            .nest("/health", health::routes(checks))
            .at("/metrics", shopmesh_common::metrics::endpoint(collectors)),
    )
    .with(shopmesh_common::http::AllowHeader::new(
        shopmesh_openapi::users::ROUTES,
        &[("/openapi.json", &["GET"])],
    ))
}

/// Builds the store (lazy MySQL pool, lazy Redis).
pub fn build(config: &UsersConfig) -> anyhow::Result<UserStore> {
    let cache = RedisCache::new(&config.redis_url, config.redis_timeout)?;
    let store = UserStore::connect_lazy(
        &config.database_url,
        config.db_pool_size,
        config.db_acquire_timeout,
        cache,
        config.cache_ttl,
    )?;
    Ok(store.with_key_prefix(config.cache_prefix.clone()))
}
