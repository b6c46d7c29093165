//! The orders REST API: implements the generated [`OrdersApi`] trait over [`OrderStore`].
//! Handlers only translate; rules live in [`crate::domain`], I/O in [`crate::store`], and errors
//! become problems in one place ([`crate::error`]).

use shopmesh_common::idempotency::{HeldKey, IdempotencyKeys, request_text};
use shopmesh_identity::Principal;
use shopmesh_openapi::orders::{
    Cart, CartLine, CartLineInput, CheckoutRequest, CreateOrderRequest, Order, OrderChange,
    OrderChangePage, OrderPage, OrderStatus, OrderTimeline, OrderTransition, OrdersApi,
};
use shopmesh_openapi::runtime::Problem;

use crate::carts::CartStore;
use crate::checkout::CheckoutSaga;
use crate::domain::{self, Cursor};
use crate::error::OrdersError;
use crate::store::{
    Changed, ListedChange, NewOrder, OrderRecord, OrderStore, Placement, SagaStart, StatusChange,
};
use crate::users::UserDirectory;

/// The service behind `/orders`.
pub struct OrdersService {
    store: OrderStore,
    carts: CartStore,
    keys: IdempotencyKeys,
    users: UserDirectory,
    saga: Option<CheckoutSaga>,
}

impl OrdersService {
    /// Serves orders from `store`; `users` confirms users an admin orders for; `saga` takes
    /// checkouts (none: checkout answers 503).
    pub fn new(store: OrderStore, users: UserDirectory, saga: Option<CheckoutSaga>) -> Self {
        let carts = CartStore::new(store.pool().clone());
        let keys = IdempotencyKeys::new(store.pool().clone());
        Self {
            store,
            carts,
            keys,
            users,
            saga,
        }
    }

    /// `principal` may act for `user_id`; an admin acting for someone else names a user that
    /// exists.
    async fn acting_for(&self, principal: &Principal, user_id: i64) -> Result<(), OrdersError> {
        principal.check_access(user_id)?;
        // A shopper's own id comes from a token the users service issued for an existing
        // user; an admin may name anyone, so that user is confirmed first.
        if user_id != principal.user_id {
            self.users.confirm(principal, user_id).await?;
        }
        Ok(())
    }

    /// Places `lines` for `user_id` at the catalog's prices and starts their saga.
    async fn check_out(
        &self,
        user_id: i64,
        lines: &[(i64, i32)],
        payment_token: String,
        from_cart: bool,
        idempotency: Option<HeldKey>,
    ) -> Result<OrderRecord, OrdersError> {
        let saga = self.saga.as_ref().ok_or(OrdersError::CheckoutUnavailable)?;
        let lines = saga.price(lines).await?;
        let total = domain::total(&lines)?;
        let order = self
            .store
            .place(Placement {
                user_id,
                lines,
                total: Some(total),
                saga: Some(SagaStart {
                    payment_token,
                    timeout: saga.timeout(),
                }),
                idempotency,
                from_cart,
            })
            .await?;
        saga.nudge(order.id);
        Ok(order)
    }

    /// `user_id`'s cart in its contract form.
    async fn cart(&self, user_id: i64) -> Result<Cart, OrdersError> {
        let lines = self.carts.lines(user_id).await?;
        Ok(Cart {
            user_id,
            lines: lines
                .into_iter()
                .map(|l| CartLine {
                    product_id: l.product_id,
                    quantity: l.quantity,
                    added_at: l.added_at,
                })
                .collect(),
        })
    }

    /// Order `id`, if `principal` may see it; one they may not see is missing, as in
    /// [`Principal::sees`].
    async fn visible(&self, principal: &Principal, id: i64) -> Result<OrderRecord, OrdersError> {
        match self.store.get(id).await? {
            Some(o) if principal.sees(o.user_id) => Ok(o),
            _ => Err(OrdersError::NotFound(id)),
        }
    }
}

/// A stored order in its contract form.
pub fn to_contract(o: OrderRecord) -> Order {
    Order {
        id: o.id,
        user_id: o.user_id,
        product_id: o.product_id,
        quantity: o.quantity,
        status: o.status,
        version: o.version,
        lines: o.lines,
        total: o.total,
        created_at: o.created_at,
    }
}

#[async_trait::async_trait]
impl OrdersApi for OrdersService {
    async fn create_order(
        &self,
        principal: Principal,
        idempotency_key: Option<String>,
        body: CreateOrderRequest,
    ) -> Result<Order, Problem> {
        self.acting_for(&principal, body.user_id).await?;
        let request = request_text("createOrder", &body);
        let order = self
            .keys
            .run_once(body.user_id, idempotency_key, &request, |held| async move {
                if let Some(token) = body.payment_token {
                    let line = [(body.product_id, body.quantity)];
                    return self
                        .check_out(body.user_id, &line, token, false, held)
                        .await
                        .map(to_contract);
                }
                let new = NewOrder {
                    user_id: body.user_id,
                    product_id: body.product_id,
                    quantity: body.quantity,
                };
                let placement = Placement {
                    idempotency: held,
                    ..new.into()
                };
                self.store.place(placement).await.map(to_contract)
            })
            .await?;
        Ok(order)
    }

    async fn checkout(
        &self,
        principal: Principal,
        idempotency_key: String,
        body: CheckoutRequest,
    ) -> Result<Order, Problem> {
        self.acting_for(&principal, body.user_id).await?;
        let request = request_text("checkout", &body);
        let order = self
            .keys
            .run_once(
                body.user_id,
                Some(idempotency_key),
                &request,
                |held| async move {
                    let cart = self.carts.lines(body.user_id).await?;
                    if cart.is_empty() {
                        return Err(OrdersError::EmptyCart(body.user_id));
                    }
                    let lines: Vec<(i64, i32)> =
                        cart.iter().map(|l| (l.product_id, l.quantity)).collect();
                    self.check_out(body.user_id, &lines, body.payment_token, true, held)
                        .await
                        .map(to_contract)
                },
            )
            .await?;
        Ok(order)
    }

    async fn ship_order(&self, _principal: Principal, id: i64) -> Result<Order, Problem> {
        let order = self.store.get(id).await?.ok_or(OrdersError::NotFound(id))?;
        let change = StatusChange {
            from: order.status,
            to: OrderStatus::Shipped,
            cause: "shipped by an admin",
        };
        let (Changed::Moved(order) | Changed::Already(order)) =
            self.store.change_status(id, change).await?;
        Ok(to_contract(order))
    }

    async fn get_order(&self, principal: Principal, id: i64) -> Result<Order, Problem> {
        Ok(to_contract(self.visible(&principal, id).await?))
    }

    async fn get_order_timeline(
        &self,
        principal: Principal,
        id: i64,
    ) -> Result<OrderTimeline, Problem> {
        self.visible(&principal, id).await?;
        let items = self.store.timeline(id).await?;
        Ok(OrderTimeline {
            items: items
                .into_iter()
                .map(|t| OrderTransition {
                    version: t.version,
                    from: t.from,
                    to: t.to,
                    cause: t.cause,
                    at: t.at,
                    trace_id: t.trace_id,
                    sequence: t.sequence,
                    shop_sequence: t.shop_sequence,
                })
                .collect(),
        })
    }

    async fn cancel_order(&self, principal: Principal, id: i64) -> Result<Order, Problem> {
        // The move records that what the order holds must be given back; the saga does it.
        let order = self.visible(&principal, id).await?;
        let cause = if principal.user_id == order.user_id {
            "cancelled by the shopper"
        } else {
            "cancelled by an admin"
        };
        let change = StatusChange {
            from: order.status,
            to: OrderStatus::Cancelled,
            cause,
        };
        let (Changed::Moved(order) | Changed::Already(order)) =
            self.store.change_status(id, change).await?;
        if let Some(saga) = &self.saga {
            saga.nudge(id);
        }
        Ok(to_contract(order))
    }

    async fn get_cart(&self, principal: Principal, user_id: i64) -> Result<Cart, Problem> {
        principal.check_access(user_id).map_err(OrdersError::from)?;
        Ok(self.cart(user_id).await?)
    }

    async fn clear_cart(&self, principal: Principal, user_id: i64) -> Result<Cart, Problem> {
        principal.check_access(user_id).map_err(OrdersError::from)?;
        self.carts.clear(user_id).await?;
        Ok(self.cart(user_id).await?)
    }

    async fn set_cart_line(
        &self,
        principal: Principal,
        user_id: i64,
        product_id: i64,
        body: CartLineInput,
    ) -> Result<Cart, Problem> {
        principal.check_access(user_id).map_err(OrdersError::from)?;
        self.carts.set(user_id, product_id, body.quantity).await?;
        Ok(self.cart(user_id).await?)
    }

    async fn remove_cart_line(
        &self,
        principal: Principal,
        user_id: i64,
        product_id: i64,
    ) -> Result<Cart, Problem> {
        principal.check_access(user_id).map_err(OrdersError::from)?;
        self.carts.remove(user_id, product_id).await?;
        Ok(self.cart(user_id).await?)
    }

    async fn list_orders(
        &self,
        _principal: Principal,
        status: Option<String>,
        limit: i32,
        cursor: Option<String>,
    ) -> Result<OrderPage, Problem> {
        let status = status
            .map(|s| OrderStatus::parse(&s).ok_or(OrdersError::UnknownStatus(s)))
            .transpose()?;
        let after = cursor.as_deref().map(Cursor::decode).transpose()?;
        let (records, next) = self.store.list(status, limit, after).await?;
        Ok(OrderPage {
            items: records.into_iter().map(to_contract).collect(),
            next_cursor: next.map(|c| c.encode()),
        })
    }

    async fn list_user_orders(
        &self,
        principal: Principal,
        user_id: i64,
        limit: i32,
        cursor: Option<String>,
    ) -> Result<OrderPage, Problem> {
        principal.check_access(user_id).map_err(OrdersError::from)?;
        let after = cursor.as_deref().map(Cursor::decode).transpose()?;
        let (records, next) = self.store.list_by_user(user_id, limit, after).await?;
        Ok(OrderPage {
            items: records.into_iter().map(to_contract).collect(),
            next_cursor: next.map(|c| c.encode()),
        })
    }

    async fn list_user_order_changes(
        &self,
        principal: Principal,
        user_id: i64,
        after: i64,
        limit: i32,
    ) -> Result<OrderChangePage, Problem> {
        principal.check_access(user_id).map_err(OrdersError::from)?;
        let (changes, latest) = self.store.changes_after(user_id, after, limit).await?;
        Ok(change_page(changes, latest))
    }

    async fn list_order_changes(
        &self,
        _principal: Principal,
        after: i64,
        limit: i32,
    ) -> Result<OrderChangePage, Problem> {
        let (changes, latest) = self.store.shop_changes_after(after, limit).await?;
        Ok(change_page(changes, latest))
    }
}

/// Listed changes as the contract's page.
fn change_page(changes: Vec<ListedChange>, latest: i64) -> OrderChangePage {
    let items = changes
        .into_iter()
        .filter_map(|c| {
            let t = c.entry;
            Some(OrderChange {
                sequence: t.sequence?,
                shop_sequence: t.shop_sequence,
                order_id: c.order_id,
                user_id: c.user_id,
                version: t.version,
                from: t.from?,
                to: t.to,
                cause: t.cause,
                at: t.at,
            })
        })
        .collect();
    OrderChangePage { items, latest }
}
