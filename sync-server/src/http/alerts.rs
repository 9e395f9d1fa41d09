//! `/v1/alerts`: what the anomaly detectors found, and acknowledging it.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use keyward_core::KeyId;
use keyward_core::anomaly::Thresholds;
use keyward_core::api::{Alert, AlertFilter, AlertList, AlertStatus, AlertsQuery};
use uuid::Uuid;

use crate::audit::AuditEvent;
use crate::error::{AppError, AppResult};
use crate::http::extract::{AppJson, AppPath, AppQuery};
use crate::session::AdminSession;
use crate::state::AppState;
use crate::store::now_micros;
use crate::webhooks;

type Problem = keyward_core::api::Problem;

type AlertRow = (
    Uuid,
    Uuid,
    String,
    String,
    String,
    f64,
    f64,
    DateTime<Utc>,
    i32,
    String,
    DateTime<Utc>,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
);

const SELECT: &str =
    "SELECT a.id, a.key_id, coalesce(k.name, ''), a.kind, a.status, a.observed, a.expected,
    a.window_start, a.window_secs, a.detail, a.opened_at, a.last_seen_at, a.acked_at, a.resolved_at
    FROM alerts a LEFT JOIN api_keys k ON k.id = a.key_id";

fn alert(r: AlertRow) -> Alert {
    let status = match r.4.as_str() {
        "acked" => AlertStatus::Acked,
        "resolved" => AlertStatus::Resolved,
        _ => AlertStatus::Open,
    };
    Alert {
        id: r.0,
        key_id: KeyId::from_uuid(r.1),
        key_name: r.2,
        kind: r.3,
        status,
        observed: r.5,
        expected: r.6,
        window_start: r.7,
        window_secs: r.8,
        detail: r.9,
        opened_at: r.10,
        last_seen_at: r.11,
        acked_at: r.12,
        resolved_at: r.13,
    }
}

/// The organisation's alerts, newest first (default: open ones; at most 500).
#[utoipa::path(get, path = "/v1/alerts", tag = "alerts", security(("session" = [])), params(AlertsQuery),
    responses((status = 200, body = AlertList), (status = 401, body = Problem), (status = 422, body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    session: AdminSession,
    AppQuery(q): AppQuery<AlertsQuery>,
) -> AppResult<Json<AlertList>> {
    let status = match q.status.unwrap_or_default() {
        AlertFilter::Open => Some("open"),
        AlertFilter::Acked => Some("acked"),
        AlertFilter::Resolved => Some("resolved"),
        AlertFilter::All => None,
    };
    let rows: Vec<AlertRow> = sqlx::query_as(&format!(
        "{SELECT} WHERE a.org_id = $1 AND ($2::text IS NULL OR a.status = $2) ORDER BY a.opened_at DESC, a.id DESC LIMIT 500"
    ))
    .bind(session.org_id.into_uuid())
    .bind(status)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(AlertList {
        items: rows.into_iter().map(alert).collect(),
    }))
}

/// Acknowledges an open alert (it still resolves by itself when the condition clears).
#[utoipa::path(post, path = "/v1/alerts/{id}/ack", tag = "alerts", security(("session" = [])),
    params(("id" = String, Path, description = "alert id")),
    responses((status = 200, body = Alert), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn ack(
    State(state): State<AppState>,
    session: AdminSession,
    AppPath(id): AppPath<String>,
) -> AppResult<Json<Alert>> {
    session.require_write()?;
    let not_found = || AppError::NotFound {
        code: "alert_not_found",
        detail: "no such alert in this organization".into(),
    };
    let id: Uuid = id.parse().map_err(|_| not_found())?;
    let mut tx = state.pool.begin().await?;
    let before: AlertRow = sqlx::query_as(&format!(
        "{SELECT} WHERE a.id = $1 AND a.org_id = $2 FOR UPDATE OF a"
    ))
    .bind(id)
    .bind(session.org_id.into_uuid())
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(not_found)?;
    if before.4 != "open" {
        return Err(AppError::Conflict {
            code: "alert_not_open",
            detail: format!(
                "the alert is {}; only open alerts are acknowledged",
                before.4
            ),
        });
    }
    let now = now_micros();
    sqlx::query("UPDATE alerts SET status = 'acked', acked_at = $2, acked_by = $3 WHERE id = $1")
        .bind(id)
        .bind(now)
        .bind(session.admin_id.into_uuid())
        .execute(&mut *tx)
        .await?;
    let after = Alert {
        status: AlertStatus::Acked,
        acked_at: Some(now),
        ..alert(before.clone())
    };
    crate::store::audit::append(
        &mut tx,
        &session.actor,
        AuditEvent::new("alert.ack", "alert", id)
            .before(alert(before))
            .after(&after),
    )
    .await?;
    webhooks::enqueue(
        &mut tx,
        session.org_id,
        &webhooks::WebhookEvent::AlertAcked(keyward_core::api::webhooks::AlertAckedData {
            alert_id: id,
            key_id: after.key_id,
            kind: after.kind.as_str().to_owned(),
            acked_by: session.email.clone(),
        }),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(after))
}

/// The organisation's anomaly detector thresholds (the defaults until changed).
#[utoipa::path(get, path = "/v1/alerts/settings", tag = "alerts", security(("session" = [])),
    responses((status = 200, body = Thresholds), (status = 401, body = Problem)))]
pub async fn settings(
    State(state): State<AppState>,
    session: AdminSession,
) -> AppResult<Json<Thresholds>> {
    let mut conn = state.pool.acquire().await?;
    Ok(Json(
        crate::store::alerts::thresholds(&mut conn, session.org_id).await?,
    ))
}

/// Replaces the organisation's detector thresholds; absent fields take their default. Every
/// out-of-range field is reported at once (422) and nothing is stored. Takes effect on the
/// next pass of the alerts job.
#[utoipa::path(put, path = "/v1/alerts/settings", tag = "alerts", security(("session" = [])),
    request_body = Thresholds,
    responses((status = 200, body = Thresholds), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 422, body = Problem)))]
pub async fn update_settings(
    State(state): State<AppState>,
    session: AdminSession,
    AppJson(new): AppJson<Thresholds>,
) -> AppResult<Json<Thresholds>> {
    session.require_write()?;
    new.validate()?;
    let mut tx = state.pool.begin().await?;
    let before = crate::store::alerts::thresholds(&mut tx, session.org_id).await?;
    sqlx::query(
        "INSERT INTO alert_settings (org_id, thresholds, updated_at, updated_by) VALUES ($1, $2, $3, $4)
         ON CONFLICT (org_id) DO UPDATE SET thresholds = EXCLUDED.thresholds,
            updated_at = EXCLUDED.updated_at, updated_by = EXCLUDED.updated_by",
    )
    .bind(session.org_id.into_uuid())
    .bind(sqlx::types::Json(&new))
    .bind(now_micros())
    .bind(session.admin_id.into_uuid())
    .execute(&mut *tx)
    .await?;
    crate::store::audit::append(
        &mut tx,
        &session.actor,
        AuditEvent::new("alerts.settings", "org", session.org_id.into_uuid())
            .before(&before)
            .after(&new),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(new))
}
