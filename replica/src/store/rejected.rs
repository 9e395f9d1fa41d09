//! The `rejected` table: operations the server refused, with what they were, until the admin
//! retries or discards them.

use chrono::{DateTime, Utc};
use keyward_core::KeyId;
use keyward_core::api::PushOp;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};
use uuid::Uuid;

use super::{from_micros, micros};
use crate::error::ReplicaError;
use crate::view::{RejectedChange, Rejection};

/// `op` without the secret hash a create or rotation carries: a refused one cannot be sent
/// again (its token was shown once and is gone), and no hash outlives its push in the file.
fn without_hash(op: &PushOp) -> PushOp {
    let mut op = op.clone();
    match &mut op {
        PushOp::CreateKey { data, .. } => data.secret_hash = None,
        PushOp::RotateKey { data, .. } => data.secret_hash = String::new(),
        PushOp::UpdateKey { .. } | PushOp::RevokeKey { .. } => {}
    }
    op
}

/// Keeps refused operation `op` on key `key_id` (shown as `key_name`) with the refusal.
pub(crate) async fn insert(
    conn: &mut SqliteConnection,
    op: &PushOp,
    key_id: KeyId,
    key_name: &str,
    queued_at: DateTime<Utc>,
    rejection: &Rejection,
    at: DateTime<Utc>,
) -> Result<(), ReplicaError> {
    sqlx::query(
        "INSERT OR REPLACE INTO rejected
            (op_id, kind, key_id, key_name, op, code, detail, queued_at, rejected_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(op.op_id().to_string())
    .bind(op.kind().as_str())
    .bind(key_id.to_string())
    .bind(key_name)
    .bind(serde_json::to_string(&without_hash(op))?)
    .bind(&rejection.code)
    .bind(&rejection.detail)
    .bind(micros(queued_at))
    .bind(micros(at))
    .execute(conn)
    .await?;
    Ok(())
}

/// A kept refusal: the change as the UI lists it, and the operation itself.
pub(crate) struct Kept {
    pub change: RejectedChange,
    pub op: PushOp,
}

fn decode(row: &SqliteRow) -> Result<Kept, ReplicaError> {
    let op: PushOp = serde_json::from_str(&row.try_get::<String, _>("op")?)?;
    let key_id: String = row.try_get("key_id")?;
    let change = RejectedChange::describe(
        &op,
        key_id
            .parse()
            .map_err(|_| ReplicaError::BadId(key_id.clone()))?,
        row.try_get("key_name")?,
        Rejection {
            code: row.try_get("code")?,
            detail: row.try_get("detail")?,
        },
        from_micros(row.try_get("queued_at")?),
        from_micros(row.try_get("rejected_at")?),
    );
    Ok(Kept { change, op })
}

const COLUMNS: &str = "op, key_id, key_name, code, detail, queued_at, rejected_at";

/// Every kept refusal, newest first.
pub(crate) async fn list(conn: &mut SqliteConnection) -> Result<Vec<Kept>, ReplicaError> {
    sqlx::query(&format!(
        "SELECT {COLUMNS} FROM rejected ORDER BY rejected_at DESC, op_id DESC"
    ))
    .fetch_all(conn)
    .await?
    .iter()
    .map(decode)
    .collect()
}

pub(crate) async fn get(
    conn: &mut SqliteConnection,
    op_id: Uuid,
) -> Result<Option<Kept>, ReplicaError> {
    sqlx::query(&format!("SELECT {COLUMNS} FROM rejected WHERE op_id = ?"))
        .bind(op_id.to_string())
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(decode)
        .transpose()
}

/// Removes a kept refusal; false if there was none.
pub(crate) async fn delete(conn: &mut SqliteConnection, op_id: Uuid) -> Result<bool, ReplicaError> {
    let done = sqlx::query("DELETE FROM rejected WHERE op_id = ?")
        .bind(op_id.to_string())
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}
