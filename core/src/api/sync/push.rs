//! Pushing: the operations as the desktop sends them and as the server receives them, and the
//! result of each.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::PushOp;

pub const MAX_PUSH_OPS: usize = 500;

/// A push as the desktop sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PushRequest {
    pub ops: Vec<PushOp>,
}

/// A push as the server receives it: each operation kept as sent until [`PushOp::parse`]
/// reads it on its own, so an unknown or malformed operation is refused alone.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReceivedPush {
    /// At most 500 operations, applied in order. Each is read on its own as a [`PushOp`]: an
    /// unknown `kind` is answered `rejected` with `unknown_operation`, a missing, extra or
    /// ill-typed field with `malformed_operation`, in that operation's result, while the others
    /// apply. Only an operation without a UUID `op_id` refuses the whole push.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<ReceivedOp>, max_items = 500))]
    pub ops: Vec<serde_json::Value>,
}

/// One operation as received, before its kind is read: the `op_id` its result is answered by;
/// the rest is one of [`PushOp`]'s kinds.
#[cfg(feature = "openapi")]
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ReceivedOp {
    /// Client-made UUIDv7; replaying it returns its first result and changes nothing.
    op_id: Uuid,
    /// `create_key`, `update_key`, `revoke_key` or `rotate_key` with the fields of that kind
    /// ([`PushOp`]); anything else (not a string, an unknown name) is refused in this
    /// operation's result, not by refusing the push.
    kind: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OpStatus {
    Applied,
    Rejected,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OpResult {
    pub op_id: Uuid,
    pub status: OpStatus,
    /// The problem code of a rejection (`key_revoked`, `conflict`, `validation_failed`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The resulting key record of an applied operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub record: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PushResponse {
    pub results: Vec<OpResult>,
}
