//! The commands' one object, [`Desktop`]: sign-in with the session token in the OS keychain
//! (here), the key screens (`keys`) and everything else the screens show (`insight`).
//! Commands are one-line calls into it; tests drive it directly. The logic lives in
//! `keyward_replica` ([`desktop`]: the account, its sync loop, analytics and notifications;
//! [`screens`]: the dashboard, events and form checks), testable without Tauri; this module
//! maps it to the UI's shapes and [`CommandError`]s.

mod insight;
mod keys;

use std::path::PathBuf;
use std::sync::Arc;

use keyward_client::KeywardClient;
use keyward_core::api::FieldError;
use keyward_core::{KeyId, SyncStatus};
use keyward_replica::desktop::{self, Account, Analytics, Notifier};
use keyward_replica::{Replica, screens};
use secrecy::SecretString;
use tokio::sync::{Mutex, watch};

use crate::credentials::Keychain;
use crate::dto::Session;
use crate::error::{CommandError, needs_server, replica_error};

type Result<T> = std::result::Result<T, CommandError>;

pub struct Desktop {
    data_dir: PathBuf,
    connected: Mutex<Option<Connected>>,
    status: watch::Sender<SyncStatus>,
    analytics: Arc<Analytics>,
}

/// The signed-in admin: who (as the UI shows it), where the token is kept, and the account
/// (client, replica, sync loop). Once the server says the session is over
/// ([`Account::is_valid`]), commands answer `unauthenticated`.
struct Connected {
    session: Session,
    keychain: Keychain,
    account: Arc<Account>,
}

fn parse_id(raw: &str) -> Result<KeyId> {
    raw.parse()
        .map_err(|_| CommandError::new("not_found", "no such key"))
}

fn parse_op_id(raw: &str) -> Result<uuid::Uuid> {
    raw.parse()
        .map_err(|_| CommandError::new("not_found", "no such refused change"))
}

/// A server address: https, or plain http only to this computer (see
/// [`keyward_client::check_server_url`]); refused as a field error of the sign-in form.
fn server_url(raw: &str) -> Result<String> {
    keyward_client::check_server_url(raw).map_err(|e| {
        CommandError::validation(vec![FieldError::new("server_url", e.code(), e.to_string())])
    })
}

impl Desktop {
    /// Opens the app's state in `data_dir` and, when the keychain still holds a session, signs
    /// back in without asking.
    pub async fn open(data_dir: PathBuf) -> Result<Desktop> {
        std::fs::create_dir_all(&data_dir).map_err(replica_error)?;
        let desktop = Desktop {
            data_dir,
            connected: Mutex::new(None),
            status: watch::channel(SyncStatus::default()).0,
            analytics: Arc::default(),
        };
        // A session saved before plain http:// was refused is not restored: sign in again.
        let saved = desktop.saved_session().filter(|s| {
            let ok = server_url(&s.server_url).is_ok();
            if !ok {
                tracing::warn!(server = %s.server_url, "not restoring a session on a refused server address");
            }
            ok
        });
        if let Some(session) = saved {
            let keychain = Keychain::new(&session.server_url, &session.email);
            let token = {
                let k = keychain.clone();
                tokio::task::spawn_blocking(move || k.load())
                    .await
                    .ok()
                    .and_then(|r| r.ok())
                    .flatten()
            };
            if let Some(token) = token
                && let Err(e) = desktop.connect(session, token, keychain).await
            {
                tracing::warn!(error = %e, "could not restore the session");
            }
        }
        Ok(desktop)
    }

    fn saved_session(&self) -> Option<Session> {
        desktop::load_session(&self.data_dir)
    }

    /// Sync status updates, for the UI's status bar.
    pub fn subscribe(&self) -> watch::Receiver<SyncStatus> {
        self.status.subscribe()
    }

    pub async fn login(
        &self,
        server_url_raw: &str,
        email: &str,
        password: String,
    ) -> Result<Session> {
        let url = server_url(server_url_raw)?;
        let fields = screens::sign_in_problems(email, &password);
        if !fields.is_empty() {
            return Err(CommandError::validation(fields));
        }
        let client = KeywardClient::new(&url).map_err(CommandError::from)?;
        let (_, answer) = client
            .login(email.trim(), &SecretString::from(password))
            .await
            .map_err(|e| match e.code() {
                Some("invalid_credentials") => {
                    CommandError::new("invalid_credentials", "the email or the password is wrong")
                }
                _ => CommandError::from(e),
            })?;
        let session = Session {
            server_url: url.clone(),
            email: answer.admin.email.clone(),
            role: answer.admin.role,
            org_id: answer.admin.org_id,
            org_name: answer.admin.org_name.clone(),
        };
        let token = SecretString::from(answer.token);
        let keychain = Keychain::new(&url, &session.email);
        let stored = {
            let (k, t) = (keychain.clone(), token.clone());
            tokio::task::spawn_blocking(move || k.store(&t))
                .await
                .map_err(replica_error)?
        };
        if let Err(e) = stored {
            // Signed in for this run only: the token is never written anywhere else.
            tracing::warn!(error = %e.message, "keychain unavailable; the session lasts until the app closes");
        }
        desktop::save_session(&self.data_dir, &session).map_err(replica_error)?;
        self.connect(session.clone(), token, keychain).await?;
        Ok(session)
    }

    async fn connect(
        &self,
        session: Session,
        token: SecretString,
        keychain: Keychain,
    ) -> Result<()> {
        let mut slot = self.connected.lock().await;
        if let Some(old) = slot.take() {
            old.account.stop();
        }
        let client = KeywardClient::new(&session.server_url)
            .map_err(CommandError::from)?
            .with_session(token);
        let account = Account::open(
            &self.data_dir,
            &session.server_url,
            &session.email,
            client,
            self.status.clone(),
            self.analytics.clone(),
        )
        .await
        .map(Arc::new)
        .map_err(replica_error)?;
        *slot = Some(Connected {
            session,
            keychain,
            account,
        });
        Ok(())
    }

    /// Ends the session here and on the server (when reachable). The replica and its queued
    /// changes stay for the next sign-in.
    pub async fn logout(&self) -> Result<()> {
        self.sign_out(true).await
    }

    /// Signs out here; `tell_server`: also ends the session on the server.
    async fn sign_out(&self, tell_server: bool) -> Result<()> {
        let Some(c) = self.connected.lock().await.take() else {
            return Ok(());
        };
        c.account.stop();
        if tell_server && let Err(e) = c.account.client().logout().await {
            tracing::info!(error = %e, "server sign-out failed; the session expires on its own");
        }
        let keychain = c.keychain.clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || keychain.delete()).await {
            // Nothing was stored when the keychain was unavailable at sign-in either.
            tracing::warn!(error = %e.message, "could not remove the session from the keychain");
        }
        desktop::forget_session(&self.data_dir);
        self.status.send_replace(SyncStatus::default());
        Ok(())
    }

    /// Changes the signed-in admin's password on the server (needs a connection: refused
    /// offline, never queued). The server ends the admin's other sessions (other devices); this
    /// one stays signed in. A wrong current password is a field error of `current_password`.
    pub async fn change_password(&self, current: String, new: String) -> Result<()> {
        let client = self.with(|c| c.account.client().clone()).await?;
        let fields = screens::new_password_problems(&current, &new);
        if !fields.is_empty() {
            return Err(CommandError::validation(fields));
        }
        client
            .change_password(&SecretString::from(current), &SecretString::from(new))
            .await
            .map_err(|e| match e.code() {
                Some("wrong_password") => CommandError::validation(vec![FieldError::new(
                    "current_password",
                    "wrong_password",
                    "is not your current password",
                )]),
                _ => needs_server("changing the password")(e),
            })
    }

    /// Ends every session of the signed-in admin on the server (every device, this one
    /// included), then signs out here as [`Desktop::logout`] does. Needs a connection: offline
    /// it is refused and this device stays signed in.
    pub async fn logout_everywhere(&self) -> Result<()> {
        let client = self.with(|c| c.account.client().clone()).await?;
        client
            .logout_all()
            .await
            .map_err(needs_server("signing out everywhere"))?;
        self.sign_out(false).await
    }

    pub async fn current_session(&self) -> Option<Session> {
        let slot = self.connected.lock().await;
        slot.as_ref()
            .filter(|c| c.account.is_valid())
            .map(|c| c.session.clone())
    }

    /// The replica and engine of the signed-in account, or `unauthenticated`.
    async fn with<T>(&self, f: impl FnOnce(&Connected) -> T) -> Result<T> {
        let slot = self.connected.lock().await;
        match slot.as_ref() {
            Some(c) if c.account.is_valid() => Ok(f(c)),
            _ => Err(CommandError::unauthenticated()),
        }
    }

    async fn account(&self) -> Result<Arc<Account>> {
        self.with(|c| c.account.clone()).await
    }

    async fn replica(&self) -> Result<Replica> {
        self.with(|c| c.account.replica().clone()).await
    }

    fn sync_soon(c: &Connected) {
        c.account.sync_soon();
    }

    /// Shows notices through `notifier` from now on (the real app: native notifications).
    pub fn set_notifier(&self, notifier: Notifier) {
        self.analytics.set_notifier(notifier);
    }
}
