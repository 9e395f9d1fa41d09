//! The desktop as a witness of the server's audit chain.
//!
//! The server signs each organisation's audit chain head with a key its database does not hold,
//! so a database writer cannot forge a head; but it can put back an older signed head with the
//! entries up to it (or truncate everything), and the server alone cannot tell. The replica can:
//! every pull carries the head of its snapshot, and the replica keeps the highest head it
//! accepted (with the server's signature over it: evidence it can show) and the server's audit
//! public key as first seen (trust on first use). A head that is shorter, forked, not linked to
//! the witnessed one or not signed by the pinned key raises an [`AuditAlarm`] (a desktop
//! notification) and never replaces the witness.
//!
//! [`judge`] is the pure decision; [`Replica::audit_alarms`] and [`Replica::audit_witness`] read
//! what the pulls recorded.
//!
//! [`Replica::audit_alarms`]: crate::Replica::audit_alarms
//! [`Replica::audit_witness`]: crate::Replica::audit_witness

mod persist;
mod verdict;

#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};
use keyward_core::OrgId;
use serde::Serialize;

pub(crate) use persist::{audit_alarms, witness_head};
pub use verdict::{Verdict, judge};

/// The highest audit chain head the replica accepted for an organisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Witness {
    pub org_id: OrgId,
    pub seq: i64,
    pub hash: String,
    /// The server's signature over the head (`None`: the server did not sign it).
    pub signature: Option<String>,
    /// The server's audit public key (base64), pinned at the first signed head seen.
    pub public_key: Option<String>,
    pub seen_at: DateTime<Utc>,
}

/// What the witness found wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum AuditAlarmKind {
    /// The server's chain is shorter than a head seen before: entries were removed.
    #[serde(rename = "audit.chain_regressed")]
    ChainRegressed,
    /// The chain at the witnessed length has another hash, or what follows it does not link to
    /// it: entries were rewritten.
    #[serde(rename = "audit.chain_forked")]
    ChainForked,
    /// The head is not signed by the pinned key (or no longer signed at all).
    #[serde(rename = "audit.signature_invalid")]
    SignatureInvalid,
    /// The server names another audit public key than the one pinned.
    #[serde(rename = "audit.key_changed")]
    KeyChanged,
}

impl AuditAlarmKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAlarmKind::ChainRegressed => "audit.chain_regressed",
            AuditAlarmKind::ChainForked => "audit.chain_forked",
            AuditAlarmKind::SignatureInvalid => "audit.signature_invalid",
            AuditAlarmKind::KeyChanged => "audit.key_changed",
        }
    }

    fn parse(s: &str) -> Option<AuditAlarmKind> {
        [
            AuditAlarmKind::ChainRegressed,
            AuditAlarmKind::ChainForked,
            AuditAlarmKind::SignatureInvalid,
            AuditAlarmKind::KeyChanged,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }

    /// The notification's title.
    pub fn title(self) -> &'static str {
        match self {
            AuditAlarmKind::ChainRegressed => "Audit log shortened on the server",
            AuditAlarmKind::ChainForked => "Audit log rewritten on the server",
            AuditAlarmKind::SignatureInvalid => "Audit log signature invalid",
            AuditAlarmKind::KeyChanged => "Audit signing key changed",
        }
    }
}

/// An alarm the witness raised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditAlarm {
    /// Stable for one problem (`audit:{org}:{kind}:{the witnessed head, or the new key}`), so
    /// the same problem seen at every sync is raised and notified once.
    pub id: String,
    pub org_id: OrgId,
    pub kind: AuditAlarmKind,
    pub detail: String,
    /// The head the witness held, and kept.
    pub witnessed_seq: Option<i64>,
    pub witnessed_hash: Option<String>,
    /// The head the server reported.
    pub reported_seq: i64,
    pub reported_hash: String,
    pub raised_at: DateTime<Utc>,
    pub notified_at: Option<DateTime<Utc>>,
}
