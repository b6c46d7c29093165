//! The catalog never oversells: 32 clients reserve, commit, release, adjust stock and let
//! reservations expire on 5 hot and 100 cold products while the catalog process is SIGKILLed
//! and restarted twice, its database link is cut for 2 s, and MariaDB itself is shut down and
//! started again (when it is a local server the init system manages; the test says which
//! faults it injected); then the checker (`checker/`) compares every counter
//! with the ledger, the reservations and what the clients saw. Its negative control is
//! `oversell_control.rs`.

mod checker;
mod helpers;

use std::sync::Arc;
use std::time::{Duration, Instant};

use checker::{Outcome, Products, Reservations};
use helpers::{adjustment, input};
use shopmesh_identity::{AccessToken, Role};
use shopmesh_openapi::catalog::{
    CatalogClient, ReservationLine, ReservationRequest, StockAdjustment,
};
use shopmesh_openapi::runtime::ClientError;
use shopmesh_testkit::stack::Output;
use shopmesh_testkit::{
    Service, Stack, TcpProxy, remove_names, reroute, serve_jwks, service_token, test_stack, token,
    unique,
};

/// The catalog over HTTP: stock adjusted as an admin, reservations as the orders service.
struct OverHttp {
    client: CatalogClient,
    admin: AccessToken,
    orders: AccessToken,
}

fn outcome<T>(result: Result<T, ClientError>) -> Outcome {
    match result {
        Ok(_) => Outcome::Done,
        Err(e) if e.problem().is_some_and(|p| p.status() < 500) => Outcome::Refused,
        Err(_) => Outcome::Unknown,
    }
}

#[async_trait::async_trait]
impl Reservations for OverHttp {
    async fn reserve(&self, order: i64, lines: &[(i64, i32)]) -> Outcome {
        let lines = lines
            .iter()
            .map(|&(product_id, quantity)| ReservationLine {
                product_id,
                quantity,
            })
            .collect();
        outcome(
            self.client
                .reserve_stock(&self.orders, order, &ReservationRequest { lines })
                .await,
        )
    }
    async fn commit(&self, order: i64) -> Outcome {
        outcome(self.client.commit_reservation(&self.orders, order).await)
    }
    async fn release(&self, order: i64) -> Outcome {
        outcome(self.client.release_reservation(&self.orders, order).await)
    }
    async fn adjust(&self, product: i64, delta: i32) -> Outcome {
        let adjustment = StockAdjustment {
            delta,
            reason: "checker".into(),
        };
        outcome(
            self.client
                .adjust_stock(&self.admin, product, None, &adjustment)
                .await,
        )
    }
}

/// Shuts the local MariaDB down through the server itself (`mysqladmin shutdown`) and starts
/// it again with `mysqld_safe`, detached (the init script cannot: its stop and its readiness
/// wait need credentials this machine does not have, and it kills what it started when that
/// wait times out); or says why this machine's database cannot be restarted from here.
fn restart_mariadb(admin_url: &str) -> Result<Duration, String> {
    let url = url::Url::parse(admin_url).map_err(|e| e.to_string())?;
    let host = url.host_str().unwrap_or_default().to_owned();
    if !["127.0.0.1", "localhost"].contains(&host.as_str()) {
        return Err(format!("the database at {host} is not on this machine"));
    }
    let safe = std::path::Path::new("/usr/bin/mysqld_safe");
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    if !safe.exists() || !root {
        return Err("it needs mysqld_safe and root to start the server again".to_owned());
    }
    let port = url.port().unwrap_or(3306);
    let started = Instant::now();
    let down = std::process::Command::new("mysqladmin")
        .args([
            "-h",
            &host,
            "-P",
            &port.to_string(),
            "-u",
            url.username(),
            "shutdown",
        ])
        .output()
        .map_err(|e| e.to_string())?;
    if !down.status.success() {
        return Err(format!("mysqladmin shutdown: {down:?}"));
    }
    let answers = || std::net::TcpStream::connect((host.as_str(), port)).is_ok();
    // The port closes as the shutdown begins; the server is gone when its pid file is.
    let pid_file = std::path::Path::new("/run/mysqld/mysqld.pid");
    while answers() || pid_file.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "MariaDB did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Detached, so the server outlives this test.
    std::process::Command::new("setsid")
        .arg("-f")
        .arg(safe)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map_err(|e| e.to_string())?;
    while !answers() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "MariaDB did not come back after a restart"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(started.elapsed())
}

/// The catalog process, SIGKILLed when dropped, so a failing test leaves none behind.
struct Catalog(std::process::Child);

impl Drop for Catalog {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(stack: &Stack) -> Catalog {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_shopmesh-catalog"));
    Catalog(
        stack
            .spawn_one(bin.parent().unwrap(), Service::Catalog, Output::Null)
            .unwrap(),
    )
}

async fn ready(stack: &Stack) {
    let url = format!("{}/health/ready", stack.url(Service::Catalog));
    let started = Instant::now();
    while !reqwest::get(&url).await.is_ok_and(|r| r.status() == 200) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "catalog not ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_catalog_never_oversells_through_kills_a_cut_link_and_a_database_restart() {
    let stack = test_stack()
        .set_for(Service::Catalog, "RESERVATION_TTL_SECS", "1")
        .set_for(Service::Catalog, "RESERVATION_SWEEP_MS", "100")
        .set_for(Service::Catalog, "DB_POOL_SIZE", "16");
    let jwks = serve_jwks(&stack).await;
    let url = stack.database_url(Service::Catalog).unwrap().unwrap();
    let (database, _) = reroute(&url, "127.0.0.1:1");
    let link = TcpProxy::start(&database).await;
    let (_, via_link) = reroute(&url, &link.addr.to_string());
    let stack = stack
        .set_for(
            Service::Catalog,
            "AUTH_JWKS_URL",
            format!("{}/.well-known/jwks.json", jwks.base_url),
        )
        .set_for(Service::Catalog, "DATABASE_URL", via_link);
    let mut child = spawn(&stack);
    ready(&stack).await;
    let client = CatalogClient::new(stack.url(Service::Catalog));
    let admin = token(&stack, 4, Role::Admin);
    let mut products = Products {
        hot: Vec::new(),
        cold: Vec::new(),
    };
    for i in 0..105 {
        let p = client
            .create_product(&admin, None, &input(&unique("SKU"), 100, "EUR"))
            .await
            .unwrap();
        let units = if i < 5 { 10 } else { 3 };
        client
            .adjust_stock(&admin, p.id, None, &adjustment(units))
            .await
            .unwrap();
        if i < 5 {
            products.hot.push(p.id)
        } else {
            products.cold.push(p.id)
        }
    }
    let pool = sqlx::MySqlPool::connect(&url).await.unwrap();
    let http = Arc::new(OverHttp {
        client: client.clone(),
        admin,
        orders: service_token(&stack, "orders"),
    });

    let length = Duration::from_secs(20);
    let workload =
        tokio::spawn(async move { checker::run(http, pool, &products, 32, length).await });
    let (mut kills, started) = (0, tokio::time::Instant::now());
    let mut database = "not restarted".to_owned();
    for (at, what) in [(3, "kill"), (6, "cut"), (10, "restart"), (15, "kill")] {
        tokio::time::sleep_until(started + Duration::from_secs(at)).await;
        if what == "kill" {
            drop(child);
            kills += 1;
            child = spawn(&stack);
        } else if what == "cut" {
            link.cut();
            tokio::time::sleep(Duration::from_secs(2)).await;
            link.restore();
        } else {
            let admin = shopmesh_testkit::mysql_admin_url();
            database = match tokio::task::spawn_blocking(move || restart_mariadb(&admin))
                .await
                .unwrap()
            {
                Ok(took) => format!("MariaDB restarted once (down and back in {took:.1?})"),
                Err(why) => format!("MariaDB not restarted: {why}"),
            };
        }
    }
    let history = workload.await.unwrap();
    ready(&stack).await;
    let pool = sqlx::MySqlPool::connect(&url).await.unwrap();
    let found = checker::violations(&pool, &history).await;
    let metrics = reqwest::get(format!("{}/metrics", stack.url(Service::Catalog)))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let retried = metrics
        .lines()
        .find(|l| l.starts_with("catalog_conflicts_retried_total"))
        .unwrap_or("catalog_conflicts_retried_total 0 (since the last restart)");
    println!(
        "never-oversell: {}; catalog killed {kills} times, database link cut once, {database}; {retried}",
        checker::report(&history)
    );
    assert!(found.is_empty(), "oversold:\n{}", found.join("\n"));
    let done = history
        .calls
        .iter()
        .filter(|((k, o), _)| *k == "commit" && *o == "done")
        .count();
    assert!(
        done > 0,
        "no reservation was committed: {}",
        checker::report(&history)
    );
    drop(child);
    jwks.stop().await;
    remove_names(&stack.names, 0).await;
}
