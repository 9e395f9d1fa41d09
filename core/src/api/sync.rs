//! Desktop ↔ server sync: pull changes after a cursor, push queued operations.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::api::{AuditHead, CreateKeyRequest, RevokeKeyRequest, UpdateKeyRequest};
use crate::ids::KeyId;

pub const MAX_PUSH_OPS: usize = 500;
pub const DEFAULT_PULL_LIMIT: u32 = 500;
pub const MAX_PULL_LIMIT: u32 = 5000;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct PullQuery {
    /// The cursor of the last pull; 0 (or absent) for a full snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<i64>,
    /// 1..=5000, default 500.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Entity {
    Key,
    Audit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ChangeOp {
    Upsert,
    Delete,
}

/// One changed record; `data` is the record as the admin API shows it (never a secret or a
/// hash), absent for a deletion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Change {
    pub seq: i64,
    pub entity: Entity,
    pub id: String,
    pub op: ChangeOp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub data: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PullResponse {
    pub changes: Vec<Change>,
    /// Pass as `since` next time.
    pub cursor: i64,
    pub has_more: bool,
    /// The organisation's audit chain head, read in the same snapshot as `changes`: the desktop
    /// keeps the highest one it has seen and raises an alert when the server's chain is ever
    /// shorter, forked or signed by another key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_head: Option<AuditHead>,
    /// The server's audit public key (ed25519, base64) that signs `audit_head`; absent when the
    /// server has no signing key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_public_key: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// `data`: a `CreateKeyRequest` with `id` and `secret_hash` (never a token).
    CreateKey,
    /// `data`: an `UpdateKeyRequest`; `base_seq` guards against overwriting a newer change.
    UpdateKey,
    /// `data`: a `RevokeKeyRequest`.
    RevokeKey,
    /// `data`: a `RotateOfflineRequest`.
    RotateKey,
}

impl OpKind {
    /// Every kind, in the order the API lists them.
    pub const ALL: [OpKind; 4] = [
        OpKind::CreateKey,
        OpKind::UpdateKey,
        OpKind::RevokeKey,
        OpKind::RotateKey,
    ];

    /// The wire name (`create_key`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            OpKind::CreateKey => "create_key",
            OpKind::UpdateKey => "update_key",
            OpKind::RevokeKey => "revoke_key",
            OpKind::RotateKey => "rotate_key",
        }
    }

    /// The kind named `name` on the wire, if there is one.
    pub fn from_name(name: &str) -> Option<OpKind> {
        OpKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// The top-level fields an operation of this kind may carry besides `op_id` and `kind`.
    const fn fields(self) -> &'static [&'static str] {
        match self {
            OpKind::CreateKey => &["data"],
            OpKind::UpdateKey => &["key_id", "base_seq", "data"],
            OpKind::RevokeKey | OpKind::RotateKey => &["key_id", "data"],
        }
    }
}

impl std::fmt::Display for OpKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One operation of the desktop's outbox, typed: one variant per kind, each with its own fields.
///
/// On the wire (shared/API.md) it is the object `{"op_id", "kind", "key_id"?, "base_seq"?,
/// "data"}`, `kind` naming the variant: `create_key` names its new key in `data.id` (no
/// `key_id`), only `update_key` carries `base_seq`, and `revoke_key`'s `data` may be absent or
/// `null` (revoke now, no reason). Reading is [`PushOp::parse`] (what `Deserialize` does too):
/// a `null` field counts as absent, and any field its kind does not have is refused.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PushOp {
    /// A key made offline.
    CreateKey {
        /// Client-made UUIDv7; replaying it returns its first result and changes nothing.
        op_id: Uuid,
        /// With `id` and `secret_hash` (argon2id PHC), never a token.
        data: CreateKeyRequest,
    },
    /// An edit of key `key_id`.
    UpdateKey {
        op_id: Uuid,
        key_id: KeyId,
        /// The key's `seq` the edit was based on; a newer server change rejects the edit.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        base_seq: Option<i64>,
        data: UpdateKeyRequest,
    },
    /// Revokes key `key_id` (now, or after `data.grace_seconds`).
    RevokeKey {
        op_id: Uuid,
        key_id: KeyId,
        #[serde(default)]
        data: RevokeKeyRequest,
    },
    /// Rotation made offline: the client generated the successor's id and token, and sends
    /// the token's hash.
    RotateKey {
        op_id: Uuid,
        key_id: KeyId,
        data: RotateOfflineRequest,
    },
}

impl PushOp {
    pub fn op_id(&self) -> Uuid {
        match self {
            PushOp::CreateKey { op_id, .. }
            | PushOp::UpdateKey { op_id, .. }
            | PushOp::RevokeKey { op_id, .. }
            | PushOp::RotateKey { op_id, .. } => *op_id,
        }
    }

    pub fn kind(&self) -> OpKind {
        match self {
            PushOp::CreateKey { .. } => OpKind::CreateKey,
            PushOp::UpdateKey { .. } => OpKind::UpdateKey,
            PushOp::RevokeKey { .. } => OpKind::RevokeKey,
            PushOp::RotateKey { .. } => OpKind::RotateKey,
        }
    }

    /// The key acted on: `key_id`, or for `create_key` the new key's `data.id`.
    pub fn key_id(&self) -> Option<KeyId> {
        match self {
            PushOp::CreateKey { data, .. } => data.id,
            PushOp::UpdateKey { key_id, .. }
            | PushOp::RevokeKey { key_id, .. }
            | PushOp::RotateKey { key_id, .. } => Some(*key_id),
        }
    }

    /// The key this operation brings into existence besides the one it acts on: a rotation's
    /// successor.
    pub fn new_key_id(&self) -> Option<KeyId> {
        match self {
            PushOp::RotateKey { data, .. } => Some(data.new_id),
            _ => None,
        }
    }

    /// Whether `data` holds an argon2id hash (`create_key`, `rotate_key`).
    pub fn carries_hash(&self) -> bool {
        matches!(self, PushOp::CreateKey { .. } | PushOp::RotateKey { .. })
    }

    /// Reads one pushed operation. Checks, in order: an object, a UUID `op_id` (else
    /// [`OpParseError::NoOpId`]: nothing to answer the operation by), a known `kind` (else
    /// `unknown_operation`), then only its kind's fields, each of its type, the required ones
    /// present (else `malformed_operation`, the detail naming the field). Values are not
    /// judged here (the server's rules do that afterwards): only the shape.
    pub fn parse(value: serde_json::Value) -> Result<PushOp, OpParseError> {
        let serde_json::Value::Object(mut fields) = value else {
            return Err(OpParseError::NoOpId(
                "an operation must be a JSON object".into(),
            ));
        };
        // A `null` field counts as absent (what optional fields were always written as).
        fields.retain(|_, v| !v.is_null());
        let op_id = match fields.remove("op_id") {
            None => return Err(OpParseError::NoOpId("op_id: is required".into())),
            Some(v) => serde_json::from_value::<Uuid>(v)
                .map_err(|_| OpParseError::NoOpId("op_id: must be a UUID".into()))?,
        };
        let malformed = |kind: Option<String>, detail: String| OpParseError::Refused {
            op_id,
            kind,
            code: RefusalCode::MalformedOperation,
            detail,
        };
        let name = match fields.remove("kind") {
            None => return Err(malformed(None, "kind: is required".into())),
            Some(serde_json::Value::String(name)) => name,
            Some(_) => return Err(malformed(None, "kind: must be a string".into())),
        };
        let Some(kind) = OpKind::from_name(&name) else {
            let shown: String = name.chars().take(KIND_SHOWN_MAX_CHARS).collect();
            return Err(OpParseError::Refused {
                op_id,
                code: RefusalCode::UnknownOperation,
                detail: format!(
                    "kind: `{shown}` is not an operation this server applies (one of {})",
                    OpKind::ALL.map(OpKind::as_str).join(", ")
                ),
                kind: Some(name),
            });
        };
        let refuse = |detail: String| malformed(Some(kind.as_str().to_owned()), detail);
        if let Some(extra) = fields.keys().find(|f| !kind.fields().contains(&f.as_str())) {
            let why = match (kind, extra.as_str()) {
                (OpKind::CreateKey, "key_id") => {
                    "create_key names its new key in data.id, not key_id"
                }
                (_, "base_seq") => "only update_key carries base_seq",
                _ => "is not a field of this kind of operation",
            };
            return Err(refuse(format!("{extra}: {why} ({kind})")));
        }
        read_fields(kind, op_id, fields).map_err(refuse)
    }
}

/// The fields of a `kind` operation (its `op_id` and `kind` taken out, every other field one of
/// its own), typed; `Err` names the first missing or ill-typed field.
fn read_fields(
    kind: OpKind,
    op_id: Uuid,
    mut fields: serde_json::Map<String, serde_json::Value>,
) -> Result<PushOp, String> {
    fn read<T: DeserializeOwned>(field: &str, value: serde_json::Value) -> Result<T, String> {
        // serde would also read a request from an array of its fields in order: not here.
        if field == "data" && !value.is_object() {
            return Err(format!("{field}: must be an object"));
        }
        serde_json::from_value(value).map_err(|e| format!("{field}: {e}"))
    }
    let required = |fields: &mut serde_json::Map<String, serde_json::Value>, field: &str| {
        fields
            .remove(field)
            .ok_or_else(|| format!("{field}: is required for {kind}"))
    };
    let op = match kind {
        OpKind::CreateKey => PushOp::CreateKey {
            op_id,
            data: read("data", required(&mut fields, "data")?)?,
        },
        OpKind::UpdateKey => PushOp::UpdateKey {
            op_id,
            key_id: read("key_id", required(&mut fields, "key_id")?)?,
            base_seq: fields
                .remove("base_seq")
                .map(|v| read("base_seq", v))
                .transpose()?,
            data: read("data", required(&mut fields, "data")?)?,
        },
        OpKind::RevokeKey => PushOp::RevokeKey {
            op_id,
            key_id: read("key_id", required(&mut fields, "key_id")?)?,
            data: fields
                .remove("data")
                .map(|v| read("data", v))
                .transpose()?
                .unwrap_or_default(),
        },
        OpKind::RotateKey => PushOp::RotateKey {
            op_id,
            key_id: read("key_id", required(&mut fields, "key_id")?)?,
            data: read("data", required(&mut fields, "data")?)?,
        },
    };
    Ok(op)
}

/// How much of an unknown `kind` a refusal quotes.
const KIND_SHOWN_MAX_CHARS: usize = 64;

impl<'de> Deserialize<'de> for PushOp {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(de)?;
        PushOp::parse(value).map_err(serde::de::Error::custom)
    }
}

/// Why a pushed operation was refused before anything of it was applied. The code goes into
/// the operation's result (`status: rejected`); the rest of the push goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefusalCode {
    /// `unknown_operation`: a `kind` this server does not apply (a newer client's, say).
    UnknownOperation,
    /// `malformed_operation`: a known kind whose fields are missing, of the wrong type, or not
    /// its own (the detail names the field).
    MalformedOperation,
}

impl RefusalCode {
    pub const fn as_str(self) -> &'static str {
        match self {
            RefusalCode::UnknownOperation => "unknown_operation",
            RefusalCode::MalformedOperation => "malformed_operation",
        }
    }
}

impl std::fmt::Display for RefusalCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What [`PushOp::parse`] refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpParseError {
    /// No `op_id`, or not a UUID (or not an object at all): the operation cannot be answered,
    /// so the push itself is refused.
    NoOpId(String),
    /// Operation `op_id` is refused with `code`; `kind` is its `kind` as sent, when a string.
    Refused {
        op_id: Uuid,
        kind: Option<String>,
        code: RefusalCode,
        detail: String,
    },
}

impl std::fmt::Display for OpParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpParseError::NoOpId(detail) => f.write_str(detail),
            OpParseError::Refused { code, detail, .. } => write!(f, "{code}: {detail}"),
        }
    }
}

impl std::error::Error for OpParseError {}

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

/// Rotation made offline: the client generated the successor's id and token, and sends the hash.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RotateOfflineRequest {
    pub new_id: KeyId,
    pub secret_hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_seconds: Option<u32>,
}

impl std::fmt::Debug for RotateOfflineRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotateOfflineRequest")
            .field("new_id", &self.new_id)
            .field("secret_hash", &"[redacted]")
            .field("grace_seconds", &self.grace_seconds)
            .finish()
    }
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

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;
    use crate::token::Environment;

    fn uuid() -> impl Strategy<Value = Uuid> {
        any::<u128>().prop_map(Uuid::from_u128)
    }

    fn key_id() -> impl Strategy<Value = KeyId> {
        uuid().prop_map(KeyId::from_uuid)
    }

    fn text() -> impl Strategy<Value = String> {
        "[ -~\u{a0}-\u{10ffff}]{0,24}"
    }

    fn time() -> impl Strategy<Value = DateTime<Utc>> {
        (0i64..4_102_444_800, 0u32..1_000_000_000)
            .prop_map(|(s, n)| DateTime::from_timestamp(s, n).unwrap())
    }

    fn metadata() -> impl Strategy<Value = Value> {
        prop::collection::btree_map("[a-z]{1,8}", text(), 0..3)
            .prop_map(|m| serde_json::to_value(m).unwrap())
    }

    fn create() -> impl Strategy<Value = CreateKeyRequest> {
        (
            text(),
            prop::option::of(text()),
            prop::option::of(prop_oneof![
                Just(Environment::Live),
                Just(Environment::Test)
            ]),
            prop::option::of(prop::collection::vec(text(), 0..3)),
            prop::option::of(time()),
            prop::option::of(prop::collection::vec(text(), 0..3)),
            prop::option::of(metadata()),
            prop::option::of(text()),
            prop::option::of(key_id()),
            prop::option::of(text()),
        )
            .prop_map(
                |(
                    name,
                    description,
                    environment,
                    scopes,
                    expires_at,
                    ips,
                    metadata,
                    tier,
                    id,
                    hash,
                )| {
                    CreateKeyRequest {
                        name,
                        description,
                        environment,
                        scopes,
                        expires_at,
                        allowed_ips: ips,
                        metadata,
                        tier,
                        rate_limits: None,
                        quota: None,
                        id,
                        secret_hash: hash,
                    }
                },
            )
    }

    fn update() -> impl Strategy<Value = UpdateKeyRequest> {
        (
            prop::option::of(text()),
            prop::option::of(prop::option::of(text())),
            prop::option::of(prop::collection::vec(text(), 0..3)),
            prop::option::of(prop::collection::vec(text(), 0..3)),
            prop::option::of(prop::option::of(time())),
            prop::option::of(metadata()),
            prop::option::of(any::<bool>()),
            prop::option::of(prop::option::of(text())),
        )
            .prop_map(
                |(name, description, scopes, allowed_ips, expires_at, metadata, disabled, tier)| {
                    UpdateKeyRequest {
                        name,
                        description,
                        scopes,
                        allowed_ips,
                        expires_at,
                        metadata,
                        disabled,
                        tier,
                        rate_limits: None,
                        quota: None,
                    }
                },
            )
    }

    /// Every variant, with arbitrary typed fields.
    fn push_op() -> impl Strategy<Value = PushOp> {
        prop_oneof![
            (uuid(), create()).prop_map(|(op_id, data)| PushOp::CreateKey { op_id, data }),
            (uuid(), key_id(), prop::option::of(any::<i64>()), update()).prop_map(
                |(op_id, key_id, base_seq, data)| PushOp::UpdateKey {
                    op_id,
                    key_id,
                    base_seq,
                    data
                }
            ),
            (
                uuid(),
                key_id(),
                prop::option::of(any::<u32>()),
                prop::option::of(text())
            )
                .prop_map(|(op_id, key_id, grace_seconds, reason)| PushOp::RevokeKey {
                    op_id,
                    key_id,
                    data: RevokeKeyRequest {
                        grace_seconds,
                        reason
                    },
                }),
            (
                uuid(),
                key_id(),
                key_id(),
                text(),
                prop::option::of(any::<u32>())
            )
                .prop_map(|(op_id, key_id, new_id, secret_hash, grace_seconds)| {
                    PushOp::RotateKey {
                        op_id,
                        key_id,
                        data: RotateOfflineRequest {
                            new_id,
                            secret_hash,
                            grace_seconds,
                        },
                    }
                }),
        ]
    }

    fn refusal(value: Value) -> (RefusalCode, String) {
        match PushOp::parse(value.clone()) {
            Err(OpParseError::Refused {
                code,
                detail,
                op_id,
                ..
            }) => {
                assert_eq!(json!(op_id), value["op_id"], "the refusal names its op");
                (code, detail)
            }
            other => panic!("{value}: expected a refusal, got {other:?}"),
        }
    }

    fn op_id() -> Value {
        json!(Uuid::now_v7())
    }

    #[cfg(feature = "openapi")]
    #[test]
    fn the_openapi_schema_has_one_shape_per_kind() {
        use utoipa::PartialSchema;
        let schema = serde_json::to_value(PushOp::schema()).unwrap();
        let shapes = schema["oneOf"].as_array().expect("one of the kinds");
        let kinds: Vec<&Value> = shapes
            .iter()
            .map(|s| &s["properties"]["kind"]["enum"][0])
            .collect();
        assert_eq!(
            kinds,
            ["create_key", "update_key", "revoke_key", "rotate_key"],
            "{schema:#}"
        );
        for shape in shapes {
            let required = shape["required"].as_array().unwrap();
            assert!(required.contains(&json!("op_id")) && required.contains(&json!("kind")));
        }
    }

    #[test]
    fn the_wire_format_is_the_one_the_desktop_sends() {
        let (op, key, new) = (Uuid::now_v7(), KeyId::new(), KeyId::new());
        let cases = [
            (
                PushOp::CreateKey {
                    op_id: op,
                    data: CreateKeyRequest {
                        name: "ci".into(),
                        id: Some(key),
                        secret_hash: Some("$argon2id$h".into()),
                        ..Default::default()
                    },
                },
                json!({"op_id": op, "kind": "create_key",
                       "data": {"name": "ci", "id": key, "secret_hash": "$argon2id$h"}}),
            ),
            (
                PushOp::UpdateKey {
                    op_id: op,
                    key_id: key,
                    base_seq: Some(7),
                    data: UpdateKeyRequest {
                        name: Some("n".into()),
                        description: Some(None),
                        ..Default::default()
                    },
                },
                json!({"op_id": op, "kind": "update_key", "key_id": key, "base_seq": 7,
                       "data": {"name": "n", "description": null}}),
            ),
            (
                PushOp::UpdateKey {
                    op_id: op,
                    key_id: key,
                    base_seq: None,
                    data: UpdateKeyRequest::default(),
                },
                json!({"op_id": op, "kind": "update_key", "key_id": key, "data": {}}),
            ),
            (
                PushOp::RevokeKey {
                    op_id: op,
                    key_id: key,
                    data: RevokeKeyRequest {
                        grace_seconds: Some(60),
                        reason: Some("leak".into()),
                    },
                },
                json!({"op_id": op, "kind": "revoke_key", "key_id": key,
                       "data": {"grace_seconds": 60, "reason": "leak"}}),
            ),
            (
                PushOp::RotateKey {
                    op_id: op,
                    key_id: key,
                    data: RotateOfflineRequest {
                        new_id: new,
                        secret_hash: "$argon2id$h".into(),
                        grace_seconds: Some(0),
                    },
                },
                json!({"op_id": op, "kind": "rotate_key", "key_id": key,
                       "data": {"new_id": new, "secret_hash": "$argon2id$h", "grace_seconds": 0}}),
            ),
        ];
        for (typed, wire) in cases {
            assert_eq!(serde_json::to_value(&typed).unwrap(), wire, "{wire}");
            assert_eq!(PushOp::parse(wire.clone()).unwrap(), typed, "{wire}");
            assert_eq!(typed.op_id(), op);
            assert_eq!(typed.key_id(), Some(key));
        }
    }

    #[test]
    fn absent_and_null_optional_fields_read_as_they_always_did() {
        let (op, key) = (Uuid::now_v7(), KeyId::new());
        let revoke_now = PushOp::RevokeKey {
            op_id: op,
            key_id: key,
            data: RevokeKeyRequest::default(),
        };
        for wire in [
            json!({"op_id": op, "kind": "revoke_key", "key_id": key}),
            json!({"op_id": op, "kind": "revoke_key", "key_id": key, "data": null}),
            json!({"op_id": op, "kind": "revoke_key", "key_id": key, "data": {}, "base_seq": null}),
        ] {
            assert_eq!(PushOp::parse(wire.clone()).unwrap(), revoke_now, "{wire}");
        }
        let create = json!({"op_id": op, "kind": "create_key", "key_id": null, "base_seq": null,
                            "data": {"name": "x"}});
        assert_eq!(PushOp::parse(create).unwrap().kind(), OpKind::CreateKey);
        // Through serde too (the client reads its own requests back in tests).
        let req: PushRequest = serde_json::from_value(json!({"ops": [
            {"op_id": op, "kind": "revoke_key", "key_id": key}
        ]}))
        .unwrap();
        assert_eq!(req.ops, [revoke_now]);
    }

    #[test]
    fn an_unknown_kind_is_refused_as_unknown_operation() {
        for kind in [
            "ack_alert",
            "delete_key",
            "CREATE_KEY",
            "create-key",
            "",
            "🔑",
        ] {
            let (code, detail) = refusal(json!({"op_id": op_id(), "kind": kind, "data": {}}));
            assert_eq!(code, RefusalCode::UnknownOperation, "{kind}");
            assert!(detail.starts_with("kind: "), "{detail}");
        }
        let long = "x".repeat(10_000);
        let (_, detail) = refusal(json!({"op_id": op_id(), "kind": long}));
        assert!(detail.len() < 300, "an unknown kind is quoted bounded");
        match PushOp::parse(json!({"op_id": op_id(), "kind": "ack_alert"})) {
            Err(OpParseError::Refused { kind, .. }) => {
                assert_eq!(kind.as_deref(), Some("ack_alert"))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn malformed_fields_are_refused_as_malformed_operation_naming_the_field() {
        let key = KeyId::new();
        let cases = [
            (json!({"kind": null}), "kind:"),
            (json!({"data": {"name": "x"}}), "kind:"),
            (json!({"kind": 5, "data": {}}), "kind:"),
            (json!({"kind": ["create_key"]}), "kind:"),
            (json!({"kind": "create_key"}), "data:"),
            (json!({"kind": "create_key", "data": {"name": 5}}), "data:"),
            (json!({"kind": "create_key", "data": "x"}), "data:"),
            (json!({"kind": "create_key", "data": {}}), "data:"),
            (
                json!({"kind": "create_key", "data": {"name": "x", "colour": 1}}),
                "data:",
            ),
            (
                json!({"kind": "create_key", "key_id": key, "data": {"name": "x"}}),
                "key_id:",
            ),
            (json!({"kind": "update_key", "data": {}}), "key_id:"),
            (
                json!({"kind": "update_key", "key_id": "k", "data": {}}),
                "key_id:",
            ),
            (
                json!({"kind": "update_key", "key_id": 5, "data": {}}),
                "key_id:",
            ),
            (json!({"kind": "update_key", "key_id": key}), "data:"),
            (
                json!({"kind": "update_key", "key_id": key, "data": {"colour": "red"}}),
                "data:",
            ),
            (
                json!({"kind": "update_key", "key_id": key, "data": {"disabled": "yes"}}),
                "data:",
            ),
            (
                json!({"kind": "update_key", "key_id": key, "base_seq": "1", "data": {}}),
                "base_seq:",
            ),
            (
                json!({"kind": "update_key", "key_id": key, "base_seq": 1.5, "data": {}}),
                "base_seq:",
            ),
            (json!({"kind": "revoke_key", "data": {}}), "key_id:"),
            (
                json!({"kind": "revoke_key", "key_id": key, "base_seq": 3}),
                "base_seq:",
            ),
            (
                json!({"kind": "revoke_key", "key_id": key, "data": {"grace_seconds": -1}}),
                "data:",
            ),
            (
                json!({"kind": "revoke_key", "key_id": key, "data": {"grace_seconds": "a\u{0}b"}}),
                "data:",
            ),
            (
                json!({"kind": "revoke_key", "key_id": key, "data": []}),
                "data:",
            ),
            (
                json!({"kind": "rotate_key", "key_id": key, "data": {"secret_hash": "h"}}),
                "data:",
            ),
            (json!({"kind": "rotate_key", "key_id": key}), "data:"),
            (
                json!({"kind": "rotate_key", "key_id": key, "data": {}, "extra": 1}),
                "extra:",
            ),
        ];
        for (mut wire, field) in cases {
            wire["op_id"] = op_id();
            let (code, detail) = refusal(wire.clone());
            assert_eq!(code, RefusalCode::MalformedOperation, "{wire}");
            assert!(detail.starts_with(field), "{wire}: {detail}");
            assert_eq!(code.as_str(), "malformed_operation");
        }
    }

    #[test]
    fn an_operation_without_a_usable_op_id_cannot_be_answered() {
        for wire in [
            json!({"kind": "revoke_key", "key_id": KeyId::new()}),
            json!({"op_id": null, "kind": "revoke_key"}),
            json!({"op_id": "not a uuid", "kind": "revoke_key"}),
            json!({"op_id": 7, "kind": "nope"}),
            json!("create_key"),
            json!([1, 2]),
            json!(null),
        ] {
            assert!(
                matches!(PushOp::parse(wire.clone()), Err(OpParseError::NoOpId(_))),
                "{wire}"
            );
        }
        assert!(serde_json::from_value::<ReceivedPush>(json!({"ops": [5], "x": 1})).is_err());
        let received: ReceivedPush = serde_json::from_value(json!({"ops": [5, {}]})).unwrap();
        assert_eq!(received.ops.len(), 2, "each op is read on its own, later");
    }

    proptest! {
        #[test]
        fn every_variant_round_trips(op in push_op()) {
            let wire = serde_json::to_value(&op).unwrap();
            prop_assert_eq!(&wire["kind"], op.kind().as_str());
            prop_assert_eq!(PushOp::parse(wire.clone()).unwrap(), op.clone());
            let text = serde_json::to_string(&op).unwrap();
            prop_assert_eq!(serde_json::from_str::<PushOp>(&text).unwrap(), op.clone());
            prop_assert_eq!(OpKind::from_name(op.kind().as_str()), Some(op.kind()));
        }

        #[test]
        fn any_other_kind_is_an_unknown_operation(op in push_op(), kind in "\\PC{0,20}") {
            prop_assume!(OpKind::from_name(&kind).is_none());
            let mut wire = serde_json::to_value(&op).unwrap();
            wire["kind"] = json!(kind);
            let (code, _) = refusal(wire);
            prop_assert_eq!(code, RefusalCode::UnknownOperation);
        }

        /// A field of the op replaced by a value of no type it could have: the op is refused
        /// as malformed, naming that field, and nothing else is read from it.
        #[test]
        fn a_wrong_typed_field_is_a_malformed_operation(
            op in push_op(),
            pick in any::<prop::sample::Index>(),
            bad in prop_oneof![Just(json!(true)), Just(json!([1])), Just(json!(-1.5))],
        ) {
            let mut wire = serde_json::to_value(&op).unwrap();
            let fields: Vec<String> = wire
                .as_object()
                .unwrap()
                .keys()
                .filter(|k| *k != "op_id" && *k != "kind")
                .cloned()
                .collect();
            let field = pick.get(&fields).clone();
            wire[&field] = bad;
            let (code, detail) = refusal(wire);
            prop_assert_eq!(code, RefusalCode::MalformedOperation);
            prop_assert!(detail.starts_with(&format!("{field}:")), "{}", detail);
        }

        #[test]
        fn a_field_of_another_kind_is_a_malformed_operation(op in push_op(), seq in any::<i64>()) {
            let mut wire = serde_json::to_value(&op).unwrap();
            let field = match op.kind() {
                OpKind::UpdateKey => "colour",
                OpKind::CreateKey => "key_id",
                _ => "base_seq",
            };
            wire[field] = json!(seq.to_string());
            let (code, detail) = refusal(wire);
            prop_assert_eq!(code, RefusalCode::MalformedOperation);
            prop_assert!(detail.starts_with(&format!("{field}:")), "{}", detail);
        }
    }
}
