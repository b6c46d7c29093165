//! The orders service's one error type, mapped once to problem responses in [`crate::api`].

/// Everything that can go wrong serving an orders request.
#[derive(Debug, thiserror::Error)]
pub enum OrdersError {
    /// No order has this id.
    #[error("order {0} does not exist")]
    NotFound(i64),
    /// The pagination cursor was not produced by this service.
    #[error("cursor {0:?} is not valid")]
    InvalidCursor(String),
    /// The database could not be reached or failed.
    #[error("database unavailable: {0}")]
    Unavailable(#[from] sqlx::Error),
    /// An invariant broke (a bug or corrupted data).
    #[error("internal error: {0}")]
    Internal(String),
}

impl OrdersError {
    /// HTTP status for this error.
    pub fn status(&self) -> u16 {
        match self {
            Self::NotFound(_) => 404,
            Self::InvalidCursor(_) => 400,
            Self::Unavailable(_) => 503,
            Self::Internal(_) => 500,
        }
    }

    /// Problem body for this error; internal details of database failures are logged, not sent.
    pub fn problem(&self) -> shopmesh_openapi::orders::Problem {
        let detail = match self {
            Self::Unavailable(e) => {
                tracing::warn!(error = %e, "database unavailable");
                "the order database is unavailable; retry later".to_owned()
            }
            Self::Internal(e) => {
                tracing::error!(error = %e, "internal error");
                "internal error".to_owned()
            }
            other => other.to_string(),
        };
        shopmesh_openapi::orders::Problem::new(self.status(), detail)
    }
}
