//! A minimal OTLP/HTTP trace receiver for tests: it accepts `POST /v1/traces` (protobuf) like an
//! OpenTelemetry Collector would and keeps every span it receives, so a test can assert how a
//! request's trace crossed the services.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use poem::http::StatusCode;
use poem::web::Data;
use poem::{EndpointExt, Response, Route, handler, post};
use prost::Message;

use crate::TestServer;

/// How a span relates to its parent, as OTLP says (`SpanKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    /// Unspecified or internal work.
    Internal,
    /// Handles an incoming request.
    Server,
    /// Makes an outgoing request.
    Client,
    /// Sends a message.
    Producer,
    /// Processes a message.
    Consumer,
}

/// One received span, flattened.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    /// `service.name` of the process that sent it.
    pub service: String,
    /// Span name.
    pub name: String,
    /// Kind.
    pub kind: SpanKind,
    /// Trace id, 32 lower-case hex digits.
    pub trace_id: String,
    /// Span id, 16 hex digits.
    pub span_id: String,
    /// Parent span id, or empty for a root span.
    pub parent_span_id: String,
    /// String, integer and boolean attributes, rendered as text.
    pub attributes: BTreeMap<String, String>,
}

/// A running receiver; point `OTEL_EXPORTER_OTLP_ENDPOINT` at [`OtlpReceiver::endpoint`].
pub struct OtlpReceiver {
    server: TestServer,
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn render(attributes: &[KeyValue]) -> BTreeMap<String, String> {
    attributes
        .iter()
        .filter_map(|kv| {
            let value = match kv.value.as_ref()?.value.as_ref()? {
                any_value::Value::StringValue(s) => s.clone(),
                any_value::Value::IntValue(i) => i.to_string(),
                any_value::Value::BoolValue(b) => b.to_string(),
                any_value::Value::DoubleValue(d) => d.to_string(),
                _ => return None,
            };
            Some((kv.key.clone(), value))
        })
        .collect()
}

fn kind(k: i32) -> SpanKind {
    match k {
        2 => SpanKind::Server,
        3 => SpanKind::Client,
        4 => SpanKind::Producer,
        5 => SpanKind::Consumer,
        _ => SpanKind::Internal,
    }
}

/// Flattens an export request into spans.
pub fn flatten(request: &ExportTraceServiceRequest) -> Vec<ReceivedSpan> {
    let mut out = Vec::new();
    for resource_spans in &request.resource_spans {
        let resource = resource_spans
            .resource
            .as_ref()
            .map(|r| render(&r.attributes))
            .unwrap_or_default();
        let service = resource.get("service.name").cloned().unwrap_or_default();
        for scope in &resource_spans.scope_spans {
            for span in &scope.spans {
                out.push(ReceivedSpan {
                    service: service.clone(),
                    name: span.name.clone(),
                    kind: kind(span.kind),
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    attributes: render(&span.attributes),
                });
            }
        }
    }
    out
}

#[handler]
fn receive(body: Vec<u8>, spans: Data<&Arc<Mutex<Vec<ReceivedSpan>>>>) -> Response {
    match ExportTraceServiceRequest::decode(body.as_slice()) {
        Ok(request) => {
            let received = flatten(&request);
            if let Ok(mut all) = spans.lock() {
                all.extend(received);
            }
            Response::builder()
                .content_type("application/x-protobuf")
                .body(ExportTraceServiceResponse::default().encode_to_vec())
        }
        Err(e) => Response::builder()
            .status(StatusCode::BAD_REQUEST)
            .body(format!("not an ExportTraceServiceRequest: {e}")),
    }
}

impl OtlpReceiver {
    /// Starts a receiver on a free loopback port.
    pub async fn start() -> Self {
        let spans = Arc::new(Mutex::new(Vec::new()));
        let app = Route::new()
            .at("/v1/traces", post(receive))
            .data(spans.clone());
        Self {
            server: TestServer::start(app).await,
            spans,
        }
    }

    /// The base URL, for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn endpoint(&self) -> &str {
        &self.server.base_url
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The spans of one trace.
    pub fn trace(&self, trace_id: &str) -> Vec<ReceivedSpan> {
        self.spans()
            .into_iter()
            .filter(|s| s.trace_id == trace_id)
            .collect()
    }

    /// Stops the receiver.
    pub async fn stop(self) {
        self.server.stop().await;
    }
}
