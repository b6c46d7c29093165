//! `cargo xtask up`: runs the four services as child processes against the infrastructure named
//! in `.env` / the environment. It checks every dependency first (and says how to start any that
//! is unreachable), prefixes each service's logs with its name, waits until each is ready,
//! prints the URLs, and on Ctrl-C (or SIGTERM) stops them all gracefully.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use shopmesh_stack::{Names, Output, Ports, Stack};

use crate::infra::{self, Dependency, addr_of};

/// Builds the service binaries (and `extra` packages), in release mode when `release`.
///
/// A debug build selects the whole workspace, as `cargo test --workspace` does: cargo resolves
/// features over the packages selected, so building only the services would compile other
/// copies of the crates they share and rebuild them after every test run.
pub(crate) fn build_services(release: bool, extra: &[&str]) -> Result<()> {
    let mut cmd = crate::cargo();
    // Not quiet: a first build takes minutes, and its progress is the only sign of life.
    cmd.args(["build", "--bins"]);
    if release {
        cmd.arg("--release");
        // Every service the Stack declares (each binary is named like its package).
        let services = shopmesh_stack::Service::ALL.iter().map(|s| s.package());
        for package in services.chain(extra.iter().copied()) {
            cmd.args(["-p", package]);
        }
    } else {
        cmd.arg("--workspace");
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

/// `host:port` of the Redis `env` configures (`REDIS_URL`, else `REDIS_HOST`/`REDIS_PORT`).
pub fn redis_addr(env: &BTreeMap<String, String>) -> String {
    match env.get("REDIS_URL").filter(|v| !v.is_empty()) {
        Some(url) => addr_of(url),
        None => format!(
            "{}:{}",
            get(env, "REDIS_HOST", "127.0.0.1"),
            get(env, "REDIS_PORT", "6379")
        ),
    }
}

fn dependencies(env: &BTreeMap<String, String>) -> Vec<Dependency> {
    let mysql = match env.get("DATABASE_URL").filter(|v| !v.is_empty()) {
        Some(url) => addr_of(url),
        None => format!(
            "{}:{}",
            get(env, "DB_HOST", "127.0.0.1"),
            get(env, "DB_PORT", "3306")
        ),
    };
    let redis = redis_addr(env);
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
            addr: addr_of(get(
                env,
                "RABBITMQ_URL",
                "amqp://guest:guest@127.0.0.1:5672/%2f",
            )),
            how_to_start: "docker compose up -d rabbitmq   (or: rabbitmq-server -detached)",
            local_start: None,
        },
        Dependency {
            name: "MongoDB",
            addr: addr_of(get(env, "MONGO_URL", "mongodb://127.0.0.1:27017")),
            how_to_start: "docker compose up -d mongo   (or point MONGO_URL at a local address, or unset it: up then starts its stand-in)",
            local_start: None,
        },
    ]
}

/// The platform `up` runs: the documented ports and names, except where the environment sets
/// the notifications ports or a name.
pub(crate) fn stack(env: BTreeMap<String, String>) -> Result<Stack> {
    let port = |key: &str, default: u16| -> Result<u16> {
        get(&env, key, &default.to_string())
            .parse()
            .with_context(|| format!("{key} is not a port"))
    };
    let ports = Ports {
        notifications_http: port("HTTP_PORT", Ports::DEFAULT.notifications_http)?,
        notifications_grpc: port("GRPC_PORT", Ports::DEFAULT.notifications_grpc)?,
        ..Ports::DEFAULT
    };
    let names = Names::from_env(&env);
    Ok(Stack::new(env, ports, names))
}

/// Requests per minute per client `up` allows when `RATE_LIMIT_MAX` is not set: enough for a
/// developer clicking through GraphiQL and Swagger UI. The service's own default (10) is the
/// strict production value.
pub const DEV_RATE_LIMIT: &str = "600";

/// Where development signing keys are generated on first start (ignored by git).
pub const DEV_KEY_DIR: &str = "target/dev-keys";

/// The development identity, unless the environment sets its own: the users service signs
/// with a key it generates into [`DEV_KEY_DIR`], the demo accounts (password
/// `shopmesh-demo`) are seeded, and the orders service has a client secret.
pub fn development_identity(root: &Path, env: &mut BTreeMap<String, String>) {
    let has_key = [
        "AUTH_SIGNING_KEY",
        "AUTH_SIGNING_KEY_FILE",
        "AUTH_DEV_KEY_DIR",
    ]
    .iter()
    .any(|k| !get(env, k, "").is_empty());
    if !has_key {
        env.insert(
            "AUTH_DEV_KEY_DIR".into(),
            root.join(DEV_KEY_DIR).display().to_string(),
        );
    }
    if get(env, "DEMO_SEED", "").is_empty() {
        env.insert("DEMO_SEED".into(), "true".into());
    }
    if get(env, "SERVICE_CLIENTS", "").is_empty() {
        env.insert(
            "SERVICE_CLIENTS".into(),
            format!("orders={DEV_SERVICE_CLIENT_SECRET}"),
        );
    }
}

/// The orders service's client secret in development (`SERVICE_CLIENTS`), as in
/// docker-compose; production sets its own from a secret.
pub const DEV_SERVICE_CLIENT_SECRET: &str = "development-only-orders-client-secret";

/// Where `up` keeps the MongoDB stand-in's data between runs.
pub const STANDIN_DATA: &str = "target/mongo-standin";

/// Starts the MongoDB stand-in when `--mongo-standin` asks for it, or when nothing answers at a
/// local MongoDB address (then on that address): a newcomer needs no MongoDB to start.
fn mongo_standin(
    root: &Path,
    env: &mut BTreeMap<String, String>,
    args: &[String],
) -> Result<Option<infra::MongoStandin>> {
    let url = get(env, "MONGO_URL", "mongodb://127.0.0.1:27017").to_owned();
    let addr = addr_of(&url);
    let forced = args.iter().any(|a| a == "--mongo-standin");
    let local_port = addr
        .rsplit_once(':')
        .filter(|(host, _)| ["127.0.0.1", "localhost", "[::1]"].contains(host))
        .and_then(|(_, port)| port.parse::<u16>().ok());
    let down = !infra::reachable(&addr, Duration::from_secs(1));
    let start = forced || (down && local_port.is_some());
    if !start {
        return Ok(None);
    }
    let ephemeral = args.iter().any(|a| a == "--ephemeral");
    let data = root.join(STANDIN_DATA);
    let storage = if ephemeral {
        infra::StandinStorage::Memory
    } else {
        infra::StandinStorage::Dir(&data)
    };
    let port = local_port.filter(|_| down);
    let (standin, url) = infra::start_mongo_standin(root, port, storage)?;
    let kept = if ephemeral {
        "in memory: --ephemeral forgets them when up stops".to_owned()
    } else {
        format!("in {STANDIN_DATA}, kept between runs (--ephemeral for a throwaway run)")
    };
    println!(
        "up: no MongoDB at {addr}, so up started its embedded MongoDB stand-in (SecantusDB, for development only) at {url}; notifications are stored {kept}"
    );
    env.insert("MONGO_URL".into(), url);
    Ok(Some(standin))
}

/// Runs `cargo xtask up [--ephemeral] [--mongo-standin] [--no-build]`.
pub fn run(root: &Path, args: &[String]) -> Result<()> {
    let mut env = environment(root);
    if get(&env, "RATE_LIMIT_MAX", "").is_empty() {
        println!(
            "up: RATE_LIMIT_MAX is not set: allowing {DEV_RATE_LIMIT} requests a minute per client for development (the production default is 10)"
        );
        env.insert("RATE_LIMIT_MAX".into(), DEV_RATE_LIMIT.into());
    }
    if get(&env, "BIND_ADDRESS", "").is_empty() {
        // A developer's services answer this machine only, unless told otherwise.
        env.insert("BIND_ADDRESS".into(), "127.0.0.1".into());
    }
    development_identity(root, &mut env);
    let standin = mongo_standin(root, &mut env, args)?;
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

    let stack = stack(env)?;
    stack.check_ports_free()?;
    if !args.iter().any(|a| a == "--no-build") {
        println!("up: building the services");
        build_services(false, &[])?;
    }

    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .context("installing the Ctrl-C handler")?;

    let mut processes = stack.spawn(
        &root.join("target/debug"),
        Output::Prefixed,
        Duration::from_secs(90),
    )?;
    let grpc = stack.ports.notifications_grpc;
    let traces = match get(&stack.env, "OTEL_EXPORTER_OTLP_ENDPOINT", "") {
        endpoint if !endpoint.is_empty() => format!("OTLP to {endpoint}"),
        _ => "off (set OTEL_EXPORTER_OTLP_ENDPOINT, e.g. http://127.0.0.1:4318)".to_owned(),
    };
    println!(
        "\nup: all services ready\n  the shop            http://localhost:3000/  (staff: admin@example.com / shopmesh-demo, then Admin)\n  developer index     http://localhost:3000/dev\n  GraphiQL            http://localhost:3000/graphql\n  REST + Swagger UI   http://localhost:3000/docs  (spec: /api/openapi.json)\n  gRPC                localhost:{grpc}  (grpcurl -plaintext localhost:{grpc} list)\n  RabbitMQ UI         http://localhost:15672  (where the management plugin is enabled)\n  metrics             http://localhost:3000/metrics, :3001, :3002, :3003\n  traces              {traces}\nPress Ctrl-C to stop.\n"
    );
    let mut result = Ok(());
    while !stop.load(Ordering::SeqCst) {
        if let Some((name, status)) = processes.exited() {
            result = Err(anyhow::anyhow!("{name} exited unexpectedly ({status})"));
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    if let Err(e) = &result {
        eprintln!("up: {e:#}");
    }
    println!("up: stopping the services");
    for (name, clean) in processes.stop(Duration::from_secs(15)) {
        let how = if clean {
            "cleanly"
        } else {
            "killed after 15 s"
        };
        println!("up: {name} stopped ({how})");
    }
    drop(standin);
    result
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
