//! Calls to the services behind the gateway, only through their generated clients, each with a
//! timeout and the caller's own token, plus caches of their answers:
//! - orders: in process memory, then in Redis (`order:{id}`, 300 s), both kept coherent by the
//!   orders service, which writes a changed order over the Redis entry (kept only if newer,
//!   by version) and announces it, whereupon every gateway drops it from memory;
//! - users: in process memory, dropped when the users service announces a change (see
//!   [`shopmesh_common::near_cache`]); the shared tier behind it is the users service's own;
//! - "no such user": in Redis for a few seconds (`gateway:user:{id}`);
//! - products, and pages and SKU lookups of them: in process memory, dropped when the catalog
//!   announces a change (any change drops every page and SKU lookup).
//!
//! The services decide who may see what; a cached answer is checked against the same rule
//! before it is served, so the cache never hands one user another's data.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use poem_openapi::types::{ParseFromJSON, ToJSON};
use shopmesh_common::cache::RedisCache;
use shopmesh_common::near_cache::{NearCache, Ticket};
use shopmesh_common::telemetry;
use shopmesh_identity::{AuthError, Principal};
use shopmesh_openapi::catalog::{self, CatalogClient};
use shopmesh_openapi::orders::{self, OrdersClient};
use shopmesh_openapi::runtime::{ClientError, RequestHook};
use shopmesh_openapi::users::{self, UsersClient};
use shopmesh_proto::shopmesh::notification::v1 as pb;
use shopmesh_proto::shopmesh::notification::v1::notification_service_client::NotificationServiceClient;
use tonic::metadata::MetadataMap;
use tonic::transport::{Channel, Endpoint};
use tracing::Instrument;

use crate::breaker::{CircuitBreaker, CircuitState};
use crate::config::GatewayConfig;
use crate::error::GatewayError;

/// How many calls went to each downstream service (for tests and metrics).
#[derive(Debug, Default)]
pub struct DownstreamCalls {
    /// Calls to the orders service.
    pub orders: AtomicU64,
    /// Calls to the users service.
    pub users: AtomicU64,
    /// Calls to the notifications service.
    pub notifications: AtomicU64,
    /// Calls to the catalog service.
    pub catalog: AtomicU64,
}

/// A lookup of products other than by id: a page, or a SKU. Any announced change may alter
/// any of them, so an announcement (which never parses as this key) drops them all.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ProductQuery {
    /// `listProducts(first, after, query)`.
    Page(i32, Option<String>, Option<String>),
    /// `getProductBySku(sku)`.
    Sku(String),
}

impl std::str::FromStr for ProductQuery {
    type Err = ();

    fn from_str(_: &str) -> Result<Self, ()> {
        Err(())
    }
}

/// What a [`ProductQuery`] found.
#[derive(Debug, Clone)]
pub enum ProductAnswer {
    /// A page.
    Page(catalog::ProductPage),
    /// One product.
    Product(catalog::Product),
}

/// The downstream services and the response cache.
pub struct Backends {
    orders: OrdersClient,
    users: UsersClient,
    catalog: CatalogClient,
    notifications: NotificationServiceClient<Channel>,
    notifications_channel: Channel,
    /// For the liveness probes of the HTTP services.
    health_http: reqwest::Client,
    cache: RedisCache,
    /// Orders, coherent with the orders service's announcements.
    order_memory: NearCache<i64, orders::Order>,
    /// Order versions the live feed has told subscribers of: no cached copy older is served.
    heard: crate::live::HeardVersions,
    /// Users, coherent with the users service's announcements.
    user_memory: NearCache<i64, users::User>,
    /// Products by id, coherent with the catalog's announcements.
    product_memory: NearCache<i64, catalog::Product>,
    /// Pages and SKU lookups, all dropped at any announcement.
    product_queries: NearCache<ProductQuery, ProductAnswer>,
    timeout: Duration,
    order_ttl: Duration,
    not_found_ttl: Duration,
    prefix: String,
    breakers: Breakers,
    /// Call counters (attempts, retries included).
    pub calls: DownstreamCalls,
}

/// One circuit breaker per downstream service.
struct Breakers {
    orders: CircuitBreaker,
    users: CircuitBreaker,
    notifications: CircuitBreaker,
    catalog: CircuitBreaker,
}

/// Adds the current span's trace context to a generated client's request headers, and the
/// client's address as `X-Forwarded-For` (the users service counts failed log-ins by it).
fn downstream_hook() -> RequestHook {
    RequestHook::new(|headers| {
        headers.extend(telemetry::trace_header_map(&tracing::Span::current()));
        if let Some(value) = crate::client::address().and_then(|ip| ip.to_string().parse().ok()) {
            headers.insert("x-forwarded-for", value);
        }
    })
}

/// The REST services behind the gateway.
#[derive(Debug, Clone, Copy)]
enum Rest {
    Orders,
    Users,
    Catalog,
}

tokio::task_local! {
    /// Downstream calls the current GraphQL request may still make (set around its execution
    /// and its DataLoader batches; REST requests make at most two calls and run without it).
    pub static CALL_BUDGET: Arc<AtomicU32>;
}

/// Counts one downstream call (retries included) against the service's counter and the
/// current request's [`CALL_BUDGET`]; refuses the call when the budget is spent.
fn count_call(counter: &AtomicU64) -> Result<(), GatewayError> {
    let within = CALL_BUDGET
        .try_with(|left| {
            left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok()
        })
        .unwrap_or(true);
    if !within {
        return Err(GatewayError::CallBudgetSpent);
    }
    counter.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// A call that may be retried: it changes nothing.
const READ: bool = true;
/// A call that is sent once: a retry could apply it twice.
const WRITE: bool = false;

/// How long an idle pooled connection to users or orders is kept.
const DOWNSTREAM_POOL_IDLE: std::time::Duration = std::time::Duration::from_secs(20);

/// What the cache holds for a user id the users service does not know (JSON `null`).
const NOT_FOUND: &str = "null";

fn encode<T: ToJSON>(value: &T) -> Option<String> {
    value.to_json().map(|v| v.to_string())
}

fn decode<T: ParseFromJSON>(text: &str) -> Option<T> {
    serde_json::from_str(text)
        .ok()
        .and_then(|v| T::parse_from_json(Some(v)).ok())
}

impl Backends {
    /// Clients for the configured URLs; nothing connects until first use.
    pub fn new(config: &GatewayConfig, cache: RedisCache) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(config.downstream_timeout)
            .connect_timeout(config.downstream_timeout)
            // Sooner than the services close idle connections (HttpConfig), so a request
            // never goes out on a connection the server is closing.
            .pool_idle_timeout(DOWNSTREAM_POOL_IDLE)
            .build()?;
        let channel = Endpoint::from_shared(config.notification_service_url.clone())?
            .timeout(config.downstream_timeout)
            .connect_timeout(config.downstream_timeout)
            .connect_lazy();
        let order_memory = NearCache::new(config.order_memory.entries, config.order_cache_ttl);
        order_memory.follow(cache.clone(), config.order_memory.channel.clone());
        let user_memory = NearCache::new(config.user_memory.entries, config.user_cache_ttl);
        user_memory.follow(cache.clone(), config.user_memory.channel.clone());
        let product_memory =
            NearCache::new(config.product_memory.entries, config.product_cache_ttl);
        product_memory.follow(cache.clone(), config.product_memory.channel.clone());
        let product_queries =
            NearCache::new(config.product_memory.entries, config.product_cache_ttl);
        product_queries.follow(cache.clone(), config.product_memory.channel.clone());
        Ok(Self {
            orders: OrdersClient::with_http_client(&config.order_service_url, http.clone())
                .with_request_hook(downstream_hook()),
            users: UsersClient::with_http_client(&config.user_service_url, http.clone())
                .with_request_hook(downstream_hook()),
            catalog: CatalogClient::with_http_client(&config.catalog_service_url, http.clone())
                .with_request_hook(downstream_hook()),
            notifications: NotificationServiceClient::new(channel.clone()),
            notifications_channel: channel,
            health_http: http.clone(),
            cache,
            order_memory,
            heard: crate::live::HeardVersions::new(),
            user_memory,
            product_memory,
            product_queries,
            timeout: config.downstream_timeout,
            order_ttl: config.order_cache_ttl,
            not_found_ttl: config.not_found_cache_ttl,
            prefix: config.cache_prefix.clone(),
            breakers: Breakers {
                orders: CircuitBreaker::new("orders", config.resilience),
                users: CircuitBreaker::new("users", config.resilience),
                notifications: CircuitBreaker::new("notifications", config.resilience),
                catalog: CircuitBreaker::new("catalog", config.resilience),
            },
            calls: DownstreamCalls::default(),
        })
    }

    /// One call to a REST service through its circuit breaker (retried when `idempotent`),
    /// counted against the service and the current request's budget; its failure mapped to
    /// the gateway's error.
    async fn rest<T, F, Fut>(
        &self,
        service: Rest,
        idempotent: bool,
        call: F,
    ) -> Result<T, GatewayError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, ClientError>>,
    {
        let (breaker, counter, name) = match service {
            Rest::Orders => (&self.breakers.orders, &self.calls.orders, "orders"),
            Rest::Users => (&self.breakers.users, &self.calls.users, "users"),
            Rest::Catalog => (&self.breakers.catalog, &self.calls.catalog, "catalog"),
        };
        breaker
            .call(idempotent, || async {
                count_call(counter)?;
                call().await.map_err(|e| GatewayError::from_client(name, e))
            })
            .await
    }

    /// The state of each downstream service's circuit: orders, users, notifications, catalog.
    pub fn circuits(&self) -> [CircuitState; 4] {
        let b = &self.breakers;
        [
            b.orders.state(),
            b.users.state(),
            b.notifications.state(),
            b.catalog.state(),
        ]
    }

    /// The response cache.
    pub fn cache(&self) -> &RedisCache {
        &self.cache
    }

    /// Order reads served from process memory.
    pub fn memory_hits(&self) -> u64 {
        self.order_memory.hits()
    }

    /// User reads served from process memory.
    pub fn user_memory_hits(&self) -> u64 {
        self.user_memory.hits()
    }

    /// Product reads (by id, page or SKU) served from process memory.
    pub fn product_memory_hits(&self) -> u64 {
        self.product_memory.hits() + self.product_queries.hits()
    }

    /// One product, from process memory when present. Products are public.
    pub async fn product(&self, id: i64) -> Result<catalog::Product, GatewayError> {
        if let Some(product) = self.product_memory.get(&id) {
            return Ok(product);
        }
        let ticket = self.product_memory.ticket();
        let product = self
            .rest(Rest::Catalog, READ, || self.catalog.get_product(id))
            .await?;
        self.product_memory.fill(ticket, id, product.clone());
        Ok(product)
    }

    /// One product by SKU, from process memory when present.
    pub async fn product_by_sku(&self, sku: String) -> Result<catalog::Product, GatewayError> {
        let key = ProductQuery::Sku(sku.clone());
        if let Some(ProductAnswer::Product(product)) = self.product_queries.get(&key) {
            return Ok(product);
        }
        let ticket = self.product_queries.ticket();
        let product = self
            .rest(Rest::Catalog, READ, || {
                self.catalog.get_product_by_sku(sku.clone())
            })
            .await?;
        self.product_queries
            .fill(ticket, key, ProductAnswer::Product(product.clone()));
        Ok(product)
    }

    /// A page of active products, from process memory when present.
    pub async fn products(
        &self,
        first: i32,
        after: Option<String>,
        query: Option<String>,
    ) -> Result<catalog::ProductPage, GatewayError> {
        let key = ProductQuery::Page(first, after.clone(), query.clone());
        if let Some(ProductAnswer::Page(page)) = self.product_queries.get(&key) {
            return Ok(page);
        }
        let ticket = self.product_queries.ticket();
        let page = self
            .rest(Rest::Catalog, READ, || {
                self.catalog
                    .list_products(Some(first), after.clone(), query.clone())
            })
            .await?;
        self.product_queries
            .fill(ticket, key, ProductAnswer::Page(page.clone()));
        Ok(page)
    }

    /// Adds a product (the catalog checks the caller is an admin). Writes are sent once: an
    /// idempotency key makes a retry by the client safe. The catalog announces the change,
    /// which clears every gateway's product memory.
    pub async fn create_product(
        &self,
        caller: &Principal,
        idempotency_key: Option<&str>,
        input: catalog::ProductInput,
    ) -> Result<catalog::Product, GatewayError> {
        self.rest(Rest::Catalog, WRITE, || {
            self.catalog
                .create_product(&caller.token, idempotency_key, &input)
        })
        .await
    }

    /// Changes product `id`.
    pub async fn update_product(
        &self,
        caller: &Principal,
        id: i64,
        input: catalog::ProductInput,
    ) -> Result<catalog::Product, GatewayError> {
        self.rest(Rest::Catalog, WRITE, || {
            self.catalog.update_product(&caller.token, id, &input)
        })
        .await
    }

    /// Creates or updates products from CSV, all rows or none.
    pub async fn import_products(
        &self,
        caller: &Principal,
        idempotency_key: Option<&str>,
        import: catalog::ProductImport,
    ) -> Result<catalog::ImportReport, GatewayError> {
        self.rest(Rest::Catalog, WRITE, || {
            self.catalog
                .import_products(&caller.token, idempotency_key, &import)
        })
        .await
    }

    /// Adjusts product `id`'s units on hand, then answers the product as the catalog has it
    /// now (read past this gateway's memory, which may not have heard of the change yet).
    pub async fn adjust_stock(
        &self,
        caller: &Principal,
        id: i64,
        idempotency_key: Option<&str>,
        adjustment: catalog::StockAdjustment,
    ) -> Result<catalog::Product, GatewayError> {
        self.rest(Rest::Catalog, WRITE, || {
            self.catalog
                .adjust_stock(&caller.token, id, idempotency_key, &adjustment)
        })
        .await?;
        self.rest(Rest::Catalog, READ, || self.catalog.get_product(id))
            .await
    }

    /// Redis key of a cached order (`order:{id}`, after the configured prefix).
    pub fn order_key(&self, id: i64) -> String {
        shopmesh_common::cache::order_key(&self.prefix, id)
    }

    fn user_key(&self, id: i64) -> String {
        format!("{}gateway:user:{id}", self.prefix)
    }

    /// Writes `order` to Redis unless a newer version of it is there (the orders service
    /// writes each change), and to this gateway's memory unless a change was announced since
    /// `ticket`.
    async fn remember(&self, ticket: Ticket, order: &orders::Order) {
        match encode(order) {
            Some(text) => {
                let version = u64::try_from(order.version).unwrap_or(0);
                self.cache
                    .set_versioned(&self.order_key(order.id), version, &text, self.order_ttl)
                    .await;
            }
            None => self.cache.delete(&self.order_key(order.id)).await,
        }
        self.order_memory.fill(ticket, order.id, order.clone());
    }

    /// The versions the live feed records, shared with it.
    pub fn heard_versions(&self) -> crate::live::HeardVersions {
        self.heard.clone()
    }

    /// One order, from the cache when present (and the caller's to see) and not older than a
    /// change the live feed has told.
    pub async fn order(&self, caller: &Principal, id: i64) -> Result<orders::Order, GatewayError> {
        let current = |order: &orders::Order| !self.heard.is_behind(order.id, order.version);
        if let Some(order) = self.order_memory.get(&id).filter(current) {
            return visible(caller, order);
        }
        let ticket = self.order_memory.ticket();
        if let Some(order) = self
            .cache
            .get_versioned(&self.order_key(id))
            .await
            .and_then(|t| decode::<orders::Order>(&t))
            .filter(current)
        {
            self.order_memory.fill(ticket, id, order.clone());
            return visible(caller, order);
        }
        let order = self
            .rest(Rest::Orders, READ, || {
                self.orders.get_order(&caller.token, id)
            })
            .await?;
        self.remember(ticket, &order).await;
        Ok(order)
    }

    /// Sends a call that writes an order once (a retry by the gateway could apply it twice;
    /// an idempotency key makes a retry by the client safe), then keeps the order it answers
    /// as any other read.
    async fn write_order<F, Fut>(&self, call: F) -> Result<orders::Order, GatewayError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<orders::Order, ClientError>>,
    {
        let ticket = self.order_memory.ticket();
        let order = self.rest(Rest::Orders, WRITE, call).await?;
        self.remember(ticket, &order).await;
        Ok(order)
    }

    /// Places an order. The orders service owns the rules: whose name an order may be placed
    /// in, and that the user exists (a 400 for one that does not).
    pub async fn create_order(
        &self,
        caller: &Principal,
        idempotency_key: Option<&str>,
        request: orders::CreateOrderRequest,
    ) -> Result<orders::Order, GatewayError> {
        self.write_order(|| {
            self.orders
                .create_order(&caller.token, idempotency_key, &request)
        })
        .await
    }

    /// Cancels an order (the orders service decides whether the caller may and whether it
    /// still can).
    pub async fn cancel_order(
        &self,
        caller: &Principal,
        id: i64,
    ) -> Result<orders::Order, GatewayError> {
        self.write_order(|| self.orders.cancel_order(&caller.token, id))
            .await
    }

    /// Buys `request.user_id`'s cart.
    pub async fn checkout(
        &self,
        caller: &Principal,
        idempotency_key: &str,
        request: orders::CheckoutRequest,
    ) -> Result<orders::Order, GatewayError> {
        self.write_order(|| {
            self.orders
                .checkout(&caller.token, idempotency_key, &request)
        })
        .await
    }

    /// Marks an order shipped (the orders service checks the caller is an admin).
    pub async fn ship_order(
        &self,
        caller: &Principal,
        id: i64,
    ) -> Result<orders::Order, GatewayError> {
        self.write_order(|| self.orders.ship_order(&caller.token, id))
            .await
    }

    /// `user_id`'s cart (not cached: it changes as the user shops).
    pub async fn cart(
        &self,
        caller: &Principal,
        user_id: i64,
    ) -> Result<orders::Cart, GatewayError> {
        self.rest(Rest::Orders, READ, || {
            self.orders.get_cart(&caller.token, user_id)
        })
        .await
    }

    /// Sets how many of `product_id` `user_id`'s cart holds.
    pub async fn set_cart_line(
        &self,
        caller: &Principal,
        user_id: i64,
        product_id: i64,
        quantity: i32,
    ) -> Result<orders::Cart, GatewayError> {
        let body = orders::CartLineInput { quantity };
        self.rest(Rest::Orders, WRITE, || {
            self.orders
                .set_cart_line(&caller.token, user_id, product_id, &body)
        })
        .await
    }

    /// Takes `product_id` out of `user_id`'s cart.
    pub async fn remove_cart_line(
        &self,
        caller: &Principal,
        user_id: i64,
        product_id: i64,
    ) -> Result<orders::Cart, GatewayError> {
        self.rest(Rest::Orders, WRITE, || {
            self.orders
                .remove_cart_line(&caller.token, user_id, product_id)
        })
        .await
    }

    /// Empties `user_id`'s cart.
    pub async fn clear_cart(
        &self,
        caller: &Principal,
        user_id: i64,
    ) -> Result<orders::Cart, GatewayError> {
        self.rest(Rest::Orders, WRITE, || {
            self.orders.clear_cart(&caller.token, user_id)
        })
        .await
    }

    /// Every status an order has had (not cached: it grows with every change).
    pub async fn order_timeline(
        &self,
        caller: &Principal,
        id: i64,
    ) -> Result<orders::OrderTimeline, GatewayError> {
        self.rest(Rest::Orders, READ, || {
            self.orders.get_order_timeline(&caller.token, id)
        })
        .await
    }

    /// Up to `limit` changes of `user_id`'s orders numbered after `after`, oldest first.
    pub async fn order_changes(
        &self,
        caller: &Principal,
        user_id: i64,
        after: i64,
        limit: i32,
    ) -> Result<orders::OrderChangePage, GatewayError> {
        self.rest(Rest::Orders, READ, || {
            self.orders
                .list_user_order_changes(&caller.token, user_id, Some(after), Some(limit))
        })
        .await
    }

    /// The shop's status changes numbered after `after`, oldest first (an admin's).
    pub async fn shop_order_changes(
        &self,
        caller: &Principal,
        after: i64,
        limit: i32,
    ) -> Result<orders::OrderChangePage, GatewayError> {
        self.rest(Rest::Orders, READ, || {
            self.orders
                .list_order_changes(&caller.token, Some(after), Some(limit))
        })
        .await
    }

    /// A page of a user's orders (not cached: pages change with every new order).
    pub async fn orders_by_user(
        &self,
        caller: &Principal,
        user_id: i64,
        limit: i32,
        cursor: Option<String>,
    ) -> Result<orders::OrderPage, GatewayError> {
        self.rest(Rest::Orders, READ, || {
            self.orders
                .list_user_orders(&caller.token, user_id, Some(limit), cursor.clone())
        })
        .await
    }

    /// Every user's orders, in `status` (the orders contract's spelling) when given; the orders
    /// service lets only admins list them.
    pub async fn orders(
        &self,
        caller: &Principal,
        status: Option<&str>,
        limit: i32,
        cursor: Option<String>,
    ) -> Result<orders::OrderPage, GatewayError> {
        self.rest(Rest::Orders, READ, || {
            self.orders.list_orders(
                &caller.token,
                status.map(str::to_owned),
                Some(limit),
                cursor.clone(),
            )
        })
        .await
    }

    /// One user, from process memory when present.
    /// A cached "no such user" expires after `NOT_FOUND_CACHE_TTL_SECS`; creating the user
    /// through the gateway replaces it at once.
    pub async fn user(&self, caller: &Principal, id: i64) -> Result<users::User, GatewayError> {
        caller.check_access(id)?;
        if let Some(user) = self.user_memory.get(&id) {
            return Ok(user);
        }
        let ticket = self.user_memory.ticket();
        self.unless_missing(id).await?;
        let fetched = self
            .rest(Rest::Users, READ, || self.users.get_user(&caller.token, id))
            .await;
        let user = self.remember_missing(id, fetched).await?;
        self.user_memory.fill(ticket, id, user.clone());
        Ok(user)
    }

    /// A user's display name, which any logged-in user may read: from memory when the user
    /// is there (whoever cached it), else from the users service's name lookup.
    pub async fn user_name(&self, caller: &Principal, id: i64) -> Result<String, GatewayError> {
        if let Some(user) = self.user_memory.get(&id) {
            return Ok(user.name);
        }
        self.unless_missing(id).await?;
        let fetched = self
            .rest(Rest::Users, READ, || {
                self.users.get_user_name(&caller.token, id)
            })
            .await;
        Ok(self.remember_missing(id, fetched).await?.name)
    }

    /// Not found at once when the users service said lately that user `id` does not exist.
    async fn unless_missing(&self, id: i64) -> Result<(), GatewayError> {
        if self.cache.get(&self.user_key(id)).await.as_deref() == Some(NOT_FOUND) {
            return Err(GatewayError::NotFound(format!("user {id} does not exist")));
        }
        Ok(())
    }

    /// `fetched`, remembering for `NOT_FOUND_CACHE_TTL_SECS` when it says user `id` does not
    /// exist.
    async fn remember_missing<T>(
        &self,
        id: i64,
        fetched: Result<T, GatewayError>,
    ) -> Result<T, GatewayError> {
        if matches!(fetched, Err(GatewayError::NotFound(_))) && !self.not_found_ttl.is_zero() {
            self.cache
                .set(&self.user_key(id), NOT_FOUND, self.not_found_ttl)
                .await;
        }
        fetched
    }

    /// Registers a user (once per idempotency `key`), forgets that the id was missing, and
    /// keeps the user in memory.
    pub async fn create_user(
        &self,
        key: Option<&str>,
        request: users::NewUser,
    ) -> Result<users::User, GatewayError> {
        let ticket = self.user_memory.ticket();
        let user = self
            .rest(Rest::Users, WRITE, || self.users.create_user(key, &request))
            .await?;
        self.cache.delete(&self.user_key(user.id)).await;
        self.user_memory.fill(ticket, user.id, user.clone());
        Ok(user)
    }

    /// Logs in at the users service.
    pub async fn log_in(
        &self,
        credentials: users::Credentials,
    ) -> Result<users::TokenResponse, GatewayError> {
        self.rest(Rest::Users, WRITE, || self.users.issue_token(&credentials))
            .await
    }

    /// Trades a refresh token at the users service.
    pub async fn refresh(
        &self,
        refresh_token: String,
    ) -> Result<users::TokenResponse, GatewayError> {
        let request = users::RefreshRequest { refresh_token };
        self.rest(Rest::Users, WRITE, || self.users.refresh_token(&request))
            .await
    }

    /// Revokes a refresh token's family at the users service.
    pub async fn log_out(&self, refresh_token: String) -> Result<(), GatewayError> {
        let request = users::RefreshRequest { refresh_token };
        self.rest(Rest::Users, WRITE, || self.users.logout(&request))
            .await
            .map(|_| ())
    }

    /// Notifications about an order the caller may read, newest first.
    pub async fn notifications_for_order(
        &self,
        caller: &Principal,
        order_id: i64,
    ) -> Result<Vec<pb::Notification>, GatewayError> {
        // An order that does not exist is a 404, not an empty list.
        self.order(caller, order_id).await?;
        self.breakers
            .notifications
            .call(READ, || async {
                let request = pb::GetNotificationsRequest { order_id };
                let answer = self
                    .notifications_rpc("GetNotifications", caller, request, |mut c, r| async move {
                        c.get_notifications(r).await
                    })
                    .await?;
                Ok(answer.notifications)
            })
            .await
    }

    /// Notifications about each of `order_ids` (at most 100), in one call.
    pub async fn notifications_for_orders(
        &self,
        caller: &Principal,
        order_ids: &[i64],
    ) -> Result<Vec<pb::OrderNotifications>, GatewayError> {
        self.breakers
            .notifications
            .call(READ, || async {
                let request = pb::GetNotificationsForOrdersRequest {
                    order_ids: order_ids.to_vec(),
                };
                let answer = self
                    .notifications_rpc(
                        "GetNotificationsForOrders",
                        caller,
                        request,
                        |mut c, r| async move { c.get_notifications_for_orders(r).await },
                    )
                    .await?;
                Ok(answer.orders)
            })
            .await
    }

    /// The caller's new notifications as the notifications service stores them, until the
    /// stream is dropped (which ends the call there).
    pub async fn watch_notifications(
        &self,
        caller: &Principal,
    ) -> Result<tonic::Streaming<pb::WatchNotificationsResponse>, GatewayError> {
        let request = pb::WatchNotificationsRequest {
            user_id: caller.user_id,
        };
        self.notifications_rpc(
            "WatchNotifications",
            caller,
            request,
            |mut c, r| async move { c.watch_notifications(r).await },
        )
        .await
    }

    /// Events in the notifications service's dead-letter queue (the service checks the caller
    /// is an admin).
    pub async fn dead_letters(&self, caller: &Principal) -> Result<u32, GatewayError> {
        let request = pb::GetDeadLettersRequest {};
        let answer = self
            .notifications_rpc("GetDeadLetters", caller, request, |mut c, r| async move {
                c.get_dead_letters(r).await
            })
            .await?;
        Ok(answer.count)
    }

    /// Moves dead-lettered events whose reason contains `reason` back; sent once (not behind
    /// the breaker's retries: a redrive is an operator's deliberate act).
    pub async fn redrive_dead_letters(
        &self,
        caller: &Principal,
        reason: String,
    ) -> Result<pb::RedriveDeadLettersResponse, GatewayError> {
        let request = pb::RedriveDeadLettersRequest { reason };
        self.notifications_rpc(
            "RedriveDeadLetters",
            caller,
            request,
            |mut c, r| async move { c.redrive_dead_letters(r).await },
        )
        .await
    }

    /// One call to the notifications service as `caller` (its token in the `authorization`
    /// metadata): counted, traced (a client span whose context travels in the request
    /// metadata) and bounded by the downstream timeout.
    async fn notifications_rpc<Req, Resp, F, Fut>(
        &self,
        method: &'static str,
        caller: &Principal,
        message: Req,
        call: F,
    ) -> Result<Resp, GatewayError>
    where
        F: FnOnce(NotificationServiceClient<Channel>, tonic::Request<Req>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
    {
        count_call(&self.calls.notifications)?;
        let span = tracing::info_span!(
            "grpc.client",
            otel.name = %format!("shopmesh.notification.v1.NotificationService/{method}"),
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            rpc.system = "grpc",
            rpc.grpc.status_code = tracing::field::Empty,
        );
        let mut request = tonic::Request::new(message);
        *request.metadata_mut() = MetadataMap::from_headers(telemetry::trace_header_map(&span));
        let bearer = caller
            .token
            .header_value()
            .parse()
            .map_err(|_| GatewayError::Unauthenticated(AuthError::Malformed.to_string()))?;
        request.metadata_mut().insert("authorization", bearer);
        let call = tokio::time::timeout(self.timeout, call(self.notifications.clone(), request));
        let outcome = call.instrument(span.clone()).await;
        let code = match &outcome {
            Ok(Ok(_)) => tonic::Code::Ok,
            Ok(Err(status)) => status.code(),
            Err(_) => tonic::Code::DeadlineExceeded,
        };
        span.record("rpc.grpc.status_code", code as i32);
        if code != tonic::Code::Ok {
            span.record("otel.status_code", "ERROR");
        }
        match outcome {
            Ok(Ok(resp)) => Ok(resp.into_inner()),
            Ok(Err(status)) => Err(GatewayError::from_status("notifications", status)),
            Err(_) => Err(GatewayError::Timeout {
                service: "notifications",
            }),
        }
    }

    /// Whether `base_url`'s service answers `/health/live`.
    pub async fn ping_http(&self, base_url: &str) -> Result<(), String> {
        let url = format!("{}/health/live", base_url.trim_end_matches('/'));
        let answered = self.health_http.get(url).send().await;
        match answered {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(format!("answers {}", r.status())),
            Err(_) => Err("not answering".to_owned()),
        }
    }

    /// Whether the notifications service reports SERVING over gRPC health.
    pub async fn ping_notifications(&self) -> Result<(), String> {
        let mut health =
            tonic_health::pb::health_client::HealthClient::new(self.notifications_channel.clone());
        let serving = tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
        let request = tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        };
        match tokio::time::timeout(self.timeout, health.check(request)).await {
            Ok(Ok(r)) if r.get_ref().status == serving => Ok(()),
            _ => Err("not serving".to_owned()),
        }
    }
}

/// `order` as the orders service would answer `caller` for it: another user's order does
/// not exist for them.
fn visible(caller: &Principal, order: orders::Order) -> Result<orders::Order, GatewayError> {
    if caller.sees(order.user_id) {
        Ok(order)
    } else {
        Err(GatewayError::NotFound(format!(
            "order {} does not exist",
            order.id
        )))
    }
}
