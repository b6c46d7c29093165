//! Serving HTTP: binding (ephemeral ports for tests), the standard middleware stack, and the
//! server with its connection limits and drain ([`server`]).

use std::net::SocketAddr;
use std::time::Duration;

use poem::http::{StatusCode, header};
use poem::{
    Body, Endpoint, EndpointExt, IntoEndpoint, IntoResponse, Middleware, Request, Response,
};

use crate::problem::ProblemErrors;

/// Largest request body any service accepts: 64 KiB.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

pub mod server;

pub use server::{DRAIN_TIMEOUT, HttpConfig, default_max_connections, descriptor_limit, serve};

/// Binds `addr` (port 0 picks a free port) and returns the listener and the bound address.
pub async fn bind(addr: &str) -> std::io::Result<(tokio::net::TcpListener, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

/// An HTTP listener bound when a service is built and served when it runs, so a service (or a
/// test, with port 0) knows its address before it serves. With a metrics port it is two
/// listeners: the main one without `/metrics`, and one with `/metrics` and the probes only.
pub struct HttpListener {
    listener: tokio::net::TcpListener,
    metrics: Option<tokio::net::TcpListener>,
    config: HttpConfig,
}

/// The paths the metrics listener serves.
const INTERNAL_PATHS: &[&str] = &["/metrics", "/health/live", "/health/ready"];

impl HttpListener {
    /// Binds `port` on `config`'s bind address (port 0 picks a free port), and the metrics
    /// port when `config` has one.
    pub async fn bind(port: u16, config: HttpConfig) -> std::io::Result<Self> {
        let at = |port| SocketAddr::new(config.bind_address, port).to_string();
        let (listener, _) = bind(&at(port)).await?;
        let metrics = match config.metrics_port {
            Some(port) => Some(bind(&at(port)).await?.0),
            None => None,
        };
        Ok(Self {
            listener,
            metrics,
            config,
        })
    }

    /// The bound addresses.
    pub fn addrs(&self) -> crate::service::Addrs {
        let addr = |l: &tokio::net::TcpListener| {
            l.local_addr()
                .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
        };
        crate::service::Addrs {
            http: addr(&self.listener),
            grpc: None,
            metrics: self.metrics.as_ref().map(addr),
        }
    }

    /// Serves `app` until `shutdown`, then drains (see [`server`]).
    pub async fn serve<E: Endpoint + 'static>(
        self,
        app: E,
        shutdown: &crate::shutdown::Shutdown,
    ) -> std::io::Result<()> {
        let Some(metrics) = self.metrics else {
            return serve(self.listener, app, self.config, shutdown.wait()).await;
        };
        let app = std::sync::Arc::new(app);
        let public = PathFilter::except(&["/metrics"], app.clone());
        let internal = PathFilter::only(INTERNAL_PATHS, app);
        let (public, internal) = tokio::join!(
            serve(self.listener, public, self.config, shutdown.wait()),
            serve(metrics, internal, self.config, shutdown.wait()),
        );
        public.and(internal)
    }
}

/// Answers 404 (problem+json) for the paths a listener does not serve.
pub struct PathFilter<E> {
    inner: E,
    paths: &'static [&'static str],
    listed_are_served: bool,
}

impl<E> PathFilter<E> {
    /// Serves every path but `paths`.
    pub fn except(paths: &'static [&'static str], inner: E) -> Self {
        Self {
            inner,
            paths,
            listed_are_served: false,
        }
    }

    /// Serves `paths` only.
    pub fn only(paths: &'static [&'static str], inner: E) -> Self {
        Self {
            inner,
            paths,
            listed_are_served: true,
        }
    }
}

impl<E: Endpoint> Endpoint for PathFilter<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let listed = self.paths.contains(&req.uri().path());
        if listed != self.listed_are_served {
            let problem = crate::problem::Problem::new(404, "not served on this listener");
            return Ok(crate::problem::response(&problem));
        }
        Ok(self.inner.call(req).await?.into_response())
    }
}

/// The middleware every service wraps its routes in: body limit ([`MAX_BODY_BYTES`], or what
/// the contract's `BODY_LIMITS` allow on a path), problem+json errors, request metrics
/// labelled with `service`, request tracing.
pub fn standard<E>(
    service: &'static str,
    body_limits: &'static [(&'static str, usize)],
    ep: E,
) -> impl Endpoint<Output = Response>
where
    E: IntoEndpoint,
    E::Endpoint: 'static,
{
    ep.into_endpoint()
        .with(BodyLimit::new(MAX_BODY_BYTES, body_limits))
        .with(ProblemErrors)
        .with(crate::metrics::RequestMetrics(service))
        .with(crate::telemetry::TraceRequests)
        .map_to_response()
}

/// When the process was started as `<binary> healthcheck` (the container HEALTHCHECK), GETs
/// `http://127.0.0.1:$PORT/health/live` (port from `port_env`, else `default_port`) and exits
/// 0 if it answers 200, 1 otherwise. Returns normally for any other command line.
pub fn healthcheck_command(port_env: &str, default_port: u16) {
    if std::env::args().nth(1).as_deref() != Some("healthcheck") {
        return;
    }
    let port = std::env::var(port_env)
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(default_port);
    let ok = live_probe(port).unwrap_or(false);
    std::process::exit(if ok { 0 } else { 1 });
}

fn live_probe(port: u16) -> std::io::Result<bool> {
    use std::io::{Read, Write};
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head)?;
    Ok(head.starts_with(b"HTTP/1.1 200"))
}

/// Rejects request bodies over a byte limit with 413: by `Content-Length` when present, and by
/// reading at most the limit when the length is not declared.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit {
    default: usize,
    paths: &'static [(&'static str, usize)],
}

impl BodyLimit {
    /// `default` bytes, except on the listed paths.
    pub fn new(default: usize, paths: &'static [(&'static str, usize)]) -> Self {
        Self { default, paths }
    }
}

impl<E: Endpoint> Middleware<E> for BodyLimit {
    type Output = BodyLimitEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        BodyLimitEndpoint {
            inner: ep,
            limits: *self,
        }
    }
}

/// Endpoint produced by [`BodyLimit`].
pub struct BodyLimitEndpoint<E> {
    inner: E,
    limits: BodyLimit,
}

impl<E: Endpoint> Endpoint for BodyLimitEndpoint<E> {
    type Output = E::Output;

    async fn call(&self, mut req: Request) -> poem::Result<Self::Output> {
        let path = req.uri().path();
        let limit = self
            .limits
            .paths
            .iter()
            .find(|(p, _)| *p == path)
            .map_or(self.limits.default, |(_, bytes)| *bytes);
        let too_large = || {
            poem::Error::from_string(
                format!("request body exceeds {limit} bytes"),
                StatusCode::PAYLOAD_TOO_LARGE,
            )
        };
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        match declared {
            Some(len) if len > limit => return Err(too_large()),
            Some(_) => {}
            None => {
                // Chunked (HTTP/1.1) or undeclared (HTTP/2): read at most the limit.
                let bytes = req
                    .take_body()
                    .into_bytes_limit(limit)
                    .await
                    .map_err(|_| too_large())?;
                req.set_body(Body::from(bytes));
            }
        }
        self.inner.call(req).await
    }
}

#[cfg(test)]
mod tests {
    use poem::test::TestClient;
    use poem::{EndpointExt, Route, handler, post};

    use super::*;

    #[test]
    fn forwarded_for_is_believed_only_from_a_trusted_peer() {
        let proxies: Vec<ipnet::IpNet> = vec!["127.0.0.1/32".parse().unwrap()];
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        let header = Some("203.0.113.9");
        assert_eq!(
            client_address(ip("127.0.0.1"), header, &proxies),
            ip("203.0.113.9")
        );
        assert_eq!(
            client_address(ip("198.51.100.4"), header, &proxies),
            ip("198.51.100.4")
        );
        assert_eq!(
            client_address(ip("127.0.0.1"), header, &[]),
            ip("127.0.0.1")
        );
        assert_eq!(
            client_address(ip("127.0.0.1"), None, &proxies),
            ip("127.0.0.1")
        );
        assert_eq!(
            client_address(ip("127.0.0.1"), Some("junk"), &proxies),
            ip("127.0.0.1")
        );
    }

    #[handler]
    async fn echo(body: String) -> String {
        format!("{} bytes", body.len())
    }

    fn app() -> impl Endpoint<Output = Response> {
        standard("test", &[], Route::new().at("/echo", post(echo)))
    }

    #[tokio::test]
    async fn a_path_the_contract_allows_more_takes_a_larger_body_and_no_more() {
        const LIMITS: &[(&str, usize)] = &[("/import", MAX_BODY_BYTES * 2)];
        let cli = TestClient::new(standard(
            "test",
            LIMITS,
            Route::new()
                .at("/import", post(echo))
                .at("/echo", post(echo)),
        ));
        let fits = "x".repeat(MAX_BODY_BYTES + 1);
        cli.post("/import")
            .body(fits.clone())
            .send()
            .await
            .assert_status_is_ok();
        cli.post("/echo")
            .body(fits)
            .send()
            .await
            .assert_status(StatusCode::PAYLOAD_TOO_LARGE);
        cli.post("/import")
            .body("x".repeat(MAX_BODY_BYTES * 2 + 1))
            .send()
            .await
            .assert_status(StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[tokio::test]
    async fn declared_length_over_limit_is_413_problem() {
        let cli = TestClient::new(app());
        let resp = cli
            .post("/echo")
            .body("x".repeat(MAX_BODY_BYTES + 1))
            .send()
            .await;
        resp.assert_status(StatusCode::PAYLOAD_TOO_LARGE);
        resp.assert_content_type("application/problem+json");
    }

    #[tokio::test]
    async fn chunked_body_over_limit_is_413_and_under_limit_passes() {
        let chunked = |n: usize| {
            let chunks = vec![Ok::<_, std::io::Error>(bytes_of(n))];
            Body::from_bytes_stream(futures::stream::iter(chunks))
        };
        let cli = TestClient::new(app());
        let resp = cli
            .post("/echo")
            .header(header::TRANSFER_ENCODING, "chunked")
            .body(chunked(MAX_BODY_BYTES + 10))
            .send()
            .await;
        resp.assert_status(StatusCode::PAYLOAD_TOO_LARGE);
        let resp = cli
            .post("/echo")
            .header(header::TRANSFER_ENCODING, "chunked")
            .body(chunked(100))
            .send()
            .await;
        resp.assert_status_is_ok();
        resp.assert_text("100 bytes").await;
    }

    #[tokio::test]
    async fn get_without_body_passes_and_unknown_route_is_problem() {
        let cli = TestClient::new(app());
        let resp = cli.get("/missing").send().await;
        resp.assert_status(StatusCode::NOT_FOUND);
        resp.assert_content_type("application/problem+json");
        let resp = cli.get("/echo").send().await;
        resp.assert_status(StatusCode::METHOD_NOT_ALLOWED);
        resp.assert_content_type("application/problem+json");
    }

    #[test]
    fn allow_lists_the_methods_of_the_matching_template() {
        let allow = AllowHeader(vec![
            ("/orders", &["POST"]),
            ("/orders/{id}", &["GET", "PUT"]),
            ("/orders/user/{userId}", &["GET"]),
        ]);
        assert_eq!(allow.allowed("/orders").as_deref(), Some("POST"));
        assert_eq!(allow.allowed("/orders/42").as_deref(), Some("GET, PUT"));
        assert_eq!(allow.allowed("/orders/user/7").as_deref(), Some("GET"));
        assert_eq!(allow.allowed("/orders/42/extra"), None);
        assert_eq!(allow.allowed("/nope"), None);
    }

    #[tokio::test]
    async fn method_not_allowed_carries_allow() {
        let app = standard("test", &[], Route::new().at("/echo", post(echo)))
            .with(AllowHeader(vec![("/echo", &["POST"])]));
        let resp = TestClient::new(app).get("/echo").send().await;
        resp.assert_status(StatusCode::METHOD_NOT_ALLOWED);
        resp.assert_header("allow", "POST");
    }

    fn bytes_of(n: usize) -> Vec<u8> {
        vec![b'x'; n]
    }
}

/// Adds the `Allow` header (RFC 9110) to 405 responses, listing the methods the requested path
/// supports according to a route table (path templates with `{param}` segments).
#[derive(Debug, Clone)]
pub struct AllowHeader(pub Vec<(&'static str, &'static [&'static str])>);

impl AllowHeader {
    /// A contract's routes plus the operational ones every service serves (`/health/live`,
    /// `/health/ready`, `/metrics`) and `extra` ones (spec, GraphQL).
    pub fn new(
        contract: &[(&'static str, &'static [&'static str])],
        extra: &[(&'static str, &'static [&'static str])],
    ) -> Self {
        const GET: &[&str] = &["GET"];
        let mut routes = contract.to_vec();
        routes.extend_from_slice(extra);
        routes.extend([
            ("/health/live", GET),
            ("/health/ready", GET),
            ("/metrics", GET),
        ]);
        Self(routes)
    }

    /// The methods `path` supports, or `None` when no template matches it.
    pub fn allowed(&self, path: &str) -> Option<String> {
        let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        self.0
            .iter()
            .find(|(template, _)| {
                let parts: Vec<&str> = template.split('/').collect();
                parts.len() == segments.len()
                    && parts
                        .iter()
                        .zip(&segments)
                        .all(|(t, s)| (t.starts_with('{') && !s.is_empty()) || t == s)
            })
            .map(|(_, methods)| methods.join(", "))
    }
}

impl<E: Endpoint> Middleware<E> for AllowHeader {
    type Output = AllowHeaderEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        AllowHeaderEndpoint {
            inner: ep,
            routes: self.clone(),
        }
    }
}

/// Endpoint produced by [`AllowHeader`].
pub struct AllowHeaderEndpoint<E> {
    inner: E,
    routes: AllowHeader,
}

impl<E: Endpoint> Endpoint for AllowHeaderEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Self::Output> {
        let path = req.uri().path().to_owned();
        let mut resp = self.inner.call(req).await?.into_response();
        if resp.status() == StatusCode::METHOD_NOT_ALLOWED
            && let Some(allow) = self.routes.allowed(&path)
            && let Ok(value) = allow.parse()
        {
            resp.headers_mut().insert(header::ALLOW, value);
        }
        Ok(resp)
    }
}

/// The client of a request from `peer` carrying `forwarded` (its `X-Forwarded-For`): the
/// header is believed only when `peer` itself is one of the `trusted` proxies, since anyone
/// else can write whatever they like into it; otherwise the client is the peer.
pub fn client_address(
    peer: std::net::IpAddr,
    forwarded: Option<&str>,
    trusted: &[ipnet::IpNet],
) -> std::net::IpAddr {
    let peer_trusted = trusted.iter().any(|net| net.contains(&peer));
    forwarded
        .filter(|_| peer_trusted)
        .and_then(|header| forwarded_client(header, trusted))
        .unwrap_or(peer)
}

/// The client in an `X-Forwarded-For` list: proxies append the address they received from, so
/// reading from the right, the first address outside `trusted` is the client; everything to
/// its left was written by the client and is ignored. When every entry is trusted, the
/// left-most is the client.
pub fn forwarded_client(header: &str, trusted: &[ipnet::IpNet]) -> Option<std::net::IpAddr> {
    let hops: Vec<std::net::IpAddr> = header
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    hops.iter()
        .rev()
        .find(|ip| !trusted.iter().any(|net| net.contains(*ip)))
        .or(hops.first())
        .copied()
}
