//! The gateway (:3000): GraphQL at `/graphql` (GraphiQL on GET) and REST at `/api` (spec at
//! `/api/openapi.json`, Swagger UI at `/docs`), an index page at `/` over the users, orders and notifications
//! services, with a Redis response cache and a per-client rate limit shared through Redis.
//!
//! - [`graphql`] implements the generated `GatewayResolvers` trait; [`api`] the `GatewayApi` trait;
//! - [`downstream`] calls the services through their generated clients and caches responses;
//! - [`ratelimit`] limits clients; [`convert`] maps between the contracts of each hop;
//! - [`limits`] bounds each operation; [`documents`] keeps parsed query documents.

pub mod api;
pub mod breaker;
pub mod client;
pub mod config;
pub mod convert;
pub mod documents;
pub mod downstream;
pub mod error;
pub mod graphql;
mod graphql_http;
pub mod limits;
pub mod live;
pub mod pages;
pub mod persisted;
pub mod ratelimit;
mod response_order;
pub mod subscriptions;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_graphql::dataloader::DataLoader;
use poem::web::Data;
use poem::{Endpoint, EndpointExt, Response, get, handler};
use shopmesh_common::cache::RedisCache;
use shopmesh_common::config::{ConfigError, Env};
use shopmesh_common::health::{self, ReadinessCheck};
use shopmesh_common::http::{self, HttpListener};
use shopmesh_common::metrics::{Collector, cache_metrics};
use shopmesh_common::service::{Addrs, Service};
use shopmesh_common::shutdown::Shutdown;
use shopmesh_identity::{AuthError, Principal, TokenVerifier};
use shopmesh_openapi::gateway::GatewayEndpoints;

use crate::config::CorsOrigins;
use crate::config::GatewayConfig;
use crate::downstream::{Backends, CALL_BUDGET};
use crate::graphql::{GatewayGraph, NotificationLoader, ProductLoader, UserLoader};
use crate::ratelimit::{ClientRateLimiter, RateLimit};

/// Everything one gateway process shares between requests.
#[derive(Clone)]
pub struct Gateway {
    /// Downstream clients and cache.
    pub backends: Arc<Backends>,
    /// The rate limiter.
    pub limiter: Arc<ClientRateLimiter>,
    /// The executable GraphQL schema.
    pub schema: shopmesh_graphql::Schema,
    /// Status changes for subscriptions.
    pub feed: live::OrderFeed,
    sockets: subscriptions::Sockets,
    documents: documents::ParsedDocuments,
    persisted: Arc<persisted::PersistedQueries>,
    verifier: TokenVerifier,
    config: Arc<GatewayConfig>,
}

impl Gateway {
    /// Builds clients, cache, limiter and schema from `config`; connects nothing yet.
    pub fn new(config: GatewayConfig) -> anyhow::Result<Self> {
        let cache = RedisCache::new(config.redis_url.expose(), config.redis_timeout)?;
        let backends = Arc::new(Backends::new(&config, cache.clone())?);
        let verifier = config.auth.verifier();
        let limiter = Arc::new(ClientRateLimiter::new(
            config.rate_limit.clone(),
            cache,
            config.cache_prefix.clone(),
            verifier.clone(),
        ));
        let documents = documents::ParsedDocuments::new();
        let feed = live::OrderFeed::new(config.live.event_buffer, backends.heard_versions());
        let sockets =
            subscriptions::Sockets::new(config.live.clone(), limiter.clone(), Shutdown::new());
        let graph = GatewayGraph::new(backends.clone(), feed.clone());
        let mut builder = shopmesh_graphql::schema_builder(Arc::new(graph))
            .limit_complexity(config.graphql.max_complexity)
            .extension(limits::OperationLimits {
                max_depth: config.graphql.max_depth,
                max_root_fields: config.graphql.max_root_fields,
                max_query_bytes: config.graphql.max_query_bytes,
                max_mutations: config.graphql.max_mutations,
            })
            // Inside the limits, so a cached document is checked like a parsed one.
            .extension(documents.clone());
        if !config.graphql.introspection {
            // Suggestions ("Did you mean …") would hand out the field names introspection hides.
            builder = builder.disable_introspection().disable_suggestions();
        }
        Ok(Self {
            backends,
            limiter,
            schema: builder.finish(),
            sockets,
            feed,
            documents,
            persisted: Arc::new(persisted::PersistedQueries::new(config.graphql.operations)),
            verifier,
            config: Arc::new(config),
        })
    }

    /// GraphQL requests whose parsed document was reused.
    pub fn document_cache_hits(&self) -> u64 {
        self.documents.hits()
    }

    /// Memory the parsed documents hold, as estimated ([`documents::weight`]).
    pub fn document_cache_bytes(&self) -> u64 {
        self.documents.weighted_size()
    }

    /// Forgets idle rate-limit clients every minute until `shutdown`.
    async fn housekeeping(limiter: Arc<ClientRateLimiter>, shutdown: Shutdown) {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = tick.tick() => limiter.forget_idle(),
                _ = shutdown.wait() => return,
            }
        }
    }

    /// The HTTP application. GraphQL requests and `/api` calls are rate limited; the pages
    /// (GraphiQL, `/docs`, `/`, the favicon), the spec, `/health` and `/metrics` are not.
    pub fn app(&self) -> impl Endpoint<Output = Response> + use<> {
        let rest = GatewayEndpoints::new(Arc::new(api::GatewayRest::new(self.backends.clone())))
            .into_service();
        let spec = GatewayEndpoints::contract_endpoint();
        let docs = GatewayEndpoints::swagger_ui();
        let limit = RateLimit(self.limiter.clone());
        // Pages and the spec are not API calls: loading them must not eat a client's quota.
        let routes = pages::routes(self.config.http.metrics_port)
            .at(
                "/graphql",
                get(GraphqlGet {
                    page: pages::graphiql().boxed(),
                    execute: graphql_execute.with(limit.clone()).boxed(),
                    live: subscriptions::upgrade.boxed(),
                    persisted: self.persisted.clone(),
                })
                .post(graphql_execute.with(limit.clone())),
            )
            .at("/api/openapi.json", spec)
            .nest_no_strip("/api", rest.with(limit));
        // The gateway serves without any one downstream service (its answers say which part
        // is unavailable, cached reads go on), so each only degrades it.
        let http_check = |name, url: fn(&GatewayConfig) -> &String| {
            let (backends, config) = (self.backends.clone(), self.config.clone());
            ReadinessCheck::degrading(name, move || {
                let (b, c) = (backends.clone(), config.clone());
                async move { b.ping_http(url(&c)).await }
            })
        };
        let backends = self.backends.clone();
        let checks = vec![
            http_check("orders", |c| &c.order_service_url),
            http_check("users", |c| &c.user_service_url),
            http_check("catalog", |c| &c.catalog_service_url),
            ReadinessCheck::degrading("notifications", move || {
                let b = backends.clone();
                async move { b.ping_notifications().await }
            }),
        ];
        let (backends, limiter) = (self.backends.clone(), self.limiter.clone());
        let documents = self.documents.clone();
        let collectors: Vec<Collector> = vec![Arc::new(move || {
            metrics::counter!("gateway_graphql_document_cache_hits_total")
                .absolute(documents.hits());
            cache_metrics("gateway", backends.cache());
            let calls = &backends.calls;
            for (service, n) in [
                ("orders", &calls.orders),
                ("users", &calls.users),
                ("notifications", &calls.notifications),
                ("catalog", &calls.catalog),
            ] {
                metrics::counter!("gateway_downstream_calls_total", "downstream" => service)
                    .absolute(n.load(Ordering::Relaxed));
            }
            metrics::counter!("gateway_order_memory_hits_total").absolute(backends.memory_hits());
            metrics::counter!("gateway_user_memory_hits_total")
                .absolute(backends.user_memory_hits());
            metrics::counter!("gateway_product_memory_hits_total")
                .absolute(backends.product_memory_hits());
            metrics::counter!("gateway_rate_limited_total")
                .absolute(limiter.stats.rejected.load(Ordering::Relaxed));
            metrics::counter!("gateway_rate_limit_shared_unavailable_total")
                .absolute(limiter.stats.shared_unavailable.load(Ordering::Relaxed));
        })];
        http::standard(
            "gateway",
            shopmesh_openapi::gateway::BODY_LIMITS,
            health::operations(routes, "gateway", checks, collectors)
                .nest("/docs", docs)
                .data(self.schema.clone())
                .data(self.backends.clone())
                .data(self.limiter.clone())
                .data(self.verifier.clone())
                .data(self.sockets.clone())
                .data(self.persisted.clone())
                .data(self.config.clone())
                // One dynamic call instead of a type nested too deep for the compiler's
                // default recursion limit.
                .boxed(),
        )
        .with(http::AllowHeader::new(
            shopmesh_openapi::gateway::ROUTES,
            &[
                ("/api/openapi.json", &["GET"]),
                ("/graphql", &["GET", "POST"]),
            ],
        ))
        .with(client::ClientScope(self.limiter.clone()))
        .with(cors(&self.config.cors))
        .catch_error(|refused: poem::error::CorsError| async move {
            let problem = shopmesh_openapi::runtime::Problem::new(403, refused.to_string());
            shopmesh_common::problem::response(&problem)
        })
        .before(|mut req: poem::Request| async move {
            // Browsers send Origin on same-origin POSTs too (GraphiQL, Swagger UI); a page
            // calling its own origin is no CORS matter, whatever the allow-list says.
            if same_origin(&req) {
                req.headers_mut().remove(poem::http::header::ORIGIN);
            }
            Ok(req)
        })
    }
}

/// CORS for browsers on other origins: preflights are answered before the rate limit, and
/// pages may read the rate-limit fields.
fn cors(origins: &CorsOrigins) -> poem::middleware::Cors {
    let allowed = origins.clone();
    poem::middleware::Cors::new()
        .allow_origins_fn(move |origin| allowed.allows(origin))
        .allow_credentials(*origins != CorsOrigins::Any)
        .allow_methods(["GET", "POST", "PUT", "OPTIONS"])
        .allow_headers(["content-type", "authorization", "traceparent", "tracestate"])
        .expose_headers(["retry-after", "ratelimit", "ratelimit-policy"])
        .max_age(600)
}

/// `GET /graphql`: a WebSocket for subscriptions when it asks for an upgrade; GraphiQL for a
/// browser (it asks for `text/html`) or for a request with no `query`; otherwise the query in
/// the URL is executed (GraphQL over HTTP, as urql and CDNs send it), except a mutation, which
/// is 405: a GET must change nothing.
struct GraphqlGet {
    page: poem::endpoint::BoxEndpoint<'static>,
    execute: poem::endpoint::BoxEndpoint<'static>,
    live: poem::endpoint::BoxEndpoint<'static>,
    persisted: Arc<persisted::PersistedQueries>,
}

impl Endpoint for GraphqlGet {
    type Output = Response;

    async fn call(&self, req: poem::Request) -> poem::Result<Response> {
        let upgrade = req
            .headers()
            .get(poem::http::header::UPGRADE)
            .and_then(|v| v.to_str().ok());
        if upgrade.is_some_and(|u| u.eq_ignore_ascii_case("websocket")) {
            return self.live.call(req).await;
        }
        let accept = req
            .headers()
            .get(poem::http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let query = req.uri().query().unwrap_or_default();
        // A persisted query may come as its hash alone, in `extensions`.
        let asks = url::form_urlencoded::parse(query.as_bytes())
            .any(|(name, _)| name == "query" || name == "extensions");
        if accept.contains("text/html") || !asks {
            return self.page.call(req).await;
        }
        let media = graphql_http::ResponseMedia::from_accept(Some(accept));
        let mut request = match graphql_http::from_url(query) {
            Ok(request) => request,
            Err(malformed) => return Ok(malformed.into_response(media)),
        };
        // Not found here is answered by the executing handler, which resolves it again.
        if self.persisted.resolve(&mut request).is_ok() && selects_a_mutation(&request) {
            let body = serde_json::json!({"errors": [{
                "message": "a mutation changes data and is sent with POST, never GET",
                "extensions": {"code": "METHOD_NOT_ALLOWED"},
            }]});
            return Ok(Response::builder()
                .status(poem::http::StatusCode::METHOD_NOT_ALLOWED)
                .header(poem::http::header::ALLOW, "GET, POST")
                .content_type(media.content_type())
                .body(body.to_string()));
        }
        let public = req
            .headers()
            .get(poem::http::header::AUTHORIZATION)
            .is_none();
        let known = req
            .headers()
            .get(poem::http::header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let answer = self.execute.call(req).await?;
        Ok(graphql_http::cache_get(answer, public, known.as_deref()).await)
    }
}

/// Whether `request` would run a mutation: the operation it names, or its only one. A document
/// that does not parse (or nests too deep to try) is left to the normal path, which refuses it.
fn selects_a_mutation(request: &async_graphql::Request) -> bool {
    use async_graphql::parser::types::{DocumentOperations, OperationType};
    let nesting = shopmesh_common::nesting::MAX_GRAPHQL_NESTING;
    if shopmesh_common::nesting::check_graphql(&request.query, nesting).is_err() {
        return false;
    }
    let Ok(document) = async_graphql::parser::parse_query(&request.query) else {
        return false;
    };
    let selected = match (&document.operations, &request.operation_name) {
        (DocumentOperations::Single(op), _) => Some(op),
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name.as_str()),
        (DocumentOperations::Multiple(_), None) => None,
    };
    selected.is_some_and(|op| op.node.ty == OperationType::Mutation)
}

/// Whether `req`'s `Origin` is the origin it was sent to (`http(s)://` its `Host`).
fn same_origin(req: &poem::Request) -> bool {
    let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    let (Some(origin), Some(host)) = (
        header(poem::http::header::ORIGIN),
        header(poem::http::header::HOST).or_else(|| req.uri().authority().map(|a| a.as_str())),
    ) else {
        return false;
    };
    origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|authority| authority.eq_ignore_ascii_case(host))
}

/// Order ids per `GetNotificationsForOrders` call (the contract's limit).
const MAX_NOTIFICATION_BATCH: usize = 100;

/// The caller of a GraphQL request: `None` without an `Authorization` header (public fields
/// still answer), the reason when the header holds no valid bearer token. The rate limit
/// verified the token already when it is valid.
async fn graphql_caller(
    http: &poem::Request,
    verifier: &TokenVerifier,
) -> Result<Option<Principal>, AuthError> {
    let Some(header) = http.headers().get(poem::http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    if let Some(verified) = http.extensions().get::<Principal>() {
        return Ok(Some(verified.clone()));
    }
    let token = header
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .ok_or(AuthError::Malformed)?;
    verifier.verify(token.trim()).await.map(Some)
}

/// A request whose token is refused gets no data: 401 (503 when the keys are out of reach)
/// with one error carrying `extensions.code`.
fn refused(error: AuthError) -> Response {
    let (status, code) = match error.status() {
        503 => (
            poem::http::StatusCode::SERVICE_UNAVAILABLE,
            "DOWNSTREAM_UNAVAILABLE",
        ),
        _ => (poem::http::StatusCode::UNAUTHORIZED, "UNAUTHENTICATED"),
    };
    let body = serde_json::json!({
        "errors": [{"message": error.to_string(), "extensions": {"code": code}}]
    });
    Response::builder()
        .status(status)
        .header("www-authenticate", "Bearer")
        .content_type("application/json")
        .body(body.to_string())
}

#[handler]
async fn graphql_execute(
    http: &poem::Request,
    schema: Data<&shopmesh_graphql::Schema>,
    backends: Data<&Arc<Backends>>,
    limiter: Data<&Arc<ClientRateLimiter>>,
    verifier: Data<&TokenVerifier>,
    config: Data<&Arc<GatewayConfig>>,
    received: graphql_http::Received,
) -> Response {
    let media = received.media;
    let mut request = match received.request {
        Ok(request) => request,
        Err(malformed) => return malformed.into_response(media),
    };
    let persisted = http.data::<Arc<persisted::PersistedQueries>>();
    if let Some(Err(refused)) = persisted.map(|p| p.resolve(&mut request)) {
        return graphql_http::respond(refused.response(), media);
    }
    let caller = match graphql_caller(http, &verifier).await {
        Ok(caller) => caller,
        Err(error) => return refused(error),
    };
    let budget = Arc::new(AtomicU32::new(config.graphql.max_downstream_calls));
    // Batches run in tasks of their own; they stay in the request's trace and budget.
    let spawn = |budget: Arc<AtomicU32>| {
        move |batch| {
            let batch = CALL_BUDGET.scope(budget.clone(), batch);
            tokio::spawn(tracing::Instrument::in_current_span(batch))
        }
    };
    let loader = DataLoader::new(
        UserLoader::new(backends.0.clone(), caller.clone()),
        spawn(budget.clone()),
    );
    let notifications = DataLoader::new(
        NotificationLoader::new(backends.0.clone(), caller.clone()),
        spawn(budget.clone()),
    )
    .max_batch_size(MAX_NOTIFICATION_BATCH);
    let products = DataLoader::new(
        ProductLoader::new(backends.0.clone()),
        spawn(budget.clone()),
    );
    let mut request = request.data(loader).data(notifications).data(products);
    if let Some(caller) = caller {
        request = request.data(caller);
    }
    let left = Arc::new(std::sync::Mutex::new(None));
    let key = http
        .extensions()
        .get::<ratelimit::RateKey>()
        .copied()
        .or_else(|| limiter.client_of(http).map(ratelimit::RateKey::Address));
    if let Some(client) = key {
        request = request.data(limits::RateCharge {
            limiter: limiter.0.clone(),
            client,
            left: left.clone(),
        });
    }
    let mut response = CALL_BUDGET.scope(budget, schema.execute(request)).await;
    limits::code_request_errors(&mut response);
    // The operation's own charge supersedes what the middleware counted for the request.
    let charged = left.lock().ok().and_then(|slot| *slot);
    if let Some(value) = charged.and_then(|l| l.field().parse().ok()) {
        response.http_headers.insert("ratelimit", value);
    }
    graphql_http::respond(response, media)
}

/// The gateway, built from its configuration: listener bound, clients, cache, limiter and
/// schema created (nothing connected yet). [`Service::run_until`] serves.
pub struct Application {
    gateway: Gateway,
    listener: HttpListener,
}

impl Application {
    /// The shared state (cache, limiter, call counters).
    pub fn gateway(&self) -> &Gateway {
        &self.gateway
    }
}

impl Service for Application {
    type Config = GatewayConfig;
    const NAME: &'static str = "gateway";
    const HEALTH_PORT: (&'static str, u16) = ("PORT", 3000);

    fn config(env: &impl Env) -> Result<GatewayConfig, ConfigError> {
        GatewayConfig::from_env(env)
    }

    async fn build(config: GatewayConfig) -> anyhow::Result<Self> {
        let listener = HttpListener::bind(config.port, config.http).await?;
        Ok(Self {
            gateway: Gateway::new(config)?,
            listener,
        })
    }

    fn addrs(&self) -> Addrs {
        self.listener.addrs()
    }

    async fn run_until(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let housekeeping = tokio::spawn(Gateway::housekeeping(
            self.gateway.limiter.clone(),
            shutdown.clone(),
        ));
        let feed = tokio::spawn(
            self.gateway
                .feed
                .clone()
                .run(self.gateway.config.live.clone(), shutdown.clone()),
        );
        // Sockets outlive the requests that opened them: they close (1001) when shutdown starts.
        let sockets = self.gateway.sockets.clone();
        let closing = shutdown.clone();
        tokio::spawn(async move {
            closing.wait().await;
            sockets.close_all();
        });
        let served = self.listener.serve(self.gateway.app(), &shutdown).await;
        shutdown.trigger();
        let _ = housekeeping.await;
        let _ = feed.await;
        Ok(served?)
    }
}
