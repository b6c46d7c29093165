//! The orders service: REST on :3002 over MySQL, publishing `order.created` through a
//! transactional outbox.
//!
//! - [`api`] implements the generated `OrdersApi` trait;
//! - [`store`] holds orders and the outbox in MySQL;
//! - [`events`] relays the outbox to RabbitMQ with publisher confirms;
//! - [`checkout`] drives the checkout saga through the catalog and payments services;
//! - [`domain`] holds the rules (cursors, page sizes) as plain functions.

pub mod api;
pub mod carts;
pub mod checkout;
pub mod config;
pub mod domain;
pub mod error;
pub mod events;
pub mod store;
pub mod users;

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
use shopmesh_openapi::orders::OrdersEndpoints;

use shopmesh_identity::TokenVerifier;

use crate::checkout::{CheckoutSaga, Participants, ServiceCredential};
use crate::config::OrdersConfig;
use crate::events::{OutboxRelay, RelayStatus};
use crate::store::{MIGRATOR, OrderChanges, OrderStore};
use crate::users::UserDirectory;
use shopmesh_openapi::runtime::RequestHook;

/// Adds the current span's trace context to every call a generated client makes, so the
/// services this one calls continue the request's trace.
pub fn traced() -> RequestHook {
    RequestHook::new(|headers| {
        headers.extend(shopmesh_common::telemetry::trace_header_map(
            &tracing::Span::current(),
        ));
    })
}

/// The HTTP application: contract routes at `/`, spec at `/openapi.json`, Swagger UI at
/// `/docs`, health at `/health/live` and `/health/ready`, Prometheus metrics at `/metrics`.
pub fn app(
    store: OrderStore,
    users: UserDirectory,
    saga: Option<CheckoutSaga>,
    verifier: TokenVerifier,
) -> impl Endpoint<Output = Response> {
    let service = OrdersEndpoints::new(Arc::new(api::OrdersService::new(
        store.clone(),
        users,
        saga,
    )))
    .into_service();
    let spec = OrdersEndpoints::contract_endpoint();
    let docs = OrdersEndpoints::swagger_ui();
    let ready_store = store.clone();
    let checks = vec![ReadinessCheck::new("mysql", move || {
        let s = ready_store.clone();
        async move { s.ping().await.map_err(|e| e.to_string()) }
    })];
    http::standard(
        "orders",
        shopmesh_openapi::orders::BODY_LIMITS,
        health::operations(
            Route::new()
                .nest("/", service)
                .at("/openapi.json", spec)
                .nest("/docs", docs),
            "orders",
            checks,
            Vec::new(),
        ),
    )
    .with(http::AllowHeader::new(
        shopmesh_openapi::orders::ROUTES,
        &[("/openapi.json", &["GET"])],
    ))
    .data(verifier)
}

/// The orders service, built from its configuration: listener bound, store (lazily
/// connected) and outbox relay created. [`Service::run_until`] migrates, starts the relay and
/// serves.
pub struct Application {
    store: OrderStore,
    users: UserDirectory,
    saga: Option<CheckoutSaga>,
    verifier: TokenVerifier,
    relay: Option<OutboxRelay>,
    database_url: SecretUrl,
    listener: HttpListener,
}

impl Application {
    /// The store behind the API (tests count rows through it).
    pub fn store(&self) -> &OrderStore {
        &self.store
    }

    /// The checkout saga, when this deployment has a service credential.
    pub fn saga(&self) -> Option<&CheckoutSaga> {
        self.saga.as_ref()
    }

    /// The relay's counters and broker link, when this process relays.
    pub fn relay_status(&self) -> Option<Arc<RelayStatus>> {
        self.relay.as_ref().map(OutboxRelay::status)
    }
}

impl Service for Application {
    type Config = OrdersConfig;
    const NAME: &'static str = "orders";
    const HEALTH_PORT: (&'static str, u16) = ("PORT", 3002);

    fn config(env: &impl Env) -> Result<OrdersConfig, ConfigError> {
        OrdersConfig::from_env(env)
    }

    async fn build(config: OrdersConfig) -> anyhow::Result<Self> {
        let changes = &config.order_changes;
        let changes = OrderChanges::new(
            RedisCache::new(changes.redis_url.expose(), changes.redis_timeout)?,
            changes.channel.clone(),
            changes.cache_prefix.clone(),
            changes.ttl,
        );
        let store = OrderStore::connect_lazy(
            config.database_url.expose(),
            config.db_pool_size,
            config.db_acquire_timeout,
            changes,
        )?;
        let relay = config.relay_enabled.then(|| {
            OutboxRelay::new(
                store.clone(),
                config.rabbitmq_url.expose().to_owned(),
                config.topology,
                config.relay,
            )
        });
        let saga = config.saga.client_secret.clone().map(|secret| {
            let credential =
                ServiceCredential::new(&config.users_url, config.saga.client_id.clone(), secret);
            let participants = Participants::new(
                &config.saga.catalog_url,
                &config.saga.payments_url,
                credential,
            );
            CheckoutSaga::new(store.clone(), participants, config.saga.clone())
        });
        if saga.is_none() {
            tracing::warn!("SERVICE_CLIENT_SECRET is unset: checkout answers 503");
        }
        let listener = HttpListener::bind(config.port, config.http).await?;
        Ok(Self {
            store,
            saga,
            users: UserDirectory::new(&config.users_url),
            verifier: config.auth.verifier(),
            relay,
            database_url: config.database_url,
            listener,
        })
    }

    fn addrs(&self) -> Addrs {
        self.listener.addrs()
    }

    async fn run_until(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let store = self.store;
        let migrated =
            db::migrate_in_background(store.pool(), &self.database_url, &MIGRATOR, &shutdown);
        let relay = self.relay.map(|relay| {
            let (migrated, shutdown) = (migrated.clone(), shutdown.clone());
            tokio::spawn(async move {
                if migrated.wait().await {
                    relay.run(shutdown).await;
                }
            })
        });
        let runner = self.saga.clone().map(|saga| {
            let (migrated, shutdown) = (migrated.clone(), shutdown.clone());
            tokio::spawn(async move {
                if migrated.wait().await {
                    saga.run(shutdown).await;
                }
            })
        });
        let app = app(store, self.users, self.saga, self.verifier).with(StartupGate(migrated));
        let served = self.listener.serve(app, &shutdown).await;
        shutdown.trigger();
        for task in [relay, runner].into_iter().flatten() {
            let _ = task.await;
        }
        Ok(served?)
    }
}
