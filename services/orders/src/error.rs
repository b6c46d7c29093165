//! The orders service's one error type, mapped once to a problem (and so to a response).

use shopmesh_common::idempotency::KeyRefused;
use shopmesh_openapi::runtime::Problem;

/// Everything that can go wrong serving an orders request.
#[derive(Debug, thiserror::Error)]
pub enum OrdersError {
    /// No order has this id.
    #[error("order {0} does not exist")]
    NotFound(i64),
    /// The pagination cursor was not produced by this service.
    #[error("cursor {0:?} is not valid")]
    InvalidCursor(String),
    /// The caller may not act on this user's orders.
    #[error("{0}")]
    Forbidden(#[from] shopmesh_identity::Forbidden),
    /// A status filter that names no status of the contract's lifecycle.
    #[error("{0:?} is no order status")]
    UnknownStatus(String),
    /// An admin ordered for a user that does not exist.
    #[error("user {0} does not exist")]
    UnknownUser(i64),
    /// The users service could not confirm a user.
    #[error("the users service is unavailable: {0}")]
    UsersUnavailable(String),
    /// The order is not where a change of status needs it, or the contract's state machine
    /// has no such transition.
    #[error("order {id} is {}; it cannot become {}", from.as_str(), to.as_str())]
    IllegalTransition {
        /// The order.
        id: i64,
        /// Where it is (or where the caller thought it was).
        from: shopmesh_openapi::orders::OrderStatus,
        /// Where it was asked to go.
        to: shopmesh_openapi::orders::OrderStatus,
    },
    /// The request's idempotency key does not let it run.
    #[error("{0}")]
    Key(KeyRefused),
    /// Checkout of an empty cart.
    #[error("user {0}'s cart is empty")]
    EmptyCart(i64),
    /// A product of the order is not for sale (unknown, or no longer active).
    #[error("product {0} is not for sale")]
    NotForSale(i64),
    /// The lines of one order are priced in more than one currency.
    #[error("the products are priced in {0} and {1}; one order takes one currency")]
    MixedCurrencies(String, String),
    /// The total does not fit the contract's amount.
    #[error("the order's total is too large")]
    TotalTooLarge,
    /// The catalog could not price the order.
    #[error("the catalog is unavailable: {0}")]
    CatalogUnavailable(String),
    /// This deployment has no service credential, so no saga can run.
    #[error("checkout is not configured here (SERVICE_CLIENT_SECRET is unset)")]
    CheckoutUnavailable,
    /// The cart holds as many lines as it may.
    #[error("user {0}'s cart already holds {max} lines", max = crate::carts::MAX_CART_LINES)]
    CartFull(i64),
    /// The database could not be reached or failed.
    #[error("database unavailable: {0}")]
    Unavailable(#[from] sqlx::Error),
    /// An invariant broke (a bug or corrupted data).
    #[error("internal error: {0}")]
    Internal(String),
}

/// The counter of transactions tried again after losing a conflict.
pub const CONFLICTS_RETRIED: &str = "orders_conflicts_retried_total";

impl OrdersError {
    /// The database's own error, when this is one (to tell a lost conflict).
    pub fn database(&self) -> Option<&sqlx::Error> {
        match self {
            Self::Unavailable(e) => Some(e),
            _ => None,
        }
    }

    /// HTTP status for this error.
    pub fn status(&self) -> u16 {
        match self {
            Self::NotFound(_) => 404,
            Self::InvalidCursor(_) | Self::UnknownUser(_) | Self::UnknownStatus(_) => 400,
            Self::Forbidden(_) => 403,
            Self::IllegalTransition { .. }
            | Self::CartFull(_)
            | Self::EmptyCart(_)
            | Self::NotForSale(_)
            | Self::MixedCurrencies(..)
            | Self::TotalTooLarge => 409,
            Self::Key(refused) => refused.status(),
            Self::UsersUnavailable(_) | Self::CatalogUnavailable(_) | Self::CheckoutUnavailable => {
                503
            }
            Self::Unavailable(_) => 503,
            Self::Internal(_) => 500,
        }
    }
}

/// A database failure behind a key is the database's; everything else is the key's.
impl From<KeyRefused> for OrdersError {
    fn from(refused: KeyRefused) -> Self {
        match refused {
            KeyRefused::Store(e) => Self::Unavailable(e),
            KeyRefused::Corrupt(..) => Self::Internal(refused.to_string()),
            other => Self::Key(other),
        }
    }
}

/// The problem a client sees; internal details of database failures are logged, not sent.
impl From<OrdersError> for Problem {
    fn from(e: OrdersError) -> Self {
        let detail = match &e {
            OrdersError::Unavailable(err) => {
                let kind = shopmesh_common::db::failure_kind(err);
                metrics::counter!("orders_database_failures_total", "kind" => kind).increment(1);
                tracing::warn!(error = %err, kind, "database unavailable");
                "the order database is unavailable; retry later".to_owned()
            }
            OrdersError::UsersUnavailable(err) => {
                tracing::warn!(error = %err, "users service unavailable");
                "the users service is unavailable; retry later".to_owned()
            }
            OrdersError::CatalogUnavailable(err) => {
                tracing::warn!(error = %err, "catalog unavailable");
                "the catalog is unavailable; retry later".to_owned()
            }
            OrdersError::Internal(err) => {
                tracing::error!(error = %err, "internal error");
                "internal error".to_owned()
            }
            other => other.to_string(),
        };
        Problem::new(e.status(), detail)
    }
}
