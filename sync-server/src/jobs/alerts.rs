//! The alerts job: once a minute, on one node at a time (a Postgres advisory lock), every key
//! with recent traffic or detectors already running is fed the 5-minute windows that closed since
//! its last pass (empty windows included, as the detectors' contract asks), from the minute
//! rollup. Findings open an alert (or refresh the live one of that key and kind); a condition that
//! no longer holds resolves its alert. Openings and resolutions are webhook events in the same
//! transaction. Networks first seen on the key in the same span feed the new-network detector.
//! Thresholds are the organisation's (`/v1/alerts/settings`), the defaults until changed.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use keyward_core::anomaly::{
    Finding, KeyMonitor, RECOMMENDED_WINDOW_SECS, Thresholds, WindowCounts,
};
use keyward_core::{KeyId, OrgId};
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::webhooks;
use keyward_core::api::webhooks::{AlertOpenedData, AlertResolvedData};

/// A new key's detectors start from this much history (what the minute rollup keeps at most).
const LOOKBACK: chrono::Duration = chrono::Duration::days(7);
/// Keys a pass looks at: traffic in this recent span, or detectors already running.
const ACTIVE_SPAN: chrono::Duration = chrono::Duration::hours(2);
const LOCK_ID: i64 = 0x6b77_616c_6572_7473; // "kwalerts"

fn window() -> chrono::Duration {
    chrono::Duration::seconds(i64::from(RECOMMENDED_WINDOW_SECS))
}

fn align(t: DateTime<Utc>) -> DateTime<Utc> {
    let w = i64::from(RECOMMENDED_WINDOW_SECS);
    let ts = t.timestamp();
    DateTime::from_timestamp(ts - ts.rem_euclid(w), 0).unwrap_or(t)
}

/// One pass as of `now`; returns the alerts opened. Skips (returns 0) when another node holds
/// the job's lock.
pub async fn run_once(pool: &PgPool, now: DateTime<Utc>) -> Result<usize, sqlx::Error> {
    let mut lock = pool.acquire().await?;
    let locked = sqlx::query_scalar!(r#"SELECT pg_try_advisory_lock($1) AS "locked!""#, LOCK_ID)
        .fetch_one(&mut *lock)
        .await?;
    if !locked {
        return Ok(0);
    }
    let result = pass(pool, now).await;
    sqlx::query_scalar!("SELECT pg_advisory_unlock($1)", LOCK_ID)
        .fetch_one(&mut *lock)
        .await?;
    result
}

async fn pass(pool: &PgPool, now: DateTime<Utc>) -> Result<usize, sqlx::Error> {
    let closed = align(now);
    let keys = sqlx::query!(
        "SELECT k.id, k.org_id FROM api_keys k
          WHERE k.id IN (SELECT DISTINCT key_id FROM usage_minute WHERE minute >= $1
                         UNION SELECT key_id FROM key_monitors)",
        now - ACTIVE_SPAN,
    )
    .fetch_all(pool)
    .await?;
    let mut opened = 0;
    let mut thresholds: HashMap<OrgId, Thresholds> = HashMap::new();
    for row in keys {
        let (key, org) = (row.id, OrgId::from_uuid(row.org_id));
        let mut tx = pool.begin().await?;
        let t = match thresholds.entry(org) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(crate::store::alerts::thresholds(&mut tx, org).await?)
            }
        };
        opened += feed_key(&mut tx, KeyId::from_uuid(key), org, t, closed, now).await?;
        tx.commit().await?;
    }
    Ok(opened)
}

async fn feed_key(
    conn: &mut PgConnection,
    key: KeyId,
    org: OrgId,
    thresholds: &Thresholds,
    closed: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<usize, sqlx::Error> {
    let stored = sqlx::query!(
        r#"SELECT state AS "state: Json<KeyMonitor>", fed_until FROM key_monitors
            WHERE key_id = $1 FOR UPDATE"#,
        key.as_uuid(),
    )
    .fetch_optional(&mut *conn)
    .await?;
    let (mut monitor, from) = match stored {
        Some(row) => (row.state.0, row.fed_until),
        None => {
            let first = sqlx::query_scalar!(
                "SELECT min(minute) FROM usage_minute WHERE key_id = $1 AND minute >= $2",
                key.as_uuid(),
                closed - LOOKBACK,
            )
            .fetch_one(&mut *conn)
            .await?;
            let Some(first) = first else { return Ok(0) };
            // The history fed next tells the idle detector when the key was last used.
            let monitor = KeyMonitor::new(RECOMMENDED_WINDOW_SECS)
                .unwrap_or_else(|_| unreachable!("the recommended window is valid"));
            (monitor, align(first))
        }
    };
    if from >= closed {
        return Ok(0);
    }
    let rows = sqlx::query!(
        "SELECT minute, outcome, count FROM usage_minute WHERE key_id = $1 AND minute >= $2 AND minute < $3 ORDER BY minute",
        key.as_uuid(),
        from,
        closed,
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut rows = rows
        .into_iter()
        .map(|r| (r.minute, r.outcome, r.count))
        .peekable();
    let mut opened = 0;
    let mut start = from;
    while start < closed {
        let end = start + window();
        let mut counts = WindowCounts::default();
        while let Some((minute, _, _)) = rows.peek()
            && *minute < end
        {
            let (_, outcome, n) = rows.next().unwrap_or_else(|| unreachable!("peeked"));
            counts.add(&outcome, n.max(0) as u64);
        }
        let report = monitor.observe_window(thresholds, start, &counts);
        for finding in &report.findings {
            opened += usize::from(open_or_refresh(conn, org, key, finding, now).await?);
        }
        for kind in &report.cleared {
            resolve(conn, org, key, kind.as_str(), now).await?;
        }
        start = end;
    }
    // Networks first seen in the same span, in order (one address of each is enough: the
    // detector judges the network).
    let networks =
        crate::store::usage::networks_first_seen(&mut *conn, key.into_uuid(), from, closed).await?;
    for n in networks {
        let Ok(net) = n.network.parse::<ipnet::IpNet>() else {
            continue;
        };
        if let Some(finding) = monitor.observe_address(thresholds, n.first_seen, net.addr()) {
            opened += usize::from(open_or_refresh(conn, org, key, &finding, now).await?);
        }
    }
    sqlx::query!(
        "INSERT INTO key_monitors (key_id, state, fed_until) VALUES ($1, $2, $3)
         ON CONFLICT (key_id) DO UPDATE SET state = EXCLUDED.state, fed_until = EXCLUDED.fed_until",
        key.as_uuid(),
        Json(&monitor) as _,
        closed,
    )
    .execute(&mut *conn)
    .await?;
    Ok(opened)
}

/// Opens an alert for the finding, or refreshes the live one of its key and kind; true when new.
async fn open_or_refresh(
    conn: &mut PgConnection,
    org: OrgId,
    key: KeyId,
    f: &Finding,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let refreshed = sqlx::query!(
        "UPDATE alerts SET observed = $3, expected = $4, window_start = $5, detail = $6, last_seen_at = $7
          WHERE key_id = $1 AND kind = $2 AND status <> 'resolved'",
        key.as_uuid(),
        f.kind.as_str(),
        f.observed,
        f.expected,
        f.window_start,
        f.detail,
        now,
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if refreshed > 0 {
        return Ok(false);
    }
    let id = uuid::Uuid::now_v7();
    sqlx::query!(
        "INSERT INTO alerts (id, org_id, key_id, kind, status, observed, expected, window_start, window_secs,
            detail, opened_at, last_seen_at)
         VALUES ($1, $2, $3, $4, 'open', $5, $6, $7, $8, $9, $10, $10)",
        id,
        org.as_uuid(),
        key.as_uuid(),
        f.kind.as_str(),
        f.observed,
        f.expected,
        f.window_start,
        i32::try_from(f.window_secs).unwrap_or(i32::MAX),
        f.detail,
        now,
    )
    .execute(&mut *conn)
    .await?;
    let event = webhooks::WebhookEvent::AlertOpened(AlertOpenedData {
        alert_id: id,
        key_id: key,
        kind: f.kind.as_str().to_owned(),
        observed: f.observed,
        expected: f.expected,
        window_start: f.window_start,
        window_secs: f.window_secs,
        detail: f.detail.clone(),
    });
    webhooks::enqueue(conn, org, &event).await?;
    Ok(true)
}

async fn resolve(
    conn: &mut PgConnection,
    org: OrgId,
    key: KeyId,
    kind: &str,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let ids = sqlx::query_scalar!(
        "UPDATE alerts SET status = 'resolved', resolved_at = $3
          WHERE key_id = $1 AND kind = $2 AND status <> 'resolved' RETURNING id",
        key.as_uuid(),
        kind,
        now,
    )
    .fetch_all(&mut *conn)
    .await?;
    for id in ids {
        let event = webhooks::WebhookEvent::AlertResolved(AlertResolvedData {
            alert_id: id,
            key_id: key,
            kind: kind.to_owned(),
        });
        webhooks::enqueue(conn, org, &event).await?;
    }
    Ok(())
}

/// The job: every `interval`.
pub async fn run(pool: PgPool, interval: Duration, shutdown: CancellationToken) {
    crate::jobs::every(interval, shutdown, || async {
        let pass = run_once(&pool, Utc::now()).instrument(tracing::info_span!("alerts"));
        match pass.await {
            Ok(0) => {}
            Ok(n) => tracing::info!(opened = n, "alerts opened"),
            Err(e) => tracing::warn!(error = %e, "alerts pass failed; retrying next interval"),
        }
    })
    .await;
}
