//! The gateway's one error type, mapped once to REST problems and once to typed GraphQL errors.

use async_graphql::ErrorExtensions;
use shopmesh_openapi::runtime::{ClientError, Problem};

/// Everything that can go wrong answering a gateway request.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GatewayError {
    /// The request is invalid (bad id, out-of-range value, unknown user for an order).
    #[error("{0}")]
    InvalidInput(String),
    /// The thing asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// No valid credentials: a token or log-in the users service or the gateway refused.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller may not act on this resource.
    #[error("{0}")]
    Forbidden(String),
    /// A downstream service asks the client to wait (too many failed log-ins).
    #[error("{detail}")]
    TooManyRequests {
        /// Why.
        detail: String,
        /// Seconds to wait, when known.
        retry_after_secs: Option<u64>,
    },
    /// The request conflicts with existing data (a taken email).
    #[error("{0}")]
    Conflict(String),
    /// The request cannot be processed as sent (an idempotency key reused with another body).
    #[error("{0}")]
    Unprocessable(String),
    /// A downstream service is unreachable or answered outside its contract.
    #[error("{service} is unavailable: {detail}")]
    Unavailable {
        /// Which service.
        service: &'static str,
        /// What happened.
        detail: String,
    },
    /// A downstream service did not answer within the timeout.
    #[error("{service} did not answer in time")]
    Timeout {
        /// Which service.
        service: &'static str,
    },
    /// The GraphQL request used up its downstream-call budget (`GRAPHQL_MAX_DOWNSTREAM_CALLS`).
    #[error(
        "this request needs more downstream calls than the {} allowed per request; ask for less at once",
        crate::limits::MAX_DOWNSTREAM_CALLS_NAME
    )]
    CallBudgetSpent,
    /// A subscription fell further behind the replica's status changes than its buffer holds.
    #[error(
        "this subscription missed {0} status changes (it fell behind); re-read the orders and subscribe again"
    )]
    EventsMissed(u64),
    /// A bug in the gateway itself (e.g. a missing per-request loader).
    #[error("internal error")]
    Internal(String),
}

impl GatewayError {
    /// Maps a generated REST client's failure: a documented problem by its status (the
    /// downstream's detail is kept), anything else as an unavailable or slow service.
    pub fn from_client(service: &'static str, e: ClientError) -> Self {
        match e {
            ClientError::Problem(p) => {
                let detail = p.detail_or_title().to_owned();
                match p.status() {
                    401 => Self::Unauthenticated(detail),
                    403 => Self::Forbidden(detail),
                    404 => Self::NotFound(detail),
                    409 => Self::Conflict(detail),
                    422 => Self::Unprocessable(detail),
                    400..=499 => Self::InvalidInput(detail),
                    _ => Self::Unavailable { service, detail },
                }
            }
            ClientError::TooManyRequests {
                problem,
                retry_after_secs,
            } => Self::TooManyRequests {
                detail: problem.detail_or_title().to_owned(),
                retry_after_secs,
            },
            ClientError::Timeout => Self::Timeout { service },
            other => Self::Unavailable {
                service,
                detail: other.to_string(),
            },
        }
    }

    /// Maps a gRPC status.
    pub fn from_status(service: &'static str, s: tonic::Status) -> Self {
        match s.code() {
            tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => Self::Timeout { service },
            tonic::Code::InvalidArgument => Self::InvalidInput(s.message().to_owned()),
            tonic::Code::NotFound => Self::NotFound(s.message().to_owned()),
            tonic::Code::Unauthenticated => Self::Unauthenticated(s.message().to_owned()),
            tonic::Code::PermissionDenied => Self::Forbidden(s.message().to_owned()),
            // The caller's own share is used up: theirs to wait for, not the service's outage.
            tonic::Code::ResourceExhausted => Self::TooManyRequests {
                detail: s.message().to_owned(),
                retry_after_secs: Some(1),
            },
            _ => Self::Unavailable {
                service,
                detail: format!("{:?}: {}", s.code(), s.message()),
            },
        }
    }

    /// HTTP status for REST.
    pub fn status(&self) -> u16 {
        match self {
            Self::InvalidInput(_) => 400,
            Self::Unauthenticated(_) => 401,
            Self::Forbidden(_) => 403,
            Self::NotFound(_) => 404,
            Self::Conflict(_) => 409,
            Self::Unprocessable(_) => 422,
            Self::TooManyRequests { .. } => 429,
            Self::Unavailable { .. } => 503,
            Self::Timeout { .. } => 504,
            Self::CallBudgetSpent => 400,
            Self::EventsMissed(_) => 503,
            Self::Internal(_) => 500,
        }
    }

    /// Machine-readable code for GraphQL `extensions.code`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidInput(_) => crate::limits::BAD_USER_INPUT_CODE,
            Self::Unauthenticated(_) => "UNAUTHENTICATED",
            Self::Forbidden(_) => "FORBIDDEN",
            Self::NotFound(_) => "NOT_FOUND",
            Self::Conflict(_) => "CONFLICT",
            Self::Unprocessable(_) => "UNPROCESSABLE",
            Self::TooManyRequests { .. } => "TOO_MANY_REQUESTS",
            Self::Unavailable { .. } => "DOWNSTREAM_UNAVAILABLE",
            Self::Timeout { .. } => "DOWNSTREAM_TIMEOUT",
            Self::CallBudgetSpent => crate::limits::LIMIT_CODE,
            Self::EventsMissed(_) => "EVENTS_MISSED",
            Self::Internal(_) => "INTERNAL_SERVER_ERROR",
        }
    }

    /// Logs what a client is not told: downstream failures and internal errors.
    fn log(&self) {
        match self {
            Self::Unavailable { .. } | Self::Timeout { .. } => {
                tracing::warn!(error = %self, "downstream failure")
            }
            Self::Internal(detail) => tracing::error!(%detail, "internal error"),
            _ => {}
        }
    }
}

/// The REST problem; the generated response picks the variant from its status.
impl From<GatewayError> for Problem {
    fn from(e: GatewayError) -> Self {
        e.log();
        if let GatewayError::TooManyRequests {
            retry_after_secs: Some(secs),
            ..
        } = &e
        {
            crate::client::note_retry_after(*secs);
        }
        Problem::new(e.status(), e.to_string())
    }
}

/// Typed GraphQL error: the message plus `extensions.code` (and `extensions.service` for
/// downstream failures). The generated resolver layer calls this for every resolver error.
impl ErrorExtensions for GatewayError {
    fn extend(&self) -> async_graphql::Error {
        self.log();
        let code = self.code();
        let service = match self {
            Self::Unavailable { service, .. } | Self::Timeout { service } => Some(*service),
            _ => None,
        };
        let retry_after = match self {
            Self::TooManyRequests {
                retry_after_secs, ..
            } => *retry_after_secs,
            _ => None,
        };
        async_graphql::Error::new(self.to_string()).extend_with(|_, ext| {
            ext.set("code", code);
            if let Some(s) = service {
                ext.set("service", s);
            }
            if let Some(secs) = retry_after {
                ext.set("retryAfter", secs);
            }
        })
    }
}

/// A caller the rules do not allow.
impl From<shopmesh_identity::Forbidden> for GatewayError {
    fn from(e: shopmesh_identity::Forbidden) -> Self {
        Self::Forbidden(e.0)
    }
}

/// Context lookups (`ctx.data`) fail only when the gateway wired a request wrongly.
impl From<async_graphql::Error> for GatewayError {
    fn from(e: async_graphql::Error) -> Self {
        Self::Internal(e.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_codes_map_to_gateway_errors() {
        assert!(matches!(
            GatewayError::from_status("n", tonic::Status::deadline_exceeded("x")),
            GatewayError::Timeout { .. }
        ));
        assert!(matches!(
            GatewayError::from_status("n", tonic::Status::invalid_argument("x")),
            GatewayError::InvalidInput(_)
        ));
        assert!(matches!(
            GatewayError::from_status("n", tonic::Status::unavailable("x")),
            GatewayError::Unavailable { .. }
        ));
        assert!(matches!(
            GatewayError::from_status("n", tonic::Status::resource_exhausted("x")),
            GatewayError::TooManyRequests { .. }
        ));
    }

    #[test]
    fn statuses_and_codes() {
        let e = GatewayError::Timeout { service: "orders" };
        assert_eq!((e.status(), e.code()), (504, "DOWNSTREAM_TIMEOUT"));
        let gql = GatewayError::NotFound("order 1 does not exist".into()).extend();
        let ext = gql.extensions.unwrap();
        assert_eq!(
            ext.get("code"),
            Some(&async_graphql::Value::from("NOT_FOUND"))
        );
    }
}
