//! Hashing policy for API key tokens and admin passwords.
//!
//! Both are stored as Argon2id PHC strings with OWASP's current minimum parameters
//! (m = 19456 KiB, t = 2, p = 1, 32-byte output, 16-byte random salt). Hashes made offline by
//! the desktop are accepted only if [`check_phc_policy`] passes. After one successful argon2
//! verification, the server compares SHA-256 digests ([`token_digest`], [`digest_eq`]) in
//! constant time instead of running argon2 again.

use std::sync::OnceLock;

use argon2::password_hash::{self, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::RngCore;
use rand::rngs::OsRng;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use thiserror::Error;

use crate::token::ApiKeyToken;

/// Memory cost of new hashes, in KiB (OWASP minimum for t = 2).
pub const ARGON2_M_KIB: u32 = 19_456;
/// Iterations of new hashes.
pub const ARGON2_T: u32 = 2;
/// Lanes of new hashes.
pub const ARGON2_P: u32 = 1;
/// Hash output length in bytes (minimum accepted, and what we produce).
pub const ARGON2_OUTPUT_LEN: usize = 32;
/// Salt length in bytes (minimum accepted, and what we produce).
pub const ARGON2_SALT_LEN: usize = 16;

/// OWASP's equivalent Argon2id configurations that fit under the ceiling below, as
/// `(m KiB, t)`. A hash is strong enough if its `m` and `t` both reach at least one row.
/// (OWASP's fifth row, m = 7168 KiB with t = 5, exceeds [`MAX_T`].)
pub const OWASP_MIN_PARAMS: [(u32, u32); 4] = [(47_104, 1), (19_456, 2), (12_288, 3), (9_216, 4)];
/// The ceiling of the server's policy. Every hash the server runs, its own or one a tenant made
/// offline, costs at most this much: 64 MiB of memory, 4 passes, 4 lanes (a few times the cost
/// of the default parameters). A tenant cannot make its wrong-secret checks expensive enough to
/// take the hashers from the other tenants.
pub const MAX_M_KIB: u32 = 65_536;
/// Largest iteration count we will ever run.
pub const MAX_T: u32 = 4;
/// Largest lane count we will ever run.
pub const MAX_P: u32 = 4;

/// Password length bounds, in characters.
pub const PASSWORD_MIN_CHARS: usize = 12;
pub const PASSWORD_MAX_CHARS: usize = 1024;

/// Why a stored hash could not be used for verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum HashError {
    #[error("stored hash is not a valid PHC string")]
    InvalidPhc,
    #[error("stored hash is not argon2id")]
    Algorithm,
    #[error("stored hash has parameters outside the range this server will run")]
    Cost,
    #[error("argon2 failed to verify the stored hash")]
    Argon2,
}

/// Why an externally supplied PHC string is not acceptable as a key hash.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PhcPolicyError {
    #[error("hash is not a valid PHC string ($argon2id$v=19$m=…,t=…,p=…$salt$hash)")]
    Unparsable,
    #[error("hash algorithm is {found}; only argon2id is accepted")]
    Algorithm { found: String },
    #[error("argon2 version is missing; only version 19 (0x13) is accepted")]
    MissingVersion,
    #[error("argon2 version is {found}; only version 19 (0x13) is accepted")]
    Version { found: u32 },
    #[error("hash parameter `{name}` is missing")]
    MissingParam { name: &'static str },
    #[error("hash parameter `{name}` is not a decimal number")]
    InvalidParam { name: &'static str },
    #[error("hash parameter `{name}` is not allowed; only m, t and p are")]
    UnexpectedParam { name: String },
    #[error("hash has no salt")]
    MissingSalt,
    #[error("salt is {len} bytes; at least {ARGON2_SALT_LEN} are required")]
    SaltTooShort { len: usize },
    #[error("hash has no output")]
    MissingOutput,
    #[error("hash output is {len} bytes; at least {ARGON2_OUTPUT_LEN} are required")]
    OutputTooShort { len: usize },
    #[error(
        "m={m} KiB with t={t} is below OWASP's minimum; use one of m=47104,t=1 | m=19456,t=2 | \
         m=12288,t=3 | m=9216,t=4 (or more, up to m=65536, t=4)"
    )]
    TooWeak { m: u32, t: u32 },
    #[error("parallelism p must be at least 1")]
    ParallelismZero,
    #[error("memory cost m={m} KiB exceeds the server's maximum of {MAX_M_KIB} KiB (64 MiB)")]
    MemoryTooHigh { m: u32 },
    #[error("time cost t={t} exceeds the maximum of {MAX_T}")]
    TimeTooHigh { t: u32 },
    #[error("parallelism p={p} exceeds the maximum of {MAX_P}")]
    ParallelismTooHigh { p: u32 },
}

/// Why an admin password is not acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum PasswordPolicyError {
    #[error("password must be at least {PASSWORD_MIN_CHARS} characters")]
    TooShort,
    #[error("password must be at most {PASSWORD_MAX_CHARS} characters")]
    TooLong,
    #[error("password must not be only whitespace")]
    Blank,
}

/// The Argon2id instance with Keyward's parameters.
fn argon2() -> Argon2<'static> {
    let params = Params::new(ARGON2_M_KIB, ARGON2_T, ARGON2_P, Some(ARGON2_OUTPUT_LEN))
        .expect("constant argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes `secret` with a fresh 16-byte salt from the OS CSPRNG.
fn hash_bytes(secret: &[u8]) -> String {
    let mut salt = [0u8; ARGON2_SALT_LEN];
    OsRng.fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).expect("16 bytes is a valid salt length");
    argon2()
        .hash_password(secret, &salt)
        .expect("argon2 with valid constant parameters cannot fail")
        .to_string()
}

/// Verifies `secret` against a stored PHC string, refusing to run non-argon2id hashes or
/// parameters above the caps.
fn verify_bytes(secret: &[u8], phc: &str) -> Result<bool, HashError> {
    let hash = PasswordHash::new(phc).map_err(|_| HashError::InvalidPhc)?;
    if hash.algorithm != Algorithm::Argon2id.ident() {
        return Err(HashError::Algorithm);
    }
    let params = Params::try_from(&hash).map_err(|_| HashError::InvalidPhc)?;
    if params.m_cost() > MAX_M_KIB || params.t_cost() > MAX_T || params.p_cost() > MAX_P {
        return Err(HashError::Cost);
    }
    match Argon2::default().verify_password(secret, &hash) {
        Ok(()) => Ok(true),
        Err(password_hash::Error::Password) => Ok(false),
        Err(_) => Err(HashError::Argon2),
    }
}

/// Hashes an API key token for storage, as an Argon2id PHC string.
///
/// The input is the FULL token (`kw_live_<id>_<secret><check>`), not just the secret: the hash
/// is then bound to the key id and environment, so a stored hash copied onto another key row,
/// or a secret presented with another id or environment, never verifies.
pub fn hash_token(token: &ApiKeyToken) -> String {
    hash_bytes(token.expose_secret().as_bytes())
}

/// Checks a presented token (the full string) against its stored PHC hash.
///
/// `Ok(false)` on mismatch; `Err` if the stored hash cannot be used (unparsable, not
/// argon2id, or parameters above [`MAX_M_KIB`]/[`MAX_T`]/[`MAX_P`]).
pub fn verify_token(token: &str, phc: &str) -> Result<bool, HashError> {
    verify_bytes(token.as_bytes(), phc)
}

/// Checks that a PHC string made elsewhere (the desktop, offline) meets Keyward's policy:
/// argon2id, version 19, `m`/`t` at or above one of [`OWASP_MIN_PARAMS`], `p ≥ 1`, salt of at
/// least 16 bytes, output of at least 32 bytes, and costs no higher than the caps.
pub fn check_phc_policy(phc: &str) -> Result<(), PhcPolicyError> {
    // bcrypt's modular-crypt format is not PHC; name it rather than calling it garbage.
    if ["$2a$", "$2b$", "$2x$", "$2y$"]
        .iter()
        .any(|p| phc.starts_with(p))
    {
        return Err(PhcPolicyError::Algorithm {
            found: "bcrypt".to_owned(),
        });
    }
    let hash = PasswordHash::new(phc).map_err(|_| PhcPolicyError::Unparsable)?;
    if hash.algorithm != Algorithm::Argon2id.ident() {
        return Err(PhcPolicyError::Algorithm {
            found: hash.algorithm.as_str().to_owned(),
        });
    }
    match hash.version {
        None => return Err(PhcPolicyError::MissingVersion),
        Some(0x13) => {}
        Some(found) => return Err(PhcPolicyError::Version { found }),
    }
    if let Some((name, _)) = hash
        .params
        .iter()
        .find(|(name, _)| !matches!(name.as_str(), "m" | "t" | "p"))
    {
        return Err(PhcPolicyError::UnexpectedParam {
            name: name.as_str().to_owned(),
        });
    }
    let param = |name: &'static str| -> Result<u32, PhcPolicyError> {
        let value = hash
            .params
            .get(name)
            .ok_or(PhcPolicyError::MissingParam { name })?;
        value
            .decimal()
            .map_err(|_| PhcPolicyError::InvalidParam { name })
    };
    let (m, t, p) = (param("m")?, param("t")?, param("p")?);
    if m > MAX_M_KIB {
        return Err(PhcPolicyError::MemoryTooHigh { m });
    }
    if t > MAX_T {
        return Err(PhcPolicyError::TimeTooHigh { t });
    }
    if p > MAX_P {
        return Err(PhcPolicyError::ParallelismTooHigh { p });
    }
    if p == 0 {
        return Err(PhcPolicyError::ParallelismZero);
    }
    if !OWASP_MIN_PARAMS
        .iter()
        .any(|&(min_m, min_t)| m >= min_m && t >= min_t)
    {
        return Err(PhcPolicyError::TooWeak { m, t });
    }
    let salt = hash.salt.ok_or(PhcPolicyError::MissingSalt)?;
    let mut buf = [0u8; 64];
    let salt_len = salt
        .decode_b64(&mut buf)
        .map_err(|_| PhcPolicyError::Unparsable)?
        .len();
    if salt_len < ARGON2_SALT_LEN {
        return Err(PhcPolicyError::SaltTooShort { len: salt_len });
    }
    let output = hash.hash.ok_or(PhcPolicyError::MissingOutput)?;
    if output.len() < ARGON2_OUTPUT_LEN {
        return Err(PhcPolicyError::OutputTooShort { len: output.len() });
    }
    Ok(())
}

/// SHA-256 of a full token, cached after a successful argon2 check so later requests for the
/// same key skip argon2.
pub fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Compares two digests in constant time.
pub fn digest_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.ct_eq(b).into()
}

/// Hashes an admin password for storage, as an Argon2id PHC string.
pub fn hash_password(password: &SecretString) -> String {
    hash_bytes(password.expose_secret().as_bytes())
}

/// Checks an admin password against its stored hash. `false` on mismatch and on any unusable
/// hash, so callers cannot tell the two apart.
pub fn verify_password(password: &SecretString, phc: &str) -> bool {
    verify_bytes(password.expose_secret().as_bytes(), phc).unwrap_or(false)
}

/// A valid hash of a random password with the same parameters as real ones, computed once.
///
/// Verify against it when the email is unknown, so a failed login takes as long whether or not
/// the account exists.
pub fn dummy_password_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let mut random = [0u8; 32];
        OsRng.fill_bytes(&mut random);
        hash_bytes(&random)
    })
}

/// Checks an admin password: 12 to 1024 characters, not only whitespace.
pub fn check_password_policy(password: &str) -> Result<(), PasswordPolicyError> {
    // Bytes bound chars from above (≤ 4 bytes each): cheap early exit for huge inputs.
    if password.len() > 4 * PASSWORD_MAX_CHARS {
        return Err(PasswordPolicyError::TooLong);
    }
    let chars = password.chars().count();
    if chars < PASSWORD_MIN_CHARS {
        return Err(PasswordPolicyError::TooShort);
    }
    if chars > PASSWORD_MAX_CHARS {
        return Err(PasswordPolicyError::TooLong);
    }
    if password.chars().all(char::is_whitespace) {
        return Err(PasswordPolicyError::Blank);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::KeyId;
    use crate::token::Environment;

    /// A PHC string with chosen parameters, hashing "x" (cheap: tests keep m small where they can).
    fn phc_with(alg: Algorithm, m: u32, t: u32, salt_len: usize, out_len: usize) -> String {
        let params = Params::new(m, t, 1, Some(out_len)).unwrap();
        let salt = SaltString::encode_b64(&vec![7u8; salt_len]).unwrap();
        Argon2::new(alg, Version::V0x13, params)
            .hash_password(b"x", &salt)
            .unwrap()
            .to_string()
    }

    #[test]
    fn token_hash_round_trip_and_policy() {
        let token = ApiKeyToken::generate(Environment::Live, KeyId::new());
        let phc = hash_token(&token);
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert_eq!(check_phc_policy(&phc), Ok(()));
        assert_eq!(verify_token(token.expose_secret(), &phc), Ok(true));
        let other = ApiKeyToken::generate(Environment::Live, KeyId::new());
        assert_eq!(verify_token(other.expose_secret(), &phc), Ok(false));
        assert_eq!(verify_token("x", "garbage"), Err(HashError::InvalidPhc));
    }

    #[test]
    fn password_round_trip_and_dummy() {
        let password = SecretString::from("correct horse battery staple");
        let phc = hash_password(&password);
        assert!(verify_password(&password, &phc));
        assert!(!verify_password(
            &SecretString::from("wrong password!"),
            &phc
        ));
        assert!(!verify_password(&password, "not a hash"));
        let dummy = dummy_password_hash();
        assert_eq!(check_phc_policy(dummy), Ok(()));
        assert!(!verify_password(&password, dummy));
        assert!(std::ptr::eq(dummy, dummy_password_hash()));
    }

    #[test]
    fn policy_rejects_other_algorithms() {
        let argon2i = phc_with(Algorithm::Argon2i, 19_456, 2, 16, 32);
        assert_eq!(
            check_phc_policy(&argon2i),
            Err(PhcPolicyError::Algorithm {
                found: "argon2i".into()
            })
        );
        assert_eq!(
            verify_token("x", &argon2i),
            Err(HashError::Algorithm),
            "verification refuses non-argon2id too"
        );
        let bcrypt = "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW";
        assert_eq!(
            check_phc_policy(bcrypt),
            Err(PhcPolicyError::Algorithm {
                found: "bcrypt".into()
            })
        );
        let scrypt = "$scrypt$ln=16,r=8,p=1$aM15713r3Xsvxbi31lqr1Q$nFNh2CVHVjNldFVKDHDlm4CbdRSCdEBsjjJxD+iCs5E";
        assert!(matches!(
            check_phc_policy(scrypt),
            Err(PhcPolicyError::Algorithm { .. })
        ));
    }

    #[test]
    fn policy_rejects_weak_or_malformed_hashes() {
        let weak = phc_with(Algorithm::Argon2id, 4096, 3, 16, 32);
        assert_eq!(
            check_phc_policy(&weak),
            Err(PhcPolicyError::TooWeak { m: 4096, t: 3 })
        );
        // Structural checks need no real hashing: edit a known-good string.
        let good = "$argon2id$v=19$m=19456,t=2,p=1$BwcHBwcHBwcHBwcHBwcHBw$\
                    AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        assert_eq!(check_phc_policy(good), Ok(()));
        let cases = [
            (
                good.replace("BwcHBwcHBwcHBwcHBwcHBw", "BwcHBwcHBwcHBw"),
                Err(PhcPolicyError::SaltTooShort { len: 10 }),
            ),
            (
                good.replace("m=19456,t=2", "m=19456,t=1"),
                Err(PhcPolicyError::TooWeak { m: 19456, t: 1 }),
            ),
            (
                good.replace("m=19456,t=2", "m=7168,t=5"),
                Err(PhcPolicyError::TimeTooHigh { t: 5 }),
            ),
            (good.replace("m=19456,t=2", "m=47104,t=1"), Ok(())),
            (good.replace("m=19456,t=2,p=1", "m=65536,t=4,p=4"), Ok(())),
            (
                good.replace("m=19456", "m=65537"),
                Err(PhcPolicyError::MemoryTooHigh { m: 65_537 }),
            ),
            (
                good.replace("m=19456,t=2,p=1", "m=1048576,t=20,p=16"),
                Err(PhcPolicyError::MemoryTooHigh { m: 1_048_576 }),
            ),
            (
                good.replace("t=2", "t=5"),
                Err(PhcPolicyError::TimeTooHigh { t: 5 }),
            ),
            (
                good.replace("p=1", "p=5"),
                Err(PhcPolicyError::ParallelismTooHigh { p: 5 }),
            ),
            (
                good.replace("p=1", "p=0"),
                Err(PhcPolicyError::ParallelismZero),
            ),
            (
                good.replace(",p=1", ""),
                Err(PhcPolicyError::MissingParam { name: "p" }),
            ),
            (
                good.replace("v=19", "v=16"),
                Err(PhcPolicyError::Version { found: 16 }),
            ),
            (
                good.replace("$v=19", ""),
                Err(PhcPolicyError::MissingVersion),
            ),
            (
                good.replace("p=1", "p=1,data=AAAA"),
                Err(PhcPolicyError::UnexpectedParam {
                    name: "data".into(),
                }),
            ),
            (
                good.replace(
                    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                    "AAAAAAAAAAAAAAAAAAAAAA",
                ),
                Err(PhcPolicyError::OutputTooShort { len: 16 }),
            ),
            ("garbage".to_owned(), Err(PhcPolicyError::Unparsable)),
            (String::new(), Err(PhcPolicyError::Unparsable)),
        ];
        for (phc, expected) in cases {
            assert_eq!(check_phc_policy(&phc), expected, "{phc}");
        }
        // A hostile cost is refused before argon2 runs.
        assert_eq!(
            verify_token("x", &good.replace("t=2", "t=1000")),
            Err(HashError::Cost)
        );
    }

    #[test]
    fn digests_compare() {
        let a = token_digest("kw_live_a");
        assert_eq!(a, token_digest("kw_live_a"));
        assert!(digest_eq(&a, &token_digest("kw_live_a")));
        assert!(!digest_eq(&a, &token_digest("kw_live_b")));
    }

    #[test]
    fn password_policy() {
        assert_eq!(
            check_password_policy("short"),
            Err(PasswordPolicyError::TooShort)
        );
        assert_eq!(
            check_password_policy("ééééééééééé"),
            Err(PasswordPolicyError::TooShort)
        );
        assert_eq!(check_password_policy("éééééééééééé"), Ok(()));
        assert_eq!(
            check_password_policy("            "),
            Err(PasswordPolicyError::Blank)
        );
        assert_eq!(check_password_policy(&"a".repeat(1024)), Ok(()));
        assert_eq!(
            check_password_policy(&"a".repeat(1025)),
            Err(PasswordPolicyError::TooLong)
        );
        assert_eq!(
            check_password_policy(&"a".repeat(10_000)),
            Err(PasswordPolicyError::TooLong)
        );
    }
}
