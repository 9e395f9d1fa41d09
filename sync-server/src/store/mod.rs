//! SQL, one file per table family. Runtime-checked queries (no `DATABASE_URL` at build time);
//! every query runs in the test suite. Functions take an executor or a transaction; handlers own
//! the transaction.

pub mod admins;
pub mod alerts;
pub mod audit;
pub mod events;
pub mod keys;
pub mod limits;
pub mod orgs;
pub mod sessions;
pub mod sync;
pub mod tiers;
pub mod usage;
pub mod webhooks;

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

/// Truncates to Postgres' microsecond precision, so a value reads back exactly as written (the
/// audit chain hashes timestamps).
pub fn now_micros() -> chrono::DateTime<chrono::Utc> {
    use chrono::{DurationRound, TimeDelta};
    let now = chrono::Utc::now();
    now.duration_trunc(TimeDelta::microseconds(1))
        .unwrap_or(now)
}
