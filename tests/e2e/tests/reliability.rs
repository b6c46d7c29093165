//! Fault drills against the real infrastructure: a broker outage, a consumer killed with
//! SIGKILL mid-stream, poison in the stream, a Redis restart under load, and fuzzed GraphQL.
//! Each prints its figures (sent / stored / duplicated, requests / 5xx) for the record.

use shopmesh_events::Event as _;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use lapin::BasicProperties;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use serde_json::{Value, json};
use shopmesh_e2e::processes::bin_dir;
use shopmesh_e2e::{MAX_RETRIES, Platform, PlatformOptions};
use shopmesh_events::{ORDER_CREATED_ROUTING_KEY, OrderCreatedV1};
use shopmesh_identity::Role;
use shopmesh_openapi::orders::{CreateOrderRequest, OrdersClient};
use shopmesh_testkit::stack::{Output, terminate};
use shopmesh_testkit::{Ports, Service, TcpProxy, amqp_url, eventually, reroute};

#[tokio::test]
async fn broker_outage_loses_and_duplicates_nothing() {
    let (target, _) = reroute(&amqp_url(), "x:1");
    let proxy = TcpProxy::start(&target).await;
    proxy.cut();
    let (_, via_proxy) = reroute(&amqp_url(), &proxy.addr.to_string());
    let platform = Platform::start(PlatformOptions {
        relay_amqp_url: via_proxy,
        ..PlatformOptions::default()
    })
    .await
    .unwrap();

    let client = OrdersClient::new(platform.orders_url.clone());
    let created: Vec<i64> = futures::stream::iter(0..200)
        .map(|i| {
            let client = client.clone();
            let shopper = platform.token(1 + i % 5, Role::User);
            async move {
                match client
                    .create_order(
                        &shopper,
                        None,
                        &CreateOrderRequest {
                            user_id: 1 + i % 5,
                            product_id: 1 + i,
                            quantity: 1,
                            payment_token: None,
                        },
                    )
                    .await
                {
                    Ok(o) => o.id,
                    other => panic!("order {i} not accepted during the outage: {other:?}"),
                }
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert_eq!(created.len(), 200);
    assert!(!platform.relay.connected(), "the broker is unreachable");
    assert_eq!(
        platform.orders_store.pending_outbox().await.unwrap(),
        200,
        "all 200 events wait in the outbox"
    );

    proxy.restore();
    eventually("200 notifications", Duration::from_secs(60), || async {
        (platform.notification_count().await >= 200).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stored = platform.notification_count().await;
    let duplicates = platform.consumer.duplicates.load(Ordering::SeqCst);
    println!(
        "broker outage: orders created 200, events published {}, notifications stored {stored}, redeliveries deduplicated {duplicates}",
        platform.relay.published()
    );
    assert_eq!(stored, 200, "exactly one notification per order");
    assert_eq!(platform.relay.published(), 200);
    assert_eq!(platform.orders_store.pending_outbox().await.unwrap(), 0);
    platform.stop().await;
}

/// A notifications process consuming the platform's queue, on ports of its own (the
/// platform's in-process notifications keeps serving gRPC).
fn spawn_notifications(platform: &Platform) -> Child {
    let mut stack = platform
        .stack
        .clone()
        .set_for(Service::Notifications, "CONSUMER_ENABLED", "true")
        .set_for(Service::Notifications, "CONSUMER_RETRY_BASE_MS", "200")
        .set_for(
            Service::Notifications,
            "CONSUMER_MAX_RETRIES",
            MAX_RETRIES.to_string(),
        )
        .set_for(Service::Notifications, "CONSUMER_PREFETCH", "32");
    stack.ports = Ports::free().unwrap();
    stack
        .spawn_one(&bin_dir(), Service::Notifications, Output::Inherit)
        .unwrap()
}

#[tokio::test]
async fn consumer_killed_mid_stream_resumes_without_loss_or_duplicates() {
    let platform = Platform::start(PlatformOptions {
        run_consumer: false,
        ..PlatformOptions::default()
    })
    .await
    .unwrap();
    let mut consumer = spawn_notifications(&platform);

    let conn = shopmesh_common::amqp::connect(
        &amqp_url(),
        "reliability-publisher",
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let (exchange, publisher) = (platform.topology.exchange.clone(), ch.clone());
    let publishing = tokio::spawn(async move {
        let mut poison = 0;
        for i in 1..=500i64 {
            let event = OrderCreatedV1 {
                event_id: uuid::Uuid::now_v7(),
                order_id: i,
                user_id: 1 + i % 9,
                product_id: i,
                quantity: 1,
                created_at: chrono::Utc::now(),
            };
            let props = BasicProperties::default()
                .with_message_id(event.event_id.to_string().into())
                .with_delivery_mode(2);
            publisher
                .basic_publish(
                    &exchange,
                    ORDER_CREATED_ROUTING_KEY,
                    BasicPublishOptions::default(),
                    &event.to_json(),
                    props,
                )
                .await
                .unwrap()
                .await
                .unwrap();
            if i % 100 == 0 {
                // Poison and an oversized payload in the middle of the stream.
                for payload in [b"not json at all".to_vec(), vec![b'x'; 100 * 1024]] {
                    publisher
                        .basic_publish(
                            &exchange,
                            ORDER_CREATED_ROUTING_KEY,
                            BasicPublishOptions::default(),
                            &payload,
                            BasicProperties::default(),
                        )
                        .await
                        .unwrap()
                        .await
                        .unwrap();
                    poison += 1;
                }
            }
            if i % 50 == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        poison
    });

    eventually(
        "the consumer to be mid-stream",
        Duration::from_secs(30),
        || async { (platform.notification_count().await >= 120).then_some(()) },
    )
    .await;
    consumer.kill().unwrap(); // SIGKILL: no graceful shutdown, unacked messages return to the queue
    consumer.wait().unwrap();
    let at_kill = platform.notification_count().await;
    let poison = publishing.await.unwrap();
    let mut consumer = spawn_notifications(&platform);
    eventually(
        "500 notifications after the restart",
        Duration::from_secs(60),
        || async { (platform.notification_count().await >= 500).then_some(()) },
    )
    .await;
    let dlq = platform.topology.dead_letter_queue();
    let dead = eventually("poison in the DLQ", Duration::from_secs(20), || async {
        let depth = ch
            .queue_declare(
                &dlq,
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .ok()?
            .message_count();
        (depth >= poison).then_some(depth)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stored = platform.notification_count().await;
    println!(
        "consumer crash: events sent 500 (+{poison} poison), stored before SIGKILL {at_kill}, stored after restart {stored}, dead-lettered {dead}"
    );
    assert_eq!(
        stored, 500,
        "every event stored exactly once across the crash"
    );
    assert_eq!(
        dead, poison,
        "all poison and oversized messages dead-lettered, nothing else"
    );
    terminate(&consumer);
    let status = consumer.wait().unwrap();
    assert!(status.success(), "graceful stop on SIGTERM: {status}");
    let _ = conn.close(200, "done").await;
    platform.stop().await;
}

/// A redis-server of the test's own, on a free port, that it can kill and restart.
struct OwnRedis {
    port: u16,
    child: Child,
}

impl OwnRedis {
    fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server on PATH (Debian package redis-server)");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { port, child }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn redis_restart_under_load_keeps_the_gateway_and_users_answering() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut redis = OwnRedis::start(port);
    let platform = Platform::start(PlatformOptions {
        redis_url: format!("redis://127.0.0.1:{port}/"),
        rate_limit: 1_000_000,
        ..PlatformOptions::default()
    })
    .await
    .unwrap();
    let admin = platform.token(4, Role::Admin);
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        admin.header_value().parse().unwrap(),
    );
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .default_headers(headers)
        .build()
        .unwrap();
    let order = OrdersClient::new(platform.orders_url.clone())
        .create_order(
            &platform.token(1, Role::User),
            None,
            &CreateOrderRequest {
                user_id: 1,
                product_id: 1,
                quantity: 1,
                payment_token: None,
            },
        )
        .await
        .unwrap();

    let (tried, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for worker in 0..4 {
        let (http, tried, failed, stop) =
            (http.clone(), tried.clone(), failed.clone(), stop.clone());
        let urls = [
            format!("{}/api/orders/{}", platform.gateway_url, order.id),
            format!("{}/api/users/{}", platform.gateway_url, 1 + worker % 3),
            format!("{}/users/{}", platform.users_url, 1 + worker % 3),
        ];
        load.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let url = &urls[i % urls.len()];
                i += 1;
                tried.fetch_add(1, Ordering::SeqCst);
                match http
                    .get(url)
                    .header("x-forwarded-for", format!("10.9.0.{worker}"))
                    .send()
                    .await
                {
                    Ok(r) if r.status().is_success() => {}
                    Ok(r) => {
                        failed.fetch_add(1, Ordering::SeqCst);
                        eprintln!("{url}: {}", r.status());
                    }
                    Err(e) => {
                        failed.fetch_add(1, Ordering::SeqCst);
                        eprintln!("{url}: {e}");
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    redis.kill();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let during_outage = tried.load(Ordering::SeqCst);
    let mut redis = OwnRedis::start(redis.port);
    // Users are served from process memory only while the change channel (in Redis) is
    // heard: the tier went quiet with Redis and must serve again once Redis is back.
    let hits_before = platform.gateway.backends.user_memory_hits();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    stop.store(true, Ordering::SeqCst);
    for l in load {
        l.await.unwrap();
    }
    let (tried, failed) = (tried.load(Ordering::SeqCst), failed.load(Ordering::SeqCst));
    let hits_after = platform.gateway.backends.user_memory_hits();
    println!(
        "redis restart: requests tried {tried}, failed {failed}, cache errors {}, user memory hits after restart {}",
        platform
            .gateway
            .backends
            .cache()
            .stats()
            .errors
            .load(Ordering::Relaxed),
        hits_after - hits_before
    );
    assert!(tried > during_outage && during_outage > 0);
    assert_eq!(
        failed, 0,
        "no request failed while Redis restarted (rate limit fails open)"
    );
    assert!(
        platform
            .gateway
            .backends
            .cache()
            .stats()
            .errors
            .load(Ordering::Relaxed)
            > 0,
        "the outage was noticed"
    );
    assert!(
        platform.gateway.backends.cache().is_up(),
        "the Redis cache is used again after Redis returns"
    );
    assert!(
        hits_after > hits_before,
        "the user memory tier serves again after Redis returns"
    );
    redis.kill();
    platform.stop().await;
}

/// Small deterministic generator, so a failing fuzz case can be replayed from its seed.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

fn fuzz_query(rng: &mut XorShift) -> Value {
    let ids = [
        "1",
        "2",
        "0",
        "-7",
        "abc",
        "",
        "99999999999999999999",
        "1e3",
        "3",
        "\\u0000",
        "9223372036854775807",
    ];
    let valid = [
        "query($id: ID!) { order(id: $id) { id status user { name } notifications { message } } }",
        "query($id: ID!) { userName(id: $id) }",
        "query($id: ID!) { user(id: $id) { id name email createdAt } }",
        "query($id: ID!) { ordersByUser(userId: $id, first: 3) { nodes { id } pageInfo { hasNextPage endCursor } } }",
        "mutation($id: ID!) { createOrder(input: { userId: $id, productId: $id, quantity: 1 }) { id } }",
        "mutation { createOrder(input: { userId: \"1\", productId: \"1\", quantity: 5000 }) { id } }",
        "mutation { createUser(input: { name: \"\", email: \"x\" }) { id } }",
        "{ ordersByUser(userId: \"1\", first: -1) { nodes { id } } }",
        "{ ordersByUser(userId: \"1\", after: \"garbage\") { nodes { id } } }",
        "{ __typename }",
    ];
    let mut query = rng.pick(&valid).to_owned();
    match rng.next() % 6 {
        0 => {
            let cut = (rng.next() as usize) % query.len().max(1);
            query.truncate(cut);
        }
        1 => {
            let at = (rng.next() as usize) % query.len().max(1);
            let junk = rng.pick(&[
                "{",
                "}",
                "(",
                "$",
                "\"",
                "!",
                "...",
                "@skip",
                "#",
                "\u{1F600}",
            ]);
            query.insert_str(at, junk);
        }
        2 => query = query.replace("name", "nosuchfield"),
        _ => {}
    }
    let variables = match rng.next() % 4 {
        0 => json!({ "id": rng.pick(&ids) }),
        1 => json!({ "id": rng.next() as i64 }),
        2 => json!({ "id": null }),
        _ => json!("not an object"),
    };
    json!({ "query": query, "variables": variables })
}

#[tokio::test]
async fn fuzzed_graphql_never_gets_a_5xx_or_panics() {
    let platform = Platform::start(PlatformOptions::default()).await.unwrap();
    // As Alice: her own data resolves, everyone else's is refused; neither may 5xx.
    let http = shopmesh_testkit::authed_http(&platform.token(1, Role::User));
    let mut rng = XorShift(0x5eed_cafe_f00d_d00d);
    let (mut tried, mut server_errors) = (0u32, 0u32);
    for case in 0..400 {
        let body = fuzz_query(&mut rng);
        let raw = if case % 25 == 0 {
            "{ definitely not json".to_owned()
        } else {
            body.to_string()
        };
        let resp = http
            .post(format!("{}/graphql", platform.gateway_url))
            .header("content-type", "application/json")
            .body(raw.clone())
            .send()
            .await
            .unwrap();
        tried += 1;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        if status >= 500 {
            server_errors += 1;
            eprintln!("case {case}: {status} for {raw}: {text}");
        }
        assert!(
            serde_json::from_str::<Value>(&text).is_ok(),
            "case {case}: answer is JSON: {text}"
        );
    }
    // The gateway is still healthy after the barrage.
    let alive = http
        .post(format!("{}/graphql", platform.gateway_url))
        .json(&json!({"query": "{ userName(id: \"1\") }"}))
        .send()
        .await
        .unwrap();
    let alive: Value = alive.json().await.unwrap();
    println!("graphql fuzz: requests tried {tried}, 5xx {server_errors}");
    assert_eq!(server_errors, 0);
    assert_eq!(alive["data"]["userName"], "Alice Johnson");
    platform.stop().await;
}
