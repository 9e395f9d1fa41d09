//! Tests of the witness's verdicts on signed, forked, shortened and unsigned chains.

use super::*;
use keyward_core::api::AuditHead;
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
