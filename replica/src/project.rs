//! Pure projection: what a key looks like once queued local operations apply to it. The same
//! functions make the optimistic view when an edit is queued and re-make it on top of each new
//! server record, so the UI never shows an edit vanish and come back.

use chrono::{DateTime, Duration, Utc};
use keyward_core::api::{ApiKey, CreateKeyRequest, PushOp, UpdateKeyRequest};
use keyward_core::{Environment, IpAllowList, KeyId, KeyStatus, OrgId, ScopeSet};

use crate::store::outbox::QueuedOp;

/// The key prefix the server shows: `kw_live_<id>_`.
pub(crate) fn prefix(environment: Environment, id: KeyId) -> String {
    format!("kw_{}_{}_", environment.as_str(), id.to_base62())
}

fn refresh_status(key: &mut ApiKey, at: DateTime<Utc>) {
    key.status = KeyStatus::at(at, key.disabled, key.revoked_at, key.expires_at);
}

/// The provisional view of a key made offline from a validated request.
pub(crate) fn created(
    org_id: OrgId,
    id: KeyId,
    req: &CreateKeyRequest,
    at: DateTime<Utc>,
) -> ApiKey {
    let environment = req.environment.unwrap_or_default();
    let mut key = ApiKey {
        id,
        org_id,
        name: req.name.clone(),
        description: req.description.clone(),
        environment,
        prefix: prefix(environment, id),
        status: KeyStatus::Active,
        scopes: ScopeSet::parse(req.scopes.as_deref().unwrap_or_default()).unwrap_or_default(),
        allowed_ips: IpAllowList::parse(req.allowed_ips.as_deref().unwrap_or_default())
            .unwrap_or_default(),
        metadata: req
            .metadata
            .clone()
            .unwrap_or_else(|| serde_json::json!({})),
        disabled: false,
        expires_at: req.expires_at,
        revoked_at: None,
        revoke_reason: None,
        rotated_from: None,
        replaced_by: None,
        lineage_id: id,
        created_at: at,
        created_by: None,
        updated_at: at,
        last_used_at: None,
        last_used_ip: None,
        tier: req.tier.clone(),
        rate_limits: req.rate_limits.clone(),
        quota: req.quota.clone(),
    };
    refresh_status(&mut key, at);
    key
}

/// Applies a validated patch.
pub(crate) fn update(key: &mut ApiKey, patch: &UpdateKeyRequest, at: DateTime<Utc>) {
    let before = key.clone();
    if let Some(name) = &patch.name {
        key.name = name.clone();
    }
    if let Some(description) = &patch.description {
        key.description = description.clone();
    }
    if let Some(scopes) = &patch.scopes {
        key.scopes = ScopeSet::parse(scopes).unwrap_or_default();
    }
    if let Some(ips) = &patch.allowed_ips {
        key.allowed_ips = IpAllowList::parse(ips).unwrap_or_default();
    }
    if let Some(metadata) = &patch.metadata {
        key.metadata = metadata.clone();
    }
    if let Some(expires_at) = patch.expires_at {
        key.expires_at = expires_at;
    }
    if let Some(disabled) = patch.disabled {
        key.disabled = disabled;
    }
    if let Some(tier) = &patch.tier {
        key.tier = tier.clone();
    }
    if let Some(rules) = &patch.rate_limits {
        key.rate_limits = rules.clone();
    }
    if let Some(quota) = &patch.quota {
        key.quota = quota.clone();
    }
    if *key != before {
        key.updated_at = at;
    }
    refresh_status(key, at);
}

fn earliest(current: Option<DateTime<Utc>>, proposed: DateTime<Utc>) -> DateTime<Utc> {
    current.map_or(proposed, |c| c.min(proposed))
}

/// Revocation only moves earlier, as on the server.
pub(crate) fn revoke(key: &mut ApiKey, grace: u32, reason: Option<String>, at: DateTime<Utc>) {
    key.revoked_at = Some(earliest(
        key.revoked_at,
        at + Duration::seconds(grace.into()),
    ));
    key.revoke_reason = reason.or(key.revoke_reason.take());
    key.updated_at = at;
    refresh_status(key, at);
}

/// The old side of a rotation: retired after `grace`, pointing at its successor.
pub(crate) fn retire(key: &mut ApiKey, successor: KeyId, grace: u32, at: DateTime<Utc>) {
    key.revoked_at = Some(earliest(
        key.revoked_at,
        at + Duration::seconds(grace.into()),
    ));
    key.revoke_reason = Some("rotated".to_owned());
    key.replaced_by = Some(successor);
    key.updated_at = at;
    refresh_status(key, at);
}

/// The new side of a rotation: every setting of `old`, a fresh id, the same lineage, and the
/// expiry policy carried over as a lifetime (as the server does it).
pub(crate) fn successor(old: &ApiKey, new_id: KeyId, at: DateTime<Utc>) -> ApiKey {
    let mut key = ApiKey {
        id: new_id,
        prefix: prefix(old.environment, new_id),
        expires_at: old
            .expires_at
            .map(|e| at + (e - old.created_at).max(Duration::hours(1))),
        revoked_at: None,
        revoke_reason: None,
        rotated_from: Some(old.id),
        replaced_by: None,
        created_at: at,
        created_by: None,
        updated_at: at,
        last_used_at: None,
        last_used_ip: None,
        ..old.clone()
    };
    refresh_status(&mut key, at);
    key
}

/// Applies one queued operation to the key it acts on. Operations that create `key` (its
/// `create_key`, the rotation that made it) do nothing here: `key` exists already.
pub(crate) fn apply(key: &mut ApiKey, op: &QueuedOp) {
    if op.key_id != key.id {
        return;
    }
    let at = op.created_at;
    match &op.op {
        PushOp::CreateKey { .. } => {}
        PushOp::UpdateKey { data, .. } => update(key, data, at),
        PushOp::RevokeKey { data, .. } => {
            revoke(
                key,
                data.grace_seconds.unwrap_or(0),
                data.reason.clone(),
                at,
            );
        }
        PushOp::RotateKey { data, .. } => {
            retire(key, data.new_id, data.grace_seconds.unwrap_or(0), at);
        }
    }
}

/// `base` (a server record) with `ops` replayed in order.
pub(crate) fn replay(mut base: ApiKey, ops: &[QueuedOp]) -> ApiKey {
    for op in ops {
        apply(&mut base, op);
    }
    base
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_core::api::{RevokeKeyRequest, RotateOfflineRequest};
    use uuid::Uuid;

    fn key(at: DateTime<Utc>) -> ApiKey {
        created(
            OrgId::new(),
            KeyId::new(),
            &CreateKeyRequest {
                name: "ci".into(),
                scopes: Some(vec!["a:read".into()]),
                expires_at: Some(at + Duration::days(90)),
                ..Default::default()
            },
            at,
        )
    }

    fn rename(key_id: KeyId, patch: UpdateKeyRequest, at: DateTime<Utc>) -> QueuedOp {
        let op = PushOp::UpdateKey {
            op_id: Uuid::now_v7(),
            key_id,
            base_seq: None,
            data: patch,
        };
        QueuedOp::new(op, key_id, at)
    }

    #[test]
    fn replay_applies_operations_in_order_and_only_to_their_key() {
        let t0 = Utc::now();
        let base = key(t0);
        let t1 = t0 + Duration::minutes(1);
        let t2 = t0 + Duration::minutes(2);
        let revoke = PushOp::RevokeKey {
            op_id: Uuid::now_v7(),
            key_id: base.id,
            data: RevokeKeyRequest {
                grace_seconds: Some(60),
                reason: Some("leak".into()),
            },
        };
        let ops = [
            rename(
                base.id,
                UpdateKeyRequest {
                    name: Some("renamed".into()),
                    scopes: Some(vec!["b:write".into()]),
                    ..Default::default()
                },
                t1,
            ),
            rename(
                KeyId::new(),
                UpdateKeyRequest {
                    name: Some("other key".into()),
                    ..Default::default()
                },
                t1,
            ),
            QueuedOp::new(revoke, base.id, t2),
            rename(
                base.id,
                UpdateKeyRequest {
                    description: Some(Some("d".into())),
                    ..Default::default()
                },
                t2,
            ),
        ];
        let view = replay(base.clone(), &ops);
        assert_eq!(view.name, "renamed");
        assert_eq!(view.scopes.to_strings(), ["b:write"]);
        assert_eq!(view.description.as_deref(), Some("d"));
        assert_eq!(view.revoked_at, Some(t2 + Duration::seconds(60)));
        assert_eq!(view.revoke_reason.as_deref(), Some("leak"));
        assert_eq!(view.updated_at, t2);
        assert_eq!(view.status, KeyStatus::Active, "still in its grace period");
        assert_eq!(replay(base.clone(), &[]), base);
    }

    #[test]
    fn revocation_only_moves_earlier() {
        let t0 = Utc::now();
        let mut k = key(t0);
        revoke(&mut k, 0, None, t0);
        assert_eq!(k.status, KeyStatus::Revoked);
        revoke(
            &mut k,
            3600,
            Some("again".into()),
            t0 + Duration::seconds(5),
        );
        assert_eq!(k.revoked_at, Some(t0));
        assert_eq!(k.revoke_reason.as_deref(), Some("again"));
    }

    #[test]
    fn rotation_retires_the_old_key_and_copies_its_settings() {
        let t0 = Utc::now();
        let old = key(t0);
        let t1 = t0 + Duration::days(10);
        let new_id = KeyId::new();
        let new = successor(&old, new_id, t1);
        assert_eq!(new.id, new_id);
        assert_eq!(new.prefix, prefix(old.environment, new_id));
        assert_eq!(new.lineage_id, old.lineage_id);
        assert_eq!(new.rotated_from, Some(old.id));
        assert_eq!(new.scopes, old.scopes);
        assert_eq!(new.expires_at, Some(t1 + Duration::days(90)));
        let mut retired = old.clone();
        let rotate = PushOp::RotateKey {
            op_id: Uuid::now_v7(),
            key_id: old.id,
            data: RotateOfflineRequest {
                new_id,
                secret_hash: "h".into(),
                grace_seconds: Some(0),
            },
        };
        apply(&mut retired, &QueuedOp::new(rotate.clone(), old.id, t1));
        assert_eq!(retired.replaced_by, Some(new_id));
        assert_eq!(retired.status, KeyStatus::Revoked);
        // The rotation that made `new` leaves it as it is.
        let mut same = new.clone();
        let made = QueuedOp::new(rotate, old.id, t1);
        assert_eq!(made.new_key_id(), Some(new_id));
        apply(&mut same, &made);
        assert_eq!(same, new);
    }
}
