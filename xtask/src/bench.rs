//! `cargo xtask bench`: starts release builds of the four services (and a bare poem baseline
//! server) as separate processes on bench-only ports and names, runs the load generator
//! against them, and adds each process's idle and peak RSS. Prints tables and writes
//! `bench/results/latest.json`. Not part of the test command.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use shopmesh_stack::{Processes, Service};

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
    drop(mongo);
    result
}
