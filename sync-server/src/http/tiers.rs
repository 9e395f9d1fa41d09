//! `/v1/tiers`: named rule sets of an organisation that keys inherit. A change reaches every
//! node's cached keys through the same NOTIFY path as a key change.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use keyward_core::api::{CreateTierRequest, Page, Tier, UpdateTierRequest};
use keyward_core::requests::{TierSpec, parse_tier_create, parse_tier_update};
use sqlx::types::Json as SqlJson;
use uuid::Uuid;

use crate::audit::AuditEvent;
use crate::error::{AppError, AppResult, on_constraint};
use crate::http::extract::{AppJson, AppPath};
use crate::session::AdminSession;
use crate::state::AppState;
use crate::store::tiers::TierRow;
use crate::store::{self, now_micros};

type Problem = keyward_core::api::Problem;

fn not_found() -> AppError {
    AppError::NotFound {
        code: "tier_not_found",
        detail: "no such tier in this organization".into(),
    }
}

/// A tier name from the path: one that no tier could have (a control character, such as the
/// NUL PostgreSQL cannot even compare, or too long) names no tier.
fn tier_name(raw: String) -> AppResult<String> {
    if raw.is_empty() || raw.chars().count() > 100 || raw.chars().any(char::is_control) {
        return Err(not_found());
    }
    Ok(raw)
}

fn spec(row: &TierRow) -> TierSpec {
    TierSpec {
        name: row.name.clone(),
        rate_limits: row.rate_limits.0.clone(),
        quota: row.quota.as_ref().map(|q| q.0.clone()),
        soft_threshold: row.soft_threshold,
    }
}

/// The organisation's tiers by name.
#[utoipa::path(get, path = "/v1/tiers", tag = "limits", security(("session" = [])),
    responses((status = 200, body = Page<Tier>), (status = 401, body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    session: AdminSession,
) -> AppResult<Json<Page<Tier>>> {
    let rows = store::tiers::list(&mut *state.pool.acquire().await?, session.org_id).await?;
    Ok(Json(Page {
        items: rows.iter().map(TierRow::to_api).collect(),
        next_cursor: None,
    }))
}

#[utoipa::path(get, path = "/v1/tiers/{name}", tag = "limits", security(("session" = [])),
    params(("name" = String, Path, description = "tier name")),
    responses((status = 200, body = Tier), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn get(
    State(state): State<AppState>,
    session: AdminSession,
    AppPath(name): AppPath<String>,
) -> AppResult<Json<Tier>> {
    let name = tier_name(name)?;
    let row = store::tiers::find(
        &mut *state.pool.acquire().await?,
        session.org_id,
        &name,
        false,
    )
    .await?
    .ok_or_else(not_found)?;
    Ok(Json(row.to_api()))
}

/// Creates a tier: rules, quota, soft threshold (default 0.8).
#[utoipa::path(post, path = "/v1/tiers", tag = "limits", security(("session" = [])), request_body = CreateTierRequest,
    responses((status = 201, body = Tier), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create(
    State(state): State<AppState>,
    session: AdminSession,
    AppJson(req): AppJson<CreateTierRequest>,
) -> AppResult<(StatusCode, Json<Tier>)> {
    session.require_write()?;
    let spec = parse_tier_create(&req)?;
    let now = now_micros();
    let row = TierRow {
        id: Uuid::now_v7(),
        org_id: session.org_id.into_uuid(),
        name: spec.name,
        rate_limits: SqlJson(spec.rate_limits),
        quota: spec.quota.map(SqlJson),
        soft_threshold: spec.soft_threshold,
        created_at: now,
        updated_at: now,
        keys: 0,
    };
    let tier = row.to_api();
    let mut tx = state.pool.begin().await?;
    store::tiers::insert(&mut tx, &row).await.map_err(|e| {
        on_constraint(
            e,
            &[(
                "tiers_org_name_key",
                "tier_exists",
                "a tier of this name already exists",
            )],
        )
    })?;
    store::audit::append(
        &mut tx,
        &session.actor,
        AuditEvent::new("tier.create", "tier", &tier.name).after(&tier),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(tier)))
}

/// Changes a tier's rules, quota or threshold; every node applies it to the tier's keys at once.
#[utoipa::path(patch, path = "/v1/tiers/{name}", tag = "limits", security(("session" = [])), request_body = UpdateTierRequest,
    params(("name" = String, Path, description = "tier name")),
    responses((status = 200, body = Tier), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn update(
    State(state): State<AppState>,
    session: AdminSession,
    AppPath(name): AppPath<String>,
    AppJson(req): AppJson<UpdateTierRequest>,
) -> AppResult<Json<Tier>> {
    let name = tier_name(name)?;
    session.require_write()?;
    let mut tx = state.pool.begin().await?;
    // The audit head first, like every other write (key creation included): one lock order,
    // so a key creation racing this edit cannot deadlock with it.
    store::audit::lock_head(&mut tx, session.org_id).await?;
    let before = store::tiers::find(&mut tx, session.org_id, &name, true)
        .await?
        .ok_or_else(not_found)?;
    let current = spec(&before);
    let next = parse_tier_update(&req, &current)?;
    if next == current {
        return Ok(Json(before.to_api()));
    }
    let row = TierRow {
        rate_limits: SqlJson(next.rate_limits),
        quota: next.quota.map(SqlJson),
        soft_threshold: next.soft_threshold,
        updated_at: now_micros(),
        ..before.clone()
    };
    store::tiers::update(&mut tx, &row).await?;
    let tier = row.to_api();
    store::audit::append(
        &mut tx,
        &session.actor,
        AuditEvent::new("tier.update", "tier", &tier.name)
            .before(before.to_api())
            .after(&tier),
    )
    .await?;
    tx.commit().await?;
    state.verifier.invalidate_all();
    Ok(Json(tier))
}

/// Deletes a tier no key names (409 `tier_in_use` otherwise).
#[utoipa::path(delete, path = "/v1/tiers/{name}", tag = "limits", security(("session" = [])),
    params(("name" = String, Path, description = "tier name")),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn delete(
    State(state): State<AppState>,
    session: AdminSession,
    AppPath(name): AppPath<String>,
) -> AppResult<StatusCode> {
    let name = tier_name(name)?;
    session.require_write()?;
    let mut tx = state.pool.begin().await?;
    store::audit::lock_head(&mut tx, session.org_id).await?;
    let row = store::tiers::find(&mut tx, session.org_id, &name, true)
        .await?
        .ok_or_else(not_found)?;
    if row.keys > 0 {
        return Err(AppError::Conflict {
            code: "tier_in_use",
            detail: format!(
                "{} key(s) use this tier; move them to another tier first",
                row.keys
            ),
        });
    }
    store::tiers::delete(&mut tx, &row).await.map_err(|e| {
        on_constraint(
            e,
            &[(
                "api_keys_tier_fkey",
                "tier_in_use",
                "keys use this tier; move them to another tier first",
            )],
        )
    })?;
    store::audit::append(
        &mut tx,
        &session.actor,
        AuditEvent::new("tier.delete", "tier", &row.name).before(row.to_api()),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
