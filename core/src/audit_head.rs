//! Signed audit chain heads: tamper evidence that survives a database writer.
//!
//! The hash chain finds an edited or deleted entry, but whoever can write the database can also
//! rewrite the head (`audit_heads`) to match: truncate the log, reset the head, and the chain
//! checks out. So the server signs each organisation's head, on every append, with an ed25519
//! key held outside the database (`KEYWARD_AUDIT_SIGNING_KEY`), and whoever holds the public key
//! (the server's own check, the desktop as a witness) can tell a head the server wrote from one
//! a database writer made.
//!
//! The signed message is domain separated and names the organisation, so a signature is good
//! for one head of one organisation and nothing else: see [`message`]. A database writer can
//! still put back an *older* signed head (and the entries up to it); the server cannot tell,
//! but a witness that saw a later head can (the desktop replica keeps the highest one it saw).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use crate::ids::OrgId;

/// The first line of every signed head message.
pub const DOMAIN: &str = "keyward-audit-head-v1";

/// The exact bytes signed for organisation `org`'s head at entry `seq` with hash `hash`:
/// `keyward-audit-head-v1\n{org}\n{seq}\n{hash}` (the organisation as a hyphenated lowercase
/// UUID, `seq` in decimal, `hash` as stored: 64 lowercase hex digits).
pub fn message(org: OrgId, seq: i64, hash: &str) -> String {
    format!("{DOMAIN}\n{org}\n{seq}\n{hash}")
}

/// A key that is not what it should be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeadKeyError {
    #[error("is not base64")]
    NotBase64,
    #[error("is {0} bytes, not 32")]
    WrongLength(usize),
    #[error("is not an ed25519 public key")]
    NotAPublicKey,
}

/// Why a head's signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeadSignatureError {
    #[error("the head is not signed")]
    Missing,
    #[error("the head's signature is not 64 bytes in base64")]
    Malformed,
    #[error("the head's signature does not verify against the audit public key")]
    Invalid,
}

fn decode_32(text: &str) -> Result<[u8; 32], HeadKeyError> {
    let bytes = B64
        .decode(text.trim())
        .map_err(|_| HeadKeyError::NotBase64)?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| HeadKeyError::WrongLength(bytes.len()))
}

/// The server's signing key. Its `Debug` shows the public key only; the seed is wiped on drop.
pub struct HeadSigner {
    key: SigningKey,
}

impl HeadSigner {
    pub fn from_seed(seed: &[u8; 32]) -> HeadSigner {
        HeadSigner {
            key: SigningKey::from_bytes(seed),
        }
    }

    /// From a 32-byte ed25519 seed in standard base64 (`openssl rand -base64 32`).
    pub fn from_base64(seed: &str) -> Result<HeadSigner, HeadKeyError> {
        let mut bytes = decode_32(seed)?;
        let signer = HeadSigner::from_seed(&bytes);
        bytes.fill(0);
        Ok(signer)
    }

    pub fn public_key(&self) -> HeadKey {
        HeadKey(self.key.verifying_key())
    }

    /// The base64 signature of [`message`]`(org, seq, hash)`.
    pub fn sign(&self, org: OrgId, seq: i64, hash: &str) -> String {
        let signature = self.key.sign(message(org, seq, hash).as_bytes());
        B64.encode(signature.to_bytes())
    }
}

impl std::fmt::Debug for HeadSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeadSigner")
            .field("public_key", &self.public_key())
            .finish_non_exhaustive()
    }
}

/// An audit public key; shown and parsed as standard base64 of its 32 bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HeadKey(VerifyingKey);

impl HeadKey {
    pub fn from_base64(text: &str) -> Result<HeadKey, HeadKeyError> {
        let bytes = decode_32(text)?;
        VerifyingKey::from_bytes(&bytes)
            .map(HeadKey)
            .map_err(|_| HeadKeyError::NotAPublicKey)
    }

    pub fn to_base64(&self) -> String {
        B64.encode(self.0.as_bytes())
    }

    /// Checks `signature` (base64, as [`HeadSigner::sign`] makes it) over `(org, seq, hash)`.
    /// Strict: a small-order key or a malleated signature is refused.
    pub fn verify(
        &self,
        org: OrgId,
        seq: i64,
        hash: &str,
        signature: Option<&str>,
    ) -> Result<(), HeadSignatureError> {
        let text = signature.ok_or(HeadSignatureError::Missing)?;
        let bytes = B64
            .decode(text.trim())
            .map_err(|_| HeadSignatureError::Malformed)?;
        let bytes =
            <[u8; 64]>::try_from(bytes.as_slice()).map_err(|_| HeadSignatureError::Malformed)?;
        self.0
            .verify_strict(
                message(org, seq, hash).as_bytes(),
                &Signature::from_bytes(&bytes),
            )
            .map_err(|_| HeadSignatureError::Invalid)
    }
}

impl std::fmt::Display for HeadKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl std::fmt::Debug for HeadKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HeadKey({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn org() -> OrgId {
        OrgId::from_uuid(Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001))
    }

    fn signer() -> HeadSigner {
        HeadSigner::from_seed(&[7; 32])
    }

    #[test]
    fn the_message_is_domain_separated_and_names_everything() {
        assert_eq!(
            message(org(), 17, HASH),
            format!("keyward-audit-head-v1\n01900000-0000-7000-8000-000000000001\n17\n{HASH}")
        );
    }

    #[test]
    fn a_signed_head_verifies_and_any_change_does_not() {
        let s = signer();
        let key = s.public_key();
        let sig = s.sign(org(), 17, HASH);
        assert_eq!(key.verify(org(), 17, HASH, Some(&sig)), Ok(()));

        let other_org = OrgId::from_uuid(Uuid::from_u128(2));
        assert_eq!(
            key.verify(other_org, 17, HASH, Some(&sig)),
            Err(HeadSignatureError::Invalid)
        );
        assert_eq!(
            key.verify(org(), 16, HASH, Some(&sig)),
            Err(HeadSignatureError::Invalid)
        );
        let other_hash = HASH.replace('9', "8");
        assert_eq!(
            key.verify(org(), 17, &other_hash, Some(&sig)),
            Err(HeadSignatureError::Invalid)
        );
        assert_eq!(
            key.verify(org(), 17, HASH, None),
            Err(HeadSignatureError::Missing)
        );
        assert_eq!(
            key.verify(org(), 17, HASH, Some("not base64!")),
            Err(HeadSignatureError::Malformed)
        );
        assert_eq!(
            key.verify(org(), 17, HASH, Some(&B64.encode([0u8; 12]))),
            Err(HeadSignatureError::Malformed)
        );

        // Another key's signature over the same head does not pass.
        let forged = HeadSigner::from_seed(&[8; 32]).sign(org(), 17, HASH);
        assert_eq!(
            key.verify(org(), 17, HASH, Some(&forged)),
            Err(HeadSignatureError::Invalid)
        );
    }

    #[test]
    fn keys_round_trip_through_base64_and_bad_ones_are_named() {
        let seed = B64.encode([7u8; 32]);
        let s = HeadSigner::from_base64(&seed).unwrap();
        assert_eq!(s.public_key(), signer().public_key());
        let public = s.public_key().to_base64();
        assert_eq!(HeadKey::from_base64(&public).unwrap(), s.public_key());
        // Signatures are deterministic (RFC 8032).
        assert_eq!(s.sign(org(), 1, HASH), signer().sign(org(), 1, HASH));

        assert_eq!(
            HeadSigner::from_base64("%%%").unwrap_err(),
            HeadKeyError::NotBase64
        );
        assert_eq!(
            HeadSigner::from_base64(&B64.encode([1u8; 16])).unwrap_err(),
            HeadKeyError::WrongLength(16)
        );
        assert!(!format!("{s:?}").contains(&seed), "the seed is never shown");
        assert!(format!("{s:?}").contains(&public));
    }
}
