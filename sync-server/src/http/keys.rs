//! `/v1/keys`: create, list, get, update, revoke, rotate. Handlers parse, mint outside the
//! transaction, run one operation of [`crate::keys`] in a transaction and answer.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use keyward_core::api::{
    ApiKey, CreateKeyRequest, CreatedKey, FieldError, KeyStatusFilter, ListKeysQuery, Page,
    RevokeKeyRequest, RotateKeyRequest, RotatedKey, UpdateKeyRequest,
};
use keyward_core::hash::hash_token;
use keyward_core::validate::{self, FieldErrors};
use keyward_core::{ApiKeyToken, Environment, KeyId};

use crate::error::{AppError, AppResult};
use crate::http::auth::overloaded;
use crate::http::extract::{AppJson, AppJsonOrEmpty, AppPath, AppQuery};
use crate::keys::{self, DEFAULT_ROTATION_GRACE_SECS};
use crate::session::AdminSession;
use crate::state::AppState;
use crate::store::{self, now_micros};

type Problem = keyward_core::api::Problem;

/// A path id that is not a UUID names no key: 404, like any other unknown id.
fn key_id(raw: &str) -> AppResult<KeyId> {
    raw.parse().map_err(|_| AppError::key_not_found())
}

/// Generates a token and its argon2id hash on the blocking pool, within the organisation's share
/// of the hashers.
async fn mint(
    state: &AppState,
    org: keyward_core::OrgId,
    environment: Environment,
    id: KeyId,
) -> AppResult<(ApiKeyToken, String)> {
    state
        .hasher
        .run_for(org, move || {
            let token = ApiKeyToken::generate(environment, id);
            let hash = hash_token(&token);
            (token, hash)
        })
        .await
        .map_err(|_| overloaded())
}

/// Issues a key. The token is in the answer and nowhere else; offline-created keys send their
/// own `id` and argon2id `secret_hash` instead and get no token.
#[utoipa::path(post, path = "/v1/keys", tag = "keys", security(("session" = [])), request_body = CreateKeyRequest,
    responses((status = 201, body = CreatedKey), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 409, body = Problem), (status = 413, body = Problem), (status = 422, body = Problem)))]
pub async fn create(
    State(state): State<AppState>,
    session: AdminSession,
    AppJson(req): AppJson<CreateKeyRequest>,
) -> AppResult<(StatusCode, Json<CreatedKey>)> {
    session.require_write()?;
    let new = keys::parse_create(&req, now_micros())?;
    let (id, token, secret_hash) = match new.offline.clone() {
        Some((id, hash)) => (id, None, hash),
        None => {
            let id = KeyId::new();
            let (token, hash) = mint(&state, session.org_id, new.environment, id).await?;
            (id, Some(token), hash)
        }
    };
    let mut tx = state.pool.begin().await?;
    let key = keys::create(
        &mut tx,
        &session.actor,
        new,
        id,
        secret_hash,
        now_micros(),
        state.config.keys.max_per_org,
    )
    .await?;
    if let Some(sealed) = token
        .as_ref()
        .and_then(|t| state.verifier.seal(t.expose_secret()))
    {
        store::keys::set_verifier(&mut *tx, id, &sealed).await?;
    }
    tx.commit().await?;
    // This node sees its own write at once; the others through NOTIFY.
    state.verifier.invalidate(id);
    let token = token.map(|t| t.expose_secret().to_owned());
    Ok((StatusCode::CREATED, Json(CreatedKey { key, token })))
}

fn encode_cursor(id: KeyId) -> String {
    URL_SAFE_NO_PAD.encode(id.as_uuid().as_bytes())
}

fn decode_cursor(raw: &str) -> Result<KeyId, FieldError> {
    URL_SAFE_NO_PAD
        .decode(raw)
        .ok()
        .and_then(|b| uuid::Uuid::from_slice(&b).ok())
        .map(KeyId::from_uuid)
        .ok_or_else(|| {
            FieldError::new(
                "cursor",
                "invalid_cursor",
                "is not a cursor this server issued",
            )
        })
}

/// The organisation's keys, newest first, filtered by status.
#[utoipa::path(get, path = "/v1/keys", tag = "keys", security(("session" = [])), params(ListKeysQuery),
    responses((status = 200, body = Page<ApiKey>), (status = 401, body = Problem), (status = 422, body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    session: AdminSession,
    AppQuery(q): AppQuery<ListKeysQuery>,
) -> AppResult<Json<Page<ApiKey>>> {
    let mut errs = FieldErrors::new();
    let limit = errs.check(validate::page_limit("limit", q.limit));
    let after = errs.check(q.cursor.as_deref().map(decode_cursor).transpose());
    errs.into_result()?;
    let (Some(limit), Some(after)) = (limit, after) else {
        unreachable!("checked above")
    };
    let mut rows = store::keys::list(
        &mut *state.pool.acquire().await?,
        session.org_id,
        q.status.unwrap_or(KeyStatusFilter::All),
        after,
        limit + 1,
    )
    .await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let now = Utc::now();
    let next_cursor = more
        .then(|| rows.last().map(|r| encode_cursor(KeyId::from_uuid(r.id))))
        .flatten();
    Ok(Json(Page {
        items: rows.iter().map(|r| r.to_api(now)).collect(),
        next_cursor,
    }))
}

/// One key of the organisation; another organisation's key is a 404.
#[utoipa::path(get, path = "/v1/keys/{id}", tag = "keys", security(("session" = [])),
    params(("id" = String, Path, description = "key id")),
    responses((status = 200, body = ApiKey), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn get(
    State(state): State<AppState>,
    session: AdminSession,
    AppPath(id): AppPath<String>,
) -> AppResult<Json<ApiKey>> {
    let id = key_id(&id)?;
    let row =
        store::keys::find_in_org(&mut *state.pool.acquire().await?, session.org_id, id, false)
            .await?
            .ok_or_else(AppError::key_not_found)?;
    Ok(Json(row.to_api(Utc::now())))
}

/// Changes name, description, scopes, allowed IPs, expiry, metadata or the disabled switch.
/// A revoked key cannot be changed: revocation is final.
#[utoipa::path(patch, path = "/v1/keys/{id}", tag = "keys", security(("session" = [])), request_body = UpdateKeyRequest,
    params(("id" = String, Path, description = "key id")),
    responses((status = 200, body = ApiKey), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn update(
    State(state): State<AppState>,
    session: AdminSession,
    AppPath(id): AppPath<String>,
    AppJson(req): AppJson<UpdateKeyRequest>,
) -> AppResult<Json<ApiKey>> {
    session.require_write()?;
    let id = key_id(&id)?;
    let patch = keys::parse_update(&req, now_micros())?;
    let mut tx = state.pool.begin().await?;
    let key = keys::update(&mut tx, &session.actor, id, patch, None, now_micros()).await?;
    tx.commit().await?;
    state.verifier.invalidate(id);
    Ok(Json(key))
}

/// Revokes now, or after a grace period. Revocation only ever moves earlier: a second call can
/// shorten the grace, never extend it or undo it.
#[utoipa::path(post, path = "/v1/keys/{id}/revoke", tag = "keys", security(("session" = [])), request_body = Option<RevokeKeyRequest>,
    params(("id" = String, Path, description = "key id")),
    responses((status = 200, body = ApiKey), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn revoke(
    State(state): State<AppState>,
    session: AdminSession,
    AppPath(id): AppPath<String>,
    AppJsonOrEmpty(req): AppJsonOrEmpty<RevokeKeyRequest>,
) -> AppResult<Json<ApiKey>> {
    session.require_write()?;
    let id = key_id(&id)?;
    let (grace, reason) = keys::parse_revoke(&req)?;
    let mut tx = state.pool.begin().await?;
    let key = keys::revoke(&mut tx, &session.actor, id, grace, reason, now_micros()).await?;
    tx.commit().await?;
    state.verifier.invalidate(id);
    Ok(Json(key))
}

/// Issues a successor with every setting of the old key and retires the old one after a grace
/// period (0 for a leaked key). Both share a lineage, so their usage reads as one history.
#[utoipa::path(post, path = "/v1/keys/{id}/rotate", tag = "keys", security(("session" = [])), request_body = Option<RotateKeyRequest>,
    params(("id" = String, Path, description = "key id")),
    responses((status = 201, body = RotatedKey), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn rotate(
    State(state): State<AppState>,
    session: AdminSession,
    AppPath(id): AppPath<String>,
    AppJsonOrEmpty(req): AppJsonOrEmpty<RotateKeyRequest>,
) -> AppResult<(StatusCode, Json<RotatedKey>)> {
    session.require_write()?;
    let id = key_id(&id)?;
    let grace = validate::grace_seconds(
        "grace_seconds",
        req.grace_seconds.unwrap_or(DEFAULT_ROTATION_GRACE_SECS),
    )?;
    let current =
        store::keys::find_in_org(&mut *state.pool.acquire().await?, session.org_id, id, false)
            .await?
            .ok_or_else(AppError::key_not_found)?;
    let environment: Environment = current.environment.parse().unwrap_or_default();
    let new_id = KeyId::new();
    let (token, secret_hash) = mint(&state, session.org_id, environment, new_id).await?;
    let mut tx = state.pool.begin().await?;
    let (key, previous) = keys::rotate(
        &mut tx,
        &session.actor,
        id,
        grace,
        new_id,
        secret_hash,
        now_micros(),
    )
    .await?;
    if let Some(sealed) = state.verifier.seal(token.expose_secret()) {
        store::keys::set_verifier(&mut *tx, new_id, &sealed).await?;
    }
    tx.commit().await?;
    state.verifier.invalidate(id);
    state.verifier.invalidate(new_id);
    Ok((
        StatusCode::CREATED,
        Json(RotatedKey {
            key,
            token: token.expose_secret().to_owned(),
            previous,
        }),
    ))
}

/// The key's usage by outcome, together with every key of its rotation lineage.
#[utoipa::path(get, path = "/v1/keys/{id}/usage", tag = "keys", security(("session" = [])),
    params(("id" = String, Path, description = "key id"), keyward_core::api::UsageQuery),
    responses((status = 200, body = keyward_core::api::UsageResponse), (status = 401, body = Problem),
              (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn usage(
    State(state): State<AppState>,
    session: AdminSession,
    AppPath(id): AppPath<String>,
    AppQuery(q): AppQuery<keyward_core::api::UsageQuery>,
) -> AppResult<Json<keyward_core::api::UsageResponse>> {
    let id = key_id(&id)?;
    let granularity = q.granularity.unwrap_or_default();
    let (from, to) = crate::http::usage::period(
        q.from,
        q.to,
        chrono::Duration::hours(24),
        granularity.max_span(),
        granularity.as_str(),
    )?;
    let mut conn = state.pool.acquire().await?;
    let key = store::keys::find_in_org(&mut conn, session.org_id, id, false)
        .await?
        .ok_or_else(AppError::key_not_found)?;
    let series =
        store::usage::series(&mut conn, key.lineage_id, key.org_id, granularity, from, to).await?;
    Ok(Json(keyward_core::api::UsageResponse {
        granularity,
        series,
    }))
}
