//! The HTTP server every service runs: poem endpoints on hyper, with the limits a listener that
//! faces clients needs and poem's own server does not offer.
//!
//! - **Header-read timeout**: a client that trickles its request head (slowloris) is cut off.
//! - **Idle timeout**: a connection with no request in flight for this long is closed.
//! - **Connection cap**: at the cap, a new connection first closes the longest-idle one (as
//!   nginx reuses keep-alive connections when it runs out), so idle or slow sockets cannot lock
//!   out a client; only when every connection is busy is the new one refused.
//! - **Drain**: on shutdown the listener closes (new connections are refused, so clients go to
//!   another replica), every answer carries `Connection: close` (HTTP/1), connections are
//!   closed once quiet (HTTP/2 with a GOAWAY), and the server returns when the last one ends,
//!   or after [`DRAIN_TIMEOUT`]. No request a client sent is dropped.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Addr, Endpoint, Request};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};

use crate::config::{ConfigError, Env};

/// Longest wait for in-flight requests when a server shuts down.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a connection closed to make room (or for idleness) may take to finish.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// While draining, a connection with no request for this long is closed.
const DRAIN_QUIET: Duration = Duration::from_millis(250);

/// While draining, a connection that is never quiet is closed (GOAWAY on HTTP/2) after this.
const DRAIN_QUIET_MAX: Duration = Duration::from_secs(2);

/// How an HTTP listener serves: its limits and where its metrics go, from the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpConfig {
    /// Longest a client may take to send a request head (`HTTP_HEADER_READ_TIMEOUT_MS`,
    /// 30000). hyper starts this clock whenever an HTTP/1 connection waits for its next
    /// request, so it also closes HTTP/1 keep-alive connections idle this long.
    pub header_read_timeout: Duration,
    /// A connection with no request in flight for this long is closed
    /// (`HTTP_IDLE_TIMEOUT_SECS`, 75; HTTP/1 connections close sooner, see above). Clients
    /// that pool connections must drop idle ones sooner than the server does, or a request
    /// can race the close; the gateway's drop them after 20 s.
    pub idle_timeout: Duration,
    /// Most open connections (`HTTP_MAX_CONNECTIONS`; by default 4096, or fewer so that a
    /// quarter of the file-descriptor limit, at least 64, stays free for the service's own
    /// connections and files: see [`default_max_connections`]).
    pub max_connections: usize,
    /// The address every listener of the service binds (`BIND_ADDRESS`, 0.0.0.0: every
    /// interface, as a container needs; `cargo xtask up` sets 127.0.0.1).
    pub bind_address: std::net::IpAddr,
    /// A second listener (`METRICS_PORT`, unset) that serves `/metrics` and the health
    /// probes only; when set, the main listener no longer serves `/metrics`, so the metrics
    /// need not be public.
    pub metrics_port: Option<u16>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(75),
            max_connections: 4096,
            bind_address: std::net::IpAddr::from([0, 0, 0, 0]),
            metrics_port: None,
        }
    }
}

/// The connection cap for a process allowed `descriptors` open files: 4096, or the limit less
/// a quarter of it (at least 64) when that is smaller, so that idle sockets can never take the
/// descriptors the service needs for its databases, brokers and downstream calls.
pub fn default_max_connections(descriptors: Option<u64>) -> usize {
    const CAP: usize = 4096;
    match descriptors {
        None => CAP,
        Some(n) => {
            let free = n.saturating_sub((n / 4).max(64)).max(1);
            usize::try_from(free).map_or(CAP, |free| free.min(CAP))
        }
    }
}

/// The process's soft limit on open files, raised first to its hard limit (as Go's runtime
/// does): the soft limit many systems default to (1024) is far below what a server needs.
/// `None` where there is no such limit.
pub fn descriptor_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        static RAISED: std::sync::Once = std::sync::Once::new();
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
        unsafe {
            RAISED.call_once(|| {
                if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0
                    && limit.rlim_cur < limit.rlim_max
                {
                    let raised = libc::rlimit {
                        rlim_cur: limit.rlim_max,
                        rlim_max: limit.rlim_max,
                    };
                    libc::setrlimit(libc::RLIMIT_NOFILE, &raised);
                }
            });
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0
                || limit.rlim_cur == libc::RLIM_INFINITY
            {
                return None;
            }
        }
        Some(limit.rlim_cur)
    }
    #[cfg(not(unix))]
    None
}

impl HttpConfig {
    /// Reads the settings from `env`.
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let d = Self {
            max_connections: default_max_connections(descriptor_limit()),
            ..Self::default()
        };
        Ok(Self {
            header_read_timeout: Duration::from_millis(env.parse_or(
                "HTTP_HEADER_READ_TIMEOUT_MS",
                d.header_read_timeout.as_millis() as u64,
            )?),
            idle_timeout: Duration::from_secs(
                env.parse_or("HTTP_IDLE_TIMEOUT_SECS", d.idle_timeout.as_secs())?,
            ),
            max_connections: env
                .parse_or("HTTP_MAX_CONNECTIONS", d.max_connections)?
                .max(1),
            bind_address: env.parse_or("BIND_ADDRESS", d.bind_address)?,
            metrics_port: env
                .get("METRICS_PORT")
                .map(|_| env.parse_or("METRICS_PORT", 0))
                .transpose()?,
        })
    }
}

/// Serves `app` on `listener` within `limits` until `shutdown` resolves, then drains.
pub async fn serve<E, F>(
    listener: TcpListener,
    app: E,
    limits: HttpConfig,
    shutdown: F,
) -> std::io::Result<()>
where
    E: Endpoint + 'static,
    F: Future<Output = ()> + Send,
{
    let local = listener.local_addr()?;
    let app = Arc::new(app);
    let connections = Arc::new(Connections::new(limits.max_connections));
    let (drain_tx, drain) = watch::channel(false);
    let mut http = auto::Builder::new(TokioExecutor::new());
    http.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    http.http2().timer(TokioTimer::new());
    let http = Arc::new(http);
    tracing::info!(addr = %local, "listening");

    tokio::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, typically: wait for some to close.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(conn) = connections.admit() else {
            metrics::counter!("http_connections_refused_total").increment(1);
            continue;
        };
        let task = ConnectionTask {
            app: app.clone(),
            http: http.clone(),
            local,
            remote,
            header_read_timeout: limits.header_read_timeout,
            idle_timeout: limits.idle_timeout,
            drain: drain.clone(),
        };
        tokio::spawn(task.run(stream, conn));
    }

    drop(listener);
    let _ = drain_tx.send(true);
    connections.closed_all(DRAIN_TIMEOUT).await;
    tracing::info!(addr = %local, "server stopped");
    Ok(())
}

/// What one connection's task needs.
struct ConnectionTask<E> {
    app: Arc<E>,
    http: Arc<auto::Builder<TokioExecutor>>,
    local: SocketAddr,
    remote: SocketAddr,
    header_read_timeout: Duration,
    idle_timeout: Duration,
    drain: watch::Receiver<bool>,
}

impl<E: Endpoint + 'static> ConnectionTask<E> {
    async fn run(self, stream: TcpStream, conn: Admitted) {
        let state = conn.state.clone();
        let started = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let service = {
            let (app, state, drain) = (self.app.clone(), state.clone(), self.drain.clone());
            let (local, remote, started) = (self.local, self.remote, started.clone());
            hyper::service::service_fn(move |req: http::Request<Incoming>| {
                let (app, state, drain) = (app.clone(), state.clone(), drain.clone());
                started.store(true, Ordering::Release);
                async move {
                    let _busy = Busy::enter(&state);
                    let http1 = req.version() < http::Version::HTTP_2;
                    let req: Request = (
                        req,
                        LocalAddr(Addr::SocketAddr(local)),
                        RemoteAddr(Addr::SocketAddr(remote)),
                        http::uri::Scheme::HTTP,
                    )
                        .into();
                    let mut resp = app.get_response(req).await;
                    if http1 && *drain.borrow() {
                        // The client learns from the answer itself that this connection ends,
                        // so it sends its next request elsewhere.
                        resp.headers_mut().insert(
                            http::header::CONNECTION,
                            http::HeaderValue::from_static("close"),
                        );
                    }
                    Ok::<_, Infallible>(hyper::Response::<BoxBody<Bytes, std::io::Error>>::from(
                        resp,
                    ))
                }
            })
        };
        let served = self
            .http
            .serve_connection_with_upgrades(TokioIo::new(stream), service);
        tokio::pin!(served);
        let mut evicted = state.close.subscribe();
        let mut drain = self.drain.clone();
        // hyper's head timer starts at the first byte; a socket that sends nothing would stay
        // open until the idle timeout. The first head must arrive within the timeout of accept.
        let silent = async {
            tokio::time::sleep(self.header_read_timeout).await;
            if started.load(Ordering::Acquire) {
                std::future::pending::<()>().await;
            }
        };
        let draining = tokio::select! {
            _ = &mut served => return,
            _ = silent => false,
            _ = evicted.wait_for(|closed| *closed) => false,
            _ = state.idle_for(self.idle_timeout) => false,
            _ = drain.wait_for(|draining| *draining) => true,
        };
        if draining {
            // Closing a kept-alive connection at once would drop a request the client may
            // already have sent on it. Answers now carry `Connection: close`, so busy HTTP/1
            // connections end after their next answer; the rest are closed once quiet.
            let quiet = tokio::time::timeout(DRAIN_QUIET_MAX, state.idle_for(DRAIN_QUIET));
            tokio::select! {
                _ = &mut served => return,
                _ = quiet => {}
            }
        }
        // Finishes a request in flight (answered with `Connection: close`, or after a GOAWAY
        // on HTTP/2); a client still sending its head gets a grace period to finish it.
        served.as_mut().graceful_shutdown();
        let grace = if draining { DRAIN_TIMEOUT } else { CLOSE_GRACE };
        let _ = tokio::time::timeout(grace, served).await;
    }
}

/// The open connections of one server.
struct Connections {
    open: Mutex<BTreeMap<u64, Arc<ConnectionState>>>,
    next_id: AtomicU64,
    max: usize,
    /// Notified whenever a connection ends.
    ended: Notify,
    epoch: Instant,
}

/// What the server knows about one connection.
struct ConnectionState {
    in_flight: AtomicUsize,
    /// Milliseconds since [`Connections::epoch`] at the last request start or end.
    last_active: AtomicU64,
    epoch: Instant,
    close: watch::Sender<bool>,
}

/// A connection's place among the open ones, given up when dropped.
struct Admitted {
    id: u64,
    state: Arc<ConnectionState>,
    connections: Arc<Connections>,
}

impl Connections {
    fn new(max: usize) -> Self {
        Self {
            open: Mutex::default(),
            next_id: AtomicU64::new(0),
            max,
            ended: Notify::new(),
            epoch: Instant::now(),
        }
    }

    /// Admits a new connection, closing the longest-idle one when at the cap; `None` (refuse)
    /// when at the cap with every connection busy.
    fn admit(self: &Arc<Self>) -> Option<Admitted> {
        let mut open = self.open.lock().ok()?;
        if open.len() >= self.max {
            let (&victim, _) = open
                .iter()
                .filter(|(_, c)| c.in_flight.load(Ordering::Acquire) == 0)
                .min_by_key(|(_, c)| c.last_active.load(Ordering::Acquire))?;
            if let Some(c) = open.remove(&victim) {
                let _ = c.close.send(true);
                metrics::counter!("http_connections_evicted_total").increment(1);
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(ConnectionState {
            in_flight: AtomicUsize::new(0),
            last_active: AtomicU64::new(self.now_ms()),
            epoch: self.epoch,
            close: watch::channel(false).0,
        });
        open.insert(id, state.clone());
        metrics::gauge!("http_connections_open").set(open.len() as f64);
        Some(Admitted {
            id,
            state,
            connections: self.clone(),
        })
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Resolves when no connection is open, or after `within`.
    async fn closed_all(&self, within: Duration) {
        let deadline = tokio::time::sleep(within);
        tokio::pin!(deadline);
        loop {
            let ended = self.ended.notified();
            if self.open.lock().map(|o| o.is_empty()).unwrap_or(true) {
                return;
            }
            tokio::select! {
                _ = ended => {}
                _ = &mut deadline => {
                    tracing::warn!("drain timed out with connections open");
                    return;
                }
            }
        }
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Ok(mut open) = self.connections.open.lock() {
            open.remove(&self.id);
            metrics::gauge!("http_connections_open").set(open.len() as f64);
        }
        self.connections.ended.notify_waiters();
    }
}

impl ConnectionState {
    fn touch(&self) {
        self.last_active
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Release);
    }

    /// Resolves once the connection has had no request in flight for `timeout`.
    async fn idle_for(&self, timeout: Duration) {
        loop {
            let last = self.last_active.load(Ordering::Acquire);
            let idle_until = self.epoch + Duration::from_millis(last) + timeout;
            tokio::time::sleep_until(idle_until.into()).await;
            let busy = self.in_flight.load(Ordering::Acquire) > 0;
            if !busy && self.last_active.load(Ordering::Acquire) == last {
                return;
            }
            if busy {
                // A long request: look again a timeout later rather than spin.
                tokio::time::sleep(timeout).await;
            }
        }
    }
}

/// Marks a request in flight on its connection for as long as it lives.
struct Busy<'a>(&'a ConnectionState);

impl<'a> Busy<'a> {
    fn enter(state: &'a ConnectionState) -> Self {
        state.in_flight.fetch_add(1, Ordering::AcqRel);
        state.touch();
        Self(state)
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}
