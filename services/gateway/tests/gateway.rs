//! The gateway against real users and orders services (MariaDB), a real notifications gRPC
//! server (MongoDB wire-protocol server) and real Redis, all on ephemeral ports.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use shopmesh_common::service::Service as _;
use shopmesh_gateway::Gateway;
use shopmesh_gateway::config::{GatewayConfig, GraphqlConfig};
use shopmesh_identity::{AccessToken, Role};
use shopmesh_notifications::domain::NewNotification;
use shopmesh_notifications::store::{MongoNotificationStore, NotificationStore};
use shopmesh_openapi::gateway as rest;
use shopmesh_openapi::runtime::ClientError;
use shopmesh_orders::store::OrderStore;
use shopmesh_testkit::{
    self as testkit, CountingProxy, Service, Stack, TcpProxy, TestServer, build_service,
    eventually, remove_names, test_stack, unique,
};

/// Users, orders and notifications as `Application`s from one test stack (no relay, no
/// consumer: the gateway reads only), with users behind a counting proxy.
struct Backend {
    stack: Stack,
    users: testkit::Running,
    users_proxy: CountingProxy,
    orders: testkit::Running,
    orders_store: OrderStore,
    user_calls: Arc<AtomicU64>,
    notifications: testkit::Running,
    mongo: MongoNotificationStore,
}

impl Backend {
    async fn start() -> Self {
        Self::start_on(test_stack()).await
    }

    async fn start_on(stack: Stack) -> Self {
        let stack = stack
            .set("REDIS_TIMEOUT_MS", "300")
            .set("DB_POOL_SIZE", "5")
            .set("OUTBOX_RELAY_ENABLED", "false")
            .set("CONSUMER_ENABLED", "false");
        let users = build_service::<shopmesh_users::Application>(
            &stack.env_for(Service::Users).unwrap(),
            |_| {},
        )
        .await;
        let users = testkit::Running::start(users).await;
        let users_proxy = CountingProxy::start(&users.base_url, "/users/").await;
        let orders = build_service::<shopmesh_orders::Application>(
            &stack.env_for(Service::Orders).unwrap(),
            |_| {},
        )
        .await;
        let orders_store = orders.store().clone();
        let orders = testkit::Running::start(orders).await;
        let notifications = build_service::<shopmesh_notifications::Application>(
            &stack.env_for(Service::Notifications).unwrap(),
            |c| c.health_interval = Duration::from_secs(1),
        )
        .await;
        let mongo = notifications.store().clone();
        let notifications = testkit::Running::start(notifications).await;
        Self {
            user_calls: users_proxy.count.clone(),
            stack,
            users,
            users_proxy,
            orders,
            orders_store,
            notifications,
            mongo,
        }
    }

    /// The gateway's configuration from the stack, with its own cache prefix each time.
    fn config(&self) -> GatewayConfig {
        let env = self
            .stack
            .clone()
            .set_for(
                Service::Gateway,
                "USER_SERVICE_URL",
                &self.users_proxy.server.base_url,
            )
            .set_for(
                Service::Gateway,
                "CACHE_PREFIX",
                format!("{}:", unique("gw")),
            )
            // Where the users service announces changes (after the stack's prefix, not the
            // gateway's own).
            .set_for(
                Service::Gateway,
                "USER_CHANGES_CHANNEL",
                format!("{}user.changed", self.stack.names.cache_prefix),
            )
            .set_for(Service::Gateway, "RATE_LIMIT_MAX", "10000")
            .set_for(Service::Gateway, "TRUST_FORWARDED_FOR", "true")
            .set_for(Service::Gateway, "TRUSTED_PROXIES", "127.0.0.1/32")
            .env_for(Service::Gateway)
            .unwrap();
        GatewayConfig::from_env(&env).unwrap()
    }

    /// An order stored directly in the orders service's database (the gateway never saw it).
    async fn stored_order(
        &self,
        user_id: i64,
        product_id: i64,
    ) -> shopmesh_orders::store::OrderRecord {
        self.orders_store
            .create(shopmesh_orders::store::NewOrder {
                user_id,
                product_id,
                quantity: 1,
            })
            .await
            .unwrap()
    }

    /// A token signed with the stack's key.
    fn token(&self, user_id: i64, role: Role) -> AccessToken {
        testkit::token(&self.stack, user_id, role)
    }

    async fn stop(self) {
        self.users_proxy.server.stop().await;
        self.users.stop().await;
        self.orders.stop().await;
        self.notifications.stop().await;
        remove_names(&self.stack.names, 0).await;
    }
}

/// A gateway `Application` built from a configuration. Its `http` client and `graphql` calls
/// carry the seeded admin's token; `anonymous` carries none.
struct Running {
    gateway: Gateway,
    server: testkit::Running,
    http: reqwest::Client,
    anonymous: reqwest::Client,
    admin: AccessToken,
}

impl Running {
    /// An order placed through this gateway's REST API, as the admin.
    async fn placed_order(&self, user_id: i64, product_id: i64) -> rest::Order {
        let request = rest::CreateOrderRequest {
            user_id,
            product_id,
            quantity: 1,
        };
        self.client()
            .create_order(&self.admin, &request)
            .await
            .unwrap()
    }

    async fn start(backend: &Backend, mut config: GatewayConfig) -> Self {
        config.port = 0;
        let app = shopmesh_gateway::Application::build(config).await.unwrap();
        let gateway = app.gateway().clone();
        let admin = backend.token(ADMIN_ID, Role::Admin);
        Self {
            gateway,
            server: testkit::Running::start(app).await,
            http: testkit::authed_http(&admin),
            anonymous: reqwest::Client::new(),
            admin,
        }
    }

    async fn graphql(&self, query: &str, variables: Value) -> Value {
        self.graphql_from("198.51.100.1", query, variables).await.1
    }

    async fn graphql_from(&self, ip: &str, query: &str, variables: Value) -> (u16, Value) {
        testkit::graphql(
            &self.http,
            &self.server.base_url,
            &[("x-forwarded-for", ip)],
            query,
            variables,
        )
        .await
    }

    fn client(&self) -> rest::GatewayClient {
        rest::GatewayClient::new(self.server.base_url.clone())
    }
}

/// The seeded admin (after the three demo shoppers).
const ADMIN_ID: i64 = 4;

fn shared_config(base: &GatewayConfig, max: u32) -> GatewayConfig {
    let mut c = base.clone();
    limit_every_tier(&mut c, max);
    c
}

/// The same limit for anonymous clients, users and admins (tests of the mechanism call as the
/// admin).
fn limit_every_tier(config: &mut GatewayConfig, max: u32) {
    config.rate_limit.max_requests = max;
    config.rate_limit.max_requests_user = max;
    config.rate_limit.max_requests_admin = max;
}

fn error_code(body: &Value) -> Option<&str> {
    body["errors"][0]["extensions"]["code"].as_str()
}

const CREATE: &str = "mutation($input: CreateOrderInput!) { createOrder(input: $input) { id userId productId quantity status createdAt } }";

/// Aliases used to multiply what one request costs: 40 aliased `ordersByUser(first: 100)` with
/// notifications (4,000 gRPC calls), 124 aliased `user` lookups, 120 aliased `createOrder`
/// (120 writes under a limit of 10 requests a minute). Each is now rejected before anything
/// runs, and the downstream call counters prove it.
#[tokio::test]
async fn aliased_fan_out_is_rejected_before_any_downstream_call() {
    let backend = Backend::start().await;
    let gw = Running::start(&backend, backend.config()).await;
    let calls = |gw: &Running| {
        let c = &gw.gateway.backends.calls;
        [&c.users, &c.orders, &c.notifications].map(|n| n.load(Ordering::SeqCst))
    };
    let aliased = |n: usize, field: &str| -> String {
        (0..n)
            .map(|i| format!("a{i}: {}", field.replace("$I", &(1000 + i).to_string())))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let attacks = [
        format!(
            "{{ {} }}",
            aliased(
                40,
                r#"ordersByUser(userId: "1", first: 100) { nodes { notifications { message } } }"#
            )
        ),
        format!("{{ {} }}", aliased(124, r#"user(id: "$I") { name }"#)),
        format!(
            "mutation {{ {} }}",
            aliased(
                120,
                r#"createOrder(input: {userId: "1", productId: "$I", quantity: 1}) { id }"#
            )
        ),
    ];
    let before = calls(&gw);
    let orders_before: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders")
        .fetch_one(backend.orders_store.pool())
        .await
        .unwrap();
    for attack in &attacks {
        let body = gw.graphql(attack, json!({})).await;
        assert_eq!(error_code(&body), Some("QUERY_LIMIT_EXCEEDED"), "{body}");
        assert!(body["data"].is_null(), "nothing ran: {body}");
    }
    assert_eq!(calls(&gw), before, "no users, orders or notifications call");
    let orders_after: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders")
        .fetch_one(backend.orders_store.pool())
        .await
        .unwrap();
    assert_eq!(orders_after, orders_before, "no order written");

    // At the limits, operations still run.
    let ok = gw
        .graphql(
            &format!("{{ {} }}", aliased(20, r#"userName(id: "1")"#)),
            json!({}),
        )
        .await;
    assert!(ok["errors"].is_null(), "{ok}");
    let writes = gw
        .graphql(
            &format!(
                "mutation {{ {} }}",
                aliased(
                    5,
                    r#"createOrder(input: {userId: "1", productId: "$I", quantity: 1}) { id }"#
                )
            ),
            json!({}),
        )
        .await;
    assert!(writes["errors"].is_null(), "{writes}");
    gw.server.stop().await;
    backend.stop().await;
}

/// Lookups of ids that do not exist used to reach the users service every time (124 aliases,
/// 124 calls, again and again). "No such user" is now remembered briefly.
#[tokio::test]
async fn placing_an_order_leaves_the_user_rules_to_the_orders_service() {
    let backend = Backend::start().await;
    let gw = Running::start(&backend, backend.config()).await;
    backend.user_calls.store(0, Ordering::SeqCst);
    let order = json!({"input": {"userId": "3", "productId": "7", "quantity": 2}});
    let placed = gw.graphql(CREATE, order).await;
    assert_eq!(placed["data"]["createOrder"]["userId"], "3", "{placed}");
    let rest = gw.placed_order(2, 8).await;
    assert_eq!(rest.user_id, 2);
    assert_eq!(
        backend.user_calls.load(Ordering::SeqCst),
        0,
        "orders confirms the user; the gateway asks the users service nothing"
    );
    let short = gw
        .graphql(
            "mutation { createUser(input: {name: \"Pat\", email: \"pat@example.com\", password: \"short\"}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&short), Some("BAD_USER_INPUT"), "{short}");
    gw.server.stop().await;
    backend.stop().await;
}

#[tokio::test]
async fn unknown_users_are_remembered_briefly_and_creating_one_replaces_that() {
    let backend = Backend::start().await;
    let gw = Running::start(&backend, backend.config()).await;
    let query = (0..10)
        .map(|i| format!(r#"u{i}: userName(id: "{}")"#, 900_000 + i))
        .collect::<Vec<_>>()
        .join(" ");
    let query = format!("{{ {query} }}");
    backend.user_calls.store(0, Ordering::SeqCst);
    for round in 0..3 {
        let body = gw.graphql(&query, json!({})).await;
        assert!(body["errors"].is_null(), "round {round}: {body}");
        for i in 0..10 {
            let key = format!("u{i}");
            assert_eq!(body["data"][&key], Value::Null, "round {round}: {body}");
        }
    }
    assert_eq!(
        backend.user_calls.load(Ordering::SeqCst),
        10,
        "one users call per unknown id, then none while remembered"
    );
    // REST reads share the memory.
    let resp = gw
        .http
        .get(format!("{}/api/users/900000", gw.server.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    assert_eq!(backend.user_calls.load(Ordering::SeqCst), 10);

    // The next id (the test database holds the 3 demo shoppers and the admin) is remembered
    // as missing; the user created through the gateway under that id is served at once, not
    // a 404.
    let next = format!("{}/api/users/5", gw.server.base_url);
    assert_eq!(
        gw.http.get(&next).send().await.unwrap().status().as_u16(),
        404
    );
    let created = gw
        .client()
        .create_user(&rest::CreateUserRequest {
            name: "Grace".into(),
            email: poem_openapi::types::Email(format!("{}@example.com", unique("grace"))),
            password: "grace's password".into(),
        })
        .await
        .unwrap();
    assert_eq!(created.id, 5);
    assert_eq!(
        gw.http.get(&next).send().await.unwrap().status().as_u16(),
        200
    );
    gw.server.stop().await;
    backend.stop().await;
}

#[tokio::test]
async fn every_graphql_operation_round_trips() {
    let backend = Backend::start().await;
    let gw = Running::start(&backend, backend.config()).await;

    let created = gw
        .graphql(
            CREATE,
            json!({"input": {"userId": "1", "productId": "101", "quantity": 2}}),
        )
        .await;
    let order = &created["data"]["createOrder"];
    assert_eq!(order["status"], "PENDING", "{created}");
    assert_eq!(
        (order["userId"].as_str(), order["quantity"].as_i64()),
        (Some("1"), Some(2))
    );
    let id: i64 = order["id"].as_str().unwrap().parse().unwrap();

    for message in ["first", "second"] {
        backend
            .mongo
            .insert_if_absent(&NewNotification {
                event_id: unique("evt"),
                order_id: id,
                user_id: 1,
                message: message.into(),
                order_created_at: chrono::Utc::now(),
            })
            .await
            .unwrap();
    }
    let got = gw
        .graphql("query($id: ID!) { order(id: $id) { id quantity user { name email } notifications { message status orderId } } }", json!({"id": id.to_string()}))
        .await;
    let o = &got["data"]["order"];
    assert_eq!(o["user"]["name"], "Alice Johnson", "{got}");
    let messages: Vec<_> = o["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["message"].as_str().unwrap())
        .collect();
    assert_eq!(messages.len(), 2, "{got}");
    assert!(messages.contains(&"first") && messages.contains(&"second"));
    assert_eq!(o["notifications"][0]["status"], "SENT");

    let name = gw
        .graphql("query($id: ID!) { userName(id: $id) }", json!({"id": "1"}))
        .await;
    assert_eq!(name["data"]["userName"], "Alice Johnson");
    const CREATE_USER: &str =
        "mutation($input: CreateUserInput!) { createUser(input: $input) { id name email } }";
    let email = format!("{}@example.com", unique("grace"));
    let made = gw
        .graphql(
            CREATE_USER,
            json!({"input": {"name": "Grace Hopper", "email": email, "password": "grace's password"}}),
        )
        .await;
    assert_eq!(made["data"]["createUser"]["name"], "Grace Hopper", "{made}");
    let again = gw
        .graphql(
            CREATE_USER,
            json!({"input": {"name": "Grace Again", "email": email, "password": "grace's password"}}),
        )
        .await;
    assert_eq!(error_code(&again), Some("CONFLICT"), "{again}");
    let bad_email = gw
        .graphql(
            CREATE_USER,
            json!({"input": {"name": "X", "email": "nope", "password": "long enough"}}),
        )
        .await;
    assert_eq!(
        error_code(&bad_email),
        Some("BAD_USER_INPUT"),
        "{bad_email}"
    );
    let user = gw
        .graphql("query { user(id: \"2\") { id name email } }", json!({}))
        .await;
    assert_eq!(user["data"]["user"]["name"], "Bob Smith");

    for product in 102..=104 {
        gw.graphql(
            CREATE,
            json!({"input": {"userId": "1", "productId": product.to_string(), "quantity": 1}}),
        )
        .await;
    }
    let page = gw.graphql("query { ordersByUser(userId: \"1\", first: 3) { nodes { id productId } pageInfo { hasNextPage endCursor } } }", json!({})).await;
    let conn = &page["data"]["ordersByUser"];
    assert_eq!(conn["nodes"].as_array().unwrap().len(), 3, "{page}");
    assert_eq!(conn["nodes"][0]["productId"], "104", "newest first");
    assert_eq!(conn["pageInfo"]["hasNextPage"], true);
    let rest_page = gw
        .graphql("query($after: String) { ordersByUser(userId: \"1\", first: 3, after: $after) { nodes { productId } pageInfo { hasNextPage } } }", json!({"after": conn["pageInfo"]["endCursor"]}))
        .await;
    assert_eq!(
        rest_page["data"]["ordersByUser"]["nodes"][0]["productId"],
        "101"
    );
    assert_eq!(
        rest_page["data"]["ordersByUser"]["pageInfo"]["hasNextPage"],
        false
    );

    // Typed errors.
    let missing = gw
        .graphql("query { order(id: \"999999\") { id } }", json!({}))
        .await;
    assert_eq!(missing["data"]["order"], Value::Null, "{missing}");
    assert!(
        missing["errors"].is_null(),
        "null, as the SDL says: {missing}"
    );
    // Every requested key stays, the missing one as null.
    let both = gw
        .graphql(
            r#"{ a: userName(id: "999999") b: userName(id: "1") }"#,
            json!({}),
        )
        .await;
    assert_eq!(
        both["data"],
        json!({"a": null, "b": "Alice Johnson"}),
        "{both}"
    );
    let bad_id = gw
        .graphql("query { order(id: \"abc\") { id } }", json!({}))
        .await;
    assert_eq!(error_code(&bad_id), Some("BAD_USER_INPUT"));
    assert_eq!(
        bad_id["data"],
        json!({"order": null}),
        "the key is kept: {bad_id}"
    );
    let no_user = gw
        .graphql(
            CREATE,
            json!({"input": {"userId": "999", "productId": "1", "quantity": 1}}),
        )
        .await;
    assert_eq!(error_code(&no_user), Some("BAD_USER_INPUT"), "{no_user}");
    let bad_qty = gw
        .graphql(
            CREATE,
            json!({"input": {"userId": "1", "productId": "1", "quantity": 0}}),
        )
        .await;
    assert_eq!(error_code(&bad_qty), Some("BAD_USER_INPUT"));
    let no_name = gw
        .graphql("query { userName(id: \"424242\") }", json!({}))
        .await;
    assert_eq!(
        (no_name["data"]["userName"].clone(), error_code(&no_name)),
        (Value::Null, None)
    );
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders")
        .fetch_one(backend.orders_store.pool())
        .await
        .unwrap();
    assert_eq!(count, 4, "rejected mutations wrote nothing");

    gw.server.stop().await;
    backend.stop().await;
}

#[tokio::test]
async fn every_rest_route_round_trips_and_docs_work_offline() {
    let backend = Backend::start().await;
    let gw = Running::start(&backend, backend.config()).await;
    let client = gw.client();
    let order = client
        .create_order(
            &gw.admin,
            &rest::CreateOrderRequest {
                user_id: 2,
                product_id: 7,
                quantity: 3,
            },
        )
        .await
        .unwrap();
    let o = client.get_order(&gw.admin, order.id).await.unwrap();
    assert_eq!(o, order);
    assert!(matches!(
        client.get_order(&gw.admin, order.id + 100).await,
        Err(ClientError::Problem(p)) if p.status == 404
    ));
    let list = client
        .get_order_notifications(&gw.admin, order.id)
        .await
        .unwrap();
    assert!(list.items.is_empty());
    let p = client
        .list_user_orders(&gw.admin, 2, Some(10), None)
        .await
        .unwrap();
    assert_eq!(p.items, vec![order.clone()]);
    let new_user = rest::CreateUserRequest {
        name: "Linus".into(),
        email: poem_openapi::types::Email(format!("{}@example.com", unique("linus"))),
        password: "linus's password".into(),
    };
    let u = client.create_user(&new_user).await.unwrap();
    assert_eq!(u.name, "Linus");
    assert!(matches!(
        client.create_user(&new_user).await,
        Err(ClientError::Problem(p)) if p.status == 409
    ));
    let u = client.get_user(&gw.admin, 3).await.unwrap();
    assert_eq!(u.name, "Charlie Brown");
    let n = client.get_user_name(&gw.admin, 1).await.unwrap();
    assert_eq!(n.name, "Alice Johnson");
    assert!(matches!(
        client.get_user_name(&gw.admin, 5000).await,
        Err(ClientError::Problem(p)) if p.status == 404
    ));
    match client
        .create_order(
            &gw.admin,
            &rest::CreateOrderRequest {
                user_id: 5000,
                product_id: 7,
                quantity: 3,
            },
        )
        .await
    {
        Err(ClientError::Problem(p)) if p.status == 400 => {
            assert!(p.detail.unwrap().contains("user 5000"));
        }
        other => panic!("{other:?}"),
    }

    let base = &gw.server.base_url;
    let spec = gw
        .http
        .get(format!("{base}/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // The committed contract itself, with its OpenAPI version, descriptions and headers.
    shopmesh_codegen::contract::assert_served(rest::CONTRACT_YAML, &spec)
        .unwrap_or_else(|e| panic!("{e}"));
    // And the routes promise the same, response headers included (the 429's `Retry-After`).
    let implemented = rest::GatewayEndpoints::implemented_spec();
    shopmesh_codegen::contract::assert_equivalent(rest::CONTRACT_YAML, &implemented)
        .unwrap_or_else(|e| panic!("{e}"));
    let page = gw
        .http
        .get(format!("{base}/graphql"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("shopmesh GraphiQL") && !page.contains("https://"),
        "GraphiQL needs no external assets"
    );
    let docs = gw.http.get(format!("{base}/docs")).send().await.unwrap();
    assert_eq!(docs.status().as_u16(), 200);
    gw.server.stop().await;
    backend.stop().await;
}

#[tokio::test]
async fn order_user_is_batched_one_call_per_distinct_user() {
    let backend = Backend::start().await;
    // 150 orders with their users cost 603 (GRAPHQL_MAX_COMPLEXITY is 250 by default).
    let mut config = backend.config();
    config.graphql.max_complexity = 1000;
    let gw = Running::start(&backend, config).await;
    for (user, count) in [(1, 20), (2, 20), (3, 10)] {
        for p in 0..count {
            backend
                .orders_store
                .create(shopmesh_orders::store::NewOrder {
                    user_id: user,
                    product_id: 1 + p,
                    quantity: 1,
                })
                .await
                .unwrap();
        }
    }
    backend.user_calls.store(0, Ordering::SeqCst);
    let q = "{ a: ordersByUser(userId: \"1\", first: 50) { nodes { id user { name } } }
               b: ordersByUser(userId: \"2\", first: 50) { nodes { id user { name } } }
               c: ordersByUser(userId: \"3\", first: 50) { nodes { id user { name } } } }";
    let body = gw.graphql(q, json!({})).await;
    let total: usize = ["a", "b", "c"]
        .iter()
        .map(|k| body["data"][k]["nodes"].as_array().unwrap().len())
        .sum();
    assert_eq!(total, 50, "{body}");
    assert_eq!(
        body["data"]["c"]["nodes"][0]["user"]["name"],
        "Charlie Brown"
    );
    assert_eq!(
        backend.user_calls.load(Ordering::SeqCst),
        3,
        "50 orders, 3 distinct users, 3 users calls"
    );
    gw.server.stop().await;
    backend.stop().await;
}

/// Orders never change once placed, so a gateway keeps those it has seen in process memory:
/// a read needs neither Redis nor the orders service, even when Redis lost the key (evicted,
/// flushed, or written by another replica that is gone).
#[tokio::test]
async fn an_order_seen_once_is_served_from_memory_without_redis_or_orders() {
    let backend = Backend::start().await;
    let gw = Running::start(&backend, backend.config()).await;
    let client = gw.client();
    let placed = gw.placed_order(1, 5).await;
    let stored = backend.stored_order(2, 9).await;
    // The stored order, read once through the gateway: it is remembered from now on.
    client.get_order(&gw.admin, stored.id).await.unwrap();

    let backends = &gw.gateway.backends;
    for id in [placed.id, stored.id] {
        let _: Option<i64> = backends
            .cache()
            .run(redis::cmd("DEL").arg(backends.order_key(id)))
            .await;
    }
    let calls = backends.calls.orders.load(Ordering::SeqCst);
    let redis_reads = || {
        let stats = backends.cache().stats();
        stats.hits.load(Ordering::Relaxed) + stats.misses.load(Ordering::Relaxed)
    };
    let reads = redis_reads();
    for id in [placed.id, stored.id] {
        assert_eq!(client.get_order(&gw.admin, id).await.unwrap().id, id);
        let g = gw
            .graphql(
                "query($id: ID!) { order(id: $id) { id } }",
                json!({"id": id.to_string()}),
            )
            .await;
        assert_eq!(g["data"]["order"]["id"], id.to_string());
    }
    assert_eq!(
        backends.calls.orders.load(Ordering::SeqCst),
        calls,
        "no orders call"
    );
    assert_eq!(redis_reads(), reads, "no Redis read");
    assert_eq!(backends.memory_hits(), 4, "four reads served from memory");

    // The memory holds the order, not the answer: another user is still refused.
    let stranger = backend.token(77, Role::User);
    assert!(client.get_order(&stranger, placed.id).await.is_err());
    gw.server.stop().await;
    backend.stop().await;
}

/// How soon after `PUT /users/{id}` is acknowledged every replica must serve the new value
/// (the bound the README documents for the user caches).
const USER_CHANGE_BOUND: Duration = Duration::from_millis(100);

/// A user updated at one users replica: every gateway and the other users replica serve the
/// new name within [`USER_CHANGE_BOUND`] of the acknowledgement, although each cached the old
/// one (the gateways' cache TTL is 30 s) and nothing reads through to MySQL.
#[tokio::test]
async fn a_user_update_reaches_every_gateway_and_users_replica_within_the_bound() {
    let backend = Backend::start().await;
    let gateways = [
        Running::start(&backend, backend.config()).await,
        Running::start(&backend, backend.config()).await,
    ];
    let other_users = build_service::<shopmesh_users::Application>(
        &backend.stack.env_for(Service::Users).unwrap(),
        |c| c.port = 0,
    )
    .await;
    let other_users = testkit::Running::start(other_users).await;
    let admin = testkit::authed_http(&backend.token(ADMIN_ID, Role::Admin));
    let name_at = |url: String| {
        let admin = admin.clone();
        async move {
            let body: Value = admin.get(url).send().await.unwrap().json().await.unwrap();
            body["name"].as_str().unwrap_or_default().to_owned()
        }
    };
    let readers: Vec<String> = gateways
        .iter()
        .map(|g| format!("{}/api/users/2", g.server.base_url))
        .chain([
            format!("{}/users/2", backend.users.base_url),
            format!("{}/users/2", other_users.base_url),
        ])
        .collect();
    let mut worst = Duration::ZERO;
    for round in 0..5 {
        for url in &readers {
            name_at(url.clone()).await; // each replica holds the current name
        }
        let name = format!("Bob, round {round}");
        let writer = [&backend.users.base_url, &other_users.base_url][round % 2];
        let updated = admin
            .put(format!("{writer}/users/2"))
            .json(&json!({"name": name, "email": "bob@example.com"}))
            .send()
            .await
            .unwrap();
        assert_eq!(updated.status(), 200);
        let acknowledged = Instant::now();
        for url in &readers {
            loop {
                if name_at(url.clone()).await == name {
                    break;
                }
                let stale = acknowledged.elapsed();
                assert!(
                    stale <= Duration::from_secs(2),
                    "round {round}: {url} still serves the old name {stale:?} after the update"
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        worst = worst.max(acknowledged.elapsed());
    }
    println!("every replica served the update within {worst:?}");
    for g in &gateways {
        assert!(
            g.gateway.backends.user_memory_hits() > 0,
            "the gateways served users from memory between the updates"
        );
    }
    assert!(
        worst <= USER_CHANGE_BOUND,
        "stale for {worst:?}, beyond {USER_CHANGE_BOUND:?}"
    );
    for g in gateways {
        g.server.stop().await;
    }
    other_users.stop().await;
    backend.stop().await;
}

/// A query document the gateway has parsed once is not parsed again: the next request with
/// the same text (other variables) is served from the parsed-document cache, with the same
/// answer; text that does not parse is never cached and fails alike every time.
#[tokio::test]
async fn the_same_query_text_is_parsed_once() {
    let backend = Backend::start().await;
    let gw = Running::start(&backend, backend.config()).await;
    let placed = [gw.placed_order(1, 3).await, gw.placed_order(2, 4).await];
    let query = "query($id: ID!) { order(id: $id) { id quantity } }";
    let cached = || gw.gateway.document_cache_hits();
    let before = cached();
    for order in &placed {
        let body = gw.graphql(query, json!({"id": order.id.to_string()})).await;
        assert_eq!(body["data"]["order"]["id"], order.id.to_string(), "{body}");
    }
    assert_eq!(
        cached() - before,
        1,
        "the second request reused the first one's parse"
    );
    for _ in 0..2 {
        let body = gw.graphql("query { order(id: ", json!({})).await;
        assert_eq!(
            body["errors"][0]["extensions"]["code"],
            "GRAPHQL_PARSE_FAILED"
        );
    }
    assert_eq!(cached() - before, 1, "a parse failure is not cached");
    gw.server.stop().await;
    backend.stop().await;
}

#[tokio::test]
async fn orders_are_cached_written_through_and_served_without_redis() {
    let backend = Backend::start().await;
    let gw = Running::start(&backend, backend.config()).await;
    let client = gw.client();
    let order = gw.placed_order(1, 5).await;
    let key = gw.gateway.backends.order_key(order.id);
    let ttl: i64 = gw
        .gateway
        .backends
        .cache()
        .run(redis::cmd("TTL").arg(&key))
        .await
        .unwrap();
    assert!(
        (290..=300).contains(&ttl),
        "created order written through with TTL 300, got {ttl}"
    );

    let calls = || gw.gateway.backends.calls.orders.load(Ordering::SeqCst);
    let before = calls();
    let hits = gw.gateway.backends.memory_hits();
    for _ in 0..2 {
        assert!(client.get_order(&gw.admin, order.id).await.is_ok());
        let g = gw
            .graphql(
                "query($id: ID!) { order(id: $id) { id } }",
                json!({"id": order.id.to_string()}),
            )
            .await;
        assert_eq!(g["data"]["order"]["id"], order.id.to_string());
    }
    assert_eq!(calls(), before, "served from the cache, no orders call");
    assert_eq!(
        gw.gateway.backends.memory_hits() - hits,
        4,
        "the placed order is remembered in memory too"
    );

    // An order the gateway has not seen: first read misses, second hits.
    let other = backend.stored_order(2, 9).await;
    client.get_order(&gw.admin, other.id).await.unwrap();
    client.get_order(&gw.admin, other.id).await.unwrap();
    assert_eq!(calls(), before + 1, "one miss, then a hit");

    // Redis down: still served; the first read goes downstream, then memory serves it.
    let mut config = backend.config();
    config.redis_url = "redis://127.0.0.1:1/".into();
    let no_redis = Running::start(&backend, config).await;
    let c2 = no_redis.client();
    for _ in 0..2 {
        assert!(c2.get_order(&no_redis.admin, order.id).await.is_ok());
    }
    assert_eq!(
        no_redis
            .gateway
            .backends
            .calls
            .orders
            .load(Ordering::SeqCst),
        1,
        "one read downstream, the second from memory"
    );
    assert!(!no_redis.gateway.backends.cache().is_up());
    no_redis.server.stop().await;
    gw.server.stop().await;
    backend.stop().await;
}

/// Behind a proxy that appends the peer to `X-Forwarded-For`, a client that writes a new
/// first entry on every request is still one client (30 of 30 got through when the first,
/// client-chosen entry was the key).
#[tokio::test]
async fn a_client_cannot_escape_the_rate_limit_by_forging_forwarded_for() {
    let backend = Backend::start().await;
    let mut config = backend.config();
    limit_every_tier(&mut config, 10);
    let gw = Running::start(&backend, config).await;
    // Anonymous: counted by address (answered 401, which still counts).
    let mut passed = 0;
    for i in 0..30 {
        let resp = gw
            .anonymous
            .get(format!("{}/api/users/1/name", gw.server.base_url))
            .header("x-forwarded-for", format!("198.18.0.{i}, 203.0.113.77"))
            .send()
            .await
            .unwrap();
        if resp.status().as_u16() != 429 {
            passed += 1;
        }
    }
    assert_eq!(
        passed, 10,
        "the limit applies to the address the proxy appended"
    );
    gw.server.stop().await;
    backend.stop().await;
}

#[tokio::test]
async fn rate_limit_rejects_the_eleventh_request_and_is_shared_between_replicas() {
    let backend = Backend::start().await;
    let mut config = backend.config();
    limit_every_tier(&mut config, 10);
    let gw = Running::start(&backend, config.clone()).await;
    let get = |gw: &Running, ip: &str, path: &str| {
        let req = gw
            .http
            .get(format!("{}{path}", gw.server.base_url))
            .header("x-forwarded-for", ip);
        async move { req.send().await.unwrap() }
    };
    for i in 0..10 {
        assert_eq!(
            get(&gw, "203.0.113.7", "/api/users/1/name")
                .await
                .status()
                .as_u16(),
            200,
            "request {}",
            i + 1
        );
    }
    let eleventh = get(&gw, "203.0.113.7", "/api/users/1/name").await;
    assert_eq!(eleventh.status().as_u16(), 429);
    let retry_after: u64 = eleventh.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
    assert!(
        eleventh.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/problem+json")
    );
    let (status, _) = gw
        .graphql_from("203.0.113.7", "{ userName(id: \"1\") }", json!({}))
        .await;
    assert_eq!(status, 429, "GraphQL is limited alike");
    let bob = testkit::authed_http(&backend.token(2, Role::User));
    let other = bob
        .get(format!("{}/api/users/2/name", gw.server.base_url))
        .header("x-forwarded-for", "203.0.113.7")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status().as_u16(), 200, "other clients unaffected");
    for _ in 0..15 {
        assert_eq!(
            get(&gw, "203.0.113.7", "/health/live")
                .await
                .status()
                .as_u16(),
            200,
            "health is not limited"
        );
    }
    assert!(gw.gateway.limiter.stats.rejected.load(Ordering::Relaxed) >= 2);
    let metrics = get(&gw, "203.0.113.7", "/metrics")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("gateway_rate_limited_total"),
        "metrics are not limited and count rejections"
    );
    for line in metrics.lines() {
        if let Some(typed) = line.strip_prefix("# TYPE ") {
            let name = typed.split_whitespace().next().unwrap_or_default();
            assert!(
                metrics.contains(&format!("# HELP {name} ")),
                "{name} has no # HELP line"
            );
        }
    }
    assert!(
        metrics.contains(
            r#"http_requests_total{service="gateway",operation="api",method="GET",status="429"}"#
        ),
        "{metrics}"
    );

    // Two replicas sharing one Redis together allow exactly the limit.
    let mut shared = config.clone();
    shared.cache_prefix = format!("{}:", unique("gwshared"));
    let (a, b) = (
        Running::start(&backend, shared.clone()).await,
        Running::start(&backend, shared).await,
    );
    let mut ok = 0;
    for i in 0..20 {
        let replica = if i % 2 == 0 { &a } else { &b };
        if get(replica, "192.0.2.44", "/api/users/2")
            .await
            .status()
            .as_u16()
            == 200
        {
            ok += 1;
        }
    }
    assert_eq!(ok, 10, "20 requests over two replicas, limit 10");

    // With a larger limit each replica leases several requests per Redis round trip; together
    // they still never exceed the limit, and at most a lease per replica goes unused.
    let mut leased = shared_config(&config, 300);
    leased.cache_prefix = format!("{}:", unique("gwlease"));
    let (c, d) = (
        Running::start(&backend, leased.clone()).await,
        Running::start(&backend, leased).await,
    );
    let mut ok = 0;
    for i in 0..400 {
        let replica = if i % 2 == 0 { &c } else { &d };
        if get(replica, "192.0.2.45", "/health/live")
            .await
            .status()
            .as_u16()
            == 200
            && get(replica, "192.0.2.45", "/api/users/2/name")
                .await
                .status()
                .as_u16()
                == 200
        {
            ok += 1;
        }
    }
    assert!(
        (296..=300).contains(&ok),
        "two replicas, limit 300, lease 3: allowed {ok}"
    );
    for r in [c, d] {
        r.server.stop().await;
    }
    for r in [a, b, gw] {
        r.server.stop().await;
    }
    backend.stop().await;
}

#[tokio::test]
async fn depth_complexity_and_introspection_limits() {
    let backend = Backend::start().await;
    let mut config = backend.config();
    config.graphql = GraphqlConfig {
        max_depth: 3,
        max_complexity: 8,
        introspection: false,
        ..config.graphql
    };
    let gw = Running::start(&backend, config).await;
    let deep = gw
        .graphql(
            "{ ordersByUser(userId: \"1\", first: 1) { nodes { user { name } } pageInfo { endCursor } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&deep), Some("QUERY_LIMIT_EXCEEDED"), "{deep}");
    assert!(
        deep["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("nested 4 levels deep"),
        "{deep}"
    );
    let wide = gw.graphql("{ a: userName(id: \"1\") b: userName(id: \"1\") c: userName(id: \"1\") d: userName(id: \"1\") e: userName(id: \"1\") f: userName(id: \"1\") g: userName(id: \"1\") h: userName(id: \"1\") i: userName(id: \"1\") }", json!({})).await;
    assert!(
        wide["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("too complex"),
        "{wide}"
    );
    let fine = gw.graphql("{ userName(id: \"1\") }", json!({})).await;
    assert_eq!(fine["data"]["userName"], "Alice Johnson");
    let intro = gw
        .graphql("{ __schema { queryType { name } } }", json!({}))
        .await;
    assert!(
        intro["data"]["__schema"].is_null(),
        "introspection disabled: {intro}"
    );
    let open = Running::start(&backend, backend.config()).await;
    let intro = open
        .graphql("{ __schema { queryType { name } } }", json!({}))
        .await;
    assert_eq!(
        intro["data"]["__schema"]["queryType"]["name"], "Query",
        "enabled by default"
    );
    open.server.stop().await;
    let big = "x".repeat(70 * 1024);
    let resp = gw
        .http
        .post(format!("{}/graphql", gw.server.base_url))
        .json(&json!({ "query": format!("{{ userName(id: \"{big}\") }}") }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 413, "body limit");
    gw.server.stop().await;
    backend.stop().await;
}

#[tokio::test]
async fn downstream_timeout_and_outage_are_typed_errors_not_hangs() {
    let backend = Backend::start().await;
    let slow = TestServer::start(poem::endpoint::make(|_| async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        "too late"
    }))
    .await;
    let mut config = backend.config();
    config.order_service_url = slow.base_url.clone();
    config.user_service_url = "http://127.0.0.1:1".into();
    config.downstream_timeout = Duration::from_millis(300);
    let gw = Running::start(&backend, config).await;

    let start = Instant::now();
    let body = gw.graphql("{ order(id: \"1\") { id } }", json!({})).await;
    assert!(
        start.elapsed() < Duration::from_millis(1500),
        "answered within the timeout: {:?}",
        start.elapsed()
    );
    assert_eq!(error_code(&body), Some("DOWNSTREAM_TIMEOUT"), "{body}");
    assert_eq!(body["errors"][0]["extensions"]["service"], "orders");
    let rest_resp = gw
        .http
        .get(format!("{}/api/orders/1", gw.server.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(rest_resp.status().as_u16(), 504);

    let down = gw.graphql("{ userName(id: \"1\") }", json!({})).await;
    assert_eq!(error_code(&down), Some("DOWNSTREAM_UNAVAILABLE"), "{down}");
    let rest_resp = gw
        .http
        .get(format!("{}/api/users/1", gw.server.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(rest_resp.status().as_u16(), 503);
    let ready = gw
        .http
        .get(format!("{}/health/ready", gw.server.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        ready.status().as_u16(),
        200,
        "still ready: it serves what it can while downstream is away"
    );
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["status"], "degraded", "{ready}");
    assert_eq!(ready["checks"]["users"], "not answering", "{ready}");

    gw.server.stop().await;
    slow.stop().await;
    backend.stop().await;
}

/// Orders hangs (accepts connections, never answers): after a few calls time out its circuit
/// opens and order reads fail at once with DOWNSTREAM_UNAVAILABLE instead of each waiting for
/// the timeout, user reads keep working, and orders is used again by itself once it answers.
#[tokio::test]
async fn a_hung_service_trips_its_circuit_and_the_rest_keeps_working() {
    let backend = Backend::start().await;
    let target = testkit::stack::authority(&backend.orders.base_url).unwrap();
    let proxy = TcpProxy::start(&target).await;
    let mut config = backend.config();
    config.order_service_url = format!("http://{}", proxy.addr);
    config.downstream_timeout = Duration::from_millis(300);
    config.resilience.failure_threshold = 3;
    config.resilience.open_for = Duration::from_millis(1500);
    let gw = Running::start(&backend, config).await;
    let order_calls = || gw.gateway.backends.calls.orders.load(Ordering::SeqCst);
    let order = |id: u32| format!(r#"{{ order(id: "{}") {{ id }} }}"#, 990_000 + id);

    proxy.hang();
    let mut codes = Vec::new();
    for id in 0..12 {
        let body = gw.graphql(&order(id), json!({})).await;
        codes.push(error_code(&body).unwrap_or("none").to_owned());
    }
    assert_eq!(
        &codes[..3],
        ["DOWNSTREAM_TIMEOUT"; 3],
        "the first calls wait for their timeout"
    );
    assert!(
        codes[3..].iter().all(|c| c == "DOWNSTREAM_UNAVAILABLE"),
        "then the circuit is open: {codes:?}"
    );
    assert_eq!(order_calls(), 3, "an open circuit sends nothing to orders");
    let user = gw.graphql(r#"{ user(id: "1") { name } }"#, json!({})).await;
    assert_eq!(user["data"]["user"]["name"], "Alice Johnson", "{user}");

    proxy.restore();
    let recovered = eventually(
        "order reads to recover",
        Duration::from_secs(10),
        || async {
            let body = gw.graphql(&order(0), json!({})).await;
            // Order 990000 does not exist: null without an error means orders answered.
            (body["errors"].is_null() && body["data"]["order"].is_null()).then_some(body)
        },
    )
    .await;
    assert_eq!(recovered["data"]["order"], Value::Null);
    backend.stop().await;
}

/// A list's cost is what each element selects times its `first` (the contract's
/// `@listSize`), and each order's notifications cost a gRPC call (`@cost`): one
/// `ordersByUser(first: 100)` with notifications is over the default limit of 250 and is
/// rejected before any call, while a page of 20 is served.
#[tokio::test]
async fn a_list_costs_its_first_times_what_each_element_selects() {
    let backend = Backend::start().await;
    let gw = Running::start(&backend, backend.config()).await;
    let calls = || {
        let c = &gw.gateway.backends.calls;
        [&c.users, &c.orders, &c.notifications].map(|n| n.load(Ordering::SeqCst))
    };
    let page = |first: u32| {
        format!(
            r#"{{ ordersByUser(userId: "1", first: {first}) {{ nodes {{ notifications {{ message }} }} }} }}"#
        )
    };
    let before = calls();
    let big = gw.graphql(&page(100), json!({})).await;
    let message = big["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("too complex"), "{big}");
    assert!(big["data"].is_null(), "{big}");
    assert_eq!(calls(), before, "rejected before any downstream call");

    let small = gw.graphql(&page(20), json!({})).await;
    assert!(small["errors"].is_null(), "{small}");
    assert!(small["data"]["ordersByUser"]["nodes"].is_array(), "{small}");
    backend.stop().await;
}

/// The rate limit counts operations, not HTTP requests: each mutation counts as a request, so
/// under a limit of 10 a client sending 5 createOrder per request places 10 orders, not 20.
#[tokio::test]
async fn each_mutation_counts_against_the_rate_limit() {
    let backend = Backend::start().await;
    let gw = Running::start(&backend, shared_config(&backend.config(), 10)).await;
    let five = (0..5)
        .map(|i| {
            format!(r#"o{i}: createOrder(input: {{userId: "1", productId: "{}", quantity: 1}}) {{ id }}"#, 50 + i)
        })
        .collect::<Vec<_>>()
        .join(" ");
    let mutation = format!("mutation {{ {five} }}");
    let mut placed = 0;
    let mut limited = 0;
    for _ in 0..4 {
        let (status, body) = gw.graphql_from("198.51.100.77", &mutation, json!({})).await;
        if let Some(data) = body["data"].as_object() {
            placed += data.values().filter(|o| o["id"].is_string()).count();
        }
        if status == 429 || error_code(&body) == Some("RATE_LIMITED") {
            limited += 1;
        }
    }
    assert_eq!(placed, 10, "10 orders under a limit of 10");
    assert_eq!(limited, 2, "the third and fourth requests are refused");
    backend.stop().await;
}

/// A page of orders with their notifications costs one notifications call, not one per order,
/// and each order gets its own notifications.
#[tokio::test]
async fn a_page_of_orders_fetches_its_notifications_in_one_call() {
    let backend = Backend::start().await;
    let gw = Running::start(&backend, backend.config()).await;
    let user = 3;
    let mut ids = Vec::new();
    for p in 0..6 {
        let order = backend
            .orders_store
            .create(shopmesh_orders::store::NewOrder {
                user_id: user,
                product_id: 300 + p,
                quantity: 1,
            })
            .await
            .unwrap();
        ids.push(order.id);
    }
    for id in ids.iter().take(3) {
        backend
            .mongo
            .insert_if_absent(&NewNotification {
                event_id: unique("evt"),
                order_id: *id,
                user_id: user,
                message: format!("about {id}"),
                order_created_at: chrono::Utc::now(),
            })
            .await
            .unwrap();
    }
    let before = gw
        .gateway
        .backends
        .calls
        .notifications
        .load(Ordering::SeqCst);
    let body = gw
        .graphql(
            r#"{ ordersByUser(userId: "3", first: 6) { nodes { id notifications { message } } } }"#,
            json!({}),
        )
        .await;
    let calls = gw
        .gateway
        .backends
        .calls
        .notifications
        .load(Ordering::SeqCst)
        - before;
    assert_eq!(calls, 1, "one call for 6 orders: {body}");
    let nodes = body["data"]["ordersByUser"]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 6, "{body}");
    for node in nodes {
        let id: i64 = node["id"].as_str().unwrap().parse().unwrap();
        let messages: Vec<_> = node["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["message"].as_str().unwrap().to_owned())
            .collect();
        let expected = if ids[..3].contains(&id) {
            vec![format!("about {id}")]
        } else {
            vec![]
        };
        assert_eq!(messages, expected, "{body}");
    }
    backend.stop().await;
}

/// Each GraphQL request has a budget of downstream calls: with a budget of 3, a query that
/// would look up 5 uncached users makes 3 calls and answers the other 2 fields with
/// QUERY_LIMIT_EXCEEDED.
#[tokio::test]
async fn a_request_makes_no_more_downstream_calls_than_its_budget() {
    let backend = Backend::start().await;
    let mut config = backend.config();
    config.graphql.max_downstream_calls = 3;
    let gw = Running::start(&backend, config).await;
    let before = gw.gateway.backends.calls.users.load(Ordering::SeqCst);
    let query = (1..=5)
        .map(|i| format!(r#"u{i}: user(id: "{i}") {{ name }}"#))
        .collect::<Vec<_>>()
        .join(" ");
    let body = gw.graphql(&format!("{{ {query} }}"), json!({})).await;
    let calls = gw.gateway.backends.calls.users.load(Ordering::SeqCst) - before;
    assert_eq!(calls, 3, "{body}");
    let limited = body["errors"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter(|e| e["extensions"]["code"] == "QUERY_LIMIT_EXCEEDED")
                .count()
        })
        .unwrap_or(0);
    assert_eq!(limited, 2, "{body}");
    backend.stop().await;
}

/// Every error raised before anything runs carries a conventional `extensions.code`.
#[tokio::test]
async fn errors_before_execution_carry_conventional_codes() {
    let backend = Backend::start().await;
    let mut config = backend.config();
    config.graphql.max_depth = 3;
    let gw = Running::start(&backend, config).await;
    for (query, code) in [
        ("{ order(id: ", "GRAPHQL_PARSE_FAILED"),
        ("{ nope }", "GRAPHQL_VALIDATION_FAILED"),
        (r#"{ order(id: true) { id } }"#, "GRAPHQL_VALIDATION_FAILED"),
        (
            r#"{ ordersByUser(userId: "1", first: 1) { nodes { user { name } } } }"#,
            "QUERY_LIMIT_EXCEEDED",
        ),
        (
            r#"{ ordersByUser(userId: "1", first: 100) { nodes { notifications { message } } } }"#,
            "QUERY_LIMIT_EXCEEDED",
        ),
    ] {
        let body = gw.graphql(query, json!({})).await;
        assert_eq!(error_code(&body), Some(code), "{query}: {body}");
    }
    backend.stop().await;
}

/// A web front end on a local development server can call the gateway from the browser
/// (CORS preflight and answer), and a page from an origin not allowed cannot.
#[tokio::test]
async fn browsers_on_allowed_origins_pass_cors() {
    let backend = Backend::start().await;
    let gw = Running::start(&backend, backend.config()).await;
    let url = format!("{}/graphql", gw.server.base_url);
    let preflight = gw
        .http
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "http://localhost:5173")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type, authorization",
        )
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let h = preflight.headers();
    assert_eq!(h["access-control-allow-origin"], "http://localhost:5173");
    assert_eq!(h["access-control-allow-credentials"], "true");
    let methods = h["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .to_ascii_uppercase();
    assert!(methods.contains("POST"), "{methods}");

    let answer = gw
        .http
        .post(&url)
        .header("origin", "http://localhost:5173")
        .json(&json!({"query": r#"{ userName(id: "1") }"#}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        answer.headers()["access-control-allow-origin"],
        "http://localhost:5173"
    );
    let exposed = answer.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(exposed.contains("retry-after"), "{exposed}");
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["data"]["userName"], "Alice Johnson");

    let foreign = gw
        .http
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(
        foreign
            .headers()
            .get("access-control-allow-origin")
            .is_none(),
        "{:?}",
        foreign.headers()
    );
    backend.stop().await;
}

/// graphql-js's `getIntrospectionQuery()` (default options), which GraphiQL, graphql-inspector,
/// Python gql and code generators send: 15 levels deep through `TypeRef`.
const STANDARD_INTROSPECTION: &str = r#"
query IntrospectionQuery {
  __schema {
    queryType { name }
    mutationType { name }
    subscriptionType { name }
    types { ...FullType }
    directives { name description locations args { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description
  fields(includeDeprecated: true) {
    name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason
  }
  inputFields { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
fragment TypeRef on __Type {
  kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name
    ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } }
}
"#;

/// Standard tools introspect with the depth limit on, while ordinary queries stay limited.
#[tokio::test]
async fn standard_introspection_works_under_the_depth_limit() {
    let backend = Backend::start().await;
    let gw = Running::start(&backend, backend.config()).await;
    let body = gw.graphql(STANDARD_INTROSPECTION, json!({})).await;
    assert!(body["errors"].is_null(), "{body}");
    let types = body["data"]["__schema"]["types"].as_array().unwrap();
    assert!(
        types.iter().any(|t| t["name"] == "OrderConnection"),
        "{body}"
    );
    assert_eq!(body["data"]["__schema"]["queryType"]["name"], "Query");
    backend.stop().await;
}

/// Loading the GraphQL page or the spec is not an API call and does not use up the rate limit.
#[tokio::test]
async fn pages_and_the_spec_do_not_count_against_the_rate_limit() {
    let backend = Backend::start().await;
    let gw = Running::start(&backend, shared_config(&backend.config(), 2)).await;
    let ip = "198.51.100.91";
    for path in [
        "/",
        "/favicon.ico",
        "/graphql",
        "/graphiql/graphiql.min.js",
        "/api/openapi.json",
        "/graphql",
        "/favicon.ico",
        "/api/openapi.json",
    ] {
        let resp = gw
            .http
            .get(format!("{}{path}", gw.server.base_url))
            .header("x-forwarded-for", ip)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{path}");
    }
    for _ in 0..2 {
        let (status, body) = gw
            .graphql_from(ip, r#"{ userName(id: "1") }"#, json!({}))
            .await;
        assert_eq!(
            (status, &body["data"]["userName"]),
            (200, &json!("Alice Johnson"))
        );
    }
    let (status, _) = gw
        .graphql_from(ip, r#"{ userName(id: "1") }"#, json!({}))
        .await;
    assert_eq!(status, 429, "the third API call is over the limit of 2");
    backend.stop().await;
}

/// Every limited answer, REST and GraphQL, carries the draft-ietf-httpapi-ratelimit-headers
/// fields: the policy, and what is left; a GraphQL request that costs more takes more; a
/// refusal says 0 left and when to retry.
#[tokio::test]
async fn answers_carry_the_ratelimit_fields() {
    let backend = Backend::start().await;
    let gw = Running::start(&backend, shared_config(&backend.config(), 10)).await;
    let base = &gw.server.base_url;
    let ip = "198.51.100.91";
    let field = |r: &reqwest::Response, name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let remaining = |v: &str| -> u32 {
        let r = v.split(';').find_map(|p| p.strip_prefix("r=")).unwrap();
        r.parse().unwrap()
    };
    let rest_call = || {
        gw.http
            .get(format!("{base}/api/users/1/name"))
            .header("x-forwarded-for", ip)
            .send()
    };
    let rest = rest_call().await.unwrap();
    assert_eq!(rest.status(), 200);
    assert_eq!(
        field(&rest, "ratelimit-policy").as_deref(),
        Some("\"default\";q=10;w=60")
    );
    let left = field(&rest, "ratelimit").expect("RateLimit on a REST answer");
    assert!(left.starts_with("\"default\";r=9;t="), "{left}");

    // A GraphQL query of complexity 2..100 counts as one request more than nothing.
    let post = |query: &str| {
        gw.http
            .post(format!("{base}/graphql"))
            .header("x-forwarded-for", ip)
            .json(&json!({ "query": query }))
            .send()
    };
    let cheap = post(r#"{ userName(id: "1") }"#).await.unwrap();
    assert_eq!(
        field(&cheap, "ratelimit-policy").as_deref(),
        Some("\"default\";q=10;w=60")
    );
    assert_eq!(remaining(&field(&cheap, "ratelimit").unwrap()), 8);
    // Three mutations count as three requests: one by the middleware, two by the operation.
    let three = post(
        r#"mutation { a: createOrder(input: {userId: "1", productId: "1", quantity: 1}) { id }
                      b: createOrder(input: {userId: "1", productId: "2", quantity: 1}) { id }
                      c: createOrder(input: {userId: "1", productId: "3", quantity: 1}) { id } }"#,
    )
    .await
    .unwrap();
    assert_eq!(remaining(&field(&three, "ratelimit").unwrap()), 5);
    // Five more allowed, then refused with 0 left and Retry-After.
    for _ in 0..5 {
        post(r#"{ userName(id: "1") }"#).await.unwrap();
    }
    let refused = rest_call().await.unwrap();
    assert_eq!(refused.status(), 429);
    let retry: u64 = field(&refused, "retry-after").unwrap().parse().unwrap();
    assert_eq!(
        field(&refused, "ratelimit").unwrap(),
        format!("\"default\";r=0;t={retry}")
    );
    assert!(field(&refused, "ratelimit-policy").is_some());
    backend.stop().await;
}

/// GraphiQL's page and assets, the index and the favicon are served by the gateway itself;
/// the page may load only from the gateway (its Content-Security-Policy says so), and every
/// asset it references is served.
#[tokio::test]
async fn graphiql_the_index_and_the_favicon_are_served_from_the_gateway() {
    let backend = Backend::start().await;
    let gw = Running::start(&backend, backend.config()).await;
    let base = &gw.server.base_url;
    let get = |path: &str| gw.http.get(format!("{base}{path}")).send();
    let page = get("/graphql").await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("default-src 'self'") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
    let html = page.text().await.unwrap();
    let referenced: Vec<&str> = html
        .split(['"', '\''])
        .filter(|s| s.starts_with("/graphiql/") || s.starts_with("/favicon"))
        .collect();
    assert_eq!(referenced.len(), 6, "{referenced:?}");
    for path in referenced {
        let asset = get(path).await.unwrap();
        assert_eq!(asset.status(), 200, "{path}");
        let ty = asset.headers()["content-type"].to_str().unwrap().to_owned();
        let expected = match path.rsplit('.').next() {
            Some("js") => "text/javascript",
            Some("css") => "text/css",
            _ => "image/svg+xml",
        };
        assert!(ty.starts_with(expected), "{path}: {ty}");
        assert!(!asset.bytes().await.unwrap().is_empty(), "{path}");
    }
    let index = get("/").await.unwrap();
    assert_eq!(index.status(), 200);
    let index = index.text().await.unwrap();
    for link in [
        "/graphql",
        "/docs",
        "/api/openapi.json",
        "/health/ready",
        "/metrics",
    ] {
        assert!(
            index.contains(&format!("href=\"{link}\"")),
            "the index links {link}"
        );
    }
    let favicon = get("/favicon.ico").await.unwrap();
    assert_eq!(favicon.status(), 200);
    assert!(
        favicon.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("image/svg+xml")
    );
    backend.stop().await;
}

/// Without a token only sign-up and log-in answer; with Alice's token, Alice's data and only
/// hers, also when the gateway serves it from its cache; an admin reads everything.
#[tokio::test]
async fn a_token_reaches_its_own_data_only_through_graphql_and_rest() {
    let backend = Backend::start().await;
    let gw = Running::start(&backend, backend.config()).await;
    let base = gw.server.base_url.clone();
    let as_client = |http: &reqwest::Client, query: &str, variables: Value| {
        let (http, base, query) = (http.clone(), base.clone(), query.to_owned());
        async move { testkit::graphql(&http, &base, &[], &query, variables).await }
    };

    // The admin orders for Bob; the order is now in the gateway's cache.
    let bobs = gw
        .graphql(
            CREATE,
            json!({"input": {"userId": "2", "productId": "5", "quantity": 1}}),
        )
        .await;
    let bobs_id = bobs["data"]["createOrder"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Anonymous: guarded fields answer UNAUTHENTICATED, public ones work.
    for query in [
        r#"{ order(id: "1") { id } }"#,
        "{ me { id } }",
        r#"{ ordersByUser(userId: "1") { nodes { id } } }"#,
        r#"mutation { createOrder(input: {userId: "1", productId: "1", quantity: 1}) { id } }"#,
    ] {
        let (_, body) = as_client(&gw.anonymous, query, json!({})).await;
        assert_eq!(
            error_code(&body),
            Some("UNAUTHENTICATED"),
            "{query}: {body}"
        );
    }
    let (_, login) = as_client(
        &gw.anonymous,
        "mutation { login(email: \"alice@example.com\", password: \"shopmesh-demo\") { accessToken refreshToken expiresIn tokenType } }",
        json!({}),
    )
    .await;
    let tokens = &login["data"]["login"];
    assert_eq!(tokens["tokenType"], "Bearer", "{login}");
    let (_, wrong) = as_client(
        &gw.anonymous,
        "mutation { login(email: \"alice@example.com\", password: \"not it\") { accessToken } }",
        json!({}),
    )
    .await;
    assert_eq!(error_code(&wrong), Some("UNAUTHENTICATED"), "{wrong}");

    // Alice.
    let alice = AccessToken::new(tokens["accessToken"].as_str().unwrap());
    let as_alice = testkit::authed_http(&alice);
    let (_, me) = as_client(&as_alice, "{ me { id name } }", json!({})).await;
    assert_eq!(
        me["data"]["me"],
        json!({"id": "1", "name": "Alice Johnson"}),
        "{me}"
    );
    // Bob's order answers as a missing one does: null, nothing to tell them apart.
    let mut answers = Vec::new();
    for id in [bobs_id.to_string(), "999999".to_owned()] {
        let query = format!(r#"{{ order(id: "{id}") {{ id }} }}"#);
        answers.push(as_client(&as_alice, &query, json!({})).await.1);
    }
    assert_eq!(answers[0], json!({"data": {"order": null}}));
    assert_eq!(answers[0], answers[1]);
    for query in [
        r#"{ user(id: "2") { name } }"#.to_owned(),
        r#"{ userName(id: "2") }"#.to_owned(),
        r#"{ ordersByUser(userId: "2") { nodes { id } } }"#.to_owned(),
        r#"mutation { createOrder(input: {userId: "2", productId: "1", quantity: 1}) { id } }"#
            .to_owned(),
    ] {
        let (_, body) = as_client(&as_alice, &query, json!({})).await;
        assert_eq!(error_code(&body), Some("FORBIDDEN"), "{query}: {body}");
    }
    let (_, own) = as_client(
        &as_alice,
        r#"mutation { createOrder(input: {userId: "1", productId: "3", quantity: 1}) { id user { name } } }"#,
        json!({}),
    )
    .await;
    assert_eq!(
        own["data"]["createOrder"]["user"]["name"], "Alice Johnson",
        "{own}"
    );

    // A token that does not verify is refused as a whole: 401, no data.
    let forged = testkit::authed_http(&AccessToken::new("eyJhbGciOiJub25lIn0.e30."));
    let (status, body) = as_client(&forged, r#"{ userName(id: "1") }"#, json!({})).await;
    assert_eq!(
        (status, error_code(&body)),
        (401, Some("UNAUTHENTICATED")),
        "{body}"
    );

    // REST: the same rules, as problems.
    let rest = |http: &reqwest::Client, path: &str| {
        let (http, url) = (http.clone(), format!("{base}{path}"));
        async move {
            let resp = http.get(url).send().await.unwrap();
            let status = resp.status().as_u16();
            let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
            (status, ct)
        }
    };
    let (status, ct) = rest(&gw.anonymous, "/api/users/1").await;
    assert_eq!(status, 401);
    assert!(ct.starts_with("application/problem+json"), "{ct}");
    assert_eq!(
        rest(&as_alice, &format!("/api/orders/{bobs_id}")).await.0,
        404,
        "cached, still Bob's: as missing as an order that never was"
    );
    assert_eq!(rest(&as_alice, "/api/orders/999999").await.0, 404);
    assert_eq!(
        rest(&as_alice, &format!("/api/orders/{bobs_id}/notifications"))
            .await
            .0,
        404,
        "Bob's order, through its notifications, is as missing"
    );
    assert_eq!(
        rest(&as_alice, "/api/orders/999999/notifications").await.0,
        404
    );
    assert_eq!(rest(&as_alice, "/api/users/2").await.0, 403);
    assert_eq!(rest(&as_alice, "/api/users/1").await.0, 200);
    assert_eq!(
        rest(&gw.http, &format!("/api/orders/{bobs_id}")).await.0,
        200,
        "the admin"
    );
    let issued = gw
        .anonymous
        .post(format!("{base}/api/auth/token"))
        .json(&json!({"email": "bob@example.com", "password": "shopmesh-demo"}))
        .send()
        .await
        .unwrap();
    assert_eq!(issued.status().as_u16(), 200);
    let issued: Value = issued.json().await.unwrap();
    let bob = AccessToken::new(issued["accessToken"].as_str().unwrap());
    assert_eq!(
        rest(
            &testkit::authed_http(&bob),
            &format!("/api/orders/{bobs_id}")
        )
        .await
        .0,
        200
    );

    // Refresh and log out through GraphQL.
    let refresh = tokens["refreshToken"].as_str().unwrap();
    let (_, renewed) = as_client(
        &gw.anonymous,
        "mutation($r: String!) { refreshToken(refreshToken: $r) { refreshToken } }",
        json!({"r": refresh}),
    )
    .await;
    let next = renewed["data"]["refreshToken"]["refreshToken"]
        .as_str()
        .unwrap();
    let (_, out) = as_client(
        &gw.anonymous,
        "mutation($r: String!) { logout(refreshToken: $r) }",
        json!({"r": next}),
    )
    .await;
    assert_eq!(out["data"]["logout"], true, "{out}");
    let (_, dead) = as_client(
        &gw.anonymous,
        "mutation($r: String!) { refreshToken(refreshToken: $r) { refreshToken } }",
        json!({"r": next}),
    )
    .await;
    assert_eq!(error_code(&dead), Some("UNAUTHENTICATED"), "{dead}");
    gw.server.stop().await;
    backend.stop().await;
}

/// Failed log-ins through the gateway count against the client that made them (the gateway
/// forwards its address), not against the gateway: one client locking itself out does not lock
/// out the others, and its 429 says when to retry, over REST and GraphQL.
#[tokio::test]
async fn log_in_limits_through_the_gateway_are_per_client() {
    let backend = Backend::start_on(
        test_stack()
            .set_for(Service::Users, "LOGIN_MAX_FAILURES", "100")
            .set_for(Service::Users, "LOGIN_MAX_FAILURES_PER_ADDRESS", "3")
            .set_for(Service::Users, "LOGIN_LOCK_SECS", "60"),
    )
    .await;
    let gw = Running::start(&backend, backend.config()).await;
    let log_in = |from: &'static str, password: &'static str| {
        let (http, url) = (
            gw.anonymous.clone(),
            format!("{}/api/auth/token", gw.server.base_url),
        );
        async move {
            let resp = http
                .post(url)
                .header("x-forwarded-for", from)
                .json(&json!({"email": "alice@example.com", "password": password}))
                .send()
                .await
                .unwrap();
            let retry = resp
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            (resp.status().as_u16(), retry)
        }
    };
    for _ in 0..3 {
        assert_eq!(log_in("203.0.113.50", "guess").await.0, 401);
    }
    let (status, retry) = log_in("203.0.113.50", "shopmesh-demo").await;
    assert_eq!(status, 429, "this client is locked out");
    let secs: u64 = retry.expect("Retry-After").parse().unwrap();
    assert!((1..=60).contains(&secs), "{secs}");
    assert_eq!(
        log_in("203.0.113.51", "shopmesh-demo").await.0,
        200,
        "another client is not"
    );
    let (_, body) = gw
        .graphql_from(
            "203.0.113.50",
            r#"mutation { login(email: "bob@example.com", password: "shopmesh-demo") { accessToken } }"#,
            json!({}),
        )
        .await;
    assert_eq!(error_code(&body), Some("TOO_MANY_REQUESTS"), "{body}");
    assert!(
        body["errors"][0]["extensions"]["retryAfter"]
            .as_u64()
            .is_some(),
        "{body}"
    );
    gw.server.stop().await;
    backend.stop().await;
}

/// A logged-in user is counted by who they are, with their role's limit, wherever they call
/// from; anonymous clients by address, with the anonymous limit.
#[tokio::test]
async fn the_rate_limit_is_per_user_with_limits_by_role_and_per_address_for_anonymous_clients() {
    let backend = Backend::start().await;
    let mut config = backend.config();
    config.rate_limit.max_requests = 2;
    config.rate_limit.max_requests_user = 4;
    config.rate_limit.max_requests_admin = 6;
    let gw = Running::start(&backend, config).await;
    let alice = testkit::authed_http(&backend.token(1, Role::User));
    let statuses = |http: &reqwest::Client, n: usize, addresses: &'static [&'static str]| {
        let (http, url) = (
            http.clone(),
            format!("{}/api/users/1/name", gw.server.base_url),
        );
        async move {
            let mut out = Vec::new();
            for i in 0..n {
                let resp = http
                    .get(&url)
                    .header("x-forwarded-for", addresses[i % addresses.len()])
                    .send()
                    .await
                    .unwrap();
                let policy = resp.headers().get("ratelimit-policy").cloned();
                out.push((resp.status().as_u16(), policy));
            }
            out
        }
    };
    // Alice, from three addresses: one quota of 4.
    let seen = statuses(&alice, 5, &["203.0.113.1", "203.0.113.2", "203.0.113.3"]).await;
    let codes: Vec<u16> = seen.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        codes,
        [200, 200, 200, 200, 429],
        "per user, not per address"
    );
    assert_eq!(seen[0].1.as_ref().unwrap(), "\"default\";q=4;w=60");
    // The admin has the admin's quota.
    let admin: Vec<u16> = statuses(&gw.http, 7, &["203.0.113.1"])
        .await
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(admin, [200, 200, 200, 200, 200, 200, 429]);
    // Anonymous callers from Alice's addresses are not charged for her: 2 each.
    let anonymous: Vec<u16> = statuses(&gw.anonymous, 3, &["203.0.113.1"])
        .await
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(anonymous, [401, 401, 429]);
    gw.server.stop().await;
    backend.stop().await;
}

/// Every kind of bad token is refused by the gateway: a 401 problem on REST, a 401 with
/// `UNAUTHENTICATED` on GraphQL, before anything runs downstream.
#[tokio::test]
async fn every_kind_of_bad_token_is_refused_on_rest_and_graphql() {
    let backend = Backend::start().await;
    let gw = Running::start(&backend, backend.config()).await;
    let base = gw.server.base_url.clone();
    let before = gw.gateway.backends.calls.users.load(Ordering::SeqCst)
        + gw.gateway.backends.calls.orders.load(Ordering::SeqCst);
    for (what, token) in testkit::refused_tokens(&backend.stack) {
        let with = |req: reqwest::RequestBuilder| match &token {
            Some(t) => req.bearer_auth(t.expose()),
            None => req,
        };
        let rest = with(gw.anonymous.get(format!("{base}/api/users/1")))
            .send()
            .await
            .unwrap();
        assert_eq!(rest.status().as_u16(), 401, "{what}: REST");
        let graphql = with(gw.anonymous.post(format!("{base}/graphql")))
            .json(&json!({"query": "{ user(id: \"1\") { name } }"}))
            .send()
            .await
            .unwrap();
        let status = graphql.status().as_u16();
        let body: Value = graphql.json().await.unwrap();
        assert_eq!(error_code(&body), Some("UNAUTHENTICATED"), "{what}: {body}");
        // No token: the guarded field refuses (200); a token that does not verify: 401.
        assert_eq!(status, if token.is_some() { 401 } else { 200 }, "{what}");
    }
    let after = gw.gateway.backends.calls.users.load(Ordering::SeqCst)
        + gw.gateway.backends.calls.orders.load(Ordering::SeqCst);
    assert_eq!(after, before, "no downstream call");
    gw.server.stop().await;
    backend.stop().await;
}
