//! The single `sync_state` row.

use keyward_core::OrgId;
use sqlx::{Row, SqliteConnection};

use super::{from_micros, micros};
use crate::error::ReplicaError;
use keyward_core::SyncState;

pub(crate) async fn status(conn: &mut SqliteConnection) -> Result<SyncState, ReplicaError> {
    let row = sqlx::query(
        "SELECT cursor, last_pull_at, last_push_at, last_error,
                (SELECT COUNT(*) FROM outbox) AS queued,
                (SELECT COUNT(*) FROM outbox WHERE kind = 'revoke_key') AS queued_revocations,
                (SELECT COUNT(*) FROM rejected) AS rejected
           FROM sync_state WHERE id = 1",
    )
    .fetch_one(conn)
    .await?;
    Ok(SyncState {
        cursor: row.try_get("cursor")?,
        queued: row.try_get::<i64, _>("queued")?.try_into().unwrap_or(0),
        queued_revocations: row
            .try_get::<i64, _>("queued_revocations")?
            .try_into()
            .unwrap_or(0),
        rejected: row.try_get::<i64, _>("rejected")?.try_into().unwrap_or(0),
        last_pull_at: row
            .try_get::<Option<i64>, _>("last_pull_at")?
            .map(from_micros),
        last_push_at: row
            .try_get::<Option<i64>, _>("last_push_at")?
            .map(from_micros),
        last_error: row.try_get("last_error")?,
    })
}

pub(crate) async fn cursor(conn: &mut SqliteConnection) -> Result<i64, ReplicaError> {
    Ok(
        sqlx::query_scalar("SELECT cursor FROM sync_state WHERE id = 1")
            .fetch_one(conn)
            .await?,
    )
}

/// Moves the cursor forward (never back) and stamps the pull.
pub(crate) async fn pulled(
    conn: &mut SqliteConnection,
    cursor: i64,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<(), ReplicaError> {
    sqlx::query("UPDATE sync_state SET cursor = MAX(cursor, ?), last_pull_at = ? WHERE id = 1")
        .bind(cursor)
        .bind(micros(at))
        .execute(conn)
        .await?;
    Ok(())
}

pub(crate) async fn pushed(
    conn: &mut SqliteConnection,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<(), ReplicaError> {
    sqlx::query("UPDATE sync_state SET last_push_at = ? WHERE id = 1")
        .bind(micros(at))
        .execute(conn)
        .await?;
    Ok(())
}

pub(crate) async fn set_error(
    conn: &mut SqliteConnection,
    error: Option<&str>,
) -> Result<(), ReplicaError> {
    sqlx::query("UPDATE sync_state SET last_error = ? WHERE id = 1")
        .bind(error)
        .execute(conn)
        .await?;
    Ok(())
}

/// The organisation of pulled records, once one was seen.
pub(crate) async fn org_id(conn: &mut SqliteConnection) -> Result<Option<OrgId>, ReplicaError> {
    let raw: Option<String> = sqlx::query_scalar("SELECT org_id FROM sync_state WHERE id = 1")
        .fetch_one(conn)
        .await?;
    Ok(raw.and_then(|s| s.parse().ok()))
}

pub(crate) async fn remember_org(
    conn: &mut SqliteConnection,
    org: OrgId,
) -> Result<(), ReplicaError> {
    sqlx::query("UPDATE sync_state SET org_id = ? WHERE id = 1 AND org_id IS NULL")
        .bind(org.to_string())
        .execute(conn)
        .await?;
    Ok(())
}
