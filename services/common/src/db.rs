//! MySQL plumbing shared by the services that keep their data in MySQL (users, orders).

use std::time::Duration;

use sqlx::migrate::{MigrateDatabase, Migrator};
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::{MySql, MySqlPool};

/// A pool that connects on first use, so a service starts (and answers 503) while MySQL is
/// down and recovers by itself when it returns. Requests wait at most `acquire_timeout` for a
/// connection.
pub fn lazy_pool(
    url: &str,
    size: u32,
    acquire_timeout: Duration,
) -> Result<MySqlPool, sqlx::Error> {
    let options: MySqlConnectOptions = url.parse()?;
    Ok(MySqlPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(acquire_timeout)
        .connect_lazy_with(options))
}

/// Creates the database at `url` when it is missing, then applies `migrator`'s pending
/// migrations through `pool`.
pub async fn create_and_migrate(
    pool: &MySqlPool,
    url: &str,
    migrator: &Migrator,
) -> Result<(), sqlx::Error> {
    if !MySql::database_exists(url).await? {
        MySql::create_database(url).await?;
    }
    migrator
        .run(pool)
        .await
        .map_err(|e| sqlx::Error::Migrate(Box::new(e)))
}

/// [`create_and_migrate`] in the background, retried with backoff until it succeeds (MySQL may
/// start after the service), while the service already answers its probes (see
/// [`crate::startup`]).
pub fn migrate_in_background(
    pool: &MySqlPool,
    url: &crate::config::SecretUrl,
    migrator: &'static Migrator,
    shutdown: &crate::shutdown::Shutdown,
) -> crate::startup::Startup {
    let (pool, url) = (pool.clone(), url.clone());
    crate::startup::Startup::spawn("database migrations", shutdown, move || {
        let (pool, url) = (pool.clone(), url.clone());
        async move { create_and_migrate(&pool, url.expose(), migrator).await }
    })
}

/// Checks the database answers.
pub async fn ping(pool: &MySqlPool) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT 1").execute(pool).await.map(|_| ())
}
