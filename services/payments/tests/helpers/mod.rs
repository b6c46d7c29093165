//! The payments service's test fixture: the service started from a test stack of its own
//! (its own database, ports and signing key), with a typed client, tokens, and its fake
//! provider to count calls on.
#![allow(dead_code)]

use std::sync::Arc;

use shopmesh_identity::{AccessToken, Role};
use shopmesh_openapi::payments::{AuthorizationRequest, Money, Payment, PaymentsClient};
use shopmesh_openapi::runtime::ClientError;
use shopmesh_payments::Application;
use shopmesh_payments::provider::{FakeProvider, IdempotencyKey};
use shopmesh_payments::store::PaymentStore;
use shopmesh_testkit::{Service, Stack, Started, service_token, start, test_stack, token};

/// The running service, a client for it, the orders service's, an admin's and a shopper's
/// token.
pub struct Harness {
    pub service: Started<(PaymentStore, Arc<FakeProvider>)>,
    pub client: PaymentsClient,
    pub orders: AccessToken,
    pub admin: AccessToken,
    pub shopper: AccessToken,
}

impl Harness {
    /// The service with the stack's defaults and a provider timeout of 300 ms.
    pub async fn start() -> Self {
        Self::start_with(test_stack().set_for(
            Service::Payments,
            "PAYMENT_PROVIDER_TIMEOUT_MS",
            "300",
        ))
        .await
    }

    /// The service from `stack` (change it with `set_for(Service::Payments, ...)` first).
    pub async fn start_with(stack: Stack) -> Self {
        let service = start::<Application, _>(stack, Service::Payments, |app| {
            (app.store().clone(), app.provider().clone())
        })
        .await;
        let client = PaymentsClient::new(service.server.base_url.clone());
        Self {
            orders: service_token(&service.stack, "orders"),
            admin: token(&service.stack, 4, Role::Admin),
            shopper: token(&service.stack, 1, Role::User),
            service,
            client,
        }
    }

    /// Authorizes order `order_id`'s `amount_minor` EUR on `token`.
    pub async fn authorize(
        &self,
        order_id: i64,
        amount_minor: i64,
        token: &str,
    ) -> Result<Payment, ClientError> {
        let body = AuthorizationRequest {
            amount: Money {
                amount_minor,
                currency: "EUR".into(),
            },
            payment_token: token.into(),
        };
        self.client
            .authorize_payment(&self.orders, order_id, &body)
            .await
    }

    /// Calls that reached the provider for `step` of `order_id`'s payment.
    pub fn provider_calls(&self, order_id: i64, step: &str) -> u32 {
        self.service
            .part
            .1
            .calls(&IdempotencyKey::new(order_id, step))
    }

    pub async fn stop(self) {
        self.service.part.0.pool().close().await;
        self.service.stop().await;
    }
}

/// The status of a problem answer.
pub fn status<T: std::fmt::Debug>(result: Result<T, ClientError>) -> u16 {
    match result {
        Err(e) => e.problem().map_or(0, |p| p.status()),
        Ok(ok) => panic!("expected a problem, got {ok:?}"),
    }
}
