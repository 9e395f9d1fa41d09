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
