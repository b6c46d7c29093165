//! Start-up work (migrations, index creation) that runs while the service already listens: a
//! store that is down at start must not keep liveness probes from being answered, or an
//! orchestrator restarts the service in a loop instead of waiting for the store.
//!
//! Until the work is done, [`StartupGate`] answers everything but `/health/live` and
//! `/metrics` with 503 (readiness with `"status": "starting"`), and background tasks wait on
//! [`Startup::wait`].

use std::future::Future;

use poem::http::StatusCode;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};
use tokio::sync::watch;

use crate::shutdown::Shutdown;

/// The `status` of `/health/ready` while start-up work runs (`ready` and `unavailable` once
/// it is done).
pub const STARTING: &str = "starting";

/// Start-up work running in the background; cheap to clone.
#[derive(Clone, Debug)]
pub struct Startup {
    what: &'static str,
    done: watch::Receiver<bool>,
}

impl Startup {
    /// Spawns `step`, retried with backoff until it succeeds or `shutdown` (see
    /// [`crate::retry::until_ok`]). `what` names it in logs and in the 503 answers.
    pub fn spawn<T, E, F, Fut>(what: &'static str, shutdown: &Shutdown, step: F) -> Self
    where
        T: Send + 'static,
        E: std::fmt::Display + Send + 'static,
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        let (tx, done) = watch::channel(false);
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            if crate::retry::until_ok(what, &shutdown, step)
                .await
                .is_some()
            {
                tracing::info!("{what} done");
                let _ = tx.send(true);
            }
        });
        Self { what, done }
    }

    /// Start-up with nothing to do.
    pub fn done(what: &'static str) -> Self {
        Self {
            what,
            done: watch::channel(true).1,
        }
    }

    /// Whether the work is done.
    pub fn is_done(&self) -> bool {
        *self.done.borrow()
    }

    /// Resolves `true` when the work is done, `false` if it was abandoned (shutdown).
    pub async fn wait(&self) -> bool {
        let mut done = self.done.clone();
        done.wait_for(|d| *d).await.is_ok()
    }
}

/// Middleware answering 503 (problem+json, `Retry-After: 1`) until [`Startup`] is done, except
/// for `/health/live` and `/metrics`.
#[derive(Clone, Debug)]
pub struct StartupGate(pub Startup);

impl<E: Endpoint> Middleware<E> for StartupGate {
    type Output = StartupGateEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        StartupGateEndpoint {
            inner: ep,
            startup: self.0.clone(),
        }
    }
}

/// Endpoint produced by [`StartupGate`].
pub struct StartupGateEndpoint<E> {
    inner: E,
    startup: Startup,
}

impl<E: Endpoint> Endpoint for StartupGateEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let path = req.uri().path();
        if self.startup.is_done() || path == "/health/live" || path == "/metrics" {
            return Ok(self.inner.call(req).await?.into_response());
        }
        let pending = format!("{} not done yet", self.startup.what);
        if path == "/health/ready" {
            let body = serde_json::json!({
                "status": STARTING,
                "checks": { "startup": pending },
            });
            return Ok(poem::web::Json(body)
                .with_status(StatusCode::SERVICE_UNAVAILABLE)
                .into_response());
        }
        let problem = crate::problem::Problem::new(
            StatusCode::SERVICE_UNAVAILABLE.as_u16(),
            format!("starting: {pending}"),
        );
        let mut resp = crate::problem::response(&problem);
        resp.headers_mut()
            .insert(poem::http::header::RETRY_AFTER, 1.into());
        Ok(resp)
    }
}
