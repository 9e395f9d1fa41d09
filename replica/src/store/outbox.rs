//! The `outbox` table: local operations waiting to be pushed, in the order they were made.

use chrono::{DateTime, Utc};
use keyward_core::KeyId;
use keyward_core::api::{OpKind, PushOp};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};
use uuid::Uuid;

use super::{from_micros, micros};
use crate::error::ReplicaError;

/// One queued operation: the typed operation as it will be pushed, and where it stands in the
/// outbox. `Debug` shows no hash (the request types redact theirs).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct QueuedOp {
    pub position: i64,
    /// The operation as pushed. For `create_key`/`rotate_key` it holds the argon2id hash. A
    /// chained edit's `base_seq` is resolved when its batch is made.
    pub op: PushOp,
    /// The key acted on (for `create_key`, the new key).
    pub key_id: KeyId,
    /// An `update_key` based on earlier queued operations on the same key.
    pub chained: bool,
    pub created_at: DateTime<Utc>,
}

impl QueuedOp {
    /// A new operation on key `key_id` made at `at` (its place is assigned when queued).
    pub fn new(op: PushOp, key_id: KeyId, at: DateTime<Utc>) -> QueuedOp {
        QueuedOp {
            position: 0,
            op,
            key_id,
            chained: false,
            created_at: at,
        }
    }

    pub fn op_id(&self) -> Uuid {
        self.op.op_id()
    }

    pub fn kind(&self) -> OpKind {
        self.op.kind()
    }

    /// `rotate_key`: the successor.
    pub fn new_key_id(&self) -> Option<KeyId> {
        self.op.new_key_id()
    }

    pub fn base_seq(&self) -> Option<i64> {
        match &self.op {
            PushOp::UpdateKey { base_seq, .. } => *base_seq,
            _ => None,
        }
    }

    /// Bases an `update_key` on the key's change `seq` (other kinds carry none).
    pub fn set_base_seq(&mut self, seq: Option<i64>) {
        if let PushOp::UpdateKey { base_seq, .. } = &mut self.op {
            *base_seq = seq;
        }
    }
}

fn parse_id(s: &str) -> Result<KeyId, ReplicaError> {
    s.parse().map_err(|_| ReplicaError::BadId(s.to_owned()))
}

/// The `data` column: the operation's request, as the `data` it is pushed with.
fn data_json(op: &PushOp) -> Result<String, serde_json::Error> {
    match op {
        PushOp::CreateKey { data, .. } => serde_json::to_string(data),
        PushOp::UpdateKey { data, .. } => serde_json::to_string(data),
        PushOp::RevokeKey { data, .. } => serde_json::to_string(data),
        PushOp::RotateKey { data, .. } => serde_json::to_string(data),
    }
}

fn decode(row: &SqliteRow) -> Result<QueuedOp, ReplicaError> {
    let op_id: String = row.try_get("op_id")?;
    let op_id: Uuid = op_id.parse().map_err(|_| ReplicaError::BadId(op_id))?;
    let kind: String = row.try_get("kind")?;
    let key_id = parse_id(&row.try_get::<String, _>("key_id")?)?;
    let data: String = row.try_get("data")?;
    let op = match OpKind::from_name(&kind) {
        Some(OpKind::CreateKey) => PushOp::CreateKey {
            op_id,
            data: serde_json::from_str(&data)?,
        },
        Some(OpKind::UpdateKey) => PushOp::UpdateKey {
            op_id,
            key_id,
            base_seq: row.try_get("base_seq")?,
            data: serde_json::from_str(&data)?,
        },
        Some(OpKind::RevokeKey) => PushOp::RevokeKey {
            op_id,
            key_id,
            data: serde_json::from_str(&data)?,
        },
        Some(OpKind::RotateKey) => PushOp::RotateKey {
            op_id,
            key_id,
            data: serde_json::from_str(&data)?,
        },
        None => return Err(ReplicaError::BadKind(kind)),
    };
    Ok(QueuedOp {
        position: row.try_get("position")?,
        op,
        key_id,
        chained: row.try_get("chained")?,
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
    .bind(op.op_id().to_string())
    .bind(op.kind().as_str())
    .bind(op.key_id.to_string())
    .bind(op.new_key_id().map(|id| id.to_string()))
    .bind(op.base_seq())
    .bind(op.chained)
    .bind(data_json(&op.op)?)
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
        remove(conn, op.op_id()).await?;
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
            op.key_id == id
                && op.kind() == OpKind::UpdateKey
                && op.chained
                && op.position > position
        })
        .collect();
    for op in &ops {
        remove(conn, op.op_id()).await?;
    }
    Ok(ops)
}
