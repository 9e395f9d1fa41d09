//! What the desktop does, without Tauri: sign-in with the session token in the OS keychain, reads
//! from the replica, local writes queued for sync, a background sync loop that reports its
//! state. Commands are one-line calls into [`Desktop`]; tests drive it directly.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use keyward_client::KeywardClient;
use keyward_core::KeyId;
use keyward_core::api::{
    AlertsQuery, AuditEntry, CreateKeyRequest, FieldError, Granularity, OrgUsageQuery,
    RevokeKeyRequest, UpdateKeyRequest, UsageQuery,
};
use keyward_replica::{LocalKey, LocalOpError, Replica, SyncEngine, SyncError};
use secrecy::SecretString;
use tokio::sync::{Mutex, Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::credentials::Keychain;
use crate::dto::{
    Dashboard, DashboardPeriod, IssuedKey, KeyDetail, KeyEdit, KeyFilter, KeyList, KeyListItem,
    KeySort, LimitsSnapshot, NewKeyForm, OpError, Revocation, Session, SyncStatus, UsageSeries,
};
use crate::error::CommandError;

type Result<T> = std::result::Result<T, CommandError>;

/// How often the background loop syncs when all is well, and the longest it waits after
/// failures (short, so the app notices a returning server quickly).
const SYNC_INTERVAL: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
pub const MAX_PAGE: u32 = 500;

pub struct Desktop {
    data_dir: PathBuf,
    connected: Mutex<Option<Connected>>,
    status: watch::Sender<SyncStatus>,
}

struct Connected {
    session: Session,
    client: KeywardClient,
    replica: Replica,
    engine: SyncEngine,
    keychain: Keychain,
    wake: Arc<Notify>,
    stop: CancellationToken,
    /// Cleared when the server says the session is over: commands then answer `unauthenticated`.
    valid: Arc<std::sync::atomic::AtomicBool>,
}

fn settings_path(dir: &Path) -> PathBuf {
    dir.join("session.json")
}

/// One replica per account (server and email), so signing in elsewhere never mixes data.
fn replica_path(dir: &Path, server_url: &str, email: &str) -> PathBuf {
    let name: String = format!("{email}@{server_url}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    dir.join(format!("replica-{name}.sqlite"))
}

fn replica_error(e: impl std::fmt::Display) -> CommandError {
    CommandError::new("replica_error", format!("the local replica failed: {e}"))
}

fn local_error(e: LocalOpError) -> CommandError {
    match e {
        LocalOpError::Invalid(fields) => CommandError::validation(fields),
        LocalOpError::KeyNotFound(_) => CommandError::new("not_found", "no such key"),
        LocalOpError::KeyRevoked(_) => {
            CommandError::new("key_revoked", "a revoked key cannot change")
        }
        e @ LocalOpError::AlreadyRotated { .. } => {
            CommandError::new("already_rotated", e.to_string())
        }
        other => replica_error(other),
    }
}

fn parse_id(raw: &str) -> Result<KeyId> {
    raw.parse()
        .map_err(|_| CommandError::new("not_found", "no such key"))
}

fn item(k: LocalKey) -> KeyListItem {
    KeyListItem {
        key: k.key,
        pending: k.pending,
        error: k.rejection.map(|r| OpError {
            code: r.code,
            detail: r.detail,
        }),
    }
}

/// A server address: http or https, with a host.
fn server_url(raw: &str) -> Result<String> {
    let trimmed = raw.trim().trim_end_matches('/');
    let ok = (trimmed.starts_with("http://") || trimmed.starts_with("https://"))
        && trimmed
            .split("://")
            .nth(1)
            .is_some_and(|rest| !rest.is_empty() && !rest.contains(char::is_whitespace));
    if !ok {
        return Err(CommandError::validation(vec![FieldError::new(
            "server_url",
            "invalid_url",
            "must be an http:// or https:// address",
        )]));
    }
    Ok(trimmed.to_owned())
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
        };
        if let Some(session) = desktop.saved_session() {
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
        let text = std::fs::read_to_string(settings_path(&self.data_dir)).ok()?;
        serde_json::from_str(&text).ok()
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
        if email.trim().is_empty() || password.is_empty() {
            let mut fields = Vec::new();
            if email.trim().is_empty() {
                fields.push(FieldError::new("email", "required", "is required"));
            }
            if password.is_empty() {
                fields.push(FieldError::new("password", "required", "is required"));
            }
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
        let text = serde_json::to_string_pretty(&session).map_err(replica_error)?;
        std::fs::write(settings_path(&self.data_dir), text).map_err(replica_error)?;
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
            old.stop.cancel();
        }
        let replica = Replica::open(replica_path(
            &self.data_dir,
            &session.server_url,
            &session.email,
        ))
        .await
        .map_err(replica_error)?;
        let client = KeywardClient::new(&session.server_url)
            .map_err(CommandError::from)?
            .with_session(token);
        let engine = SyncEngine::new(replica.clone(), client.clone());
        let (wake, stop) = (Arc::new(Notify::new()), CancellationToken::new());
        let valid = Arc::new(std::sync::atomic::AtomicBool::new(true));
        tokio::spawn(sync_loop(
            engine.clone(),
            self.status.clone(),
            wake.clone(),
            stop.clone(),
            valid.clone(),
        ));
        *slot = Some(Connected {
            session,
            client,
            replica,
            engine,
            keychain,
            wake,
            stop,
            valid,
        });
        Ok(())
    }

    /// Ends the session here and on the server (when reachable). The replica and its queued
    /// changes stay for the next sign-in.
    pub async fn logout(&self) -> Result<()> {
        let Some(c) = self.connected.lock().await.take() else {
            return Ok(());
        };
        c.stop.cancel();
        if let Err(e) = c.client.logout().await {
            tracing::info!(error = %e, "server sign-out failed; the session expires on its own");
        }
        let keychain = c.keychain.clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || keychain.delete()).await {
            // Nothing was stored when the keychain was unavailable at sign-in either.
            tracing::warn!(error = %e.message, "could not remove the session from the keychain");
        }
        let _ = std::fs::remove_file(settings_path(&self.data_dir));
        self.status.send_replace(SyncStatus::default());
        Ok(())
    }

    pub async fn current_session(&self) -> Option<Session> {
        let slot = self.connected.lock().await;
        slot.as_ref()
            .filter(|c| c.valid.load(std::sync::atomic::Ordering::Relaxed))
            .map(|c| c.session.clone())
    }

    /// The replica and engine of the signed-in account, or `unauthenticated`.
    async fn with<T>(&self, f: impl FnOnce(&Connected) -> T) -> Result<T> {
        let slot = self.connected.lock().await;
        match slot.as_ref() {
            Some(c) if c.valid.load(std::sync::atomic::Ordering::Relaxed) => Ok(f(c)),
            _ => Err(CommandError::unauthenticated()),
        }
    }

    async fn replica(&self) -> Result<Replica> {
        self.with(|c| c.replica.clone()).await
    }

    fn sync_soon(c: &Connected) {
        c.wake.notify_one();
    }

    pub async fn list_keys(&self, filter: KeyFilter) -> Result<KeyList> {
        let replica = self.replica().await?;
        let limit = filter.limit.clamp(1, MAX_PAGE);
        let query = keyward_replica::KeyFilter {
            search: filter.search.filter(|s| !s.trim().is_empty()),
            status: filter.status,
            environment: filter.environment,
            scope: filter.scope.filter(|s| !s.trim().is_empty()),
            sort: match filter.sort {
                KeySort::Name => keyward_replica::KeySort::Name,
                KeySort::Created => keyward_replica::KeySort::Created,
                KeySort::LastUsed => keyward_replica::KeySort::LastUsed,
                KeySort::Expires => keyward_replica::KeySort::Expiry,
            },
            descending: filter.descending,
            limit: Some(limit),
            offset: filter.offset,
        };
        let total = replica.count(&query).await.map_err(replica_error)? as u32;
        let items = replica
            .keys(&query)
            .await
            .map_err(replica_error)?
            .into_iter()
            .map(item)
            .collect();
        Ok(KeyList { items, total })
    }

    pub async fn get_key(&self, id: &str) -> Result<KeyDetail> {
        let (replica, id) = (self.replica().await?, parse_id(id)?);
        let key = replica
            .key(id)
            .await
            .map_err(replica_error)?
            .ok_or_else(|| CommandError::new("not_found", "no such key"))?;
        let audit = replica.audit_for_key(id).await.map_err(replica_error)?;
        Ok(KeyDetail {
            item: item(key),
            audit,
        })
    }

    pub async fn create_key(&self, form: NewKeyForm) -> Result<IssuedKey> {
        let replica = self.replica().await?;
        let req = CreateKeyRequest {
            name: form.name,
            description: form.description,
            environment: Some(form.environment),
            scopes: Some(form.scopes),
            expires_at: form.expires_at,
            allowed_ips: Some(form.allowed_ips),
            ..Default::default()
        };
        let (key, token) = replica.create_key_offline(req).await.map_err(local_error)?;
        self.with(Self::sync_soon).await?;
        Ok(IssuedKey {
            key,
            token: token.expose_secret().to_owned(),
        })
    }

    pub async fn update_key(&self, id: &str, edit: KeyEdit) -> Result<KeyListItem> {
        let (replica, id) = (self.replica().await?, parse_id(id)?);
        let req = UpdateKeyRequest {
            name: edit.name,
            description: edit
                .description
                .map(|d| Some(d).filter(|d| !d.trim().is_empty())),
            scopes: edit.scopes,
            allowed_ips: edit.allowed_ips,
            expires_at: if edit.clear_expiry {
                Some(None)
            } else {
                edit.expires_at.map(Some)
            },
            metadata: None,
            disabled: edit.disabled,
            tier: None,
            rate_limits: None,
            quota: None,
        };
        let key = replica.update_key(id, req).await.map_err(local_error)?;
        self.with(Self::sync_soon).await?;
        Ok(item(key))
    }

    pub async fn revoke_key(&self, id: &str, revocation: Revocation) -> Result<KeyListItem> {
        let (replica, id) = (self.replica().await?, parse_id(id)?);
        let req = RevokeKeyRequest {
            grace_seconds: Some(revocation.grace_seconds),
            reason: revocation.reason,
        };
        let key = replica.revoke_key(id, req).await.map_err(local_error)?;
        self.with(Self::sync_soon).await?;
        Ok(item(key))
    }

    pub async fn rotate_key(&self, id: &str, grace_seconds: u32) -> Result<IssuedKey> {
        let (replica, id) = (self.replica().await?, parse_id(id)?);
        let (key, token) = replica
            .rotate_key_offline(id, Some(grace_seconds))
            .await
            .map_err(local_error)?;
        self.with(Self::sync_soon).await?;
        Ok(IssuedKey {
            key,
            token: token.expose_secret().to_owned(),
        })
    }

    pub async fn audit_log(&self, limit: u32, before_seq: Option<i64>) -> Result<Vec<AuditEntry>> {
        self.replica()
            .await?
            .audit(limit.clamp(1, MAX_PAGE), before_seq)
            .await
            .map_err(replica_error)
    }

    pub async fn sync_status(&self) -> SyncStatus {
        self.status.borrow().clone()
    }

    /// One sync round now; answers with the resulting status (offline is a status, not an error).
    pub async fn sync_now(&self) -> Result<SyncStatus> {
        let (engine, valid) = self.with(|c| (c.engine.clone(), c.valid.clone())).await?;
        let outcome = engine.sync_once().await;
        publish(&engine, &self.status, &outcome, false).await;
        if matches!(outcome, Err(SyncError::Unauthorized)) {
            valid.store(false, std::sync::atomic::Ordering::Relaxed);
            return Err(CommandError::unauthenticated());
        }
        Ok(self.sync_status().await)
    }

    /// A key's usage from the server when online (kept on disk for offline use), else the last
    /// copy kept.
    pub async fn key_usage(&self, id: &str, granularity: Granularity) -> Result<UsageSeries> {
        let id = parse_id(id)?;
        let client = self.with(|c| c.client.clone()).await?;
        let cache = self
            .data_dir
            .join("usage")
            .join(format!("{id}-{}.json", granularity.as_str()));
        let span = match granularity {
            Granularity::Minute => chrono::Duration::hours(48),
            Granularity::Hour => chrono::Duration::days(90),
            Granularity::Day => chrono::Duration::days(730),
        };
        let now = Utc::now();
        let q = UsageQuery {
            from: Some(now - span),
            to: Some(now),
            granularity: Some(granularity),
        };
        let fetched = client.key_usage(id, &q).await.map(|answer| UsageSeries {
            key_id: id,
            granularity,
            points: answer.series,
            fetched_at: Some(now),
        });
        Ok(keep_or_recall(&cache, fetched)?.unwrap_or(UsageSeries {
            key_id: id,
            granularity,
            points: Vec::new(),
            fetched_at: None,
        }))
    }

    /// A key's standing against its rate limits and quotas from the server when online (kept on
    /// disk for offline use), else the last copy kept; offline with no copy is an `offline`
    /// error (counters cannot be made up).
    pub async fn key_limits(&self, id: &str) -> Result<LimitsSnapshot> {
        let id = parse_id(id)?;
        let client = self.with(|c| c.client.clone()).await?;
        let cache = self.data_dir.join("limits").join(format!("{id}.json"));
        let fetched = client.key_limits(id).await.map(|limits| LimitsSnapshot {
            limits,
            fetched_at: Utc::now(),
        });
        keep_or_recall(&cache, fetched)?.ok_or_else(|| {
            CommandError::new(
                "offline",
                "the server cannot be reached and this device has no saved copy of this key's limits yet",
            )
        })
    }

    /// The organisation's usage over a period and its open alerts from the server when online
    /// (kept on disk per period for offline use), else the last copy kept; offline with no copy
    /// is an `offline` error.
    pub async fn dashboard(&self, period: DashboardPeriod) -> Result<Dashboard> {
        let client = self.with(|c| c.client.clone()).await?;
        let cache = self
            .data_dir
            .join("usage")
            .join(format!("dashboard-{}.json", period.as_str()));
        let (span, granularity) = match period {
            DashboardPeriod::Day => (chrono::Duration::hours(24), Granularity::Hour),
            DashboardPeriod::Week => (chrono::Duration::days(7), Granularity::Hour),
            DashboardPeriod::Month => (chrono::Duration::days(30), Granularity::Day),
        };
        let now = Utc::now();
        let q = OrgUsageQuery {
            from: Some(now - span),
            to: Some(now),
            granularity: Some(granularity),
            group_by: None,
            top: Some(5),
        };
        let fetched = match client.org_usage(&q).await {
            Ok(usage) => client
                .alerts(&AlertsQuery { status: None })
                .await
                .map(|alerts| (usage, alerts)),
            Err(e) => Err(e),
        };
        let fetched = fetched.map(|(usage, alerts)| Dashboard {
            period,
            usage,
            alerts,
            fetched_at: now,
        });
        keep_or_recall(&cache, fetched)?.ok_or_else(|| {
            CommandError::new(
                "offline",
                "the server cannot be reached and this device has no saved copy of the dashboard for this period yet",
            )
        })
    }
}

/// The server's answer, kept at `cache` for offline use; when the server cannot be reached, the
/// copy kept last (`None`: there is none yet). Any other failure is the server's refusal.
fn keep_or_recall<T: serde::Serialize + serde::de::DeserializeOwned>(
    cache: &std::path::Path,
    fetched: std::result::Result<T, keyward_client::ClientError>,
) -> Result<Option<T>> {
    match fetched {
        Ok(value) => {
            if let Some(dir) = cache.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let _ = std::fs::write(cache, serde_json::to_vec(&value).unwrap_or_default());
            Ok(Some(value))
        }
        Err(e) if e.status().is_none() => Ok(std::fs::read(cache)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())),
        Err(e) => Err(e.into()),
    }
}

/// Reads the replica's state into the status bar's shape and sends it when it changed.
async fn publish(
    engine: &SyncEngine,
    tx: &watch::Sender<SyncStatus>,
    outcome: &std::result::Result<keyward_replica::SyncReport, SyncError>,
    syncing: bool,
) {
    let replica = engine.replica();
    let state = replica.status().await.ok();
    let online = !matches!(outcome, Err(SyncError::Offline(_)));
    let status = SyncStatus {
        online,
        syncing,
        last_sync_at: state.as_ref().and_then(|s| s.last_pull_at),
        queued: state.as_ref().map_or(0, |s| s.queued as u32),
        last_error: state.and_then(|s| s.last_error),
    };
    tx.send_if_modified(|current| {
        let changed = *current != status;
        *current = status;
        changed
    });
}

/// Syncs every [`SYNC_INTERVAL`] (and at once after a local change), backing off up to
/// [`MAX_BACKOFF`] while the server is away, until stopped or the session ends.
async fn sync_loop(
    engine: SyncEngine,
    status: watch::Sender<SyncStatus>,
    wake: Arc<Notify>,
    stop: CancellationToken,
    valid: Arc<std::sync::atomic::AtomicBool>,
) {
    let mut failures: u32 = 0;
    loop {
        let outcome = engine.sync_once().await;
        match &outcome {
            Ok(_) => failures = 0,
            Err(SyncError::Unauthorized) => {
                valid.store(false, std::sync::atomic::Ordering::Relaxed);
                publish(&engine, &status, &outcome, false).await;
                return;
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                tracing::info!(error = %e, failures, "sync failed; retrying");
            }
        }
        publish(&engine, &status, &outcome, false).await;
        let wait = keyward_replica::backoff_delay(SYNC_INTERVAL, failures, MAX_BACKOFF);
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
            () = wake.notified() => {}
        }
    }
}
