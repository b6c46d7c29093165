//! The payments service's one error type, mapped once to a problem (and so to a response).

use shopmesh_openapi::payments::PaymentStatus;
use shopmesh_openapi::runtime::Problem;

use crate::provider::ProviderError;

/// Everything that can go wrong serving a payments request.
#[derive(Debug, thiserror::Error)]
pub enum PaymentsError {
    /// The order has no payment.
    #[error("order {0} has no payment")]
    NotFound(i64),
    /// The order's payment is of another amount or currency.
    #[error("order {0} already has a payment of another amount")]
    AmountMismatch(i64),
    /// The step cannot start from where the payment is.
    #[error("the payment of order {order_id} is {}; it cannot become {}", from.as_str(), to.as_str())]
    IllegalStep {
        /// The order.
        order_id: i64,
        /// Where the payment is.
        from: PaymentStatus,
        /// Where the step would take it.
        to: PaymentStatus,
    },
    /// The provider did not carry the step out; the same call may be retried.
    #[error("{0}; retry the same call")]
    Provider(#[from] ProviderError),
    /// The database could not be reached or failed.
    #[error("database unavailable: {0}")]
    Unavailable(#[from] sqlx::Error),
    /// An invariant broke (a bug or corrupted data).
    #[error("internal error: {0}")]
    Internal(String),
}

impl PaymentsError {
    /// HTTP status for this error.
    pub fn status(&self) -> u16 {
        match self {
            Self::NotFound(_) => 404,
            Self::AmountMismatch(_) | Self::IllegalStep { .. } => 409,
            Self::Provider(_) | Self::Unavailable(_) => 503,
            Self::Internal(_) => 500,
        }
    }
}

/// The problem a client sees; internal details of database failures are logged, not sent.
impl From<PaymentsError> for Problem {
    fn from(e: PaymentsError) -> Self {
        let detail = match &e {
            PaymentsError::Unavailable(err) => {
                tracing::warn!(error = %err, "database unavailable");
                "the payments database is unavailable; retry later".to_owned()
            }
            PaymentsError::Internal(err) => {
                tracing::error!(error = %err, "internal error");
                "internal error".to_owned()
            }
            other => other.to_string(),
        };
        Problem::new(e.status(), detail)
    }
}
