//! The catalog service: REST on :3004 over MySQL. Products, prices, stock with an append-only
//! ledger, and reservations per order that never oversell.
//!
//! - [`api`] implements the generated `CatalogApi` trait;
//! - [`store`] holds products, the ledger and reservations in MySQL;
//! - [`domain`] holds the rules (currencies, cursors) as plain functions;
//! - [`error`] is its one error type, mapped once to a problem.

pub mod api;
pub mod config;
pub mod domain;
pub mod error;
pub mod store;

use std::sync::Arc;

use poem::{Endpoint, EndpointExt, Response, Route};
use shopmesh_common::cache::RedisCache;
use shopmesh_common::config::{ConfigError, Env, SecretUrl};
use shopmesh_common::db;
use shopmesh_common::health::{self, ReadinessCheck};
use shopmesh_common::http::{self, HttpListener};
use shopmesh_common::service::{Addrs, Service};
use shopmesh_common::shutdown::Shutdown;
use shopmesh_common::startup::StartupGate;
use shopmesh_identity::TokenVerifier;
use shopmesh_openapi::catalog::CatalogEndpoints;

use crate::config::CatalogConfig;
use crate::store::{CatalogStore, MIGRATOR};

/// The HTTP application: contract routes at `/`, spec at `/openapi.json`, Swagger UI at
/// `/docs`, health at `/health/live` and `/health/ready`, Prometheus metrics at `/metrics`.
pub fn app(store: CatalogStore, verifier: TokenVerifier) -> impl Endpoint<Output = Response> {
    let service =
        CatalogEndpoints::new(Arc::new(api::CatalogService::new(store.clone()))).into_service();
    let ready_store = store.clone();
    let checks = vec![ReadinessCheck::new("mysql", move || {
        let s = ready_store.clone();
        async move { s.ping().await.map_err(|e| e.to_string()) }
    })];
    http::standard(
        "catalog",
        shopmesh_openapi::catalog::BODY_LIMITS,
        health::operations(
            Route::new()
                .nest("/", service)
                .at("/openapi.json", CatalogEndpoints::contract_endpoint())
                .nest("/docs", CatalogEndpoints::swagger_ui()),
            "catalog",
            checks,
            Vec::new(),
        ),
    )
    .with(http::AllowHeader::new(
        shopmesh_openapi::catalog::ROUTES,
        &[("/openapi.json", &["GET"])],
    ))
    .data(verifier)
}

/// The catalog service, built from its configuration: listener bound, store (lazily
/// connected). [`Service::run_until`] migrates and serves.
pub struct Application {
    store: CatalogStore,
    sweep_interval: std::time::Duration,
    demo_seed: bool,
    verifier: TokenVerifier,
    database_url: SecretUrl,
    listener: HttpListener,
}

impl Application {
    /// The store behind the API (tests look at rows through it).
    pub fn store(&self) -> &CatalogStore {
        &self.store
    }
}

impl Service for Application {
    type Config = CatalogConfig;
    const NAME: &'static str = "catalog";
    const HEALTH_PORT: (&'static str, u16) = ("PORT", 3004);

    fn config(env: &impl Env) -> Result<CatalogConfig, ConfigError> {
        CatalogConfig::from_env(env)
    }

    async fn build(config: CatalogConfig) -> anyhow::Result<Self> {
        let redis = RedisCache::new(config.redis_url.expose(), config.redis_timeout)?;
        let store = CatalogStore::connect_lazy(
            config.database_url.expose(),
            config.db_pool_size,
            config.db_acquire_timeout,
            config.reservation_ttl,
        )?
        .announcing(redis, config.product_changes);
        let listener = HttpListener::bind(config.port, config.http).await?;
        Ok(Self {
            store,
            sweep_interval: config.sweep_interval,
            demo_seed: config.demo_seed,
            verifier: config.auth.verifier(),
            database_url: config.database_url,
            listener,
        })
    }

    fn addrs(&self) -> Addrs {
        self.listener.addrs()
    }

    async fn run_until(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let migrated =
            db::migrate_in_background(self.store.pool(), &self.database_url, &MIGRATOR, &shutdown);
        let sweeper = {
            let (store, every, migrated, shutdown) = (
                self.store.clone(),
                self.sweep_interval,
                migrated.clone(),
                shutdown.clone(),
            );
            let seed = self.demo_seed;
            tokio::spawn(async move {
                if !migrated.wait().await {
                    return;
                }
                if seed && let Err(e) = seed_demo_catalog(&store).await {
                    tracing::error!(error = %e, "the demo catalog was not added");
                }
                sweep_expired(store, every, shutdown).await;
            })
        };
        let app = app(self.store, self.verifier).with(StartupGate(migrated));
        let served = self.listener.serve(app, &shutdown).await;
        shutdown.trigger();
        let _ = sweeper.await;
        Ok(served?)
    }
}

/// Gives back the stock of reservations past their time, every `every`, until shutdown. Every
/// replica sweeps; each reservation is settled under its row lock, so they never collide.
async fn sweep_expired(store: CatalogStore, every: std::time::Duration, shutdown: Shutdown) {
    loop {
        match store.expire_due(100).await {
            Ok(n) if n > 0 => {
                metrics::counter!("catalog_reservations_expired_total").increment(n as u64);
                continue;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "expiring reservations failed; retrying"),
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shutdown.wait() => return,
        }
    }
}

/// The demo catalog (`demo/products.csv`) and its stock (`demo/stock.csv`).
async fn seed_demo_catalog(store: &CatalogStore) -> Result<(), error::CatalogError> {
    let (products, rejected) = domain::import_rows(include_str!("../demo/products.csv"))?;
    if let Some(bad) = rejected.first() {
        return Err(error::CatalogError::Internal(format!(
            "demo/products.csv row {}: {}",
            bad.row, bad.reason
        )));
    }
    store.import(&products, None).await?;
    let units: Vec<(String, i32)> = include_str!("../demo/stock.csv")
        .lines()
        .skip(1)
        .filter_map(|line| {
            let (sku, units) = line.split_once(',')?;
            Some((sku.to_owned(), units.trim().parse().ok()?))
        })
        .collect();
    store.stock_if_new(&units, "demo seed").await?;
    tracing::info!(products = products.len(), "demo catalog added");
    Ok(())
}
