//! The payments service: REST on :3005 over MySQL.
//!
//! - [`api`] implements the generated `PaymentsApi` trait: each step of a payment;
//! - [`provider`] is the payment processor: a trait, and the built-in fake;
//! - [`store`] holds payments and their steps in MySQL;
//! - [`error`] is its one error type, mapped once to a problem.

pub mod api;
pub mod config;
pub mod error;
pub mod provider;
pub mod store;

use std::sync::Arc;

use poem::{Endpoint, EndpointExt, Response, Route};
use shopmesh_common::config::{ConfigError, Env, SecretUrl};
use shopmesh_common::db;
use shopmesh_common::health::{self, ReadinessCheck};
use shopmesh_common::http::{self, HttpListener};
use shopmesh_common::service::{Addrs, Service};
use shopmesh_common::shutdown::Shutdown;
use shopmesh_common::startup::StartupGate;
use shopmesh_identity::TokenVerifier;
use shopmesh_openapi::payments::PaymentsEndpoints;

use crate::config::PaymentsConfig;
use crate::provider::FakeProvider;
use crate::store::{MIGRATOR, PaymentStore};

/// The HTTP application: contract routes at `/`, spec at `/openapi.json`, Swagger UI at
/// `/docs`, health at `/health/live` and `/health/ready`, Prometheus metrics at `/metrics`.
pub fn app(
    store: PaymentStore,
    payments: api::PaymentsService,
    verifier: TokenVerifier,
) -> impl Endpoint<Output = Response> {
    let service = PaymentsEndpoints::new(Arc::new(payments)).into_service();
    let ready_store = store.clone();
    let checks = vec![ReadinessCheck::new("mysql", move || {
        let s = ready_store.clone();
        async move { s.ping().await.map_err(|e| e.to_string()) }
    })];
    http::standard(
        "payments",
        shopmesh_openapi::payments::BODY_LIMITS,
        health::operations(
            Route::new()
                .nest("/", service)
                .at("/openapi.json", PaymentsEndpoints::contract_endpoint())
                .nest("/docs", PaymentsEndpoints::swagger_ui()),
            "payments",
            checks,
            Vec::new(),
        ),
    )
    .with(http::AllowHeader::new(
        shopmesh_openapi::payments::ROUTES,
        &[("/openapi.json", &["GET"])],
    ))
    .data(verifier)
}

/// The payments service, built from its configuration: listener bound, store (lazily
/// connected). [`Service::run_until`] migrates and serves.
pub struct Application {
    store: PaymentStore,
    provider: Arc<FakeProvider>,
    provider_timeout: std::time::Duration,
    max_attempts: i32,
    verifier: TokenVerifier,
    database_url: SecretUrl,
    listener: HttpListener,
}

impl Application {
    /// The store behind the API (tests look at rows through it).
    pub fn store(&self) -> &PaymentStore {
        &self.store
    }

    /// The payment provider: the built-in fake (tests count its calls).
    pub fn provider(&self) -> &Arc<FakeProvider> {
        &self.provider
    }
}

impl Service for Application {
    type Config = PaymentsConfig;
    const NAME: &'static str = "payments";
    const HEALTH_PORT: (&'static str, u16) = ("PORT", 3005);

    fn config(env: &impl Env) -> Result<PaymentsConfig, ConfigError> {
        PaymentsConfig::from_env(env)
    }

    async fn build(config: PaymentsConfig) -> anyhow::Result<Self> {
        let store = PaymentStore::connect_lazy(
            config.database_url.expose(),
            config.db_pool_size,
            config.db_acquire_timeout,
        )?;
        let listener = HttpListener::bind(config.port, config.http).await?;
        Ok(Self {
            store,
            provider: Arc::new(FakeProvider::default()),
            provider_timeout: config.provider_timeout,
            max_attempts: config.max_attempts,
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
        let payments = api::PaymentsService::new(
            self.store.clone(),
            self.provider,
            self.provider_timeout,
            self.max_attempts,
        );
        let app = app(self.store, payments, self.verifier).with(StartupGate(migrated));
        let served = self.listener.serve(app, &shutdown).await;
        shutdown.trigger();
        Ok(served?)
    }
}
