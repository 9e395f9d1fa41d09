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

use chrono::{DateTime, Utc};
use keyward_core::OrgId;
use keyward_core::api::AuditHead;
use keyward_core::audit_head::HeadKey;
use serde::Serialize;
use sqlx::{Row, SqliteConnection};

use crate::error::ReplicaError;
use crate::replica::Replica;
use crate::store::{from_micros, micros};

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

async fn load(conn: &mut SqliteConnection, org: OrgId) -> Result<Option<Witness>, ReplicaError> {
    let row = sqlx::query(
        "SELECT seq, hash, signature, public_key, seen_at FROM audit_witness WHERE org_id = ?",
    )
    .bind(org.to_string())
    .fetch_optional(conn)
    .await?;
    row.map(|r| {
        Ok(Witness {
            org_id: org,
            seq: r.try_get("seq")?,
            hash: r.try_get("hash")?,
            signature: r.try_get("signature")?,
            public_key: r.try_get("public_key")?,
            seen_at: from_micros(r.try_get("seen_at")?),
        })
    })
    .transpose()
}

/// Checks the head a pull brought against the witness, inside the pull's transaction (after its
/// entries were stored): records it when accepted, records the alarm when not. Returns the
/// alarm when one is new.
pub(crate) async fn witness_head(
    conn: &mut SqliteConnection,
    head: &AuditHead,
    server_key: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Option<AuditAlarm>, ReplicaError> {
    let held = load(&mut *conn, head.org_id).await?;
    let successors: Vec<String> = match &held {
        Some(w) => {
            sqlx::query_scalar(
                "SELECT json_extract(data, '$.prev_hash') FROM audit
                  WHERE seq = ? AND json_extract(data, '$.org_id') = ?",
            )
            .bind(w.seq + 1)
            .bind(head.org_id.to_string())
            .fetch_all(&mut *conn)
            .await?
        }
        None => Vec::new(),
    };
    match judge(held.as_ref(), head, server_key, &successors, now) {
        Verdict::Keep => Ok(None),
        Verdict::Accept(w) => {
            sqlx::query(
                "INSERT OR REPLACE INTO audit_witness (org_id, seq, hash, signature, public_key,
                    seen_at) VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(w.org_id.to_string())
            .bind(w.seq)
            .bind(&w.hash)
            .bind(&w.signature)
            .bind(&w.public_key)
            .bind(micros(w.seen_at))
            .execute(conn)
            .await?;
            Ok(None)
        }
        Verdict::Alarm(a) => {
            let inserted = sqlx::query(
                "INSERT OR IGNORE INTO audit_alarms (id, org_id, kind, detail, witnessed_seq,
                    witnessed_hash, reported_seq, reported_hash, raised_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&a.id)
            .bind(a.org_id.to_string())
            .bind(a.kind.as_str())
            .bind(&a.detail)
            .bind(a.witnessed_seq)
            .bind(&a.witnessed_hash)
            .bind(a.reported_seq)
            .bind(&a.reported_hash)
            .bind(micros(a.raised_at))
            .execute(conn)
            .await?
            .rows_affected();
            if inserted == 0 {
                return Ok(None);
            }
            tracing::error!(kind = a.kind.as_str(), org = %a.org_id, witnessed = ?a.witnessed_seq,
                reported = a.reported_seq, "{}", a.detail);
            Ok(Some(a))
        }
    }
}

impl Replica {
    /// The highest audit chain head of `org` this replica accepted.
    pub async fn audit_witness(&self, org: OrgId) -> Result<Option<Witness>, ReplicaError> {
        let mut conn = self.conn().await?;
        load(&mut conn, org).await
    }

    /// Every alarm the witness raised, newest first.
    pub async fn audit_alarms(&self) -> Result<Vec<AuditAlarm>, ReplicaError> {
        let mut conn = self.conn().await?;
        audit_alarms(&mut conn, false).await
    }

    /// Forgets what the replica witnessed of `org`'s audit chain and the key it pinned (after
    /// the operator confirmed a key rotation, say): the next pull starts afresh. Alarms stay.
    pub async fn forget_audit_witness(&self, org: OrgId) -> Result<(), ReplicaError> {
        let mut conn = self.conn().await?;
        sqlx::query("DELETE FROM audit_witness WHERE org_id = ?")
            .bind(org.to_string())
            .execute(&mut *conn)
            .await?;
        Ok(())
    }
}

/// Alarms, newest first (`unnotified`: only those not notified yet).
pub(crate) async fn audit_alarms(
    conn: &mut SqliteConnection,
    unnotified: bool,
) -> Result<Vec<AuditAlarm>, ReplicaError> {
    let rows = sqlx::query(
        "SELECT id, org_id, kind, detail, witnessed_seq, witnessed_hash, reported_seq,
                reported_hash, raised_at, notified_at
           FROM audit_alarms WHERE (? = 0 OR notified_at IS NULL)
          ORDER BY raised_at DESC, id",
    )
    .bind(unnotified)
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|r| {
            let org: String = r.try_get("org_id")?;
            let kind: String = r.try_get("kind")?;
            Ok(AuditAlarm {
                id: r.try_get("id")?,
                org_id: org.parse().map_err(|_| ReplicaError::BadId(org.clone()))?,
                kind: AuditAlarmKind::parse(&kind).ok_or(ReplicaError::BadId(kind.clone()))?,
                detail: r.try_get("detail")?,
                witnessed_seq: r.try_get("witnessed_seq")?,
                witnessed_hash: r.try_get("witnessed_hash")?,
                reported_seq: r.try_get("reported_seq")?,
                reported_hash: r.try_get("reported_hash")?,
                raised_at: from_micros(r.try_get("raised_at")?),
                notified_at: r.try_get::<Option<i64>, _>("notified_at")?.map(from_micros),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_core::audit_head::HeadSigner;
    use uuid::Uuid;

    fn org() -> OrgId {
        OrgId::from_uuid(Uuid::from_u128(42))
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_780_000_000, 0).unwrap()
    }

    fn hash(n: i64) -> String {
        format!("{n:064x}")
    }

    fn signer() -> HeadSigner {
        HeadSigner::from_seed(&[9; 32])
    }

    fn key() -> String {
        signer().public_key().to_base64()
    }

    fn head(seq: i64, signer: Option<&HeadSigner>) -> AuditHead {
        AuditHead {
            org_id: org(),
            seq,
            hash: hash(seq),
            signature: signer.map(|s| s.sign(org(), seq, &hash(seq))),
        }
    }

    fn accepted(v: Verdict) -> Witness {
        match v {
            Verdict::Accept(w) => w,
            other => panic!("expected Accept, got {other:?}"),
        }
    }

    fn alarmed(v: Verdict) -> AuditAlarm {
        match v {
            Verdict::Alarm(a) => a,
            other => panic!("expected Alarm, got {other:?}"),
        }
    }

    /// The witness after seeing a signed head at `seq`.
    fn seen(seq: i64) -> Witness {
        accepted(judge(
            None,
            &head(seq, Some(&signer())),
            Some(&key()),
            &[],
            now(),
        ))
    }

    #[test]
    fn the_first_signed_head_pins_the_key_and_growth_is_accepted() {
        let w = seen(17);
        assert_eq!(w.seq, 17);
        assert_eq!(w.public_key.as_deref(), Some(key().as_str()));
        assert!(w.signature.is_some());

        // Longer, linked to the witnessed head, signed by the pinned key.
        let next = accepted(judge(
            Some(&w),
            &head(20, Some(&signer())),
            Some(&key()),
            &[hash(17)],
            now(),
        ));
        assert_eq!(next.seq, 20);
        assert_eq!(next.public_key, w.public_key);

        // The same head again: nothing to record.
        let again = judge(
            Some(&w),
            &head(17, Some(&signer())),
            Some(&key()),
            &[],
            now(),
        );
        assert_eq!(again, Verdict::Keep);

        // Longer, but the entry after the witnessed head has not been pulled yet: wait.
        let waiting = judge(
            Some(&w),
            &head(20, Some(&signer())),
            Some(&key()),
            &[],
            now(),
        );
        assert_eq!(waiting, Verdict::Keep);
    }

    #[test]
    fn a_shorter_chain_is_an_alarm_that_keeps_the_witness() {
        let w = seen(17);
        // Truncated and reset: nothing signed at all.
        let reset = AuditHead {
            org_id: org(),
            seq: 0,
            hash: "0".repeat(64),
            signature: None,
        };
        let a = alarmed(judge(Some(&w), &reset, Some(&key()), &[], now()));
        assert_eq!(a.kind, AuditAlarmKind::ChainRegressed);
        assert_eq!(a.kind.as_str(), "audit.chain_regressed");
        assert_eq!((a.witnessed_seq, a.reported_seq), (Some(17), 0));
        assert!(a.detail.contains("ends at entry 0"), "{}", a.detail);
        assert!(a.detail.contains("entry 17"), "{}", a.detail);

        // An older head the server really signed, put back: still shorter.
        let rolled_back = alarmed(judge(
            Some(&w),
            &head(5, Some(&signer())),
            Some(&key()),
            &[],
            now(),
        ));
        assert_eq!(rolled_back.kind, AuditAlarmKind::ChainRegressed);
        // One problem, one id: the next syncs raise nothing new.
        assert_eq!(rolled_back.id, a.id);
    }

    #[test]
    fn same_length_other_hash_or_an_unlinked_successor_is_a_fork() {
        let w = seen(17);
        let mut other = head(17, Some(&signer()));
        other.hash = hash(99);
        other.signature = Some(signer().sign(org(), 17, &other.hash));
        let a = alarmed(judge(Some(&w), &other, Some(&key()), &[], now()));
        assert_eq!(a.kind, AuditAlarmKind::ChainForked);

        // Truncated and written anew past the witnessed length (and signed by the server, which
        // appended it): the entry after 17 does not link to the hash seen at 17.
        let a = alarmed(judge(
            Some(&w),
            &head(30, Some(&signer())),
            Some(&key()),
            &[hash(1717)],
            now(),
        ));
        assert_eq!(a.kind, AuditAlarmKind::ChainForked);
        assert!(a.detail.contains("does not continue"), "{}", a.detail);
    }

    #[test]
    fn signatures_must_verify_against_the_pinned_key() {
        let w = seen(17);
        let forger = HeadSigner::from_seed(&[1; 32]);

        // A longer head signed by someone else, the server still naming the pinned key.
        let a = alarmed(judge(
            Some(&w),
            &head(18, Some(&forger)),
            Some(&key()),
            &[hash(17)],
            now(),
        ));
        assert_eq!(a.kind, AuditAlarmKind::SignatureInvalid);
        // Unsigned.
        let a = alarmed(judge(
            Some(&w),
            &head(18, None),
            Some(&key()),
            &[hash(17)],
            now(),
        ));
        assert_eq!(a.kind, AuditAlarmKind::SignatureInvalid);
        assert!(a.detail.contains("not signed"), "{}", a.detail);
        // The server stopped naming a key.
        let a = alarmed(judge(Some(&w), &head(18, None), None, &[hash(17)], now()));
        assert_eq!(a.kind, AuditAlarmKind::SignatureInvalid);

        // The server names another key: not trusted, the pin stays.
        let other_key = forger.public_key().to_base64();
        let a = alarmed(judge(
            Some(&w),
            &head(18, Some(&forger)),
            Some(&other_key),
            &[hash(17)],
            now(),
        ));
        assert_eq!(a.kind, AuditAlarmKind::KeyChanged);
        assert!(a.id.ends_with(&other_key));

        // First sight of a head that does not verify against the key the server names: no pin.
        let a = alarmed(judge(
            None,
            &head(3, Some(&forger)),
            Some(&key()),
            &[],
            now(),
        ));
        assert_eq!(a.kind, AuditAlarmKind::SignatureInvalid);
    }

    #[test]
    fn an_unsigned_server_is_witnessed_by_length_and_pinned_once_it_signs() {
        let w = accepted(judge(None, &head(4, None), None, &[], now()));
        assert_eq!(w.public_key, None);
        let a = alarmed(judge(Some(&w), &head(2, None), None, &[], now()));
        assert_eq!(a.kind, AuditAlarmKind::ChainRegressed);

        // A key configured, the head not signed yet: accepted, nothing pinned.
        let same = judge(Some(&w), &head(4, None), Some(&key()), &[], now());
        assert_eq!(same, Verdict::Keep);
        // Then the first signed head pins it.
        let signed = accepted(judge(
            Some(&w),
            &head(5, Some(&signer())),
            Some(&key()),
            &[hash(4)],
            now(),
        ));
        assert_eq!(signed.public_key.as_deref(), Some(key().as_str()));
    }
}
