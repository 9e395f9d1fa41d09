use keyward_core::api::OpResult;
use keyward_core::{AdminId, OrgId};
use sqlx::PgConnection;
use uuid::Uuid;

/// What claiming an operation id found.
pub enum Claim {
    /// First sight: the caller applies the operation and records its result.
    New,
    /// Seen before, with its recorded result and the organisation that pushed it.
    Done {
        org_id: OrgId,
        result: Option<OpResult>,
    },
}

/// Claims `op_id` inside the caller's transaction. A concurrent push of the same id waits here
/// until the first commits, then reads its result.
pub async fn claim(
    conn: &mut PgConnection,
    op_id: Uuid,
    org: OrgId,
    admin: AdminId,
    kind: &str,
) -> Result<Claim, sqlx::Error> {
    let inserted = sqlx::query_scalar!(
        "INSERT INTO sync_ops (op_id, org_id, admin_id, kind) VALUES ($1, $2, $3, $4)
         ON CONFLICT (op_id) DO NOTHING RETURNING op_id",
        op_id,
        org.into_uuid(),
        admin.into_uuid(),
        kind,
    )
    .fetch_optional(&mut *conn)
    .await?;
    if inserted.is_some() {
        return Ok(Claim::New);
    }
    let seen = sqlx::query!(
        "SELECT org_id, result FROM sync_ops WHERE op_id = $1",
        op_id
    )
    .fetch_one(conn)
    .await?;
    Ok(Claim::Done {
        org_id: OrgId::from_uuid(seen.org_id),
        result: seen.result.and_then(|r| serde_json::from_value(r).ok()),
    })
}

pub async fn record(conn: &mut PgConnection, result: &OpResult) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE sync_ops SET result = $2 WHERE op_id = $1",
        result.op_id,
        serde_json::to_value(result).unwrap_or_default(),
    )
    .execute(conn)
    .await?;
    Ok(())
}
