//! Per-organisation detector thresholds.

use keyward_core::OrgId;
use keyward_core::anomaly::Thresholds;
use sqlx::PgConnection;
use sqlx::types::Json;

/// The organisation's thresholds, or the defaults when none were set.
pub async fn thresholds(conn: &mut PgConnection, org: OrgId) -> Result<Thresholds, sqlx::Error> {
    let stored: Option<Json<serde_json::Value>> =
        sqlx::query_scalar("SELECT thresholds FROM alert_settings WHERE org_id = $1")
            .bind(org.into_uuid())
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
