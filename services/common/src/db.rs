//! MySQL plumbing shared by the services that keep their data in MySQL (users, orders,
//! catalog, payments).

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

/// The server's error number of `e`, when MySQL or MariaDB answered with one.
pub fn mysql_error_number(e: &sqlx::Error) -> Option<u16> {
    e.as_database_error()?
        .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
        .map(sqlx::mysql::MySqlDatabaseError::number)
}

/// Deadlock victim (1213), lock wait timeout (1205), or MariaDB 11.6+'s snapshot-isolation
/// write conflict under REPEATABLE READ (1020): the whole transaction may be tried again.
pub fn is_retryable_conflict(e: &sqlx::Error) -> bool {
    matches!(mysql_error_number(e), Some(1213 | 1205 | 1020))
}

/// How often a transaction that lost a conflict is tried in all.
pub const CONFLICT_ATTEMPTS: u32 = 5;

/// A short random pause before trying attempt `attempt` (2, 3, ...) again, growing with it.
pub async fn conflict_pause(attempt: u32) {
    let ceiling = 10 * u64::from(attempt.max(2));
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()));
    tokio::time::sleep(Duration::from_millis(1 + jitter % ceiling)).await;
}

/// Runs `attempt` (one whole transaction) again while it loses a conflict (`conflict` finds
/// the database error inside its failure), up to [`CONFLICT_ATTEMPTS`] times, counting each
/// retry on the counter `retried`.
pub async fn retry_conflicts<T, E, Fut>(
    retried: &'static str,
    conflict: impl Fn(&E) -> Option<&sqlx::Error>,
    mut attempt: impl FnMut() -> Fut,
) -> Result<T, E>
where
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(e)
                if tries < CONFLICT_ATTEMPTS && conflict(&e).is_some_and(is_retryable_conflict) =>
            {
                tries += 1;
                metrics::counter!(retried).increment(1);
                conflict_pause(tries).await;
            }
            done => return done,
        }
    }
}

/// What kind of database failure `e` is, as a metric label: `pool_timeout` (every connection
/// busy for the acquire timeout), `deadlock`, `lock_wait`, `conflict`, `connection` (the server
/// is out of reach) or `other`.
pub fn failure_kind(e: &sqlx::Error) -> &'static str {
    match e {
        sqlx::Error::PoolTimedOut => "pool_timeout",
        sqlx::Error::Io(_) | sqlx::Error::PoolClosed | sqlx::Error::Tls(_) => "connection",
        _ => match mysql_error_number(e) {
            Some(1213) => "deadlock",
            Some(1205) => "lock_wait",
            Some(1020) => "conflict",
            _ => "other",
        },
    }
}
