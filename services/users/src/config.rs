//! Typed configuration of the users service (seed names, docker-compose defaults).

use std::path::PathBuf;
use std::time::Duration;

use shopmesh_common::auth::AuthConfig;
use shopmesh_common::config::{ConfigError, Env, SecretUrl, mysql_url, redis_url};
use shopmesh_common::http::HttpConfig;
use shopmesh_common::near_cache::MemoryTierConfig;
use shopmesh_identity::{KeyRing, SigningKey, TokenPolicy};

use crate::service_clients::ServiceClients;

/// Where the signing key comes from.
#[derive(Clone)]
pub enum SigningKeySource {
    /// A PKCS#8 PEM from a secret (`AUTH_SIGNING_KEY`, or the file `AUTH_SIGNING_KEY_FILE`),
    /// with retired keys still published (`AUTH_RETIRED_KEY_FILES`, comma-separated files).
    Secret {
        /// The signing key.
        signing: SigningKey,
        /// Retired key files.
        retired: Vec<PathBuf>,
    },
    /// Development only: generated on first start into this folder (`AUTH_DEV_KEY_DIR`).
    Development(PathBuf),
}

impl std::fmt::Debug for SigningKeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Secret { signing, retired } => f
                .debug_struct("Secret")
                .field("kid", &signing.kid())
                .field("retired", retired)
                .finish(),
            Self::Development(dir) => f.debug_tuple("Development").field(dir).finish(),
        }
    }
}

impl SigningKeySource {
    fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let invalid = |key: &str, value: &str, reason: String| ConfigError {
            key: key.to_owned(),
            value: value.to_owned(),
            reason,
        };
        let signing = match (
            env.get("AUTH_SIGNING_KEY"),
            env.get("AUTH_SIGNING_KEY_FILE"),
        ) {
            (Some(pem), _) => Some(
                SigningKey::from_pem(&pem)
                    .map_err(|e| invalid("AUTH_SIGNING_KEY", "***", e.to_string()))?,
            ),
            (None, Some(path)) => Some(
                SigningKey::from_file(path.as_ref())
                    .map_err(|e| invalid("AUTH_SIGNING_KEY_FILE", &path, e.to_string()))?,
            ),
            (None, None) => None,
        };
        let retired = env
            .get("AUTH_RETIRED_KEY_FILES")
            .map(|v| v.split(',').map(|p| PathBuf::from(p.trim())).collect())
            .unwrap_or_default();
        match (signing, env.get("AUTH_DEV_KEY_DIR")) {
            (Some(signing), _) => Ok(Self::Secret { signing, retired }),
            (None, Some(dir)) => Ok(Self::Development(PathBuf::from(dir))),
            (None, None) => Err(invalid(
                "AUTH_SIGNING_KEY_FILE",
                "",
                "no signing key: set AUTH_SIGNING_KEY_FILE (or AUTH_SIGNING_KEY) from a secret, \
                 or AUTH_DEV_KEY_DIR for a development key generated on first start"
                    .into(),
            )),
        }
    }

    /// The key ring: the signing key and the retired keys.
    pub fn load(&self) -> anyhow::Result<KeyRing> {
        match self {
            Self::Secret { signing, retired } => {
                let retired = retired
                    .iter()
                    .map(|p| SigningKey::from_file(p))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(KeyRing::new(signing.clone(), retired))
            }
            Self::Development(dir) => Ok(KeyRing::load_or_generate(dir)?),
        }
    }
}

/// Accounts, tokens and log-in limits.
#[derive(Debug, Clone)]
pub struct AccountsConfig {
    /// The signing key.
    pub keys: SigningKeySource,
    /// `iss`, `aud` and access-token lifetime (`AUTH_ISSUER`, `AUTH_AUDIENCE`,
    /// `AUTH_ACCESS_TOKEN_TTL_SECS`, 900).
    pub policy: TokenPolicy,
    /// Refresh-token lifetime (`AUTH_REFRESH_TOKEN_TTL_SECS`, 30 days).
    pub refresh_ttl: Duration,
    /// Seed the demo users and the admin, password `shopmesh-demo` (`DEMO_SEED`, off).
    pub demo_seed: bool,
    /// Failed log-ins for one account from one address before that address is locked out of
    /// it for a while (`LOGIN_MAX_FAILURES`, 5).
    pub max_failures_per_account_and_address: u32,
    /// Failed log-ins for one account from all addresses before it is locked for a while,
    /// except for addresses it logged in from before (`LOGIN_MAX_FAILURES_PER_ACCOUNT`, 50).
    pub max_failures_per_account: u32,
    /// Failed log-ins from one address before it is locked for a while
    /// (`LOGIN_MAX_FAILURES_PER_ADDRESS`, 20).
    pub max_failures_per_address: u32,
    /// The first lock; each further failure doubles it, up to 15 minutes
    /// (`LOGIN_LOCK_SECS`, 30).
    pub lock: Duration,
    /// Sign-ups one address may make per window (`SIGNUP_MAX_PER_ADDRESS`, 10): each costs
    /// an argon2 hash.
    pub max_sign_ups_per_address: u32,
    /// The sign-up window (`SIGNUP_WINDOW_SECS`, 3600).
    pub sign_up_window: Duration,
    /// Peers whose `X-Forwarded-For` names the client (`LOGIN_TRUSTED_PROXIES`, CIDRs; empty:
    /// none, set it to the gateway's address).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The platform services that may get a service token (`SERVICE_CLIENTS`,
    /// `id=secret,…`, secrets of 32 characters or more; empty: none).
    pub service_clients: ServiceClients,
}

impl AccountsConfig {
    fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let platform = AuthConfig::from_env(env)?;
        let trusted_proxies = shopmesh_common::config::cidrs(env, "LOGIN_TRUSTED_PROXIES")?;
        Ok(Self {
            keys: SigningKeySource::from_env(env)?,
            policy: TokenPolicy {
                issuer: platform.issuer,
                audience: platform.audience,
                access_ttl: Duration::from_secs(env.parse_or("AUTH_ACCESS_TOKEN_TTL_SECS", 900)?),
            },
            refresh_ttl: Duration::from_secs(
                env.parse_or("AUTH_REFRESH_TOKEN_TTL_SECS", 30 * 24 * 3600)?,
            ),
            demo_seed: env.parse_or("DEMO_SEED", false)?,
            max_failures_per_account_and_address: env.parse_or("LOGIN_MAX_FAILURES", 5)?,
            max_failures_per_account: env.parse_or("LOGIN_MAX_FAILURES_PER_ACCOUNT", 50)?,
            max_sign_ups_per_address: env.parse_or("SIGNUP_MAX_PER_ADDRESS", 10)?,
            sign_up_window: Duration::from_secs(env.parse_or("SIGNUP_WINDOW_SECS", 3600)?),
            max_failures_per_address: env.parse_or("LOGIN_MAX_FAILURES_PER_ADDRESS", 20)?,
            lock: Duration::from_secs(env.parse_or("LOGIN_LOCK_SECS", 30)?),
            trusted_proxies,
            service_clients: ServiceClients::parse(&env.string_or("SERVICE_CLIENTS", "")).map_err(
                |reason| ConfigError {
                    key: "SERVICE_CLIENTS".into(),
                    value: "***".into(),
                    reason,
                },
            )?,
        })
    }
}

/// Everything the users service needs to start.
#[derive(Debug, Clone)]
pub struct UsersConfig {
    /// HTTP port (`PORT`, 3001).
    pub port: u16,
    /// Limits of the HTTP listener (`HTTP_HEADER_READ_TIMEOUT_MS`, `HTTP_IDLE_TIMEOUT_SECS`,
    /// `HTTP_MAX_CONNECTIONS`).
    pub http: HttpConfig,
    /// MySQL URL (`DATABASE_URL` or `DB_*`, database `users_db`).
    pub database_url: SecretUrl,
    /// Pool size (`DB_POOL_SIZE`, 10).
    pub db_pool_size: u32,
    /// How long a request waits for a connection (`DB_ACQUIRE_TIMEOUT_MS`, 2000).
    pub db_acquire_timeout: Duration,
    /// Redis URL (`REDIS_URL`, or `REDIS_HOST`/`REDIS_PORT`/`REDIS_PASSWORD`).
    pub redis_url: SecretUrl,
    /// Cache TTL (`USER_CACHE_TTL_SECS`, 600).
    pub cache_ttl: Duration,
    /// Longest wait for Redis before serving uncached (`REDIS_TIMEOUT_MS`, 250).
    pub redis_timeout: Duration,
    /// Prefix of the cache keys (`CACHE_PREFIX`, empty: keys are `user:{id}`). Set it when
    /// several deployments with different databases share one Redis.
    pub cache_prefix: String,
    /// The tier in process memory in front of Redis, and where changes are announced.
    pub memory: MemoryTierConfig,
    /// Which tokens are accepted (the platform's, verified with the local keys, and an
    /// optional external issuer's).
    pub auth: AuthConfig,
    /// Accounts and tokens.
    pub accounts: AccountsConfig,
}

impl UsersConfig {
    /// Reads the configuration from `env`.
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        Ok(Self {
            port: env.parse_or("PORT", 3001)?,
            http: HttpConfig::from_env(env)?,
            database_url: mysql_url(env, "users_db")?,
            db_pool_size: env.parse_or("DB_POOL_SIZE", 10)?,
            db_acquire_timeout: Duration::from_millis(env.parse_or("DB_ACQUIRE_TIMEOUT_MS", 2000)?),
            redis_url: redis_url(env)?,
            cache_ttl: Duration::from_secs(env.parse_or("USER_CACHE_TTL_SECS", 600)?),
            redis_timeout: Duration::from_millis(env.parse_or("REDIS_TIMEOUT_MS", 250)?),
            cache_prefix: env.string_or("CACHE_PREFIX", ""),
            memory: MemoryTierConfig::from_env(env, "user")?,
            auth: AuthConfig::from_env(env)?,
            accounts: AccountsConfig::from_env(env)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn dev() -> HashMap<String, String> {
        [("AUTH_DEV_KEY_DIR".to_owned(), "target/dev-keys".to_owned())].into()
    }

    #[test]
    fn refuses_to_start_without_a_signing_key() {
        let err = UsersConfig::from_env(&HashMap::new()).unwrap_err();
        assert_eq!(err.key, "AUTH_SIGNING_KEY_FILE");
        assert!(err.reason.contains("no signing key"), "{err}");
        let env: HashMap<String, String> =
            [("AUTH_SIGNING_KEY".to_owned(), "not a key".to_owned())].into();
        let err = UsersConfig::from_env(&env).unwrap_err();
        assert_eq!(err.key, "AUTH_SIGNING_KEY");
        assert!(
            !err.to_string().contains("not a key"),
            "the secret is not echoed: {err}"
        );
    }

    #[test]
    fn defaults() {
        let c = UsersConfig::from_env(&dev()).unwrap();
        assert!(!c.accounts.demo_seed, "demo users only when asked for");
        assert_eq!(c.accounts.policy.access_ttl, Duration::from_secs(900));
        assert_eq!(c.port, 3001);
        assert!(c.database_url.expose().ends_with("/users_db"));
        assert_eq!(c.cache_ttl, Duration::from_secs(600));
        assert_eq!(c.redis_url.expose(), "redis://localhost:6379/");
        assert_eq!(c.cache_prefix, "", "keys are user:{{id}} by default");
        let mut env = dev();
        env.insert("CACHE_PREFIX".to_owned(), "staging:".to_owned());
        assert_eq!(
            UsersConfig::from_env(&env).unwrap().cache_prefix,
            "staging:"
        );
    }
}
