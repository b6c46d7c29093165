//! The {{name}} service: REST on :{{port}} over MySQL.
//!
//! - [`api`] implements the generated `{{Name}}Api` trait;
//! - [`store`] holds the service's data in MySQL;
//! - [`error`] is its one error type, mapped once to a problem.

pub mod api;
pub mod config;
pub mod error;
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
use shopmesh_openapi::{{name}}::{{Name}}Endpoints;

use crate::config::{{Name}}Config;
use crate::store::{MIGRATOR, {{Name}}Store};

/// The HTTP application: contract routes at `/`, spec at `/openapi.json`, Swagger UI at
/// `/docs`, health at `/health/live` and `/health/ready`, Prometheus metrics at `/metrics`.
pub fn app(store: {{Name}}Store, verifier: TokenVerifier) -> impl Endpoint<Output = Response> {
    let service =
        {{Name}}Endpoints::new(Arc::new(api::{{Name}}Service::new(store.clone()))).into_service();
    let ready_store = store.clone();
    let checks = vec![ReadinessCheck::new("mysql", move || {
        let s = ready_store.clone();
        async move { s.ping().await.map_err(|e| e.to_string()) }
    })];
    http::standard(
        "{{name}}",
        shopmesh_openapi::{{name}}::BODY_LIMITS,
        health::operations(
            Route::new()
                .nest("/", service)
                .at("/openapi.json", {{Name}}Endpoints::contract_endpoint())
                .nest("/docs", {{Name}}Endpoints::swagger_ui()),
            "{{name}}",
            checks,
            Vec::new(),
        ),
    )
    .with(http::AllowHeader::new(
        shopmesh_openapi::{{name}}::ROUTES,
        &[("/openapi.json", &["GET"])],
    ))
    .data(verifier)
}

/// The {{name}} service, built from its configuration: listener bound, store (lazily
/// connected). [`Service::run_until`] migrates and serves.
pub struct Application {
    store: {{Name}}Store,
    verifier: TokenVerifier,
    database_url: SecretUrl,
    listener: HttpListener,
}

impl Application {
    /// The store behind the API (tests look at rows through it).
    pub fn store(&self) -> &{{Name}}Store {
        &self.store
    }
}

impl Service for Application {
    type Config = {{Name}}Config;
    const NAME: &'static str = "{{name}}";
    const HEALTH_PORT: (&'static str, u16) = ("PORT", {{port}});

    fn config(env: &impl Env) -> Result<{{Name}}Config, ConfigError> {
        {{Name}}Config::from_env(env)
    }

    async fn build(config: {{Name}}Config) -> anyhow::Result<Self> {
        let store = {{Name}}Store::connect_lazy(
            config.database_url.expose(),
            config.db_pool_size,
            config.db_acquire_timeout,
        )?;
        let listener = HttpListener::bind(config.port, config.http).await?;
        Ok(Self {
            store,
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
        let app = app(self.store, self.verifier).with(StartupGate(migrated));
        let served = self.listener.serve(app, &shutdown).await;
        shutdown.trigger();
        Ok(served?)
    }
}
