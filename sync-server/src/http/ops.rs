use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::error::{AppError, AppResult};
use crate::state::AppState;

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "up")))]
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// The database answers.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "ready"), (status = 503, description = "database unreachable", body = keyward_core::api::Problem)))]
pub async fn readyz(State(state): State<AppState>) -> AppResult<Json<Value>> {
    let ping = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        sqlx::query("SELECT 1").execute(&state.pool),
    )
    .await;
    match ping {
        Ok(Ok(_)) => Ok(Json(json!({"status": "ready"}))),
        _ => Err(AppError::Unavailable {
            code: "database_unavailable",
            detail: "the database is unreachable".into(),
            retry_after_secs: Some(1),
        }),
    }
}

/// This document.
pub async fn openapi() -> impl IntoResponse {
    Json(crate::openapi::document())
}
