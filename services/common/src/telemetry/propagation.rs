//! W3C `traceparent`/`tracestate` in and out of HTTP headers, AMQP headers and gRPC metadata.

use std::collections::HashMap;
use std::sync::LazyLock;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

static PROPAGATOR: LazyLock<TraceContextPropagator> = LazyLock::new(TraceContextPropagator::new);

/// The W3C trace-context fields (`traceparent`, and `tracestate` when there is one) that make
/// the receiver's spans children of `span`. Empty while export is off.
pub fn trace_headers_of(span: &Span) -> HashMap<String, String> {
    let mut fields = HashMap::new();
    PROPAGATOR.inject_context(&span.context(), &mut fields);
    fields
}

/// [`trace_headers_of`] `span` as HTTP headers, for HTTP requests (reqwest shares this type)
/// and gRPC metadata (`tonic::metadata::MetadataMap::from_headers`).
pub fn trace_header_map(span: &Span) -> http::HeaderMap {
    trace_headers_of(span)
        .into_iter()
        .filter_map(|(name, value)| {
            Some((
                http::HeaderName::from_bytes(name.as_bytes()).ok()?,
                http::HeaderValue::from_str(&value).ok()?,
            ))
        })
        .collect()
}

/// [`trace_headers_of`] the current span: what an outgoing request, message or call carries.
pub fn outgoing_trace_headers() -> HashMap<String, String> {
    trace_headers_of(&Span::current())
}

/// The current span's `traceparent`, to store beside work that continues later (the outbox).
pub fn current_traceparent() -> Option<String> {
    outgoing_trace_headers().remove("traceparent")
}

/// Makes `span` a child of the remote span named by the trace-context fields `lookup` finds
/// (`traceparent`, `tracestate`). Missing or malformed fields, or export being off, leave `span`
/// as it was.
pub fn continue_remote_trace(span: &Span, lookup: impl Fn(&str) -> Option<String>) {
    let fields: HashMap<String, String> = PROPAGATOR
        .fields()
        .filter_map(|name| lookup(name).map(|v| (name.to_owned(), v)))
        .collect();
    if fields.is_empty() {
        return;
    }
    let parent = PROPAGATOR.extract(&fields);
    // Fails only when no OpenTelemetry layer is installed, i.e. export is off.
    let _ = span.set_parent(parent);
}

/// [`continue_remote_trace`] from HTTP headers (poem requests, tonic requests).
pub fn continue_remote_trace_from_headers(span: &Span, headers: &http::HeaderMap) {
    continue_remote_trace(span, |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    });
}
