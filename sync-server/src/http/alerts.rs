//! `/v1/alerts`: what the anomaly detectors found, and acknowledging it.

use axum::Json;
use axum::extract::State;
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
    let mut conn = state.pool.acquire().await?;
    let items = crate::store::alerts::list(&mut conn, session.org_id, status).await?;
    Ok(Json(AlertList { items }))
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
    let before = crate::store::alerts::find_for_update(&mut tx, session.org_id, id)
        .await?
        .ok_or_else(not_found)?;
    if before.status != AlertStatus::Open {
        return Err(AppError::Conflict {
            code: "alert_not_open",
            detail: format!(
                "the alert is {}; only open alerts are acknowledged",
                before.status.as_str()
            ),
        });
    }
    let now = now_micros();
    crate::store::alerts::ack(&mut tx, id, now, session.admin_id).await?;
    let after = Alert {
        status: AlertStatus::Acked,
        acked_at: Some(now),
        acked_by: Some(session.email.clone()),
        ..before.clone()
    };
    crate::store::audit::append(
        &mut tx,
        &session.actor,
        AuditEvent::new("alert.ack", "alert", id)
            .before(&before)
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
    crate::store::alerts::save_thresholds(
        &mut tx,
        session.org_id,
        &new,
        now_micros(),
        session.admin_id,
    )
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
