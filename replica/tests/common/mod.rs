//! Builders for server records and pull pages.
#![allow(dead_code)]

use chrono::{DateTime, Duration, Utc};
use keyward_core::api::{ApiKey, AuditEntry, Change, ChangeOp, Entity, PullResponse};
use keyward_core::{Environment, IpAllowList, KeyId, KeyStatus, OrgId, ScopeSet};
use uuid::Uuid;

pub fn org() -> OrgId {
    OrgId::from_uuid(Uuid::from_u128(7))
}

/// A server record of an active live key named `name`, created `age` ago.
pub fn server_key(name: &str, age: Duration) -> ApiKey {
    let id = KeyId::new();
    let now = Utc::now();
    ApiKey {
        id,
        org_id: org(),
        name: name.into(),
        description: None,
        environment: Environment::Live,
        prefix: format!("kw_live_{}_", id.to_base62()),
        status: KeyStatus::Active,
        scopes: ScopeSet::default(),
        allowed_ips: IpAllowList::default(),
        metadata: serde_json::json!({}),
        disabled: false,
        expires_at: None,
        revoked_at: None,
        revoke_reason: None,
        rotated_from: None,
        replaced_by: None,
        lineage_id: id,
        created_at: now - age,
        created_by: None,
        updated_at: now - age,
        last_used_at: None,
        last_used_ip: None,
        tier: None,
        rate_limits: None,
        quota: None,
    }
}

pub fn scopes(items: &[&str]) -> ScopeSet {
    ScopeSet::parse(&items.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
}

pub fn key_change(seq: i64, key: &ApiKey) -> Change {
    Change {
        seq,
        entity: Entity::Key,
        id: key.id.to_string(),
        op: ChangeOp::Upsert,
        data: Some(serde_json::to_value(key).unwrap()),
    }
}

pub fn audit_entry(chain_seq: i64, action: &str, target: KeyId, at: DateTime<Utc>) -> AuditEntry {
    AuditEntry {
        id: Uuid::now_v7(),
        seq: chain_seq,
        org_id: org(),
        actor_id: None,
        actor_email: Some("owner@acme.test".into()),
        action: action.into(),
        target_type: "key".into(),
        target_id: Some(target.to_string()),
        client_ip: None,
        request_id: None,
        before: None,
        after: None,
        created_at: at,
        hash: "00".into(),
        prev_hash: "00".into(),
    }
}

pub fn audit_change(seq: i64, entry: &AuditEntry) -> Change {
    Change {
        seq,
        entity: Entity::Audit,
        id: entry.id.to_string(),
        op: ChangeOp::Upsert,
        data: Some(serde_json::to_value(entry).unwrap()),
    }
}

/// A page of `changes` whose cursor is the last seq.
pub fn page(changes: Vec<Change>) -> PullResponse {
    let cursor = changes.last().map_or(0, |c| c.seq);
    PullResponse {
        changes,
        cursor,
        has_more: false,
        audit_head: None,
        audit_public_key: None,
    }
}
