//! The append-only, hash-chained audit log.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ids::{AdminId, OrgId};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct AuditEntry {
    pub id: Uuid,
    /// Position in the organisation's chain, from 1.
    pub seq: i64,
    pub org_id: OrgId,
    pub actor_id: Option<AdminId>,
    pub actor_email: Option<String>,
    /// `key.create`, `key.revoke`, `auth.login`, ...
    pub action: String,
    pub target_type: String,
    pub target_id: Option<String>,
    pub client_ip: Option<String>,
    pub request_id: Option<String>,
    #[cfg_attr(feature = "ts", ts(type = "unknown"))]
    pub before: Option<serde_json::Value>,
    #[cfg_attr(feature = "ts", ts(type = "unknown"))]
    pub after: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
    /// Hex SHA-256 of the previous entry's hash and this entry's canonical content.
    pub hash: String,
    pub prev_hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditVerifyReport {
    pub ok: bool,
    /// Entries whose links were checked.
    pub checked: u64,
    pub first_broken: Option<BrokenLink>,
    /// The chain head carries a signature that verifies against the server's audit key
    /// (`public_key`). False when the server has no signing key: then a database writer could
    /// have rewritten the log and its head together.
    #[serde(default)]
    pub signed: bool,
    /// The organisation's chain head as recorded (absent when nothing was ever audited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<AuditHead>,
    /// The server's audit public key (ed25519, 32 bytes in base64) the head is checked
    /// against; absent when the server has no signing key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
}

/// An organisation's audit chain head: the last entry's `seq` and `hash`, and the server's
/// signature over them (see `keyward_core::audit_head`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditHead {
    pub org_id: OrgId,
    /// The last entry's position (0: nothing audited yet).
    pub seq: i64,
    /// The last entry's hash.
    pub hash: String,
    /// Base64 ed25519 signature over
    /// `keyward-audit-head-v1\n{org_id}\n{seq}\n{hash}`; absent when the head is unsigned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BrokenLink {
    pub org_id: OrgId,
    pub seq: i64,
    pub id: Option<Uuid>,
    pub reason: String,
}
