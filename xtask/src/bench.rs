//! `cargo xtask bench`: starts release builds of the four services (and a bare poem baseline
//! server) as separate processes on bench-only ports and names, runs the load generator
//! against them, and adds each process's idle and peak RSS. Then it measures the gateway's
//! scenarios again with one and with two replicas of every service. Prints tables and writes
//! `bench/results/latest.json`. Not part of the test command.

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

/// Runs the benchmarks; `--seconds N` sets each scenario's measured duration (default 5).
pub fn run(root: &Path, args: &[String]) -> Result<()> {
    let seconds = args
        .iter()
        .position(|a| a == "--seconds")
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| "5".into());
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
    let mut children: Vec<(&'static str, u32)> = Vec::new();
    let mut held: Option<Processes> = None;
    let mut baseline_process: Option<Child> = None;
    let result = (|| -> Result<()> {
        let mut baseline = Command::new(release.join("loadgen"))
            .args(["serve-baseline", "3199"])
            .stdout(Stdio::null())
            .spawn()
            .context("starting the baseline server")?;
        wait_ready("baseline", 3199, &mut baseline)?;
        children.push(("baseline", baseline.id()));
        baseline_process = Some(baseline);
        // The gateway's Redis goes through the load generator's proxy, which scenario 2b hangs.
        let redis_proxy = format!("127.0.0.1:{REDIS_PROXY_PORT}");
        let stack = stack(root, &env, 3100, "bench", &mongo_url).set_for(
            Service::Gateway,
            "REDIS_URL",
            format!("redis://{redis_proxy}/"),
        );
        let services = start(&stack, &release)?;
        children.extend(services.pids().into_iter().map(|(s, pid)| (s.name(), pid)));
        held = Some(services);
        std::thread::sleep(Duration::from_secs(2));
        let idle: BTreeMap<&str, u64> = children
            .iter()
            .map(|(n, pid)| (*n, rss_kib(*pid).0))
            .collect();

        let dir = root.join("bench/results");
        std::fs::create_dir_all(&dir)?;
        let raw = dir.join("latest.json.tmp");
        crate::run(
            Command::new(release.join("loadgen"))
                .env("BENCH_BASELINE_URL", "http://127.0.0.1:3199")
                .env("BENCH_GATEWAY_URL", stack.url(Service::Gateway))
                .env("BENCH_ORDERS_URL", stack.url(Service::Orders))
                .env("BENCH_GRPC_URL", stack.grpc_url())
                .env("BENCH_REDIS_PROXY", &redis_proxy)
                .env("BENCH_REDIS_TARGET", up::redis_addr(&env))
                .env("BENCH_SECONDS", &seconds)
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
        let mut rss = Vec::new();
        for (name, _) in &children {
            let (i, p) = (idle[name] as f64 / 1024.0, peak[name] as f64 / 1024.0);
            println!("{name:<14} {i:>14.1} {p:>14.1}");
            rss.push(format!(
                "\"{name}\": {{\"idle_mib\": {i:.1}, \"peak_mib\": {p:.1}}}"
            ));
        }
        let report = std::fs::read_to_string(&raw)?;
        let report = report
            .trim_end()
            .strip_suffix('}')
            .context("loadgen wrote a JSON object")?;
        let machine = format!(
            "\"machine\": {{\"cores\": {}, \"os\": \"{}\"}}",
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(0),
            std::env::consts::OS
        );
        std::fs::write(
            dir.join("latest.json"),
            format!(
                "{report},\n  \"rss\": {{{}}},\n  {machine}\n}}\n",
                rss.join(", ")
            ),
        )?;
        std::fs::remove_file(&raw)?;
        println!("\nbench: results in bench/results/latest.json");
        Ok(())
    })();
    if let Some(services) = held {
        services.stop(Duration::from_secs(15));
    }
    if let Some(mut b) = baseline_process {
        let _ = b.kill();
        let _ = b.wait();
    }
    let result = result.and_then(|()| {
        let scale = replica_counts(root, &env, &mongo_url, &seconds)?;
        let path = root.join("bench/results/latest.json");
        let report = std::fs::read_to_string(&path)?;
        let report = report
            .trim_end()
            .strip_suffix('}')
            .context("the report is a JSON object")?;
        std::fs::write(&path, format!("{report},\n  \"scale\": {scale}\n}}\n"))?;
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
