//! `cargo xtask bench`: starts release builds of the four services (and a bare poem baseline
//! server) as separate processes on bench-only ports and names, runs the load generator
//! against them, and adds each process's idle and peak RSS. Prints tables and writes
//! `bench/results/latest.json`. Not part of the test command.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::infra;
use crate::up;

/// Extra environment of one process.
pub type EnvVars = Vec<(&'static str, String)>;

/// Ports and names of one set of service processes: the gateway on `base`, users on
/// `base + 1`, orders on `base + 2`, notifications HTTP on `base + 3` and gRPC on
/// `base + 47051`; databases, queues and cache keys prefixed with `prefix`.
pub struct Layout {
    /// Gateway port; the others follow.
    pub base: u16,
    /// Name prefix of databases, queues, exchange and cache keys.
    pub prefix: &'static str,
}

impl Layout {
    /// The gateway's base URL.
    pub fn gateway(&self) -> String {
        format!("http://127.0.0.1:{}", self.base)
    }

    /// Base URL of the service `offset` ports above the gateway.
    pub fn url(&self, offset: u16) -> String {
        format!("http://127.0.0.1:{}", self.base + offset)
    }

    /// The notifications gRPC URL.
    pub fn grpc(&self) -> String {
        format!("http://127.0.0.1:{}", self.base + 47051)
    }

    /// `(name, ready port, environment)` of each process.
    pub fn processes(&self) -> Vec<(&'static str, u16, EnvVars)> {
        let p = self.prefix;
        let port = |o: u16| (self.base + o).to_string();
        let topology = vec![
            ("ORDERS_EXCHANGE", format!("{p}.orders")),
            ("ORDER_CREATED_QUEUE", format!("{p}.order.created")),
        ];
        vec![
            (
                "users",
                self.base + 1,
                vec![
                    ("PORT", port(1)),
                    ("DB_NAME", format!("{p}_users_db")),
                    ("CACHE_PREFIX", format!("{p}:")),
                ],
            ),
            (
                "orders",
                self.base + 2,
                [
                    vec![("PORT", port(2)), ("DB_NAME", format!("{p}_orders_db"))],
                    topology.clone(),
                ]
                .concat(),
            ),
            (
                "notifications",
                self.base + 3,
                [
                    vec![
                        ("GRPC_PORT", (self.base + 47051).to_string()),
                        ("HTTP_PORT", port(3)),
                        ("MONGO_DB", format!("{p}_notifications")),
                    ],
                    topology,
                ]
                .concat(),
            ),
            (
                "gateway",
                self.base,
                vec![
                    ("PORT", port(0)),
                    ("ORDER_SERVICE_URL", self.url(2)),
                    ("USER_SERVICE_URL", self.url(1)),
                    ("NOTIFICATION_SERVICE_URL", self.grpc()),
                    ("CACHE_PREFIX", format!("{p}:")),
                    ("RATE_LIMIT_MAX", "1000000000".to_owned()),
                ],
            ),
        ]
    }
}

/// Service processes started by [`start`]; stopped gracefully when dropped.
pub struct Processes {
    /// `(name, process)`.
    pub children: Vec<(&'static str, Child)>,
}

impl Drop for Processes {
    fn drop(&mut self) {
        for (_, child) in &self.children {
            up::terminate(child);
        }
        for (_, child) in &mut self.children {
            let _ = child.wait();
        }
    }
}

/// Starts the four services from `bin_dir` with `layout`, each ready before the next starts.
pub fn start(
    bin_dir: &Path,
    layout: &Layout,
    env: &BTreeMap<String, String>,
    mongo_url: &str,
) -> Result<Processes> {
    let mut procs = Processes {
        children: Vec::new(),
    };
    for (name, port, extra) in layout.processes() {
        let mut cmd = Command::new(bin_dir.join(format!("shopmesh-{name}")));
        cmd.envs(env)
            .env("MONGO_URL", mongo_url)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().with_context(|| format!("starting {name}"))?;
        wait_ready(name, port, &mut child)?;
        procs.children.push((name, child));
    }
    Ok(procs)
}

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
    while !up::ready(port) {
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

/// Runs the benchmarks; `--seconds N` sets each scenario's measured duration (default 5).
pub fn run(root: &Path, args: &[String]) -> Result<()> {
    let seconds = args
        .iter()
        .position(|a| a == "--seconds")
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| "5".into());
    println!("bench: building release binaries");
    up::build_services(true, &["shopmesh-e2e"])?;
    for dep in infra::core_dependencies() {
        infra::ensure(&dep, true)?;
    }
    let env = up::environment(root);
    let (mut mongo, mongo_url) = match env
        .get("MONGO_URL")
        .filter(|u| infra::reachable(&infra::mongo_addr(u), Duration::from_secs(1)))
    {
        Some(url) => (None, url.clone()),
        None => {
            let (child, url) = infra::start_mongo_standin(root)?;
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
        let layout = Layout {
            base: 3100,
            prefix: "bench",
        };
        let services = start(&release, &layout, &env, &mongo_url)?;
        children.extend(services.children.iter().map(|(n, c)| (*n, c.id())));
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
                .env("BENCH_GATEWAY_URL", "http://127.0.0.1:3100")
                .env("BENCH_ORDERS_URL", "http://127.0.0.1:3102")
                .env("BENCH_GRPC_URL", "http://127.0.0.1:50151")
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
    drop(held);
    if let Some(mut b) = baseline_process {
        let _ = b.kill();
        let _ = b.wait();
    }
    if let Some(m) = mongo.as_mut() {
        let _ = m.kill();
        let _ = m.wait();
    }
    result
}
