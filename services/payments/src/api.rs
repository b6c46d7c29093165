//! The payments REST API: implements the generated [`PaymentsApi`] trait. Each step locks the
//! order's payment, asks the provider with the step's idempotency key (within the provider
//! timeout) and records what it answered; errors become problems in one place
//! ([`crate::error`]).

use std::sync::Arc;
use std::time::Duration;

use shopmesh_identity::Principal;
use shopmesh_openapi::payments::{
    AuthorizationRequest, Money, Payment, PaymentStatus, PaymentStep, PaymentsApi,
};
use shopmesh_openapi::runtime::Problem;

use crate::error::PaymentsError;
use crate::provider::{Authorization, IdempotencyKey, PaymentProvider, ProviderError};
use crate::store::{PaymentStore, StepDetail};

/// The service behind `/payments`.
pub struct PaymentsService {
    store: PaymentStore,
    provider: Arc<dyn PaymentProvider>,
    timeout: Duration,
    max_attempts: i32,
}

/// A settling step: capture, void or refund.
#[derive(Debug, Clone, Copy)]
enum Settle {
    Capture,
    Void,
    Refund,
}

impl Settle {
    /// From where, to where, and the name of its idempotency key.
    fn path(self) -> (PaymentStatus, PaymentStatus, &'static str) {
        match self {
            Self::Capture => (
                PaymentStatus::Authorized,
                PaymentStatus::Captured,
                "capture",
            ),
            Self::Void => (PaymentStatus::Authorized, PaymentStatus::Voided, "void"),
            Self::Refund => (PaymentStatus::Captured, PaymentStatus::Refunded, "refund"),
        }
    }
}

impl PaymentsService {
    /// Payments in `store`, through `provider`, each provider call given `timeout`; an
    /// authorization fails for good after `max_attempts` provider failures.
    pub fn new(
        store: PaymentStore,
        provider: Arc<dyn PaymentProvider>,
        timeout: Duration,
        max_attempts: i32,
    ) -> Self {
        Self {
            store,
            provider,
            timeout,
            max_attempts,
        }
    }

    async fn payment(&self, order_id: i64) -> Result<Payment, PaymentsError> {
        let (p, history) = self
            .store
            .get(order_id)
            .await?
            .ok_or(PaymentsError::NotFound(order_id))?;
        Ok(Payment {
            order_id: p.order_id,
            amount: Money {
                amount_minor: p.amount_minor,
                currency: p.currency,
            },
            status: p.status,
            provider_reference: p.provider_reference,
            decline_reason: p.decline_reason,
            history: history
                .into_iter()
                .map(|s| PaymentStep {
                    status: s.status,
                    at: s.at,
                    detail: s.detail,
                })
                .collect(),
        })
    }

    /// A provider call, given the provider timeout.
    async fn call<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, ProviderError>>,
    ) -> Result<T, ProviderError> {
        tokio::time::timeout(self.timeout, call)
            .await
            .unwrap_or(Err(ProviderError::Timeout))
    }

    async fn authorize(
        &self,
        order_id: i64,
        body: AuthorizationRequest,
    ) -> Result<Payment, PaymentsError> {
        let amount = &body.amount;
        self.store
            .open(order_id, amount.amount_minor, &amount.currency)
            .await?;
        let (tx, payment) = self.store.lock(order_id).await?;
        if (payment.amount_minor, payment.currency.as_str())
            != (amount.amount_minor, amount.currency.as_str())
        {
            return Err(PaymentsError::AmountMismatch(order_id));
        }
        if payment.status != PaymentStatus::Pending {
            drop(tx);
            return self.payment(order_id).await;
        }
        let key = IdempotencyKey::new(order_id, "authorize");
        let asked = self.provider.authorize(
            &key,
            &body.payment_token,
            amount.amount_minor,
            &amount.currency,
        );
        match self.call(asked).await {
            Ok(Authorization::Approved(reference)) => {
                let detail = StepDetail {
                    reference: Some(reference),
                    ..StepDetail::default()
                };
                PaymentStore::advance(tx, &payment, PaymentStatus::Authorized, detail).await?;
            }
            Ok(Authorization::Declined(reason)) => {
                let detail = StepDetail {
                    decline_reason: Some(reason),
                    ..StepDetail::default()
                };
                PaymentStore::advance(tx, &payment, PaymentStatus::Declined, detail).await?;
            }
            Err(failure) if payment.failed_attempts + 1 >= self.max_attempts => {
                let detail = StepDetail {
                    note: Some(failure.to_string()),
                    ..StepDetail::default()
                };
                PaymentStore::advance(tx, &payment, PaymentStatus::Failed, detail).await?;
            }
            Err(failure) => {
                PaymentStore::count_failure(tx, &payment).await?;
                return Err(failure.into());
            }
        }
        self.payment(order_id).await
    }

    async fn settle(&self, order_id: i64, step: Settle) -> Result<Payment, PaymentsError> {
        let (from, to, name) = step.path();
        let (tx, payment) = self.store.lock(order_id).await?;
        if payment.status == to {
            drop(tx);
            return self.payment(order_id).await;
        }
        if payment.status != from {
            return Err(PaymentsError::IllegalStep {
                order_id,
                from: payment.status,
                to,
            });
        }
        let reference = payment.provider_reference.clone().ok_or_else(|| {
            PaymentsError::Internal(format!("payment {order_id} has no provider reference"))
        })?;
        let key = IdempotencyKey::new(order_id, name);
        let asked = match step {
            Settle::Capture => self.provider.capture(&key, &reference),
            Settle::Void => self.provider.void(&key, &reference),
            Settle::Refund => self.provider.refund(&key, &reference),
        };
        self.call(asked).await?;
        PaymentStore::advance(tx, &payment, to, StepDetail::default()).await?;
        self.payment(order_id).await
    }
}

#[async_trait::async_trait]
impl PaymentsApi for PaymentsService {
    async fn authorize_payment(
        &self,
        _principal: Principal,
        order_id: i64,
        body: AuthorizationRequest,
    ) -> Result<Payment, Problem> {
        Ok(self.authorize(order_id, body).await?)
    }

    async fn get_payment(&self, _principal: Principal, order_id: i64) -> Result<Payment, Problem> {
        Ok(self.payment(order_id).await?)
    }

    async fn capture_payment(
        &self,
        _principal: Principal,
        order_id: i64,
    ) -> Result<Payment, Problem> {
        Ok(self.settle(order_id, Settle::Capture).await?)
    }

    async fn void_payment(&self, _principal: Principal, order_id: i64) -> Result<Payment, Problem> {
        Ok(self.settle(order_id, Settle::Void).await?)
    }

    async fn refund_payment(
        &self,
        _principal: Principal,
        order_id: i64,
    ) -> Result<Payment, Problem> {
        Ok(self.settle(order_id, Settle::Refund).await?)
    }
}
