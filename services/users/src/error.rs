//! The users service's one error type, mapped once to a problem (and so to a response).

use shopmesh_common::idempotency::KeyRefused;
use shopmesh_openapi::runtime::Problem;

/// Everything that can go wrong serving a users request.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// No user has this id.
    #[error("user {0} does not exist")]
    NotFound(i64),
    /// Input breaks a rule the contract cannot express.
    #[error("{0}")]
    Invalid(String),
    /// Another user has this email.
    #[error("another user already has the email {0}")]
    DuplicateEmail(String),
    /// The email and password do not match an account.
    #[error("the email or the password is wrong")]
    InvalidCredentials,
    /// The client id and secret match no configured platform service.
    #[error("unknown client or wrong secret")]
    InvalidClientCredentials,
    /// The refresh token is unknown, expired, revoked or used.
    #[error("the refresh token is not valid; log in again")]
    InvalidRefreshToken,
    /// The caller may not act on this user.
    #[error("{0}")]
    Forbidden(#[from] shopmesh_identity::Forbidden),
    /// Hashing a password failed.
    #[error("password hashing failed: {0}")]
    Hashing(String),
    /// The sign-up's idempotency key does not let it run.
    #[error("{0}")]
    Key(KeyRefused),
    /// The database could not be reached or failed.
    #[error("database unavailable: {0}")]
    Unavailable(#[from] sqlx::Error),
}

/// A database failure behind a key is the database's; everything else is the key's.
impl From<KeyRefused> for UsersError {
    fn from(refused: KeyRefused) -> Self {
        match refused {
            KeyRefused::Store(e) => Self::Unavailable(e),
            other => Self::Key(other),
        }
    }
}

impl UsersError {
    /// HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            Self::NotFound(_) => 404,
            Self::Invalid(_) => 400,
            Self::DuplicateEmail(_) => 409,
            Self::InvalidCredentials
            | Self::InvalidClientCredentials
            | Self::InvalidRefreshToken => 401,
            Self::Forbidden(_) => 403,
            Self::Hashing(_) => 500,
            Self::Key(refused) => refused.status(),
            Self::Unavailable(_) => 503,
        }
    }
}

/// The problem a client sees; database details are logged, not sent.
impl From<UsersError> for Problem {
    fn from(e: UsersError) -> Self {
        let detail = match &e {
            UsersError::Unavailable(err) => {
                tracing::warn!(error = %err, "database unavailable");
                "the user database is unavailable; retry later".to_owned()
            }
            UsersError::Hashing(err) => {
                tracing::error!(error = %err, "password hashing failed");
                "the service failed unexpectedly".to_owned()
            }
            UsersError::Key(refused @ KeyRefused::Corrupt(..)) => {
                tracing::error!(error = %refused, "stored idempotent answer unreadable");
                "the service failed unexpectedly".to_owned()
            }
            other => other.to_string(),
        };
        Problem::new(e.status(), detail)
    }
}
