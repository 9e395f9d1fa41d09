//! Alerts as the admin API reads and acknowledges them, and the per-organisation detector
//! thresholds. (What the detector writes: `jobs::alerts`.)

use chrono::{DateTime, Utc};
use keyward_core::anomaly::Thresholds;
use keyward_core::api::{Alert, AlertStatus};
use keyward_core::{AdminId, KeyId, OrgId};
use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;

struct AlertRow {
    id: Uuid,
    key_id: Uuid,
    key_name: String,
    kind: String,
    status: String,
    observed: f64,
    expected: f64,
    window_start: DateTime<Utc>,
    window_secs: i32,
    detail: String,
    opened_at: DateTime<Utc>,
    last_seen_at: DateTime<Utc>,
    acked_at: Option<DateTime<Utc>>,
    acked_by: Option<String>,
    resolved_at: Option<DateTime<Utc>>,
}

impl From<AlertRow> for Alert {
    fn from(r: AlertRow) -> Self {
        let status = match r.status.as_str() {
            "acked" => AlertStatus::Acked,
            "resolved" => AlertStatus::Resolved,
            _ => AlertStatus::Open,
        };
        Alert {
            id: r.id,
            key_id: KeyId::from_uuid(r.key_id),
            key_name: r.key_name,
            kind: r.kind,
            status,
            observed: r.observed,
            expected: r.expected,
            window_start: r.window_start,
            window_secs: r.window_secs,
            detail: r.detail,
            opened_at: r.opened_at,
            last_seen_at: r.last_seen_at,
            acked_at: r.acked_at,
            acked_by: r.acked_by,
            resolved_at: r.resolved_at,
        }
    }
}

/// `query_as!(AlertRow, ...)` for `SELECT <every AlertRow column> FROM alerts a ... <tail>`.
macro_rules! select_alerts {
    ($tail:literal $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            AlertRow,
            r#"SELECT a.id, a.key_id, coalesce(k.name, '') AS "key_name!", a.kind, a.status,
                a.observed, a.expected, a.window_start, a.window_secs, a.detail, a.opened_at,
                a.last_seen_at, a.acked_at, ad.email AS "acked_by?", a.resolved_at
               FROM alerts a LEFT JOIN api_keys k ON k.id = a.key_id
               LEFT JOIN admins ad ON ad.id = a.acked_by "# + $tail
            $(, $arg)*
        )
    };
}

/// The organisation's alerts in `status` (every status when `None`), newest first, at most 500.
pub async fn list(
    conn: &mut PgConnection,
    org: OrgId,
    status: Option<&str>,
) -> Result<Vec<Alert>, sqlx::Error> {
    let rows = select_alerts!(
        "WHERE a.org_id = $1 AND ($2::text IS NULL OR a.status = $2)
         ORDER BY a.opened_at DESC, a.id DESC LIMIT 500",
        org.as_uuid(),
        status,
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// One alert of `org`, locked for the rest of the transaction.
pub async fn find_for_update(
    conn: &mut PgConnection,
    org: OrgId,
    id: Uuid,
) -> Result<Option<Alert>, sqlx::Error> {
    let row = select_alerts!(
        "WHERE a.id = $1 AND a.org_id = $2 FOR UPDATE OF a",
        id,
        org.as_uuid(),
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(Into::into))
}

/// Marks the alert acknowledged by `by` at `at`.
pub async fn ack(
    conn: &mut PgConnection,
    id: Uuid,
    at: DateTime<Utc>,
    by: AdminId,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE alerts SET status = 'acked', acked_at = $2, acked_by = $3 WHERE id = $1",
        id,
        at,
        by.as_uuid(),
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Stores the organisation's thresholds.
pub async fn save_thresholds(
    conn: &mut PgConnection,
    org: OrgId,
    thresholds: &Thresholds,
    at: DateTime<Utc>,
    by: AdminId,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO alert_settings (org_id, thresholds, updated_at, updated_by) VALUES ($1, $2, $3, $4)
         ON CONFLICT (org_id) DO UPDATE SET thresholds = EXCLUDED.thresholds,
            updated_at = EXCLUDED.updated_at, updated_by = EXCLUDED.updated_by",
        org.as_uuid(),
        Json(thresholds) as _,
        at,
        by.as_uuid(),
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The organisation's thresholds, or the defaults when none were set.
pub async fn thresholds(conn: &mut PgConnection, org: OrgId) -> Result<Thresholds, sqlx::Error> {
    let stored = sqlx::query_scalar!(
        r#"SELECT thresholds AS "thresholds: Json<serde_json::Value>" FROM alert_settings
            WHERE org_id = $1"#,
        org.as_uuid(),
    )
    .fetch_optional(conn)
    .await?;
    // A row written by another version that no longer parses falls back to the defaults (and
    // says so) rather than stopping the alerts of the organisation.
    Ok(stored
        .and_then(|Json(v)| {
            serde_json::from_value(v)
                .inspect_err(|e| tracing::warn!(%org, error = %e, "stored thresholds unreadable; using the defaults"))
                .ok()
        })
        .unwrap_or_default())
}
