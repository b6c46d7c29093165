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
    /// The store refused the operation for another reason.
    #[error("store error: {0}")]
    Store(String),
}

impl From<NotificationsError> for tonic::Status {
    fn from(err: NotificationsError) -> Self {
        match err {
            NotificationsError::InvalidArgument(m) => tonic::Status::invalid_argument(m),
            NotificationsError::StoreUnavailable(m) => {
                tracing::warn!(error = %m, "store unavailable");
                tonic::Status::unavailable("the notification store is unavailable; retry later")
            }
            NotificationsError::Store(m) => {
                tracing::error!(error = %m, "store error");
                tonic::Status::internal("store error")
            }
        }
    }
}
