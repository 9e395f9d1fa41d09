//! The audit chain: each entry's hash covers the previous entry's hash and the entry's own
//! canonical content, so editing, inserting or deleting a row breaks a link that
//! [`check_chain`] finds. Content never includes a secret: callers pass key records, which have
//! none.
//!
//! A database writer can rewrite the chain *and* its recorded head together (truncate the log,
//! reset the head). So each append also signs the new head with the server's audit key
//! (`KEYWARD_AUDIT_SIGNING_KEY`, never stored in the database; see [`keyward_core::audit_head`]),
//! and the check refuses a head whose signature does not verify. What the server cannot tell is
//! an older signed head put back with the entries up to it: the desktop replica witnesses that.
//!
//! [`check_chain`]: crate::store::audit::check_chain

use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use keyward_core::api::{AuditEntry, AuditHead, BrokenLink};
use keyward_core::audit_head::{HeadKey, HeadSignatureError, HeadSigner};
use keyward_core::{AdminId, OrgId};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Who did it, from where: everything an entry needs besides the action itself.
#[derive(Debug, Clone)]
pub struct Actor {
    pub org_id: OrgId,
    pub admin_id: Option<AdminId>,
    pub email: Option<String>,
    pub client_ip: Option<IpAddr>,
    pub request_id: Option<String>,
    /// Signs the organisation's chain head after the append: the server's audit key
    /// ([`crate::AppState::audit_signer`]); `None` leaves the head unsigned (no key configured).
    pub signer: Option<Arc<HeadSigner>>,
}

/// An entry about to be appended.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub action: &'static str,
    pub target_type: &'static str,
    pub target_id: Option<String>,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

impl AuditEvent {
    pub fn new(action: &'static str, target_type: &'static str, target_id: impl ToString) -> Self {
        AuditEvent {
            action,
            target_type,
            target_id: Some(target_id.to_string()),
            before: None,
            after: None,
        }
    }

    pub fn before(mut self, v: impl serde::Serialize) -> Self {
        self.before = serde_json::to_value(v).ok();
        self
    }

    pub fn after(mut self, v: impl serde::Serialize) -> Self {
        self.after = serde_json::to_value(v).ok();
        self
    }
}

/// The hash of an entry: SHA-256 over `prev_hash`, a newline and the canonical JSON (sorted
/// keys, no whitespace) of every stored field but the hashes.
pub fn entry_hash(e: &AuditEntry) -> String {
    let content = serde_json::json!({
        "id": e.id,
        "seq": e.seq,
        "org_id": e.org_id,
        "actor_id": e.actor_id,
        "actor_email": e.actor_email,
        "action": e.action,
        "target_type": e.target_type,
        "target_id": e.target_id,
        "client_ip": e.client_ip,
        "request_id": e.request_id,
        "before": e.before,
        "after": e.after,
        "created_at": e.created_at.to_rfc3339_opts(SecondsFormat::Micros, true),
    });
    let mut canonical = String::new();
    write_canonical(&content, &mut canonical);
    let mut h = Sha256::new();
    h.update(e.prev_hash.as_bytes());
    h.update(b"\n");
    h.update(canonical.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// JSON with object keys sorted at every level, whatever order the map kept them in (jsonb
/// reorders keys, so the text read back differs from the text written).
fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// Builds the stored entry for `event`, linked to the chain tip (`seq`, `prev_hash`).
pub fn seal(
    actor: &Actor,
    event: AuditEvent,
    seq: i64,
    prev_hash: String,
    at: DateTime<Utc>,
) -> AuditEntry {
    let mut entry = AuditEntry {
        id: Uuid::now_v7(),
        seq,
        org_id: actor.org_id,
        actor_id: actor.admin_id,
        actor_email: actor.email.clone(),
        action: event.action.to_owned(),
        target_type: event.target_type.to_owned(),
        target_id: event.target_id,
        client_ip: actor.client_ip.map(|ip| ip.to_string()),
        request_id: actor.request_id.clone(),
        before: event.before,
        after: event.after,
        created_at: at,
        hash: String::new(),
        prev_hash,
    };
    entry.hash = entry_hash(&entry);
    entry
}

/// Walks one organisation's chain in `seq` order and reports the first broken link; `head` is
/// the recorded tip (`seq`, `hash`), which catches a deleted tail, and its signature, which
/// catches a head rewritten to match.
pub struct ChainChecker {
    org_id: OrgId,
    expected_seq: i64,
    prev_hash: String,
    pub checked: u64,
}

impl ChainChecker {
    pub fn new(org_id: OrgId) -> Self {
        ChainChecker {
            org_id,
            expected_seq: 1,
            prev_hash: GENESIS.to_owned(),
            checked: 0,
        }
    }

    fn broken(&self, seq: i64, id: Option<Uuid>, reason: impl Into<String>) -> BrokenLink {
        BrokenLink {
            org_id: self.org_id,
            seq,
            id,
            reason: reason.into(),
        }
    }

    pub fn next(&mut self, e: &AuditEntry) -> Result<(), BrokenLink> {
        if e.seq != self.expected_seq {
            return Err(self.broken(
                self.expected_seq,
                Some(e.id),
                format!(
                    "entry {} is missing (found {} next)",
                    self.expected_seq, e.seq
                ),
            ));
        }
        if e.prev_hash != self.prev_hash {
            return Err(self.broken(
                e.seq,
                Some(e.id),
                "prev_hash does not match the previous entry's hash",
            ));
        }
        if entry_hash(e) != e.hash {
            return Err(self.broken(
                e.seq,
                Some(e.id),
                "content does not match its hash (the entry was edited)",
            ));
        }
        self.prev_hash = e.hash.clone();
        self.expected_seq += 1;
        self.checked += 1;
        Ok(())
    }

    /// Checks the recorded head once every entry went through [`ChainChecker::next`]: with the
    /// server's public key, the head must carry a valid signature (a head a database writer made
    /// or reset has none); then the chain must end where the head says.
    pub fn finish(
        &self,
        head: Option<&AuditHead>,
        key: Option<&HeadKey>,
    ) -> Result<(), BrokenLink> {
        let (seq, hash) = head.map_or((0, GENESIS), |h| (h.seq, h.hash.as_str()));
        if let Some(key) = key {
            let signature = head.and_then(|h| h.signature.as_deref());
            if let Err(e) = key.verify(self.org_id, seq, hash, signature) {
                return Err(self.broken(seq, None, unsigned_reason(&e, head.is_some(), seq)));
            }
        }
        if seq != self.expected_seq - 1 || hash != self.prev_hash {
            return Err(self.broken(
                self.expected_seq,
                None,
                format!(
                    "the chain ends at entry {} but its head says {seq} (entries were deleted)",
                    self.expected_seq - 1
                ),
            ));
        }
        Ok(())
    }
}

fn unsigned_reason(e: &HeadSignatureError, recorded: bool, seq: i64) -> String {
    match e {
        HeadSignatureError::Missing if !recorded => "the organisation has no signed chain head: \
            the audit log and its head were deleted from the database"
            .to_owned(),
        HeadSignatureError::Missing => format!(
            "the chain head (entry {seq}) is not signed: a database writer replaced it, or it was \
             written before the audit signing key was configured (the next audited action signs it)"
        ),
        HeadSignatureError::Malformed | HeadSignatureError::Invalid => format!(
            "the chain head (entry {seq}) has a signature that does not verify against the audit \
             public key: it was forged or rewritten in the database, or signed with another key"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<AuditEntry> {
        let actor = Actor {
            org_id: OrgId::new(),
            admin_id: None,
            email: None,
            client_ip: None,
            request_id: None,
            signer: None,
        };
        let mut prev = GENESIS.to_owned();
        (1..=n)
            .map(|seq| {
                let e = seal(
                    &actor,
                    AuditEvent::new("key.create", "key", seq)
                        .after(serde_json::json!({"b": 1, "a": [true]})),
                    seq,
                    prev.clone(),
                    keyward_core::time::now_micros(),
                );
                prev = e.hash.clone();
                e
            })
            .collect()
    }

    fn head_of(entries: &[AuditEntry], signer: Option<&HeadSigner>) -> AuditHead {
        let last = entries.last().unwrap();
        AuditHead {
            org_id: last.org_id,
            seq: last.seq,
            hash: last.hash.clone(),
            signature: signer.map(|s| s.sign(last.org_id, last.seq, &last.hash)),
        }
    }

    fn check(entries: &[AuditEntry], head: Option<(i64, String)>) -> Result<u64, BrokenLink> {
        let head = head.map(|(seq, hash)| AuditHead {
            org_id: entries[0].org_id,
            seq,
            hash,
            signature: None,
        });
        check_signed(entries, head.as_ref(), None)
    }

    fn check_signed(
        entries: &[AuditEntry],
        head: Option<&AuditHead>,
        key: Option<&HeadKey>,
    ) -> Result<u64, BrokenLink> {
        let org = entries
            .first()
            .map(|e| e.org_id)
            .or(head.map(|h| h.org_id))
            .unwrap_or_else(OrgId::new);
        let mut c = ChainChecker::new(org);
        for e in entries {
            c.next(e)?;
        }
        c.finish(head, key)?;
        Ok(c.checked)
    }

    #[test]
    fn a_signed_head_checks_out_and_a_rewritten_one_does_not() {
        let signer = HeadSigner::from_seed(&[3; 32]);
        let key = signer.public_key();
        let entries = chain(4);
        let head = head_of(&entries, Some(&signer));
        assert_eq!(check_signed(&entries, Some(&head), Some(&key)).unwrap(), 4);

        // Truncated under the signed head: the head is genuine, the entries are missing.
        let err = check_signed(&[], Some(&head), Some(&key)).unwrap_err();
        assert!(
            err.reason.contains("entries were deleted"),
            "{}",
            err.reason
        );

        // The last entry deleted and the head moved back with the old signature: forged.
        let mut moved = head_of(&entries[..3], None);
        moved.signature = head.signature.clone();
        let err = check_signed(&entries[..3], Some(&moved), Some(&key)).unwrap_err();
        assert_eq!(err.seq, 3);
        assert!(err.reason.contains("does not verify"), "{}", err.reason);

        // Moved back and its signature dropped: unsigned.
        let bare = head_of(&entries[..3], None);
        let err = check_signed(&entries[..3], Some(&bare), Some(&key)).unwrap_err();
        assert!(err.reason.contains("is not signed"), "{}", err.reason);
        // ... which the chain alone cannot tell.
        assert!(check_signed(&entries[..3], Some(&bare), None).is_ok());

        // Signed by another key.
        let other = head_of(&entries, Some(&HeadSigner::from_seed(&[4; 32])));
        assert!(check_signed(&entries, Some(&other), Some(&key)).is_err());

        // Everything gone, head included.
        let err = check_signed(&[], None, Some(&key)).unwrap_err();
        assert!(
            err.reason.contains("no signed chain head"),
            "{}",
            err.reason
        );
        assert!(check_signed(&[], None, None).is_ok());
    }

    #[test]
    fn an_intact_chain_checks_out() {
        let entries = chain(3);
        let head = Some((3, entries[2].hash.clone()));
        assert_eq!(check(&entries, head).unwrap(), 3);
    }

    #[test]
    fn edits_deletions_and_reordering_are_found() {
        let entries = chain(4);
        let head = Some((4, entries[3].hash.clone()));

        let mut edited = entries.clone();
        edited[1].action = "key.read".into();
        assert_eq!(check(&edited, head.clone()).unwrap_err().seq, 2);

        let mut gap = entries.clone();
        gap.remove(2);
        assert_eq!(check(&gap, head.clone()).unwrap_err().seq, 3);

        let truncated = &entries[..3];
        assert!(check(truncated, head).is_err());
    }

    #[test]
    fn key_order_does_not_change_the_hash() {
        let mut e = chain(1).remove(0);
        let h = entry_hash(&e);
        e.after = Some(serde_json::from_str(r#"{"a":[true],"b":1}"#).unwrap());
        assert_eq!(entry_hash(&e), h);
    }
}
