//! The orders REST API: implements the generated [`OrdersApi`] trait over [`OrderStore`].
//! Handlers only translate; rules live in [`crate::domain`], I/O in [`crate::store`].

use poem_openapi::payload::Json;
use shopmesh_openapi::orders::{
    CreateOrderRequest, CreateOrderResponse, GetOrderResponse, ListUserOrdersResponse, Order,
    OrderPage, OrderStatus, OrdersApi,
};

use crate::domain::Cursor;
use crate::error::OrdersError;
use crate::store::{NewOrder, OrderRecord, OrderStore};

/// The service behind `/orders`.
pub struct OrdersService {
    store: OrderStore,
}

impl OrdersService {
    /// Serves orders from `store`.
    pub fn new(store: OrderStore) -> Self {
        Self { store }
    }
}

/// Converts a stored order to its contract form.
pub fn to_contract(o: OrderRecord) -> Result<Order, OrdersError> {
    let status = OrderStatus::parse(&o.status).ok_or_else(|| {
        OrdersError::Internal(format!("order {} has unknown status {:?}", o.id, o.status))
    })?;
    Ok(Order {
        id: o.id,
        user_id: o.user_id,
        product_id: o.product_id,
        quantity: o.quantity,
        status,
        created_at: o.created_at,
    })
}

#[async_trait::async_trait]
impl OrdersApi for OrdersService {
    async fn create_order(&self, body: CreateOrderRequest) -> CreateOrderResponse {
        let new = NewOrder {
            user_id: body.user_id,
            product_id: body.product_id,
            quantity: body.quantity,
        };
        match self.store.create(new).await.and_then(to_contract) {
            Ok(order) => CreateOrderResponse::Created(Json(order)),
            Err(e @ OrdersError::Unavailable(_)) => {
                CreateOrderResponse::ServiceUnavailable(Json(e.problem()))
            }
            Err(e) => CreateOrderResponse::BadRequest(Json(e.problem())),
        }
    }

    async fn get_order(&self, id: i64) -> GetOrderResponse {
        let result = match self.store.get(id).await {
            Ok(Some(o)) => to_contract(o),
            Ok(None) => Err(OrdersError::NotFound(id)),
            Err(e) => Err(e),
        };
        match result {
            Ok(order) => GetOrderResponse::Ok(Json(order)),
            Err(e @ OrdersError::NotFound(_)) => GetOrderResponse::NotFound(Json(e.problem())),
            Err(e @ OrdersError::InvalidCursor(_)) => {
                GetOrderResponse::BadRequest(Json(e.problem()))
            }
            Err(e) => GetOrderResponse::ServiceUnavailable(Json(e.problem())),
        }
    }

    async fn list_user_orders(
        &self,
        user_id: i64,
        limit: i32,
        cursor: Option<String>,
    ) -> ListUserOrdersResponse {
        let page = async {
            let after = cursor.as_deref().map(Cursor::decode).transpose()?;
            let (records, next) = self.store.list_by_user(user_id, limit, after).await?;
            let items = records
                .into_iter()
                .map(to_contract)
                .collect::<Result<Vec<_>, _>>()?;
            Ok::<_, OrdersError>(OrderPage {
                items,
                next_cursor: next.map(|c| c.encode()),
            })
        };
        match page.await {
            Ok(page) => ListUserOrdersResponse::Ok(Json(page)),
            Err(e @ OrdersError::InvalidCursor(_)) => {
                ListUserOrdersResponse::BadRequest(Json(e.problem()))
            }
            Err(e) => ListUserOrdersResponse::ServiceUnavailable(Json(e.problem())),
        }
    }
}
