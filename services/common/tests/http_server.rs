//! The HTTP server's connection limits, against real sockets: slow request heads are cut off,
//! idle connections are closed, and at the connection cap a new client is still served.

use std::time::Duration;

use poem::{Route, get, handler};
use shopmesh_common::http::{HttpConfig, serve};
use shopmesh_common::shutdown::Shutdown;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[handler]
fn hello() -> &'static str {
    "hello"
}

struct Server {
    addr: std::net::SocketAddr,
    shutdown: Shutdown,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

async fn start(limits: HttpConfig) -> Server {
    let (listener, addr) = shopmesh_common::http::bind("127.0.0.1:0").await.unwrap();
    let shutdown = Shutdown::new();
    let s = shutdown.clone();
    tokio::spawn(async move {
        serve(
            listener,
            Route::new().at("/", get(hello)),
            limits,
            async move { s.wait().await },
        )
        .await
    });
    Server { addr, shutdown }
}

/// Whether the server closes `stream` (EOF or reset) within `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            // A response (e.g. 408) before the close is fine.
            Ok(Ok(_)) => {}
        }
    }
}

async fn get_ok(stream: &mut TcpStream) -> bool {
    if stream
        .write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 4096];
    match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
        Ok(Ok(n)) => buf[..n].starts_with(b"HTTP/1.1 200") && buf[..n].ends_with(b"hello"),
        _ => false,
    }
}

#[tokio::test]
async fn a_client_that_trickles_its_request_head_is_cut_off() {
    let server = start(HttpConfig {
        header_read_timeout: Duration::from_millis(500),
        ..HttpConfig::default()
    })
    .await;
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n")
        .await
        .unwrap();
    let trickle = async {
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if slow.write_all(b"X-Slow: 1\r\n").await.is_err() {
                return;
            }
        }
    };
    trickle.await;
    assert!(
        closed_within(&mut slow, Duration::from_secs(1)).await,
        "a head still incomplete after 4 s (timeout 0.5 s) must have been cut off"
    );
}

#[tokio::test]
async fn a_client_that_sends_nothing_is_cut_off_from_accept() {
    let server = start(HttpConfig {
        header_read_timeout: Duration::from_millis(500),
        // Far longer: only the head's clock may close this socket in time.
        idle_timeout: Duration::from_secs(60),
        ..HttpConfig::default()
    })
    .await;
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    assert!(
        closed_within(&mut silent, Duration::from_secs(3)).await,
        "a socket that sent nothing for 3 s (head timeout 0.5 s) must have been closed"
    );
}

#[test]
fn the_default_connection_cap_leaves_descriptors_for_everything_else() {
    use shopmesh_common::http::default_max_connections;
    assert_eq!(default_max_connections(Some(512)), 384);
    assert_eq!(default_max_connections(Some(1024)), 768);
    assert_eq!(default_max_connections(Some(1 << 20)), 4096);
    assert_eq!(default_max_connections(Some(100)), 36);
    assert_eq!(default_max_connections(None), 4096);
    let config = HttpConfig::from_env(&std::collections::HashMap::<String, String>::new()).unwrap();
    let limit = rlimit_nofile();
    assert!(
        (config.max_connections as u64) < limit,
        "{} under {limit}",
        config.max_connections
    );
}

fn rlimit_nofile() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let soft = line.split_whitespace().nth(3).unwrap();
    soft.parse().unwrap_or(u64::MAX)
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let server = start(HttpConfig {
        idle_timeout: Duration::from_millis(500),
        ..HttpConfig::default()
    })
    .await;
    let mut client = TcpStream::connect(server.addr).await.unwrap();
    assert!(get_ok(&mut client).await);
    assert!(
        closed_within(&mut client, Duration::from_secs(3)).await,
        "idle for 3 s with a 0.5 s idle timeout"
    );
}

#[tokio::test]
async fn at_the_connection_cap_idle_and_slow_sockets_make_room_for_a_client() {
    let server = start(HttpConfig {
        max_connections: 20,
        ..HttpConfig::default()
    })
    .await;
    // 15 idle keep-alive connections and 15 that never finish their head: 30 > 20.
    let mut held = Vec::new();
    for _ in 0..15 {
        let mut idle = TcpStream::connect(server.addr).await.unwrap();
        assert!(get_ok(&mut idle).await);
        held.push(idle);
    }
    for _ in 0..15 {
        let mut slow = TcpStream::connect(server.addr).await.unwrap();
        slow.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        held.push(slow);
    }
    let mut client = TcpStream::connect(server.addr).await.unwrap();
    assert!(
        get_ok(&mut client).await,
        "a new client is served at the cap"
    );

    let mut closed = 0;
    for stream in &mut held {
        if closed_within(stream, Duration::from_millis(200)).await {
            closed += 1;
        }
    }
    assert!(
        closed >= 11,
        "31 connections against a cap of 20: at least 11 were closed, not {closed}"
    );
}

#[handler]
async fn slow_hello() -> &'static str {
    tokio::time::sleep(Duration::from_millis(5)).await;
    "hello"
}

/// A replica being replaced: clients keep sending on kept-alive connections while it shuts
/// down. A client may only see its connection refused (it then goes to another replica);
/// a request it did send is always answered.
#[tokio::test]
async fn shutting_down_under_load_drops_no_request() {
    let (listener, addr) = shopmesh_common::http::bind("127.0.0.1:0").await.unwrap();
    let shutdown = Shutdown::new();
    let s = shutdown.clone();
    let server = tokio::spawn(async move {
        let app = Route::new().at("/", get(slow_hello));
        serve(listener, app, HttpConfig::default(), async move {
            s.wait().await
        })
        .await
    });
    let url = format!("http://{addr}/");
    let clients: Vec<_> = (0..64)
        .map(|_| {
            let (url, http) = (url.clone(), reqwest::Client::new());
            tokio::spawn(async move {
                let (mut answered, mut failed) = (0u32, Vec::new());
                loop {
                    match http.get(&url).send().await {
                        Ok(resp) if resp.status().is_success() => answered += 1,
                        Ok(resp) => failed.push(format!("status {}", resp.status())),
                        Err(e) if e.is_connect() => break,
                        Err(e) => failed.push(format!("{e:?}")),
                    }
                }
                (answered, failed)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    shutdown.trigger();
    let mut answered = 0;
    let mut failed = Vec::new();
    for client in clients {
        let (a, f) = tokio::time::timeout(Duration::from_secs(20), client)
            .await
            .expect("every client ends once the server refuses it")
            .unwrap();
        answered += a;
        failed.extend(f);
    }
    server.await.unwrap().unwrap();
    assert!(answered > 100, "load ran: {answered} answered");
    assert!(
        failed.is_empty(),
        "{} failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(3)]
    );
}
