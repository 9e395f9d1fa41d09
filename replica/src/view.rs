//! A key as the replica shows it: the record plus its sync state.

use keyward_core::api::ApiKey;
use serde::{Deserialize, Serialize};

/// A key in the replica.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LocalKey {
    /// The server's record with this device's queued operations applied on top; `status` is
    /// computed for the moment of reading.
    #[serde(flatten)]
    pub key: ApiKey,
    /// The key's status in the server's record at the moment of reading: what client systems
    /// get now, whatever is queued here (none: the server does not have the key yet).
    pub server_status: Option<keyward_core::KeyStatus>,
    /// The revocation time the server decided (a revocation queued here has none until synced).
    pub server_revoked_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The server's change sequence value of the record (0: never pulled).
    pub seq: i64,
    /// Local operations on this key wait in the outbox.
    pub pending: bool,
    /// The server has (or had, at the last sync) this key. False for a key made offline and not
    /// pushed yet, or refused by the server.
    pub on_server: bool,
    /// Why the server refused the last local operation on this key, until dismissed with
    /// [`crate::Replica::dismiss_error`].
    pub rejection: Option<Rejection>,
}

/// The server's refusal of one operation: its problem `code` (`key_revoked`, `conflict`,
/// `validation_failed`, ...) and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    pub code: String,
    pub detail: String,
}

/// A change the server refused, kept until the admin retries or discards it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RejectedChange {
    pub op_id: uuid::Uuid,
    /// The operation's wire name (`update_key`, `revoke_key`, ...).
    pub kind: String,
    pub key_id: keyward_core::KeyId,
    /// The key's name when the change was refused.
    pub key_name: String,
    /// What the change was, in a sentence ("Edit", "Revoke now", "Rotate", ...).
    pub summary: String,
    /// What it set, field by field, in words.
    pub fields: Vec<ChangedField>,
    /// Why the server refused it.
    pub rejection: Rejection,
    pub queued_at: chrono::DateTime<chrono::Utc>,
    pub rejected_at: chrono::DateTime<chrono::Utc>,
    /// It can be sent again on the key as the server now has it (edits and revocations; a
    /// refused create or rotation is made anew instead: its token is gone).
    pub retryable: bool,
}

/// One field a refused change set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangedField {
    pub field: String,
    pub value: String,
}

fn field(fields: &mut Vec<ChangedField>, name: &str, value: impl Into<String>) {
    fields.push(ChangedField {
        field: name.to_owned(),
        value: value.into(),
    });
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

fn grace(seconds: Option<u32>) -> String {
    match seconds.unwrap_or(0) {
        0 => "none".to_owned(),
        s if s % 86_400 == 0 => format!("{} day(s)", s / 86_400),
        s if s % 3_600 == 0 => format!("{} hour(s)", s / 3_600),
        s if s % 60 == 0 => format!("{} minute(s)", s / 60),
        s => format!("{s} seconds"),
    }
}

fn rules(rules: &[keyward_core::api::RateLimitRule]) -> String {
    if rules.is_empty() {
        return "none".to_owned();
    }
    rules
        .iter()
        .map(|r| {
            format!(
                "{} per {} s ({})",
                r.limit,
                r.window_seconds,
                r.algorithm.replace('_', " ")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

impl RejectedChange {
    /// The change `op` on key `key_id`, refused with `rejection`, in words.
    pub(crate) fn describe(
        op: &keyward_core::api::PushOp,
        key_id: keyward_core::KeyId,
        key_name: String,
        rejection: Rejection,
        queued_at: chrono::DateTime<chrono::Utc>,
        rejected_at: chrono::DateTime<chrono::Utc>,
    ) -> RejectedChange {
        use keyward_core::api::PushOp;
        let mut fields = Vec::new();
        let (summary, retryable) = match op {
            PushOp::CreateKey { data, .. } => {
                field(&mut fields, "Name", &data.name);
                if let Some(scopes) = &data.scopes {
                    field(&mut fields, "Scopes", list(scopes));
                }
                ("Create key".to_owned(), false)
            }
            PushOp::UpdateKey { data, .. } => {
                if let Some(name) = &data.name {
                    field(&mut fields, "Name", name);
                }
                if let Some(d) = &data.description {
                    field(&mut fields, "Description", d.as_deref().unwrap_or("none"));
                }
                if let Some(scopes) = &data.scopes {
                    field(&mut fields, "Scopes", list(scopes));
                }
                if let Some(ips) = &data.allowed_ips {
                    field(&mut fields, "Allowed networks", list(ips));
                }
                if let Some(e) = &data.expires_at {
                    let at = e.map_or("never".to_owned(), |t| {
                        t.format("%Y-%m-%d %H:%M UTC").to_string()
                    });
                    field(&mut fields, "Expires", at);
                }
                if data.metadata.is_some() {
                    field(&mut fields, "Metadata", "replaced");
                }
                if let Some(disabled) = data.disabled {
                    field(
                        &mut fields,
                        "Status",
                        if disabled { "disabled" } else { "enabled" },
                    );
                }
                if let Some(tier) = &data.tier {
                    field(&mut fields, "Tier", tier.as_deref().unwrap_or("none"));
                }
                if let Some(r) = &data.rate_limits {
                    let v = r.as_deref().map_or("the tier's".to_owned(), rules);
                    field(&mut fields, "Rate limits", v);
                }
                if let Some(q) = &data.quota {
                    let v = q.as_ref().map_or("the tier's".to_owned(), |q| {
                        [("per day", q.daily), ("per month", q.monthly)]
                            .iter()
                            .filter_map(|(p, n)| n.map(|n| format!("{n} {p}")))
                            .collect::<Vec<_>>()
                            .join(", ")
                    });
                    field(&mut fields, "Quota", v);
                }
                ("Edit".to_owned(), true)
            }
            PushOp::RevokeKey { data, .. } => {
                if let Some(reason) = &data.reason {
                    field(&mut fields, "Reason", reason);
                }
                let summary = match data.grace_seconds.unwrap_or(0) {
                    0 => "Revoke now".to_owned(),
                    _ => format!("Revoke after {}", grace(data.grace_seconds)),
                };
                (summary, true)
            }
            PushOp::RotateKey { data, .. } => {
                field(
                    &mut fields,
                    "Old key keeps working",
                    grace(data.grace_seconds),
                );
                ("Rotate".to_owned(), false)
            }
        };
        RejectedChange {
            op_id: op.op_id(),
            kind: op.kind().as_str().to_owned(),
            key_id,
            key_name,
            summary,
            fields,
            rejection,
            queued_at,
            rejected_at,
            retryable,
        }
    }
}
