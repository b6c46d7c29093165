//! The platform declared once. A [`Stack`] is the four services with their ports, the
//! environment they share (where MySQL, Redis, RabbitMQ and MongoDB are) and the names they use
//! in those stores ([`Names`]), so several platforms can share one set of infrastructure.
//! [`Stack::env_for`] is the whole configuration of one service; everything that starts the
//! platform starts it from there, changing configuration only:
//!
//! - as child processes with [`Stack::spawn`]: `cargo xtask up`, `bench`, the contract fuzzing
//!   and the process-level tests;
//! - in one process: tests read `env_for` into a service's typed config and build its
//!   `Application` (see `shopmesh-testkit`).
//!
//! This crate uses only the standard library (and `url`), so `cargo xtask` stays quick to
//! build and works while the services do not compile.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// One of the platform's services, in start order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Service {
    /// users (REST, MySQL, Redis).
    Users,
    /// orders (REST, MySQL, outbox relay to RabbitMQ).
    Orders,
    /// notifications (RabbitMQ consumer, MongoDB, gRPC, HTTP health).
    Notifications,
    /// catalog (REST, MySQL).
    Catalog,
    /// payments (REST, MySQL).
    Payments,
    // new-service: variant
    /// gateway (GraphQL and REST over the other services).
    Gateway,
}

impl Service {
    /// Every service, in start order (the gateway last: its readiness needs the others).
    pub const ALL: &'static [Service] = &[
        Service::Users,
        Service::Orders,
        Service::Notifications,
        Service::Catalog,
        Service::Payments,
        // new-service: start order
        Service::Gateway,
    ];

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Users => "users",
            Self::Orders => "orders",
            Self::Notifications => "notifications",
            Self::Catalog => "catalog",
            Self::Payments => "payments",
            // new-service: name
            Self::Gateway => "gateway",
        }
    }

    /// Its package, also the name of its binary.
    pub fn package(self) -> &'static str {
        match self {
            Self::Users => "shopmesh-users",
            Self::Orders => "shopmesh-orders",
            Self::Notifications => "shopmesh-notifications",
            Self::Catalog => "shopmesh-catalog",
            Self::Payments => "shopmesh-payments",
            // new-service: package
            Self::Gateway => "shopmesh-gateway",
        }
    }

    /// Its binary in `bin_dir` (`target/debug`, `target/release`).
    pub fn binary(self, bin_dir: &Path) -> PathBuf {
        bin_dir.join(self.package())
    }
}

/// The ports of one platform. The HTTP port of each service answers `/health/*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// gateway HTTP (`PORT`).
    pub gateway: u16,
    /// users HTTP (`PORT`).
    pub users: u16,
    /// orders HTTP (`PORT`).
    pub orders: u16,
    /// notifications health and metrics (`HTTP_PORT`).
    pub notifications_http: u16,
    /// notifications gRPC (`GRPC_PORT`).
    pub notifications_grpc: u16,
    /// catalog HTTP (`PORT`).
    pub catalog: u16,
    /// payments HTTP (`PORT`).
    pub payments: u16,
    // new-service: port field
}

impl Ports {
    /// The documented ports: 3000 to 3003 and 50051.
    pub const DEFAULT: Ports = Ports {
        gateway: 3000,
        users: 3001,
        orders: 3002,
        notifications_http: 3003,
        notifications_grpc: 50051,
        catalog: 3004,
        payments: 3005,
        // new-service: default port
    };

    /// Consecutive ports from `base`, in field order: gateway, users, orders, notifications
    /// HTTP and gRPC, then the services added since.
    pub fn from_base(base: u16) -> Self {
        let mut next = base..;
        Self::assign(|| next.next().context("a port below 65536"))
            .expect("a base leaving room for every service below 65536")
    }

    /// Distinct free ports, below the system's ephemeral range (released at once; the
    /// services bind them moments later). The system hands out ephemeral ports to every `:0`
    /// bind and outgoing connection, so a free port taken from that range could go to another
    /// socket before the service binds it ("Address already in use"); below it only a port
    /// picked the same way can collide, and picks walk a process-wide sequence from a random
    /// start, so the tests of one process never pick the same port twice.
    pub fn free() -> Result<Self> {
        use std::hash::{BuildHasher, Hasher};
        use std::sync::atomic::{AtomicU64, Ordering};
        const LOWEST: u64 = 10_000;
        static NEXT: AtomicU64 = AtomicU64::new(u64::MAX);
        let ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .ok()
            .and_then(|r| r.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(32_768);
        let span = ephemeral.saturating_sub(LOWEST).max(1_000);
        let start = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
            % span;
        let _ = NEXT.compare_exchange(u64::MAX, start, Ordering::SeqCst, Ordering::SeqCst);
        Self::assign(|| {
            for _ in 0..span {
                let port = u16::try_from(LOWEST + NEXT.fetch_add(1, Ordering::SeqCst) % span)
                    .context("a port below 65536")?;
                let free = ["127.0.0.1", "0.0.0.0"]
                    .iter()
                    .all(|host| TcpListener::bind((*host, port)).is_ok());
                if free {
                    return Ok(port);
                }
            }
            bail!("not enough free ports below {ephemeral}")
        })
    }

    /// Every port from `next`, in field order (struct fields are evaluated as written).
    fn assign(mut next: impl FnMut() -> Result<u16>) -> Result<Self> {
        Ok(Self {
            gateway: next()?,
            users: next()?,
            orders: next()?,
            notifications_http: next()?,
            notifications_grpc: next()?,
            catalog: next()?,
            payments: next()?,
            // new-service: assigned port
        })
    }

    /// The port `service` answers `/health/*` on.
    pub fn http(&self, service: Service) -> u16 {
        match service {
            Service::Users => self.users,
            Service::Orders => self.orders,
            Service::Notifications => self.notifications_http,
            Service::Catalog => self.catalog,
            Service::Payments => self.payments,
            // new-service: http port
            Service::Gateway => self.gateway,
        }
    }

    /// Every port with what listens on it.
    pub fn all(&self) -> Vec<(u16, String)> {
        let mut all: Vec<(u16, String)> = Service::ALL
            .iter()
            .map(|&s| (self.http(s), format!("{} HTTP", s.name())))
            .collect();
        all.push((self.notifications_grpc, "notifications gRPC".to_owned()));
        all
    }
}

/// The names one platform uses inside the shared infrastructure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// MySQL database of users.
    pub users_db: String,
    /// MySQL database of orders.
    pub orders_db: String,
    /// MySQL database of catalog.
    pub catalog_db: String,
    /// MySQL database of payments.
    pub payments_db: String,
    // new-service: database field
    /// RabbitMQ exchange of order events.
    pub exchange: String,
    /// RabbitMQ queue of `order.created` (its retry queues and DLQ are named after it).
    pub queue: String,
    /// MongoDB database of notifications.
    pub mongo_db: String,
    /// Prefix of every Redis key.
    pub cache_prefix: String,
}

impl Default for Names {
    /// The documented names (docker-compose, `cargo xtask up`).
    fn default() -> Self {
        Self {
            users_db: "users_db".into(),
            orders_db: "orders_db".into(),
            catalog_db: "catalog_db".into(),
            payments_db: "payments_db".into(),
            // new-service: default database
            exchange: "orders".into(),
            queue: "order.created".into(),
            mongo_db: "notifications".into(),
            cache_prefix: String::new(),
        }
    }
}

impl Names {
    /// Names of their own for a run: `{p}_users_db`, `{p}.orders`, `{p}:` ...
    pub fn prefixed(p: &str) -> Self {
        Self {
            users_db: format!("{p}_users_db"),
            orders_db: format!("{p}_orders_db"),
            catalog_db: format!("{p}_catalog_db"),
            payments_db: format!("{p}_payments_db"),
            // new-service: prefixed database
            exchange: format!("{p}.orders"),
            queue: format!("{p}.order.created"),
            mongo_db: format!("{p}_notifications"),
            cache_prefix: format!("{p}:"),
        }
    }

    /// The MySQL database `service` keeps its data in, if it has one.
    pub fn database(&self, service: Service) -> Option<&String> {
        match service {
            Service::Users => Some(&self.users_db),
            Service::Orders => Some(&self.orders_db),
            Service::Catalog => Some(&self.catalog_db),
            Service::Payments => Some(&self.payments_db),
            // new-service: database
            _ => None,
        }
    }

    /// Every MySQL database of the platform.
    pub fn databases(&self) -> Vec<&String> {
        Service::ALL
            .iter()
            .filter_map(|&s| self.database(s))
            .collect()
    }

    /// The documented names, except where `env` sets `ORDERS_EXCHANGE`, `ORDER_CREATED_QUEUE`,
    /// `MONGO_DB` or `CACHE_PREFIX`.
    pub fn from_env(env: &BTreeMap<String, String>) -> Self {
        let d = Self::default();
        let get = |k: &str, d: String| env.get(k).filter(|v| !v.is_empty()).cloned().unwrap_or(d);
        Self {
            exchange: get("ORDERS_EXCHANGE", d.exchange),
            queue: get("ORDER_CREATED_QUEUE", d.queue),
            mongo_db: get("MONGO_DB", d.mongo_db),
            cache_prefix: get("CACHE_PREFIX", d.cache_prefix),
            ..d
        }
    }
}

/// The platform: ports, names, shared environment, and per-service overrides.
#[derive(Debug, Clone)]
pub struct Stack {
    /// Ports of the services.
    pub ports: Ports,
    /// Names inside the infrastructure.
    pub names: Names,
    /// Environment every service gets first: where the infrastructure is (`DATABASE_URL` or
    /// `DB_*`, `REDIS_URL`, `RABBITMQ_URL`, `MONGO_URL`), `RUST_LOG`, telemetry ...
    pub env: BTreeMap<String, String>,
    /// Where the services reach each other, when not at [`Stack::ports`]: the front (a load
    /// balancer, a Kubernetes Service) of a platform run as several replicas.
    pub peers: Option<Ports>,
    overrides: Vec<(Option<Service>, String, String)>,
}

impl Stack {
    /// A stack on `ports` with `names`, over the shared environment `env`.
    pub fn new(env: BTreeMap<String, String>, ports: Ports, names: Names) -> Self {
        Self {
            ports,
            names,
            env,
            peers: None,
            overrides: Vec::new(),
        }
    }

    /// One replica of this platform: the same names, environment and overrides, listening on
    /// `ports`, and reaching the other services where this stack's clients reach them (its
    /// peers, or its ports), so that a [`Balancer`] there spreads calls over the replicas.
    pub fn replica(&self, ports: Ports) -> Self {
        Self {
            ports,
            peers: Some(self.peers.unwrap_or(self.ports)),
            ..self.clone()
        }
    }

    /// Sets `key` for every service (after the declaration, so it wins).
    pub fn set(mut self, key: &str, value: impl Into<String>) -> Self {
        self.overrides.push((None, key.to_owned(), value.into()));
        self
    }

    /// Sets `key` for `service` only.
    pub fn set_for(mut self, service: Service, key: &str, value: impl Into<String>) -> Self {
        self.overrides
            .push((Some(service), key.to_owned(), value.into()));
        self
    }

    /// Base URL of `service`'s HTTP listener.
    pub fn url(&self, service: Service) -> String {
        format!("http://127.0.0.1:{}", self.ports.http(service))
    }

    /// URL of the notifications gRPC listener.
    pub fn grpc_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.notifications_grpc)
    }

    /// The whole environment of `service`: the shared environment, then what the platform
    /// declares for it (ports, names, where the other services are), then overrides.
    pub fn env_for(&self, service: Service) -> Result<BTreeMap<String, String>> {
        let mut env = self.env.clone();
        let n = &self.names;
        let peers = self.peers.unwrap_or(self.ports);
        let peer = |s: Service| format!("http://127.0.0.1:{}", peers.http(s));
        let topology = [
            ("ORDERS_EXCHANGE", n.exchange.clone()),
            ("ORDER_CREATED_QUEUE", n.queue.clone()),
        ];
        // Every service but users verifies tokens against the users service's keys.
        let jwks = (
            "AUTH_JWKS_URL",
            format!("{}/.well-known/jwks.json", peer(Service::Users)),
        );
        let declared: Vec<(&str, String)> = match service {
            Service::Users => vec![
                ("PORT", self.ports.users.to_string()),
                ("CACHE_PREFIX", n.cache_prefix.clone()),
                // The gateway runs here: its X-Forwarded-For names the client.
                ("LOGIN_TRUSTED_PROXIES", "127.0.0.1/32".to_owned()),
            ],
            Service::Orders => [
                vec![
                    ("PORT", self.ports.orders.to_string()),
                    // Changed orders are written and announced for the gateway's tiers.
                    ("CACHE_PREFIX", n.cache_prefix.clone()),
                    ("USER_SERVICE_URL", peer(Service::Users)),
                    // The checkout saga's participants.
                    ("CATALOG_SERVICE_URL", peer(Service::Catalog)),
                    ("PAYMENT_SERVICE_URL", peer(Service::Payments)),
                    jwks.clone(),
                ],
                topology.to_vec(),
                // Its credential: the secret the users service knows it by.
                self.service_client_secret("orders")
                    .map(|secret| vec![("SERVICE_CLIENT_SECRET", secret)])
                    .unwrap_or_default(),
            ]
            .concat(),
            Service::Notifications => [
                vec![
                    ("HTTP_PORT", self.ports.notifications_http.to_string()),
                    ("GRPC_PORT", self.ports.notifications_grpc.to_string()),
                    ("MONGO_DB", n.mongo_db.clone()),
                    jwks.clone(),
                ],
                topology.to_vec(),
            ]
            .concat(),
            Service::Catalog => vec![
                ("PORT", self.ports.catalog.to_string()),
                // Product changes are announced on a channel named after it.
                ("CACHE_PREFIX", n.cache_prefix.clone()),
                jwks.clone(),
            ],
            Service::Payments => vec![("PORT", self.ports.payments.to_string()), jwks.clone()],
            // new-service: declared environment
            Service::Gateway => vec![
                ("PORT", self.ports.gateway.to_string()),
                ("CACHE_PREFIX", n.cache_prefix.clone()),
                ("USER_SERVICE_URL", peer(Service::Users)),
                ("ORDER_SERVICE_URL", peer(Service::Orders)),
                ("CATALOG_SERVICE_URL", peer(Service::Catalog)),
                (
                    "NOTIFICATION_SERVICE_URL",
                    format!("http://127.0.0.1:{}", peers.notifications_grpc),
                ),
                // Status changes for subscriptions come from the orders exchange.
                topology[0].clone(),
                jwks,
            ],
        };
        env.extend(declared.into_iter().map(|(k, v)| (k.to_owned(), v)));
        if let Some(db) = n.database(service) {
            match env.get("DATABASE_URL").filter(|u| !u.is_empty()) {
                Some(url) => {
                    let url = with_database(url, db)?;
                    env.insert("DATABASE_URL".into(), url);
                }
                None => {
                    env.insert("DB_NAME".into(), db.clone());
                }
            }
        }
        for (only, k, v) in &self.overrides {
            if only.is_none_or(|s| s == service) {
                env.insert(k.clone(), v.clone());
            }
        }
        Ok(env)
    }

    /// The MySQL URL `service` connects with (its `DATABASE_URL`, or one made from its `DB_*`
    /// variables with the services' defaults); `None` for a service without a database.
    pub fn database_url(&self, service: Service) -> Result<Option<String>> {
        if self.names.database(service).is_none() {
            return Ok(None);
        }
        let env = self.env_for(service)?;
        if let Some(url) = env.get("DATABASE_URL").filter(|u| !u.is_empty()) {
            return Ok(Some(url.clone()));
        }
        let get = |k: &str, d: &str| {
            env.get(k)
                .filter(|v| !v.is_empty())
                .cloned()
                .unwrap_or_else(|| d.to_owned())
        };
        let password = get("DB_PASSWORD", "");
        let user = get("DB_USER", "root");
        let credentials = if password.is_empty() {
            user
        } else {
            format!("{user}:{password}")
        };
        Ok(Some(format!(
            "mysql://{credentials}@{}:{}/{}",
            get("DB_HOST", "localhost"),
            get("DB_PORT", "3306"),
            get("DB_NAME", "")
        )))
    }

    /// The first of this stack's ports that something else already listens on, as an error
    /// naming the port and what it is for.
    pub fn check_ports_free(&self) -> Result<()> {
        for (port, what) in self.ports.all() {
            if TcpListener::bind(("0.0.0.0", port)).is_err() {
                bail!(
                    "port {port} ({what}) is already in use{}; stop what holds it (another \
                     `cargo xtask up`, or a service of docker-compose)",
                    holder(port).map(|h| format!(" by {h}")).unwrap_or_default()
                );
            }
        }
        Ok(())
    }

    /// Starts the services from `bin_dir` as child processes, in start order, each ready
    /// (`/health/ready` 200) before the next starts; `within` bounds each wait.
    pub fn spawn(&self, bin_dir: &Path, output: Output, within: Duration) -> Result<Processes> {
        self.check_ports_free()?;
        let mut processes = Processes {
            children: Vec::new(),
        };
        for &service in Service::ALL {
            let child = self.spawn_one(bin_dir, service, output)?;
            processes.children.push((service, child));
            let port = self.ports.http(service);
            let started = Instant::now();
            while !ready(port) {
                if let Some((name, status)) = processes.exited() {
                    bail!("{name} exited during start-up ({status}); see its log lines");
                }
                if started.elapsed() > within {
                    bail!(
                        "{} did not become ready on :{port} within {} s",
                        service.name(),
                        within.as_secs()
                    );
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if let Output::Prefixed = output {
                println!(
                    "stack: ✓ {} ready on :{port} after {:.1} s",
                    service.name(),
                    started.elapsed().as_secs_f64()
                );
            }
        }
        Ok(processes)
    }

    /// Starts one service from `bin_dir` (without waiting), e.g. to restart a stopped one.
    pub fn spawn_one(&self, bin_dir: &Path, service: Service, output: Output) -> Result<Child> {
        let binary = service.binary(bin_dir);
        let mut cmd = Command::new(&binary);
        cmd.env_clear().envs(self.env_for(service)?);
        match output {
            Output::Inherit => cmd.stdout(Stdio::null()).stderr(Stdio::inherit()),
            Output::Null => cmd.stdout(Stdio::null()).stderr(Stdio::null()),
            Output::Prefixed => cmd.stdout(Stdio::piped()).stderr(Stdio::piped()),
            Output::Capture => cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()),
        };
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        if let Output::Prefixed = output {
            for stream in [
                child
                    .stdout
                    .take()
                    .map(|s| Box::new(s) as Box<dyn Read + Send>),
                child
                    .stderr
                    .take()
                    .map(|s| Box::new(s) as Box<dyn Read + Send>),
            ]
            .into_iter()
            .flatten()
            {
                let name = service.name();
                std::thread::spawn(move || {
                    for line in BufReader::new(stream).lines().map_while(|l| l.ok()) {
                        println!("[{name:>13}] {line}");
                    }
                });
            }
        }
        Ok(child)
    }
}

/// Starts every replica in `replicas` (stacks from [`Stack::replica`]) from `bin_dir`: each
/// service in start order, all its replicas at once (so migrations and seeding race as they
/// do when a Deployment scales), each ready before the next service starts.
pub fn spawn_replicas(
    replicas: &[Stack],
    bin_dir: &Path,
    output: Output,
    within: Duration,
) -> Result<Vec<Processes>> {
    let mut all: Vec<Processes> = replicas
        .iter()
        .map(|r| {
            r.check_ports_free()?;
            Ok(Processes {
                children: Vec::new(),
            })
        })
        .collect::<Result<_>>()?;
    for &service in Service::ALL {
        for (replica, processes) in replicas.iter().zip(&mut all) {
            let child = replica.spawn_one(bin_dir, service, output)?;
            processes.children.push((service, child));
        }
        let started = Instant::now();
        for (i, (replica, processes)) in replicas.iter().zip(&mut all).enumerate() {
            let port = replica.ports.http(service);
            while !ready(port) {
                if let Some((name, status)) = processes.exited() {
                    bail!("{name} (replica {i}) exited during start-up ({status})");
                }
                if started.elapsed() > within {
                    bail!(
                        "{} (replica {i}) did not become ready on :{port} within {} s",
                        service.name(),
                        within.as_secs()
                    );
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    Ok(all)
}

/// A TCP load balancer on loopback, as a Kubernetes Service is to its pods: each connection
/// goes to the next target in turn, or to the one after when a target refuses (a replica
/// that is down). Connections already open stay with their target. Stops when dropped.
pub struct Balancer {
    port: u16,
    stopped: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Balancer {
    /// Listens on `127.0.0.1:port` and spreads connections over `targets` (loopback ports).
    pub fn start(port: u16, targets: Vec<u16>) -> Result<Self> {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let listener = TcpListener::bind(("127.0.0.1", port))
            .with_context(|| format!("balancer port {port}"))?;
        let stopped = std::sync::Arc::new(AtomicBool::new(false));
        let stop = stopped.clone();
        let next = AtomicUsize::new(0);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let first = next.fetch_add(1, Ordering::Relaxed);
                let server = (0..targets.len()).find_map(|i| {
                    let target = targets[(first + i) % targets.len()];
                    let addr = SocketAddr::from(([127, 0, 0, 1], target));
                    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()
                });
                if let Some(server) = server {
                    splice(client, server);
                }
            }
        });
        Ok(Self { port, stopped })
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.stopped
            .store(true, std::sync::atomic::Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Copies bytes both ways between `a` and `b` until either side closes, then closes both.
fn splice(a: TcpStream, b: TcpStream) {
    let _ = a.set_nodelay(true);
    let _ = b.set_nodelay(true);
    let pipe = |mut from: TcpStream, mut to: TcpStream| {
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut from, &mut to);
            let _ = to.shutdown(std::net::Shutdown::Both);
            let _ = from.shutdown(std::net::Shutdown::Both);
        });
    };
    if let (Ok(a2), Ok(b2)) = (a.try_clone(), b.try_clone()) {
        pipe(a, b2);
        pipe(b, a2);
    }
}

/// Where a spawned service's logs go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// stderr to this process's stderr, stdout dropped (tests).
    Inherit,
    /// Nothing (benchmarks).
    Null,
    /// Both, each line prefixed with the service's name (`cargo xtask up`).
    Prefixed,
    /// stdout left piped on the child for the caller to read, stderr inherited.
    Capture,
}

/// Services running as child processes; any still running when this is dropped is killed.
pub struct Processes {
    children: Vec<(Service, Child)>,
}

impl Processes {
    /// The process of `service`.
    pub fn child(&mut self, service: Service) -> Option<&mut Child> {
        self.children
            .iter_mut()
            .find(|(s, _)| *s == service)
            .map(|(_, c)| c)
    }

    /// Replaces the process of `service` (after a kill and restart).
    pub fn replace(&mut self, service: Service, child: Child) {
        self.children.retain(|(s, _)| *s != service);
        self.children.push((service, child));
    }

    /// `(service, pid)` of each process.
    pub fn pids(&self) -> Vec<(Service, u32)> {
        self.children.iter().map(|(s, c)| (*s, c.id())).collect()
    }

    /// A service that has exited, with its status.
    pub fn exited(&mut self) -> Option<(&'static str, ExitStatus)> {
        self.children
            .iter_mut()
            .find_map(|(s, c)| c.try_wait().ok().flatten().map(|st| (s.name(), st)))
    }

    /// Sends SIGTERM to every service, the last started first, and waits up to `grace` for each;
    /// returns each one's name and whether it exited cleanly (a service still running after
    /// `grace` is killed and counts as unclean).
    pub fn stop(mut self, grace: Duration) -> Vec<(&'static str, bool)> {
        let mut exits = Vec::new();
        while let Some((service, mut child)) = self.children.pop() {
            terminate(&child);
            let deadline = Instant::now() + grace;
            let clean = loop {
                match child.try_wait() {
                    Ok(Some(status)) => break status.success(),
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(50))
                    }
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break false;
                    }
                }
            };
            exits.push((service.name(), clean));
        }
        exits
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Sends SIGTERM (a graceful stop, unlike `Child::kill`'s SIGKILL).
pub fn terminate(child: &Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
}

impl Stack {
    /// Logs in at the users service with an email and password; the access token (for tools
    /// such as the contract fuzzing, which call the services as a logged-in client).
    pub fn log_in(&self, email: &str, password: &str) -> Result<String> {
        let body = format!(r#"{{"email":"{email}","password":"{password}"}}"#);
        self.access_token("/auth/token", &body)
            .with_context(|| format!("logging in as {email}"))
    }

    /// The secret the platform service `client` has in the users service's `SERVICE_CLIENTS`.
    pub fn service_client_secret(&self, client: &str) -> Result<String> {
        let env = self.env_for(Service::Users)?;
        let prefix = format!("{client}=");
        env.get("SERVICE_CLIENTS")
            .and_then(|clients| {
                clients
                    .split(',')
                    .find_map(|pair| pair.trim().strip_prefix(&prefix))
            })
            .map(str::to_owned)
            .with_context(|| format!("SERVICE_CLIENTS names no {client}"))
    }

    /// A service token for the platform service `client`, from the users service's
    /// client-credentials grant with the secret the stack configured.
    pub fn service_token(&self, client: &str) -> Result<String> {
        let secret = self.service_client_secret(client)?;
        let body = format!(r#"{{"clientId":"{client}","clientSecret":"{secret}"}}"#);
        self.access_token("/auth/service-token", &body)
            .with_context(|| format!("the service token of {client}"))
    }

    /// POSTs `body` to the users service at `path` and reads the `accessToken` answered.
    fn access_token(&self, path: &str, body: &str) -> Result<String> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.ports.users));
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
            .context("connecting to the users service")?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            s,
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
        let mut answer = String::new();
        s.read_to_string(&mut answer)?;
        let token = answer
            .split_once(r#""accessToken":""#)
            .and_then(|(_, rest)| rest.split_once('"'))
            .map(|(token, _)| token.to_owned());
        token.with_context(|| {
            format!(
                "no access token: {}",
                answer.lines().next().unwrap_or("no answer")
            )
        })
    }
}

/// Whether `127.0.0.1:port/health/ready` answers 200.
pub fn ready(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
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

/// `url` with its path (the database name) replaced by `database`.
pub fn with_database(url: &str, database: &str) -> Result<String> {
    let mut parsed = url::Url::parse(url).with_context(|| "DATABASE_URL is not a URL")?;
    parsed.set_path(&format!("/{database}"));
    Ok(parsed.into())
}

/// `host:port` of a URL, with the scheme's usual port when the URL names none (MySQL 3306,
/// Redis 6379, AMQP 5672, MongoDB 27017). The one place URLs are taken apart for addresses.
pub fn authority(url: &str) -> Result<String> {
    let parsed = url::Url::parse(url).with_context(|| format!("{url:?} is not a URL"))?;
    let host = parsed
        .host_str()
        .with_context(|| format!("{url:?} names no host"))?;
    let default = match parsed.scheme() {
        "mysql" | "mariadb" => 3306,
        "redis" | "rediss" => 6379,
        "amqp" => 5672,
        "amqps" => 5671,
        "mongodb" => 27017,
        "http" => 80,
        "https" => 443,
        other => bail!("{url:?}: unknown scheme {other}"),
    };
    Ok(format!("{host}:{}", parsed.port().unwrap_or(default)))
}

/// What holds `port`, from `ss` when it is installed (`name pid=...`).
fn holder(port: u16) -> Option<String> {
    let out = Command::new("ss")
        .args(["-ltnpH", &format!("sport = :{port}")])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let users = text.split("users:((").nth(1)?;
    let name = users.split('"').nth(1)?;
    let pid = users.split("pid=").nth(1)?.split(',').next()?;
    Some(format!("{name} (pid {pid})"))
}

#[cfg(test)]
mod tests {
    /// Ports from the ephemeral range could be handed to another socket (an outgoing
    /// connection, a `:0` bind) between the pick and the service's bind.
    #[test]
    fn free_ports_are_distinct_and_outside_the_ephemeral_range() {
        let ephemeral: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .ok()
            .and_then(|r| r.split_whitespace().next()?.parse().ok())
            .unwrap_or(32_768);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..20 {
            let p = Ports::free().unwrap();
            for (port, _) in p.all() {
                assert!(port < ephemeral, "{port} is in the ephemeral range");
                assert!(seen.insert(port), "{port} picked twice");
            }
        }
    }

    use super::*;

    fn stack(env: &[(&str, &str)]) -> Stack {
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Stack::new(env, Ports::from_base(4000), Names::prefixed("t1"))
    }

    #[test]
    fn each_service_gets_its_ports_names_and_peers() {
        let s = stack(&[("DATABASE_URL", "mysql://root:pw@db:3307/ignored")]);
        let users = s.env_for(Service::Users).unwrap();
        assert_eq!(users["PORT"], "4001");
        assert_eq!(users["DATABASE_URL"], "mysql://root:pw@db:3307/t1_users_db");
        assert_eq!(users["CACHE_PREFIX"], "t1:");
        let orders = s.env_for(Service::Orders).unwrap();
        assert_eq!(
            orders["DATABASE_URL"],
            "mysql://root:pw@db:3307/t1_orders_db"
        );
        assert_eq!(orders["ORDER_CREATED_QUEUE"], "t1.order.created");
        let n = s.env_for(Service::Notifications).unwrap();
        assert_eq!(
            (n["HTTP_PORT"].as_str(), n["GRPC_PORT"].as_str()),
            ("4003", "4004")
        );
        assert_eq!(n["MONGO_DB"], "t1_notifications");
        let g = s.env_for(Service::Gateway).unwrap();
        assert_eq!(g["USER_SERVICE_URL"], "http://127.0.0.1:4001");
        assert_eq!(g["NOTIFICATION_SERVICE_URL"], "http://127.0.0.1:4004");
    }

    #[test]
    fn without_database_url_the_database_is_named_and_overrides_win() {
        let s = stack(&[("DB_HOST", "db")]).set("RUST_LOG", "warn").set_for(
            Service::Orders,
            "OUTBOX_POLL_MS",
            "100",
        );
        let users = s.env_for(Service::Users).unwrap();
        assert_eq!(users["DB_NAME"], "t1_users_db");
        assert_eq!(users["RUST_LOG"], "warn");
        assert!(!users.contains_key("OUTBOX_POLL_MS"));
        assert_eq!(s.env_for(Service::Orders).unwrap()["OUTBOX_POLL_MS"], "100");
    }

    #[test]
    fn replicas_listen_on_their_ports_and_reach_peers_at_the_front() {
        let front = stack(&[]).set("RUST_LOG", "warn");
        let r = front.replica(Ports::from_base(5000));
        let g = r.env_for(Service::Gateway).unwrap();
        assert_eq!(g["PORT"], "5000");
        assert_eq!(g["USER_SERVICE_URL"], "http://127.0.0.1:4001");
        assert_eq!(g["NOTIFICATION_SERVICE_URL"], "http://127.0.0.1:4004");
        assert_eq!(g["RUST_LOG"], "warn", "overrides carry over");
        let o = r.env_for(Service::Orders).unwrap();
        assert_eq!(o["PORT"], "5002");
        assert_eq!(
            o["AUTH_JWKS_URL"],
            "http://127.0.0.1:4001/.well-known/jwks.json"
        );
        assert_eq!(o["ORDER_CREATED_QUEUE"], "t1.order.created", "same names");
        // A replica of a replica still reaches the front.
        let rr = r.replica(Ports::from_base(6000));
        assert_eq!(
            rr.env_for(Service::Gateway).unwrap()["ORDER_SERVICE_URL"],
            "http://127.0.0.1:4002"
        );
    }

    #[test]
    fn the_balancer_spreads_connections_and_skips_a_target_that_is_down() {
        let a = TcpListener::bind("127.0.0.1:0").unwrap();
        let b = TcpListener::bind("127.0.0.1:0").unwrap();
        let down = TcpListener::bind("127.0.0.1:0").unwrap();
        let down_port = down.local_addr().unwrap().port();
        drop(down);
        let ports = Ports::free().unwrap();
        let targets = vec![
            a.local_addr().unwrap().port(),
            down_port,
            b.local_addr().unwrap().port(),
        ];
        let _balancer = Balancer::start(ports.gateway, targets).unwrap();
        let mut accepted = [0, 0];
        for _ in 0..6 {
            let mut c = TcpStream::connect(("127.0.0.1", ports.gateway)).unwrap();
            c.write_all(b"x").unwrap();
            for l in [&a, &b] {
                l.set_nonblocking(true).unwrap();
            }
            let deadline = Instant::now() + Duration::from_secs(2);
            loop {
                if let Ok((mut s, _)) = a.accept() {
                    let _ = s.read(&mut [0u8; 1]);
                    accepted[0] += 1;
                    break;
                }
                if let Ok((mut s, _)) = b.accept() {
                    let _ = s.read(&mut [0u8; 1]);
                    accepted[1] += 1;
                    break;
                }
                assert!(Instant::now() < deadline, "no target got the connection");
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        assert_eq!(accepted[0] + accepted[1], 6);
        assert!(accepted[0] >= 2 && accepted[1] >= 2, "{accepted:?}");
    }

    #[test]
    fn authorities_come_from_urls_with_scheme_defaults() {
        assert_eq!(authority("mysql://u:p@db:3307/x").unwrap(), "db:3307");
        assert_eq!(
            authority("mysql://root@localhost/orders_db").unwrap(),
            "localhost:3306"
        );
        assert_eq!(authority("redis://:pw@cache/").unwrap(), "cache:6379");
        assert_eq!(authority("amqp://u:p@mq:5673/%2f").unwrap(), "mq:5673");
        assert_eq!(authority("mongodb://mongo").unwrap(), "mongo:27017");
        assert!(authority("not a url").is_err());
    }

    #[test]
    fn a_taken_port_is_named() {
        let held = TcpListener::bind("0.0.0.0:0").unwrap();
        let port = held.local_addr().unwrap().port();
        let mut s = stack(&[]);
        s.ports.users = port;
        let err = s.check_ports_free().unwrap_err().to_string();
        assert!(
            err.contains(&format!("port {port} (users HTTP) is already in use")),
            "{err}"
        );
    }
}
