//! Logs and traces through `tracing`.
//!
//! - Logs: human-readable by default, JSON with `LOG_FORMAT=json`, filtered by `RUST_LOG`
//!   (default `info`).
//! - Traces: when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set,
//!   every span at INFO or above is exported in batches over OTLP/HTTP (protobuf), whatever
//!   `RUST_LOG` says, with `service.name` set to the service (or `OTEL_SERVICE_NAME`).
//! - Trace context crosses process boundaries as W3C `traceparent`/`tracestate`: callers add
//!   [`outgoing_trace_headers`] to what they send, receivers call [`continue_remote_trace`] on
//!   the span that handles it. Both do nothing while export is off.
//!
//! Split by job: [`export`] builds the OTLP pipeline, [`propagation`] carries W3C trace context
//! across processes, [`server`] opens the server spans of HTTP and gRPC requests.

mod export;
mod propagation;
mod server;

use export::tracer_provider;

pub use propagation::*;
pub use server::*;

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

use crate::config::{Env, ProcessEnv};

/// Telemetry settings, read from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryConfig {
    /// `LOG_FORMAT=json`: one JSON object per log line.
    pub json_logs: bool,
    /// `RUST_LOG` directives for logs (default `info`); they do not affect trace export.
    pub log_filter: String,
    /// Where spans are sent (`…/v1/traces`); `None` turns export and propagation off.
    pub traces_endpoint: Option<String>,
    /// `service.name` of exported spans.
    pub service_name: String,
}

impl TelemetryConfig {
    /// Reads `LOG_FORMAT`, `RUST_LOG`, `OTEL_SDK_DISABLED`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
    /// (used as is), `OTEL_EXPORTER_OTLP_ENDPOINT` (`/v1/traces` appended, as the OTLP spec
    /// says) and `OTEL_SERVICE_NAME` (default: `service`).
    pub fn from_env(service: &str, env: &impl Env) -> Self {
        let json_logs = env
            .get("LOG_FORMAT")
            .is_some_and(|v| v.eq_ignore_ascii_case("json"));
        let log_filter = env.get("RUST_LOG").unwrap_or_else(|| "info".to_owned());
        let disabled = env
            .get("OTEL_SDK_DISABLED")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let traces_endpoint = env
            .get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .or_else(|| {
                env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
                    .map(|base| format!("{}/v1/traces", base.trim_end_matches('/')))
            })
            .filter(|_| !disabled);
        let service_name = env
            .get("OTEL_SERVICE_NAME")
            .unwrap_or_else(|| service.to_owned());
        Self {
            json_logs,
            log_filter,
            traces_endpoint,
            service_name,
        }
    }
}

/// Returned by [`init`]; dropping it exports the spans still buffered (waiting at most 5 s)
/// and stops exporting, so hold it until the service stops.
#[must_use = "dropping Telemetry at once stops trace export"]
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown_with_timeout(Duration::from_secs(5))
        {
            tracing::warn!(error = %e, "could not flush spans at shutdown");
        }
    }
}

/// Installs the global subscriber for `service` from the process environment. Safe to call
/// more than once (later calls change nothing), so tests that start several services in one
/// process can call it freely. Must run inside a Tokio runtime for export to work: spans are
/// sent from that runtime.
pub fn init(service: &str) -> Telemetry {
    init_with(&TelemetryConfig::from_env(service, &ProcessEnv))
}

/// [`init`] with explicit settings.
pub fn init_with(config: &TelemetryConfig) -> Telemetry {
    let filter = EnvFilter::try_new(&config.log_filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = if config.json_logs {
        tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(false)
            .with_filter(filter)
            .boxed()
    } else {
        // Colour only for a person at a terminal: escape codes garble files and log shippers.
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
        tracing_subscriber::fmt::layer()
            .with_ansi(ansi)
            .with_filter(filter)
            .boxed()
    };
    let (provider, export_error) = match &config.traces_endpoint {
        Some(endpoint) => match tracer_provider(endpoint, &config.service_name) {
            Ok(p) => (Some(p), None),
            Err(e) => (None, Some(e)),
        },
        None => (None, None),
    };
    let traces = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("shopmesh"))
            .with_filter(LevelFilter::INFO)
    });
    let installed = Registry::default()
        .with(logs)
        .with(traces)
        .try_init()
        .is_ok();
    if !installed {
        // Someone else owns the global subscriber; spans would never reach this provider.
        return Telemetry::default();
    }
    match (&config.traces_endpoint, export_error) {
        (Some(endpoint), None) => {
            tracing::info!(service = %config.service_name, %endpoint, "telemetry initialised; exporting traces")
        }
        (Some(endpoint), Some(e)) => {
            tracing::warn!(service = %config.service_name, %endpoint, error = %e, "telemetry initialised; trace export disabled")
        }
        (None, _) => tracing::info!(service = %config.service_name, "telemetry initialised"),
    }
    Telemetry { provider }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    struct MapEnv(HashMap<&'static str, &'static str>);

    impl Env for MapEnv {
        fn get(&self, key: &str) -> Option<String> {
            self.0
                .get(key)
                .filter(|v| !v.is_empty())
                .map(|v| (*v).to_owned())
        }
    }

    fn config(vars: &[(&'static str, &'static str)]) -> TelemetryConfig {
        TelemetryConfig::from_env("orders", &MapEnv(vars.iter().copied().collect()))
    }

    #[test]
    fn export_is_off_without_an_endpoint() {
        let c = config(&[]);
        assert_eq!(c.traces_endpoint, None);
        assert_eq!(c.service_name, "orders");
        assert_eq!(c.log_filter, "info");
        assert!(!c.json_logs);
    }

    #[test]
    fn the_generic_endpoint_gets_the_traces_path() {
        let c = config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://jaeger:4318/")]);
        assert_eq!(
            c.traces_endpoint.as_deref(),
            Some("http://jaeger:4318/v1/traces")
        );
    }

    #[test]
    fn the_traces_endpoint_is_used_as_is_and_wins() {
        let c = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://b:9999/custom"),
            ("OTEL_SERVICE_NAME", "orders-eu"),
            ("LOG_FORMAT", "JSON"),
        ]);
        assert_eq!(c.traces_endpoint.as_deref(), Some("http://b:9999/custom"));
        assert_eq!(c.service_name, "orders-eu");
        assert!(c.json_logs);
    }

    #[test]
    fn sdk_disabled_turns_export_off() {
        let c = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:4318"),
            ("OTEL_SDK_DISABLED", "true"),
        ]);
        assert_eq!(c.traces_endpoint, None);
    }

    /// A subscriber with an OpenTelemetry layer whose spans go nowhere, scoped to one test.
    fn with_otel<T>(f: impl FnOnce() -> T) -> T {
        let provider = SdkTracerProvider::builder().build();
        let subscriber = Registry::default()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, f)
    }

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_span_continues_the_remote_trace_and_propagates_it_with_itself_as_parent() {
        with_otel(|| {
            let span = tracing::info_span!("handler");
            continue_remote_trace(&span, |name| {
                (name == "traceparent").then(|| PARENT.to_owned())
            });
            let headers = trace_headers_of(&span);
            let traceparent = &headers["traceparent"];
            assert_eq!(
                trace_header_map(&span)["traceparent"].to_str().unwrap(),
                traceparent,
                "the header map carries the same context"
            );
            let parts: Vec<&str> = traceparent.split('-').collect();
            assert_eq!(parts[1], "4bf92f3577b34da6a3ce929d0e0e4736", "same trace");
            assert_ne!(
                parts[2], "00f067aa0ba902b7",
                "the local span is the new parent"
            );
            assert_eq!(parts[3], "01", "sampled flag kept");
            let child = span.in_scope(current_traceparent);
            assert_eq!(child.as_deref(), Some(traceparent.as_str()));
        });
    }

    #[test]
    fn malformed_or_missing_context_starts_a_new_trace() {
        with_otel(|| {
            let span = tracing::info_span!("handler");
            continue_remote_trace(&span, |_| Some("00-not-a-trace".to_owned()));
            let traceparent = trace_headers_of(&span).remove("traceparent").unwrap();
            assert!(!traceparent.contains("4bf92f3577b34da6a3ce929d0e0e4736"));
            assert_eq!(traceparent.len(), 55, "{traceparent}");
        });
    }

    #[test]
    fn nothing_is_propagated_while_export_is_off() {
        let subscriber = Registry::default();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("handler");
            continue_remote_trace(&span, |_| Some(PARENT.to_owned()));
            assert!(trace_headers_of(&span).is_empty());
            assert_eq!(span.in_scope(current_traceparent), None);
        });
    }

    #[test]
    fn grpc_calls_continue_the_trace_from_metadata_and_probes_stay_out() {
        with_otel(|| {
            let call = http::Request::builder()
                .uri("http://x/shopmesh.notification.v1.NotificationService/GetNotifications")
                .header("traceparent", PARENT)
                .body(())
                .unwrap();
            let span = grpc_server_span(&call);
            let traceparent = trace_headers_of(&span).remove("traceparent").unwrap();
            assert!(traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
            assert_eq!(
                span.metadata().map(|m| *m.level()),
                Some(tracing::Level::INFO)
            );
            let probe = http::Request::builder()
                .uri("http://x/grpc.health.v1.Health/Check")
                .body(())
                .unwrap();
            assert_eq!(
                grpc_server_span(&probe).metadata().map(|m| *m.level()),
                Some(tracing::Level::DEBUG)
            );
        });
    }

    #[tokio::test]
    async fn the_middleware_makes_the_request_span_a_child_of_the_caller() {
        use poem::test::TestClient;
        use poem::{EndpointExt, handler};

        #[handler]
        fn echo() -> String {
            current_traceparent().unwrap_or_default()
        }
        let provider = SdkTracerProvider::builder().build();
        let subscriber = Registry::default()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        let _guard = tracing::subscriber::set_default(subscriber);
        let client = TestClient::new(echo.with(TraceRequests));
        let resp = client.get("/").header("traceparent", PARENT).send().await;
        resp.assert_status_is_ok();
        let seen = resp.0.into_body().into_string().await.unwrap();
        assert!(
            seen.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
            "{seen}"
        );
        assert!(!seen.contains("00f067aa0ba902b7"), "{seen}");
    }
}
