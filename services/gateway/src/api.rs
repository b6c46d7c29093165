//! The REST API under `/api`: implements the generated `GatewayApi` trait, with the same
//! operations as the GraphQL API.

use std::sync::Arc;

use shopmesh_identity::Principal;
use shopmesh_openapi::gateway::{
    Cart, CartLineInput, CheckoutRequest, CreateOrderRequest, CreateUserRequest, Credentials,
    GatewayApi, NotificationList, Order, OrderPage, Product, ProductPage, RefreshRequest,
    TokenResponse, User, UserName,
};
use shopmesh_openapi::runtime::{NoContent, Problem};
use shopmesh_openapi::{orders, users};

use crate::convert::{
    rest_cart, rest_notification, rest_order, rest_product, rest_timeline, rest_tokens, rest_user,
};
use crate::downstream::Backends;
use crate::error::GatewayError;

/// The REST service behind `/api`.
pub struct GatewayRest {
    backends: Arc<Backends>,
}

impl GatewayRest {
    /// Serves from `backends`.
    pub fn new(backends: Arc<Backends>) -> Self {
        Self { backends }
    }

    /// `cart` with each line's product as the catalog has it now (from the gateway's product
    /// memory when it can); a product the catalog no longer has leaves its line without one.
    async fn priced(&self, cart: orders::Cart) -> Result<Cart, GatewayError> {
        let lookups = cart
            .lines
            .iter()
            .map(|l| self.backends.product(l.product_id));
        let products = futures::future::join_all(lookups)
            .await
            .into_iter()
            .map(|found| match found {
                Ok(product) => Ok(Some(product)),
                Err(GatewayError::NotFound(_)) => Ok(None),
                Err(e) => Err(e),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rest_cart(cart, products))
    }
}

#[async_trait::async_trait]
impl GatewayApi for GatewayRest {
    async fn list_products(
        &self,
        first: i32,
        after: Option<String>,
        query: Option<String>,
    ) -> Result<ProductPage, Problem> {
        let page = self.backends.products(first, after, query).await?;
        Ok(ProductPage {
            items: page.items.into_iter().map(rest_product).collect(),
            next_cursor: page.next_cursor,
        })
    }

    async fn get_product_by_sku(&self, sku: String) -> Result<Product, Problem> {
        Ok(rest_product(self.backends.product_by_sku(sku).await?))
    }

    async fn get_product(&self, id: i64) -> Result<Product, Problem> {
        Ok(rest_product(self.backends.product(id).await?))
    }

    async fn create_order(
        &self,
        principal: Principal,
        idempotency_key: Option<String>,
        body: CreateOrderRequest,
    ) -> Result<Order, Problem> {
        let request = orders::CreateOrderRequest {
            user_id: body.user_id,
            product_id: body.product_id,
            quantity: body.quantity,
            payment_token: body.payment_token,
        };
        Ok(rest_order(
            self.backends
                .create_order(&principal, idempotency_key.as_deref(), request)
                .await?,
        )?)
    }

    async fn get_order(&self, principal: Principal, id: i64) -> Result<Order, Problem> {
        Ok(rest_order(self.backends.order(&principal, id).await?)?)
    }

    async fn get_cart(&self, principal: Principal, user_id: i64) -> Result<Cart, Problem> {
        let cart = self.backends.cart(&principal, user_id).await?;
        Ok(self.priced(cart).await?)
    }

    async fn clear_cart(&self, principal: Principal, user_id: i64) -> Result<Cart, Problem> {
        let cart = self.backends.clear_cart(&principal, user_id).await?;
        Ok(self.priced(cart).await?)
    }

    async fn set_cart_line(
        &self,
        principal: Principal,
        user_id: i64,
        product_id: i64,
        body: CartLineInput,
    ) -> Result<Cart, Problem> {
        let cart = self
            .backends
            .set_cart_line(&principal, user_id, product_id, body.quantity)
            .await?;
        Ok(self.priced(cart).await?)
    }

    async fn remove_cart_line(
        &self,
        principal: Principal,
        user_id: i64,
        product_id: i64,
    ) -> Result<Cart, Problem> {
        let cart = self
            .backends
            .remove_cart_line(&principal, user_id, product_id)
            .await?;
        Ok(self.priced(cart).await?)
    }

    async fn get_order_timeline(
        &self,
        principal: Principal,
        id: i64,
    ) -> Result<shopmesh_openapi::gateway::OrderTimeline, Problem> {
        Ok(rest_timeline(
            self.backends.order_timeline(&principal, id).await?,
        )?)
    }

    async fn checkout(
        &self,
        principal: Principal,
        idempotency_key: String,
        body: CheckoutRequest,
    ) -> Result<Order, Problem> {
        let request = orders::CheckoutRequest {
            user_id: body.user_id,
            payment_token: body.payment_token,
        };
        let order = self
            .backends
            .checkout(&principal, &idempotency_key, request)
            .await?;
        Ok(rest_order(order)?)
    }

    async fn ship_order(&self, principal: Principal, id: i64) -> Result<Order, Problem> {
        Ok(rest_order(self.backends.ship_order(&principal, id).await?)?)
    }

    async fn cancel_order(&self, principal: Principal, id: i64) -> Result<Order, Problem> {
        Ok(rest_order(
            self.backends.cancel_order(&principal, id).await?,
        )?)
    }

    async fn get_order_notifications(
        &self,
        principal: Principal,
        id: i64,
    ) -> Result<NotificationList, Problem> {
        let items = self
            .backends
            .notifications_for_order(&principal, id)
            .await?;
        Ok(NotificationList {
            items: items.into_iter().map(rest_notification).collect(),
        })
    }

    async fn list_user_orders(
        &self,
        principal: Principal,
        user_id: i64,
        limit: i32,
        cursor: Option<String>,
    ) -> Result<OrderPage, Problem> {
        let page = self
            .backends
            .orders_by_user(&principal, user_id, limit, cursor)
            .await?;
        Ok(OrderPage {
            items: page
                .items
                .into_iter()
                .map(rest_order)
                .collect::<Result<_, _>>()?,
            next_cursor: page.next_cursor,
        })
    }

    async fn create_user(
        &self,
        idempotency_key: Option<String>,
        body: CreateUserRequest,
    ) -> Result<User, Problem> {
        let request = users::NewUser {
            name: body.name,
            email: body.email,
            password: body.password,
        };
        let key = idempotency_key.as_deref();
        Ok(rest_user(self.backends.create_user(key, request).await?))
    }

    async fn get_user(&self, principal: Principal, id: i64) -> Result<User, Problem> {
        Ok(rest_user(self.backends.user(&principal, id).await?))
    }

    async fn get_user_name(&self, principal: Principal, id: i64) -> Result<UserName, Problem> {
        let name = self.backends.user_name(&principal, id).await?;
        Ok(UserName { id, name })
    }

    async fn issue_token(&self, body: Credentials) -> Result<TokenResponse, Problem> {
        let credentials = users::Credentials {
            email: body.email,
            password: body.password,
        };
        Ok(rest_tokens(self.backends.log_in(credentials).await?))
    }

    async fn refresh_token(&self, body: RefreshRequest) -> Result<TokenResponse, Problem> {
        Ok(rest_tokens(
            self.backends.refresh(body.refresh_token).await?,
        ))
    }

    async fn logout(&self, body: RefreshRequest) -> Result<NoContent, Problem> {
        self.backends.log_out(body.refresh_token).await?;
        Ok(NoContent)
    }
}
