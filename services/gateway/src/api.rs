//! The REST API under `/api`: implements the generated `GatewayApi` trait, with the same
//! operations as the GraphQL API.

use std::sync::Arc;

use shopmesh_openapi::gateway::{
    CreateOrderRequest, CreateUserRequest, GatewayApi, NotificationList, Order, OrderPage, User,
    UserName,
};
use shopmesh_openapi::runtime::Problem;
use shopmesh_openapi::{orders, users};

use crate::convert::{rest_notification, rest_order, rest_user};
use crate::downstream::Backends;

/// The REST service behind `/api`.
pub struct GatewayRest {
    backends: Arc<Backends>,
}

impl GatewayRest {
    /// Serves from `backends`.
    pub fn new(backends: Arc<Backends>) -> Self {
        Self { backends }
    }
}

#[async_trait::async_trait]
impl GatewayApi for GatewayRest {
    async fn create_order(&self, body: CreateOrderRequest) -> Result<Order, Problem> {
        let request = orders::CreateOrderRequest {
            user_id: body.user_id,
            product_id: body.product_id,
            quantity: body.quantity,
        };
        Ok(rest_order(self.backends.create_order(request).await?))
    }

    async fn get_order(&self, id: i64) -> Result<Order, Problem> {
        Ok(rest_order(self.backends.order(id).await?))
    }

    async fn get_order_notifications(&self, id: i64) -> Result<NotificationList, Problem> {
        let items = self.backends.notifications_for_order(id).await?;
        Ok(NotificationList {
            items: items.into_iter().map(rest_notification).collect(),
        })
    }

    async fn list_user_orders(
        &self,
        user_id: i64,
        limit: i32,
        cursor: Option<String>,
    ) -> Result<OrderPage, Problem> {
        let page = self.backends.orders_by_user(user_id, limit, cursor).await?;
        Ok(OrderPage {
            items: page.items.into_iter().map(rest_order).collect(),
            next_cursor: page.next_cursor,
        })
    }

    async fn create_user(&self, body: CreateUserRequest) -> Result<User, Problem> {
        let request = users::UserInput {
            name: body.name,
            email: body.email,
        };
        Ok(rest_user(self.backends.create_user(request).await?))
    }

    async fn get_user(&self, id: i64) -> Result<User, Problem> {
        Ok(rest_user(self.backends.user(id).await?))
    }

    async fn get_user_name(&self, id: i64) -> Result<UserName, Problem> {
        let u = self.backends.user(id).await?;
        Ok(UserName {
            id: u.id,
            name: u.name,
        })
    }
}
