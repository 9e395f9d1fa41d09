//! One queued operation of the desktop's outbox: its kinds, its typed form and how it is read
//! from the wire, and why a read is refused.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::api::{CreateKeyRequest, RevokeKeyRequest, UpdateKeyRequest};
use crate::ids::KeyId;

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
        /// The key's change `seq` (from the pull) the edit was based on; an edit made on the
        /// server after it rejects this one (`conflict`), newer use of the key does not.
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
