//! The catalog REST API: implements the generated [`CatalogApi`] trait over [`CatalogStore`].
//! Handlers only translate; rules live in [`crate::domain`] and [`crate::store`], and errors
//! become problems in one place ([`crate::error`]).

use shopmesh_common::idempotency::{HeldKey, IdempotencyKeys, request_text};
use shopmesh_identity::Principal;
use shopmesh_openapi::catalog::{
    CatalogApi, ImportReport, Product, ProductImport, ProductInput, ProductPage, Reservation,
    ReservationRequest, Stock, StockAdjustment,
};
use shopmesh_openapi::runtime::Problem;

use crate::domain::{self, Cursor};
use crate::error::CatalogError;
use crate::store::CatalogStore;

/// The service behind the contract's routes.
pub struct CatalogService {
    store: CatalogStore,
    keys: IdempotencyKeys,
}

impl CatalogService {
    /// Serves the contract from `store`.
    pub fn new(store: CatalogStore) -> Self {
        let keys = IdempotencyKeys::new(store.pool().clone());
        Self { store, keys }
    }
}

#[async_trait::async_trait]
impl CatalogApi for CatalogService {
    async fn list_products(
        &self,
        first: i32,
        after: Option<String>,
        query: Option<String>,
    ) -> Result<ProductPage, Problem> {
        let after = after
            .map(|text| Cursor::decode(&text).ok_or(CatalogError::InvalidCursor(text)))
            .transpose()?;
        let (items, next) = self.store.list(first, after, query.as_deref()).await?;
        Ok(ProductPage {
            items,
            next_cursor: next.map(Cursor::encode),
        })
    }

    async fn create_product(
        &self,
        principal: Principal,
        idempotency_key: Option<String>,
        body: ProductInput,
    ) -> Result<Product, Problem> {
        let request = request_text("createProduct", &body);
        let create =
            |held: Option<HeldKey>| async move { self.store.create(&body, held.as_ref()).await };
        let key = idempotency_key;
        Ok(self
            .keys
            .run_once(principal.user_id, key, &request, create)
            .await?)
    }

    async fn import_products(
        &self,
        principal: Principal,
        idempotency_key: Option<String>,
        body: ProductImport,
    ) -> Result<ImportReport, Problem> {
        let request = request_text("importProducts", &body);
        let import = |held: Option<HeldKey>| async move {
            let (products, rejected) = domain::import_rows(&body.csv)?;
            if rejected.is_empty() {
                self.store.import(&products, held.as_ref()).await
            } else {
                Ok(domain::import_report(0, 0, rejected))
            }
        };
        let key = idempotency_key;
        Ok(self
            .keys
            .run_once(principal.user_id, key, &request, import)
            .await?)
    }

    async fn get_product(&self, id: i64) -> Result<Product, Problem> {
        Ok(self.store.get(id).await?)
    }

    async fn update_product(
        &self,
        _: Principal,
        id: i64,
        body: ProductInput,
    ) -> Result<Product, Problem> {
        Ok(self.store.update(id, &body).await?)
    }

    async fn get_product_by_sku(&self, sku: String) -> Result<Product, Problem> {
        Ok(self.store.get_by_sku(&sku).await?)
    }

    async fn adjust_stock(
        &self,
        principal: Principal,
        id: i64,
        idempotency_key: Option<String>,
        body: StockAdjustment,
    ) -> Result<Stock, Problem> {
        let request = format!("{id} {}", request_text("adjustStock", &body));
        let adjust = |held: Option<HeldKey>| async move {
            let (delta, reason) = (body.delta, &body.reason);
            self.store.adjust(id, delta, reason, held.as_ref()).await
        };
        let key = idempotency_key;
        Ok(self
            .keys
            .run_once(principal.user_id, key, &request, adjust)
            .await?)
    }

    async fn get_reservation(&self, _: Principal, order_id: i64) -> Result<Reservation, Problem> {
        Ok(self.store.reservation(order_id).await?)
    }

    async fn reserve_stock(
        &self,
        _: Principal,
        order_id: i64,
        body: ReservationRequest,
    ) -> Result<Reservation, Problem> {
        Ok(self.store.reserve(order_id, &body.lines).await?)
    }

    async fn commit_reservation(
        &self,
        _: Principal,
        order_id: i64,
    ) -> Result<Reservation, Problem> {
        Ok(self.store.commit(order_id).await?)
    }

    async fn release_reservation(
        &self,
        _: Principal,
        order_id: i64,
    ) -> Result<Reservation, Problem> {
        Ok(self.store.release(order_id).await?)
    }

    async fn return_reservation(
        &self,
        _: Principal,
        order_id: i64,
    ) -> Result<Reservation, Problem> {
        Ok(self.store.return_sold(order_id).await?)
    }
}
