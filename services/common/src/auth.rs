//! How every service verifies access tokens: which issuers it trusts, for which audience, and
//! where their keys are. Generated REST routes find the verifier in the request data
//! ([`AuthConfig::verifier`] goes into `EndpointExt::data`).

use std::sync::Arc;
use std::time::Duration;

use shopmesh_identity::{
    JwksSource, KeyRing, RoleMapping, TokenPolicy, TokenVerifier, TrustedIssuer,
};

use crate::config::{ConfigError, Env};

/// An external OpenID Connect issuer whose tokens are accepted too (Keycloak, Auth0 …). Its
/// tokens' `sub` must be a shopmesh user id; they are shoppers, whatever role they claim,
/// unless `admin_role` names the external role that makes an admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcIssuer {
    /// `iss` (`AUTH_OIDC_ISSUER`).
    pub issuer: String,
    /// `aud` (`AUTH_OIDC_AUDIENCE`).
    pub audience: String,
    /// Its JWKS (`AUTH_OIDC_JWKS_URL`).
    pub jwks_url: String,
    /// The value of its tokens' `role` claim (or an entry of their `roles` list) that makes
    /// an admin (`AUTH_OIDC_ADMIN_ROLE`, unset: none does).
    pub admin_role: Option<String>,
}

/// Who a service trusts to vouch for callers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// `iss` of the platform's tokens (`AUTH_ISSUER`, `shopmesh-users`).
    pub issuer: String,
    /// `aud` of the platform's tokens (`AUTH_AUDIENCE`, `shopmesh`).
    pub audience: String,
    /// The users service's key set (`AUTH_JWKS_URL`,
    /// `http://localhost:3001/.well-known/jwks.json`).
    pub jwks_url: String,
    /// Least time between two fetches of a key set, however many unknown `kid`s arrive
    /// (`AUTH_JWKS_MIN_REFETCH_SECS`, 5): a new signing key is accepted within this long of
    /// its first token.
    pub min_refetch: Duration,
    /// An external issuer, when `AUTH_OIDC_ISSUER` is set.
    pub oidc: Option<OidcIssuer>,
}

impl AuthConfig {
    /// Reads the configuration from `env`.
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let defaults = TokenPolicy::platform_default();
        let oidc = match env.get("AUTH_OIDC_ISSUER") {
            None => None,
            Some(issuer) => {
                let required = |key: &str| {
                    env.get(key).ok_or_else(|| ConfigError {
                        key: key.to_owned(),
                        value: String::new(),
                        reason: "is required when AUTH_OIDC_ISSUER is set".into(),
                    })
                };
                Some(OidcIssuer {
                    issuer,
                    audience: required("AUTH_OIDC_AUDIENCE")?,
                    jwks_url: required("AUTH_OIDC_JWKS_URL")?,
                    admin_role: env.get("AUTH_OIDC_ADMIN_ROLE").filter(|r| !r.is_empty()),
                })
            }
        };
        Ok(Self {
            issuer: env.string_or("AUTH_ISSUER", &defaults.issuer),
            audience: env.string_or("AUTH_AUDIENCE", &defaults.audience),
            jwks_url: env.string_or(
                "AUTH_JWKS_URL",
                "http://localhost:3001/.well-known/jwks.json",
            ),
            min_refetch: Duration::from_secs(env.parse_or("AUTH_JWKS_MIN_REFETCH_SECS", 5)?),
            oidc,
        })
    }

    /// A verifier fetching the platform's keys from [`AuthConfig::jwks_url`].
    pub fn verifier(&self) -> TokenVerifier {
        self.verifier_over(JwksSource::remote(&self.jwks_url, self.min_refetch))
    }

    /// A verifier holding the platform's keys itself (the users service, which signs).
    pub fn verifier_with_keys(&self, keys: Arc<KeyRing>) -> TokenVerifier {
        self.verifier_over(JwksSource::Local(keys))
    }

    fn verifier_over(&self, platform: JwksSource) -> TokenVerifier {
        let mut issuers = vec![TrustedIssuer {
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            keys: platform,
            roles: RoleMapping::Platform,
        }];
        if let Some(oidc) = &self.oidc {
            issuers.push(TrustedIssuer {
                issuer: oidc.issuer.clone(),
                audience: oidc.audience.clone(),
                keys: JwksSource::remote(&oidc.jwks_url, self.min_refetch),
                roles: RoleMapping::External {
                    admin_role: oidc.admin_role.clone(),
                },
            });
        }
        TokenVerifier::new(issuers)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn defaults_and_the_external_issuer() {
        let c = AuthConfig::from_env(&HashMap::new()).unwrap();
        assert_eq!(c.issuer, "shopmesh-users");
        assert_eq!(c.audience, "shopmesh");
        assert!(c.oidc.is_none());
        let partial: HashMap<String, String> = [(
            "AUTH_OIDC_ISSUER".to_owned(),
            "https://idp.example".to_owned(),
        )]
        .into();
        let err = AuthConfig::from_env(&partial).unwrap_err();
        assert_eq!(err.key, "AUTH_OIDC_AUDIENCE");
    }
}
