//! The platform as four real processes (the binaries `cargo test --workspace` builds), each on
//! free ports and with names of its own, for tests that need what only separate processes
//! have: one global telemetry pipeline per service, signals, exit codes.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use shopmesh_events::OrderCreatedTopology;
use shopmesh_notifications::store::MongoNotificationStore;
use shopmesh_testkit::{TestDatabase, amqp_url, eventually, mongo_url, redis_url, unique};

/// Retries the notifications process makes before dead-lettering (kept low for tests).
const MAX_RETRIES: u32 = 3;

/// Path of a service binary built beside the running test (`target/<profile>/<name>`).
pub fn service_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary has a path");
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("tests run from target/<profile>/deps");
    let bin = dir.join(name);
    assert!(
        bin.exists(),
        "{} is missing: `cargo test --workspace` builds it",
        bin.display()
    );
    bin
}

/// A free loopback port (released at once; the service binds it moments later).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Sends SIGTERM to `child` (a graceful stop, unlike `Child::kill`'s SIGKILL).
pub fn terminate(child: &Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
}

/// The four services running as child processes.
pub struct ProcessPlatform {
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
    topology: OrderCreatedTopology,
    mongo_db: String,
    children: Vec<(&'static str, Child)>,
    databases: Vec<TestDatabase>,
}

impl ProcessPlatform {
    /// Starts users, orders, notifications and the gateway with `env` added to each one's
    /// environment, and waits until every `/health/ready` answers 200.
    pub async fn start(env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let users_db = TestDatabase::create().await;
        let orders_db = TestDatabase::create().await;
        let topology = OrderCreatedTopology {
            exchange: unique("e2e.orders"),
            queue: unique("e2e.order.created"),
        };
        let mongo_db = unique("smt_e2e");
        let prefix = format!("{}:", unique("e2e"));
        let (users_port, orders_port, gateway_port) = (free_port(), free_port(), free_port());
        let (grpc_port, notifications_http_port) = (free_port(), free_port());
        let url = |port: u16| format!("http://127.0.0.1:{port}");
        let mut platform = Self {
            gateway_url: url(gateway_port),
            users_url: url(users_port),
            orders_url: url(orders_port),
            grpc_url: url(grpc_port),
            notifications_http_url: url(notifications_http_port),
            topology: topology.clone(),
            mongo_db: mongo_db.clone(),
            children: Vec::new(),
            databases: Vec::new(),
        };
        let shared = [
            ("RUST_LOG", "warn".to_owned()),
            ("REDIS_URL", redis_url()),
            ("RABBITMQ_URL", amqp_url()),
            ("ORDERS_EXCHANGE", topology.exchange.clone()),
            ("ORDER_CREATED_QUEUE", topology.queue.clone()),
            ("CACHE_PREFIX", prefix),
        ];
        let services: [(&'static str, Vec<(&str, String)>); 4] = [
            (
                "users",
                vec![
                    ("PORT", users_port.to_string()),
                    ("DATABASE_URL", users_db.url.clone()),
                ],
            ),
            (
                "orders",
                vec![
                    ("PORT", orders_port.to_string()),
                    ("DATABASE_URL", orders_db.url.clone()),
                    ("OUTBOX_POLL_MS", "100".to_owned()),
                ],
            ),
            (
                "notifications",
                vec![
                    ("GRPC_PORT", grpc_port.to_string()),
                    ("HTTP_PORT", notifications_http_port.to_string()),
                    ("MONGO_URL", mongo_url()),
                    ("MONGO_DB", mongo_db),
                    ("CONSUMER_MAX_RETRIES", MAX_RETRIES.to_string()),
                    ("CONSUMER_RETRY_BASE_MS", "200".to_owned()),
                ],
            ),
            (
                "gateway",
                vec![
                    ("PORT", gateway_port.to_string()),
                    ("USER_SERVICE_URL", platform.users_url.clone()),
                    ("ORDER_SERVICE_URL", platform.orders_url.clone()),
                    ("NOTIFICATION_SERVICE_URL", platform.grpc_url.clone()),
                    ("RATE_LIMIT_MAX", "10000".to_owned()),
                ],
            ),
        ];
        platform.databases = vec![users_db, orders_db];
        for (name, own) in services {
            let mut cmd = Command::new(service_binary(&format!("shopmesh-{name}")));
            cmd.envs(shared.iter().map(|(k, v)| (*k, v.as_str())))
                .envs(own.iter().map(|(k, v)| (*k, v.as_str())))
                .envs(env.iter().copied())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit());
            platform.children.push((name, cmd.spawn()?));
        }
        let http = reqwest::Client::new();
        for base in [
            &platform.users_url,
            &platform.orders_url,
            &platform.notifications_http_url,
            &platform.gateway_url,
        ] {
            let ready = format!("{base}/health/ready");
            eventually(&ready, Duration::from_secs(60), || async {
                let r = http.get(&ready).send().await.ok()?;
                r.status().is_success().then_some(())
            })
            .await;
        }
        Ok(platform)
    }

    /// Sends SIGTERM to every service, gateway first, and returns each one's exit status
    /// (`true` for a clean exit); then removes the databases, queues and exchange.
    pub async fn stop(mut self) -> Vec<(&'static str, bool)> {
        let mut exits = Vec::new();
        while let Some((name, mut child)) = self.children.pop() {
            terminate(&child);
            let clean =
                tokio::task::spawn_blocking(move || child.wait().is_ok_and(|s| s.success()))
                    .await
                    .unwrap_or(false);
            exits.push((name, clean));
        }
        crate::remove_topology(&self.topology, MAX_RETRIES).await;
        if let Ok(store) =
            MongoNotificationStore::connect(&mongo_url(), &self.mongo_db, Duration::from_secs(2))
                .await
        {
            let _ = store.drop_database().await;
        }
        for db in std::mem::take(&mut self.databases) {
            db.drop_db().await;
        }
        exits
    }
}

impl Drop for ProcessPlatform {
    /// A test that panics before [`ProcessPlatform::stop`] leaves no processes behind.
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
