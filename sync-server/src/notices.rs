//! Notices about keys before their users notice: expiring within 7 days and within 1 day
//! (`key.expiring`), unused for 90 days (`key.unused`). A sweep (hourly, on every node) records
//! each notice once per key and kind and enqueues its webhook event in the same transaction, so
//! concurrent sweeps on several nodes notify once.

use std::time::Duration;

use chrono::{DateTime, Utc};
use keyward_core::{KeyId, OrgId};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::webhooks;

/// (kind, event type, the condition on `k` as of `$1`, days before expiry it is about).
const NOTICES: [(&str, &str, &str, Option<i64>); 3] = [
    (
        "expiring_7d",
        webhooks::KEY_EXPIRING,
        "k.expires_at > $1 AND k.expires_at <= $1 + interval '7 days'",
        Some(7),
    ),
    (
        "expiring_1d",
        webhooks::KEY_EXPIRING,
        "k.expires_at > $1 AND k.expires_at <= $1 + interval '1 day'",
        Some(1),
    ),
    (
        "unused_90d",
        webhooks::KEY_UNUSED,
        "coalesce(k.last_used_at, k.created_at) < $1 - interval '90 days'",
        None,
    ),
];

#[derive(sqlx::FromRow)]
struct DueKey {
    id: uuid::Uuid,
    org_id: uuid::Uuid,
    name: String,
    expires_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
}

/// Records and enqueues the notices due at `now`; returns how many were new.
pub async fn sweep(pool: &PgPool, now: DateTime<Utc>) -> Result<usize, sqlx::Error> {
    let mut sent = 0;
    for (kind, event, condition, within_days) in NOTICES {
        let mut tx = pool.begin().await?;
        let rows: Vec<DueKey> = sqlx::query_as(&format!(
                "WITH due AS (
                    SELECT k.id, k.org_id, k.name, k.expires_at, k.last_used_at FROM api_keys k
                     WHERE {condition}
                       AND NOT k.disabled
                       AND (k.revoked_at IS NULL OR k.revoked_at > $1)
                       AND (k.expires_at IS NULL OR k.expires_at > $1)
                 ), fresh AS (
                    INSERT INTO key_notices (key_id, kind, created_at)
                    SELECT id, $2, $1 FROM due ON CONFLICT DO NOTHING RETURNING key_id
                 )
                 SELECT d.id, d.org_id, d.name, d.expires_at, d.last_used_at FROM due d JOIN fresh f ON f.key_id = d.id"
            ))
            .bind(now)
            .bind(kind)
            .fetch_all(&mut *tx)
            .await?;
        for DueKey {
            id: key,
            org_id: org,
            name,
            expires_at,
            last_used_at,
        } in rows
        {
            let data = serde_json::json!({
                "key_id": KeyId::from_uuid(key),
                "name": name,
                "expires_at": expires_at,
                "last_used_at": last_used_at,
                "within_days": within_days,
            });
            webhooks::enqueue(&mut tx, OrgId::from_uuid(org), event, data).await?;
            sent += 1;
        }
        tx.commit().await?;
    }
    Ok(sent)
}

/// The sweep task: at start and every `interval`.
pub async fn run(pool: PgPool, interval: Duration, shutdown: CancellationToken) {
    crate::jobs::every(interval, shutdown, || async {
        let pass = sweep(&pool, Utc::now()).instrument(tracing::info_span!("key_notices"));
        match pass.await {
            Ok(0) => {}
            Ok(n) => tracing::info!(notices = n, "key notices sent"),
            Err(e) => tracing::warn!(error = %e, "key notice sweep failed; retrying next interval"),
        }
    })
    .await;
}
