//! `/health/live` and `/health/ready`: liveness says the process runs; readiness says the
//! instance can serve, so a load balancer only routes to instances that can. A dependency the
//! service can serve without (some of) is reported as degraded instead: taking every replica
//! out of rotation because of it would turn a partial outage into a whole one.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use poem::http::StatusCode;
use poem::web::Json;
use poem::{IntoResponse, Response, Route, get, handler};
use serde_json::json;

/// Boxed future returned by a [`ReadinessCheck`].
pub type CheckFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// A named dependency check.
#[derive(Clone)]
pub struct ReadinessCheck {
    name: &'static str,
    /// Whether the service cannot serve without it (else its failure only degrades).
    gates: bool,
    check: Arc<dyn Fn() -> CheckFuture + Send + Sync>,
}

impl ReadinessCheck {
    /// A dependency called `name` (e.g. `mysql`) without which the service cannot serve.
    pub fn new<F, Fut>(name: &'static str, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        Self {
            name,
            gates: true,
            check: Arc::new(move || Box::pin(check())),
        }
    }

    /// A dependency whose failure degrades the service (some answers become errors) but
    /// leaves it able to serve: reported, and alerted on, but the instance stays ready.
    pub fn degrading<F, Fut>(name: &'static str, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        Self {
            gates: false,
            ..Self::new(name, check)
        }
    }
}

/// What the checks found.
pub struct Readiness {
    /// Every dependency the service cannot serve without answers.
    pub ready: bool,
    /// A dependency it can serve without does not answer.
    pub degraded: bool,
    /// Each check's name with `"ok"` or its error.
    pub detail: serde_json::Value,
}

/// Runs every check (each bounded to 2 s).
pub async fn run_checks(checks: &[ReadinessCheck]) -> Readiness {
    let results = futures_join(checks).await;
    let failed = |gating: bool| {
        checks
            .iter()
            .zip(&results)
            .any(|(c, (_, r))| c.gates == gating && r.is_err())
    };
    let (ready, degraded) = (!failed(true), failed(false));
    let detail: serde_json::Map<_, _> = results
        .into_iter()
        .map(|(name, r)| {
            (
                name.to_owned(),
                match r {
                    Ok(()) => json!("ok"),
                    Err(e) => json!(e),
                },
            )
        })
        .collect();
    Readiness {
        ready,
        degraded,
        detail: serde_json::Value::Object(detail),
    }
}

async fn futures_join(checks: &[ReadinessCheck]) -> Vec<(&'static str, Result<(), String>)> {
    let handles: Vec<_> = checks
        .iter()
        .map(|c| {
            let fut = (c.check)();
            (
                c.name,
                tokio::spawn(async move {
                    match tokio::time::timeout(Duration::from_secs(2), fut).await {
                        Ok(r) => r,
                        Err(_) => Err("timed out after 2s".to_owned()),
                    }
                }),
            )
        })
        .collect();
    let mut out = Vec::with_capacity(handles.len());
    for (name, h) in handles {
        out.push((
            name,
            h.await
                .unwrap_or_else(|e| Err(format!("check panicked: {e}"))),
        ));
    }
    out
}

#[handler]
fn live() -> Json<serde_json::Value> {
    Json(json!({ "status": "live" }))
}

/// `route` with `/health/live`, `/health/ready` and `/metrics` of a service: what every
/// orchestrator and scraper reads. A scrape runs the readiness checks too, so `service_ready{service}` and
/// `dependency_up{service,dependency}` are as fresh as the scrape, whether or not anything
/// probes readiness (docker-compose does not), then the `collectors`.
pub fn operations(
    route: Route,
    service: &'static str,
    checks: Vec<ReadinessCheck>,
    collectors: Vec<crate::metrics::Collector>,
) -> Route {
    let scraped = checks.clone();
    let readiness: crate::metrics::AsyncCollector = Arc::new(move || {
        let checks = scraped.clone();
        Box::pin(async move {
            let found = run_checks(&checks).await;
            if let Some(detail) = found.detail.as_object() {
                for (dependency, result) in detail {
                    metrics::gauge!("dependency_up", "service" => service, "dependency" => dependency.clone())
                        .set(if result == "ok" { 1.0 } else { 0.0 });
                }
            }
            let flag = |on: bool| if on { 1.0 } else { 0.0 };
            metrics::gauge!("service_ready", "service" => service).set(flag(found.ready));
            metrics::gauge!("service_degraded", "service" => service).set(flag(found.degraded));
        })
    });
    route.nest("/health", routes(checks)).at(
        "/metrics",
        crate::metrics::endpoint_with(readiness, collectors),
    )
}

/// Routes `/live` and `/ready`, to nest under `/health`.
fn routes(checks: Vec<ReadinessCheck>) -> Route {
    let checks = Arc::new(checks);
    Route::new().at("/live", get(live)).at(
        "/ready",
        get(poem::endpoint::make(move |_| {
            let checks = checks.clone();
            async move {
                let found = run_checks(&checks).await;
                let (status, word) = match (found.ready, found.degraded) {
                    (false, _) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
                    (true, true) => (StatusCode::OK, "degraded"),
                    (true, false) => (StatusCode::OK, "ready"),
                };
                let body = json!({ "status": word, "checks": found.detail });
                Ok::<Response, poem::Error>(Json(body).with_status(status).into_response())
            }
        })),
    )
}
