//! MySQL storage of the {{name}} service: the seam between its rules and its database.

use std::time::Duration;

use chrono::NaiveDateTime;
use shopmesh_openapi::{{name}}::Item;
use sqlx::MySqlPool;

use crate::error::{{Name}}Error;

/// Migrations in `services/{{name}}/migrations`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The {{name}} service's data in MySQL.
#[derive(Clone)]
pub struct {{Name}}Store {
    pool: MySqlPool,
}

impl {{Name}}Store {
    /// A store whose pool connects on first use (see [`shopmesh_common::db::lazy_pool`]).
    pub fn connect_lazy(
        url: &str,
        size: u32,
        acquire_timeout: Duration,
    ) -> Result<Self, sqlx::Error> {
        Ok(Self {
            pool: shopmesh_common::db::lazy_pool(url, size, acquire_timeout)?,
        })
    }

    /// The pool (migrations and tests use it).
    pub fn pool(&self) -> &MySqlPool {
        &self.pool
    }

    /// Checks the database answers.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        shopmesh_common::db::ping(&self.pool).await
    }

    /// Stores a new item.
    pub async fn create(&self, name: &str) -> Result<Item, {{Name}}Error> {
        let id = sqlx::query("INSERT INTO items (name) VALUES (?)")
            .bind(name)
            .execute(&self.pool)
            .await?
            .last_insert_id();
        let id = i64::try_from(id).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        self.get(id).await?.ok_or({{Name}}Error::NotFound(id))
    }

    /// The item with `id`, if any.
    pub async fn get(&self, id: i64) -> Result<Option<Item>, {{Name}}Error> {
        let row: Option<(i64, String, NaiveDateTime)> =
            sqlx::query_as("SELECT id, name, created_at FROM items WHERE id = ?")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(id, name, created_at)| Item {
            id,
            name,
            created_at: created_at.and_utc(),
        }))
    }
}
