//! Support for integration tests that run against real MariaDB/MySQL, Redis, RabbitMQ and a
//! MongoDB wire-protocol server. Endpoints come from `TEST_*` variables (set by
//! `cargo xtask test`) with this machine's local defaults.

pub mod otlp;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::Connection;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;

fn env_or(key: &str, default: &str) -> String {
    std::env::var(key)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// Server URL (no database) with rights to create databases.
pub fn mysql_admin_url() -> String {
    env_or("TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306")
}

/// RabbitMQ URL.
pub fn amqp_url() -> String {
    env_or("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
}

/// Redis URL.
pub fn redis_url() -> String {
    env_or("TEST_REDIS_URL", "redis://127.0.0.1:6379/")
}

/// MongoDB URL (`cargo xtask test` starts a SecantusDB stand-in and sets it).
pub fn mongo_url() -> String {
    env_or(
        "TEST_MONGO_URL",
        "mongodb://127.0.0.1:27017/?directConnection=true",
    )
}

/// A name no other test (or test run) uses: `prefix_<millis>_<random>`.
pub fn unique(prefix: &str) -> String {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let rand = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}_{millis}_{}", &rand[..8])
}

/// A database created for one test.
pub struct TestDatabase {
    /// Database name.
    pub name: String,
    /// URL of the database.
    pub url: String,
}

const DB_PREFIX: &str = "smt";

impl TestDatabase {
    /// Creates an empty database, first dropping leftovers of runs older than two hours.
    pub async fn create() -> Self {
        let admin = mysql_admin_url();
        let mut conn = sqlx::MySqlConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("MySQL/MariaDB not reachable at {admin}: {e}"));
        let old: Vec<(String,)> = sqlx::query_as(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'smt\\_%'",
        )
        .fetch_all(&mut conn)
        .await
        .expect("list databases");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        for (name,) in old {
            let ts: u128 = name
                .split('_')
                .nth(1)
                .and_then(|t| t.parse().ok())
                .unwrap_or(now);
            if now.saturating_sub(ts) > 2 * 3600 * 1000 {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS `{name}`"))
                    .execute(&mut conn)
                    .await;
            }
        }
        let name = unique(DB_PREFIX);
        sqlx::query(&format!("CREATE DATABASE `{name}`"))
            .execute(&mut conn)
            .await
            .expect("create database");
        let url = format!("{}/{name}", admin.trim_end_matches('/'));
        Self { name, url }
    }

    /// Drops the database.
    pub async fn drop_db(self) {
        if let Ok(mut conn) = sqlx::MySqlConnection::connect(&mysql_admin_url()).await {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS `{}`", self.name))
                .execute(&mut conn)
                .await;
        }
    }
}

/// A TCP proxy on loopback whose link can be cut and restored, to simulate an outage of
/// whatever is behind it without touching the real server.
pub struct TcpProxy {
    /// Address clients connect to.
    pub addr: SocketAddr,
    up: Arc<AtomicBool>,
    cut_tx: broadcast::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl TcpProxy {
    /// Starts a proxy to `target` (`host:port`).
    pub async fn start(target: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let up = Arc::new(AtomicBool::new(true));
        let (cut_tx, _) = broadcast::channel(4);
        let target = target.to_owned();
        let (up2, cut2) = (up.clone(), cut_tx.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                if !up2.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let target = target.clone();
                let mut cut = cut2.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.recv() => {}
                    }
                });
            }
        });
        Self {
            addr,
            up,
            cut_tx,
            task,
        }
    }

    /// Drops every open connection and refuses new ones until [`TcpProxy::restore`].
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        let _ = self.cut_tx.send(());
    }

    /// Accepts connections again.
    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A server running in the test's runtime on an ephemeral port.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// Bound address.
    pub addr: SocketAddr,
    shutdown: shopmesh_common::shutdown::Shutdown,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl TestServer {
    /// Serves `app` on a free loopback port.
    pub async fn start<E: poem::Endpoint + 'static>(app: E) -> Self {
        let (acceptor, addr) = shopmesh_common::http::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let shutdown = shopmesh_common::shutdown::Shutdown::new();
        let s = shutdown.clone();
        let task = tokio::spawn(async move {
            shopmesh_common::http::serve(acceptor, app, async move { s.wait().await }).await
        });
        Self {
            base_url: format!("http://{addr}"),
            addr,
            shutdown,
            task,
        }
    }

    /// Stops the server gracefully.
    pub async fn stop(self) {
        self.shutdown.trigger();
        let _ = tokio::time::timeout(Duration::from_secs(15), self.task).await;
    }
}

/// Polls `check` every 50 ms until it returns `Some`, or panics after `within` naming `what`.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = tokio::time::Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if start.elapsed() > within {
            panic!("timed out after {within:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Splits `scheme://[user@]host:port/rest` into `(host:port, url with host:port replaced by
/// `new_authority`)`, to route a client through a [`TcpProxy`].
pub fn reroute(url: &str, new_authority: &str) -> (String, String) {
    let (scheme, rest) = url.split_once("://").expect("url has a scheme");
    let (userinfo, hostpart) = match rest.rsplit_once('@') {
        Some((u, h)) => (format!("{u}@"), h),
        None => (String::new(), rest),
    };
    let (authority, tail) = match hostpart.find(['/', '?']) {
        Some(i) => hostpart.split_at(i),
        None => (hostpart, ""),
    };
    (
        authority.to_owned(),
        format!("{scheme}://{userinfo}{new_authority}{tail}"),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn reroute_replaces_only_the_authority() {
        let (target, url) = super::reroute("amqp://guest:guest@127.0.0.1:5672/%2f", "127.0.0.1:9");
        assert_eq!(target, "127.0.0.1:5672");
        assert_eq!(url, "amqp://guest:guest@127.0.0.1:9/%2f");
        let (target, url) = super::reroute("mysql://root@localhost:3306/db", "h:1");
        assert_eq!(
            (target.as_str(), url.as_str()),
            ("localhost:3306", "mysql://root@h:1/db")
        );
    }
}
