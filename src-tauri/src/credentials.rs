//! The session token in the OS keychain, through `keyring` (the Secret Service on Linux). It is
//! never written to a file, the replica or a log.

use secrecy::{ExposeSecret, SecretString};

use crate::error::CommandError;

const SERVICE: &str = "dev.keyward.desktop";

/// One keychain entry per server and email.
#[derive(Debug, Clone)]
pub struct Keychain {
    account: String,
}

fn unavailable(e: keyring::Error) -> CommandError {
    CommandError::new(
        "keychain_unavailable",
        format!("the system keychain is not available ({e}); the session cannot be kept"),
    )
}

impl Keychain {
    pub fn new(server_url: &str, email: &str) -> Self {
        Keychain {
            account: format!("{email}@{server_url}"),
        }
    }

    fn entry(&self) -> Result<keyring::Entry, CommandError> {
        keyring::Entry::new(SERVICE, &self.account).map_err(unavailable)
    }

    pub fn store(&self, token: &SecretString) -> Result<(), CommandError> {
        self.entry()?
            .set_password(token.expose_secret())
            .map_err(unavailable)
    }

    /// The stored token, if there is one.
    pub fn load(&self) -> Result<Option<SecretString>, CommandError> {
        match self.entry()?.get_password() {
            Ok(token) => Ok(Some(SecretString::from(token))),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }

    pub fn delete(&self) -> Result<(), CommandError> {
        match self.entry()?.delete_credential() {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against the real Secret Service: run by scripts/desktop-e2e.sh inside a private session
    /// bus with an unlocked gnome-keyring (no mock keychain).
    #[test]
    #[ignore = "needs a Secret Service: run scripts/desktop-e2e.sh"]
    fn keychain_round_trip_on_the_secret_service() {
        let k = Keychain::new(
            "http://127.0.0.1:1",
            &format!("test-{}@keyward.test", std::process::id()),
        );
        assert!(k.load().expect("keychain reachable").is_none());
        k.store(&SecretString::from("kws_test_token"))
            .expect("store");
        assert_eq!(
            k.load()
                .unwrap()
                .map(|t| t.expose_secret().to_owned())
                .as_deref(),
            Some("kws_test_token")
        );
        k.delete().expect("delete");
        assert!(k.load().unwrap().is_none());
        k.delete().expect("deleting twice is fine");
    }
}
