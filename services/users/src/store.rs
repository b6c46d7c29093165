//! Users in MySQL, read through a Redis cache-aside layer and, in front of it, a tier in
//! process memory that every replica keeps coherent by following the changes the writers
//! announce (see [`shopmesh_common::near_cache`]).

use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use shopmesh_common::cache::RedisCache;
use shopmesh_common::idempotency::{HeldKey, IdempotencyKeys};
use shopmesh_common::near_cache::{ChangeChannel, MemoryTierConfig, NearCache};
use shopmesh_identity::Role;
use sqlx::MySqlPool;

use crate::domain::{UserFields, cache_key};
use crate::error::UsersError;

/// Migrations in `services/users/migrations`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A stored user, as cached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Email.
    pub email: String,
    /// Role.
    pub role: Role,
    /// Row version; grows on every write.
    pub version: u64,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

type UserRow = (i64, String, String, String, u64, NaiveDateTime);

impl From<UserRow> for UserRecord {
    fn from((id, name, email, role, version, created_at): UserRow) -> Self {
        Self {
            id,
            name,
            email,
            role: role_of(&role),
            version,
            created_at: created_at.and_utc(),
        }
    }
}

/// The column is an ENUM of exactly these two.
fn role_of(column: &str) -> Role {
    if column == "admin" {
        Role::Admin
    } else {
        Role::User
    }
}

const SELECT_USER: &str =
    "SELECT id, name, email, role, version, created_at FROM users WHERE id = ?";

/// What logging in needs of an account.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// User id.
    pub id: i64,
    /// Role.
    pub role: Role,
    /// argon2id PHC string; `None` for accounts that cannot log in.
    pub password_hash: Option<String>,
}

/// SHA-256 of a refresh token: what the database holds instead of the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshTokenHash([u8; 32]);

impl RefreshTokenHash {
    /// The hash of `token`.
    pub fn of(token: &str) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(digest.as_ref());
        Self(bytes)
    }
}

fn duplicate_email(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|c| c == "23000")
        && e.as_database_error()
            .is_some_and(|d| d.message().contains("uq_users_email"))
}

/// Users with cache-aside reads and refresh-on-write, announcing every write.
#[derive(Clone)]
pub struct UserStore {
    pool: MySqlPool,
    cache: RedisCache,
    ttl: Duration,
    key_prefix: String,
    memory: NearCache<i64, UserRecord>,
    changes: ChangeChannel,
}

impl UserStore {
    /// A store whose pool connects lazily (the service starts while MySQL is down).
    pub fn connect_lazy(
        url: &str,
        pool_size: u32,
        acquire_timeout: Duration,
        cache: RedisCache,
        ttl: Duration,
    ) -> Result<Self, sqlx::Error> {
        let pool = shopmesh_common::db::lazy_pool(url, pool_size, acquire_timeout)?;
        Ok(Self {
            pool,
            cache,
            ttl,
            key_prefix: String::new(),
            memory: NearCache::new(0, ttl),
            changes: ChangeChannel::new("user.changed"),
        })
    }

    /// Keeps users in process memory too, coherent with every other replica's writes (each
    /// announced on `config.channel`), and announces this store's writes there.
    pub fn with_memory(mut self, config: &MemoryTierConfig) -> Self {
        self.memory = NearCache::new(config.entries, self.ttl);
        self.changes = config.channel.clone();
        self.memory.follow(self.cache.clone(), self.changes.clone());
        self
    }

    /// Reads served from process memory.
    pub fn memory_hits(&self) -> u64 {
        self.memory.hits()
    }

    /// Namespaces cache keys (`{prefix}user:{id}`), so several stores can share one Redis.
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// The Redis key of user `id`.
    pub fn cache_key(&self, id: i64) -> String {
        cache_key(&self.key_prefix, id)
    }

    /// The pool.
    pub fn pool(&self) -> &MySqlPool {
        &self.pool
    }

    /// The cache.
    pub fn cache(&self) -> &RedisCache {
        &self.cache
    }

    /// Checks MySQL answers.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        shopmesh_common::db::ping(&self.pool).await
    }

    async fn remember(&self, user: &UserRecord) {
        if let Ok(json) = serde_json::to_string(user) {
            self.cache
                .set_versioned(&self.cache_key(user.id), user.version, &json, self.ttl)
                .await;
        }
    }

    /// After a committed write: Redis holds the new row, then this replica forgets the old
    /// one and every other replica is told to, before the write is acknowledged.
    async fn announce(&self, user: &UserRecord) {
        self.remember(user).await;
        self.memory.forget(&user.id);
        self.changes.announce(&self.cache, user.id).await;
    }

    /// One user: from process memory, else from Redis, else from MySQL (then cached).
    pub async fn get(&self, id: i64) -> Result<UserRecord, UsersError> {
        if let Some(user) = self.memory.get(&id) {
            return Ok(user);
        }
        let ticket = self.memory.ticket();
        if let Some(json) = self.cache.get_versioned(&self.cache_key(id)).await {
            match serde_json::from_str::<UserRecord>(&json) {
                Ok(user) => {
                    self.memory.fill(ticket, id, user.clone());
                    return Ok(user);
                }
                Err(e) => tracing::warn!(error = %e, id, "ignoring unreadable cache entry"),
            }
        }
        let row: Option<UserRow> = sqlx::query_as(SELECT_USER)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        let user = UserRecord::from(row.ok_or(UsersError::NotFound(id))?);
        self.remember(&user).await;
        self.memory.fill(ticket, id, user.clone());
        Ok(user)
    }

    /// Reads the written row back inside `tx`, answers `key` with it, commits, then refreshes
    /// the cache with it.
    async fn commit_and_remember(
        &self,
        mut tx: sqlx::Transaction<'_, sqlx::MySql>,
        id: i64,
        key: Option<&HeldKey>,
    ) -> Result<UserRecord, UsersError> {
        let row: UserRow = sqlx::query_as(SELECT_USER)
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        let user = UserRecord::from(row);
        if let Some(held) = key {
            IdempotencyKeys::answer(&mut tx, held, &crate::api::to_contract(user.clone())).await?;
        }
        tx.commit().await?;
        self.announce(&user).await;
        Ok(user)
    }

    /// Creates a user with a password hash and a role (409 on a taken email, compared without
    /// case), answers `key` with it and caches it. `id` is for the demo seed only.
    pub async fn create(
        &self,
        fields: &UserFields,
        password_hash: &str,
        role: Role,
        id: Option<i64>,
        key: Option<&HeldKey>,
    ) -> Result<UserRecord, UsersError> {
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO users (id, name, email, password_hash, role) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(id)
        .bind(&fields.name)
        .bind(&fields.email)
        .bind(password_hash)
        .bind(role.as_str())
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            if duplicate_email(&e) {
                UsersError::DuplicateEmail(fields.email.clone())
            } else {
                e.into()
            }
        })?;
        let id = i64::try_from(inserted.last_insert_id()).unwrap_or(i64::MAX);
        self.commit_and_remember(tx, id, key).await
    }

    /// Replaces a user's fields, bumps its version and refreshes the cache, so a read after the
    /// write sees the write.
    pub async fn update(&self, id: i64, fields: &UserFields) -> Result<UserRecord, UsersError> {
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query("UPDATE users SET name = ?, email = ?, version = version + 1, updated_at = CURRENT_TIMESTAMP(6) WHERE id = ?")
            .bind(&fields.name)
            .bind(&fields.email)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(|e| if duplicate_email(&e) { UsersError::DuplicateEmail(fields.email.clone()) } else { e.into() })?;
        if updated.rows_affected() == 0 {
            return Err(UsersError::NotFound(id));
        }
        self.commit_and_remember(tx, id, None).await
    }
}

impl UserStore {
    /// The account with `email` (compared without case, as the column's collation does).
    pub async fn credentials(&self, email: &str) -> Result<Option<Credentials>, UsersError> {
        let row: Option<(i64, String, Option<String>)> =
            sqlx::query_as("SELECT id, role, password_hash FROM users WHERE email = ?")
                .bind(email)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(id, role, password_hash)| Credentials {
            id,
            role: role_of(&role),
            password_hash,
        }))
    }

    /// Stores the first refresh token of a new family.
    pub async fn insert_refresh(
        &self,
        hash: &RefreshTokenHash,
        family: &uuid::Uuid,
        user_id: i64,
        ttl: Duration,
    ) -> Result<(), UsersError> {
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, family_id, user_id, expires_at) \
             VALUES (?, ?, ?, TIMESTAMPADD(SECOND, ?, CURRENT_TIMESTAMP(6)))",
        )
        .bind(&hash.0[..])
        .bind(&family.as_bytes()[..])
        .bind(user_id)
        .bind(ttl.as_secs())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Uses `old` up and stores `new` in its family, answering whose it is. A token that was
    /// already used revokes its whole family (someone replayed it); unknown, expired and
    /// revoked tokens are refused alike.
    pub async fn rotate_refresh(
        &self,
        old: &RefreshTokenHash,
        new: &RefreshTokenHash,
        ttl: Duration,
    ) -> Result<(i64, Role), UsersError> {
        let mut tx = self.pool.begin().await?;
        let row: Option<(Vec<u8>, i64, bool, bool, bool, String)> = sqlx::query_as(
            "SELECT t.family_id, t.user_id, t.used_at IS NOT NULL, t.revoked_at IS NOT NULL, \
                    t.expires_at <= CURRENT_TIMESTAMP(6), u.role \
             FROM refresh_tokens t JOIN users u ON u.id = t.user_id \
             WHERE t.token_hash = ? FOR UPDATE",
        )
        .bind(&old.0[..])
        .fetch_optional(&mut *tx)
        .await?;
        let Some((family, user_id, used, revoked, expired, role)) = row else {
            return Err(UsersError::InvalidRefreshToken);
        };
        if used && !revoked {
            sqlx::query(
                "UPDATE refresh_tokens SET revoked_at = CURRENT_TIMESTAMP(6) \
                 WHERE family_id = ? AND revoked_at IS NULL",
            )
            .bind(&family)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            tracing::warn!(
                user_id,
                "a used refresh token was presented again; its family is revoked"
            );
            return Err(UsersError::InvalidRefreshToken);
        }
        if used || revoked || expired {
            return Err(UsersError::InvalidRefreshToken);
        }
        sqlx::query(
            "UPDATE refresh_tokens SET used_at = CURRENT_TIMESTAMP(6) WHERE token_hash = ?",
        )
        .bind(&old.0[..])
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, family_id, user_id, expires_at) \
             VALUES (?, ?, ?, TIMESTAMPADD(SECOND, ?, CURRENT_TIMESTAMP(6)))",
        )
        .bind(&new.0[..])
        .bind(&family)
        .bind(user_id)
        .bind(ttl.as_secs())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((user_id, role_of(&role)))
    }

    /// Revokes every token of the family `hash` belongs to.
    pub async fn revoke_family(&self, hash: &RefreshTokenHash) -> Result<(), UsersError> {
        sqlx::query(
            "UPDATE refresh_tokens t JOIN refresh_tokens f ON f.family_id = t.family_id \
             SET t.revoked_at = CURRENT_TIMESTAMP(6) \
             WHERE f.token_hash = ? AND t.revoked_at IS NULL",
        )
        .bind(&hash.0[..])
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
