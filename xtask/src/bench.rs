//! `cargo xtask bench [--seconds N] [--runs N] [--data-size N]`: starts release builds of the
//! four services (and a bare poem baseline server) as separate processes on bench-only ports
//! and names (their databases dropped first), runs the load generator's suite against them
//! (HTTP through `wrk`, installed when missing), and adds each process's idle and peak RSS.
//! Then it measures the gateway's scenarios again with one and with two replicas of every
//! service. Prints tables and writes `bench/results/latest.json` with the machine and build,
//! then `summary.md` and `chart.svg` next to it. Not part of the test command.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use shopmesh_stack::{Output, Ports, Processes, Service, Stack, spawn_replicas};

use crate::platform::{stack, start};
use crate::{infra, up};

/// `VmRSS` and `VmHWM` (peak) of a process, in KiB.
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn wait_ready(name: &str, port: u16, child: &mut Child) -> Result<()> {
    let start = Instant::now();
    while !shopmesh_stack::ready(port) {
        if let Some(status) = child.try_wait()? {
            bail!("{name} exited during start-up ({status})");
        }
        if start.elapsed() > Duration::from_secs(60) {
            bail!("{name} not ready on :{port} after 60 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

/// Where the load generator's Redis proxy listens (the bench ports are 3100-3104, 3199).
const REDIS_PROXY_PORT: u16 = 3198;

/// The value after `flag` in `args`, or `default`.
fn arg(args: &[String], flag: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| default.into())
}

/// Output of `cmd args`, trimmed; empty when it cannot run.
fn output_of(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// The machine and the build the figures come from.
fn provenance(root: &Path) -> serde_json::Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("unknown")
        .trim()
        .to_owned();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: f64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let root = root.to_string_lossy();
    let git = |args: &[&str]| {
        let mut all = vec!["-C", &root];
        all.extend_from_slice(args);
        output_of("git", &all)
    };
    serde_json::json!({
        "date": output_of("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        "machine": {
            "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "cpu": cpu,
            "memory_gib": (mem_kib / 1024.0 / 1024.0).round(),
            "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
            "os": std::env::consts::OS,
        },
        "build": {
            "commit": git(&["rev-parse", "--short", "HEAD"]),
            "dirty": !git(&["status", "--porcelain"]).is_empty(),
            "profile": "release",
            "rustc": output_of("rustc", &["-V"]),
        },
    })
}

/// Runs the benchmarks: `--seconds N` sets each measured run's length (default 5), `--runs N`
/// how many runs each scenario gets (default 3), `--data-size N` how many orders and
/// notifications the data-size comparison loads (default 1,000,000; 0 skips it).
pub fn run(root: &Path, args: &[String]) -> Result<()> {
    let seconds = arg(args, "--seconds", "5");
    let runs = arg(args, "--runs", "3");
    let data_size = arg(args, "--data-size", "1000000");
    let wrk = crate::tools::wrk()?;
    let redis_benchmark = crate::tools::redis_benchmark()?;
    println!("bench: building release binaries");
    up::build_services(true, &["shopmesh-loadgen"])?;
    for dep in infra::core_dependencies() {
        infra::ensure(&dep, true)?;
    }
    let env = up::environment(root);
    let (mongo, mongo_url) = match env
        .get("MONGO_URL")
        .filter(|u| infra::reachable(&infra::addr_of(u), Duration::from_secs(1)))
    {
        Some(url) => (None, url.clone()),
        None => {
            let (child, url) =
                infra::start_mongo_standin(root, None, infra::StandinStorage::Memory)?;
            (Some(child), url)
        }
    };
    let release = root.join("target/release");
    let scratch = root.join("target/xtask/bench");
    std::fs::create_dir_all(&scratch)?;
    // The gateway's Redis goes through the load generator's proxy, which hangs it once.
    let redis_proxy = format!("127.0.0.1:{REDIS_PROXY_PORT}");
    // The live-status scenario holds 10,000 sockets of one shopper on the gateway: above the
    // default connection cap (4,096) and the per-user socket limit (10).
    let stack = stack(root, &env, 3100, "bench", &mongo_url)
        .set_for(
            Service::Gateway,
            "REDIS_URL",
            format!("redis://{redis_proxy}/"),
        )
        .set_for(Service::Gateway, "HTTP_MAX_CONNECTIONS", "12000")
        .set_for(
            Service::Gateway,
            "SUBSCRIPTION_CONNECTIONS_PER_USER",
            "11000",
        );
    let database = |s: Service| -> Result<String> {
        stack.database_url(s)?.context("the service has a database")
    };
    // Every service's database is dropped before a run: one kept (payments' was) remembers
    // the order ids of the last run, which the new run's orders reuse.
    let mut databases = Vec::new();
    for service in Service::ALL {
        databases.extend(stack.database_url(*service)?);
    }
    let databases = databases.join("\n");
    let loadgen = || -> Result<Command> {
        let mut cmd = Command::new(release.join("loadgen"));
        cmd.env("BENCH_REDIS_BENCHMARK", &redis_benchmark)
            .env("BENCH_REDIS_TARGET", up::redis_addr(&env))
            .env("BENCH_ORDERS_DB", database(Service::Orders)?)
            .env("BENCH_USERS_DB", database(Service::Users)?)
            .env("BENCH_CATALOG_DB", database(Service::Catalog)?)
            .env("BENCH_DATABASES", &databases)
            .env("BENCH_MONGO_URL", &mongo_url)
            .env("BENCH_MONGO_DB", &stack.names.mongo_db);
        Ok(cmd)
    };
    crate::run(loadgen()?.arg("reset")).context("dropping the bench's databases")?;
    let mut children: Vec<(&'static str, u32)> = Vec::new();
    let mut held: Option<Processes> = None;
    let mut baseline_process: Option<Child> = None;
    let path = root.join("bench/results/latest.json");
    let result = (|| -> Result<serde_json::Value> {
        let mut baseline = Command::new(release.join("loadgen"))
            .args(["serve-baseline", "3199"])
            .stdout(Stdio::null())
            .spawn()
            .context("starting the baseline server")?;
        wait_ready("baseline", 3199, &mut baseline)?;
        children.push(("baseline", baseline.id()));
        baseline_process = Some(baseline);
        let services = start(&stack, &release)?;
        children.extend(services.pids().into_iter().map(|(s, pid)| (s.name(), pid)));
        held = Some(services);
        std::thread::sleep(Duration::from_secs(2));
        let idle: BTreeMap<&str, u64> = children
            .iter()
            .map(|(n, pid)| (*n, rss_kib(*pid).0))
            .collect();

        let raw = scratch.join("suite.json");
        let gateway_pid = children
            .iter()
            .find(|(name, _)| *name == Service::Gateway.name())
            .map(|(_, pid)| pid.to_string())
            .unwrap_or_default();
        crate::run(
            loadgen()?
                .env("BENCH_GATEWAY_PID", gateway_pid)
                .env("BENCH_BASELINE_URL", "http://127.0.0.1:3199")
                .env("BENCH_GATEWAY_URL", stack.url(Service::Gateway))
                .env("BENCH_USERS_URL", stack.url(Service::Users))
                .env("BENCH_ORDERS_URL", stack.url(Service::Orders))
                .env("BENCH_CATALOG_URL", stack.url(Service::Catalog))
                .env(
                    "BENCH_ORDERS_CLIENT_SECRET",
                    stack.service_client_secret("orders")?,
                )
                .env("BENCH_GRPC_URL", stack.grpc_url())
                .env("BENCH_REDIS_PROXY", &redis_proxy)
                .env("BENCH_WRK", &wrk)
                .env("BENCH_SCRATCH", &scratch)
                .env("BENCH_SECONDS", &seconds)
                .env("BENCH_RUNS", &runs)
                .env("BENCH_DATA_SIZE", &data_size)
                .env("BENCH_OUTPUT", &raw),
        )?;
        let peak: BTreeMap<&str, u64> = children
            .iter()
            .map(|(n, pid)| (*n, rss_kib(*pid).1))
            .collect();
        println!(
            "\n{:<14} {:>14} {:>14}",
            "process", "idle RSS MiB", "peak RSS MiB"
        );
        let mut rss = serde_json::Map::new();
        for (name, _) in &children {
            let (i, p) = (idle[name] as f64 / 1024.0, peak[name] as f64 / 1024.0);
            println!("{name:<14} {i:>14.1} {p:>14.1}");
            rss.insert(
                (*name).to_owned(),
                serde_json::json!({"idle_mib": (i * 10.0).round() / 10.0, "peak_mib": (p * 10.0).round() / 10.0}),
            );
        }
        let mut report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&raw)?)?;
        report["rss"] = rss.into();
        if let (Some(report), serde_json::Value::Object(about)) =
            (report.as_object_mut(), provenance(root))
        {
            report.extend(about);
        }
        Ok(report)
    })();
    if let Some(services) = held {
        services.stop(Duration::from_secs(15));
    }
    if let Some(mut b) = baseline_process {
        let _ = b.kill();
        let _ = b.wait();
    }
    let result = result.and_then(|mut report| {
        let scale = replica_counts(root, &env, &mongo_url, &seconds)?;
        report["scale"] = serde_json::from_str(&scale)?;
        std::fs::create_dir_all(root.join("bench/results"))?;
        std::fs::write(&path, serde_json::to_string_pretty(&report)? + "\n")?;
        crate::run(
            Command::new(release.join("loadgen"))
                .arg("report")
                .arg(&path),
        )?;
        println!("\nbench: results in bench/results/latest.json, summary.md, chart.svg");
        Ok(())
    });
    drop(mongo);
    result
}

/// How many replicas of every service the scale comparison runs, in order.
const REPLICA_COUNTS: [usize; 2] = [1, 2];

/// Measures the gateway scenarios with each of [`REPLICA_COUNTS`] replicas of every service
/// and returns the comparison as JSON. Each replica is a whole platform on ports of its own
/// sharing the stores, queues and names (so relays and consumers compete, and gateways share
/// the cache and rate limit); its gateway calls its own users and orders, as a node-local
/// Service route would, and the load generator spreads requests evenly over the gateways. No
/// proxy sits in between, so the two-replica figures carry no hop the one-replica run lacks.
fn replica_counts(
    root: &Path,
    env: &BTreeMap<String, String>,
    mongo_url: &str,
    seconds: &str,
) -> Result<String> {
    let release = root.join("target/release");
    let dir = root.join("target/xtask/bench");
    std::fs::create_dir_all(&dir)?;
    let front = stack(root, env, 3110, "bench-scale", mongo_url);
    let mut runs = Vec::new();
    for count in REPLICA_COUNTS {
        let replicas: Vec<Stack> = (0..count)
            .map(|i| {
                let mut replica = front.replica(Ports::from_base(3110 + 10 * i as u16));
                replica.peers = None;
                replica
            })
            .collect();
        println!("bench: {count} replica(s) of every service");
        let processes = spawn_replicas(&replicas, &release, Output::Null, Duration::from_secs(60))?;
        std::thread::sleep(Duration::from_secs(1));
        let gateways: Vec<String> = replicas.iter().map(|r| r.url(Service::Gateway)).collect();
        let out = dir.join(format!("scale-{count}.json"));
        let measured = crate::run(
            Command::new(release.join("loadgen"))
                .arg("scale")
                .env("BENCH_GATEWAY_URLS", gateways.join(","))
                .env("BENCH_SECONDS", seconds)
                .env("BENCH_OUTPUT", &out),
        );
        for p in processes {
            p.stop(Duration::from_secs(15));
        }
        measured?;
        runs.push(out);
    }
    let out = dir.join("scale.json");
    crate::run(
        Command::new(release.join("loadgen"))
            .arg("scale-report")
            .args(&runs)
            .env("BENCH_OUTPUT", &out),
    )?;
    Ok(std::fs::read_to_string(out)?)
}
