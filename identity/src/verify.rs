//! Verifying access tokens against trusted issuers' keys.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use crate::{AccessToken, AuthError, KeyRing, Principal, Role};

/// Algorithms a token may be signed with: the platform signs EdDSA; ES256 is accepted from an
/// external issuer whose JWKS publishes P-256 keys. Never `none`, never HMAC.
const ACCEPTED: [Algorithm; 2] = [Algorithm::EdDSA, Algorithm::ES256];

/// Clock skew tolerated on `exp`, `nbf` and `iat`.
const LEEWAY_SECS: u64 = 30;

/// The longest lifetime (`exp − iat`) a token may claim: a day. The platform's own last 15
/// minutes; identity providers issue hours at most. A token claiming more was not issued by
/// a sane issuer, or was forged with a key that should not exist.
pub const MAX_LIFETIME_SECS: u64 = 24 * 3600;

/// What the verifier reads of a token's claims. `iss`, `aud`, `exp` and `nbf` are checked by
/// the JWT library (`aud` may be a string or a list, as identity providers issue both);
/// `role` is read as text, since what it means depends on who issued it.
#[derive(serde::Deserialize)]
struct ReceivedClaims {
    sub: String,
    #[serde(default)]
    role: Option<serde_json::Value>,
    #[serde(default)]
    roles: Option<serde_json::Value>,
    iat: Option<u64>,
    exp: u64,
}

/// How an issuer's tokens map to the platform's roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleMapping {
    /// The platform's own tokens: `role` is `user` or `admin`, as the users service signed it.
    Platform,
    /// An external issuer: every token is a shopper, unless its `role` claim equals, or its
    /// `roles` claim lists, this value (`AUTH_OIDC_ADMIN_ROLE`; `None`: nobody is an admin).
    External {
        /// The external role that makes an admin.
        admin_role: Option<String>,
    },
}

impl RoleMapping {
    fn role_of(&self, claims: &ReceivedClaims) -> Result<crate::Role, AuthError> {
        match self {
            Self::Platform => match &claims.role {
                None => Ok(crate::Role::User),
                Some(value) => {
                    serde_json::from_value(value.clone()).map_err(|_| AuthError::Malformed)
                }
            },
            Self::External { admin_role } => {
                let Some(admin) = admin_role else {
                    return Ok(crate::Role::User);
                };
                let is = |v: &serde_json::Value| v.as_str() == Some(admin.as_str());
                let listed = claims
                    .roles
                    .as_ref()
                    .and_then(serde_json::Value::as_array)
                    .is_some_and(|roles| roles.iter().any(is));
                Ok(if listed || claims.role.as_ref().is_some_and(is) {
                    crate::Role::Admin
                } else {
                    crate::Role::User
                })
            }
        }
    }
}

/// Where an issuer's public keys come from.
#[derive(Clone)]
pub enum JwksSource {
    /// Keys held in this process (the users service verifies with its own ring).
    Local(Arc<KeyRing>),
    /// A JWKS URL, fetched on first use and again when a token names an unknown `kid`, at most
    /// once per `min_refetch`.
    Remote(Arc<RemoteJwks>),
}

impl JwksSource {
    /// Keys fetched from `url`.
    pub fn remote(url: impl Into<String>, min_refetch: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("a default reqwest client builds");
        Self::Remote(Arc::new(RemoteJwks {
            url: url.into(),
            http,
            min_refetch,
            keys: RwLock::new(HashMap::new()),
            fetch: tokio::sync::Mutex::new(None),
        }))
    }

    fn find(&self, kid: &str) -> Option<(DecodingKey, Algorithm)> {
        match self {
            Self::Local(ring) => ring
                .keys()
                .find(|k| k.kid() == kid)
                .map(|k| (k.decoding_key(), Algorithm::EdDSA)),
            Self::Remote(remote) => remote.keys.read().ok()?.get(kid).cloned(),
        }
    }
}

/// A JWKS behind a URL, with its cache.
pub struct RemoteJwks {
    url: String,
    http: reqwest::Client,
    min_refetch: Duration,
    keys: RwLock<HashMap<String, (DecodingKey, Algorithm)>>,
    /// When the last fetch was tried; held while fetching so concurrent misses fetch once.
    fetch: tokio::sync::Mutex<Option<Instant>>,
}

impl RemoteJwks {
    /// Refetches unless that happened within `min_refetch`. `Err` when the set was never
    /// fetched and cannot be now. The work runs as a task of its own: a caller that gives up
    /// (a cancelled request) must not abandon it half-way, or later callers would find the
    /// attempt recorded and no keys until `min_refetch` passed.
    async fn refresh(self: &Arc<Self>) -> Result<(), AuthError> {
        let this = self.clone();
        tokio::spawn(async move { this.refresh_now().await })
            .await
            .unwrap_or(Err(AuthError::KeysUnavailable))
    }

    async fn refresh_now(&self) -> Result<(), AuthError> {
        let mut last = self.fetch.lock().await;
        let have_keys = self.keys.read().is_ok_and(|k| !k.is_empty());
        if last.is_some_and(|t| t.elapsed() < self.min_refetch) {
            return if have_keys {
                Ok(())
            } else {
                Err(AuthError::KeysUnavailable)
            };
        }
        let fetched = self.fetch_set().await;
        *last = Some(Instant::now());
        match fetched {
            Ok(keys) => {
                tracing::info!(url = %self.url, keys = keys.len(), "fetched the token keys");
                if let Ok(mut held) = self.keys.write() {
                    *held = keys;
                }
                Ok(())
            }
            Err(error) => {
                tracing::warn!(url = %self.url, %error, "could not fetch the token keys");
                if have_keys {
                    Ok(())
                } else {
                    Err(AuthError::KeysUnavailable)
                }
            }
        }
    }

    async fn fetch_set(&self) -> Result<HashMap<String, (DecodingKey, Algorithm)>, String> {
        let set: JwkSet = self
            .http
            .get(&self.url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        Ok(set
            .keys
            .iter()
            .filter_map(|jwk| {
                let kid = jwk.common.key_id.clone()?;
                let alg = jwk
                    .common
                    .key_algorithm?
                    .to_string()
                    .parse::<Algorithm>()
                    .ok()?;
                let key = DecodingKey::from_jwk(jwk).ok()?;
                ACCEPTED.contains(&alg).then_some((kid, (key, alg)))
            })
            .collect())
    }
}

fn raw_alg(token: &str) -> Option<String> {
    use base64::Engine;
    let header = token.split('.').next()?;
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .ok()?;
    let value: serde_json::Value = serde_json::from_slice(&json).ok()?;
    value.get("alg")?.as_str().map(str::to_owned)
}

/// An issuer whose tokens are accepted: its `iss`, the `aud` its tokens must carry for this
/// platform, and its keys.
#[derive(Clone)]
pub struct TrustedIssuer {
    /// Expected `iss`.
    pub issuer: String,
    /// Expected `aud`.
    pub audience: String,
    /// Its keys.
    pub keys: JwksSource,
    /// What its `role` claims mean here.
    pub roles: RoleMapping,
}

/// Tokens this process verified already, until they expire. A client sends the same access
/// token with every request for its lifetime, and verifying its signature costs more than the
/// rest of a cached read; only tokens that passed every check are kept.
struct Verified {
    entries: RwLock<HashMap<String, (Principal, u64)>>,
    hits: AtomicU64,
}

/// Tokens kept at most; past it, the expired ones go, and if that is not enough, all.
const VERIFIED_CAPACITY: usize = 10_000;

impl Verified {
    fn get(&self, token: &str) -> Option<Principal> {
        let now = crate::tokens::now_secs();
        let entries = self.entries.read().ok()?;
        let (principal, until) = entries.get(token)?;
        (*until > now).then(|| {
            self.hits.fetch_add(1, Ordering::Relaxed);
            principal.clone()
        })
    }

    fn keep(&self, principal: &Principal, until: u64) {
        if let Ok(mut entries) = self.entries.write() {
            if entries.len() >= VERIFIED_CAPACITY {
                let now = crate::tokens::now_secs();
                entries.retain(|_, (_, u)| *u > now);
                if entries.len() >= VERIFIED_CAPACITY {
                    entries.clear();
                }
            }
            entries.insert(
                principal.token.expose().to_owned(),
                (principal.clone(), until),
            );
        }
    }
}

/// Turns bearer tokens into [`Principal`]s. Cheap to clone.
#[derive(Clone)]
pub struct TokenVerifier {
    issuers: Arc<Vec<TrustedIssuer>>,
    verified: Arc<Verified>,
}

impl TokenVerifier {
    /// Accepts tokens of any of `issuers`.
    pub fn new(issuers: Vec<TrustedIssuer>) -> Self {
        Self {
            issuers: Arc::new(issuers),
            verified: Arc::new(Verified {
                entries: RwLock::new(HashMap::new()),
                hits: AtomicU64::new(0),
            }),
        }
    }

    /// How many verifications were answered from the tokens verified before.
    pub fn cache_hits(&self) -> u64 {
        self.verified.hits.load(Ordering::Relaxed)
    }

    /// Checks `token`: shape, algorithm, key, signature, issuer, audience, expiry. A token
    /// that passed once is answered from memory until it expires.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        if let Some(principal) = self.verified.get(token) {
            return Ok(principal);
        }
        let (principal, expires) = self.check(token).await?;
        // Kept as long as the checks would pass: until `exp` plus the tolerated skew.
        self.verified.keep(&principal, expires + LEEWAY_SECS);
        Ok(principal)
    }

    async fn check(&self, token: &str) -> Result<(Principal, u64), AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| {
            // A well-formed header naming an algorithm the library does not know (`none`)
            // is refused for its algorithm, not its shape.
            if raw_alg(token).is_some() {
                AuthError::Algorithm
            } else {
                AuthError::Malformed
            }
        })?;
        if !ACCEPTED.contains(&header.alg) {
            return Err(AuthError::Algorithm);
        }
        let kid = header.kid.ok_or(AuthError::UnknownKey)?;
        let (issuer, key, alg) = match self.find(&kid) {
            Some(found) => found,
            None => {
                self.refresh_remote().await?;
                self.find(&kid).ok_or(AuthError::UnknownKey)?
            }
        };
        if alg != header.alg {
            return Err(AuthError::Algorithm);
        }
        let mut validation = Validation::new(alg);
        validation.leeway = LEEWAY_SECS;
        validation.set_issuer(&[&issuer.issuer]);
        validation.set_audience(&[&issuer.audience]);
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub", "iat"]);
        let claims = jsonwebtoken::decode::<ReceivedClaims>(token, &key, &validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::ImmatureSignature => AuthError::NotYetValid,
                ErrorKind::InvalidIssuer => AuthError::Issuer,
                ErrorKind::InvalidAudience => AuthError::Audience,
                ErrorKind::InvalidSignature => AuthError::Signature,
                ErrorKind::InvalidAlgorithm => AuthError::Algorithm,
                _ => AuthError::Malformed,
            })?
            .claims;
        let issued = claims.iat.ok_or(AuthError::Malformed)?;
        if issued > crate::tokens::now_secs() + LEEWAY_SECS {
            return Err(AuthError::NotYetValid);
        }
        if claims.exp.saturating_sub(issued) > MAX_LIFETIME_SECS {
            return Err(AuthError::Lifetime);
        }
        let role = issuer.roles.role_of(&claims)?;
        // A service's subject is its client id, a person's their numeric id; neither may
        // pass for the other.
        let user_id = match (role, claims.sub.strip_prefix(crate::SERVICE_SUBJECT_PREFIX)) {
            (Role::Service, Some(client)) if !client.is_empty() => 0,
            (Role::Service, _) | (_, Some(_)) => return Err(AuthError::Malformed),
            (_, None) => claims
                .sub
                .parse()
                .ok()
                .filter(|id| *id > 0)
                .ok_or(AuthError::Malformed)?,
        };
        let principal = Principal {
            user_id,
            role,
            token: AccessToken::new(token),
        };
        Ok((principal, claims.exp))
    }

    fn find(&self, kid: &str) -> Option<(&TrustedIssuer, DecodingKey, Algorithm)> {
        self.issuers
            .iter()
            .find_map(|i| i.keys.find(kid).map(|(key, alg)| (i, key, alg)))
    }

    /// Refetches every remote JWKS; unavailable only when no issuer could answer at all.
    async fn refresh_remote(&self) -> Result<(), AuthError> {
        let mut outcome = Err(AuthError::UnknownKey);
        for issuer in self.issuers.iter() {
            if let JwksSource::Remote(remote) = &issuer.keys {
                match remote.refresh().await {
                    Ok(()) => outcome = Ok(()),
                    Err(e) if outcome.is_err() => outcome = Err(e),
                    Err(_) => {}
                }
            }
        }
        match outcome {
            Err(AuthError::UnknownKey) => Ok(()),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;
    use crate::{AccessClaims, SigningKey, TokenIssuer, TokenPolicy};

    fn issuer() -> TokenIssuer {
        TokenIssuer::new(
            Arc::new(KeyRing::new(SigningKey::generate(), vec![])),
            TokenPolicy::platform_default(),
        )
    }

    fn verifier(issuer: &TokenIssuer) -> TokenVerifier {
        TokenVerifier::new(vec![TrustedIssuer {
            issuer: issuer.policy().issuer.clone(),
            audience: issuer.policy().audience.clone(),
            keys: JwksSource::Local(issuer.keys().clone()),
            roles: RoleMapping::Platform,
        }])
    }

    fn claims(issuer: &TokenIssuer) -> AccessClaims {
        let now = crate::tokens::now_secs();
        AccessClaims {
            sub: "7".into(),
            role: Role::User,
            iss: issuer.policy().issuer.clone(),
            aud: issuer.policy().audience.clone(),
            iat: now,
            exp: now + 60,
        }
    }

    #[tokio::test]
    async fn a_token_verifies_into_its_principal() {
        let issuer = issuer();
        let token = issuer.issue(7, Role::Admin);
        let p = verifier(&issuer).verify(&token.token).await.unwrap();
        assert_eq!((p.user_id, p.role), (7, Role::Admin));
        assert_eq!(p.token.expose(), token.token);
        assert_eq!(token.expires_in, 900);
    }

    #[tokio::test]
    async fn a_service_token_is_a_service_and_passes_only_service_checks() {
        let issuer = issuer();
        let token = issuer.issue_service("orders");
        let p = verifier(&issuer).verify(&token.token).await.unwrap();
        assert_eq!((p.user_id, p.role), (0, Role::Service));
        assert!(p.check_role(Role::Service).is_ok());
        assert!(p.check_role(Role::User).is_err());
        assert!(p.check_role(Role::Admin).is_err());
        assert!(!p.sees(1), "a service sees no user's data");
        let admin = verifier(&issuer)
            .verify(&issuer.issue(7, Role::Admin).token)
            .await
            .unwrap();
        assert!(admin.check_role(Role::Service).is_err());
        assert!(admin.check_role(Role::User).is_ok());
    }

    #[tokio::test]
    async fn a_subject_that_does_not_fit_its_role_is_malformed() {
        let issuer = issuer();
        let v = verifier(&issuer);
        let signed = |sub: &str, role: Role| {
            let mut c = claims(&issuer);
            c.sub = sub.into();
            c.role = role;
            issuer.sign(&c)
        };
        for (sub, role) in [
            ("7", Role::Service),
            ("service:", Role::Service),
            ("service:orders", Role::Admin),
            ("service:orders", Role::User),
            ("0", Role::User),
            ("-3", Role::Admin),
        ] {
            assert_eq!(
                v.verify(&signed(sub, role)).await.unwrap_err(),
                AuthError::Malformed,
                "{sub} as {role}"
            );
        }
    }

    #[tokio::test]
    async fn every_kind_of_bad_token_is_refused_with_its_reason() {
        let issuer = issuer();
        let v = verifier(&issuer);
        let good = issuer.issue(7, Role::User).token;
        let mut expired = claims(&issuer);
        expired.iat -= 3600;
        expired.exp -= 3600;
        let mut audience = claims(&issuer);
        audience.aud = "someone-else".into();
        let mut iss = claims(&issuer);
        iss.iss = "https://evil.example".into();
        let parts: Vec<&str> = good.split('.').collect();
        let tampered_claims = {
            let mut c = claims(&issuer);
            c.role = Role::Admin;
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).unwrap())
        };
        let tampered = format!("{}.{}.{}", parts[0], tampered_claims, parts[2]);
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
            parts[1]
        );
        let hs256 = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT","kid":"x"}"#),
            parts[1],
            parts[2]
        );
        let other_key = issuer_with_same_policy().issue(7, Role::User).token;
        let cases = [
            ("garbage", "not-a-jwt".to_owned(), AuthError::Malformed),
            ("expired", issuer.sign(&expired), AuthError::Expired),
            ("audience", issuer.sign(&audience), AuthError::Audience),
            ("issuer", issuer.sign(&iss), AuthError::Issuer),
            ("tampered", tampered, AuthError::Signature),
            ("alg none", none, AuthError::Algorithm),
            ("alg HS256", hs256, AuthError::Algorithm),
            ("unknown kid", other_key, AuthError::UnknownKey),
        ];
        for (what, token, expected) in cases {
            assert_eq!(v.verify(&token).await, Err(expected), "{what}");
        }
    }

    fn issuer_with_same_policy() -> TokenIssuer {
        issuer()
    }

    #[tokio::test]
    async fn a_verified_token_is_answered_from_memory_and_a_refused_one_never_is() {
        let issuer = issuer();
        let v = verifier(&issuer);
        let token = issuer.issue(7, Role::User).token;
        for _ in 0..3 {
            assert_eq!(v.verify(&token).await.unwrap().user_id, 7);
        }
        assert_eq!(v.cache_hits(), 2, "verified once, then remembered");
        // Another first character of the signature: still valid base64url, no longer valid.
        let at = token.rfind('.').unwrap() + 1;
        let first = &token[at..=at];
        let tampered = format!(
            "{}{}{}",
            &token[..at],
            if first == "A" { "B" } else { "A" },
            &token[at + 1..]
        );
        for _ in 0..2 {
            assert_eq!(v.verify(&tampered).await, Err(AuthError::Signature));
        }
        assert_eq!(v.cache_hits(), 2, "refusals are not remembered");
        let mut nearly_expired = claims(&issuer);
        nearly_expired.exp = crate::tokens::now_secs() - LEEWAY_SECS - 1;
        let expired = issuer.sign(&nearly_expired);
        assert_eq!(v.verify(&expired).await, Err(AuthError::Expired));
    }

    #[tokio::test]
    async fn retired_keys_still_verify_after_rotation() {
        let old = SigningKey::generate();
        let old_pem = old.to_pem();
        let before = TokenIssuer::new(
            Arc::new(KeyRing::new(old, vec![])),
            TokenPolicy::platform_default(),
        );
        let token = before.issue(3, Role::User).token;
        let rotated = TokenIssuer::new(
            Arc::new(KeyRing::new(
                SigningKey::generate(),
                vec![SigningKey::from_pem(&old_pem).unwrap()],
            )),
            TokenPolicy::platform_default(),
        );
        let v = verifier(&rotated);
        assert_eq!(v.verify(&token).await.unwrap().user_id, 3);
        let fresh = rotated.issue(4, Role::User).token;
        assert_eq!(v.verify(&fresh).await.unwrap().user_id, 4);
    }

    /// Claims as an issuer would write them, around `extra`.
    fn raw(issuer: &TokenIssuer, extra: serde_json::Value) -> String {
        let now = crate::tokens::now_secs();
        let mut claims = serde_json::json!({
            "sub": "7",
            "iss": issuer.policy().issuer,
            "aud": issuer.policy().audience,
            "iat": now,
            "exp": now + 60,
        });
        for (k, v) in extra.as_object().unwrap() {
            claims[k] = v.clone();
        }
        issuer.sign(&claims)
    }

    #[tokio::test]
    async fn time_claims_must_be_plausible() {
        let issuer = issuer();
        let v = verifier(&issuer);
        let now = crate::tokens::now_secs();
        let cases = [
            (
                "nbf ahead",
                serde_json::json!({"nbf": now + 600}),
                AuthError::NotYetValid,
            ),
            (
                "iat ahead",
                serde_json::json!({"iat": now + 600, "exp": now + 900}),
                AuthError::NotYetValid,
            ),
            (
                "a year long",
                serde_json::json!({"exp": now + 365 * 24 * 3600}),
                AuthError::Lifetime,
            ),
            (
                "no iat",
                serde_json::json!({"iat": null}),
                AuthError::Malformed,
            ),
        ];
        for (what, extra, expected) in cases {
            assert_eq!(
                v.verify(&raw(&issuer, extra)).await,
                Err(expected),
                "{what}"
            );
        }
        let fine = serde_json::json!({"nbf": now - 5, "exp": now + MAX_LIFETIME_SECS - 10});
        assert!(v.verify(&raw(&issuer, fine)).await.is_ok());
    }

    #[tokio::test]
    async fn an_audience_list_naming_the_platform_is_accepted() {
        let issuer = issuer();
        let v = verifier(&issuer);
        let listed = raw(
            &issuer,
            serde_json::json!({"aud": ["account", issuer.policy().audience]}),
        );
        assert_eq!(v.verify(&listed).await.unwrap().user_id, 7);
        let other = raw(&issuer, serde_json::json!({"aud": ["account", "billing"]}));
        assert_eq!(v.verify(&other).await, Err(AuthError::Audience));
    }

    #[tokio::test]
    async fn an_external_issuers_roles_mean_nothing_unless_mapped() {
        let external = issuer();
        let with = |roles: RoleMapping| {
            TokenVerifier::new(vec![TrustedIssuer {
                issuer: external.policy().issuer.clone(),
                audience: external.policy().audience.clone(),
                keys: JwksSource::Local(external.keys().clone()),
                roles,
            }])
        };
        let claims_admin = raw(&external, serde_json::json!({"role": "admin"}));
        let listed = raw(
            &external,
            serde_json::json!({"roles": ["staff", "shop-admin"]}),
        );
        let unmapped = with(RoleMapping::External { admin_role: None });
        assert_eq!(
            unmapped.verify(&claims_admin).await.unwrap().role,
            Role::User
        );
        assert_eq!(unmapped.verify(&listed).await.unwrap().role, Role::User);
        let mapped = with(RoleMapping::External {
            admin_role: Some("shop-admin".into()),
        });
        assert_eq!(mapped.verify(&claims_admin).await.unwrap().role, Role::User);
        assert_eq!(mapped.verify(&listed).await.unwrap().role, Role::Admin);
        // The platform's own tokens keep their role.
        assert_eq!(
            verifier(&external)
                .verify(&claims_admin)
                .await
                .unwrap()
                .role,
            Role::Admin
        );
    }

    #[tokio::test]
    async fn an_unreachable_jwks_is_unavailable_not_unauthenticated() {
        let issuer = issuer();
        let v = TokenVerifier::new(vec![TrustedIssuer {
            issuer: issuer.policy().issuer.clone(),
            audience: issuer.policy().audience.clone(),
            keys: JwksSource::remote("http://127.0.0.1:9/jwks.json", Duration::from_secs(30)),
            roles: RoleMapping::Platform,
        }]);
        let token = issuer.issue(1, Role::User).token;
        assert_eq!(v.verify(&token).await, Err(AuthError::KeysUnavailable));
    }
}
