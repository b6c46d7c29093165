//! Prometheus metrics at `/metrics`: request counts and latency histograms per operation for
//! every HTTP service, plus whatever counters a service registers as collectors (cache hits,
//! rate-limit rejections, outbox lag, consumer outcomes).

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use poem::http::Method;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};
use poem_openapi::OperationId;

/// Latency buckets in seconds, from 0.5 ms to 5 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// The process-wide recorder (installed on first use; one per process, shared by every
/// service running in it).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), LATENCY_BUCKETS)
            .expect("static buckets are valid")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics shows only this handle's metrics");
        }
        describe();
        handle
    })
}

/// Every metric a shopmesh service exports, with its `# HELP` text.
pub const DESCRIPTIONS: &[(&str, &str)] = &[
    (
        "http_requests_total",
        "HTTP requests answered, by service, operation, method and status.",
    ),
    (
        "http_request_duration_seconds",
        "Time to answer an HTTP request, by service, operation and method.",
    ),
    ("http_connections_open", "HTTP connections open now."),
    (
        "http_connections_evicted_total",
        "Idle HTTP connections closed to make room at the connection cap.",
    ),
    (
        "http_connections_refused_total",
        "HTTP connections refused at the cap with every connection busy.",
    ),
    (
        "grpc_requests_total",
        "gRPC calls answered, by service, method and status code.",
    ),
    (
        "grpc_request_duration_seconds",
        "Time to answer a gRPC call, by service and method.",
    ),
    ("cache_hits_total", "Reads served from Redis."),
    (
        "cache_misses_total",
        "Reads Redis did not have (or could not answer).",
    ),
    (
        "cache_errors_total",
        "Redis calls that failed or timed out.",
    ),
    (
        "cache_bypassed_total",
        "Calls that skipped Redis because its circuit breaker was open.",
    ),
    (
        "cache_up",
        "1 while the Redis circuit breaker is closed, 0 while it is open.",
    ),
    (
        "downstream_circuit_state",
        "Circuit of a downstream service: 0 closed, 1 half-open, 2 open.",
    ),
    (
        "downstream_retries_total",
        "Retries of downstream reads that found their service unavailable.",
    ),
    (
        "downstream_rejected_total",
        "Downstream calls failed at once because the circuit was open.",
    ),
    (
        "gateway_downstream_calls_total",
        "Calls the gateway made to each downstream service.",
    ),
    (
        "gateway_order_memory_hits_total",
        "Order reads the gateway served from process memory, before Redis.",
    ),
    (
        "gateway_user_memory_hits_total",
        "User reads the gateway served from process memory (dropped when the users service announces a change).",
    ),
    (
        "gateway_product_memory_hits_total",
        "Product reads (by id, page or SKU) the gateway served from process memory (dropped when the catalog announces a change).",
    ),
    (
        "catalog_conflicts_retried_total",
        "Catalog transactions tried again after a deadlock, lock wait timeout or write conflict.",
    ),
    (
        "catalog_reservations_expired_total",
        "Reservations the catalog's sweeper ended after their time, giving their units back.",
    ),
    (
        "gateway_graphql_document_cache_hits_total",
        "GraphQL requests whose query text the gateway had already parsed.",
    ),
    (
        "users_memory_hits_total",
        "User reads the users service served from process memory, before Redis.",
    ),
    (
        "gateway_rate_limited_total",
        "Requests the gateway refused with 429.",
    ),
    (
        "gateway_rate_limit_shared_unavailable_total",
        "Rate-limit checks made without the shared Redis quota.",
    ),
    (
        "outbox_pending_events",
        "Outbox rows not yet published to RabbitMQ.",
    ),
    (
        "outbox_oldest_pending_seconds",
        "Age of the oldest unpublished outbox row.",
    ),
    (
        "outbox_published_total",
        "Outbox events this process published and the broker confirmed.",
    ),
    (
        "notifications_dead_letter_messages",
        "Messages waiting in the dead-letter queue, as the consumer last counted them.",
    ),
    (
        "notifications_consumed_total",
        "order.created deliveries handled, by outcome.",
    ),
    (
        "notifications_consumer_connected",
        "1 while the consumer holds a RabbitMQ connection.",
    ),
    (
        "service_ready",
        "1 while every dependency the service cannot serve without answers (as /health/ready), checked at each scrape.",
    ),
    (
        "service_degraded",
        "1 while a dependency the service can serve without does not answer (it stays ready; some answers are errors).",
    ),
    (
        "dependency_up",
        "1 while the named dependency answers the service's readiness check.",
    ),
];

fn describe() {
    for (name, help) in DESCRIPTIONS {
        // The kind does not matter to the exporter's HELP line; one call covers every kind.
        metrics::describe_counter!(*name, *help);
        metrics::describe_gauge!(*name, *help);
        metrics::describe_histogram!(*name, *help);
    }
}

/// Something that copies a service's own counters into metrics right before a scrape.
pub type Collector = Arc<dyn Fn() + Send + Sync>;

/// Middleware recording `http_requests_total` and `http_request_duration_seconds` labelled by
/// service, operation (the OpenAPI operationId, `graphql`, or the first path segment), method
/// and status.
#[derive(Debug, Clone, Copy)]
pub struct RequestMetrics(pub &'static str);

impl<E: Endpoint> Middleware<E> for RequestMetrics {
    type Output = RequestMetricsEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        handle();
        RequestMetricsEndpoint {
            inner: ep,
            service: self.0,
        }
    }
}

/// Endpoint produced by [`RequestMetrics`].
pub struct RequestMetricsEndpoint<E> {
    inner: E,
    service: &'static str,
}

/// The operation label of a request no OpenAPI operation answered.
pub(crate) fn fallback_operation(path: &str, method: &Method) -> String {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    match first {
        "" => "root".to_owned(),
        "graphql" if method == Method::POST => "graphql".to_owned(),
        "graphql" | "graphiql" => "graphiql".to_owned(),
        "favicon.ico" | "favicon.svg" => "favicon".to_owned(),
        "health" | "metrics" | "docs" => first.to_owned(),
        // Rejected before reaching an operation (rate limit, body limit).
        "api" => "api".to_owned(),
        "openapi.json" => "openapi_spec".to_owned(),
        _ => "unmatched".to_owned(),
    }
}

/// The OpenAPI operationId that produced `resp`, if any.
pub(crate) fn operation_of(resp: &Response) -> Option<String> {
    resp.data::<OperationId>().map(|o| o.0.to_owned())
}

impl<E: Endpoint> Endpoint for RequestMetricsEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Self::Output> {
        let start = Instant::now();
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let result = self.inner.call(req).await.map(IntoResponse::into_response);
        let (status, operation) = match &result {
            Ok(resp) => (resp.status().as_u16(), operation_of(resp)),
            Err(err) => (err.status().as_u16(), None),
        };
        let operation = operation.unwrap_or_else(|| fallback_operation(&path, &method));
        let labels = [
            ("service", self.service.to_owned()),
            ("operation", operation),
            ("method", method.to_string()),
        ];
        metrics::histogram!("http_request_duration_seconds", &labels)
            .record(start.elapsed().as_secs_f64());
        let mut with_status = labels.to_vec();
        with_status.push(("status", status.to_string()));
        metrics::counter!("http_requests_total", &with_status).increment(1);
        result
    }
}

/// Copies a [`crate::cache::RedisCache`]'s counters into `cache_hits_total`,
/// `cache_misses_total`, `cache_errors_total` and `cache_bypassed_total`, and its breaker
/// into the gauge `cache_up` (1 closed, 0 open), labelled with `service`.
#[cfg(feature = "cache")]
pub fn cache_metrics(service: &'static str, cache: &crate::cache::RedisCache) {
    use std::sync::atomic::Ordering;
    let stats = cache.stats();
    metrics::counter!("cache_hits_total", "service" => service)
        .absolute(stats.hits.load(Ordering::Relaxed));
    metrics::counter!("cache_misses_total", "service" => service)
        .absolute(stats.misses.load(Ordering::Relaxed));
    metrics::counter!("cache_errors_total", "service" => service)
        .absolute(stats.errors.load(Ordering::Relaxed));
    metrics::counter!("cache_bypassed_total", "service" => service)
        .absolute(stats.bypassed.load(Ordering::Relaxed));
    metrics::gauge!("cache_up", "service" => service).set(if cache.is_up() { 1.0 } else { 0.0 });
}

/// Something that updates metrics right before a scrape and has to wait for I/O to do it.
pub type AsyncCollector =
    Arc<dyn Fn() -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// `GET /metrics`: awaits `first`, runs the collectors, then renders the Prometheus text
/// format (see [`crate::health::operations`]).
pub(crate) fn endpoint_with(
    first: AsyncCollector,
    collectors: Vec<Collector>,
) -> impl Endpoint<Output = Response> {
    let collectors = Arc::new(collectors);
    poem::endpoint::make(move |_| {
        let (first, collectors) = (first.clone(), collectors.clone());
        async move {
            first().await;
            for c in collectors.iter() {
                c();
            }
            Ok::<Response, poem::Error>(
                Response::builder()
                    .content_type("text/plain; version=0.0.4")
                    .body(handle().render()),
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_without_an_id_get_a_stable_label() {
        assert_eq!(fallback_operation("/graphql", &Method::POST), "graphql");
        assert_eq!(fallback_operation("/graphql", &Method::GET), "graphiql");
        assert_eq!(fallback_operation("/health/ready", &Method::GET), "health");
        assert_eq!(fallback_operation("/api/orders/1", &Method::GET), "api");
        assert_eq!(
            fallback_operation("/no/such/thing", &Method::GET),
            "unmatched",
            "no unbounded label values"
        );
    }
}
