//! Server spans: HTTP requests (the `TraceRequests` middleware) and gRPC calls, continuing the
//! caller's trace; probes and scrapes are traced at DEBUG so they are never exported.

use std::time::Instant;

use opentelemetry::trace::TraceContextExt as _;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};
use tracing::{Instrument, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::propagation::continue_remote_trace_from_headers;

/// Whether `path` is a health probe or a metrics scrape: such requests are traced and logged at
/// DEBUG only, so they neither reach the trace backend nor fill the logs.
fn is_probe(path: &str) -> bool {
    path.starts_with("/health") || path == "/metrics" || path.starts_with("/grpc.health.")
}

/// The span a gRPC server call runs in (for tonic's `Server::trace_fn`), named after the
/// method (`package.Service/Method`) and continuing the caller's trace from its metadata.
pub fn grpc_server_span<B>(request: &http::Request<B>) -> Span {
    let path = request.uri().path();
    let method = path.trim_start_matches('/');
    let span = if is_probe(path) {
        tracing::debug_span!("grpc.server", otel.name = %method, otel.kind = "server", rpc.system = "grpc")
    } else {
        tracing::info_span!("grpc.server", otel.name = %method, otel.kind = "server", rpc.system = "grpc")
    };
    continue_remote_trace_from_headers(&span, request.headers());
    span
}

fn http_server_span(method: &http::Method, path: &str) -> Span {
    macro_rules! request_span {
        ($level:ident) => {
            tracing::$level!(
                "http.server",
                otel.kind = "server",
                otel.status_code = tracing::field::Empty,
                http.request.method = %method,
                url.path = %path,
                http.response.status_code = tracing::field::Empty,
            )
        };
    }
    if is_probe(path) {
        request_span!(debug_span)
    } else {
        request_span!(info_span)
    }
}

/// Middleware opening one `http.server` span per request (named `METHOD operation`), as a child
/// of the caller's span when the request carries `traceparent`, and logging the response.
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceRequests;

impl<E: Endpoint> Middleware<E> for TraceRequests {
    type Output = TraceRequestsEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        TraceRequestsEndpoint { inner: ep }
    }
}

/// Endpoint produced by [`TraceRequests`].
pub struct TraceRequestsEndpoint<E> {
    inner: E,
}

impl<E: Endpoint> Endpoint for TraceRequestsEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Self::Output> {
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let span = http_server_span(&method, &path);
        continue_remote_trace_from_headers(&span, req.headers());
        let start = Instant::now();
        async move {
            let result = self.inner.call(req).await.map(IntoResponse::into_response);
            let status = match &result {
                Ok(resp) => resp.status(),
                Err(err) => err.status(),
            };
            let current = Span::current();
            // Nothing listens (logs above INFO, no export): skip the naming work.
            if !current.is_disabled() {
                let operation = result
                    .as_ref()
                    .ok()
                    .and_then(crate::metrics::operation_of)
                    .unwrap_or_else(|| crate::metrics::fallback_operation(&path, &method));
                // The span's OpenTelemetry context exists by now (children used it), and
                // tracing-opentelemetry only reads `otel.name` before that: rename it directly.
                current
                    .context()
                    .span()
                    .update_name(format!("{method} {operation}"));
                current.record("http.response.status_code", status.as_u16());
                if status.is_server_error() {
                    current.record("otel.status_code", "ERROR");
                }
            }
            let (status, duration_ms) = (status.as_u16(), start.elapsed().as_secs_f64() * 1e3);
            if is_probe(&path) {
                tracing::debug!(status, duration_ms, "response");
            } else {
                tracing::info!(status, duration_ms, "response");
            }
            result
        }
        .instrument(span)
        .await
    }
}
