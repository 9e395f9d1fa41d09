//! `ApiKeyToken::parse` on arbitrary text, and tokens generated from the input's bytes.
//!
//! Invariants:
//! - an accepted token is exactly the text it was parsed from, 59 bytes, and re-assembling it
//!   from its parts (environment, base62 id, secret and checksum) gives the same text;
//! - a generated token parses back to its environment and id (parse(display(x)) == x);
//! - replacing any one character of a valid token with another is always rejected (CRC32
//!   catches every single-character change);
//! - `Debug` of a parsed token never shows its secret.

use keyward_core::token::{TOKEN_LEN, TOKEN_PREFIX};
use keyward_core::{ApiKeyToken, Environment, KeyId};
use uuid::Uuid;

/// Bytes a generated token needs: environment, 16 of id, 32 of seed.
const GENERATED: usize = 1 + 16 + 32;

pub fn run(data: &[u8]) {
    check_text(&crate::text(data));
    if let Some(token) = generated(data) {
        let s = token.expose_secret();
        let parsed = ApiKeyToken::parse(s).expect("a generated token parses");
        assert_eq!(parsed.environment, token.environment());
        assert_eq!(parsed.key_id, token.key_id());
        assert_eq!(parsed.raw(), s);
        check_accepted(s);
        substitutions(s, &data[GENERATED..]);
    }
}

/// A token from the input's first bytes, when there are enough.
fn generated(data: &[u8]) -> Option<ApiKeyToken> {
    let head = data.get(..GENERATED)?;
    let environment = if head[0] & 1 == 0 {
        Environment::Live
    } else {
        Environment::Test
    };
    let id = u128::from_le_bytes(head[1..17].try_into().ok()?);
    let seed: [u8; 32] = head[17..GENERATED].try_into().ok()?;
    Some(ApiKeyToken::from_seed(
        environment,
        KeyId::from_uuid(Uuid::from_u128(id)),
        seed,
    ))
}

/// Each pair of following bytes replaces one character (position, new byte) of a valid token;
/// every such change must be rejected.
fn substitutions(valid: &str, rest: &[u8]) {
    for pair in rest.chunks_exact(2).take(16) {
        let (at, byte) = (usize::from(pair[0]) % TOKEN_LEN, pair[1]);
        let mut bytes = valid.as_bytes().to_vec();
        if bytes[at] == byte {
            continue;
        }
        bytes[at] = byte;
        let changed = String::from_utf8_lossy(&bytes);
        assert!(
            ApiKeyToken::parse(&changed).is_err(),
            "a token with byte {at} changed to {byte:#04x} was accepted"
        );
    }
}

fn check_text(s: &str) {
    match ApiKeyToken::parse(s) {
        Ok(_) => check_accepted(s),
        Err(e) => {
            // Fixed texts per variant, so they cannot carry what was presented.
            assert!(!e.to_string().is_empty());
        }
    }
}

fn check_accepted(s: &str) {
    let parsed = ApiKeyToken::parse(s).expect("accepted");
    assert_eq!(parsed.raw(), s);
    assert_eq!(s.len(), TOKEN_LEN);
    assert!(s.is_ascii());
    let id = parsed.key_id.to_base62();
    let rebuilt = format!(
        "{TOKEN_PREFIX}{}_{id}_{}",
        parsed.environment,
        &s[TOKEN_PREFIX.len() + 5 + id.len() + 1..]
    );
    assert_eq!(rebuilt, s, "the token is not its parts");
    assert_eq!(KeyId::from_base62(&id), Some(parsed.key_id));
    // Debug never shows the secret part.
    let secret = &s[s.len() - 28..];
    assert!(!format!("{parsed:?}").contains(secret));
}
