//! The notifications service's one error type and its single mapping to gRPC status codes.

/// Everything that can go wrong in the notifications service.
#[derive(Debug, thiserror::Error)]
pub enum NotificationsError {
    /// The request breaks the contract (id < 1, bad page token, page size out of range).
    #[error("{0}")]
    InvalidArgument(String),
    /// The store cannot be reached right now.
    #[error("store unavailable: {0}")]
    StoreUnavailable(String),
    /// The store is reachable but did not answer in time (busy, not down).
    #[error("store slow: {0}")]
    StoreSlow(String),
    /// The caller has as many calls in flight as one caller may.
    #[error("{0}")]
    TooManyCalls(String),
    /// The store refused the operation for another reason.
    #[error("store error: {0}")]
    Store(String),
}

impl From<NotificationsError> for tonic::Status {
    fn from(err: NotificationsError) -> Self {
        match err {
            NotificationsError::InvalidArgument(m) => tonic::Status::invalid_argument(m),
            NotificationsError::StoreUnavailable(m) | NotificationsError::StoreSlow(m) => {
                tracing::warn!(error = %m, "store unavailable");
                tonic::Status::unavailable("the notification store is unavailable; retry later")
            }
            NotificationsError::TooManyCalls(m) => tonic::Status::resource_exhausted(m),
            NotificationsError::Store(m) => {
                tracing::error!(error = %m, "store error");
                tonic::Status::internal("store error")
            }
        }
    }
}
