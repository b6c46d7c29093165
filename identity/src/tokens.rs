//! Access tokens: what they claim and how the users service signs them.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, Header};
use serde::{Deserialize, Serialize};

use crate::{KeyRing, Role};

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The user id, as a string (JWT subjects are strings), or `service:<client id>`.
    pub sub: String,
    /// The user's role; tokens from an external issuer without one are `user`.
    #[serde(default = "default_role")]
    pub role: Role,
    /// Who signed it.
    pub iss: String,
    /// Who it is for.
    pub aud: String,
    /// Issued at (seconds since the epoch).
    pub iat: u64,
    /// Expires at (seconds since the epoch).
    pub exp: u64,
}

fn default_role() -> Role {
    Role::User
}

/// Who signs tokens for whom, and for how long they hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenPolicy {
    /// `iss` (`AUTH_ISSUER`).
    pub issuer: String,
    /// `aud` (`AUTH_AUDIENCE`).
    pub audience: String,
    /// Lifetime of an access token (`AUTH_ACCESS_TOKEN_TTL_SECS`).
    pub access_ttl: Duration,
}

impl TokenPolicy {
    /// The platform's defaults: issuer `shopmesh-users`, audience `shopmesh`, 15 minutes.
    pub fn platform_default() -> Self {
        Self {
            issuer: "shopmesh-users".into(),
            audience: "shopmesh".into(),
            access_ttl: Duration::from_secs(15 * 60),
        }
    }
}

/// A signed access token and its lifetime.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The compact JWT.
    pub token: String,
    /// Seconds until it expires.
    pub expires_in: u64,
}

/// Signs access tokens with the ring's signing key.
#[derive(Debug, Clone)]
pub struct TokenIssuer {
    keys: Arc<KeyRing>,
    policy: TokenPolicy,
}

impl TokenIssuer {
    /// Signs with `keys` under `policy`.
    pub fn new(keys: Arc<KeyRing>, policy: TokenPolicy) -> Self {
        Self { keys, policy }
    }

    /// The keys (for the JWKS and local verification).
    pub fn keys(&self) -> &Arc<KeyRing> {
        &self.keys
    }

    /// The policy.
    pub fn policy(&self) -> &TokenPolicy {
        &self.policy
    }

    /// A token for `user_id` with `role`, valid from now for the policy's lifetime.
    pub fn issue(&self, user_id: i64, role: Role) -> IssuedToken {
        self.issue_subject(user_id.to_string(), role)
    }

    fn issue_subject(&self, sub: String, role: Role) -> IssuedToken {
        let now = now_secs();
        let ttl = self.policy.access_ttl.as_secs();
        let claims = AccessClaims {
            sub,
            role,
            iss: self.policy.issuer.clone(),
            aud: self.policy.audience.clone(),
            iat: now,
            exp: now + ttl,
        };
        IssuedToken {
            token: self.sign(&claims),
            expires_in: ttl,
        }
    }

    /// A token for the platform service `client` (the client-credentials grant): `sub` is
    /// `service:<client>` and the role `service`.
    pub fn issue_service(&self, client: &str) -> IssuedToken {
        self.issue_subject(
            format!("{}{client}", crate::SERVICE_SUBJECT_PREFIX),
            Role::Service,
        )
    }

    /// Signs arbitrary claims (tests use it for expired or foreign tokens).
    pub fn sign(&self, claims: &impl serde::Serialize) -> String {
        let key = self.keys.signing();
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(key.kid().to_owned());
        jsonwebtoken::encode(&header, claims, &key.encoding_key())
            .expect("an Ed25519 key signs any claims")
    }
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
