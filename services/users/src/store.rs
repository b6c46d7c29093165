//! Users in MySQL, read through a Redis cache-aside layer.

use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use shopmesh_common::cache::RedisCache;
use sqlx::MySqlPool;

use crate::domain::{UserFields, cache_key};
use crate::error::UsersError;

/// Migrations in `services/users/migrations` (schema and the seed's demo users).
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
    /// Row version; grows on every write.
    pub version: u64,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

type UserRow = (i64, String, String, u64, NaiveDateTime);

impl From<UserRow> for UserRecord {
    fn from((id, name, email, version, created_at): UserRow) -> Self {
        Self {
            id,
            name,
            email,
            version,
            created_at: created_at.and_utc(),
        }
    }
}

const SELECT_USER: &str = "SELECT id, name, email, version, created_at FROM users WHERE id = ?";

fn duplicate_email(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|c| c == "23000")
        && e.as_database_error()
            .is_some_and(|d| d.message().contains("uq_users_email"))
}

/// Users with cache-aside reads and refresh-on-write.
#[derive(Clone)]
pub struct UserStore {
    pool: MySqlPool,
    cache: RedisCache,
    ttl: Duration,
    key_prefix: String,
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
        })
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

    /// One user: from Redis when cached, else from MySQL (then cached).
    pub async fn get(&self, id: i64) -> Result<UserRecord, UsersError> {
        if let Some(json) = self.cache.get_versioned(&self.cache_key(id)).await {
            match serde_json::from_str(&json) {
                Ok(user) => return Ok(user),
                Err(e) => tracing::warn!(error = %e, id, "ignoring unreadable cache entry"),
            }
        }
        let row: Option<UserRow> = sqlx::query_as(SELECT_USER)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        let user = UserRecord::from(row.ok_or(UsersError::NotFound(id))?);
        self.remember(&user).await;
        Ok(user)
    }

    /// Reads the written row back inside `tx`, commits, then refreshes the cache with it.
    async fn commit_and_remember(
        &self,
        mut tx: sqlx::Transaction<'_, sqlx::MySql>,
        id: i64,
    ) -> Result<UserRecord, UsersError> {
        let row: UserRow = sqlx::query_as(SELECT_USER)
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        let user = UserRecord::from(row);
        self.remember(&user).await;
        Ok(user)
    }

    /// Creates a user (409 on a taken email) and caches it.
    pub async fn create(&self, fields: &UserFields) -> Result<UserRecord, UsersError> {
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query("INSERT INTO users (name, email) VALUES (?, ?)")
            .bind(&fields.name)
            .bind(&fields.email)
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
        self.commit_and_remember(tx, id).await
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
        self.commit_and_remember(tx, id).await
    }
}
