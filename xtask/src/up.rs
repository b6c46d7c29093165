//! `cargo xtask up`: runs the four services as child processes against the infrastructure named
//! in `.env` / the environment. It checks every dependency first (and says how to start any that
//! is unreachable), prefixes each service's logs with its name, waits until each is ready,
//! prints the URLs, and on Ctrl-C (or SIGTERM) stops them all gracefully.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::infra::{self, Dependency};

/// A service `up` runs: its binary, readiness port and extra environment.
struct ServiceSpec {
    name: &'static str,
    ready_port: &'static str,
    default_port: u16,
    env: &'static [(&'static str, &'static str)],
}

const SERVICES: [ServiceSpec; 4] = [
    ServiceSpec {
        name: "users",
        ready_port: "PORT",
        default_port: 3001,
        env: &[("PORT", "3001"), ("DB_NAME", "users_db")],
    },
    ServiceSpec {
        name: "orders",
        ready_port: "PORT",
        default_port: 3002,
        env: &[("PORT", "3002"), ("DB_NAME", "orders_db")],
    },
    ServiceSpec {
        name: "notifications",
        ready_port: "HTTP_PORT",
        default_port: 3003,
        env: &[],
    },
    ServiceSpec {
        name: "gateway",
        ready_port: "PORT",
        default_port: 3000,
        env: &[("PORT", "3000")],
    },
];

/// The service packages, each with a binary named like the package.
pub(crate) const SERVICE_PACKAGES: [&str; 4] = [
    "shopmesh-users",
    "shopmesh-orders",
    "shopmesh-notifications",
    "shopmesh-gateway",
];

/// Builds the service binaries (and `extra` packages), in release mode when `release`.
pub(crate) fn build_services(release: bool, extra: &[&str]) -> Result<()> {
    let mut cmd = crate::cargo();
    cmd.args(["build", "--quiet", "--bins"]);
    if release {
        cmd.arg("--release");
    }
    for package in SERVICE_PACKAGES.iter().chain(extra) {
        cmd.args(["-p", package]);
    }
    crate::run(&mut cmd)
}

/// Reads `KEY=VALUE` lines (comments and blanks skipped, optional quotes removed).
pub fn parse_dotenv(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.strip_prefix("export ").unwrap_or(l).split_once('='))
        .map(|(k, v)| {
            (
                k.trim().to_owned(),
                v.trim().trim_matches('"').trim_matches('\'').to_owned(),
            )
        })
        .collect()
}

/// The effective environment: `.env` values, overridden by the process environment.
pub(crate) fn environment(root: &Path) -> BTreeMap<String, String> {
    let mut env = std::fs::read_to_string(root.join(".env"))
        .map(|t| parse_dotenv(&t))
        .unwrap_or_default();
    for (k, v) in std::env::vars() {
        env.insert(k, v);
    }
    env
}

fn get<'a>(env: &'a BTreeMap<String, String>, key: &str, default: &'a str) -> &'a str {
    env.get(key)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .unwrap_or(default)
}

fn dependencies(env: &BTreeMap<String, String>) -> Vec<Dependency> {
    let mysql = match env.get("DATABASE_URL").filter(|v| !v.is_empty()) {
        Some(url) => infra::mongo_addr(url).replace(":27017", ":3306"),
        None => format!(
            "{}:{}",
            get(env, "DB_HOST", "127.0.0.1"),
            get(env, "DB_PORT", "3306")
        ),
    };
    let redis = match env.get("REDIS_URL").filter(|v| !v.is_empty()) {
        Some(url) => infra::mongo_addr(url).replace(":27017", ":6379"),
        None => format!(
            "{}:{}",
            get(env, "REDIS_HOST", "127.0.0.1"),
            get(env, "REDIS_PORT", "6379")
        ),
    };
    vec![
        Dependency {
            name: "MySQL/MariaDB",
            addr: mysql,
            how_to_start: "docker compose up -d mysql   (or start your MySQL/MariaDB and set DB_HOST/DB_PORT)",
            local_start: None,
        },
        Dependency {
            name: "Redis",
            addr: redis,
            how_to_start: "docker compose up -d redis   (or: redis-server --daemonize yes)",
            local_start: None,
        },
        Dependency {
            name: "RabbitMQ",
            addr: infra::amqp_addr(get(
                env,
                "RABBITMQ_URL",
                "amqp://guest:guest@127.0.0.1:5672/%2f",
            )),
            how_to_start: "docker compose up -d rabbitmq   (or: rabbitmq-server -detached)",
            local_start: None,
        },
        Dependency {
            name: "MongoDB",
            addr: infra::mongo_addr(get(env, "MONGO_URL", "mongodb://127.0.0.1:27017")),
            how_to_start: "docker compose up -d mongo   (or: cargo xtask up --mongo-standin)",
            local_start: None,
        },
    ]
}

/// Sends SIGTERM (graceful shutdown) to a child.
pub(crate) fn terminate(child: &Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
}

fn pump(name: &'static str, stream: impl std::io::Read + Send + 'static) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            println!("[{name:>13}] {line}");
        }
    });
}

/// Whether `127.0.0.1:port/health/ready` answers 200.
pub(crate) fn ready(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect_timeout(
        &([127, 0, 0, 1], port).into(),
        Duration::from_millis(500),
    ) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
    if s.write_all(b"GET /health/ready HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

/// Runs `cargo xtask up [--mongo-standin] [--no-build]`.
pub fn run(root: &Path, args: &[String]) -> Result<()> {
    let mut env = environment(root);
    let mut standin = None;
    if args.iter().any(|a| a == "--mongo-standin") {
        let (child, url) = infra::start_mongo_standin(root)?;
        env.insert("MONGO_URL".into(), url);
        standin = Some(child);
    }
    let missing: Vec<String> = dependencies(&env)
        .iter()
        .filter_map(|d| infra::ensure(d, false).err().map(|e| format!("  ✗ {e:#}")))
        .collect();
    if !missing.is_empty() {
        bail!(
            "cannot start: {} dependenc{} unreachable\n{}",
            missing.len(),
            if missing.len() == 1 {
                "y is"
            } else {
                "ies are"
            },
            missing.join("\n")
        );
    }

    if !args.iter().any(|a| a == "--no-build") {
        println!("up: building the services");
        build_services(false, &[])?;
    }

    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .context("installing the Ctrl-C handler")?;

    let mut children: Vec<(&'static str, Child)> = Vec::new();
    let result = start_all(root, &env, &stop, &mut children);
    if let Err(e) = &result {
        eprintln!("up: {e:#}");
    }
    println!("up: stopping {} services", children.len());
    for (_, child) in &children {
        terminate(child);
    }
    for (name, child) in &mut children {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    println!("up: {name} stopped ({status})");
                    break;
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100))
                }
                _ => {
                    let _ = child.kill();
                    println!("up: {name} killed after 15 s");
                    break;
                }
            }
        }
    }
    if let Some(mut m) = standin {
        let _ = m.kill();
        let _ = m.wait();
    }
    result
}

fn start_all(
    root: &Path,
    env: &BTreeMap<String, String>,
    stop: &AtomicBool,
    children: &mut Vec<(&'static str, Child)>,
) -> Result<()> {
    for spec in &SERVICES {
        let binary = root
            .join("target/debug")
            .join(format!("shopmesh-{}", spec.name));
        let mut cmd = Command::new(&binary);
        cmd.env_clear()
            .envs(env)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in spec.env {
            if !env.contains_key(*k) || *k == "PORT" || *k == "DB_NAME" {
                cmd.env(k, v);
            }
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        pump(spec.name, child.stdout.take().context("stdout")?);
        pump(spec.name, child.stderr.take().context("stderr")?);
        children.push((spec.name, child));

        let port = env
            .get(spec.ready_port)
            .filter(|_| spec.ready_port != "PORT")
            .and_then(|p| p.parse().ok())
            .unwrap_or(spec.default_port);
        let started = Instant::now();
        loop {
            if ready(port) {
                println!(
                    "up: ✓ {} ready on :{port} after {:.1} s",
                    spec.name,
                    started.elapsed().as_secs_f64()
                );
                break;
            }
            if let Some((name, status)) = children
                .iter_mut()
                .find_map(|(n, c)| c.try_wait().ok().flatten().map(|s| (*n, s)))
            {
                bail!("{name} exited during start-up ({status}); see its log lines above");
            }
            if stop.load(Ordering::SeqCst) {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(90) {
                bail!("{} did not become ready on :{port} within 90 s", spec.name);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let grpc = get(env, "GRPC_PORT", "50051");
    let traces = match get(env, "OTEL_EXPORTER_OTLP_ENDPOINT", "") {
        endpoint if !endpoint.is_empty() => format!("OTLP to {endpoint}"),
        _ => "off (set OTEL_EXPORTER_OTLP_ENDPOINT, e.g. http://127.0.0.1:4318)".to_owned(),
    };
    println!(
        "\nup: all services ready\n  GraphQL playground  http://localhost:3000/graphql\n  REST + Swagger UI   http://localhost:3000/docs  (spec: /api/openapi.json)\n  gRPC                localhost:{grpc}  (grpcurl -plaintext localhost:{grpc} list)\n  RabbitMQ UI         http://localhost:15672\n  metrics             http://localhost:3000/metrics, :3001, :3002, :3003\n  traces              {traces}\nPress Ctrl-C to stop.\n"
    );
    while !stop.load(Ordering::SeqCst) {
        if let Some((name, status)) = children
            .iter_mut()
            .find_map(|(n, c)| c.try_wait().ok().flatten().map(|s| (*n, s)))
        {
            bail!("{name} exited unexpectedly ({status})");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotenv_parsing() {
        let env = parse_dotenv("# comment\n\nA=1\nexport B = \"two\"\nC=\nD='x=y'\n");
        assert_eq!(env["A"], "1");
        assert_eq!(env["B"], "two");
        assert_eq!(env["C"], "");
        assert_eq!(env["D"], "x=y");
        assert_eq!(env.len(), 4);
    }

    #[test]
    fn dependency_addresses_follow_the_environment() {
        let env: BTreeMap<String, String> = [
            ("DB_HOST", "db"),
            ("DB_PORT", "3307"),
            ("REDIS_URL", "redis://:pw@cache:6380/"),
            ("RABBITMQ_URL", "amqp://u:p@mq:5673/%2f"),
            ("MONGO_URL", "mongodb://mongo:27018"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let addrs: Vec<_> = dependencies(&env).into_iter().map(|d| d.addr).collect();
        assert_eq!(addrs, ["db:3307", "cache:6380", "mq:5673", "mongo:27018"]);
    }
}
