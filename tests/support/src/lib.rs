//! Support for integration tests that run against real MariaDB/MySQL, Redis, RabbitMQ and a
//! MongoDB wire-protocol server. Endpoints come from `TEST_*` variables (set by
//! `cargo xtask test`) with this machine's local defaults.
//!
//! Services are started only through the platform's [`Stack`]: [`test_stack`] gives a stack
//! with names and ports of its own, a test reads a service's configuration from
//! [`Stack::env_for`], changes what it needs, builds the service's `Application` and runs it
//! with [`Running::start`] (or starts every service as processes with [`Stack::spawn`]).

pub mod otlp;

pub use shopmesh_stack::{self as stack, Names, Ports, Service, Stack};

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use shopmesh_common::service::{Addrs, Service as Runnable};
use shopmesh_common::shutdown::Shutdown;
use shopmesh_events::OrderCreatedTopology;
use sqlx::Connection;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;

fn env_or(key: &str, default: &str) -> String {
    std::env::var(key)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// Server URL (no database) with rights to create databases.
pub fn mysql_admin_url() -> String {
    env_or("TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306")
}

/// RabbitMQ URL.
pub fn amqp_url() -> String {
    env_or("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
}

/// Redis URL.
pub fn redis_url() -> String {
    env_or("TEST_REDIS_URL", "redis://127.0.0.1:6379/")
}

/// MongoDB URL (`cargo xtask test` starts a SecantusDB stand-in and sets it).
pub fn mongo_url() -> String {
    env_or(
        "TEST_MONGO_URL",
        "mongodb://127.0.0.1:27017/?directConnection=true",
    )
}

/// A name no other test (or test run) uses: `prefix_<millis>_<random>`.
pub fn unique(prefix: &str) -> String {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let rand = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}_{millis}_{}", &rand[..8])
}

/// A database created for one test.
pub struct TestDatabase {
    /// Database name.
    pub name: String,
    /// URL of the database.
    pub url: String,
}

const DB_PREFIX: &str = "smt";

impl TestDatabase {
    /// Creates an empty database, first dropping leftovers of runs older than two hours.
    pub async fn create() -> Self {
        let admin = mysql_admin_url();
        let mut conn = sqlx::MySqlConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("MySQL/MariaDB not reachable at {admin}: {e}"));
        let old: Vec<(String,)> = sqlx::query_as(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'smt\\_%'",
        )
        .fetch_all(&mut conn)
        .await
        .expect("list databases");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        for (name,) in old {
            let ts: u128 = name
                .split('_')
                .nth(1)
                .and_then(|t| t.parse().ok())
                .unwrap_or(now);
            if now.saturating_sub(ts) > 2 * 3600 * 1000 {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS `{name}`"))
                    .execute(&mut conn)
                    .await;
            }
        }
        let name = unique(DB_PREFIX);
        sqlx::query(&format!("CREATE DATABASE `{name}`"))
            .execute(&mut conn)
            .await
            .expect("create database");
        let url = format!("{}/{name}", admin.trim_end_matches('/'));
        Self { name, url }
    }

    /// Drops the database.
    pub async fn drop_db(self) {
        if let Ok(mut conn) = sqlx::MySqlConnection::connect(&mysql_admin_url()).await {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS `{}`", self.name))
                .execute(&mut conn)
                .await;
        }
    }
}

/// What a [`TcpProxy`] does with connections.
const PROXY_UP: u8 = 0;
const PROXY_REFUSING: u8 = 1;
const PROXY_HANGING: u8 = 2;

/// A TCP proxy on loopback whose link can be cut, hung and restored, to simulate an outage of
/// whatever is behind it without touching the real server.
pub struct TcpProxy {
    /// Address clients connect to.
    pub addr: SocketAddr,
    state: Arc<std::sync::atomic::AtomicU8>,
    cut_tx: broadcast::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl TcpProxy {
    /// Starts a proxy to `target` (`host:port`).
    pub async fn start(target: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let state = Arc::new(std::sync::atomic::AtomicU8::new(PROXY_UP));
        let (cut_tx, _) = broadcast::channel(4);
        let target = target.to_owned();
        let (state2, cut2) = (state.clone(), cut_tx.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                let mut cut = cut2.subscribe();
                match state2.load(Ordering::SeqCst) {
                    PROXY_REFUSING => {
                        drop(client);
                        continue;
                    }
                    PROXY_HANGING => {
                        // Accept and say nothing, as a hung server does, until restored.
                        let state = state2.clone();
                        tokio::spawn(async move {
                            while state.load(Ordering::SeqCst) == PROXY_HANGING {
                                if cut.recv().await.is_err() {
                                    break;
                                }
                            }
                            drop(client);
                        });
                        continue;
                    }
                    _ => {}
                }
                let target = target.clone();
                let state = state2.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    let hang = {
                        let copy = tokio::io::copy_bidirectional(&mut client, &mut server);
                        tokio::pin!(copy);
                        loop {
                            tokio::select! {
                                _ = &mut copy => break false,
                                _ = cut.recv() => match state.load(Ordering::SeqCst) {
                                    PROXY_UP => continue,
                                    PROXY_HANGING => break true,
                                    _ => break false,
                                },
                            }
                        }
                    };
                    drop(server);
                    if hang {
                        while state.load(Ordering::SeqCst) == PROXY_HANGING {
                            if cut.recv().await.is_err() {
                                break;
                            }
                        }
                    }
                });
            }
        });
        Self {
            addr,
            state,
            cut_tx,
            task,
        }
    }

    /// Drops every open connection and refuses new ones until [`TcpProxy::restore`].
    pub fn cut(&self) {
        self.state.store(PROXY_REFUSING, Ordering::SeqCst);
        let _ = self.cut_tx.send(());
    }

    /// Simulates a hung server: open connections stop forwarding (they stay open, silent) and
    /// new ones are accepted but never answered, until [`TcpProxy::restore`].
    pub fn hang(&self) {
        self.state.store(PROXY_HANGING, Ordering::SeqCst);
        let _ = self.cut_tx.send(());
    }

    /// Accepts and forwards connections again; connections held by [`TcpProxy::hang`] close.
    pub fn restore(&self) {
        self.state.store(PROXY_UP, Ordering::SeqCst);
        let _ = self.cut_tx.send(());
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A server running in the test's runtime on an ephemeral port.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// Bound address.
    pub addr: SocketAddr,
    shutdown: shopmesh_common::shutdown::Shutdown,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl TestServer {
    /// Serves `app` on a free loopback port.
    pub async fn start<E: poem::Endpoint + 'static>(app: E) -> Self {
        let (listener, addr) = shopmesh_common::http::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let shutdown = shopmesh_common::shutdown::Shutdown::new();
        let s = shutdown.clone();
        let task = tokio::spawn(async move {
            let limits = shopmesh_common::http::HttpConfig::default();
            shopmesh_common::http::serve(listener, app, limits, async move { s.wait().await }).await
        });
        Self {
            base_url: format!("http://{addr}"),
            addr,
            shutdown,
            task,
        }
    }

    /// Stops the server gracefully.
    pub async fn stop(self) {
        self.shutdown.trigger();
        let _ = tokio::time::timeout(Duration::from_secs(15), self.task).await;
    }
}

/// Polls `check` every 50 ms until it returns `Some`, or panics after `within` naming `what`.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = tokio::time::Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if start.elapsed() > within {
            panic!("timed out after {within:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `(host:port of url, url with its host and port replaced by `new_authority`)`, to route a
/// client through a [`TcpProxy`].
pub fn reroute(url: &str, new_authority: &str) -> (String, String) {
    let target = stack::authority(url).expect("a URL with a host");
    let mut parsed = url::Url::parse(url).expect("a URL");
    let (host, port) = new_authority
        .rsplit_once(':')
        .expect("new authority is host:port");
    parsed.set_host(Some(host)).expect("a host");
    parsed
        .set_port(Some(port.parse().expect("a port")))
        .expect("a port");
    (target, parsed.into())
}

/// The shared environment of a test platform: where this machine's infrastructure is.
pub fn infra_env() -> std::collections::BTreeMap<String, String> {
    [
        (
            "DATABASE_URL",
            format!("{}/placeholder", mysql_admin_url().trim_end_matches('/')),
        ),
        ("REDIS_URL", redis_url()),
        ("RABBITMQ_URL", amqp_url()),
        ("MONGO_URL", mongo_url()),
        ("RUST_LOG", "warn".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// A stack of its own for one test: per-run names (databases `smt_…`, queues, cache prefix),
/// free ports, this machine's infrastructure, a signing key of its own (so the test can sign
/// tokens, see [`token_issuer`]) and the demo accounts seeded. Remove its names with
/// [`remove_names`].
pub fn test_stack() -> Stack {
    let prefix = unique(DB_PREFIX);
    Stack::new(
        infra_env(),
        Ports::free().expect("free ports"),
        Names::prefixed(&prefix),
    )
    .set_for(
        Service::Users,
        "AUTH_SIGNING_KEY",
        shopmesh_identity::SigningKey::generate().to_pem(),
    )
    .set_for(Service::Users, "DEMO_SEED", "true")
    .set_for(
        Service::Users,
        "SERVICE_CLIENTS",
        format!("orders={}", uuid::Uuid::new_v4().simple()),
    )
}

/// The secret `client` gets its service token with from the stack's users service
/// (its entry in `SERVICE_CLIENTS`).
pub fn service_client_secret(stack: &Stack, client: &str) -> String {
    stack
        .service_client_secret(client)
        .expect("a test stack configures its service clients")
}

/// A service token for the platform service `client`, signed with the stack's key as the
/// users service signs one for its client credentials.
pub fn service_token(stack: &Stack, client: &str) -> shopmesh_identity::AccessToken {
    shopmesh_identity::AccessToken::new(token_issuer(stack).issue_service(client).token)
}

/// A token for `user_id` with `role` that expires `lifetime` from now, signed with the stack's
/// key.
pub fn short_lived_token(
    stack: &Stack,
    user_id: i64,
    role: shopmesh_identity::Role,
    lifetime: Duration,
) -> shopmesh_identity::AccessToken {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let claims = shopmesh_identity::AccessClaims {
        sub: user_id.to_string(),
        role,
        iss: "shopmesh-users".into(),
        aud: "shopmesh".into(),
        iat: now,
        exp: now + lifetime.as_secs(),
    };
    shopmesh_identity::AccessToken::new(token_issuer(stack).sign(&claims))
}

/// Signs tokens as the stack's users service does, with its key (as an operator holding the
/// key could): for tests that need a token without logging in, or a token of their making.
pub fn token_issuer(stack: &Stack) -> shopmesh_identity::TokenIssuer {
    let env = stack
        .env_for(Service::Users)
        .expect("the users environment");
    let pem = env
        .get("AUTH_SIGNING_KEY")
        .expect("a test stack has a signing key");
    let key = shopmesh_identity::SigningKey::from_pem(pem).expect("a valid key");
    shopmesh_identity::TokenIssuer::new(
        std::sync::Arc::new(shopmesh_identity::KeyRing::new(key, Vec::new())),
        shopmesh_identity::TokenPolicy::platform_default(),
    )
}

/// Serves the stack's public key as a JWKS, for a service tested without the users service:
/// point its `AUTH_JWKS_URL` at `{base_url}/.well-known/jwks.json`.
pub async fn serve_jwks(stack: &Stack) -> TestServer {
    let jwks = serde_json::to_value(token_issuer(stack).keys().jwks()).expect("a JWKS");
    TestServer::start(poem::Route::new().at(
        "/.well-known/jwks.json",
        poem::endpoint::make_sync(move |_| poem::web::Json(jwks.clone())),
    ))
    .await
}

/// An HTTP client that sends `token` with every request.
pub fn authed_http(token: &shopmesh_identity::AccessToken) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        token.header_value().parse().expect("a header value"),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("a client")
}

/// Adds `authorization: Bearer <token>` metadata to every call of a generated gRPC client:
/// `NotificationServiceClient::with_interceptor(channel, GrpcBearer(token))`.
#[derive(Clone)]
pub struct GrpcBearer(pub shopmesh_identity::AccessToken);

impl tonic::service::Interceptor for GrpcBearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        let value = self
            .0
            .header_value()
            .parse()
            .map_err(|_| tonic::Status::invalid_argument("a token that is no header value"))?;
        request.metadata_mut().insert("authorization", value);
        Ok(request)
    }
}

/// A gRPC channel whose calls carry a bearer token.
pub type AuthedChannel =
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, GrpcBearer>;

/// Every kind of token a service must refuse with 401 (`UNAUTHENTICATED`), each named: none
/// at all, not a JWT, expired, tampered (claims changed after signing), `alg: none`, for
/// another audience, from another issuer, and signed by a key the platform does not know.
/// Each would otherwise make its holder user 1 with the admin role.
pub fn refused_tokens(
    stack: &Stack,
) -> Vec<(&'static str, Option<shopmesh_identity::AccessToken>)> {
    use base64::Engine;
    use shopmesh_identity::{AccessClaims, AccessToken, Role};
    let issuer = token_issuer(stack);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let claims = |f: &dyn Fn(&mut AccessClaims)| {
        let mut c = AccessClaims {
            sub: "1".into(),
            role: Role::Admin,
            iss: "shopmesh-users".into(),
            aud: "shopmesh".into(),
            iat: now,
            exp: now + 600,
        };
        f(&mut c);
        issuer.sign(&c)
    };
    let good = claims(&|_| {});
    let parts: Vec<&str> = good.split('.').collect();
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let foreign = shopmesh_identity::TokenIssuer::new(
        Arc::new(shopmesh_identity::KeyRing::new(
            shopmesh_identity::SigningKey::generate(),
            vec![],
        )),
        shopmesh_identity::TokenPolicy::platform_default(),
    )
    .issue(1, Role::Admin)
    .token;
    let tampered_claims = r#"{"sub":"2","role":"admin","iss":"shopmesh-users","aud":"shopmesh","iat":1,"exp":9999999999}"#;
    vec![
        ("missing", None),
        ("garbage", Some("garbage".to_owned())),
        (
            "expired",
            Some(claims(&|c| {
                c.iat = now - 3600;
                c.exp = now - 1800;
            })),
        ),
        (
            "tampered",
            Some(format!(
                "{}.{}.{}",
                parts[0],
                b64(tampered_claims),
                parts[2]
            )),
        ),
        (
            "alg none",
            Some(format!(
                "{}.{}.",
                b64(r#"{"alg":"none","typ":"JWT"}"#),
                parts[1]
            )),
        ),
        (
            "wrong audience",
            Some(claims(&|c| c.aud = "another-platform".into())),
        ),
        (
            "wrong issuer",
            Some(claims(&|c| c.iss = "https://evil.example".into())),
        ),
        ("unknown kid", Some(foreign)),
    ]
    .into_iter()
    .map(|(what, t)| (what, t.map(AccessToken::new)))
    .collect()
}

/// An access token for `user_id` with `role`, signed with the stack's key.
pub fn token(
    stack: &Stack,
    user_id: i64,
    role: shopmesh_identity::Role,
) -> shopmesh_identity::AccessToken {
    shopmesh_identity::AccessToken::new(token_issuer(stack).issue(user_id, role).token)
}

/// The `order.created` topology a stack's names describe.
pub fn topology(names: &Names) -> OrderCreatedTopology {
    OrderCreatedTopology {
        exchange: names.exchange.clone(),
        queue: names.queue.clone(),
        ..OrderCreatedTopology::default()
    }
}

/// Drops what a test stack created: its MySQL databases, its RabbitMQ queues (with
/// `max_retries` retry queues and the DLQ) and exchange, and its MongoDB database.
pub async fn remove_names(names: &Names, max_retries: u32) {
    if let Ok(mut conn) = sqlx::MySqlConnection::connect(&mysql_admin_url()).await {
        for db in names.databases() {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS `{db}`"))
                .execute(&mut conn)
                .await;
        }
    }
    remove_topology(&topology(names), max_retries).await;
    if let Ok(mut options) = mongodb::options::ClientOptions::parse(mongo_url()).await {
        // A test that never used MongoDB must not wait out the driver's 30 s default.
        options.server_selection_timeout = Some(Duration::from_secs(2));
        if let Ok(client) = mongodb::Client::with_options(options) {
            let _ = client.database(&names.mongo_db).drop().await;
        }
    }
}

/// Deletes a test's `order.created` exchange, queue, retry queues (`1..=max_retries`) and DLQ.
pub async fn remove_topology(topology: &OrderCreatedTopology, max_retries: u32) {
    let Ok(conn) =
        shopmesh_common::amqp::connect(&amqp_url(), "test-cleanup", Duration::from_secs(5)).await
    else {
        return;
    };
    if let Ok(ch) = conn.create_channel().await {
        let mut queues = vec![topology.queue.clone(), topology.dead_letter_queue()];
        queues.extend((1..=max_retries).map(|n| topology.retry_queue(n)));
        for q in queues {
            let _ = ch.queue_delete(&q, Default::default()).await;
        }
        let _ = ch
            .exchange_delete(&topology.exchange, Default::default())
            .await;
    }
    let _ = conn.close(200, "cleanup").await;
}

/// A service's `Application` running in the test's runtime.
pub struct Running {
    /// Where it listens.
    pub addrs: Addrs,
    /// `http://127.0.0.1:PORT` of its HTTP listener.
    pub base_url: String,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Runs `service` until [`Running::stop`]; returns once its start-up work (migrations,
    /// index creation) is done: `/health/ready` answers with a status other than `starting`.
    pub async fn start<S: Runnable>(service: S) -> Self {
        let running = Self::start_live(service).await;
        let ready = format!("{}/health/ready", running.base_url);
        let http = reqwest::Client::new();
        eventually(&ready, Duration::from_secs(60), || async {
            let body: Value = http.get(&ready).send().await.ok()?.json().await.ok()?;
            (body["status"] != shopmesh_common::startup::STARTING).then_some(())
        })
        .await;
        running
    }

    /// Runs `service` until [`Running::stop`]; returns once `/health/live` answers, which it
    /// does while start-up work still runs.
    pub async fn start_live<S: Runnable>(service: S) -> Self {
        let addrs = service.addrs();
        let base_url = format!("http://127.0.0.1:{}", addrs.http.port());
        let shutdown = Shutdown::new();
        let task = tokio::spawn(service.run_until(shutdown.clone()));
        let live = format!("{base_url}/health/live");
        let http = reqwest::Client::new();
        eventually(&live, Duration::from_secs(60), || async {
            let r = http.get(&live).send().await.ok()?;
            r.status().is_success().then_some(())
        })
        .await;
        Self {
            addrs,
            base_url,
            shutdown,
            task,
        }
    }

    /// `http://127.0.0.1:PORT` of its gRPC listener.
    pub fn grpc_url(&self) -> String {
        let addr = self.addrs.grpc.expect("a gRPC listener");
        format!("http://127.0.0.1:{}", addr.port())
    }

    /// Asks it to stop and waits (at most 15 s) for it to drain.
    pub async fn stop(self) {
        self.shutdown.trigger();
        let _ = tokio::time::timeout(Duration::from_secs(15), self.task).await;
    }
}

/// One service of a test's stack, running in the test's runtime: built from the stack's
/// configuration (the one override idiom is [`Stack::set_for`]), verifying tokens signed with
/// the stack's key (sign them with [`token`]). `part` is what the test kept of the built
/// service before it ran (its store, say).
pub struct Started<T> {
    /// The stack it was started from.
    pub stack: Stack,
    /// The running service.
    pub server: Running,
    /// What [`start`]'s `keep` took from the service.
    pub part: T,
    jwks: TestServer,
}

impl<T> Started<T> {
    /// `path` on the service's HTTP listener.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.base_url)
    }

    /// Stops the service and removes what its stack created (databases, queues, ...).
    pub async fn stop(self) {
        self.server.stop().await;
        self.jwks.stop().await;
        remove_names(&self.stack.names, 0).await;
    }
}

/// Starts `service` (implemented by `S`) from `stack`, ready, with the stack's signing keys
/// served where it fetches them; `keep` takes what the test needs of the built service.
pub async fn start<S: Runnable, T>(
    stack: Stack,
    service: Service,
    keep: impl FnOnce(&S) -> T,
) -> Started<T> {
    let jwks = serve_jwks(&stack).await;
    let stack = stack.set_for(
        service,
        "AUTH_JWKS_URL",
        format!("{}/.well-known/jwks.json", jwks.base_url),
    );
    let env = stack
        .env_for(service)
        .expect("the stack declares the service");
    let app = build_service::<S>(&env, |_| {}).await;
    let part = keep(&app);
    let server = Running::start(app).await;
    Started {
        stack,
        server,
        part,
        jwks,
    }
}

/// Builds `S` from `env` (a stack's [`Stack::env_for`]) after `adjust` changed its typed
/// configuration.
pub async fn build_service<S: Runnable>(
    env: &std::collections::BTreeMap<String, String>,
    adjust: impl FnOnce(&mut S::Config),
) -> S {
    let mut config = S::config(env).expect("the stack's environment is a valid configuration");
    adjust(&mut config);
    S::build(config).await.expect("the service builds")
}

/// An HTTP reverse proxy in front of a running service that counts the requests whose path
/// starts with a prefix, to see how many calls a caller really makes.
pub struct CountingProxy {
    /// Where callers send requests instead of the service.
    pub server: TestServer,
    /// Requests seen whose path starts with the prefix.
    pub count: Arc<std::sync::atomic::AtomicU64>,
}

impl CountingProxy {
    /// Proxies to `target` (a base URL), counting paths that start with `prefix`.
    pub async fn start(target: &str, prefix: &'static str) -> Self {
        let count = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (counter, target, http) = (count.clone(), target.to_owned(), reqwest::Client::new());
        let app = poem::endpoint::make(move |mut req: poem::Request| {
            let (counter, target, http) = (counter.clone(), target.clone(), http.clone());
            async move {
                let path = req
                    .uri()
                    .path_and_query()
                    .map(|p| p.to_string())
                    .unwrap_or_default();
                if path.starts_with(prefix) {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
                let body = req.take_body().into_bytes().await.unwrap_or_default();
                let mut forward = http.request(req.method().clone(), format!("{target}{path}"));
                for (k, v) in req.headers() {
                    if k != poem::http::header::HOST {
                        forward = forward.header(k, v);
                    }
                }
                let resp = forward
                    .body(body)
                    .send()
                    .await
                    .expect("the service behind answers");
                let mut out = poem::Response::builder().status(resp.status());
                for (k, v) in resp.headers() {
                    out = out.header(k, v);
                }
                out.body(resp.bytes().await.unwrap_or_default())
            }
        });
        Self {
            server: TestServer::start(app).await,
            count,
        }
    }
}

/// POSTs a GraphQL request to `{gateway}/graphql` with `headers`; returns the status and the
/// JSON body (null when the body is not JSON).
pub async fn graphql(
    http: &reqwest::Client,
    gateway: &str,
    headers: &[(&str, &str)],
    query: &str,
    variables: Value,
) -> (u16, Value) {
    let mut request = http
        .post(format!("{gateway}/graphql"))
        .json(&json!({ "query": query, "variables": variables }));
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let resp = request.send().await.expect("the gateway answers");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[cfg(test)]
mod tests {
    #[test]
    fn reroute_replaces_only_the_authority() {
        let (target, url) = super::reroute("amqp://guest:guest@127.0.0.1:5672/%2f", "127.0.0.1:9");
        assert_eq!(target, "127.0.0.1:5672");
        assert_eq!(url, "amqp://guest:guest@127.0.0.1:9/%2f");
        let (target, url) = super::reroute("mysql://root@localhost:3306/db", "h:1");
        assert_eq!(
            (target.as_str(), url.as_str()),
            ("localhost:3306", "mysql://root@h:1/db")
        );
    }
}
