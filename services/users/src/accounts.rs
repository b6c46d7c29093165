//! Accounts: argon2id passwords, logging in, refresh-token rotation, and the demo seed.

use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use shopmesh_identity::{IssuedToken, Role, TokenIssuer};
use tokio::sync::Semaphore;

use crate::config::AccountsConfig;
use crate::domain::UserFields;
use crate::error::UsersError;
use crate::service_clients::ServiceClients;
use crate::store::{RefreshTokenHash, UserRecord, UserStore};
use shopmesh_common::idempotency::HeldKey;

/// The password of every demo account.
pub const DEMO_PASSWORD: &str = "shopmesh-demo";

/// The demo accounts: the seed's three shoppers (ids 1 to 3, as the earlier seed had them)
/// and an admin.
pub const DEMO_ACCOUNTS: [(Option<i64>, &str, &str, Role); 4] = [
    (Some(1), "Alice Johnson", "alice@example.com", Role::User),
    (Some(2), "Bob Smith", "bob@example.com", Role::User),
    (Some(3), "Charlie Brown", "charlie@example.com", Role::User),
    (None, "Admin", "admin@example.com", Role::Admin),
];

/// Hashes and checks passwords with argon2id at OWASP's recommended cost (19 MiB, 2 passes,
/// 1 lane), on blocking threads, at most one hash per core at a time so floods queue instead
/// of starving the rest of the service. New hashes (sign-ups) take at most half the cores,
/// so a flood of sign-ups leaves log-ins a core of their own.
pub struct Passwords {
    argon2: Argon2<'static>,
    /// Checked when an email has no account, so that an unknown email costs as much time as
    /// a wrong password.
    dummy: String,
    permits: Semaphore,
    new_hash_permits: Semaphore,
}

/// Each argon2 hash allocates its 19 MiB afresh. glibc raises its mmap threshold to the size
/// of the first large block freed, after which such blocks come from per-thread arenas and
/// are kept: 20 concurrent log-ins left the service at 387 MiB. A fixed threshold keeps them
/// mmapped, so each is returned to the system when the hash is done.
fn return_large_blocks_to_the_system() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: mallopt only sets an allocator parameter; it is called once, before any
        // password is hashed.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 1024 * 1024);
        }
    });
}

impl Passwords {
    /// The hasher, with its dummy hash computed.
    pub fn new() -> Self {
        return_large_blocks_to_the_system();
        let params = Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters");
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let salt = SaltString::generate(&mut OsRng);
        let dummy = argon2
            .hash_password(b"no account has this password", &salt)
            .expect("argon2 hashes")
            .to_string();
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Self {
            argon2,
            dummy,
            permits: Semaphore::new(cores),
            new_hash_permits: Semaphore::new((cores / 2).max(1)),
        }
    }

    /// The PHC string of `password` with a fresh salt.
    pub async fn hash(self: &Arc<Self>, password: String) -> Result<String, UsersError> {
        let _new_hash = self
            .new_hash_permits
            .acquire()
            .await
            .map_err(|e| UsersError::Hashing(e.to_string()))?;
        let this = self.clone();
        self.blocking(move || {
            let salt = SaltString::generate(&mut OsRng);
            this.argon2
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| UsersError::Hashing(e.to_string()))
        })
        .await
    }

    /// Whether `password` matches `hash`; with no hash, checks the dummy and answers `false`.
    pub async fn verify(
        self: &Arc<Self>,
        hash: Option<String>,
        password: String,
    ) -> Result<bool, UsersError> {
        let this = self.clone();
        self.blocking(move || {
            let (phc, real) = match &hash {
                Some(h) => (h.as_str(), true),
                None => (this.dummy.as_str(), false),
            };
            let parsed = PasswordHash::new(phc).map_err(|e| UsersError::Hashing(e.to_string()))?;
            let matches = this
                .argon2
                .verify_password(password.as_bytes(), &parsed)
                .is_ok();
            Ok(real && matches)
        })
        .await
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, UsersError> + Send + 'static,
    ) -> Result<T, UsersError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| UsersError::Hashing(e.to_string()))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| UsersError::Hashing(e.to_string()))?
    }
}

impl Default for Passwords {
    fn default() -> Self {
        Self::new()
    }
}

/// What a log-in or refresh answers.
#[derive(Debug, Clone)]
pub struct Tokens {
    /// The signed access token.
    pub access: IssuedToken,
    /// The opaque refresh token (only its hash is stored).
    pub refresh: String,
}

/// Sign-up, log-in, refresh and log-out over the [`UserStore`].
#[derive(Clone)]
pub struct Accounts {
    store: UserStore,
    passwords: Arc<Passwords>,
    issuer: TokenIssuer,
    refresh_ttl: Duration,
    service_clients: ServiceClients,
}

impl Accounts {
    /// Accounts in `store`, tokens from `issuer`, as `config` says.
    pub fn new(store: UserStore, issuer: TokenIssuer, config: &AccountsConfig) -> Self {
        Self {
            store,
            passwords: Arc::new(Passwords::new()),
            issuer,
            refresh_ttl: config.refresh_ttl,
            service_clients: config.service_clients.clone(),
        }
    }

    /// A service token for the platform service `client_id`, if `secret` is its secret.
    pub fn issue_service_token(
        &self,
        client_id: &str,
        secret: &str,
    ) -> Result<IssuedToken, UsersError> {
        if self.service_clients.authenticate(client_id, secret) {
            Ok(self.issuer.issue_service(client_id))
        } else {
            Err(UsersError::InvalidClientCredentials)
        }
    }

    /// The token issuer (its keys are the JWKS).
    pub fn issuer(&self) -> &TokenIssuer {
        &self.issuer
    }

    /// Creates a `user` account, answering `key` with it.
    pub async fn sign_up(
        &self,
        fields: &UserFields,
        password: String,
        key: Option<&HeldKey>,
    ) -> Result<UserRecord, UsersError> {
        let hash = self.passwords.hash(password).await?;
        self.store
            .create(fields, &hash, Role::User, None, key)
            .await
    }

    /// Checks an email and password; always one argon2 verification, whether the email has an
    /// account or not, and one answer for both failures.
    pub async fn log_in(&self, email: &str, password: String) -> Result<Tokens, UsersError> {
        let account = self
            .store
            .credentials(&crate::domain::normalize_email(email))
            .await?;
        let hash = account.as_ref().and_then(|a| a.password_hash.clone());
        let matches = self.passwords.verify(hash, password).await?;
        match account {
            Some(a) if matches => self.start_family(a.id, a.role).await,
            _ => Err(UsersError::InvalidCredentials),
        }
    }

    /// Uses `refresh` up and answers its successor (reuse revokes the family).
    pub async fn refresh(&self, refresh: &str) -> Result<Tokens, UsersError> {
        let next = new_refresh_token();
        let (user_id, role) = self
            .store
            .rotate_refresh(
                &RefreshTokenHash::of(refresh),
                &RefreshTokenHash::of(&next),
                self.refresh_ttl,
            )
            .await?;
        Ok(Tokens {
            access: self.issuer.issue(user_id, role),
            refresh: next,
        })
    }

    /// Revokes the family of `refresh`; unknown tokens are ignored.
    pub async fn log_out(&self, refresh: &str) -> Result<(), UsersError> {
        self.store
            .revoke_family(&RefreshTokenHash::of(refresh))
            .await
    }

    async fn start_family(&self, user_id: i64, role: Role) -> Result<Tokens, UsersError> {
        let refresh = new_refresh_token();
        self.store
            .insert_refresh(
                &RefreshTokenHash::of(&refresh),
                &uuid::Uuid::new_v4(),
                user_id,
                self.refresh_ttl,
            )
            .await?;
        Ok(Tokens {
            access: self.issuer.issue(user_id, role),
            refresh,
        })
    }

    /// Creates the demo accounts that do not exist yet (hashing only for those).
    pub async fn seed_demo(&self) -> Result<(), UsersError> {
        for (id, name, email, role) in DEMO_ACCOUNTS {
            if self.store.credentials(email).await?.is_some() {
                continue;
            }
            let hash = self.passwords.hash(DEMO_PASSWORD.to_owned()).await?;
            let fields = UserFields {
                name: name.to_owned(),
                email: email.to_owned(),
            };
            match self.store.create(&fields, &hash, role, id, None).await {
                Ok(_) | Err(UsersError::DuplicateEmail(_)) => {}
                Err(e) => return Err(e),
            }
        }
        tracing::info!("demo accounts seeded (password {DEMO_PASSWORD})");
        Ok(())
    }
}

/// 256 random bits, base64url.
fn new_refresh_token() -> String {
    let mut bytes = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .expect("the system RNG works");
    URL_SAFE_NO_PAD.encode(bytes)
}
