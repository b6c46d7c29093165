//! Horizontal scale: two replicas of every service, as separate processes started by the
//! platform's launcher, behind loopback balancers that stand for Kubernetes Services. Orders
//! are placed through both gateways while one replica of orders, notifications and the
//! gateway is SIGKILLed and restarted in turn; then every order must have exactly one
//! notification, both relays and both consumers must have done part of the work, the rate
//! limit must hold exactly across the gateways, and an updated user must reach every replica
//! within the documented bound.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};
use shopmesh_e2e::MAX_RETRIES;
use shopmesh_e2e::processes::{bin_dir, process_stack};
use shopmesh_identity::Role;
use shopmesh_testkit::stack::{Balancer, Output, Processes, spawn_replicas};
use shopmesh_testkit::{Ports, Service, Stack, authed_http, eventually, remove_names, token};

const ORDERS: u64 = 2_000;
/// How long a replica may serve a user after an update was acknowledged, as measured here
/// through the balancers on a loaded machine (the 100 ms bound itself is tested without load
/// in the gateway's tests). The caches' TTLs are the defaults (30 s and 600 s): only the
/// users service's change announcements can meet this.
const USER_STALE_BOUND: Duration = Duration::from_secs(1);

/// A counter of one replica's `/metrics`, summed over its label sets (0 when absent).
async fn counter(http: &reqwest::Client, url: &str, name: &str, labels: &str) -> f64 {
    let text = http
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(labels))
        .filter(|l| l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Places one order through `gateways[first]`, or through the other gateway when that one
/// refuses the connection (the request never left, so it cannot have placed an order).
/// Returns the order's id on 201, else the status or error.
async fn place(
    http: &reqwest::Client,
    gateways: &[String; 2],
    first: usize,
    body: &Value,
) -> Result<i64, String> {
    let mut last = String::new();
    for g in [first, 1 - first] {
        match http
            .post(format!("{}/api/orders", gateways[g]))
            .json(body)
            .send()
            .await
        {
            Ok(r) if r.status() == 201 => {
                let order: Value = r.json().await.map_err(|e| e.to_string())?;
                return order["id"]
                    .as_i64()
                    .ok_or_else(|| format!("no id: {order}"));
            }
            Ok(r) => return Err(format!("status {}", r.status())),
            Err(e) if e.is_connect() => last = format!("connect: {e}"),
            Err(e) => return Err(e.to_string()),
        }
    }
    Err(last)
}

struct Replicas {
    front: Stack,
    replicas: [Stack; 2],
    processes: Vec<Processes>,
    _balancers: Vec<Balancer>,
}

impl Replicas {
    /// Kills `service` in replica 0 with SIGKILL, then starts it again and waits until ready.
    async fn kill_and_restart(&mut self, service: Service) -> Duration {
        let child = self.processes[0].child(service).unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        let started = Instant::now();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let replica = self.replicas[0].clone();
        let child = tokio::task::spawn_blocking(move || {
            replica
                .spawn_one(&bin_dir(), service, Output::Inherit)
                .unwrap()
        })
        .await
        .unwrap();
        self.processes[0].replace(service, child);
        let port = self.replicas[0].ports.http(service);
        eventually(
            &format!("{} back", service.name()),
            Duration::from_secs(60),
            || async move {
                tokio::task::spawn_blocking(move || shopmesh_testkit::stack::ready(port))
                    .await
                    .unwrap()
                    .then_some(())
            },
        )
        .await;
        started.elapsed()
    }
}

async fn start() -> Replicas {
    let front = process_stack()
        .set("RATE_LIMIT_MAX", "10")
        .set("RATE_LIMIT_MAX_USER", "1000000");
    let replicas = [
        front.replica(Ports::free().unwrap()),
        front.replica(Ports::free().unwrap()),
    ];
    let p = |r: usize| replicas[r].ports;
    let balancers = vec![
        Balancer::start(front.ports.users, vec![p(0).users, p(1).users]).unwrap(),
        Balancer::start(front.ports.orders, vec![p(0).orders, p(1).orders]).unwrap(),
        Balancer::start(
            front.ports.notifications_grpc,
            vec![p(0).notifications_grpc, p(1).notifications_grpc],
        )
        .unwrap(),
        Balancer::start(front.ports.gateway, vec![p(0).gateway, p(1).gateway]).unwrap(),
    ];
    let spawned = replicas.clone();
    let processes = tokio::task::spawn_blocking(move || {
        spawn_replicas(
            &spawned,
            &bin_dir(),
            Output::Inherit,
            Duration::from_secs(90),
        )
    })
    .await
    .unwrap()
    .expect("two replicas of every service start together");
    Replicas {
        front,
        replicas,
        processes,
        _balancers: balancers,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_of_everything_lose_and_duplicate_nothing_while_replicas_are_killed() {
    let mut platform = start().await;
    let gateways = [
        platform.replicas[0].url(Service::Gateway),
        platform.replicas[1].url(Service::Gateway),
    ];
    let shoppers: Vec<reqwest::Client> = (1..=3)
        .map(|id| authed_http(&token(&platform.front, id, Role::User)))
        .collect();

    // The load: ORDERS orders from three shoppers, alternating between the two gateways.
    let attempted = Arc::new(AtomicU64::new(0));
    let load = {
        let (gateways, shoppers, attempted) =
            (gateways.clone(), shoppers.clone(), attempted.clone());
        tokio::spawn(async move {
            futures::stream::iter(0..ORDERS)
                .map(|i| {
                    let (gateways, attempted) = (gateways.clone(), attempted.clone());
                    let user = 1 + (i % 3) as i64;
                    let http = shoppers[(user - 1) as usize].clone();
                    async move {
                        let body = json!({"userId": user, "productId": 1 + i, "quantity": 1});
                        let result = place(&http, &gateways, (i % 2) as usize, &body).await;
                        attempted.fetch_add(1, Ordering::SeqCst);
                        result
                    }
                })
                .buffer_unordered(16)
                .collect::<Vec<_>>()
                .await
        })
    };
    // One replica of orders, notifications and the gateway killed in turn, mid-stream.
    let mut downtime = BTreeMap::new();
    for (at, service) in [
        (ORDERS / 4, Service::Orders),
        (ORDERS / 2, Service::Notifications),
        (3 * ORDERS / 4, Service::Gateway),
    ] {
        while attempted.load(Ordering::SeqCst) < at && !load.is_finished() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(!load.is_finished(), "the load outlasts the kills");
        let took = platform.kill_and_restart(service).await;
        downtime.insert(service.name(), took);
    }
    let results = load.await.unwrap();
    let accepted: BTreeSet<i64> = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .copied()
        .collect();
    let mut refused: BTreeMap<String, u64> = BTreeMap::new();
    for e in results.iter().filter_map(|r| r.as_ref().err()) {
        let kind = e.split(':').next().unwrap_or(e).to_owned();
        *refused.entry(kind).or_default() += 1;
    }

    // Every order stored (201 or not: one whose answer was lost to a kill is stored too) has
    // exactly one notification, once the pipeline is quiet.
    let names = platform.front.names.clone();
    let mut mysql = {
        use sqlx::Connection;
        let url = format!(
            "{}/{}",
            shopmesh_testkit::mysql_admin_url(),
            names.orders_db
        );
        sqlx::MySqlConnection::connect(&url).await.unwrap()
    };
    let stored: Vec<i64> = sqlx::query_scalar("SELECT id FROM orders")
        .fetch_all(&mut mysql)
        .await
        .unwrap();
    let mongo = mongodb::Client::with_uri_str(shopmesh_testkit::mongo_url())
        .await
        .unwrap()
        .database(&names.mongo_db)
        .collection::<mongodb::bson::Document>("notifications");
    let notified = eventually(
        "a notification for every stored order",
        Duration::from_secs(120),
        || async {
            let n = mongo.count_documents(mongodb::bson::doc! {}).await.ok()?;
            (n >= stored.len() as u64).then_some(n)
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut per_order: BTreeMap<i64, u32> = BTreeMap::new();
    let mut cursor = mongo.find(mongodb::bson::doc! {}).await.unwrap();
    while let Some(doc) = cursor.next().await {
        let doc = doc.unwrap();
        *per_order
            .entry(doc.get_i64("orderId").unwrap())
            .or_default() += 1;
    }
    let duplicated = per_order.values().filter(|n| **n > 1).count();
    println!(
        "scale: orders attempted {ORDERS}, 201 {}, not accepted {refused:?}, stored {}, notifications {notified}, duplicated {duplicated}; restart times {downtime:?}",
        accepted.len(),
        stored.len()
    );
    assert!(
        accepted.len() as u64 >= ORDERS * 9 / 10,
        "most orders are accepted while replicas die: {} of {ORDERS}, {refused:?}",
        accepted.len()
    );
    for id in &accepted {
        assert_eq!(per_order.get(id), Some(&1), "order {id} got a 201");
    }
    assert_eq!(duplicated, 0, "no notification twice");
    let stored: BTreeSet<i64> = stored.into_iter().collect();
    assert_eq!(
        per_order.keys().copied().collect::<BTreeSet<_>>(),
        stored,
        "one notification per stored order, none for anything else"
    );

    // Both relays and both consumers did part of the work (replica 0's counters start at its
    // restart, so they count what it did after coming back).
    let plain = reqwest::Client::new();
    let mut shares = Vec::new();
    for r in &platform.replicas {
        let published = counter(
            &plain,
            &r.url(Service::Orders),
            "outbox_published_total",
            "",
        )
        .await;
        let consumed = counter(
            &plain,
            &r.url(Service::Notifications),
            "notifications_consumed_total",
            r#"outcome="stored""#,
        )
        .await;
        shares.push((published, consumed));
    }
    println!(
        "scale: (events published, notifications stored) per replica since its last start: {shares:?}"
    );
    for (i, (published, consumed)) in shares.iter().enumerate() {
        assert!(*published > 0.0, "relay {i} published part of the events");
        assert!(
            *consumed > 0.0,
            "consumer {i} stored part of the notifications"
        );
    }

    // The rate limit is one budget across both gateways: 10 anonymous requests a minute from
    // one address, wherever they land.
    let mut answered = 0;
    let mut limited = 0;
    for i in 0..30 {
        let (status, _) =
            shopmesh_testkit::graphql(&plain, &gateways[i % 2], &[], "{ __typename }", json!({}))
                .await;
        match status {
            200 => answered += 1,
            429 => limited += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(
        (answered, limited),
        (10, 20),
        "exactly the limit across gateways"
    );

    // A user updated on one users replica: the other users replica answers the new name at
    // once, and each gateway within the bound (each drops the user when it hears the change).
    let admin = authed_http(&token(&platform.front, 4, Role::Admin));
    let read_name = |url: String| {
        let admin = admin.clone();
        async move {
            let body: Value = admin.get(url).send().await.unwrap().json().await.unwrap();
            body["name"].as_str().unwrap_or_default().to_owned()
        }
    };
    for g in &gateways {
        read_name(format!("{g}/api/users/2")).await; // cached by both gateways
    }
    let updated = admin
        .put(format!(
            "{}/users/2",
            platform.replicas[0].url(Service::Users)
        ))
        .json(&json!({"name": "Robert Scale", "email": "bob@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(updated.status(), 200);
    let written = Instant::now();
    // The other users replica drops its copy when it hears the announcement, which is sent
    // before the write is acknowledged but delivered on its own time: the same bound holds.
    let other = platform.replicas[1].url(Service::Users);
    eventually(
        "the other users replica serves the update",
        Duration::from_secs(10),
        || {
            let read = read_name(format!("{other}/users/2"));
            async move { (read.await == "Robert Scale").then_some(()) }
        },
    )
    .await;
    for g in &gateways {
        let g = g.clone();
        eventually(
            "the gateway serves the update",
            Duration::from_secs(10),
            || {
                let read = read_name(format!("{g}/api/users/2"));
                async move { (read.await == "Robert Scale").then_some(()) }
            },
        )
        .await;
    }
    let stale_for = written.elapsed();
    println!("scale: gateways served the old name for at most {stale_for:?}");
    assert!(
        stale_for <= USER_STALE_BOUND,
        "stale beyond the documented bound: {stale_for:?}"
    );

    let processes = std::mem::take(&mut platform.processes);
    tokio::task::spawn_blocking(move || {
        for p in processes {
            p.stop(Duration::from_secs(30));
        }
    })
    .await
    .unwrap();
    remove_names(&names, MAX_RETRIES).await;
}
