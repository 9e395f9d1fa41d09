//! The API key token: `kw_{env}_{id}_{secret}{check}`.
//!
//! | part     | bytes | content                                                        |
//! |----------|-------|----------------------------------------------------------------|
//! | `kw_`    | 3     | fixed prefix, so secret scanners can find leaked keys          |
//! | `env_`   | 5     | `live_` or `test_`                                             |
//! | `id`     | 22    | [`KeyId::to_base62`]: the public lookup id                     |
//! | `_`      | 1     | separator                                                      |
//! | `secret` | 22    | uniformly random alphanumerics from the OS CSPRNG (≈131 bits)  |
//! | `check`  | 6     | CRC32 of everything before it, base62, zero-padded             |
//!
//! Every token is exactly [`TOKEN_LEN`] bytes. The checksum lets [`ApiKeyToken::parse`] reject
//! typos and garbage without touching the database: CRC32 detects every single-character change.

use std::fmt;
use std::str::FromStr;

use rand::distributions::{Alphanumeric, Distribution};
use rand::rngs::{OsRng, StdRng};
use rand::{RngCore, SeedableRng};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::ids::{KEY_ID_BASE62_LEN, KeyId};

/// Fixed prefix of every token.
pub const TOKEN_PREFIX: &str = "kw_";
/// Length of the random secret part, in base62 characters.
pub const SECRET_LEN: usize = 22;
/// Length of the checksum part, in base62 characters.
pub const CHECK_LEN: usize = 6;
/// Exact length of every token in bytes: `kw_` + `live_` + id + `_` + secret + check.
pub const TOKEN_LEN: usize =
    TOKEN_PREFIX.len() + ENV_PART_LEN + KEY_ID_BASE62_LEN + 1 + SECRET_LEN + CHECK_LEN;

/// `live_` / `test_`.
const ENV_PART_LEN: usize = 5;
const ENV_START: usize = TOKEN_PREFIX.len();
const ID_START: usize = ENV_START + ENV_PART_LEN;
const ID_END: usize = ID_START + KEY_ID_BASE62_LEN;
const SECRET_START: usize = ID_END + 1;
const CHECK_START: usize = SECRET_START + SECRET_LEN;

/// Which world a key belongs to. Test keys never touch live data.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum Environment {
    /// Production traffic.
    #[default]
    Live,
    /// Sandbox traffic.
    Test,
}

impl Environment {
    /// `"live"` or `"test"`, as in the token and on the wire.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Environment::Live => "live",
            Environment::Test => "test",
        }
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An environment name other than `live` or `test`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("environment must be \"live\" or \"test\"")]
pub struct UnknownEnvironment;

impl FromStr for Environment {
    type Err = UnknownEnvironment;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "live" => Ok(Environment::Live),
            "test" => Ok(Environment::Test),
            _ => Err(UnknownEnvironment),
        }
    }
}

/// Why a string is not a well-formed token. Messages never include the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum TokenError {
    #[error("API key has the wrong length (a Keyward key is {TOKEN_LEN} characters)")]
    Length,
    #[error("API key does not start with \"kw_\"")]
    Prefix,
    #[error("API key environment must be \"live_\" or \"test_\"")]
    Environment,
    #[error("API key id is not 22 base62 characters followed by \"_\"")]
    Id,
    #[error("API key secret is not 22 base62 characters")]
    Secret,
    #[error("API key checksum does not match (the key is mistyped or truncated)")]
    Checksum,
}

/// A full API key token. The plaintext exists only here, shown once to the admin; `Debug`
/// prints the environment and key id only.
#[derive(Clone)]
pub struct ApiKeyToken {
    environment: Environment,
    key_id: KeyId,
    secret: SecretString,
}

impl ApiKeyToken {
    /// A new token whose secret comes from the OS CSPRNG.
    pub fn generate(environment: Environment, key_id: KeyId) -> ApiKeyToken {
        Self::with_rng(environment, key_id, &mut OsRng)
    }

    /// A token whose secret is drawn from `StdRng::from_seed(seed)`.
    ///
    /// Deterministic, therefore NOT secret to anyone who knows the seed: only for reproducible
    /// demo and fixture data, never for real keys.
    pub fn from_seed(environment: Environment, key_id: KeyId, seed: [u8; 32]) -> ApiKeyToken {
        Self::with_rng(environment, key_id, &mut StdRng::from_seed(seed))
    }

    fn with_rng(environment: Environment, key_id: KeyId, rng: &mut impl RngCore) -> ApiKeyToken {
        let mut token = String::with_capacity(TOKEN_LEN);
        token.push_str(TOKEN_PREFIX);
        token.push_str(environment.as_str());
        token.push('_');
        token.push_str(&key_id.to_base62());
        token.push('_');
        token.extend(
            Alphanumeric
                .sample_iter(rng)
                .take(SECRET_LEN)
                .map(char::from),
        );
        let check = checksum(token.as_bytes());
        token.push_str(std::str::from_utf8(&check).expect("base62 is ASCII"));
        debug_assert_eq!(token.len(), TOKEN_LEN);
        ApiKeyToken {
            environment,
            key_id,
            secret: SecretString::from(token),
        }
    }

    /// The full token string. Show it once; never log or store it.
    pub fn expose_secret(&self) -> &str {
        self.secret.expose_secret()
    }

    /// The key's environment.
    pub fn environment(&self) -> Environment {
        self.environment
    }

    /// The key's public id.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// Checks a presented token's structure and checksum without allocating.
    ///
    /// Runs on every request before any lookup, cheapest checks first: length, prefix,
    /// environment, separators, alphabet of id and secret, then the CRC32 checksum.
    pub fn parse(s: &str) -> Result<ParsedToken<'_>, TokenError> {
        let b = s.as_bytes();
        if b.len() != TOKEN_LEN {
            return Err(TokenError::Length);
        }
        if &b[..ENV_START] != TOKEN_PREFIX.as_bytes() {
            return Err(TokenError::Prefix);
        }
        let environment = match &b[ENV_START..ID_START] {
            b"live_" => Environment::Live,
            b"test_" => Environment::Test,
            _ => return Err(TokenError::Environment),
        };
        if b[ID_END] != b'_' {
            return Err(TokenError::Id);
        }
        // Both neighbours of the id are ASCII (`_`), so this slice falls on char boundaries.
        let key_id = KeyId::from_base62(&s[ID_START..ID_END]).ok_or(TokenError::Id)?;
        if !b[SECRET_START..CHECK_START]
            .iter()
            .all(u8::is_ascii_alphanumeric)
        {
            return Err(TokenError::Secret);
        }
        if checksum(&b[..CHECK_START]) != b[CHECK_START..] {
            return Err(TokenError::Checksum);
        }
        Ok(ParsedToken {
            environment,
            key_id,
            raw: s,
        })
    }
}

impl fmt::Debug for ApiKeyToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyToken")
            .field("environment", &self.environment)
            .field("key_id", &self.key_id)
            .field("secret", &"[REDACTED]")
            .finish()
    }
}

/// A presented token that passed [`ApiKeyToken::parse`]: well formed with a valid checksum, but
/// not yet verified against the stored hash.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ParsedToken<'a> {
    pub environment: Environment,
    pub key_id: KeyId,
    raw: &'a str,
}

impl<'a> ParsedToken<'a> {
    /// The full token as presented, for hashing and digest comparison. Never log it.
    pub fn raw(&self) -> &'a str {
        self.raw
    }
}

impl fmt::Debug for ParsedToken<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParsedToken")
            .field("environment", &self.environment)
            .field("key_id", &self.key_id)
            .field("raw", &"[REDACTED]")
            .finish()
    }
}

/// CRC32 of `data`, base62, left-padded with `'0'` to [`CHECK_LEN`] characters.
fn checksum(data: &[u8]) -> [u8; CHECK_LEN] {
    let crc = crc32fast::hash(data);
    let mut digits = [0u8; CHECK_LEN];
    let n = base62::encode_bytes(crc, &mut digits).expect("u32::MAX fits in 6 base62 digits");
    let mut out = [b'0'; CHECK_LEN];
    out[CHECK_LEN - n..].copy_from_slice(&digits[..n]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use uuid::Uuid;

    fn env_strategy() -> impl Strategy<Value = Environment> {
        prop_oneof![Just(Environment::Live), Just(Environment::Test)]
    }

    #[test]
    fn layout_is_fixed() {
        assert_eq!(TOKEN_LEN, 59);
        let id = KeyId::new();
        let token = ApiKeyToken::generate(Environment::Test, id);
        let s = token.expose_secret();
        assert_eq!(s.len(), TOKEN_LEN);
        assert!(s.starts_with("kw_test_"));
        assert_eq!(&s[8..30], id.to_base62());
        assert_eq!(&s[30..31], "_");
        assert!(s[31..].bytes().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn checksum_is_padded_base62_crc32() {
        assert_eq!(&checksum(b""), b"000000"); // crc32("") == 0
        assert_eq!(&checksum(b"123456789"), b"3jZRME"); // 0xCBF43926 in base62
        assert!(checksum(&[0xff; 10]).iter().all(u8::is_ascii_alphanumeric));
    }

    #[test]
    fn debug_redacts_the_secret() {
        let token = ApiKeyToken::generate(Environment::Live, KeyId::new());
        let secret_part = &token.expose_secret()[31..];
        let debug = format!("{token:?}");
        assert!(!debug.contains(secret_part), "{debug}");
        assert!(debug.contains("REDACTED"));
        let parsed = ApiKeyToken::parse(token.expose_secret()).unwrap();
        assert!(!format!("{parsed:?}").contains(secret_part));
    }

    #[test]
    fn from_seed_is_deterministic() {
        let id = KeyId::from_uuid(Uuid::from_u128(42));
        let a = ApiKeyToken::from_seed(Environment::Live, id, [7; 32]);
        let b = ApiKeyToken::from_seed(Environment::Live, id, [7; 32]);
        let c = ApiKeyToken::from_seed(Environment::Live, id, [8; 32]);
        assert_eq!(a.expose_secret(), b.expose_secret());
        assert_ne!(a.expose_secret(), c.expose_secret());
        assert!(ApiKeyToken::parse(a.expose_secret()).is_ok());
    }

    #[test]
    fn structural_errors_are_precise() {
        let token = ApiKeyToken::generate(Environment::Live, KeyId::new());
        let s = token.expose_secret();
        let with = |i: usize, c: char| {
            let mut v = s.to_owned();
            v.replace_range(i..i + 1, c.encode_utf8(&mut [0; 4]));
            v
        };
        assert_eq!(ApiKeyToken::parse("").unwrap_err(), TokenError::Length);
        assert_eq!(
            ApiKeyToken::parse(&with(0, 'K')).unwrap_err(),
            TokenError::Prefix
        );
        assert_eq!(
            ApiKeyToken::parse(&with(3, 'x')).unwrap_err(),
            TokenError::Environment
        );
        assert_eq!(
            ApiKeyToken::parse(&with(7, '-')).unwrap_err(),
            TokenError::Environment
        );
        assert_eq!(
            ApiKeyToken::parse(&with(10, '-')).unwrap_err(),
            TokenError::Id
        );
        assert_eq!(
            ApiKeyToken::parse(&with(30, 'a')).unwrap_err(),
            TokenError::Id
        );
        assert_eq!(
            ApiKeyToken::parse(&with(40, '_')).unwrap_err(),
            TokenError::Secret
        );
        // A non-ASCII character of the same byte length is rejected, not panicked on.
        let mut v = s[..40].to_owned();
        v.push('é');
        v.push_str(&s[42..]);
        assert_eq!(v.len(), TOKEN_LEN);
        assert_eq!(ApiKeyToken::parse(&v).unwrap_err(), TokenError::Secret);
    }

    #[test]
    fn id_overflow_is_rejected() {
        // A correct checksum over an id that does not fit in a u128.
        let mut s = String::from("kw_live_zzzzzzzzzzzzzzzzzzzzzz_");
        s.push_str("abcdefghijklmnopqrstuv");
        let check = checksum(s.as_bytes());
        s.push_str(std::str::from_utf8(&check).unwrap());
        assert_eq!(ApiKeyToken::parse(&s).unwrap_err(), TokenError::Id);
    }

    #[test]
    fn messages_never_contain_the_token() {
        let token = ApiKeyToken::generate(Environment::Live, KeyId::new());
        let mut bad = token.expose_secret().to_owned();
        bad.pop();
        bad.push('!');
        let err = ApiKeyToken::parse(&bad).unwrap_err();
        assert!(!err.to_string().contains(&bad[8..30]));
    }

    #[test]
    fn environment_text_forms() {
        assert_eq!(Environment::default(), Environment::Live);
        assert_eq!("test".parse::<Environment>(), Ok(Environment::Test));
        assert_eq!(Environment::Live.to_string(), "live");
        assert!("Live".parse::<Environment>().is_err());
        assert_eq!(
            serde_json::to_string(&Environment::Test).unwrap(),
            "\"test\""
        );
        assert_eq!(
            serde_json::from_str::<Environment>("\"live\"").unwrap(),
            Environment::Live
        );
        assert!(
            UnknownEnvironment
                .to_string()
                .contains("\"live\" or \"test\"")
        );
    }

    proptest! {
        #[test]
        fn generate_then_parse_round_trips(n in any::<u128>(), env in env_strategy()) {
            let id = KeyId::from_uuid(Uuid::from_u128(n));
            let token = ApiKeyToken::generate(env, id);
            let parsed = ApiKeyToken::parse(token.expose_secret()).unwrap();
            prop_assert_eq!(parsed.environment, env);
            prop_assert_eq!(parsed.key_id, id);
            prop_assert_eq!(parsed.raw(), token.expose_secret());
        }

        #[test]
        fn every_single_substitution_is_rejected(n in any::<u128>(), env in env_strategy()) {
            let token = ApiKeyToken::generate(env, KeyId::from_uuid(Uuid::from_u128(n)));
            let original = token.expose_secret().as_bytes();
            let mut bytes = original.to_vec();
            for i in 0..TOKEN_LEN {
                for c in b' '..=b'~' {
                    if c == original[i] {
                        continue;
                    }
                    bytes[i] = c;
                    let s = std::str::from_utf8(&bytes).unwrap();
                    prop_assert!(ApiKeyToken::parse(s).is_err(), "position {} char {:?}", i, c as char);
                }
                bytes[i] = original[i];
            }
        }

        #[test]
        fn truncation_and_extension_are_rejected(cut in 0usize..TOKEN_LEN, extra in "[ -~]{1,8}") {
            let token = ApiKeyToken::generate(Environment::Live, KeyId::new());
            let s = token.expose_secret();
            prop_assert_eq!(ApiKeyToken::parse(&s[..cut]).unwrap_err(), TokenError::Length);
            let longer = format!("{s}{extra}");
            prop_assert_eq!(ApiKeyToken::parse(&longer).unwrap_err(), TokenError::Length);
        }

        #[test]
        fn random_strings_are_rejected(s in "\\PC{0,80}") {
            prop_assert!(ApiKeyToken::parse(&s).is_err());
        }

        #[test]
        fn random_well_shaped_strings_are_rejected(
            env in "live|test",
            id in "[0-9A-Za-z]{22}",
            secret in "[0-9A-Za-z]{28}",
        ) {
            // Right shape, random checksum: valid only with probability ~2^-32.
            let s = format!("kw_{env}_{id}_{secret}");
            prop_assert_eq!(s.len(), TOKEN_LEN);
            let expected = checksum(&s.as_bytes()[..CHECK_START]);
            prop_assume!(expected != s.as_bytes()[CHECK_START..]);
            prop_assert!(ApiKeyToken::parse(&s).is_err());
        }
    }
}
