//! SQL, one file per table family. Runtime-checked queries (no `DATABASE_URL` at build time);
//! every query runs in the test suite. Functions take an executor or a transaction; handlers own
//! the transaction.

pub(crate) mod admins;
pub(crate) mod alerts;
pub(crate) mod audit;
pub(crate) mod events;
pub mod keys;
pub(crate) mod limits;
pub(crate) mod orgs;
pub(crate) mod outbox;
pub(crate) mod sessions;
pub(crate) mod sync;
pub(crate) mod tiers;
pub mod usage;
pub(crate) mod webhooks;

use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use crate::config::Config;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

pub async fn connect(config: &Config) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(config.database.max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect(config.database.url.expose_secret())
        .await
}

pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}

pub use keyward_core::time::now_micros;

/// A read-only transaction that sees one snapshot throughout (repeatable read), so what it
/// reads in several queries is consistent: a sync page, an audit chain and its head.
pub async fn begin_snapshot(
    pool: &PgPool,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query!("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// Whether the database answers a query.
pub async fn ping(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query!("SELECT 1 AS one").fetch_one(pool).await?;
    Ok(())
}
