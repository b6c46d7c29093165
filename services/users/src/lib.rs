//! The users service: REST on :3001 over MySQL (`users_db`), with a Redis cache-aside layer
//! (key `user:{id}`, TTL 600 s) that every write refreshes. It owns accounts and issues the
//! platform's access tokens.
//!
//! - [`api`] implements the generated `UsersApi` trait;
//! - [`accounts`] hashes passwords, logs in and rotates refresh tokens;
//! - [`throttle`] limits failed log-ins (per account, address and both) and sign-ups;
//! - [`service_clients`] knows which platform services may get a service token;
//! - [`store`] reads through the cache and writes to MySQL;
//! - [`domain`] holds the validation rules.

pub mod accounts;
pub mod api;
pub mod config;
pub mod domain;
pub mod error;
pub mod service_clients;
pub mod store;
pub mod throttle;

use std::sync::Arc;

use poem::{Endpoint, EndpointExt, Response, Route};
use shopmesh_common::cache::RedisCache;
use shopmesh_common::config::{ConfigError, Env, SecretUrl};
use shopmesh_common::db;
use shopmesh_common::health::{self, ReadinessCheck};
use shopmesh_common::http::{self, HttpListener};
use shopmesh_common::metrics::{Collector, cache_metrics};
use shopmesh_common::service::{Addrs, Service};
use shopmesh_common::shutdown::Shutdown;
use shopmesh_common::startup::{Startup, StartupGate};
use shopmesh_openapi::users::UsersEndpoints;

use shopmesh_identity::{TokenIssuer, TokenVerifier};

use crate::accounts::Accounts;
use crate::config::UsersConfig;
use crate::store::{MIGRATOR, UserStore};
use crate::throttle::{LoginThrottle, Throttled};

/// The HTTP application: contract routes, `/openapi.json`, `/docs`, `/health/*`, `/metrics`. Readiness
/// needs MySQL only: without Redis the service still answers, uncached (and log-ins are not
/// throttled).
pub fn app(
    store: UserStore,
    accounts: Accounts,
    verifier: TokenVerifier,
    throttle: Arc<LoginThrottle>,
) -> impl Endpoint<Output = Response> {
    let service = UsersEndpoints::new(Arc::new(api::UsersService::new(store.clone(), accounts)))
        .into_service();
    let spec = UsersEndpoints::contract_endpoint();
    let docs = UsersEndpoints::swagger_ui();
    let cache = store.cache().clone();
    let memory = store.clone();
    let checks = vec![ReadinessCheck::new("mysql", move || {
        let s = store.clone();
        async move { s.ping().await.map_err(|e| e.to_string()) }
    })];
    let collectors: Vec<Collector> = vec![Arc::new(move || {
        cache_metrics("users", &cache);
        metrics::counter!("users_memory_hits_total").absolute(memory.memory_hits());
    })];
    http::standard(
        "users",
        shopmesh_openapi::users::BODY_LIMITS,
        health::operations(
            Route::new()
                .nest(
                    "/",
                    service.with(Throttled {
                        log_in: "/auth/token",
                        sign_up: "/users",
                        throttle,
                    }),
                )
                .at("/openapi.json", spec)
                .nest("/docs", docs),
            "users",
            checks,
            collectors,
        ),
    )
    .with(http::AllowHeader::new(
        shopmesh_openapi::users::ROUTES,
        &[("/openapi.json", &["GET"])],
    ))
    .data(verifier)
}

/// The users service, built from its configuration: listener bound, store created (lazily
/// connected). [`Service::run_until`] serves at once and migrates in the background; until
/// that is done only liveness and metrics answer (everything else 503).
pub struct Application {
    store: UserStore,
    accounts: Accounts,
    verifier: TokenVerifier,
    throttle: Arc<LoginThrottle>,
    demo_seed: bool,
    database_url: SecretUrl,
    listener: HttpListener,
}

impl Application {
    /// The store behind the API (tests read through it).
    pub fn store(&self) -> &UserStore {
        &self.store
    }

    /// The token issuer (tests sign tokens of their own making with it).
    pub fn issuer(&self) -> &TokenIssuer {
        self.accounts.issuer()
    }
}

impl Service for Application {
    type Config = UsersConfig;
    const NAME: &'static str = "users";
    const HEALTH_PORT: (&'static str, u16) = ("PORT", 3001);

    fn config(env: &impl Env) -> Result<UsersConfig, ConfigError> {
        UsersConfig::from_env(env)
    }

    async fn build(config: UsersConfig) -> anyhow::Result<Self> {
        let cache = RedisCache::new(config.redis_url.expose(), config.redis_timeout)?;
        let store = UserStore::connect_lazy(
            config.database_url.expose(),
            config.db_pool_size,
            config.db_acquire_timeout,
            cache,
            config.cache_ttl,
        )?
        .with_key_prefix(config.cache_prefix.clone())
        .with_memory(&config.memory);
        let keys = Arc::new(config.accounts.keys.load()?);
        let verifier = config.auth.verifier_with_keys(keys.clone());
        let issuer = TokenIssuer::new(keys, config.accounts.policy.clone());
        let accounts = Accounts::new(store.clone(), issuer, &config.accounts);
        let throttle = LoginThrottle::new(store.clone(), &config.cache_prefix, &config.accounts);
        let listener = HttpListener::bind(config.port, config.http).await?;
        Ok(Self {
            store,
            accounts,
            verifier,
            throttle,
            demo_seed: config.accounts.demo_seed,
            database_url: config.database_url,
            listener,
        })
    }

    fn addrs(&self) -> Addrs {
        self.listener.addrs()
    }

    async fn run_until(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let (store, accounts, url) = (self.store, self.accounts, self.database_url);
        let seed = self.demo_seed.then(|| accounts.clone());
        let pool = store.pool().clone();
        let ready = Startup::spawn("database migrations", &shutdown, move || {
            let (pool, url, seed) = (pool.clone(), url.clone(), seed.clone());
            async move {
                db::create_and_migrate(&pool, url.expose(), &MIGRATOR)
                    .await
                    .map_err(|e| e.to_string())?;
                if let Some(accounts) = seed {
                    accounts.seed_demo().await.map_err(|e| e.to_string())?;
                }
                Ok::<_, String>(())
            }
        });
        let app = app(store, accounts, self.verifier, self.throttle).with(StartupGate(ready));
        self.listener.serve(app, &shutdown).await?;
        Ok(())
    }
}
