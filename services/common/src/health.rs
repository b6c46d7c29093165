//! `/health/live` and `/health/ready`: liveness says the process runs; readiness says every
//! dependency answers, so a load balancer only routes to instances that can serve.

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
    check: Arc<dyn Fn() -> CheckFuture + Send + Sync>,
}

impl ReadinessCheck {
    /// A check called `name` (e.g. `mysql`) that runs `check`.
    pub fn new<F, Fut>(name: &'static str, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        Self {
            name,
            check: Arc::new(move || Box::pin(check())),
        }
    }
}

/// Runs every check (each bounded to 2 s) and reports `(all ok, per-check JSON)`.
pub async fn run_checks(checks: &[ReadinessCheck]) -> (bool, serde_json::Value) {
    let results = futures_join(checks).await;
    let ok = results.iter().all(|(_, r)| r.is_ok());
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
    (ok, serde_json::Value::Object(detail))
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
            let results = futures_join(&checks).await;
            for (dependency, result) in &results {
                metrics::gauge!("dependency_up", "service" => service, "dependency" => *dependency)
                    .set(if result.is_ok() { 1.0 } else { 0.0 });
            }
            let ready = results.iter().all(|(_, r)| r.is_ok());
            metrics::gauge!("service_ready", "service" => service).set(if ready {
                1.0
            } else {
                0.0
            });
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
                let (ok, detail) = run_checks(&checks).await;
                let status = if ok {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                let body =
                    json!({ "status": if ok { "ready" } else { "unavailable" }, "checks": detail });
                Ok::<Response, poem::Error>(Json(body).with_status(status).into_response())
            }
        })),
    )
}
