//! The `outbox` table: local operations waiting to be pushed, in the order they were made.

use chrono::{DateTime, Utc};
use keyward_core::KeyId;
use keyward_core::api::OpKind;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};
use uuid::Uuid;

use super::{from_micros, micros};
use crate::error::ReplicaError;

/// One queued operation.
#[derive(Clone, PartialEq)]
pub(crate) struct QueuedOp {
    pub position: i64,
    pub op_id: Uuid,
    pub kind: OpKind,
    /// The key acted on (for `create_key`, the new key).
    pub key_id: KeyId,
    /// `rotate_key`: the successor.
    pub new_key_id: Option<KeyId>,
    pub base_seq: Option<i64>,
    /// An `update_key` based on earlier queued operations on the same key.
    pub chained: bool,
    /// The request as pushed. For `create_key`/`rotate_key` it holds the argon2id hash.
    pub data: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

impl std::fmt::Debug for QueuedOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueuedOp")
            .field("position", &self.position)
            .field("op_id", &self.op_id)
            .field("kind", &self.kind)
            .field("key_id", &self.key_id)
            .field("new_key_id", &self.new_key_id)
            .field("base_seq", &self.base_seq)
            .field("chained", &self.chained)
            .field("data", &"[not shown: may hold a hash]")
            .finish()
    }
}

pub(crate) fn kind_str(kind: OpKind) -> &'static str {
    match kind {
        OpKind::CreateKey => "create_key",
        OpKind::UpdateKey => "update_key",
        OpKind::RevokeKey => "revoke_key",
        OpKind::RotateKey => "rotate_key",
    }
}

fn parse_kind(s: &str) -> Result<OpKind, ReplicaError> {
    Ok(serde_json::from_value(serde_json::Value::String(
        s.to_owned(),
    ))?)
}

fn parse_id(s: &str) -> Result<KeyId, ReplicaError> {
    s.parse().map_err(|_| ReplicaError::BadId(s.to_owned()))
}

fn decode(row: &SqliteRow) -> Result<QueuedOp, ReplicaError> {
    let op_id: String = row.try_get("op_id")?;
    let kind: String = row.try_get("kind")?;
    let key_id: String = row.try_get("key_id")?;
    let new_key_id: Option<String> = row.try_get("new_key_id")?;
    let data: String = row.try_get("data")?;
    Ok(QueuedOp {
        position: row.try_get("position")?,
        op_id: op_id
            .parse()
            .map_err(|_| ReplicaError::BadId(op_id.clone()))?,
        kind: parse_kind(&kind)?,
        key_id: parse_id(&key_id)?,
        new_key_id: new_key_id.as_deref().map(parse_id).transpose()?,
        base_seq: row.try_get("base_seq")?,
        chained: row.try_get("chained")?,
        data: serde_json::from_str(&data)?,
        created_at: from_micros(row.try_get("created_at")?),
    })
}

const COLUMNS: &str =
    "position, op_id, kind, key_id, new_key_id, base_seq, chained, data, created_at";

/// Appends an operation; `op.position` is ignored and assigned here.
pub(crate) async fn push(conn: &mut SqliteConnection, op: &QueuedOp) -> Result<(), ReplicaError> {
    sqlx::query(
        "INSERT INTO outbox (op_id, kind, key_id, new_key_id, base_seq, chained, data, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(op.op_id.to_string())
    .bind(kind_str(op.kind))
    .bind(op.key_id.to_string())
    .bind(op.new_key_id.map(|id| id.to_string()))
    .bind(op.base_seq)
    .bind(op.chained)
    .bind(serde_json::to_string(&op.data)?)
    .bind(micros(op.created_at))
    .execute(conn)
    .await?;
    Ok(())
}

/// The first `limit` operations, in order.
pub(crate) async fn head(
    conn: &mut SqliteConnection,
    limit: usize,
) -> Result<Vec<QueuedOp>, ReplicaError> {
    sqlx::query(&format!(
        "SELECT {COLUMNS} FROM outbox ORDER BY position LIMIT ?"
    ))
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(conn)
    .await?
    .iter()
    .map(decode)
    .collect()
}

/// Every queued operation that changes or creates key `id`, in order.
pub(crate) async fn for_key(
    conn: &mut SqliteConnection,
    id: KeyId,
) -> Result<Vec<QueuedOp>, ReplicaError> {
    let id = id.to_string();
    sqlx::query(&format!(
        "SELECT {COLUMNS} FROM outbox WHERE key_id = ? OR new_key_id = ? ORDER BY position"
    ))
    .bind(&id)
    .bind(&id)
    .fetch_all(conn)
    .await?
    .iter()
    .map(decode)
    .collect()
}

pub(crate) async fn remove(conn: &mut SqliteConnection, op_id: Uuid) -> Result<bool, ReplicaError> {
    let done = sqlx::query("DELETE FROM outbox WHERE op_id = ?")
        .bind(op_id.to_string())
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

pub(crate) async fn len(conn: &mut SqliteConnection) -> Result<u64, ReplicaError> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox")
        .fetch_one(conn)
        .await?;
    Ok(n.try_into().unwrap_or(0))
}

/// Records a failed delivery on the operations of a batch; their content stays as it was.
pub(crate) async fn note_failure(
    conn: &mut SqliteConnection,
    op_ids: &[Uuid],
    error: &str,
) -> Result<(), ReplicaError> {
    for op_id in op_ids {
        sqlx::query("UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE op_id = ?")
            .bind(error)
            .bind(op_id.to_string())
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Takes out every operation that changes or creates key `id` (its creation was refused, so
/// they cannot apply), in order.
pub(crate) async fn take_touching(
    conn: &mut SqliteConnection,
    id: KeyId,
) -> Result<Vec<QueuedOp>, ReplicaError> {
    let ops = for_key(conn, id).await?;
    for op in &ops {
        remove(conn, op.op_id).await?;
    }
    Ok(ops)
}

/// Takes out the edits of key `id` queued after `position` that were based on a refused one.
pub(crate) async fn take_chained_after(
    conn: &mut SqliteConnection,
    id: KeyId,
    position: i64,
) -> Result<Vec<QueuedOp>, ReplicaError> {
    let ops: Vec<QueuedOp> = for_key(conn, id)
        .await?
        .into_iter()
        .filter(|op| {
            op.key_id == id && op.kind == OpKind::UpdateKey && op.chained && op.position > position
        })
        .collect();
    for op in &ops {
        remove(conn, op.op_id).await?;
    }
    Ok(ops)
}
