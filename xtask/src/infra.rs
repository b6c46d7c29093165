//! Finds (and where it can, starts) the infrastructure the tests and `xtask up` need:
//! MySQL/MariaDB, Redis, RabbitMQ and a MongoDB wire-protocol server.

use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

/// One dependency: where it is expected and how a person starts it.
pub struct Dependency {
    /// Human name.
    pub name: &'static str,
    /// `host:port` it is expected at.
    pub addr: String,
    /// What to do when it is not there.
    pub how_to_start: &'static str,
    /// A command that starts it on a machine set up like the project's CI machines.
    pub local_start: Option<&'static [&'static str]>,
}

/// Whether something accepts TCP connections at `addr` within `timeout`.
pub fn reachable(addr: &str, timeout: Duration) -> bool {
    let Ok(addrs) = addr.to_socket_addrs() else {
        return false;
    };
    addrs
        .into_iter()
        .any(|a: SocketAddr| TcpStream::connect_timeout(&a, timeout).is_ok())
}

fn wait_reachable(addr: &str, within: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < within {
        if reachable(addr, Duration::from_millis(300)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

fn env_or(key: &str, default: &str) -> String {
    std::env::var(key)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// The SQL, cache and broker dependencies, addressed from the environment with local defaults.
pub fn core_dependencies() -> Vec<Dependency> {
    vec![
        Dependency {
            name: "MySQL/MariaDB",
            addr: format!(
                "{}:{}",
                env_or("DB_HOST", "127.0.0.1"),
                env_or("DB_PORT", "3306")
            ),
            how_to_start: "docker compose up -d mysql   (or: start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd)",
            local_start: Some(&[
                "start-stop-daemon",
                "--start",
                "--oknodo",
                "--background",
                "--exec",
                "/usr/sbin/mariadbd",
            ]),
        },
        Dependency {
            name: "Redis",
            addr: format!(
                "{}:{}",
                env_or("REDIS_HOST", "127.0.0.1"),
                env_or("REDIS_PORT", "6379")
            ),
            how_to_start: "docker compose up -d redis   (or: redis-server --daemonize yes --port 6379)",
            local_start: Some(&[
                "redis-server",
                "--daemonize",
                "yes",
                "--bind",
                "127.0.0.1",
                "--port",
                "6379",
                "--save",
                "",
                "--appendonly",
                "no",
            ]),
        },
        Dependency {
            name: "RabbitMQ",
            addr: addr_of(&env_or(
                "RABBITMQ_URL",
                "amqp://guest:guest@127.0.0.1:5672/%2f",
            )),
            how_to_start: "docker compose up -d rabbitmq   (or: rabbitmq-server -detached)",
            local_start: Some(&["rabbitmq-server", "-detached"]),
        },
    ]
}

/// `host:port` of a dependency's URL (the stack's one URL parser); an unparsable URL is
/// returned as it is, so the reachability check names it.
pub fn addr_of(url: &str) -> String {
    shopmesh_stack::authority(url).unwrap_or_else(|_| url.to_owned())
}

/// Checks `dep`, trying its local start command once when it is down.
pub fn ensure(dep: &Dependency, try_start: bool) -> Result<()> {
    if reachable(&dep.addr, Duration::from_secs(1)) {
        println!("infra: {} reachable at {}", dep.name, dep.addr);
        return Ok(());
    }
    if let Some(cmd) = dep
        .local_start
        .filter(|cmd| try_start && (which(cmd[0]) || Path::new(cmd[0]).exists()))
    {
        println!(
            "infra: {} not reachable at {}; starting it with `{}`",
            dep.name,
            dep.addr,
            cmd.join(" ")
        );
        let _ = Command::new(cmd[0])
            .args(&cmd[1..])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if wait_reachable(&dep.addr, Duration::from_secs(60)) {
            println!("infra: {} reachable at {}", dep.name, dep.addr);
            return Ok(());
        }
    }
    bail!(
        "{} is not reachable at {} (tried a TCP connection).\n  start it with: {}\n  or point the service at it through the environment / .env",
        dep.name,
        dep.addr,
        dep.how_to_start
    )
}

fn which(cmd: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|p| p.join(cmd).exists()))
        .unwrap_or(false)
}

/// A free loopback TCP port.
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Infrastructure prepared for a test run; stops what it started when dropped.
pub struct TestInfra {
    /// Environment variables the tests read.
    pub vars: Vec<(String, String)>,
    // Held for its Drop: the stand-in stops with the test run.
    _mongo: Option<MongoStandin>,
}

/// A running MongoDB stand-in; stopped when dropped (SIGTERM, so it closes its files, then
/// SIGKILL after 10 s).
pub struct MongoStandin(Child);

impl Drop for MongoStandin {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Where a stand-in keeps its data.
pub enum StandinStorage<'a> {
    /// A temporary directory removed when it stops (tests, `up --ephemeral`).
    Memory,
    /// A directory kept between runs.
    Dir(&'a Path),
}

/// Starts a SecantusDB MongoDB wire-protocol server on `127.0.0.1:port` (a free port when
/// `None`), keeping its data as `storage` says; returns it with its connection URL.
pub fn start_mongo_standin(
    root: &Path,
    port: Option<u16>,
    storage: StandinStorage<'_>,
) -> Result<(MongoStandin, String)> {
    let bin = crate::tools::secantusd(root)?;
    let port = match port {
        Some(p) => p,
        None => free_port()?,
    };
    let log_dir = root.join("target/xtask");
    std::fs::create_dir_all(&log_dir)?;
    let log = std::fs::File::create(log_dir.join("mongo-standin.log"))?;
    let storage = match storage {
        StandinStorage::Memory => ":memory:".to_owned(),
        StandinStorage::Dir(dir) => {
            std::fs::create_dir_all(dir)?;
            dir.display().to_string()
        }
    };
    let child = Command::new(bin)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args([
            "--storage-path",
            &storage,
            "--standalone",
            "--log-level",
            "WARNING",
        ])
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    let standin = MongoStandin(child);
    let addr = format!("127.0.0.1:{port}");
    if !wait_reachable(&addr, Duration::from_secs(30)) {
        bail!(
            "the MongoDB stand-in (SecantusDB) did not start on {addr}; see target/xtask/mongo-standin.log"
        );
    }
    println!("infra: MongoDB stand-in (SecantusDB) listening on {addr}");
    Ok((standin, format!("mongodb://{addr}/?directConnection=true")))
}

/// Ensures MySQL, Redis and RabbitMQ are up and provides a MongoDB endpoint: `TEST_MONGO_URL`
/// when it is set and reachable, otherwise a SecantusDB stand-in started for this run.
pub fn ensure_all(root: &Path) -> Result<TestInfra> {
    let mut failures = Vec::new();
    for dep in core_dependencies() {
        if let Err(e) = ensure(&dep, true) {
            failures.push(format!("{e:#}"));
        }
    }
    if !failures.is_empty() {
        bail!("infrastructure missing:\n{}", failures.join("\n"));
    }
    let mut vars = Vec::new();
    let mut mongo = None;
    match std::env::var("TEST_MONGO_URL") {
        Ok(url) if reachable(&addr_of(&url), Duration::from_secs(1)) => {
            println!("infra: MongoDB reachable at {url}");
            vars.push(("TEST_MONGO_URL".to_owned(), url));
        }
        _ => {
            let (standin, url) = start_mongo_standin(root, None, StandinStorage::Memory)?;
            mongo = Some(standin);
            vars.push(("TEST_MONGO_URL".to_owned(), url));
        }
    }
    Ok(TestInfra {
        vars,
        _mongo: mongo,
    })
}
