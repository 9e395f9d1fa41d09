//! Key operations shared by the admin API and sync push: input rules, the change inside the
//! caller's transaction, and its audit entry. Minting a token (argon2) happens before the
//! transaction, in the caller, so no lock is held while hashing.

use chrono::{DateTime, Duration, Utc};
use keyward_core::api::{ApiKey, CreateKeyRequest, FieldError, RevokeKeyRequest, UpdateKeyRequest};
use keyward_core::hash::check_phc_policy;
use keyward_core::validate::{self, FieldErrors};
use keyward_core::{Environment, IpAllowList, KeyId, KeyStatus, ScopeSet};
use sqlx::PgConnection;

use crate::audit::{Actor, AuditEvent};
use crate::error::{AppError, AppResult, on_constraint};
use crate::store::{self, keys::KeyRow};

/// Default grace for rotation: the old key keeps working for a day.
pub const DEFAULT_ROTATION_GRACE_SECS: u32 = 24 * 3600;

/// A create request that passed every rule.
#[derive(Debug)]
pub struct NewKey {
    pub name: String,
    pub description: Option<String>,
    pub environment: Environment,
    pub scopes: ScopeSet,
    pub allowed_ips: IpAllowList,
    pub metadata: serde_json::Value,
    pub expires_at: Option<DateTime<Utc>>,
    /// Offline-created: the client's id and argon2id hash.
    pub offline: Option<(KeyId, String)>,
}

fn missing<T>(v: Option<T>) -> T {
    v.unwrap_or_else(|| unreachable!("every field was checked before"))
}

/// Applies every rule of a create request and reports every bad field at once.
pub fn parse_create(req: &CreateKeyRequest, now: DateTime<Utc>) -> AppResult<NewKey> {
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
            errs.check(offline_secret("id", id, "secret_hash", hash));
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
    Ok(NewKey {
        name: missing(name),
        description: missing(description),
        environment: req.environment.unwrap_or_default(),
        scopes: missing(scopes),
        allowed_ips: missing(allowed_ips),
        metadata: missing(metadata).unwrap_or_else(|| serde_json::json!({})),
        expires_at: missing(expires_at),
        offline,
    })
}

/// An id and hash made by a client: a UUIDv7 and an argon2id hash at or above our minimum.
pub fn offline_secret(
    id_field: &str,
    id: KeyId,
    hash_field: &str,
    hash: &str,
) -> Result<(), FieldError> {
    if id.as_uuid().get_version_num() != 7 {
        return Err(FieldError::new(id_field, "invalid_id", "must be a UUIDv7"));
    }
    check_phc_policy(hash).map_err(|e| FieldError::new(hash_field, "weak_hash", e.to_string()))
}

/// Inserts the key and audits it; `id` and `secret_hash` are minted or offline-made.
pub async fn create(
    conn: &mut PgConnection,
    actor: &Actor,
    new: NewKey,
    id: KeyId,
    secret_hash: String,
    now: DateTime<Utc>,
) -> AppResult<ApiKey> {
    let row = KeyRow {
        id: id.into_uuid(),
        org_id: actor.org_id.into_uuid(),
        name: new.name,
        description: new.description,
        environment: new.environment.as_str().to_owned(),
        secret_hash,
        scopes: new.scopes.to_strings(),
        allowed_ips: new.allowed_ips.to_strings(),
        metadata: new.metadata,
        disabled: false,
        expires_at: new.expires_at,
        revoked_at: None,
        revoke_reason: None,
        rotated_from: None,
        replaced_by: None,
        lineage_id: id.into_uuid(),
        created_at: now,
        created_by: actor.admin_id.map(|a| a.into_uuid()),
        updated_at: now,
        last_used_at: None,
        last_used_ip: None,
        seq: 0,
    };
    let key = row.to_api(now);
    store::keys::insert(conn, &row).await.map_err(|e| {
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
        conn,
        actor,
        AuditEvent::new("key.create", "key", id).after(&key),
    )
    .await?;
    Ok(key)
}

/// A patch that passed every rule; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct KeyPatch {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub scopes: Option<ScopeSet>,
    pub allowed_ips: Option<IpAllowList>,
    pub metadata: Option<serde_json::Value>,
    pub expires_at: Option<Option<DateTime<Utc>>>,
    pub disabled: Option<bool>,
}

pub fn parse_update(req: &UpdateKeyRequest, now: DateTime<Utc>) -> AppResult<KeyPatch> {
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
    Ok(KeyPatch {
        name: missing(name),
        description: missing(description),
        scopes: missing(scopes),
        allowed_ips: missing(allowed_ips),
        metadata: missing(metadata),
        expires_at: missing(expires_at),
        disabled: req.disabled,
    })
}

async fn locked(conn: &mut PgConnection, actor: &Actor, id: KeyId) -> AppResult<KeyRow> {
    store::keys::find_in_org(conn, actor.org_id, id, true)
        .await?
        .ok_or_else(AppError::key_not_found)
}

/// Applies a patch. A revoked key cannot change; with `base_seq`, neither can a key that
/// changed since the edit was made (an offline edit never overwrites a newer one).
pub async fn update(
    conn: &mut PgConnection,
    actor: &Actor,
    id: KeyId,
    patch: KeyPatch,
    base_seq: Option<i64>,
    now: DateTime<Utc>,
) -> AppResult<ApiKey> {
    let before = locked(conn, actor, id).await?;
    if before.status(now) == KeyStatus::Revoked {
        return Err(AppError::Conflict {
            code: "key_revoked",
            detail: "a revoked key cannot be changed".into(),
        });
    }
    if base_seq.is_some_and(|b| b != before.seq) {
        return Err(AppError::Conflict {
            code: "conflict",
            detail:
                "the key was changed on the server after this edit was made; review and edit again"
                    .into(),
        });
    }
    let mut row = before.clone();
    if let Some(name) = patch.name {
        row.name = name;
    }
    if let Some(description) = patch.description {
        row.description = description;
    }
    if let Some(scopes) = patch.scopes {
        row.scopes = scopes.to_strings();
    }
    if let Some(ips) = patch.allowed_ips {
        row.allowed_ips = ips.to_strings();
    }
    if let Some(metadata) = patch.metadata {
        row.metadata = metadata;
    }
    if let Some(expires_at) = patch.expires_at {
        row.expires_at = expires_at;
    }
    if let Some(disabled) = patch.disabled {
        row.disabled = disabled;
    }
    let old = before.to_api(now);
    if old == row.to_api(now) {
        return Ok(old);
    }
    row.updated_at = now;
    store::keys::update(conn, &row).await?;
    let new = row.to_api(now);
    store::audit::append(
        conn,
        actor,
        AuditEvent::new("key.update", "key", id)
            .before(&old)
            .after(&new),
    )
    .await?;
    Ok(new)
}

pub fn parse_revoke(req: &RevokeKeyRequest) -> AppResult<(u32, Option<String>)> {
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
    Ok((missing(grace), missing(reason)))
}

fn earliest(current: Option<DateTime<Utc>>, proposed: DateTime<Utc>) -> DateTime<Utc> {
    current.map_or(proposed, |c| c.min(proposed))
}

/// Revokes now or after `grace` seconds. Revocation only ever moves earlier: a second call can
/// shorten the grace, never extend or undo it.
pub async fn revoke(
    conn: &mut PgConnection,
    actor: &Actor,
    id: KeyId,
    grace: u32,
    reason: Option<String>,
    now: DateTime<Utc>,
) -> AppResult<ApiKey> {
    let before = locked(conn, actor, id).await?;
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
    store::keys::update(conn, &row).await?;
    let (old, new) = (before.to_api(now), row.to_api(now));
    store::audit::append(
        conn,
        actor,
        AuditEvent::new("key.revoke", "key", id)
            .before(&old)
            .after(&new),
    )
    .await?;
    Ok(new)
}

/// Issues the successor `new_id` with every setting of the old key and retires the old one
/// after `grace` seconds. Both share a lineage, so their usage reads as one history. Returns
/// (successor, retired).
pub async fn rotate(
    conn: &mut PgConnection,
    actor: &Actor,
    id: KeyId,
    grace: u32,
    new_id: KeyId,
    secret_hash: String,
    now: DateTime<Utc>,
) -> AppResult<(ApiKey, ApiKey)> {
    let before = locked(conn, actor, id).await?;
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
        created_by: actor.admin_id.map(|a| a.into_uuid()),
        updated_at: now,
        last_used_at: None,
        last_used_ip: None,
        ..before.clone()
    };
    store::keys::insert(conn, &successor).await.map_err(|e| {
        on_constraint(
            e,
            &[(
                "api_keys_pkey",
                "key_exists",
                "a key with the new id already exists",
            )],
        )
    })?;
    let mut retired = before.clone();
    retired.revoked_at = Some(earliest(
        before.revoked_at,
        now + Duration::seconds(grace.into()),
    ));
    retired.revoke_reason = Some("rotated".to_owned());
    retired.replaced_by = Some(successor.id);
    retired.updated_at = now;
    store::keys::update(conn, &retired).await?;
    let (key, previous) = (successor.to_api(now), retired.to_api(now));
    let event = AuditEvent::new("key.rotate", "key", id)
        .before(before.to_api(now))
        .after(serde_json::json!({"previous": &previous, "key": &key}));
    store::audit::append(conn, actor, event).await?;
    Ok((key, previous))
}
