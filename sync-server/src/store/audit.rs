use keyward_core::api::{AuditEntry, AuditHead, BrokenLink};
use keyward_core::audit_head::HeadKey;
use keyward_core::{AdminId, OrgId};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::audit::{self, Actor, AuditEvent, GENESIS};

struct Row {
    change_seq: i64,
    id: Uuid,
    org_id: Uuid,
    seq: i64,
    actor_id: Option<Uuid>,
    actor_email: Option<String>,
    action: String,
    target_type: String,
    target_id: Option<String>,
    client_ip: Option<String>,
    request_id: Option<String>,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
    created_at: chrono::DateTime<chrono::Utc>,
    prev_hash: String,
    hash: String,
}

impl From<Row> for AuditEntry {
    fn from(r: Row) -> Self {
        AuditEntry {
            id: r.id,
            seq: r.seq,
            org_id: OrgId::from_uuid(r.org_id),
            actor_id: r.actor_id.map(AdminId::from_uuid),
            actor_email: r.actor_email,
            action: r.action,
            target_type: r.target_type,
            target_id: r.target_id,
            client_ip: r.client_ip,
            request_id: r.request_id,
            before: r.before,
            after: r.after,
            created_at: r.created_at,
            hash: r.hash,
            prev_hash: r.prev_hash,
        }
    }
}

/// `query_as!(Row, ...)` for `SELECT <every Row column> FROM audit_log <tail>`.
macro_rules! select_entries {
    ($tail:literal $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            Row,
            "SELECT change_seq, id, org_id, seq, actor_id, actor_email, action, target_type,
                target_id, client_ip, request_id, before, after, created_at, prev_hash, hash
             FROM audit_log " + $tail
            $(, $arg)*
        )
    };
}

/// Locks the organisation's chain head for the rest of the transaction and returns it. Every
/// write of an organisation takes this lock before it takes a change sequence value, so the
/// organisation's changes commit in sequence order (see the sync migration).
pub async fn lock_head(conn: &mut PgConnection, org: OrgId) -> Result<(i64, String), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO audit_heads (org_id, seq, hash) VALUES ($1, 0, $2) ON CONFLICT (org_id) DO NOTHING",
        org.as_uuid(),
        GENESIS,
    )
    .execute(&mut *conn)
    .await?;
    let head = sqlx::query!(
        "SELECT seq, hash FROM audit_heads WHERE org_id = $1 FOR UPDATE",
        org.as_uuid(),
    )
    .fetch_one(conn)
    .await?;
    Ok((head.seq, head.hash))
}

/// Appends to the organisation's chain inside the caller's transaction. The head row is locked,
/// so concurrent appends queue instead of forking the chain. The new head is signed with the
/// actor's signer (the server's audit key), or left unsigned without one.
pub async fn append(
    conn: &mut PgConnection,
    actor: &Actor,
    event: AuditEvent,
) -> Result<AuditEntry, sqlx::Error> {
    let org = actor.org_id.into_uuid();
    let (seq, prev) = lock_head(conn, actor.org_id).await?;
    let e = audit::seal(actor, event, seq + 1, prev, super::now_micros());
    sqlx::query!(
        "INSERT INTO audit_log (id, org_id, seq, actor_id, actor_email, action, target_type, target_id, client_ip,
            request_id, before, after, created_at, prev_hash, hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        e.id,
        org,
        e.seq,
        e.actor_id.map(AdminId::into_uuid),
        e.actor_email,
        e.action,
        e.target_type,
        e.target_id,
        e.client_ip,
        e.request_id,
        e.before,
        e.after,
        e.created_at,
        e.prev_hash,
        e.hash,
    )
    .execute(&mut *conn)
    .await?;
    let signature = actor
        .signer
        .as_ref()
        .map(|s| s.sign(actor.org_id, e.seq, &e.hash));
    sqlx::query!(
        "UPDATE audit_heads SET seq = $2, hash = $3, signature = $4 WHERE org_id = $1",
        org,
        e.seq,
        e.hash,
        signature,
    )
    .execute(conn)
    .await?;
    Ok(e)
}

/// Entries of `org` appended after change `since`, in change order, with their change values.
pub async fn changed_since(
    conn: &mut PgConnection,
    org: OrgId,
    since: i64,
    limit: u32,
) -> Result<Vec<(i64, AuditEntry)>, sqlx::Error> {
    let rows = select_entries!(
        "WHERE org_id = $1 AND change_seq > $2 ORDER BY change_seq LIMIT $3",
        org.as_uuid(),
        since,
        i64::from(limit),
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.change_seq, r.into())).collect())
}

/// Newest first; `before_seq` is the cursor.
pub async fn list(
    conn: &mut PgConnection,
    org: OrgId,
    before_seq: Option<i64>,
    limit: u32,
) -> Result<Vec<AuditEntry>, sqlx::Error> {
    let rows = select_entries!(
        "WHERE org_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3",
        org.as_uuid(),
        before_seq.unwrap_or(i64::MAX),
        i64::from(limit),
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// The organisation's recorded chain head with its signature (none before its first entry).
pub async fn head(conn: &mut PgConnection, org: OrgId) -> Result<Option<AuditHead>, sqlx::Error> {
    let row = sqlx::query!(
        "SELECT seq, hash, signature FROM audit_heads WHERE org_id = $1",
        org.as_uuid(),
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| AuditHead {
        org_id: org,
        seq: r.seq,
        hash: r.hash,
        signature: r.signature,
    }))
}

/// What [`check_chain`] found.
#[derive(Debug, Clone)]
pub struct ChainReport {
    /// Entries whose links were checked.
    pub checked: u64,
    pub first_broken: Option<BrokenLink>,
    /// The recorded head.
    pub head: Option<AuditHead>,
    /// The head's signature verified against the key checked with.
    pub signed: bool,
}

/// Checks one organisation's chain, reading it in pages, and its recorded head: signed by `key`
/// when given, and where the chain ends. Run it in a repeatable-read transaction so the head
/// and the entries are one snapshot.
pub async fn check_chain(
    conn: &mut PgConnection,
    org: OrgId,
    key: Option<&HeadKey>,
) -> Result<ChainReport, sqlx::Error> {
    let head = head(&mut *conn, org).await?;
    let signed = match (key, &head) {
        (Some(key), Some(h)) => key
            .verify(org, h.seq, &h.hash, h.signature.as_deref())
            .is_ok(),
        _ => false,
    };
    let report = |checked, first_broken| ChainReport {
        checked,
        first_broken,
        head: head.clone(),
        signed,
    };
    let mut checker = audit::ChainChecker::new(org);
    let mut after = 0i64;
    loop {
        let rows = select_entries!(
            "WHERE org_id = $1 AND seq > $2 ORDER BY seq LIMIT 1000",
            org.as_uuid(),
            after,
        )
        .fetch_all(&mut *conn)
        .await?;
        let Some(last) = rows.last() else { break };
        after = last.seq;
        for row in rows {
            if let Err(broken) = checker.next(&row.into()) {
                return Ok(report(checker.checked, Some(broken)));
            }
        }
    }
    Ok(report(
        checker.checked,
        checker.finish(head.as_ref(), key).err(),
    ))
}
