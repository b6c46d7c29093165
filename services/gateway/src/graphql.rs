//! The GraphQL API: implements the generated `GatewayResolvers` trait. `Order.user` and
//! `Order.notifications` go through per-request DataLoaders, so a list of orders costs one
//! users call per distinct user and one notifications call per 100 orders.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, Loader};
use async_graphql::{Context, ID};
use futures::StreamExt as _;
use futures::stream::BoxStream;
use shopmesh_graphql::{self as gql, GatewayResolvers};
use shopmesh_identity::Principal;
use shopmesh_openapi::{catalog, orders, users};

use crate::convert::{
    catalog_input, gql_cart, gql_import_report, gql_listed_change, gql_notification, gql_order,
    gql_order_lines, gql_order_page, gql_product, gql_status_change, gql_timeline, gql_tokens,
    gql_transition_change, gql_user, int, parse_id,
};
use crate::downstream::Backends;
use crate::error::GatewayError;
use crate::live::OrderFeed;

/// Loads users by id for one GraphQL request, deduplicating and batching lookups, as the
/// request's caller (`None` for an anonymous request, which no guarded field lets reach it).
pub struct UserLoader {
    backends: Arc<Backends>,
    caller: Option<Principal>,
}

impl UserLoader {
    /// A loader over `backends` for `caller`.
    pub fn new(backends: Arc<Backends>, caller: Option<Principal>) -> Self {
        Self { backends, caller }
    }
}

impl Loader<i64> for UserLoader {
    type Value = gql::User;
    type Error = GatewayError;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, Self::Value>, Self::Error> {
        let caller = loader_caller(&self.caller)?;
        let lookups = keys
            .iter()
            .map(|id| async move { (*id, self.backends.user(caller, *id).await) });
        let mut found = HashMap::new();
        for (id, result) in futures::future::join_all(lookups).await {
            match result {
                Ok(user) => {
                    found.insert(id, gql_user(user));
                }
                Err(GatewayError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(found)
    }
}

/// Loads products by id for one GraphQL request, deduplicating lookups: the orders of a page
/// cost one lookup per distinct product, most of them answered from process memory.
pub struct ProductLoader {
    backends: Arc<Backends>,
}

impl ProductLoader {
    /// A loader over `backends` (products are public: no caller needed).
    pub fn new(backends: Arc<Backends>) -> Self {
        Self { backends }
    }
}

impl Loader<i64> for ProductLoader {
    type Value = gql::Product;
    type Error = GatewayError;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, Self::Value>, Self::Error> {
        let lookups = keys
            .iter()
            .map(|id| async move { (*id, self.backends.product(*id).await) });
        let mut found = HashMap::new();
        for (id, result) in futures::future::join_all(lookups).await {
            match result {
                Ok(product) => {
                    found.insert(id, gql_product(product)?);
                }
                Err(GatewayError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(found)
    }
}

/// Loads notifications by order id for one GraphQL request: the orders of a page cost one
/// `GetNotificationsForOrders` call (per 100 orders), not one call each. Calls are made as the
/// request's caller.
pub struct NotificationLoader {
    backends: Arc<Backends>,
    caller: Option<Principal>,
}

impl NotificationLoader {
    /// A loader over `backends` for `caller`.
    pub fn new(backends: Arc<Backends>, caller: Option<Principal>) -> Self {
        Self { backends, caller }
    }
}

/// The caller a loader acts for; no guarded field lets an anonymous request reach a loader.
fn loader_caller(caller: &Option<Principal>) -> Result<&Principal, GatewayError> {
    caller.as_ref().ok_or_else(|| {
        GatewayError::Unauthenticated(shopmesh_identity::AuthError::Missing.to_string())
    })
}

impl Loader<i64> for NotificationLoader {
    type Value = Vec<gql::Notification>;
    type Error = GatewayError;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, Self::Value>, Self::Error> {
        let caller = loader_caller(&self.caller)?;
        let orders = self.backends.notifications_for_orders(caller, keys).await?;
        Ok(orders
            .into_iter()
            .map(|o| {
                let list = o.notifications.into_iter().map(gql_notification).collect();
                (o.order_id, list)
            })
            .collect())
    }
}

/// What the SDL promises for a nullable lookup ("null when no ... has this id"): a thing that
/// does not exist is `null`, not an error; every other failure stays an error.
fn absent_is_null<T>(found: Result<T, GatewayError>) -> Result<Option<T>, GatewayError> {
    match found {
        Ok(v) => Ok(Some(v)),
        Err(GatewayError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The changes of order `id` (placed by `owner`) in `timeline` after version `after`, oldest
/// first.
fn missed_changes(
    id: i64,
    owner: i64,
    timeline: orders::OrderTimeline,
    after: i32,
) -> Result<Vec<gql::OrderStatusChange>, GatewayError> {
    let current = timeline.items.iter().map(|t| t.version).max().unwrap_or(1);
    if after > current {
        return Err(GatewayError::InvalidInput(format!(
            "order {id} is at version {current}; afterVersion {after} is ahead of it"
        )));
    }
    timeline
        .items
        .into_iter()
        .filter(|t| t.version > after)
        .filter_map(|t| gql_transition_change(id, owner, t).transpose())
        .collect()
}

/// The most changes a resumed stream of all one's orders is replayed: a client away for more
/// is told to re-read instead.
pub const MAX_REPLAYED_CHANGES: i64 = 1_000;

/// The resolvers behind `/graphql`.
pub struct GatewayGraph {
    backends: Arc<Backends>,
    feed: OrderFeed,
}

impl GatewayGraph {
    /// Resolves against `backends`; subscriptions hear `feed`.
    pub fn new(backends: Arc<Backends>, feed: OrderFeed) -> Self {
        Self { backends, feed }
    }
}

/// The numbers a stream of all the orders one may see follows.
#[derive(Clone, Copy)]
enum Numbering {
    /// A shopper's: `sequence`, among their own orders' changes.
    User(i64),
    /// An admin's: `shopSequence`, among every change in the shop.
    Shop,
}

impl Numbering {
    /// The argument that resumes by these numbers.
    fn argument(self) -> &'static str {
        match self {
            Numbering::User(_) => "afterSequence",
            Numbering::Shop => "afterShopSequence",
        }
    }

    /// A listed change's number.
    fn of_listed(self, c: &orders::OrderChange) -> Option<i64> {
        match self {
            Numbering::User(_) => Some(c.sequence),
            Numbering::Shop => c.shop_sequence,
        }
    }

    /// A change's number, as the live stream has it.
    fn of(self, c: &gql::OrderStatusChange) -> Option<i32> {
        match self {
            Numbering::User(_) => c.sequence,
            Numbering::Shop => c.shop_sequence,
        }
    }
}

/// The changes numbered after `after`, and before `before` when given, oldest first, read from
/// the orders service a page at a time.
async fn replay(
    backends: &Backends,
    principal: &Principal,
    numbering: Numbering,
    after: i64,
    before: Option<i64>,
) -> Result<Vec<gql::OrderStatusChange>, GatewayError> {
    let mut cursor = after;
    let mut missed = Vec::new();
    loop {
        let page = match numbering {
            Numbering::User(user) => {
                backends
                    .order_changes(principal, user, cursor, REPLAY_PAGE)
                    .await?
            }
            Numbering::Shop => {
                backends
                    .shop_order_changes(principal, cursor, REPLAY_PAGE)
                    .await?
            }
        };
        if page.latest < after {
            return Err(GatewayError::InvalidInput(format!(
                "the newest order change is {}; {} {after} is ahead of it",
                page.latest,
                numbering.argument()
            )));
        }
        let behind = before.map_or(page.latest, |b| b - 1).min(page.latest) - after;
        if behind > MAX_REPLAYED_CHANGES {
            return Err(GatewayError::EventsMissed(behind.unsigned_abs()));
        }
        let full = page.items.len() == REPLAY_PAGE as usize;
        for change in page.items {
            let number = numbering.of_listed(&change).unwrap_or(cursor);
            if before.is_some_and(|b| number >= b) {
                return Ok(missed);
            }
            cursor = number;
            missed.push(gql_listed_change(change)?);
        }
        if !full || cursor >= page.latest {
            return Ok(missed);
        }
    }
}

impl GatewayGraph {
    /// An admin's stream of every change in the shop, in the order of their numbers, after
    /// `after` when resuming: what was missed first, then `live` with any gap filled.
    async fn shop_changes(
        &self,
        principal: &Principal,
        after: Option<i32>,
        live: BoxStream<'static, Result<gql::OrderStatusChange, GatewayError>>,
    ) -> Result<BoxStream<'static, Result<gql::OrderStatusChange, GatewayError>>, GatewayError>
    {
        let missed = match after {
            Some(after) => {
                replay(
                    &self.backends,
                    principal,
                    Numbering::Shop,
                    i64::from(after),
                    None,
                )
                .await?
            }
            None => Vec::new(),
        };
        let last = missed
            .last()
            .and_then(|c| Numbering::Shop.of(c))
            .or(after)
            .map(i64::from);
        let (backends, principal) = (self.backends.clone(), principal.clone());
        let fill = move |last: i64, next: i64| {
            let (backends, principal) = (backends.clone(), principal.clone());
            futures::FutureExt::boxed(async move {
                replay(&backends, &principal, Numbering::Shop, last, Some(next)).await
            })
        };
        let live = crate::live::in_order(live, |c| Numbering::Shop.of(c), last, fill);
        Ok(futures::stream::iter(missed.into_iter().map(Ok))
            .chain(live)
            .boxed())
    }
}

/// Changes asked of the orders service at once when replaying.
const REPLAY_PAGE: i32 = 500;

/// Resolvers return [`GatewayError`]; the generated layer turns it into a GraphQL error with
/// `extensions.code` (its `ErrorExtensions`).
#[async_trait::async_trait]
impl GatewayResolvers for GatewayGraph {
    type Error = GatewayError;

    async fn subscription_order_status_changed(
        &self,
        _ctx: &Context<'_>,
        principal: &Principal,
        order_id: Option<ID>,
        after_version: Option<i32>,
        after_sequence: Option<i32>,
        after_shop_sequence: Option<i32>,
    ) -> Result<BoxStream<'static, Result<gql::OrderStatusChange, GatewayError>>, GatewayError>
    {
        let order = order_id.map(|id| parse_id("orderId", &id)).transpose()?;
        // Listening starts before anything is read, so a change meanwhile is not lost.
        let live = self
            .feed
            .changes_for(principal, order)
            .map(|change| change.and_then(|c| gql_status_change(&c)));
        let Some(id) = order else {
            if after_version.is_some() {
                return Err(GatewayError::InvalidInput(
                    "afterVersion resumes one order's changes: it needs orderId".into(),
                ));
            }
            if after_sequence.is_some() && principal.is_admin() {
                return Err(GatewayError::InvalidInput(
                    "an admin's stream of every user's orders follows the shop's numbers: \
                     resume it with afterShopSequence"
                        .into(),
                ));
            }
            if let Some(after) = after_sequence {
                let numbering = Numbering::User(principal.user_id);
                let missed =
                    replay(&self.backends, principal, numbering, i64::from(after), None).await?;
                let heard =
                    move |c: &gql::OrderStatusChange| c.sequence.is_some_and(|s| s <= after);
                return Ok(crate::live::resumed(missed, heard, live));
            }
            if after_shop_sequence.is_some() || principal.is_admin() {
                return self
                    .shop_changes(principal, after_shop_sequence, live.boxed())
                    .await;
            }
            return Ok(live.boxed());
        };
        if after_sequence.is_some() || after_shop_sequence.is_some() {
            return Err(GatewayError::InvalidInput(
                "afterSequence and afterShopSequence resume the stream of all orders: leave out \
                 orderId (afterVersion resumes one order's)"
                    .into(),
            ));
        }
        // Someone else's order is missing, as the orders service says for `order(id:)`.
        let placed = self.backends.order(principal, id).await?;
        let Some(after) = after_version else {
            return Ok(live.boxed());
        };
        let timeline = self.backends.order_timeline(principal, id).await?;
        let missed = missed_changes(id, placed.user_id, timeline, after)?;
        let heard = move |c: &gql::OrderStatusChange| c.version <= after;
        Ok(crate::live::resumed(missed, heard, live))
    }

    async fn subscription_notification_added(
        &self,
        _ctx: &Context<'_>,
        principal: &Principal,
    ) -> Result<BoxStream<'static, Result<gql::Notification, GatewayError>>, GatewayError> {
        let watched = self.backends.watch_notifications(principal).await?;
        Ok(watched
            .map(|item| match item {
                Ok(added) => added.notification.map(gql_notification).ok_or_else(|| {
                    GatewayError::Internal("WatchNotifications sent no notification".into())
                }),
                Err(status) => Err(GatewayError::from_status("notifications", status)),
            })
            .boxed())
    }

    async fn query_order(
        &self,
        _ctx: &Context<'_>,
        principal: &Principal,
        id: ID,
    ) -> Result<Option<gql::Order>, GatewayError> {
        let order = self.backends.order(principal, parse_id("id", &id)?).await;
        absent_is_null(order)?.map(gql_order).transpose()
    }

    async fn query_orders_by_user(
        &self,
        _ctx: &Context<'_>,
        principal: &Principal,
        user_id: ID,
        first: i32,
        after: Option<String>,
    ) -> Result<gql::OrderConnection, GatewayError> {
        let user_id = parse_id("userId", &user_id)?;
        if !(1..=100).contains(&first) {
            return Err(GatewayError::InvalidInput(format!(
                "first must be 1..=100, got {first}"
            )));
        }
        let page = self
            .backends
            .orders_by_user(principal, user_id, first, after)
            .await?;
        gql_order_page(page)
    }

    async fn query_dead_letters(
        &self,
        _ctx: &Context<'_>,
        principal: &Principal,
    ) -> Result<gql::DeadLetters, GatewayError> {
        let waiting = self.backends.dead_letters(principal).await?;
        Ok(gql::DeadLetters {
            count: int("count", waiting.into())?,
        })
    }

    async fn query_orders(
        &self,
        _ctx: &Context<'_>,
        principal: &Principal,
        status: Option<gql::OrderStatus>,
        first: i32,
        after: Option<String>,
    ) -> Result<gql::OrderConnection, GatewayError> {
        // The orders contract spells each status in lower case (`STOCK_RESERVED` is
        // `stock_reserved`); it checks the page size and the caller's role.
        let status = status.map(|s| s.as_str().to_ascii_lowercase());
        let page = self
            .backends
            .orders(principal, status.as_deref(), first, after)
            .await?;
        gql_order_page(page)
    }

    async fn query_user(
        &self,
        _ctx: &Context<'_>,
        principal: &Principal,
        id: ID,
    ) -> Result<Option<gql::User>, GatewayError> {
        let user = self.backends.user(principal, parse_id("id", &id)?).await;
        Ok(absent_is_null(user)?.map(gql_user))
    }

    async fn query_user_name(
        &self,
        _ctx: &Context<'_>,
        principal: &Principal,
        id: ID,
    ) -> Result<Option<String>, GatewayError> {
        let name = self
            .backends
            .user_name(principal, parse_id("id", &id)?)
            .await;
        absent_is_null(name)
    }

    async fn query_cart(
        &self,
        _ctx: &Context<'_>,
        principal: &Principal,
    ) -> Result<gql::Cart, GatewayError> {
        let cart = self.backends.cart(principal, principal.user_id).await?;
        Ok(gql_cart(cart))
    }

    async fn query_me(
        &self,
        _ctx: &Context<'_>,
        principal: &Principal,
    ) -> Result<gql::User, GatewayError> {
        Ok(gql_user(
            self.backends.user(principal, principal.user_id).await?,
        ))
    }

    async fn query_products(
        &self,
        _ctx: &Context<'_>,
        first: i32,
        after: Option<String>,
        query: Option<String>,
    ) -> Result<gql::ProductConnection, GatewayError> {
        // The catalog's contract bounds `first` and `query`; its 400 arrives as BAD_USER_INPUT.
        let page = self.backends.products(first, after, query).await?;
        Ok(gql::ProductConnection {
            nodes: page
                .items
                .into_iter()
                .map(gql_product)
                .collect::<Result<_, _>>()?,
            page_info: gql::PageInfo {
                has_next_page: page.next_cursor.is_some(),
                end_cursor: page.next_cursor,
            },
        })
    }

    async fn query_product(
        &self,
        _ctx: &Context<'_>,
        id: ID,
    ) -> Result<Option<gql::Product>, GatewayError> {
        let product = self.backends.product(parse_id("id", &id)?).await;
        absent_is_null(product)?.map(gql_product).transpose()
    }

    async fn query_product_by_sku(
        &self,
        _ctx: &Context<'_>,
        sku: String,
    ) -> Result<Option<gql::Product>, GatewayError> {
        let product = self.backends.product_by_sku(sku).await;
        absent_is_null(product)?.map(gql_product).transpose()
    }

    async fn mutation_create_order(
        &self,
        _ctx: &Context<'_>,
        principal: &Principal,
        input: gql::CreateOrderInput,
        idempotency_key: Option<String>,
    ) -> Result<gql::Order, GatewayError> {
        let request = orders::CreateOrderRequest {
            user_id: parse_id("userId", &input.user_id)?,
            product_id: parse_id("productId", &input.product_id)?,
            quantity: input.quantity,
            payment_token: input.payment_token,
        };
        // The orders contract bounds the quantity; its 400 arrives as BAD_USER_INPUT.
        let key = idempotency_key.as_deref();
        gql_order(self.backends.create_order(principal, key, request).await?)
    }

    async fn mutation_set_cart_line(
        &self,
        _ctx: &Context<'_>,
        principal: &Principal,
        product_id: ID,
        quantity: i32,
    ) -> Result<gql::Cart, GatewayError> {
        let product_id = parse_id("productId", &product_id)?;
        let cart = self
            .backends
            .set_cart_line(principal, principal.user_id, product_id, quantity)
            .await?;
        Ok(gql_cart(cart))
    }

    async fn mutation_remove_cart_line(
        &self,
        _ctx: &Context<'_>,
        principal: &Principal,
        product_id: ID,
    ) -> Result<gql::Cart, GatewayError> {
        let product_id = parse_id("productId", &product_id)?;
        let cart = self
            .backends
            .remove_cart_line(principal, principal.user_id, product_id)
            .await?;
        Ok(gql_cart(cart))
    }

    async fn mutation_clear_cart(
        &self,
        _ctx: &Context<'_>,
        principal: &Principal,
    ) -> Result<gql::Cart, GatewayError> {
        let cart = self
            .backends
            .clear_cart(principal, principal.user_id)
            .await?;
        Ok(gql_cart(cart))
    }

    async fn mutation_cancel_order(
        &self,
        _ctx: &Context<'_>,
        principal: &Principal,
        id: ID,
    ) -> Result<gql::Order, GatewayError> {
        let id = parse_id("id", &id)?;
        gql_order(self.backends.cancel_order(principal, id).await?)
    }

    async fn mutation_checkout(
        &self,
        _ctx: &Context<'_>,
        principal: &Principal,
        payment_token: String,
        idempotency_key: String,
    ) -> Result<gql::Order, GatewayError> {
        let request = orders::CheckoutRequest {
            user_id: principal.user_id,
            payment_token,
        };
        let order = self
            .backends
            .checkout(principal, &idempotency_key, request)
            .await?;
        gql_order(order)
    }

    async fn mutation_ship_order(
        &self,
        _ctx: &Context<'_>,
        principal: &Principal,
        id: ID,
    ) -> Result<gql::Order, GatewayError> {
        let id = parse_id("id", &id)?;
        gql_order(self.backends.ship_order(principal, id).await?)
    }

    async fn mutation_redrive_dead_letters(
        &self,
        _ctx: &Context<'_>,
        principal: &Principal,
        reason: Option<String>,
    ) -> Result<gql::RedriveReport, GatewayError> {
        let report = self
            .backends
            .redrive_dead_letters(principal, reason.unwrap_or_default())
            .await?;
        Ok(gql::RedriveReport {
            moved: int("moved", report.moved.into())?,
            kept: int("kept", report.kept.into())?,
        })
    }

    async fn mutation_create_product(
        &self,
        _ctx: &Context<'_>,
        principal: &Principal,
        input: gql::ProductInput,
        idempotency_key: Option<String>,
    ) -> Result<gql::Product, GatewayError> {
        let product = self
            .backends
            .create_product(principal, idempotency_key.as_deref(), catalog_input(input))
            .await?;
        gql_product(product)
    }

    async fn mutation_update_product(
        &self,
        _ctx: &Context<'_>,
        principal: &Principal,
        id: ID,
        input: gql::ProductInput,
    ) -> Result<gql::Product, GatewayError> {
        let id = parse_id("id", &id)?;
        let product = self
            .backends
            .update_product(principal, id, catalog_input(input))
            .await?;
        gql_product(product)
    }

    async fn mutation_import_products(
        &self,
        _ctx: &Context<'_>,
        principal: &Principal,
        csv: String,
        idempotency_key: Option<String>,
    ) -> Result<gql::ImportReport, GatewayError> {
        let report = self
            .backends
            .import_products(
                principal,
                idempotency_key.as_deref(),
                catalog::ProductImport { csv },
            )
            .await?;
        Ok(gql_import_report(report))
    }

    async fn mutation_adjust_stock(
        &self,
        _ctx: &Context<'_>,
        principal: &Principal,
        product_id: ID,
        delta: i32,
        reason: String,
        idempotency_key: Option<String>,
    ) -> Result<gql::Product, GatewayError> {
        let id = parse_id("productId", &product_id)?;
        let adjustment = catalog::StockAdjustment { delta, reason };
        let product = self
            .backends
            .adjust_stock(principal, id, idempotency_key.as_deref(), adjustment)
            .await?;
        gql_product(product)
    }

    async fn mutation_create_user(
        &self,
        _ctx: &Context<'_>,
        input: gql::CreateUserInput,
        idempotency_key: Option<String>,
    ) -> Result<gql::User, GatewayError> {
        // The users contract holds the email and password rules; its 400 arrives as
        // BAD_USER_INPUT.
        let request = users::NewUser {
            name: input.name,
            email: shopmesh_openapi::runtime::Email(input.email),
            password: input.password,
        };
        let key = idempotency_key.as_deref();
        Ok(gql_user(self.backends.create_user(key, request).await?))
    }

    async fn mutation_login(
        &self,
        _ctx: &Context<'_>,
        email: String,
        password: String,
    ) -> Result<gql::AuthPayload, GatewayError> {
        let credentials = users::Credentials { email, password };
        Ok(gql_tokens(self.backends.log_in(credentials).await?))
    }

    async fn mutation_refresh_token(
        &self,
        _ctx: &Context<'_>,
        refresh_token: String,
    ) -> Result<gql::AuthPayload, GatewayError> {
        Ok(gql_tokens(self.backends.refresh(refresh_token).await?))
    }

    async fn mutation_logout(
        &self,
        _ctx: &Context<'_>,
        refresh_token: String,
    ) -> Result<bool, GatewayError> {
        self.backends.log_out(refresh_token).await?;
        Ok(true)
    }

    async fn order_user(
        &self,
        ctx: &Context<'_>,
        parent: &gql::Order,
    ) -> Result<Option<gql::User>, GatewayError> {
        let id = parse_id("userId", &parent.user_id)?;
        ctx.data::<DataLoader<UserLoader>>()?.load_one(id).await
    }

    async fn order_product(
        &self,
        ctx: &Context<'_>,
        parent: &gql::Order,
    ) -> Result<Option<gql::Product>, GatewayError> {
        let id = parse_id("productId", &parent.product_id)?;
        ctx.data::<DataLoader<ProductLoader>>()?.load_one(id).await
    }

    async fn order_lines(
        &self,
        ctx: &Context<'_>,
        parent: &gql::Order,
    ) -> Result<Vec<gql::OrderLine>, GatewayError> {
        let id = parse_id("id", &parent.id)?;
        let principal = ctx.data::<Principal>()?;
        gql_order_lines(self.backends.order(principal, id).await?)
    }

    async fn order_line_product(
        &self,
        ctx: &Context<'_>,
        parent: &gql::OrderLine,
    ) -> Result<Option<gql::Product>, GatewayError> {
        let id = parse_id("productId", &parent.product_id)?;
        ctx.data::<DataLoader<ProductLoader>>()?.load_one(id).await
    }

    async fn cart_line_product(
        &self,
        ctx: &Context<'_>,
        parent: &gql::CartLine,
    ) -> Result<Option<gql::Product>, GatewayError> {
        let id = parse_id("productId", &parent.product_id)?;
        ctx.data::<DataLoader<ProductLoader>>()?.load_one(id).await
    }

    async fn order_timeline(
        &self,
        ctx: &Context<'_>,
        parent: &gql::Order,
    ) -> Result<Vec<gql::OrderTransition>, GatewayError> {
        let id = parse_id("id", &parent.id)?;
        let principal = ctx.data::<Principal>()?;
        gql_timeline(id, self.backends.order_timeline(principal, id).await?)
    }

    async fn order_notifications(
        &self,
        ctx: &Context<'_>,
        parent: &gql::Order,
    ) -> Result<Vec<gql::Notification>, GatewayError> {
        let id = parse_id("id", &parent.id)?;
        let loader = ctx.data::<DataLoader<NotificationLoader>>()?;
        Ok(loader.load_one(id).await?.unwrap_or_default())
    }
}
