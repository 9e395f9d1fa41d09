//! `/v1/keys`: create, list, get, update, revoke, rotate.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use keyward_core::api::{
    ApiKey, CreateKeyRequest, CreatedKey, FieldError, KeyStatusFilter, ListKeysQuery, Page,
    RevokeKeyRequest, RotateKeyRequest, RotatedKey, UpdateKeyRequest,
};
use keyward_core::hash::{check_phc_policy, hash_token};
use keyward_core::validate::{self, FieldErrors};
use keyward_core::{ApiKeyToken, Environment, KeyId, KeyStatus};

use crate::audit::AuditEvent;
use crate::error::{AppError, AppResult, on_constraint};
use crate::extract::{AppJson, AppJsonOrEmpty, AppQuery};
use crate::http::auth::overloaded;
use crate::session::AdminSession;
use crate::state::AppState;
use crate::store::{self, keys::KeyRow, now_micros};

/// Default grace for rotation: the old key keeps working for a day.
const DEFAULT_ROTATION_GRACE_SECS: u32 = 24 * 3600;

type Problem = keyward_core::api::Problem;

/// A path id that is not a UUID names no key: 404, like any other unknown id.
fn key_id(raw: &str) -> AppResult<KeyId> {
    raw.parse().map_err(|_| AppError::key_not_found())
}

/// Generates a token and its argon2id hash on the blocking pool.
async fn mint(
    state: &AppState,
    environment: Environment,
    id: KeyId,
) -> AppResult<(ApiKeyToken, String)> {
    state
        .hasher
        .run(move || {
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
    let now = now_micros();
    let mut errs = FieldErrors::new();
    let name = errs.check(validate::name("name", &req.name));
    let description = errs.check(validate::free_text(
        "description",
        req.description.as_deref(),
        validate::DESCRIPTION_MAX_CHARS,
    ));
    let scopes = errs.check(validate::scopes(
        "scopes",
        req.scopes.as_deref().unwrap_or_default(),
    ));
    let allowed_ips = errs.check(validate::allowed_ips(
        "allowed_ips",
        req.allowed_ips.as_deref().unwrap_or_default(),
    ));
    let metadata = errs.check(
        req.metadata
            .as_ref()
            .map(|m| validate::metadata("metadata", m))
            .transpose(),
    );
    let expires_at = errs.check(
        req.expires_at
            .map(|t| validate::expires_at("expires_at", t, now))
            .transpose(),
    );
    let offline = match (req.id, req.secret_hash.as_deref()) {
        (None, None) => None,
        (Some(id), Some(hash)) => {
            if id.as_uuid().get_version_num() != 7 {
                errs.push(FieldError::new("id", "invalid_id", "must be a UUIDv7"));
            }
            if let Err(e) = check_phc_policy(hash) {
                errs.push(FieldError::new("secret_hash", "weak_hash", e.to_string()));
            }
            Some((id, hash.to_owned()))
        }
        (Some(_), None) => {
            errs.push(FieldError::new(
                "secret_hash",
                "required",
                "is required when `id` is given",
            ));
            None
        }
        (None, Some(_)) => {
            errs.push(FieldError::new(
                "id",
                "required",
                "is required when `secret_hash` is given",
            ));
            None
        }
    };
    errs.into_result()?;
    let (
        Some(name),
        Some(description),
        Some(scopes),
        Some(allowed_ips),
        Some(metadata),
        Some(expires_at),
    ) = (name, description, scopes, allowed_ips, metadata, expires_at)
    else {
        unreachable!("every field was checked above");
    };
    let environment = req.environment.unwrap_or_default();
    let (id, token, secret_hash) = match offline {
        Some((id, hash)) => (id, None, hash),
        None => {
            let id = KeyId::new();
            let (token, hash) = mint(&state, environment, id).await?;
            (id, Some(token), hash)
        }
    };
    let row = KeyRow {
        id: id.into_uuid(),
        org_id: session.org_id.into_uuid(),
        name,
        description,
        environment: environment.as_str().to_owned(),
        secret_hash,
        scopes: scopes.to_strings(),
        allowed_ips: allowed_ips.to_strings(),
        metadata: metadata.unwrap_or_else(|| serde_json::json!({})),
        disabled: false,
        expires_at,
        revoked_at: None,
        revoke_reason: None,
        rotated_from: None,
        replaced_by: None,
        lineage_id: id.into_uuid(),
        created_at: now,
        created_by: Some(session.admin_id.into_uuid()),
        updated_at: now,
        last_used_at: None,
        last_used_ip: None,
    };
    let key = row.to_api(now);
    let mut tx = state.pool.begin().await?;
    store::keys::insert(&mut tx, &row).await.map_err(|e| {
        on_constraint(
            e,
            &[(
                "api_keys_pkey",
                "key_exists",
                "a key with this id already exists",
            )],
        )
    })?;
    store::audit::append(
        &mut tx,
        &session.actor,
        AuditEvent::new("key.create", "key", id).after(&key),
    )
    .await?;
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
    Path(id): Path<String>,
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
    Path(id): Path<String>,
    AppJson(req): AppJson<UpdateKeyRequest>,
) -> AppResult<Json<ApiKey>> {
    session.require_write()?;
    let id = key_id(&id)?;
    let now = now_micros();
    let mut errs = FieldErrors::new();
    let name = errs.check(
        req.name
            .as_deref()
            .map(|n| validate::name("name", n))
            .transpose(),
    );
    let description = errs.check(
        req.description
            .as_ref()
            .map(|d| {
                validate::free_text("description", d.as_deref(), validate::DESCRIPTION_MAX_CHARS)
            })
            .transpose(),
    );
    let scopes = errs.check(
        req.scopes
            .as_deref()
            .map(|s| validate::scopes("scopes", s))
            .transpose(),
    );
    let allowed_ips = errs.check(
        req.allowed_ips
            .as_deref()
            .map(|s| validate::allowed_ips("allowed_ips", s))
            .transpose(),
    );
    let metadata = errs.check(
        req.metadata
            .as_ref()
            .map(|m| validate::metadata("metadata", m))
            .transpose(),
    );
    let expires_at = errs.check(
        req.expires_at
            .map(|e| {
                e.map(|t| validate::expires_at("expires_at", t, now))
                    .transpose()
            })
            .transpose(),
    );
    errs.into_result()?;

    let mut tx = state.pool.begin().await?;
    let before = store::keys::find_in_org(&mut tx, session.org_id, id, true)
        .await?
        .ok_or_else(AppError::key_not_found)?;
    if before.status(now) == KeyStatus::Revoked {
        return Err(AppError::Conflict {
            code: "key_revoked",
            detail: "a revoked key cannot be changed".into(),
        });
    }
    let mut row = before.clone();
    if let Some(Some(name)) = name {
        row.name = name;
    }
    if let Some(Some(description)) = description {
        row.description = description;
    }
    if let Some(Some(scopes)) = scopes {
        row.scopes = scopes.to_strings();
    }
    if let Some(Some(ips)) = allowed_ips {
        row.allowed_ips = ips.to_strings();
    }
    if let Some(Some(metadata)) = metadata {
        row.metadata = metadata;
    }
    if let Some(Some(expires_at)) = expires_at {
        row.expires_at = expires_at;
    }
    if let Some(disabled) = req.disabled {
        row.disabled = disabled;
    }
    let (old, mut new) = (before.to_api(now), row.to_api(now));
    new.updated_at = old.updated_at;
    if old == new {
        return Ok(Json(old));
    }
    row.updated_at = now;
    store::keys::update(&mut tx, &row).await?;
    let new = row.to_api(now);
    store::audit::append(
        &mut tx,
        &session.actor,
        AuditEvent::new("key.update", "key", id)
            .before(&old)
            .after(&new),
    )
    .await?;
    tx.commit().await?;
    state.verifier.invalidate(id);
    Ok(Json(new))
}

/// Revokes now, or after a grace period. Revocation only ever moves earlier: a second call can
/// shorten the grace, never extend it or undo it.
#[utoipa::path(post, path = "/v1/keys/{id}/revoke", tag = "keys", security(("session" = [])), request_body = RevokeKeyRequest,
    params(("id" = String, Path, description = "key id")),
    responses((status = 200, body = ApiKey), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn revoke(
    State(state): State<AppState>,
    session: AdminSession,
    Path(id): Path<String>,
    AppJsonOrEmpty(req): AppJsonOrEmpty<RevokeKeyRequest>,
) -> AppResult<Json<ApiKey>> {
    session.require_write()?;
    let id = key_id(&id)?;
    let now = now_micros();
    let mut errs = FieldErrors::new();
    let grace = errs.check(validate::grace_seconds(
        "grace_seconds",
        req.grace_seconds.unwrap_or(0),
    ));
    let reason = errs.check(validate::free_text(
        "reason",
        req.reason.as_deref(),
        validate::REASON_MAX_CHARS,
    ));
    errs.into_result()?;
    let (Some(grace), Some(reason)) = (grace, reason) else {
        unreachable!("checked above")
    };

    let mut tx = state.pool.begin().await?;
    let before = store::keys::find_in_org(&mut tx, session.org_id, id, true)
        .await?
        .ok_or_else(AppError::key_not_found)?;
    if before.status(now) == KeyStatus::Revoked {
        return Err(AppError::Conflict {
            code: "already_revoked",
            detail: "the key is already revoked".into(),
        });
    }
    let mut row = before.clone();
    row.revoked_at = Some(earliest(
        before.revoked_at,
        now + Duration::seconds(grace.into()),
    ));
    row.revoke_reason = reason.or(before.revoke_reason.clone());
    row.updated_at = now;
    store::keys::update(&mut tx, &row).await?;
    let (old, new) = (before.to_api(now), row.to_api(now));
    store::audit::append(
        &mut tx,
        &session.actor,
        AuditEvent::new("key.revoke", "key", id)
            .before(&old)
            .after(&new),
    )
    .await?;
    tx.commit().await?;
    state.verifier.invalidate(id);
    Ok(Json(new))
}

fn earliest(current: Option<DateTime<Utc>>, proposed: DateTime<Utc>) -> DateTime<Utc> {
    current.map_or(proposed, |c| c.min(proposed))
}

/// Issues a successor with every setting of the old key and retires the old one after a grace
/// period (0 for a leaked key). Both share a lineage, so their usage reads as one history.
#[utoipa::path(post, path = "/v1/keys/{id}/rotate", tag = "keys", security(("session" = [])), request_body = RotateKeyRequest,
    params(("id" = String, Path, description = "key id")),
    responses((status = 201, body = RotatedKey), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn rotate(
    State(state): State<AppState>,
    session: AdminSession,
    Path(id): Path<String>,
    AppJsonOrEmpty(req): AppJsonOrEmpty<RotateKeyRequest>,
) -> AppResult<(StatusCode, Json<RotatedKey>)> {
    session.require_write()?;
    let id = key_id(&id)?;
    let grace = validate::grace_seconds(
        "grace_seconds",
        req.grace_seconds.unwrap_or(DEFAULT_ROTATION_GRACE_SECS),
    )?;

    let mut conn = state.pool.acquire().await?;
    let current = store::keys::find_in_org(&mut conn, session.org_id, id, false)
        .await?
        .ok_or_else(AppError::key_not_found)?;
    drop(conn);
    let environment: Environment = current.environment.parse().unwrap_or_default();
    let new_id = KeyId::new();
    let (token, secret_hash) = mint(&state, environment, new_id).await?;

    let now = now_micros();
    let mut tx = state.pool.begin().await?;
    let before = store::keys::find_in_org(&mut tx, session.org_id, id, true)
        .await?
        .ok_or_else(AppError::key_not_found)?;
    if before.status(now) == KeyStatus::Revoked {
        return Err(AppError::Conflict {
            code: "key_revoked",
            detail: "a revoked key cannot be rotated".into(),
        });
    }
    if let Some(successor) = before.replaced_by {
        return Err(AppError::Conflict {
            code: "already_rotated",
            detail: format!(
                "the key was already rotated; rotate its successor {successor} instead"
            ),
        });
    }
    // The expiry policy carries over as a lifetime: a key that lived 90 days gets 90 more.
    let expires_at = before
        .expires_at
        .map(|e| now + (e - before.created_at).max(Duration::hours(1)));
    let successor = KeyRow {
        id: new_id.into_uuid(),
        secret_hash,
        expires_at,
        revoked_at: None,
        revoke_reason: None,
        rotated_from: Some(before.id),
        replaced_by: None,
        created_at: now,
        created_by: Some(session.admin_id.into_uuid()),
        updated_at: now,
        last_used_at: None,
        last_used_ip: None,
        ..before.clone()
    };
    store::keys::insert(&mut tx, &successor).await?;
    let mut retired = before.clone();
    retired.revoked_at = Some(earliest(
        before.revoked_at,
        now + Duration::seconds(grace.into()),
    ));
    retired.revoke_reason = Some("rotated".to_owned());
    retired.replaced_by = Some(successor.id);
    retired.updated_at = now;
    store::keys::update(&mut tx, &retired).await?;
    let (key, previous) = (successor.to_api(now), retired.to_api(now));
    let event = AuditEvent::new("key.rotate", "key", id)
        .before(before.to_api(now))
        .after(serde_json::json!({"previous": &previous, "key": &key}));
    store::audit::append(&mut tx, &session.actor, event).await?;
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
