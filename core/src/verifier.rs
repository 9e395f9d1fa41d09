//! The fast verifier: after argon2 has accepted a token once (or when the server minted it), a
//! keyed HMAC-SHA-256 of the token is stored beside its argon2id hash, so any node — a restarted
//! one included — checks a known-good token with one indexed read and one HMAC instead of argon2.
//!
//! Why the at-rest guarantee holds: the key (`KEYWARD_VERIFIER_KEY`) is held outside the
//! database. A dump alone therefore allows no offline check of a guess, argon2 or otherwise; and
//! with the key, guessing is still hopeless, since tokens carry 131 random bits. Each stored
//! verifier names its key by an 8-byte id, so rotating the server secret makes every stored
//! verifier unusable at once (those keys go back through argon2 once, and get a new verifier).

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Bytes of a stored verifier: the key id (8) and the MAC (32).
pub const VERIFIER_LEN: usize = 40;

/// The server's verifier key and its id.
#[derive(Clone)]
pub struct VerifierKey {
    key: [u8; 32],
    kid: [u8; 8],
}

impl std::fmt::Debug for VerifierKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifierKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl VerifierKey {
    pub fn new(key: [u8; 32]) -> VerifierKey {
        let mut h = Sha256::new();
        h.update(b"keyward-verifier-kid-v1\0");
        h.update(key);
        let digest = h.finalize();
        let mut kid = [0u8; 8];
        kid.copy_from_slice(&digest[..8]);
        VerifierKey { key, kid }
    }

    /// The key's id, stored at the front of every verifier it makes.
    pub fn kid(&self) -> [u8; 8] {
        self.kid
    }

    fn mac(&self, token: &str) -> [u8; 32] {
        let mut mac =
            <HmacSha256 as Mac>::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        mac.update(b"keyward-verifier-v1\0");
        mac.update(token.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The verifier to store for a token known to be good.
    pub fn seal(&self, token: &str) -> [u8; VERIFIER_LEN] {
        let mut out = [0u8; VERIFIER_LEN];
        out[..8].copy_from_slice(&self.kid);
        out[8..].copy_from_slice(&self.mac(token));
        out
    }

    /// Whether `token` is the token `stored` was made for, in constant time; `None` when
    /// `stored` was made with another key (or is malformed): the caller falls back to argon2.
    pub fn check(&self, stored: &[u8], token: &str) -> Option<bool> {
        if stored.len() != VERIFIER_LEN || stored[..8] != self.kid {
            return None;
        }
        Some(stored[8..].ct_eq(&self.mac(token)).into())
    }

    /// Whether `stored` was made with this key.
    pub fn owns(&self, stored: &[u8]) -> bool {
        stored.len() == VERIFIER_LEN && stored[..8] == self.kid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verifier_accepts_its_token_only_and_names_its_key() {
        let k = VerifierKey::new([7u8; 32]);
        let v = k.seal("kw_live_token");
        assert_eq!(k.check(&v, "kw_live_token"), Some(true));
        assert_eq!(k.check(&v, "kw_live_tokeN"), Some(false));
        assert!(k.owns(&v));
        let rotated = VerifierKey::new([8u8; 32]);
        assert_eq!(
            rotated.check(&v, "kw_live_token"),
            None,
            "another key's verifier"
        );
        assert!(!rotated.owns(&v));
        assert_eq!(k.check(&v[..39], "kw_live_token"), None);
        assert_ne!(k.kid(), rotated.kid());
        assert!(!format!("{k:?}").contains("7, 7"), "the key is not printed");
    }
}
