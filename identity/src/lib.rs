//! Who a caller is, as every shopmesh service agrees on it.
//!
//! The users service signs short-lived access tokens ([`TokenIssuer`]): EdDSA (Ed25519) JWTs
//! with `kid`, `sub` (the user id), `role`, `iss`, `aud`, `iat` and `exp`, and publishes the
//! public halves of its keys as a JWKS ([`KeyRing::jwks`]). Every service verifies tokens
//! itself ([`TokenVerifier`]): against the users service's JWKS (cached, refetched when a token
//! names an unknown `kid`, at a bounded rate), and optionally against an external OpenID
//! Connect issuer. A verified token becomes a [`Principal`], which the generated server code
//! hands to the hand-written handlers as a typed argument.

mod keys;
mod tokens;
mod verify;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use keys::{KeyError, KeyRing, SigningKey};
pub use tokens::{AccessClaims, IssuedToken, TokenIssuer, TokenPolicy};
/// The `sub` prefix of a service's token: `service:orders`.
pub const SERVICE_SUBJECT_PREFIX: &str = "service:";

pub use verify::{JwksSource, MAX_LIFETIME_SECS, RoleMapping, TokenVerifier, TrustedIssuer};

/// What a caller may do beyond their own data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A shopper: their own user, orders and notifications.
    User,
    /// An operator: everything people may do.
    Admin,
    /// Another platform service acting for itself (the orders service reserving stock), with
    /// a token from the users service's client-credentials grant. It is no person: it passes
    /// only checks that name it, and none that name a person's role.
    Service,
}

impl Role {
    /// The claim value (`user`, `admin`, `service`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Admin => "admin",
            Self::Service => "service",
        }
    }

    /// Whether a caller with this role passes a check that requires `required`: an admin
    /// may do what a user may; a service only what is declared for services.
    pub fn satisfies(self, required: Role) -> bool {
        matches!(
            (self, required),
            (Self::User | Self::Admin, Self::User)
                | (Self::Admin, Self::Admin)
                | (Self::Service, Self::Service)
        )
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "user" => Ok(Self::User),
            "admin" => Ok(Self::Admin),
            "service" => Ok(Self::Service),
            other => Err(format!(
                "unknown role `{other}` (expected user, admin or service)"
            )),
        }
    }
}

/// A bearer access token as the caller sent it, kept to forward downstream. `Debug` does not
/// print it.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(String);

impl AccessToken {
    /// Wraps a token.
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    /// The compact JWT.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The `Authorization` header value (`Bearer …`).
    pub fn header_value(&self) -> String {
        format!("Bearer {}", self.0)
    }

    /// Its `exp` claim, seconds since the epoch, read without checking the signature: only
    /// for a token a [`TokenVerifier`] accepted (a connection that lives on after the request
    /// that verified it ends when this passes).
    pub fn expires_at(&self) -> Option<i64> {
        use base64::Engine as _;
        let payload = self.0.split('.').nth(1)?;
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .ok()?;
        serde_json::from_slice::<serde_json::Value>(&json).ok()?["exp"].as_i64()
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(***)")
    }
}

/// A verified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user the token was issued to (`sub`); 0, which is no user, for a service, whose
    /// `sub` is `service:<client id>`.
    pub user_id: i64,
    /// Their role.
    pub role: Role,
    /// The token itself, to call other services on the caller's behalf.
    pub token: AccessToken,
}

impl Principal {
    /// Whether the caller is an admin.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Whether data owned by `owner` exists for this caller: their own, or anything for an
    /// admin. A single thing found by its id (an order, its notifications) that the caller may
    /// not see answers as missing, never as forbidden, so ids cannot be probed.
    pub fn sees(&self, owner: i64) -> bool {
        self.is_admin() || self.user_id == owner
    }

    /// Allows acting on `user_id`'s data: the user themself, or an admin.
    pub fn check_access(&self, user_id: i64) -> Result<(), Forbidden> {
        if self.sees(user_id) {
            Ok(())
        } else {
            Err(Forbidden(format!(
                "user {} may not act on user {user_id}'s data",
                self.user_id
            )))
        }
    }

    /// Allows what needs at least `role`.
    pub fn check_role(&self, role: Role) -> Result<(), Forbidden> {
        if self.role.satisfies(role) {
            Ok(())
        } else {
            Err(Forbidden(format!("this needs the {role} role")))
        }
    }
}

/// The caller is known but may not do this (403).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Forbidden(pub String);

/// Why a request is not authenticated (401), or could not be checked (503).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    #[error("this operation needs a bearer token (Authorization: Bearer <access token>)")]
    Missing,
    /// Not a JWT, or its claims are not ours.
    #[error("the bearer token is malformed")]
    Malformed,
    /// `alg` is not one this platform signs with (`none` included).
    #[error("the bearer token's algorithm is not accepted")]
    Algorithm,
    /// `exp` has passed.
    #[error("the bearer token has expired")]
    Expired,
    /// The signature does not verify.
    #[error("the bearer token's signature does not verify")]
    Signature,
    /// No trusted key has the token's `kid`.
    #[error("the bearer token was signed by an unknown key")]
    UnknownKey,
    /// `iss` is not a trusted issuer.
    #[error("the bearer token is from an untrusted issuer")]
    Issuer,
    /// `aud` is not this platform.
    #[error("the bearer token is meant for another audience")]
    Audience,
    /// `nbf` or `iat` is still in the future.
    #[error("the bearer token is not valid yet")]
    NotYetValid,
    /// `exp` is further from `iat` than any issuer should allow.
    #[error("the bearer token claims a longer lifetime than is accepted")]
    Lifetime,
    /// The keys could not be fetched.
    #[error("the token keys could not be fetched; retry later")]
    KeysUnavailable,
}

impl AuthError {
    /// HTTP status: 401, or 503 when the keys are out of reach.
    pub fn status(&self) -> u16 {
        match self {
            Self::KeysUnavailable => 503,
            _ => 401,
        }
    }
}
