//! The witness and its alarms in the replica's database: the check inside each pull, and what
//! the app reads back.

use chrono::{DateTime, Utc};
use keyward_core::OrgId;
use keyward_core::api::AuditHead;
use sqlx::{Row, SqliteConnection};

use super::{AuditAlarm, AuditAlarmKind, Verdict, Witness, judge};
use crate::error::ReplicaError;
use crate::replica::Replica;
use crate::store::{from_micros, micros};

async fn load(conn: &mut SqliteConnection, org: OrgId) -> Result<Option<Witness>, ReplicaError> {
    let row = sqlx::query(
        "SELECT seq, hash, signature, public_key, seen_at FROM audit_witness WHERE org_id = ?",
    )
    .bind(org.to_string())
    .fetch_optional(conn)
    .await?;
    row.map(|r| {
        Ok(Witness {
            org_id: org,
            seq: r.try_get("seq")?,
            hash: r.try_get("hash")?,
            signature: r.try_get("signature")?,
            public_key: r.try_get("public_key")?,
            seen_at: from_micros(r.try_get("seen_at")?),
        })
    })
    .transpose()
}

/// Checks the head a pull brought against the witness, inside the pull's transaction (after its
/// entries were stored): records it when accepted, records the alarm when not. Returns the
/// alarm when one is new.
pub(crate) async fn witness_head(
    conn: &mut SqliteConnection,
    head: &AuditHead,
    server_key: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Option<AuditAlarm>, ReplicaError> {
    let held = load(&mut *conn, head.org_id).await?;
    let successors: Vec<String> = match &held {
        Some(w) => {
            sqlx::query_scalar(
                "SELECT json_extract(data, '$.prev_hash') FROM audit
                  WHERE seq = ? AND json_extract(data, '$.org_id') = ?",
            )
            .bind(w.seq + 1)
            .bind(head.org_id.to_string())
            .fetch_all(&mut *conn)
            .await?
        }
        None => Vec::new(),
    };
    match judge(held.as_ref(), head, server_key, &successors, now) {
        Verdict::Keep => Ok(None),
        Verdict::Accept(w) => {
            sqlx::query(
                "INSERT OR REPLACE INTO audit_witness (org_id, seq, hash, signature, public_key,
                    seen_at) VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(w.org_id.to_string())
            .bind(w.seq)
            .bind(&w.hash)
            .bind(&w.signature)
            .bind(&w.public_key)
            .bind(micros(w.seen_at))
            .execute(conn)
            .await?;
            Ok(None)
        }
        Verdict::Alarm(a) => {
            let inserted = sqlx::query(
                "INSERT OR IGNORE INTO audit_alarms (id, org_id, kind, detail, witnessed_seq,
                    witnessed_hash, reported_seq, reported_hash, raised_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&a.id)
            .bind(a.org_id.to_string())
            .bind(a.kind.as_str())
            .bind(&a.detail)
            .bind(a.witnessed_seq)
            .bind(&a.witnessed_hash)
            .bind(a.reported_seq)
            .bind(&a.reported_hash)
            .bind(micros(a.raised_at))
            .execute(conn)
            .await?
            .rows_affected();
            if inserted == 0 {
                return Ok(None);
            }
            tracing::error!(kind = a.kind.as_str(), org = %a.org_id, witnessed = ?a.witnessed_seq,
                reported = a.reported_seq, "{}", a.detail);
            Ok(Some(a))
        }
    }
}

impl Replica {
    /// The highest audit chain head of `org` this replica accepted.
    pub async fn audit_witness(&self, org: OrgId) -> Result<Option<Witness>, ReplicaError> {
        let mut conn = self.conn().await?;
        load(&mut conn, org).await
    }

    /// Every alarm the witness raised, newest first.
    pub async fn audit_alarms(&self) -> Result<Vec<AuditAlarm>, ReplicaError> {
        let mut conn = self.conn().await?;
        audit_alarms(&mut conn, false).await
    }

    /// Forgets what the replica witnessed of `org`'s audit chain and the key it pinned (after
    /// the operator confirmed a key rotation, say): the next pull starts afresh. Alarms stay.
    pub async fn forget_audit_witness(&self, org: OrgId) -> Result<(), ReplicaError> {
        let mut conn = self.conn().await?;
        sqlx::query("DELETE FROM audit_witness WHERE org_id = ?")
            .bind(org.to_string())
            .execute(&mut *conn)
            .await?;
        Ok(())
    }
}

/// Alarms, newest first (`unnotified`: only those not notified yet).
pub(crate) async fn audit_alarms(
    conn: &mut SqliteConnection,
    unnotified: bool,
) -> Result<Vec<AuditAlarm>, ReplicaError> {
    let rows = sqlx::query(
        "SELECT id, org_id, kind, detail, witnessed_seq, witnessed_hash, reported_seq,
                reported_hash, raised_at, notified_at
           FROM audit_alarms WHERE (? = 0 OR notified_at IS NULL)
          ORDER BY raised_at DESC, id",
    )
    .bind(unnotified)
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|r| {
            let org: String = r.try_get("org_id")?;
            let kind: String = r.try_get("kind")?;
            Ok(AuditAlarm {
                id: r.try_get("id")?,
                org_id: org.parse().map_err(|_| ReplicaError::BadId(org.clone()))?,
                kind: AuditAlarmKind::parse(&kind).ok_or(ReplicaError::BadId(kind.clone()))?,
                detail: r.try_get("detail")?,
                witnessed_seq: r.try_get("witnessed_seq")?,
                witnessed_hash: r.try_get("witnessed_hash")?,
                reported_seq: r.try_get("reported_seq")?,
                reported_hash: r.try_get("reported_hash")?,
                raised_at: from_micros(r.try_get("raised_at")?),
                notified_at: r.try_get::<Option<i64>, _>("notified_at")?.map(from_micros),
            })
        })
        .collect()
}
