//! The platform as four real processes (the binaries `cargo test --workspace` builds), started
//! from a test [`Stack`], for tests that need what only separate processes have: one global
//! telemetry pipeline per service, signals, exit codes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use shopmesh_testkit::stack::{Output, Processes};
use shopmesh_testkit::{Service, Stack, remove_names, test_stack};

use crate::MAX_RETRIES;

/// Where `cargo test --workspace` put the service binaries (`target/<profile>`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary has a path");
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("tests run from target/<profile>/deps")
        .to_path_buf();
    assert!(
        Service::Users.binary(&dir).exists(),
        "service binaries are missing in {}: `cargo test --workspace` builds them",
        dir.display()
    );
    dir
}

/// A test stack whose processes log warnings only, retry quickly and relay often.
pub fn process_stack() -> Stack {
    test_stack()
        .set("CONSUMER_MAX_RETRIES", MAX_RETRIES.to_string())
        .set("CONSUMER_RETRY_BASE_MS", "200")
        .set("OUTBOX_POLL_MS", "100")
        .set("RATE_LIMIT_MAX", "10000")
}

/// The four services running as child processes.
pub struct ProcessPlatform {
    /// The stack they were started from.
    pub stack: Stack,
    /// Gateway base URL.
    pub gateway_url: String,
    /// Users base URL.
    pub users_url: String,
    /// Orders base URL.
    pub orders_url: String,
    /// Notifications gRPC URL.
    pub grpc_url: String,
    /// Notifications HTTP (health, metrics) URL.
    pub notifications_http_url: String,
    processes: Option<Processes>,
}

impl ProcessPlatform {
    /// Starts users, orders, notifications and the gateway with `env` added to each one's
    /// environment, and waits until every `/health/ready` answers 200.
    pub async fn start(env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let stack = env
            .iter()
            .fold(process_stack(), |stack, (k, v)| stack.set(k, *v));
        Self::start_on(stack).await
    }

    /// Starts every service from `stack` (e.g. [`process_stack`] with a service's own
    /// settings) and waits until every `/health/ready` answers 200.
    pub async fn start_on(stack: Stack) -> anyhow::Result<Self> {
        let spawned = stack.clone();
        let processes = tokio::task::spawn_blocking(move || {
            spawned.spawn(&bin_dir(), Output::Inherit, Duration::from_secs(60))
        })
        .await??;
        Ok(Self {
            gateway_url: stack.url(Service::Gateway),
            users_url: stack.url(Service::Users),
            orders_url: stack.url(Service::Orders),
            grpc_url: stack.grpc_url(),
            notifications_http_url: stack.url(Service::Notifications),
            stack,
            processes: Some(processes),
        })
    }

    /// SIGKILLs `service`, as a crash would, and reaps it.
    pub fn kill(&mut self, service: Service) {
        let processes = self.processes.as_mut().expect("started");
        if let Some(child) = processes.child(service) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts `service` again, from the binary in `bin` (by default the one the workspace
    /// built), and waits until it is ready.
    pub async fn restart(&mut self, service: Service, bin: Option<&Path>) -> anyhow::Result<()> {
        let dir = bin.map_or_else(bin_dir, Path::to_path_buf);
        let child = self.stack.spawn_one(&dir, service, Output::Inherit)?;
        self.processes
            .as_mut()
            .expect("started")
            .replace(service, child);
        let port = self.stack.ports.http(service);
        let started = std::time::Instant::now();
        while !tokio::task::spawn_blocking(move || shopmesh_testkit::stack::ready(port)).await? {
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(60),
                "{} did not become ready again",
                service.name()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    /// Sends SIGTERM to every service, gateway first, and returns each one's exit status
    /// (`true` for a clean exit); then removes the databases, queues and exchange.
    pub async fn stop(mut self) -> Vec<(&'static str, bool)> {
        let processes = self.processes.take().expect("started");
        let exits = tokio::task::spawn_blocking(move || processes.stop(Duration::from_secs(30)))
            .await
            .unwrap_or_default();
        remove_names(&self.stack.names, MAX_RETRIES).await;
        exits
    }
}
