//! Key operations shared by the admin API and sync push: input rules, the change inside the
//! caller's transaction, and its audit entry. Minting a token (argon2) happens before the
//! transaction, in the caller, so no lock is held while hashing.

use chrono::{DateTime, Duration, Utc};
use keyward_core::api::ApiKey;
use keyward_core::api::webhooks::{KeyRotatedData, WebhookEvent};
pub use keyward_core::requests::{
    DEFAULT_ROTATION_GRACE_SECS, KeyPatch, NewKey, offline_secret, parse_create, parse_revoke,
    parse_update,
};
use keyward_core::{KeyId, KeyStatus};
use sqlx::PgConnection;
use sqlx::types::Json;

use crate::audit::{Actor, AuditEvent};
use crate::error::{AppError, AppResult, on_constraint};
use crate::store::{self, keys::KeyRow};

/// A key naming a tier its organisation does not have.
const UNKNOWN_TIER: (&str, &str, &str) = (
    "api_keys_tier_fkey",
    "unknown_tier",
    "the organisation has no tier of that name",
);

/// Refuses a tier the organisation does not have, naming the field.
async fn check_tier(conn: &mut PgConnection, actor: &Actor, tier: Option<&str>) -> AppResult<()> {
    if let Some(name) = tier
        && !store::tiers::exists(conn, actor.org_id, name).await?
    {
        return Err(AppError::field(
            "tier",
            "unknown_tier",
            format!("the organization has no tier named {name:?}"),
        ));
    }
    Ok(())
}

/// Inserts the key and audits it; `id` and `secret_hash` are minted or offline-made. An
/// organisation holds at most `max_keys` keys that are not revoked (409 `key_limit_reached`).
pub async fn create(
    conn: &mut PgConnection,
    actor: &Actor,
    new: NewKey,
    id: KeyId,
    secret_hash: String,
    now: DateTime<Utc>,
    max_keys: u64,
) -> AppResult<ApiKey> {
    // The audit head first: it serialises the organisation's writes (so two creations cannot
    // both pass the count) and is the lock every write takes first.
    store::audit::lock_head(conn, actor.org_id).await?;
    let held = store::keys::count_unrevoked(conn, actor.org_id).await?;
    if u64::try_from(held).unwrap_or(0) >= max_keys {
        return Err(AppError::Conflict {
            code: "key_limit_reached",
            detail: format!(
                "an organization holds at most {max_keys} keys that are not revoked; revoke one first"
            ),
        });
    }
    check_tier(conn, actor, new.tier.as_deref()).await?;
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
        usage_seq: 0,
        tier: new.tier,
        rate_limits: new.rate_limits.map(Json),
        quota: new.quota.map(Json),
    };
    let key = row.to_api(now);
    store::keys::insert(conn, &row).await.map_err(|e| {
        on_constraint(
            e,
            &[
                (
                    "api_keys_pkey",
                    "key_exists",
                    "a key with this id already exists",
                ),
                UNKNOWN_TIER,
            ],
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
    if let Some(Some(tier)) = &patch.tier {
        check_tier(conn, actor, Some(tier)).await?;
    }
    // `base_seq` is the change position the device last pulled: newer use moves that past the
    // last edit, which is no conflict; an edit after it is.
    if base_seq.is_some_and(|b| b < before.seq) {
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
    if let Some(tier) = patch.tier {
        row.tier = tier;
    }
    if let Some(rules) = patch.rate_limits {
        row.rate_limits = rules.map(Json);
    }
    if let Some(quota) = patch.quota {
        row.quota = quota.map(Json);
    }
    let old = before.to_api(now);
    if old == row.to_api(now) {
        return Ok(old);
    }
    row.updated_at = now;
    store::keys::update(conn, &row)
        .await
        .map_err(|e| on_constraint(e, &[UNKNOWN_TIER]))?;
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
    store::keys::update(conn, &row)
        .await
        .map_err(|e| on_constraint(e, &[UNKNOWN_TIER]))?;
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
        usage_seq: 0,
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
    let rotated = WebhookEvent::KeyRotated(KeyRotatedData {
        key_id: id,
        name: retired.name.clone(),
        new_key_id: new_id,
        retires_at: retired.revoked_at.unwrap_or(now),
    });
    crate::webhooks::enqueue(conn, actor.org_id, &rotated).await?;
    let (key, previous) = (successor.to_api(now), retired.to_api(now));
    let event = AuditEvent::new("key.rotate", "key", id)
        .before(before.to_api(now))
        .after(serde_json::json!({"previous": &previous, "key": &key}));
    store::audit::append(conn, actor, event).await?;
    Ok((key, previous))
}
