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
        .env("MONGO_URL", "mongodb://127.0.0.1:1")
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
        ("MongoDB", "127.0.0.1:1"),
    ] {
        assert!(
            stderr.contains(&format!("{name} is not reachable at {addr}")),
            "{name} in {stderr}"
        );
    }
    assert!(
        stderr.contains("docker compose up -d mysql") && stderr.contains("--mongo-standin"),
        "{stderr}"
    );
}

#[test]
fn up_starts_every_service_and_stops_them_on_ctrl_c() {
    let mut child = xtask()
        .args(["up", "--no-build", "--mongo-standin"])
        .env("RUST_LOG", "warn")
        .env("DB_HOST", "127.0.0.1")
        .env("DB_PORT", "3306")
        .env("DB_USER", "root")
        .env("DB_PASSWORD", "")
        .env("REDIS_PORT", "6379")
        .env("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
        .env("RATE_LIMIT_MAX", "1000")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
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
    let mut log = Vec::new();
    let started = Instant::now();
    while !log
        .iter()
        .any(|l: &String| l.contains("all services ready"))
    {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(line) => log.push(line),
            Err(_)
                if started.elapsed() < Duration::from_secs(120)
                    && child.try_wait().unwrap().is_none() => {}
            Err(_) => {
                let _ = child.kill();
                panic!("xtask up did not get ready:\n{}", log.join("\n"));
            }
        }
    }
    for name in ["users", "orders", "notifications", "gateway"] {
        assert!(
            log.iter().any(|l| l.contains(&format!("✓ {name} ready"))),
            "{name} readiness shown:\n{}",
            log.join("\n")
        );
    }
    let body = ureq_post(
        "127.0.0.1:3000",
        "/graphql",
        r#"{"query":"{ userName(id: \"1\") }"}"#,
    );
    assert!(body.contains("Alice Johnson"), "{body}");

    Command::new("kill")
        .arg("-INT")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) {
        log.push(line);
    }
    assert!(status.success(), "clean exit:\n{}", log.join("\n"));
    for name in ["users", "orders", "notifications", "gateway"] {
        assert!(
            log.iter()
                .any(|l| l.contains(&format!("up: {name} stopped"))),
            "{name} stopped gracefully:\n{}",
            log.join("\n")
        );
    }
}

/// A minimal HTTP POST, to keep this test free of HTTP client dependencies.
fn ureq_post(addr: &str, path: &str, body: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}
