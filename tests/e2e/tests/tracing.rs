//! Distributed tracing across real processes: each service exports its spans over OTLP/HTTP to a
//! receiver in this test, and a client's `traceparent` is followed from the gateway through the
//! users and orders REST calls, the outbox, RabbitMQ and the notifications consumer, and the
//! gateway's gRPC call to notifications. The services run with `RUST_LOG=warn`, so this also
//! shows that log filtering does not switch tracing off.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};
use shopmesh_e2e::processes::ProcessPlatform;
use shopmesh_testkit::otlp::{OtlpReceiver, ReceivedSpan, SpanKind};

/// The span id the test client pretends to be (the gateway's root span's parent).
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

fn new_trace_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

async fn graphql(http: &reqwest::Client, gateway: &str, trace_id: &str, query: &str) -> Value {
    let traceparent = format!("00-{trace_id}-{CLIENT_SPAN}-01");
    let headers = [("traceparent", traceparent.as_str())];
    let (_, body) = shopmesh_testkit::graphql(http, gateway, &headers, query, json!({})).await;
    body
}

/// One span of `spans` by service and kind, with a name containing `name`.
fn find<'a>(
    spans: &'a [ReceivedSpan],
    service: &str,
    kind: SpanKind,
    name: &str,
) -> Option<&'a ReceivedSpan> {
    spans
        .iter()
        .find(|s| s.service == service && s.kind == kind && s.name.contains(name))
}

fn describe(spans: &[ReceivedSpan]) -> String {
    spans
        .iter()
        .map(|s| {
            format!(
                "{} {:?} {:?} id={} parent={}",
                s.service, s.kind, s.name, s.span_id, s.parent_span_id
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Waits until the trace holds a span for every `(service, kind, name)` in `expected`.
async fn wait_for_trace(
    receiver: &OtlpReceiver,
    trace_id: &str,
    expected: &[(&str, SpanKind, &str)],
) -> Vec<ReceivedSpan> {
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let spans = receiver.trace(trace_id);
            if expected
                .iter()
                .all(|(svc, kind, name)| find(&spans, svc, *kind, name).is_some())
            {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    found.unwrap_or_else(|_| {
        panic!(
            "trace {trace_id} lacks some of {expected:?}; it has:\n{}",
            describe(&receiver.trace(trace_id))
        )
    })
}

/// Asserts that `child`'s parent is a span of `service` with `kind`, and returns it.
fn parent_of<'a>(
    spans: &'a [ReceivedSpan],
    child: &ReceivedSpan,
    service: &str,
    kind: SpanKind,
) -> &'a ReceivedSpan {
    let by_id: HashMap<&str, &ReceivedSpan> =
        spans.iter().map(|s| (s.span_id.as_str(), s)).collect();
    let parent = by_id.get(child.parent_span_id.as_str()).unwrap_or_else(|| {
        panic!(
            "parent of {} {:?} is not in the trace:\n{}",
            child.service,
            child.name,
            describe(spans)
        )
    });
    assert_eq!(
        (parent.service.as_str(), parent.kind),
        (service, kind),
        "parent of {} {:?}:\n{}",
        child.service,
        child.name,
        describe(spans)
    );
    parent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_follows_a_request_through_all_four_services_and_the_broker() {
    let receiver = OtlpReceiver::start().await;
    let platform = ProcessPlatform::start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ])
    .await
    .unwrap();
    // Alice places her own order; the admin reads the one placed for Bob.
    let http = shopmesh_testkit::authed_http(&shopmesh_testkit::token(
        &platform.stack,
        1,
        shopmesh_identity::Role::User,
    ));
    let bob = shopmesh_testkit::authed_http(&shopmesh_testkit::token(
        &platform.stack,
        2,
        shopmesh_identity::Role::User,
    ));
    let admin = shopmesh_testkit::authed_http(&shopmesh_testkit::token(
        &platform.stack,
        4,
        shopmesh_identity::Role::Admin,
    ));

    // Trace A: placing an order (user check, create, then the order's notifications over gRPC),
    // and the order.created event it causes.
    let trace_a = new_trace_id();
    let body = graphql(
        &http,
        &platform.gateway_url,
        &trace_a,
        r#"mutation { createOrder(input: {userId: "1", productId: "7", quantity: 2}) {
             id user { name } notifications { id } } }"#,
    )
    .await;
    assert_eq!(
        body["data"]["createOrder"]["user"]["name"], "Alice Johnson",
        "{body}"
    );
    let spans = wait_for_trace(
        &receiver,
        &trace_a,
        &[
            ("gateway", SpanKind::Server, "POST graphql"),
            ("gateway", SpanKind::Client, "GET /users/{id}"),
            ("users", SpanKind::Server, "GET getUser"),
            ("gateway", SpanKind::Client, "POST /orders"),
            ("orders", SpanKind::Server, "POST createOrder"),
            ("orders", SpanKind::Producer, "publish"),
            ("notifications", SpanKind::Consumer, "process"),
            ("gateway", SpanKind::Client, "GetNotificationsForOrders"),
            (
                "notifications",
                SpanKind::Server,
                "GetNotificationsForOrders",
            ),
        ],
    )
    .await;

    let root = find(&spans, "gateway", SpanKind::Server, "POST graphql").unwrap();
    assert_eq!(
        root.parent_span_id, CLIENT_SPAN,
        "the client's span is the root's parent"
    );
    assert_eq!(root.attributes["http.response.status_code"], "200");
    for (service, name) in [
        ("users", "GET getUser"),
        ("orders", "POST createOrder"),
        ("notifications", "GetNotificationsForOrders"),
    ] {
        let server = find(&spans, service, SpanKind::Server, name).unwrap();
        let client = parent_of(&spans, server, "gateway", SpanKind::Client);
        // Client spans sit inside the gateway's request span (possibly below resolver spans).
        assert_eq!(
            client.trace_id, root.trace_id,
            "{service} call belongs to the request"
        );
    }
    let created = find(&spans, "orders", SpanKind::Server, "POST createOrder").unwrap();
    assert_eq!(created.attributes["http.response.status_code"], "201");
    let publish = find(&spans, "orders", SpanKind::Producer, "publish").unwrap();
    assert_eq!(
        publish.parent_span_id,
        created.span_id,
        "the outbox carried the request's context to the relay:\n{}",
        describe(&spans)
    );
    let consume = find(&spans, "notifications", SpanKind::Consumer, "process").unwrap();
    assert_eq!(
        consume.parent_span_id,
        publish.span_id,
        "the message headers carried the publisher's context:\n{}",
        describe(&spans)
    );
    assert_eq!(consume.attributes["shopmesh.outcome"], "stored");
    assert_eq!(
        consume.attributes["messaging.message.id"],
        publish.attributes["messaging.message.id"]
    );

    // Trace B: an order created behind the gateway's back (so nothing is cached) read through
    // the gateway: `Order.user` goes through the DataLoader, whose batches run in tasks of
    // their own and must stay in the request's trace.
    let direct: Value = bob
        .post(format!("{}/orders", platform.orders_url))
        .json(&json!({"userId": 2, "productId": 8, "quantity": 1}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let order_id = direct["id"].as_i64().unwrap_or_else(|| panic!("{direct}"));
    let trace_b = new_trace_id();
    let body = graphql(
        &admin,
        &platform.gateway_url,
        &trace_b,
        &format!(r#"{{ order(id: "{order_id}") {{ id user {{ name }} }} }}"#),
    )
    .await;
    assert_eq!(body["data"]["order"]["id"], order_id.to_string(), "{body}");
    let spans = wait_for_trace(
        &receiver,
        &trace_b,
        &[
            ("orders", SpanKind::Server, "GET getOrder"),
            ("users", SpanKind::Server, "GET getUser"),
        ],
    )
    .await;
    let users = find(&spans, "users", SpanKind::Server, "GET getUser").unwrap();
    parent_of(&spans, users, "gateway", SpanKind::Client);

    // Trace C: the admin orders for Bob; the orders service confirms Bob with the users
    // service, and that call continues the request's trace.
    let trace_c = new_trace_id();
    let body = graphql(
        &admin,
        &platform.gateway_url,
        &trace_c,
        r#"mutation { createOrder(input: {userId: "2", productId: "9", quantity: 1}) { id } }"#,
    )
    .await;
    assert!(body["data"]["createOrder"]["id"].is_string(), "{body}");
    let spans = wait_for_trace(
        &receiver,
        &trace_c,
        &[
            ("orders", SpanKind::Server, "POST createOrder"),
            ("orders", SpanKind::Client, "GET /users/{id}"),
            ("users", SpanKind::Server, "GET getUser"),
        ],
    )
    .await;
    let confirmed = spans
        .iter()
        .filter(|s| s.service == "users" && s.kind == SpanKind::Server)
        .find(|s| {
            spans
                .iter()
                .any(|p| p.span_id == s.parent_span_id && p.service == "orders")
        });
    assert!(
        confirmed.is_some(),
        "the orders service's call to users carried the trace:\n{}",
        describe(&spans)
    );

    // Trace D: a checkout. Its saga's steps continue the request's trace: the calls to the
    // catalog and payments are in it, and so is every transition the timeline shows.
    let catalog = shopmesh_openapi::catalog::CatalogClient::new(
        platform.stack.url(shopmesh_testkit::Service::Catalog),
    );
    let admin_token = shopmesh_testkit::token(&platform.stack, 4, shopmesh_identity::Role::Admin);
    let product = catalog
        .create_product(
            &admin_token,
            None,
            &shopmesh_e2e::product_input("Traced mug", 900),
        )
        .await
        .unwrap()
        .id;
    let stock = shopmesh_openapi::catalog::StockAdjustment {
        delta: 3,
        reason: "traced".into(),
    };
    catalog
        .adjust_stock(&admin_token, product, None, &stock)
        .await
        .unwrap();
    let put = http
        .put(format!(
            "{}/api/users/1/cart/lines/{product}",
            platform.gateway_url
        ))
        .json(&json!({"quantity": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    let trace_d = new_trace_id();
    let body = graphql(
        &http,
        &platform.gateway_url,
        &trace_d,
        &format!(
            r#"mutation {{ checkout(paymentToken: "tok_visa", idempotencyKey: "{}") {{ id }} }}"#,
            uuid::Uuid::new_v4()
        ),
    )
    .await;
    let order_id = body["data"]["checkout"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned();
    wait_for_trace(
        &receiver,
        &trace_d,
        &[
            ("orders", SpanKind::Server, "POST checkout"),
            ("catalog", SpanKind::Server, "reserveStock"),
            ("payments", SpanKind::Server, "authorizePayment"),
            ("catalog", SpanKind::Server, "commitReservation"),
        ],
    )
    .await;
    let timeline: Value = http
        .get(format!(
            "{}/api/orders/{order_id}/timeline",
            platform.gateway_url
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let traced: Vec<_> = timeline["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["to"].as_str().unwrap_or(""),
                t["traceId"].as_str() == Some(&trace_d),
            )
        })
        .collect();
    assert_eq!(
        traced,
        [
            ("pending", true),
            ("stock_reserved", true),
            ("paid", true),
            ("confirmed", true)
        ],
        "{timeline}"
    );

    // The readiness probes made while starting were not traced.
    let probes: Vec<_> = receiver
        .spans()
        .into_iter()
        .filter(|s| {
            s.attributes
                .get("url.path")
                .is_some_and(|p| p.starts_with("/health"))
        })
        .collect();
    assert!(probes.is_empty(), "{}", describe(&probes));

    let exits = platform.stop().await;
    assert!(exits.iter().all(|(_, clean)| *clean), "{exits:?}");
    receiver.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_trace_receiver_is_reported_and_never_breaks_the_service() {
    use std::io::{BufRead, BufReader};

    use shopmesh_e2e::processes::{bin_dir, process_stack};
    use shopmesh_testkit::stack::{Output, terminate};
    use shopmesh_testkit::{Service, eventually, remove_names};

    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let stack = process_stack()
        .set(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{closed}"),
        )
        .set("OTEL_BSP_SCHEDULE_DELAY", "100");
    let port = stack.ports.users;
    let mut child = stack
        .spawn_one(&bin_dir(), Service::Users, Output::Capture)
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let logs = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(logs).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });

    let http = shopmesh_testkit::authed_http(&shopmesh_testkit::token(
        &stack,
        1,
        shopmesh_identity::Role::User,
    ));
    let url = format!("http://127.0.0.1:{port}/users/1");
    // Until its start-up work (migrations, the demo accounts) is done it answers 503.
    let answered = eventually("users answers", Duration::from_secs(60), || async {
        let status = http.get(&url).send().await.ok()?.status().as_u16();
        (status != 503).then_some(status)
    })
    .await;
    assert_eq!(answered, 200, "requests are served while export fails");

    let reported = tokio::task::spawn_blocking(move || {
        let mut seen = Vec::new();
        while let Ok(line) = rx.recv_timeout(Duration::from_secs(20)) {
            if line.contains("BatchSpanProcessor.ExportError") {
                return Ok(line);
            }
            seen.push(line);
        }
        Err(seen.join("\n"))
    })
    .await
    .unwrap();
    assert!(reported.is_ok(), "export failure logged: {reported:?}");

    terminate(&child);
    let started = std::time::Instant::now();
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "shutdown is not held up by the unreachable receiver"
    );
    remove_names(&stack.names, 0).await;
}
