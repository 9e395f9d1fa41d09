use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::error::{AppError, AppResult};
use crate::limits::Mode;
use crate::metrics::ModeLabel;
use crate::state::AppState;

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "up")))]
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// The database answers. The detail also names the limiter's mode and whether audit chain heads
/// are signed, with the public key to check them against (`audit.public_key`).
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "ready"), (status = 503, description = "database unreachable", body = keyward_core::api::Problem)))]
pub async fn readyz(State(state): State<AppState>) -> AppResult<Json<Value>> {
    let ping = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        crate::store::ping(&state.pool),
    )
    .await;
    match ping {
        Ok(Ok(_)) => {
            let limiter = &state.verifier.limiter;
            let mut limits = json!({"mode": limiter.mode().as_str()});
            if let Some(redis) = limiter.redis() {
                let c = &redis.counters;
                limits["redis"] = json!({
                    "healthy": redis.healthy(),
                    "fallbacks": c.fallbacks.get(),
                    "errors": c.errors.get(),
                    "calls": c.calls.get(),
                    "requests": c.requests.get(),
                });
            }
            let audit = match state.audit_key() {
                Some(key) => json!({"mode": "signed", "public_key": key.to_base64()}),
                None => json!({
                    "mode": "unsigned",
                    "warning": "audit chain heads are not signed: set KEYWARD_AUDIT_SIGNING_KEY",
                }),
            };
            Ok(Json(
                json!({"status": "ready", "limits": limits, "audit": audit}),
            ))
        }
        _ => Err(AppError::Unavailable {
            code: "database_unavailable",
            detail: "the database is unreachable".into(),
            retry_after_secs: Some(1),
        }),
    }
}

/// Prometheus metrics (OpenMetrics text).
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "OpenMetrics text")))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let current = state.verifier.limiter.mode();
    for mode in [Mode::Local, Mode::Redis, Mode::Fallback] {
        state
            .metrics
            .limiter_mode
            .get_or_create(&ModeLabel {
                mode: mode.as_str(),
            })
            .set(i64::from(mode == current));
    }
    state
        .metrics
        .usage_flush_lag
        .set(state.usage.flush_lag_secs(chrono::Utc::now()));
    state
        .metrics
        .usage_pending
        .set(i64::try_from(state.usage.pending_rows()).unwrap_or(i64::MAX));
    state
        .metrics
        .known_key_ids
        .set(i64::try_from(state.verifier.known_ids()).unwrap_or(i64::MAX));
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}

/// This document.
pub async fn openapi() -> impl IntoResponse {
    Json(crate::http::openapi::document().clone())
}
