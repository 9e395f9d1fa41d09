//! The pure decision: what a head the server reported means against the witness held.

use chrono::{DateTime, Utc};
use keyward_core::api::AuditHead;
use keyward_core::audit_head::HeadKey;

use super::{AuditAlarm, AuditAlarmKind, Witness};

/// What to do with a head the server reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Keep it as the new witness.
    Accept(Witness),
    /// Nothing to record: the same head again, or a longer one whose link to the witnessed head
    /// (the entry after it) has not been pulled yet (the rest of the pull brings it).
    Keep,
    /// Raise the alarm; the witness stays as it is.
    Alarm(AuditAlarm),
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// Judges the head the server reported (`head`, with the public key it named, `server_key`)
/// against the witness `held`. `successors` are the `prev_hash` of every entry the replica
/// holds at `held.seq + 1`: a longer chain must continue from the witnessed head.
pub fn judge(
    held: Option<&Witness>,
    head: &AuditHead,
    server_key: Option<&str>,
    successors: &[String],
    now: DateTime<Utc>,
) -> Verdict {
    let alarm = |kind: AuditAlarmKind, anchor: String, detail: String| {
        Verdict::Alarm(AuditAlarm {
            id: format!("audit:{}:{}:{anchor}", head.org_id, kind.as_str()),
            org_id: head.org_id,
            kind,
            detail,
            witnessed_seq: held.map(|w| w.seq),
            witnessed_hash: held.map(|w| w.hash.clone()),
            reported_seq: head.seq,
            reported_hash: head.hash.clone(),
            raised_at: now,
            notified_at: None,
        })
    };
    let anchor = match held {
        Some(w) => format!("{}:{}", w.seq, w.hash),
        None => format!("first:{}:{}", head.seq, head.hash),
    };
    let seen = |w: &Witness| {
        format!(
            "entry {} ({}…, seen {} UTC)",
            w.seq,
            short(&w.hash),
            w.seen_at.format("%Y-%m-%d %H:%M")
        )
    };

    // Length and content: whatever the signatures say.
    if let Some(w) = held {
        if head.seq < w.seq {
            return alarm(
                AuditAlarmKind::ChainRegressed,
                anchor,
                format!(
                    "The server's audit log now ends at entry {}, but this desktop saw it reach \
                     {}: entries were deleted or an older copy was put back. Someone with write \
                     access to the server's database may have tampered with it.",
                    head.seq,
                    seen(w)
                ),
            );
        }
        if head.seq == w.seq && head.hash != w.hash {
            return alarm(
                AuditAlarmKind::ChainForked,
                anchor,
                format!(
                    "The server's audit log entry {} now has hash {}…, but this desktop saw {}: \
                     the log was rewritten.",
                    head.seq,
                    short(&head.hash),
                    seen(w)
                ),
            );
        }
    }

    // The signature, against the key pinned the first time one was seen.
    let pinned = held.and_then(|w| w.public_key.as_deref());
    let check = |key: &str| {
        HeadKey::from_base64(key)
            .map_err(|e| format!("the key {e}"))
            .and_then(|k| {
                k.verify(head.org_id, head.seq, &head.hash, head.signature.as_deref())
                    .map_err(|e| e.to_string())
            })
    };
    let pin = match (pinned, server_key) {
        (Some(p), Some(k)) if p != k => {
            return alarm(
                AuditAlarmKind::KeyChanged,
                k.to_owned(),
                format!(
                    "The server now signs its audit log with key {k}, not with the key {p} this \
                     desktop pinned when it first saw a signed head. Unless the operator rotated \
                     the key, the audit log may have been replaced."
                ),
            );
        }
        (Some(p), None) => {
            return alarm(
                AuditAlarmKind::SignatureInvalid,
                anchor,
                format!(
                    "The server no longer signs its audit log (this desktop pinned key {p}): \
                     entries after {} cannot be told from forged ones.",
                    held.map_or_else(String::new, seen)
                ),
            );
        }
        (Some(p), Some(_)) => {
            if let Err(why) = check(p) {
                return alarm(
                    AuditAlarmKind::SignatureInvalid,
                    anchor,
                    format!(
                        "The server's audit chain head (entry {}) is not signed by the key this \
                         desktop pinned ({p}): {why}. It may have been forged in the server's \
                         database.",
                        head.seq
                    ),
                );
            }
            Some(p)
        }
        // The server has a key but has not signed this head yet (no audited action since the
        // key was configured): nothing to pin until it does.
        (None, Some(_)) if head.signature.is_none() => None,
        (None, Some(k)) => {
            if let Err(why) = check(k) {
                return alarm(
                    AuditAlarmKind::SignatureInvalid,
                    anchor,
                    format!(
                        "The server's audit chain head (entry {}) does not verify against the \
                         key the server names ({k}): {why}. It may have been forged in the \
                         server's database.",
                        head.seq
                    ),
                );
            }
            Some(k)
        }
        (None, None) => None,
    };

    if let Some(w) = held {
        if head.seq > w.seq {
            if successors.is_empty() {
                return Verdict::Keep;
            }
            if !successors.contains(&w.hash) {
                return alarm(
                    AuditAlarmKind::ChainForked,
                    anchor,
                    format!(
                        "The server's audit log after {} does not continue from that entry: the \
                         log was truncated and written anew, or rewritten.",
                        seen(w)
                    ),
                );
            }
        } else if pin == w.public_key.as_deref() && head.signature == w.signature {
            return Verdict::Keep;
        }
    }
    Verdict::Accept(Witness {
        org_id: head.org_id,
        seq: head.seq,
        hash: head.hash.clone(),
        signature: head.signature.clone(),
        public_key: pin.map(str::to_owned),
        seen_at: now,
    })
}
