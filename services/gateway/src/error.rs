//! The gateway's one error type, mapped once to REST problems and once to typed GraphQL errors.

use shopmesh_openapi::runtime::ClientError;

/// Everything that can go wrong answering a gateway request.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GatewayError {
    /// The request is invalid (bad id, out-of-range value, unknown user for an order).
    #[error("{0}")]
    InvalidInput(String),
    /// The thing asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with existing data (a taken email).
    #[error("{0}")]
    Conflict(String),
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
}

impl GatewayError {
    /// Maps a generated REST client's failure.
    pub fn from_client(service: &'static str, e: ClientError) -> Self {
        match e {
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
            Self::NotFound(_) => 404,
            Self::Conflict(_) => 409,
            Self::Unavailable { .. } => 503,
            Self::Timeout { .. } => 504,
        }
    }

    /// Machine-readable code for GraphQL `extensions.code`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidInput(_) => "BAD_USER_INPUT",
            Self::NotFound(_) => "NOT_FOUND",
            Self::Conflict(_) => "CONFLICT",
            Self::Unavailable { .. } => "DOWNSTREAM_UNAVAILABLE",
            Self::Timeout { .. } => "DOWNSTREAM_TIMEOUT",
        }
    }

    /// REST problem body.
    pub fn problem(&self) -> shopmesh_openapi::gateway::Problem {
        if let Self::Unavailable { .. } | Self::Timeout { .. } = self {
            tracing::warn!(error = %self, "downstream failure");
        }
        shopmesh_openapi::gateway::Problem::new(self.status(), self.to_string())
    }
}

impl GatewayError {
    /// Typed GraphQL error: the message plus `extensions.code` (and `extensions.service` for
    /// downstream failures). Resolvers map every error through here; async-graphql's blanket
    /// `From<Display>` would drop the code.
    pub fn into_graphql(self) -> async_graphql::Error {
        use async_graphql::ErrorExtensions;
        if let Self::Unavailable { .. } | Self::Timeout { .. } = &self {
            tracing::warn!(error = %self, "downstream failure");
        }
        let code = self.code();
        let service = match &self {
            Self::Unavailable { service, .. } | Self::Timeout { service } => Some(*service),
            _ => None,
        };
        async_graphql::Error::new(self.to_string()).extend_with(|_, ext| {
            ext.set("code", code);
            if let Some(s) = service {
                ext.set("service", s);
            }
        })
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
    }

    #[test]
    fn statuses_and_codes() {
        let e = GatewayError::Timeout { service: "orders" };
        assert_eq!((e.status(), e.code()), (504, "DOWNSTREAM_TIMEOUT"));
        let gql = GatewayError::NotFound("order 1 does not exist".into()).into_graphql();
        let ext = gql.extensions.unwrap();
        assert_eq!(
            ext.get("code"),
            Some(&async_graphql::Value::from("NOT_FOUND"))
        );
    }
}
