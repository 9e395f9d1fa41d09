//! The part of a key record that verification needs, parsed once when it enters the cache.

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Utc};
use keyward_core::api::VerifyCode;
use keyward_core::{Environment, IpAllowList, KeyId, KeyStatus, OrgId, Scope, ScopeSet};

use crate::limits::KeyLimits;
use crate::store::keys::KeyRow;

/// A stored key as the verifier caches it, whatever its state (revoked, expired and disabled
/// keys too). Not `keyward_client::layer::VerifiedKey`, which is what a service learns of a key
/// that passed.
#[derive(Debug)]
pub struct KeyRecord {
    pub id: KeyId,
    pub org_id: OrgId,
    pub name: String,
    pub environment: Environment,
    pub scopes: ScopeSet,
    pub allowed_ips: IpAllowList,
    pub disabled: bool,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// The first key of the rotation chain: quotas count per lineage.
    pub lineage_id: KeyId,
    /// Rate limits and quotas with their state; `None` for an unlimited key.
    pub limits: Option<Arc<KeyLimits>>,
    pub(super) secret_hash: String,
    /// SHA-256 of the token, set once argon2 has accepted it.
    pub(super) digest: OnceLock<[u8; 32]>,
    /// The stored fast verifier (`keyward_core::verifier`), if any.
    pub(super) verifier: Option<Vec<u8>>,
}

#[derive(Debug, thiserror::Error)]
#[error("stored key {0} holds an unparsable {1}")]
pub struct CorruptKey(KeyId, &'static str);

impl KeyRecord {
    pub fn from_row(row: KeyRow, limits: Option<Arc<KeyLimits>>) -> Result<KeyRecord, CorruptKey> {
        let id = KeyId::from_uuid(row.id);
        Ok(KeyRecord {
            lineage_id: KeyId::from_uuid(row.lineage_id),
            limits,
            id,
            org_id: OrgId::from_uuid(row.org_id),
            environment: row
                .environment
                .parse()
                .map_err(|_| CorruptKey(id, "environment"))?,
            scopes: ScopeSet::parse(&row.scopes).map_err(|_| CorruptKey(id, "scope"))?,
            allowed_ips: IpAllowList::parse(&row.allowed_ips)
                .map_err(|_| CorruptKey(id, "allowed IP"))?,
            name: row.name,
            disabled: row.disabled,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
            secret_hash: row.secret_hash,
            digest: OnceLock::new(),
            verifier: None,
        })
    }

    /// State, client address and scope, in that order, for a caller that holds the secret.
    pub fn decide(
        &self,
        now: DateTime<Utc>,
        scope: Option<&Scope>,
        client_ip: Option<IpAddr>,
    ) -> VerifyCode {
        match KeyStatus::at(now, self.disabled, self.revoked_at, self.expires_at) {
            KeyStatus::Revoked => return VerifyCode::Revoked,
            KeyStatus::Expired => return VerifyCode::Expired,
            KeyStatus::Disabled => return VerifyCode::Disabled,
            KeyStatus::Active => {}
        }
        if !self.allowed_ips.is_empty() && !client_ip.is_some_and(|ip| self.allowed_ips.allows(ip))
        {
            return VerifyCode::IpNotAllowed;
        }
        if scope.is_some_and(|s| !self.scopes.allows(s)) {
            return VerifyCode::InsufficientScope;
        }
        VerifyCode::Valid
    }
}
