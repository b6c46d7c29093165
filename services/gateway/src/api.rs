//! The REST API under `/api`: implements the generated `GatewayApi` trait, with the same
//! operations as the GraphQL API.

use std::sync::Arc;

use poem_openapi::payload::Json;
use shopmesh_openapi::gateway::{
    CreateOrderRequest, CreateOrderResponse, CreateUserRequest, CreateUserResponse, GatewayApi,
    GetOrderNotificationsResponse, GetOrderResponse, GetUserNameResponse, GetUserResponse,
    ListUserOrdersResponse, NotificationList, OrderPage, UserName,
};
use shopmesh_openapi::{orders, users};

use crate::convert::{rest_notification, rest_order, rest_user};
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
}

/// Picks the response variant for an error; one macro per operation would be noise, so each
/// operation lists its variants once here.
macro_rules! failure {
    ($resp:ident, $err:expr, { $($status:literal => $variant:ident),* $(,)? }) => {{
        let e: GatewayError = $err;
        match e.status() {
            $($status => $resp::$variant(Json(e.problem())),)*
            _ => $resp::ServiceUnavailable(Json(e.problem())),
        }
    }};
}

#[async_trait::async_trait]
impl GatewayApi for GatewayRest {
    async fn create_order(&self, body: CreateOrderRequest) -> CreateOrderResponse {
        let request = orders::CreateOrderRequest {
            user_id: body.user_id,
            product_id: body.product_id,
            quantity: body.quantity,
        };
        match self.backends.create_order(request).await {
            Ok(o) => CreateOrderResponse::Created(Json(rest_order(o))),
            Err(e) => {
                failure!(CreateOrderResponse, e, { 400 => BadRequest, 504 => GatewayTimeout })
            }
        }
    }

    async fn get_order(&self, id: i64) -> GetOrderResponse {
        match self.backends.order(id).await {
            Ok(o) => GetOrderResponse::Ok(Json(rest_order(o))),
            Err(e) => {
                failure!(GetOrderResponse, e, { 400 => BadRequest, 404 => NotFound, 504 => GatewayTimeout })
            }
        }
    }

    async fn get_order_notifications(&self, id: i64) -> GetOrderNotificationsResponse {
        match self.backends.notifications_for_order(id).await {
            Ok(items) => GetOrderNotificationsResponse::Ok(Json(NotificationList {
                items: items.into_iter().map(rest_notification).collect(),
            })),
            Err(e) => {
                failure!(GetOrderNotificationsResponse, e, { 400 => BadRequest, 504 => GatewayTimeout })
            }
        }
    }

    async fn list_user_orders(
        &self,
        user_id: i64,
        limit: i32,
        cursor: Option<String>,
    ) -> ListUserOrdersResponse {
        match self.backends.orders_by_user(user_id, limit, cursor).await {
            Ok(page) => ListUserOrdersResponse::Ok(Json(OrderPage {
                items: page.items.into_iter().map(rest_order).collect(),
                next_cursor: page.next_cursor,
            })),
            Err(e) => {
                failure!(ListUserOrdersResponse, e, { 400 => BadRequest, 504 => GatewayTimeout })
            }
        }
    }

    async fn create_user(&self, body: CreateUserRequest) -> CreateUserResponse {
        let request = users::UserInput {
            name: body.name,
            email: body.email,
        };
        match self.backends.create_user(request).await {
            Ok(u) => CreateUserResponse::Created(Json(rest_user(u))),
            Err(e) => {
                failure!(CreateUserResponse, e, { 400 => BadRequest, 409 => Conflict, 504 => GatewayTimeout })
            }
        }
    }

    async fn get_user(&self, id: i64) -> GetUserResponse {
        match self.backends.user(id).await {
            Ok(u) => GetUserResponse::Ok(Json(rest_user(u))),
            Err(e) => {
                failure!(GetUserResponse, e, { 400 => BadRequest, 404 => NotFound, 504 => GatewayTimeout })
            }
        }
    }

    async fn get_user_name(&self, id: i64) -> GetUserNameResponse {
        match self.backends.user(id).await {
            Ok(u) => GetUserNameResponse::Ok(Json(UserName {
                id: u.id,
                name: u.name,
            })),
            Err(e) => {
                failure!(GetUserNameResponse, e, { 400 => BadRequest, 404 => NotFound, 504 => GatewayTimeout })
            }
        }
    }
}
