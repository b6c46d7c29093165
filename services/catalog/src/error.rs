//! The catalog service's one error type, mapped once to a problem (and so to a response).

use shopmesh_common::idempotency::KeyRefused;
use shopmesh_openapi::catalog::ReservationStatus;
use shopmesh_openapi::runtime::Problem;

/// Everything that can go wrong serving a catalog request.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// No product has this id.
    #[error("no product {0}")]
    ProductNotFound(i64),
    /// No product has this SKU.
    #[error("no product with SKU {0:?}")]
    SkuNotFound(String),
    /// Another product has this SKU.
    #[error("SKU {0:?} is taken by another product")]
    SkuTaken(String),
    /// The currency is not an active ISO 4217 code.
    #[error("price.currency: {0} is not an ISO 4217 currency")]
    UnknownCurrency(String),
    /// An import is not the documented CSV (header, size, quoting).
    #[error("csv: {0}")]
    BadImport(String),
    /// The pagination cursor was not produced by this service.
    #[error("after: {0:?} is not a cursor this service gave out")]
    InvalidCursor(String),
    /// An adjustment would leave fewer units on hand than are reserved (or fewer than none).
    #[error(
        "product {product} has {on_hand} on hand and {reserved} reserved; {delta} would leave too few"
    )]
    BelowReserved {
        /// The product.
        product: i64,
        /// Units on hand.
        on_hand: i64,
        /// Units reserved.
        reserved: i64,
        /// The refused adjustment.
        delta: i32,
    },
    /// A line asks for more units than are available, or for a product not on sale.
    #[error("product {product} has {available} units available, {asked} asked")]
    InsufficientStock {
        /// The product.
        product: i64,
        /// Units available.
        available: i64,
        /// Units asked for.
        asked: i64,
    },
    /// The product exists but is not on sale.
    #[error("product {0} is not on sale")]
    Inactive(i64),
    /// The order has no reservation.
    #[error("order {0} has no reservation")]
    ReservationNotFound(i64),
    /// The reservation already ended another way.
    #[error("the reservation of order {order} is {}; it cannot be {wanted}", status.as_str())]
    ReservationSettled {
        /// The order.
        order: i64,
        /// Where the reservation is.
        status: ReservationStatus,
        /// What was asked.
        wanted: &'static str,
    },
    /// The order was reserved with other lines.
    #[error("order {0} is reserved with other lines")]
    OtherLines(i64),
    /// The request's idempotency key does not let it run.
    #[error("{0}")]
    Key(KeyRefused),
    /// The database could not be reached or failed.
    #[error("database unavailable: {0}")]
    Unavailable(#[from] sqlx::Error),
    /// An invariant broke (a bug or corrupted data).
    #[error("internal error: {0}")]
    Internal(String),
}

impl CatalogError {
    /// HTTP status for this error.
    pub fn status(&self) -> u16 {
        match self {
            Self::ProductNotFound(_) | Self::SkuNotFound(_) | Self::ReservationNotFound(_) => 404,
            Self::UnknownCurrency(_) | Self::InvalidCursor(_) | Self::BadImport(_) => 400,
            Self::SkuTaken(_)
            | Self::BelowReserved { .. }
            | Self::InsufficientStock { .. }
            | Self::Inactive(_)
            | Self::ReservationSettled { .. }
            | Self::OtherLines(_) => 409,
            Self::Key(refused) => refused.status(),
            Self::Unavailable(_) => 503,
            Self::Internal(_) => 500,
        }
    }
}

/// A database failure behind a key is the database's; everything else is the key's.
impl From<KeyRefused> for CatalogError {
    fn from(refused: KeyRefused) -> Self {
        match refused {
            KeyRefused::Store(e) => Self::Unavailable(e),
            KeyRefused::Corrupt(..) => Self::Internal(refused.to_string()),
            other => Self::Key(other),
        }
    }
}

/// The problem a client sees; internal details of database failures are logged, not sent.
impl From<CatalogError> for Problem {
    fn from(e: CatalogError) -> Self {
        let detail = match &e {
            CatalogError::Unavailable(err) => {
                tracing::warn!(error = %err, "database unavailable");
                "the catalog database is unavailable; retry later".to_owned()
            }
            CatalogError::Internal(err) => {
                tracing::error!(error = %err, "internal error");
                "internal error".to_owned()
            }
            other => other.to_string(),
        };
        Problem::new(e.status(), detail)
    }
}
