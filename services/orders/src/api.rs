//! The orders REST API: implements the generated [`OrdersApi`] trait over [`OrderStore`].
//! Handlers only translate; rules live in [`crate::domain`], I/O in [`crate::store`], and errors
//! become problems in one place ([`crate::error`]).

use shopmesh_identity::Principal;
use shopmesh_openapi::orders::{
    Cart, CartLine, CartLineInput, CreateOrderRequest, Order, OrderPage, OrderStatus,
    OrderTimeline, OrderTransition, OrdersApi,
};
use shopmesh_openapi::runtime::Problem;

use crate::carts::CartStore;
use crate::domain::Cursor;
use crate::error::OrdersError;
use crate::store::{Changed, NewOrder, OrderRecord, OrderStore, StatusChange};
use crate::users::UserDirectory;

/// The service behind `/orders`.
pub struct OrdersService {
    store: OrderStore,
    carts: CartStore,
    users: UserDirectory,
}

impl OrdersService {
    /// Serves orders from `store`; `users` confirms users an admin orders for.
    pub fn new(store: OrderStore, users: UserDirectory) -> Self {
        let carts = CartStore::new(store.pool().clone());
        Self {
            store,
            carts,
            users,
        }
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
        created_at: o.created_at,
    }
}

#[async_trait::async_trait]
impl OrdersApi for OrdersService {
    async fn create_order(
        &self,
        principal: Principal,
        body: CreateOrderRequest,
    ) -> Result<Order, Problem> {
        principal
            .check_access(body.user_id)
            .map_err(OrdersError::from)?;
        // A shopper's own id comes from a token the users service issued for an existing
        // user; an admin may name anyone, so that user is confirmed first.
        if body.user_id != principal.user_id {
            self.users.confirm(&principal, body.user_id).await?;
        }
        let new = NewOrder {
            user_id: body.user_id,
            product_id: body.product_id,
            quantity: body.quantity,
        };
        Ok(to_contract(self.store.create(new).await?))
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
                })
                .collect(),
        })
    }

    async fn cancel_order(&self, principal: Principal, id: i64) -> Result<Order, Problem> {
        // Nothing moves an order past `pending` yet, so a cancellation has nothing to release
        // or refund; the checkout saga puts its compensation before later states' cancels.
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
}
