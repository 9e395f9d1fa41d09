//! The `audit` table: the organisation's audit entries as pulled.

use keyward_core::api::AuditEntry;
use sqlx::SqliteConnection;

use super::micros;
use crate::error::ReplicaError;

pub(crate) async fn upsert(
    conn: &mut SqliteConnection,
    entry: &AuditEntry,
) -> Result<(), ReplicaError> {
    sqlx::query(
        "INSERT OR REPLACE INTO audit (id, seq, created_at, action, target_id, data)
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(entry.id.to_string())
    .bind(entry.seq)
    .bind(micros(entry.created_at))
    .bind(&entry.action)
    .bind(&entry.target_id)
    .bind(serde_json::to_string(entry)?)
    .execute(conn)
    .await?;
    Ok(())
}

pub(crate) async fn delete(conn: &mut SqliteConnection, id: &str) -> Result<(), ReplicaError> {
    sqlx::query("DELETE FROM audit WHERE id = ?")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Entries about `target_id`, newest first.
pub(crate) async fn for_target(
    conn: &mut SqliteConnection,
    target_id: &str,
) -> Result<Vec<AuditEntry>, ReplicaError> {
    let rows: Vec<String> =
        sqlx::query_scalar("SELECT data FROM audit WHERE target_id = ? ORDER BY seq DESC")
            .bind(target_id)
            .fetch_all(conn)
            .await?;
    decode(rows)
}

/// Up to `limit` entries before chain position `before` (all when `None`), newest first.
pub(crate) async fn page(
    conn: &mut SqliteConnection,
    limit: u32,
    before: Option<i64>,
) -> Result<Vec<AuditEntry>, ReplicaError> {
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT data FROM audit WHERE seq < COALESCE(?, 9223372036854775807)
          ORDER BY seq DESC LIMIT ?",
    )
    .bind(before)
    .bind(i64::from(limit))
    .fetch_all(conn)
    .await?;
    decode(rows)
}

fn decode(rows: Vec<String>) -> Result<Vec<AuditEntry>, ReplicaError> {
    rows.iter()
        .map(|s| serde_json::from_str(s).map_err(ReplicaError::from))
        .collect()
}
