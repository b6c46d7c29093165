//! Fast bulk loading for the data-size comparison: orders straight into MySQL with
//! `INSERT ... SELECT` over a generated sequence (no events: these orders stand for history),
//! and their notifications straight into MongoDB in large unordered batches.
//!
//! Rows are loaded in two phases so that one probe keeps the same result size at both data
//! sizes: every seeded user has [`PER_USER`] orders and notifications, whatever the total.

use mongodb::bson::{DateTime, Document, doc, oid::ObjectId};

use crate::limits::{Stores, notifications};

/// Orders (and notifications) per seeded user.
pub const PER_USER: u64 = 100;
/// The first seeded user id, far above the demo accounts and sign-ups.
pub const FIRST_USER: i64 = 1_000_000;
/// Rows per `INSERT ... SELECT` and per `insert_many`.
const BATCH: u64 = 100_000;

/// What a seeding phase loaded.
#[derive(Debug, Clone, Copy)]
pub struct Seeded {
    /// Ids of the orders loaded, first to last.
    pub orders: (i64, i64),
}

/// Loads `rows` orders for users `first_user..` ([`PER_USER`] each) and one notification per
/// order.
pub async fn load(stores: &Stores, first_user: i64, rows: u64) -> anyhow::Result<Seeded> {
    let pool = sqlx::MySqlPool::connect(&stores.orders_db).await?;
    let before: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM orders")
        .fetch_one(&pool)
        .await?;
    // Five digit tables make 0..99,999; each batch adds its offset.
    let digits = "(SELECT 0 d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 \
                  UNION ALL SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 \
                  UNION ALL SELECT 8 UNION ALL SELECT 9)";
    let mut offset = 0;
    while offset < rows {
        let count = BATCH.min(rows - offset);
        let sql = format!(
            "INSERT INTO orders (id, user_id, product_id, quantity, status, created_at) \
             SELECT ? + n + 1, ? + (n DIV {PER_USER}), 1 + n % 1000, 1, 'pending', \
                    TIMESTAMPADD(SECOND, -n, CURRENT_TIMESTAMP(6)) \
             FROM (SELECT ? + a.d + 10 * b.d + 100 * c.d + 1000 * e.d + 10000 * f.d AS n \
                   FROM {digits} a, {digits} b, {digits} c, {digits} e, {digits} f) s \
             WHERE n < ? ORDER BY n"
        );
        // Ids are given, not drawn: InnoDB leaves gaps between bulk inserts' id ranges.
        sqlx::query(&sql)
            .bind(before)
            .bind(first_user)
            .bind(offset)
            .bind(offset + count)
            .execute(&pool)
            .await?;
        offset += count;
    }
    let (first, last): (i64, i64) =
        sqlx::query_as("SELECT MIN(id), MAX(id) FROM orders WHERE id > ? AND user_id >= ?")
            .bind(before)
            .bind(first_user)
            .fetch_one(&pool)
            .await?;
    anyhow::ensure!(
        (last - first + 1) as u64 == rows,
        "expected {rows} orders with consecutive ids, found {first}..={last}"
    );
    let collection = notifications(stores).await?;
    let now = DateTime::now();
    let mut n = 0u64;
    while n < rows {
        let docs: Vec<Document> = (n..(n + BATCH).min(rows))
            .map(|i| {
                let order_id = first + i as i64;
                doc! {
                    "_id": ObjectId::new(),
                    "eventId": format!("seed-{order_id}"),
                    "orderId": order_id,
                    "userId": first_user + (i / PER_USER) as i64,
                    "message": format!("Your order #{order_id} was placed."),
                    "status": "sent",
                    "sentAt": now,
                    "createdAt": now,
                }
            })
            .collect();
        n += docs.len() as u64;
        collection.insert_many(docs).ordered(false).await?;
    }
    Ok(Seeded {
        orders: (first, last),
    })
}

/// Drops the bench's databases (orders, users, notifications), so every bench starts from
/// the same empty state; the services create and migrate them again at start.
pub async fn reset(stores: &Stores, other_dbs: &[String]) -> anyhow::Result<()> {
    for db in std::iter::once(&stores.orders_db).chain(other_dbs) {
        let mut url = url::Url::parse(db)?;
        let name = url.path().trim_start_matches('/').to_owned();
        url.set_path("/");
        let admin = sqlx::MySqlPool::connect(url.as_str()).await?;
        sqlx::query(&format!("DROP DATABASE IF EXISTS `{name}`"))
            .execute(&admin)
            .await?;
    }
    let client = mongodb::Client::with_uri_str(&stores.mongo_url).await?;
    client.database(&stores.mongo_db).drop().await?;
    Ok(())
}
