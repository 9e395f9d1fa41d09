//! Signing (Standard Webhooks) and the signing secrets, encrypted at rest.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use rand::rngs::OsRng;
use secrecy::ExposeSecret;
use sha2::Sha256;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::config::SecretKey;
use crate::store::webhooks::{self as store, Claimed, SealedSecret};

/// Prefix of a signing secret.
pub const SECRET_PREFIX: &str = "whsec_";

type HmacSha256 = Hmac<Sha256>;

/// A fresh signing secret: its 32 bytes and its `whsec_...` form.
pub fn new_secret() -> ([u8; 32], String) {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    let text = format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes));
    (bytes, text)
}

/// The HMAC key of a `whsec_...` secret: the base64-decoded part after the prefix.
pub fn secret_bytes(secret: &str) -> Option<Vec<u8>> {
    STANDARD.decode(secret.strip_prefix(SECRET_PREFIX)?).ok()
}

/// `v1,` + base64(HMAC-SHA256(key, "{msg_id}.{timestamp}.{body}")): the `webhook-signature`.
pub fn sign(key: &[u8], msg_id: &str, timestamp: i64, body: &str) -> String {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

// --- secrets at rest ---

/// The keys that encrypt signing secrets: the configured one, else the database's.
#[derive(Clone)]
pub struct Keyring {
    /// `KEYWARD_WEBHOOK_KEY`, when set.
    pub(crate) config_key: Option<SecretKey>,
    /// The database key once read (it never changes).
    database_key: Arc<tokio::sync::OnceCell<[u8; 32]>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field(
                "config_key",
                &self.config_key.as_ref().map(|_| "[redacted]"),
            )
            .finish_non_exhaustive()
    }
}

impl Keyring {
    /// The keyring of `config_key` (the configured webhook key), else the database's.
    pub fn new(config_key: Option<SecretKey>) -> Keyring {
        Keyring {
            config_key,
            database_key: Arc::default(),
        }
    }

    async fn database_key(&self, conn: &mut PgConnection) -> anyhow::Result<[u8; 32]> {
        let key = self
            .database_key
            .get_or_try_init(|| async {
                let mut fresh = [0u8; 32];
                OsRng.fill_bytes(&mut fresh);
                let stored = store::database_key(conn, &fresh).await?;
                <[u8; 32]>::try_from(stored.as_slice())
                    .map_err(|_| anyhow::anyhow!("webhook_keys holds a key of the wrong length"))
            })
            .await?;
        Ok(*key)
    }

    /// Encrypts `secret` for endpoint `endpoint`.
    pub async fn seal(
        &self,
        conn: &mut PgConnection,
        endpoint: Uuid,
        secret: &[u8; 32],
    ) -> anyhow::Result<SealedSecret> {
        let (source, key) = match &self.config_key {
            Some(k) => ("config", *k.expose_secret()),
            None => ("database", self.database_key(conn).await?),
        };
        let (nonce, ciphertext) = seal_with(&key, endpoint, secret)?;
        Ok(SealedSecret {
            key: source,
            nonce: nonce.to_vec(),
            ciphertext,
        })
    }

    /// Decrypts the secret of a claimed delivery's endpoint.
    pub(crate) async fn open(
        &self,
        conn: &mut PgConnection,
        d: &Claimed,
    ) -> Result<Vec<u8>, String> {
        let key = match d.secret_key.as_str() {
            "config" => self
                .config_key
                .as_ref()
                .map(|k| *k.expose_secret())
                .ok_or_else(|| {
                    "the signing secret was encrypted with KEYWARD_WEBHOOK_KEY, which is not set"
                        .to_owned()
                })?,
            _ => self
                .database_key(conn)
                .await
                .map_err(|_| "the database's webhook key could not be read".to_owned())?,
        };
        open_with(&key, d.endpoint_id, &d.secret_nonce, &d.secret_ciphertext).ok_or_else(|| {
            "the signing secret does not decrypt (was KEYWARD_WEBHOOK_KEY changed?)".to_owned()
        })
    }
}

/// ChaCha20-Poly1305 of `secret` under `key` with a random nonce and the endpoint id as
/// associated data: (nonce, ciphertext with tag).
pub fn seal_with(
    key: &[u8; 32],
    endpoint: Uuid,
    secret: &[u8],
) -> anyhow::Result<([u8; 12], Vec<u8>)> {
    let mut nonce = [0u8; 12];
    OsRng.fill_bytes(&mut nonce);
    let ciphertext = ChaCha20Poly1305::new(key.into())
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: secret,
                aad: endpoint.as_bytes(),
            },
        )
        .map_err(|_| anyhow::anyhow!("encrypting a webhook secret failed"))?;
    Ok((nonce, ciphertext))
}

/// The inverse of [`seal_with`]; `None` for a wrong key, endpoint or tampered ciphertext.
pub fn open_with(
    key: &[u8; 32],
    endpoint: Uuid,
    nonce: &[u8],
    ciphertext: &[u8],
) -> Option<Vec<u8>> {
    if nonce.len() != 12 {
        return None;
    }
    ChaCha20Poly1305::new(key.into())
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: endpoint.as_bytes(),
            },
        )
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification's reference libraries.
    #[test]
    fn signature_known_answer() {
        let key = secret_bytes("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            sign(
                &key,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                r#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn secrets_are_32_random_bytes() {
        let (bytes, text) = new_secret();
        assert!(text.starts_with("whsec_"));
        assert_eq!(secret_bytes(&text).unwrap(), bytes);
        assert_ne!(new_secret().1, text);
    }

    #[test]
    fn sealed_secrets_open_only_with_their_key_and_endpoint() {
        let key = [7u8; 32];
        let (secret, _) = new_secret();
        let endpoint = Uuid::now_v7();
        let (nonce, ct) = seal_with(&key, endpoint, &secret).unwrap();
        assert!(!ct.windows(8).any(|w| secret.windows(8).any(|s| s == w)));
        assert_eq!(open_with(&key, endpoint, &nonce, &ct).unwrap(), secret);
        assert!(open_with(&key, Uuid::now_v7(), &nonce, &ct).is_none());
        assert!(open_with(&[8u8; 32], endpoint, &nonce, &ct).is_none());
        let mut tampered = ct.clone();
        tampered[0] ^= 1;
        assert!(open_with(&key, endpoint, &nonce, &tampered).is_none());
        // Two seals of one secret differ (random nonces).
        assert_ne!(seal_with(&key, endpoint, &secret).unwrap().1, ct);
    }
}
