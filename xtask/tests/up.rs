//! `cargo xtask up` end to end: it refuses to start with a clear message when infrastructure is
//! missing, and with infrastructure present it starts the four services, serves, and stops them
//! gracefully on Ctrl-C.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn xtask() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    for key in ["DATABASE_URL", "REDIS_URL", "DB_HOST", "REDIS_HOST"] {
        cmd.env_remove(key);
    }
    cmd
}

#[test]
fn unreachable_dependencies_are_named_with_how_to_start_them() {
    let out = xtask()
        .args(["up", "--no-build"])
        .env("DB_PORT", "1")
        .env("REDIS_PORT", "1")
        .env("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:1/%2f")
        .env("MONGO_URL", "mongodb://mongo.invalid:27017")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("4 dependencies are unreachable"),
        "{stderr}"
    );
    for (name, addr) in [
        ("MySQL/MariaDB", "127.0.0.1:1"),
        ("Redis", "127.0.0.1:1"),
        ("RabbitMQ", "127.0.0.1:1"),
        ("MongoDB", "mongo.invalid:27017"),
    ] {
        assert!(
            stderr.contains(&format!("{name} is not reachable at {addr}")),
            "{name} in {stderr}"
        );
    }
    assert!(
        stderr.contains("docker compose up -d mysql")
            && stderr.contains("up then starts its stand-in"),
        "{stderr}"
    );
}

/// A running `cargo xtask up`, its output collected line by line.
struct Up {
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
    log: Vec<String>,
}

impl Up {
    /// Starts `xtask up --no-build` (plus `args`) against this machine's infrastructure, with
    /// MongoDB expected at `mongo_port` on 127.0.0.1, and waits until it says all are ready.
    fn start(args: &[&str], mongo_port: u16) -> Self {
        let mut child = xtask()
            .args(["up", "--no-build"])
            .args(args)
            .env_remove("RATE_LIMIT_MAX")
            .env("RUST_LOG", "warn")
            .env("DB_HOST", "127.0.0.1")
            .env("DB_PORT", "3306")
            .env("DB_USER", "root")
            .env("DB_PASSWORD", "")
            .env("REDIS_PORT", "6379")
            .env("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
            .env(
                "MONGO_URL",
                format!("mongodb://127.0.0.1:{mongo_port}/?directConnection=true"),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        let mut up = Self {
            child,
            lines,
            log: Vec::new(),
        };
        let started = Instant::now();
        while !up.said("all services ready") {
            match up.lines.recv_timeout(Duration::from_secs(1)) {
                Ok(line) => up.log.push(line),
                Err(_)
                    if started.elapsed() < Duration::from_secs(120)
                        && up.child.try_wait().unwrap().is_none() => {}
                Err(_) => {
                    let _ = up.child.kill();
                    panic!("xtask up did not get ready:\n{}", up.log.join("\n"));
                }
            }
        }
        up
    }

    fn said(&self, text: &str) -> bool {
        self.log.iter().any(|l| l.contains(text))
    }
}

/// A failed assertion must not leave `up` and its services running (holding the ports and
/// the stand-in's data for every later run): Ctrl-C it, and kill it if it does not stop.
impl Drop for Up {
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        let _ = Command::new("kill")
            .arg("-INT")
            .arg(self.child.id().to_string())
            .status();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
    }
}

impl Up {
    /// Ctrl-C, then waits for a clean exit with every service stopped gracefully.
    fn stop(mut self) {
        Command::new("kill")
            .arg("-INT")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        let status = self.child.wait().unwrap();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(500)) {
            self.log.push(line);
        }
        let log = self.log.join("\n");
        assert!(status.success(), "clean exit:\n{log}");
        for name in shopmesh_stack::Service::ALL.iter().map(|s| s.name()) {
            assert!(
                self.said(&format!("up: {name} stopped")),
                "{name} stopped gracefully:\n{log}"
            );
        }
    }
}

/// The body of an answer.
fn body_of(response: String) -> String {
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or(response)
}

/// Logs in at the gateway `up` runs as the seeded demo user Alice; her access token.
fn log_in_as_alice() -> String {
    let body = r#"{"email":"alice@example.com","password":"shopmesh-demo"}"#;
    let answer = body_of(ureq_post("127.0.0.1:3000", "/api/auth/token", body, None));
    let v: serde_json::Value = serde_json::from_str(&answer).unwrap_or_default();
    v["accessToken"]
        .as_str()
        .unwrap_or_else(|| panic!("the demo user logs in: {answer}"))
        .to_owned()
}

/// The body of a GraphQL answer from the gateway `up` runs, asked as Alice.
fn graphql(query: &str) -> String {
    let body = serde_json::json!({ "query": query }).to_string();
    let token = log_in_as_alice();
    body_of(ureq_post("127.0.0.1:3000", "/graphql", &body, Some(&token)))
}

/// The IPv4 address a socket listening on `port` is bound to, from `/proc/net/tcp`.
fn listening_address(port: u16) -> Option<String> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (local, state) = (fields.get(1)?, fields.get(3)?);
        let (ip, p) = local.split_once(':')?;
        // 0A: LISTEN. The address is little-endian hex.
        if *state != "0A" || u16::from_str_radix(p, 16).ok()? != port {
            return None;
        }
        let ip = u32::from_str_radix(ip, 16).ok()?;
        Some(std::net::Ipv4Addr::from(ip.swap_bytes()).to_string())
    })
}

/// With no flags and no MongoDB, `up` starts the MongoDB stand-in by itself, says so, and keeps
/// its data between runs (`--ephemeral` starts empty); the gateway allows a developer's pace
/// (600 requests a minute) unless RATE_LIMIT_MAX says otherwise; Ctrl-C stops everything
/// gracefully.
#[test]
fn up_starts_everything_without_mongodb_and_keeps_notifications_between_runs() {
    let mongo_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let up = Up::start(&[], mongo_port);
    let log = up.log.join("\n");
    for name in shopmesh_stack::Service::ALL.iter().map(|s| s.name()) {
        assert!(
            up.said(&format!("✓ {name} ready")),
            "{name} readiness shown:\n{log}"
        );
    }
    assert!(
        up.said("started its embedded MongoDB stand-in") && up.said("kept between runs"),
        "{log}"
    );
    // A developer tool listens on loopback only: every port of every service.
    for (port, _) in shopmesh_stack::Ports::DEFAULT.all() {
        assert_eq!(
            listening_address(port).as_deref(),
            Some("127.0.0.1"),
            "port {port}"
        );
    }
    let response = ureq_post(
        "127.0.0.1:3000",
        "/graphql",
        r#"{"query":"{ userName(id: \"1\") }"}"#,
        Some(&log_in_as_alice()),
    );
    assert!(response.contains("Alice Johnson"), "{response}");
    // The demo catalog is there to browse (it is added just after the catalog migrates).
    let seeded = Instant::now();
    let products = loop {
        let products = ureq_post(
            "127.0.0.1:3000",
            "/graphql",
            r#"{"query":"{ productBySku(sku: \"MUG-001\") { name stock { available } } }"}"#,
            None,
        );
        if products.contains("Mesh mug") || seeded.elapsed() > Duration::from_secs(15) {
            break products;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(products.contains("Mesh mug"), "{products}");
    assert!(
        response
            .to_ascii_lowercase()
            .contains("ratelimit-policy: \"default\";q=3600;w=60"),
        "a logged-in developer's limit (6 times the anonymous one): {response}"
    );
    let anonymous = ureq_post(
        "127.0.0.1:3000",
        "/graphql",
        r#"{"query":"{ userName(id: \"1\") }"}"#,
        None,
    );
    assert!(anonymous.contains("UNAUTHENTICATED"), "{anonymous}");
    assert!(
        anonymous
            .to_ascii_lowercase()
            .contains("ratelimit-policy: \"default\";q=600;w=60"),
        "a developer's rate limit: {anonymous}"
    );
    let placed = graphql(
        r#"mutation { createOrder(input: {userId: "1", productId: "4242", quantity: 1}) { id } }"#,
    );
    let order: serde_json::Value = serde_json::from_str(&placed).unwrap();
    let id = order["data"]["createOrder"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{placed}"))
        .to_owned();
    let notifications = || {
        let body = graphql(&format!(
            r#"{{ order(id: "{id}") {{ notifications {{ message }} }} }}"#
        ));
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["data"]["order"]["notifications"]
            .as_array()
            .map_or(0, Vec::len)
    };
    let waited = Instant::now();
    while notifications() == 0 {
        assert!(
            waited.elapsed() < Duration::from_secs(60),
            "order {id} got no notification"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    up.stop();

    let again = Up::start(&[], mongo_port);
    assert_eq!(notifications(), 1, "the notification survived the restart");
    again.stop();

    let throwaway = Up::start(&["--ephemeral"], mongo_port);
    assert!(
        throwaway.said("--ephemeral forgets them"),
        "{}",
        throwaway.log.join("\n")
    );
    assert_eq!(
        notifications(),
        0,
        "an ephemeral run starts with no notifications"
    );
    throwaway.stop();
}

/// A minimal HTTP POST, to keep this test free of HTTP client dependencies.
fn ureq_post(addr: &str, path: &str, body: &str, token: Option<&str>) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(s, "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}
