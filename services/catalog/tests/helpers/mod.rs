//! The catalog service's test fixture: the service started from a test stack of its own
//! (its own database, ports and signing key), with a typed client and tokens for it.
#![allow(dead_code)]

use shopmesh_catalog::Application;
use shopmesh_catalog::store::CatalogStore;
use shopmesh_identity::{AccessToken, Role};
use shopmesh_openapi::catalog::{
    CatalogClient, Money, Product, ProductInput, ReservationLine, StockAdjustment,
};
use shopmesh_testkit::{Service, Stack, Started, service_token, start, test_stack, token, unique};

/// The running service, a client for it, an admin's, a shopper's and the orders service's
/// token.
pub struct Harness {
    pub service: Started<CatalogStore>,
    pub client: CatalogClient,
    pub admin: AccessToken,
    pub shopper: AccessToken,
    pub orders: AccessToken,
}

impl Harness {
    /// The service with the stack's defaults.
    pub async fn start() -> Self {
        Self::start_with(test_stack()).await
    }

    /// The service from `stack` (change it with `set_for(Service::Catalog, ...)` first).
    pub async fn start_with(stack: Stack) -> Self {
        let service =
            start::<Application, _>(stack, Service::Catalog, |app| app.store().clone()).await;
        let client = CatalogClient::new(service.server.base_url.clone());
        let admin = token(&service.stack, 4, Role::Admin);
        let shopper = token(&service.stack, 1, Role::User);
        let orders = service_token(&service.stack, "orders");
        Self {
            service,
            client,
            admin,
            shopper,
            orders,
        }
    }

    pub fn store(&self) -> &CatalogStore {
        &self.service.part
    }

    /// A new active product priced `amount_minor` `currency`, with `units` on hand.
    pub async fn product(&self, amount_minor: i64, currency: &str, units: i32) -> Product {
        let created = self
            .client
            .create_product(
                &self.admin,
                None,
                &input(&unique("SKU"), amount_minor, currency),
            )
            .await
            .unwrap();
        if units > 0 {
            self.client
                .adjust_stock(&self.admin, created.id, None, &adjustment(units))
                .await
                .unwrap();
        }
        self.client.get_product(created.id).await.unwrap()
    }

    pub async fn stop(self) {
        self.service.part.pool().close().await;
        self.service.stop().await;
    }
}

pub fn input(sku: &str, amount_minor: i64, currency: &str) -> ProductInput {
    ProductInput {
        sku: sku.to_owned(),
        name: format!("Product {sku}"),
        description: Some("A thing to buy.".to_owned()),
        price: Money {
            amount_minor,
            currency: currency.to_owned(),
        },
        active: Some(true),
        image_url: None,
    }
}

pub fn adjustment(delta: i32) -> StockAdjustment {
    StockAdjustment {
        delta,
        reason: "test".to_owned(),
    }
}

pub fn line(product_id: i64, quantity: i32) -> ReservationLine {
    ReservationLine {
        product_id,
        quantity,
    }
}

/// The status of the problem a failed call answered.
pub fn status(err: &shopmesh_openapi::runtime::ClientError) -> u16 {
    err.problem().map_or(0, |p| p.status())
}
