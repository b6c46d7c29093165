//! One way to run a service: each service crate exports an `Application` that implements
//! [`Service`], every binary's `main` is [`main`], and tests and tools start the same
//! `Application` from a configuration of their own.

use std::future::Future;
use std::net::SocketAddr;

use crate::config::{ConfigError, Env, ProcessEnv};
use crate::shutdown::Shutdown;

/// Where a built service listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addrs {
    /// The HTTP listener (API or, for notifications, health and metrics).
    pub http: SocketAddr,
    /// The gRPC listener, for services that speak gRPC.
    pub grpc: Option<SocketAddr>,
    /// The listener serving `/metrics` when it is not the HTTP one (`METRICS_PORT`).
    pub metrics: Option<SocketAddr>,
}

/// A service: built from its configuration (listeners bound, clients created, nothing
/// served yet), then run until a shutdown is requested.
pub trait Service: Sized + Send + 'static {
    /// Its typed configuration.
    type Config: Send;
    /// Its name, in logs, metrics and traces.
    const NAME: &'static str;
    /// The variable naming the port `/health/live` answers on, and its default (used by the
    /// container HEALTHCHECK, `<binary> healthcheck`).
    const HEALTH_PORT: (&'static str, u16);

    /// Reads the configuration.
    fn config(env: &impl Env) -> Result<Self::Config, ConfigError>;

    /// Binds the listeners and builds everything the service needs; connects lazily, so a
    /// dependency that is down does not stop the build.
    fn build(config: Self::Config) -> impl Future<Output = anyhow::Result<Self>> + Send;

    /// Where the listeners are bound (useful with port 0).
    fn addrs(&self) -> Addrs;

    /// Prepares its stores (migrations, indexes, retried until they succeed), starts its
    /// background work (relay, consumer) and serves until `shutdown`, then drains.
    fn run_until(self, shutdown: Shutdown) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// Runs the operator command `args` (`<binary> <command> [options]`) instead of serving;
    /// `None` when the service has no such command. Services without commands keep the
    /// default.
    fn command(
        config: Self::Config,
        args: Vec<String>,
    ) -> impl Future<Output = Option<anyhow::Result<()>>> + Send {
        let _ = (config, args);
        async { None }
    }
}

/// The whole `main` of a service binary: the `healthcheck` argument, telemetry (flushed on
/// exit), configuration from the environment, an operator command when one is given
/// ([`Service::command`]), else SIGTERM/Ctrl-C, build and serve.
pub async fn main<S: Service>() -> anyhow::Result<()> {
    crate::http::healthcheck_command(S::HEALTH_PORT.0, S::HEALTH_PORT.1);
    // Held to the end: dropping it flushes buffered spans.
    let _telemetry = crate::telemetry::init(S::NAME);
    let config = S::config(&ProcessEnv)?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(command) = args.first().cloned() {
        return S::command(config, args)
            .await
            .unwrap_or_else(|| anyhow::bail!("{} has no command {command:?}", S::NAME));
    }
    let shutdown = Shutdown::new();
    shutdown.on_signals();
    let service = S::build(config).await?;
    let addrs = service.addrs();
    tracing::info!(http = %addrs.http, grpc = ?addrs.grpc, metrics = ?addrs.metrics, "{} listening", S::NAME);
    service.run_until(shutdown).await
}
