//! Key management: create, list, read, update, revoke, rotate.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::limits::{Quota, RateLimitRule};
use crate::ids::{AdminId, KeyId, OrgId};
use crate::ip::IpAllowList;
use crate::scope::ScopeSet;
use crate::status::KeyStatus;
use crate::token::Environment;

/// A key as admins see it. Never carries the secret or its hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ApiKey {
    pub id: KeyId,
    pub org_id: OrgId,
    pub name: String,
    pub description: Option<String>,
    pub environment: Environment,
    /// The non-secret start of the token (`kw_live_<id>_`), for recognising a key.
    pub prefix: String,
    pub status: KeyStatus,
    pub scopes: ScopeSet,
    pub allowed_ips: IpAllowList,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    #[cfg_attr(feature = "ts", ts(type = "Record<string, unknown>"))]
    pub metadata: serde_json::Value,
    pub disabled: bool,
    pub expires_at: Option<DateTime<Utc>>,
    /// When revocation takes (or took) effect; in the future during a grace period.
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoke_reason: Option<String>,
    /// The key this one replaced by rotation.
    pub rotated_from: Option<KeyId>,
    /// The key that replaced this one by rotation.
    pub replaced_by: Option<KeyId>,
    /// The first key of the rotation chain: usage of a lineage reads as one history.
    pub lineage_id: KeyId,
    pub created_at: DateTime<Utc>,
    pub created_by: Option<AdminId>,
    pub updated_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub last_used_ip: Option<String>,
    /// The tier whose rules the key inherits.
    #[serde(default)]
    pub tier: Option<String>,
    /// The key's own rate-limit rules; they replace the tier's. `None`: the tier's apply.
    #[serde(default)]
    pub rate_limits: Option<Vec<RateLimitRule>>,
    /// The key's own quota; it replaces the tier's. `None`: the tier's applies.
    #[serde(default)]
    pub quota: Option<Quota>,
}

#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    /// 1–100 characters.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<Environment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_ips: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub metadata: Option<serde_json::Value>,
    /// A tier of the organisation whose rules the key inherits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// The key's own rules (replacing the tier's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limits: Option<Vec<RateLimitRule>>,
    /// The key's own quota (replacing the tier's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<Quota>,
    /// Offline-created keys: the id the client generated (UUIDv7) ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<KeyId>,
    /// ... and the argon2id PHC hash of the token it generated. No token is returned then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_hash: Option<String>,
}

impl std::fmt::Debug for CreateKeyRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateKeyRequest")
            .field("name", &self.name)
            .field("environment", &self.environment)
            .field("scopes", &self.scopes)
            .field("expires_at", &self.expires_at)
            .field("allowed_ips", &self.allowed_ips)
            .field("tier", &self.tier)
            .field("rate_limits", &self.rate_limits)
            .field("quota", &self.quota)
            .field("id", &self.id)
            .field(
                "secret_hash",
                &self.secret_hash.as_ref().map(|_| "[redacted]"),
            )
            .finish_non_exhaustive()
    }
}

/// `201 Created`: the key record, plus the plaintext token when the server generated it.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedKey {
    #[serde(flatten)]
    pub key: ApiKey,
    /// The only time the plaintext exists on the server side. Absent for offline-created keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl std::fmt::Debug for CreatedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedKey")
            .field("key", &self.key)
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// Absent fields stay as they are; `null` clears a clearable field.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateKeyRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(
        default,
        with = "super::double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub description: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_ips: Option<Vec<String>>,
    #[serde(
        default,
        with = "super::double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<DateTime<Utc>>))]
    pub expires_at: Option<Option<DateTime<Utc>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub metadata: Option<serde_json::Value>,
    /// Reversible switch, unlike revocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// `null` detaches the key from its tier.
    #[serde(
        default,
        with = "super::double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub tier: Option<Option<String>>,
    /// `null` returns to the tier's rules.
    #[serde(
        default,
        with = "super::double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<RateLimitRule>>))]
    pub rate_limits: Option<Option<Vec<RateLimitRule>>>,
    /// `null` returns to the tier's quota.
    #[serde(
        default,
        with = "super::double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Quota>))]
    pub quota: Option<Option<Quota>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RevokeKeyRequest {
    /// Seconds the key keeps working before revocation takes effect (0 = now, max 30 days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RotateKeyRequest {
    /// Seconds the old key keeps working (default one day; 0 for a leaked key; max 30 days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_seconds: Option<u32>,
}

/// The new key with its token, and the old key with its grace deadline in `revoked_at`.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RotatedKey {
    #[serde(flatten)]
    pub key: ApiKey,
    pub token: String,
    pub previous: ApiKey,
}

impl std::fmt::Debug for RotatedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotatedKey")
            .field("key", &self.key)
            .field("token", &"[redacted]")
            .field("previous", &self.previous)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum KeyStatusFilter {
    Active,
    Revoked,
    Expired,
    Disabled,
    #[default]
    All,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct ListKeysQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<KeyStatusFilter>,
    /// 1..=500, default 50.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 500))]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page (a key id, base64url without padding).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(pattern = r"^[A-Za-z0-9_-]{21}[AQgw]$"))]
    pub cursor: Option<String>,
}
