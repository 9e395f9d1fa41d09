//! Events about keys that happen by the passage of time, recorded once per key and kind in
//! `key_notices` with their webhook event enqueued in the same transaction, so sweeps on any
//! number of nodes, any number of times, notify once:
//!
//! * every `KEYWARD_KEY_EVENTS_INTERVAL_SECS` (default 30 s): a key whose expiry passed
//!   (`key.expired`), a key whose revocation took effect after a grace period — a rotated key's
//!   too (`key.revoked`; an immediate revocation is announced by the change itself, see
//!   [`crate::store::keys::announce_revoked`]);
//! * hourly: expiring within 7 days and within 1 day (`key.expiring`; a key found with a day
//!   or less left gets the 1-day notice only), unused for 90 days (`key.unused`).
//!
//! Expiries and revocations are looked for within the last day only, so an upgrade does not
//! announce history and a node down for longer than that does not flood endpoints.

use std::time::Duration;

use chrono::{DateTime, Utc};
use keyward_core::api::webhooks::{KeyExpiredData, KeyNoticeData, KeyRevokedData, WebhookEvent};
use keyward_core::{KeyId, OrgId};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::webhooks;

/// What a notice announces.
#[derive(Clone, Copy)]
enum Notice {
    Expiring(i64),
    Unused,
    Expired,
    Revoked,
}

/// The keys of one kind of notice that match `$condition` (on `k`, as of `$1` = `$now`) and
/// were not noticed yet, recorded in `key_notices` (at most 1,000 per pass), inside `$tx`.
/// `alive` also requires a key that is neither disabled, revoked nor expired as of `$1`.
macro_rules! claim {
    (alive $tx:expr, $now:expr, $kind:literal, $condition:literal) => {
        claim!($tx, $now, $kind, $condition + " AND NOT k.disabled
            AND (k.revoked_at IS NULL OR k.revoked_at > $1)
            AND (k.expires_at IS NULL OR k.expires_at > $1)")
    };
    ($tx:expr, $now:expr, $kind:literal, $($condition:tt)+) => {
        sqlx::query_as!(
            DueKey,
            r#"WITH due AS (
                SELECT k.id, k.org_id, k.name, k.expires_at, k.last_used_at, k.revoked_at,
                       k.revoke_reason, k.replaced_by
                  FROM api_keys k
                 WHERE "# + $($condition)+ + r#"
                 LIMIT 1000
             ), fresh AS (
                INSERT INTO key_notices (key_id, kind, created_at)
                SELECT id, '"# + $kind + r#"', $1 FROM due ON CONFLICT DO NOTHING RETURNING key_id
             )
             SELECT d.id AS "id!", d.org_id AS "org_id!", d.name AS "name!", d.expires_at,
                    d.last_used_at, d.revoked_at, d.revoke_reason, d.replaced_by
               FROM due d JOIN fresh f ON f.key_id = d.id"#,
            $now,
        )
        .fetch_all(&mut *$tx)
        .await?
    };
}

struct DueKey {
    id: uuid::Uuid,
    org_id: uuid::Uuid,
    name: String,
    expires_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    revoke_reason: Option<String>,
    replaced_by: Option<uuid::Uuid>,
}

impl DueKey {
    fn event(self, notice: Notice) -> Option<WebhookEvent> {
        let key_id = KeyId::from_uuid(self.id);
        let notice_data = |within_days| KeyNoticeData {
            key_id,
            name: self.name.clone(),
            expires_at: self.expires_at,
            last_used_at: self.last_used_at,
            within_days,
        };
        Some(match notice {
            Notice::Expiring(days) => WebhookEvent::KeyExpiring(notice_data(Some(days))),
            Notice::Unused => WebhookEvent::KeyUnused(notice_data(None)),
            Notice::Expired => WebhookEvent::KeyExpired(KeyExpiredData {
                key_id,
                name: self.name,
                expires_at: self.expires_at?,
            }),
            Notice::Revoked => WebhookEvent::KeyRevoked(KeyRevokedData {
                key_id,
                name: self.name,
                revoked_at: self.revoked_at?,
                reason: self.revoke_reason,
                replaced_by: self.replaced_by.map(KeyId::from_uuid),
            }),
        })
    }
}

/// Enqueues the event of each claimed key; returns how many.
async fn announce(
    tx: &mut sqlx::PgConnection,
    keys: Vec<DueKey>,
    notice: Notice,
) -> Result<usize, sqlx::Error> {
    let mut sent = 0;
    for key in keys {
        let org = OrgId::from_uuid(key.org_id);
        if let Some(event) = key.event(notice) {
            webhooks::enqueue(tx, org, &event).await?;
            sent += 1;
        }
    }
    Ok(sent)
}

/// Records and enqueues the hourly notices due at `now`; returns how many were new.
pub async fn sweep_hourly(pool: &PgPool, now: DateTime<Utc>) -> Result<usize, sqlx::Error> {
    let mut tx = pool.begin().await?;
    // A key with a day or less left hears only the nearer notice.
    let keys = claim!(alive tx, now, "expiring_7d",
        "k.expires_at > $1::timestamptz + interval '1 day' AND k.expires_at <= $1 + interval '7 days'");
    let mut sent = announce(&mut tx, keys, Notice::Expiring(7)).await?;
    tx.commit().await?;

    let mut tx = pool.begin().await?;
    let keys = claim!(alive tx, now, "expiring_1d",
        "k.expires_at > $1 AND k.expires_at <= $1 + interval '1 day'");
    sent += announce(&mut tx, keys, Notice::Expiring(1)).await?;
    tx.commit().await?;

    let mut tx = pool.begin().await?;
    let keys = claim!(alive tx, now, "unused_90d",
        "coalesce(k.last_used_at, k.created_at) < $1::timestamptz - interval '90 days'");
    sent += announce(&mut tx, keys, Notice::Unused).await?;
    tx.commit().await?;
    Ok(sent)
}

/// Records and enqueues the expiries and delayed revocations that took effect by `now`.
pub async fn sweep_due(pool: &PgPool, now: DateTime<Utc>) -> Result<usize, sqlx::Error> {
    let mut tx = pool.begin().await?;
    // Expired, unless a revocation took effect first.
    let keys = claim!(
        tx,
        now,
        "expired",
        "k.expires_at <= $1 AND k.expires_at > $1 - interval '1 day'
         AND (k.revoked_at IS NULL OR k.revoked_at > k.expires_at)"
    );
    let mut sent = announce(&mut tx, keys, Notice::Expired).await?;
    tx.commit().await?;

    let mut tx = pool.begin().await?;
    let keys = claim!(
        tx,
        now,
        "revoked",
        "k.revoked_at <= $1 AND k.revoked_at > $1 - interval '1 day'"
    );
    sent += announce(&mut tx, keys, Notice::Revoked).await?;
    tx.commit().await?;
    Ok(sent)
}

/// The sweep task for `sweep` every `interval`, from start.
async fn run_every<F, Fut>(
    name: &'static str,
    interval: Duration,
    shutdown: CancellationToken,
    pass: F,
) where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<usize, sqlx::Error>>,
{
    crate::jobs::every(interval, shutdown, || async {
        match pass().instrument(tracing::info_span!("key_notices", sweep = name)).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(notices = n, sweep = name, "key notices sent"),
            Err(e) => tracing::warn!(error = %e, sweep = name, "key notice sweep failed; retrying next interval"),
        }
    })
    .await;
}

/// The hourly sweep (expiring, unused).
pub async fn run(pool: PgPool, interval: Duration, shutdown: CancellationToken) {
    run_every("hourly", interval, shutdown, || {
        sweep_hourly(&pool, Utc::now())
    })
    .await;
}

/// The due sweep (expired, delayed revocations).
pub async fn run_due(pool: PgPool, interval: Duration, shutdown: CancellationToken) {
    run_every("due", interval, shutdown, || sweep_due(&pool, Utc::now())).await;
}
