//! What the desktop does, without Tauri: sign-in with the session token in the OS keychain, reads
//! from the replica, local writes queued for sync, a background sync loop that reports its
//! state. Commands are one-line calls into [`Desktop`]; tests drive it directly.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use keyward_client::KeywardClient;
use keyward_core::anomaly::Thresholds;
use keyward_core::api::{
    Alert, AlertStatus, AuditEntry, CreateKeyRequest, FieldError, GatewayQuery, Granularity,
    OrgUsage, RevokeKeyRequest, UpdateKeyRequest, UsageQuery, UsageTotals,
};
use keyward_core::{KeyFilter, KeyId, SyncStatus};
use keyward_replica::{
    LocalKey, LocalOpError, LoopPolicy, Notice, Replica, SyncEngine, SyncError, SyncHooks,
    SyncReport, USAGE_RETENTION,
};
use secrecy::SecretString;
use tokio::sync::{Mutex, watch};
use tokio_util::sync::CancellationToken;

use crate::credentials::Keychain;
use crate::dto::{
    AlertsView, Attention, Dashboard, DashboardPeriod, GatewayPeriod, GatewaySnapshot, IssuedKey,
    KeyDetail, KeyEdit, KeyEvent, KeyEventsView, KeyList, KeyListItem, LimitsSnapshot,
    NetworksSnapshot, NewKeyForm, OpError, ReportRequest, ReportSaved, Revocation, Session,
    UsageSeries,
};
use crate::error::CommandError;

type Result<T> = std::result::Result<T, CommandError>;

/// How often the background loop syncs when all is well, and the longest it waits after
/// failures (short, so the app notices a returning server quickly).
const SYNC_LOOP: LoopPolicy = LoopPolicy {
    interval: Duration::from_secs(2),
    max_backoff: Duration::from_secs(10),
};
pub const MAX_PAGE: u32 = 500;

pub struct Desktop {
    data_dir: PathBuf,
    connected: Mutex<Option<Connected>>,
    status: watch::Sender<SyncStatus>,
    notifier: NotifierSlot,
}

struct Connected {
    session: Session,
    client: KeywardClient,
    replica: Replica,
    engine: SyncEngine,
    keychain: Keychain,
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

/// `offline` for a read with no saved copy: `what` names what is missing.
fn no_copy(what: &str) -> CommandError {
    CommandError::new(
        "offline",
        format!("the server cannot be reached and this device has no saved copy of {what} yet"),
    )
}

/// `offline` for something that needs the server (`what`: "saving alert sensitivity"), or the
/// server's own refusal.
fn needs_server(what: &str) -> impl FnOnce(keyward_client::ClientError) -> CommandError + '_ {
    move |e| match e {
        e if e.is_unreachable() => CommandError::new(
            "offline",
            format!(
                "the server cannot be reached: {what} needs a connection; try again when online"
            ),
        ),
        e => CommandError::from(e),
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

/// A server address: https, or plain http only to this computer (see
/// [`keyward_client::check_server_url`]); refused as a field error of the sign-in form.
fn server_url(raw: &str) -> Result<String> {
    keyward_client::check_server_url(raw).map_err(|e| {
        CommandError::validation(vec![FieldError::new("server_url", e.code(), e.to_string())])
    })
}

/// The new password's problems, checked as the server checks them, before it is asked.
fn check_new_password(current: &str, new: &str) -> Vec<FieldError> {
    let mut fields = Vec::new();
    if current.is_empty() {
        fields.push(FieldError::new(
            "current_password",
            "required",
            "is required",
        ));
    }
    match keyward_core::hash::check_password_policy(new) {
        Err(e) => fields.push(FieldError::new(
            "new_password",
            "weak_password",
            e.to_string(),
        )),
        Ok(()) if new == current => fields.push(FieldError::new(
            "new_password",
            "unchanged",
            "must differ from the current password",
        )),
        Ok(()) => {}
    }
    fields
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
            notifier: NotifierSlot::default(),
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
        let stop = CancellationToken::new();
        let valid = Arc::new(std::sync::atomic::AtomicBool::new(true));
        tokio::spawn(sync_loop(
            engine.clone(),
            stop.clone(),
            AppHooks {
                status: self.status.clone(),
                valid: valid.clone(),
                notifier: self.notifier.clone(),
                analytics_at: std::sync::Mutex::new(None),
            },
        ));
        *slot = Some(Connected {
            session,
            client,
            replica,
            engine,
            keychain,
            stop,
            valid,
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
        c.stop.cancel();
        if tell_server && let Err(e) = c.client.logout().await {
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

    /// Changes the signed-in admin's password on the server (needs a connection: refused
    /// offline, never queued). The server ends the admin's other sessions (other devices); this
    /// one stays signed in. A wrong current password is a field error of `current_password`.
    pub async fn change_password(&self, current: String, new: String) -> Result<()> {
        let client = self.with(|c| c.client.clone()).await?;
        let fields = check_new_password(&current, &new);
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
        let client = self.with(|c| c.client.clone()).await?;
        client
            .logout_all()
            .await
            .map_err(needs_server("signing out everywhere"))?;
        self.sign_out(false).await
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
        c.engine.sync_soon();
    }

    pub async fn list_keys(&self, filter: KeyFilter) -> Result<KeyList> {
        let replica = self.replica().await?;
        // Blank text boxes mean "any"; a page is 1 to MAX_PAGE keys (MAX_PAGE when unsaid).
        let query = KeyFilter {
            search: filter.search.filter(|s| !s.trim().is_empty()),
            scope: filter.scope.filter(|s| !s.trim().is_empty()),
            limit: Some(filter.limit.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE)),
            ..filter
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

    /// One sync round now, then an analytics pull; answers with the resulting status (offline
    /// is a status, not an error).
    pub async fn sync_now(&self) -> Result<SyncStatus> {
        let (engine, valid) = self.with(|c| (c.engine.clone(), c.valid.clone())).await?;
        let outcome = engine.sync_once().await;
        if outcome.is_ok() {
            refresh_analytics(&engine, &self.notifier).await;
        }
        publish(&engine, &self.status, &outcome, false).await;
        if matches!(outcome, Err(SyncError::Unauthorized)) {
            valid.store(false, std::sync::atomic::Ordering::Relaxed);
            return Err(CommandError::unauthenticated());
        }
        Ok(self.sync_status().await)
    }

    /// A key's usage over the last 30 days, by hour or by UTC day, from the replica. A key
    /// outside the busiest ones an analytics pull covers gets its series fetched here when
    /// online (and kept in the replica); offline, the replica answers alone.
    pub async fn key_usage(&self, id: &str, granularity: Granularity) -> Result<UsageSeries> {
        let id = parse_id(id)?;
        if granularity == Granularity::Minute {
            return Err(CommandError::validation(vec![FieldError::new(
                "granularity",
                "unsupported",
                "this device keeps hourly usage; choose hour or day",
            )]));
        }
        let (client, replica) = self.with(|c| (c.client.clone(), c.replica.clone())).await?;
        let now = Utc::now();
        let from = now - USAGE_RETENTION;
        let (_, fetched) = replica
            .key_usage(id, from, now, false)
            .await
            .map_err(replica_error)?;
        if fetched.is_none_or(|at| {
            now - at > chrono::Duration::from_std(KEY_USAGE_FRESH).unwrap_or_default()
        }) {
            let q = UsageQuery {
                from: Some(from),
                to: Some(now),
                granularity: Some(Granularity::Hour),
            };
            match client.key_usage(id, &q).await {
                Ok(answer) => replica
                    .store_key_usage(id, &answer.series, now)
                    .await
                    .map_err(replica_error)?,
                Err(e) if e.is_unreachable() => {
                    tracing::debug!(error = %e, "offline: the key's usage comes from the replica")
                }
                Err(e) => return Err(e.into()),
            }
        }
        let (points, fetched_at) = replica
            .key_usage(id, from, now, granularity == Granularity::Day)
            .await
            .map_err(replica_error)?;
        Ok(UsageSeries {
            key_id: id,
            granularity,
            points,
            fetched_at,
        })
    }

    /// A key's standing against its rate limits and quotas from the server when online (kept
    /// in the replica), else the replica's copy; offline with no copy is an `offline` error
    /// (counters cannot be made up).
    pub async fn key_limits(&self, id: &str) -> Result<LimitsSnapshot> {
        let id = parse_id(id)?;
        let (client, replica) = self.with(|c| (c.client.clone(), c.replica.clone())).await?;
        match client.key_limits(id).await {
            Ok(limits) => {
                let fetched_at = now_micros();
                replica
                    .store_key_limits(&limits, fetched_at)
                    .await
                    .map_err(replica_error)?;
                Ok(LimitsSnapshot { limits, fetched_at })
            }
            Err(e) if e.is_unreachable() => replica
                .key_limits(id)
                .await
                .map_err(replica_error)?
                .map(|(limits, fetched_at)| LimitsSnapshot { limits, fetched_at })
                .ok_or_else(|| no_copy("this key's limits")),
            Err(e) => Err(e.into()),
        }
    }

    /// A key's gateway calls over `period` (its total first, then each route group) from the
    /// server when online (kept in the replica), else the replica's last copy; offline with no
    /// copy is an `offline` error.
    pub async fn key_gateway(&self, id: &str, period: GatewayPeriod) -> Result<GatewaySnapshot> {
        let id = parse_id(id)?;
        let (client, replica) = self.with(|c| (c.client.clone(), c.replica.clone())).await?;
        let now = now_micros();
        let q = GatewayQuery {
            from: Some(now - period.span()),
            to: Some(now),
        };
        let (usage, fetched_at) = match client.key_gateway(id, &q).await {
            Ok(usage) => {
                replica
                    .store_key_gateway(id, period.as_str(), &usage, now)
                    .await
                    .map_err(replica_error)?;
                (usage, now)
            }
            Err(e) if e.is_unreachable() => replica
                .key_gateway(id, period.as_str())
                .await
                .map_err(replica_error)?
                .ok_or_else(|| no_copy("this key's gateway traffic"))?,
            Err(e) => return Err(e.into()),
        };
        Ok(GatewaySnapshot {
            key_id: id,
            period,
            usage,
            fetched_at,
        })
    }

    /// The networks a key was used from, most recent first: from the server when online (kept
    /// in the replica), else the replica's last copy; offline with no copy is `offline`.
    pub async fn key_networks(&self, id: &str) -> Result<NetworksSnapshot> {
        let id = parse_id(id)?;
        let (client, replica) = self.with(|c| (c.client.clone(), c.replica.clone())).await?;
        let (items, fetched_at) = match client.key_networks(id).await {
            Ok(items) => {
                let now = now_micros();
                replica
                    .store_key_networks(id, &items, now)
                    .await
                    .map_err(replica_error)?;
                (items, now)
            }
            Err(e) if e.is_unreachable() => replica
                .key_networks(id)
                .await
                .map_err(replica_error)?
                .ok_or_else(|| no_copy("the networks this key was used from"))?,
            Err(e) => return Err(e.into()),
        };
        Ok(NetworksSnapshot {
            key_id: id,
            items,
            fetched_at,
        })
    }

    /// The organisation's anomaly thresholds, read from the server (offline: `offline`).
    pub async fn alert_settings(&self) -> Result<Thresholds> {
        let client = self.with(|c| c.client.clone()).await?;
        client
            .alert_settings()
            .await
            .map_err(needs_server("reading alert sensitivity"))
    }

    /// Replaces the organisation's anomaly thresholds on the server (audited there). The
    /// server checks every field ([`Thresholds::validate`]) and refuses out-of-range ones
    /// field by field (`validation_failed` with `fields`), viewers with `forbidden`. Needs the
    /// server: offline it is refused, not queued.
    pub async fn set_alert_settings(&self, thresholds: Thresholds) -> Result<Thresholds> {
        let client = self.with(|c| c.client.clone()).await?;
        client
            .set_alert_settings(&thresholds)
            .await
            .map_err(needs_server("saving alert sensitivity"))
    }

    /// The organisation's usage over a period (ending at the last analytics sync), its open
    /// alerts and the keys close to expiry or a limit, from the replica only.
    pub async fn dashboard(&self, period: DashboardPeriod) -> Result<Dashboard> {
        let replica = self.replica().await?;
        let Some(at) = replica.analytics_at().await.map_err(replica_error)? else {
            return Err(CommandError::new(
                "not_synced",
                "this device has not synced usage yet; it arrives with the next sync while online",
            ));
        };
        let (span, granularity) = match period {
            DashboardPeriod::Day => (chrono::Duration::hours(24), Granularity::Hour),
            DashboardPeriod::Week => (chrono::Duration::days(7), Granularity::Hour),
            DashboardPeriod::Month => (chrono::Duration::days(30), Granularity::Day),
        };
        let from = at - span;
        let series = replica
            .org_usage(from, at, granularity == Granularity::Day)
            .await
            .map_err(replica_error)?;
        let totals = UsageTotals::of(&series);
        let share = |part: i64| match totals.total() {
            0 => 0.0,
            all => part as f64 / all as f64,
        };
        let (top_by_volume, top_by_rejections) = replica
            .top_keys(period.as_str())
            .await
            .map_err(replica_error)?;
        let alerts = replica
            .alerts(Some(AlertStatus::Open))
            .await
            .map_err(replica_error)?
            .into_iter()
            .map(|s| s.alert)
            .collect();
        let attention = replica
            .attention(Utc::now())
            .await
            .map_err(replica_error)?
            .into_iter()
            .filter_map(|n| {
                Some(Attention {
                    kind: n.kind.as_str().to_owned(),
                    key_id: n.key_id?,
                    key_name: n.key_name,
                    detail: n.body,
                })
            })
            .collect();
        Ok(Dashboard {
            period,
            usage: OrgUsage {
                granularity,
                from,
                to: at,
                error_share: share(totals.rejected),
                rate_limited_share: share(totals.rate_limited),
                series,
                totals,
                top_by_volume,
                top_by_rejections,
                by_key: None,
                by_outcome: None,
            },
            alerts,
            attention,
            fetched_at: at,
        })
    }

    /// Alerts as last synced (`status`: only those; `None`: all), newest first.
    pub async fn alerts(&self, status: Option<AlertStatus>) -> Result<AlertsView> {
        let replica = self.replica().await?;
        let items = replica
            .alerts(status)
            .await
            .map_err(replica_error)?
            .into_iter()
            .map(|s| s.alert)
            .collect();
        let synced_at = replica.analytics_at().await.map_err(replica_error)?;
        Ok(AlertsView { items, synced_at })
    }

    /// The organisation's events (key created, revoked, expired..., quotas, alerts) as last
    /// synced, newest first, each with its key's name: from the replica only, so offline they
    /// show the last pull and when it was made.
    pub async fn events(&self) -> Result<KeyEventsView> {
        let replica = self.replica().await?;
        let events = replica
            .events(keyward_replica::EVENTS_KEPT)
            .await
            .map_err(replica_error)?;
        let mut names: std::collections::HashMap<KeyId, Option<String>> =
            std::collections::HashMap::new();
        let mut items = Vec::with_capacity(events.len());
        for event in events {
            let local = match event.key_id {
                Some(id) => match names.get(&id) {
                    Some(name) => name.clone(),
                    None => {
                        let name = replica
                            .key(id)
                            .await
                            .map_err(replica_error)?
                            .map(|k| k.key.name);
                        names.insert(id, name.clone());
                        name
                    }
                },
                None => None,
            };
            let key_name = local.or_else(|| event_key_name(&event.event));
            items.push(KeyEvent { event, key_name });
        }
        let synced_at = replica.analytics_at().await.map_err(replica_error)?;
        Ok(KeyEventsView { items, synced_at })
    }

    /// Acknowledges an open alert on the server (audited there) and stores its new state.
    /// Needs the server: offline it is refused, not queued (the outbox carries key operations
    /// only, and an acknowledgement made blind could hit an alert resolved meanwhile).
    pub async fn ack_alert(&self, id: &str) -> Result<Alert> {
        let id: uuid::Uuid = id
            .parse()
            .map_err(|_| CommandError::new("not_found", "no such alert"))?;
        let (client, replica) = self.with(|c| (c.client.clone(), c.replica.clone())).await?;
        let alert = client
            .ack_alert(id)
            .await
            .map_err(needs_server("acknowledging an alert"))?;
        replica.put_alert(&alert).await.map_err(replica_error)?;
        Ok(alert)
    }

    /// Streams the usage report for `req`'s period to `req.path` (see [`crate::report`]).
    pub async fn save_report(&self, req: ReportRequest) -> Result<ReportSaved> {
        let client = self.with(|c| c.client.clone()).await?;
        crate::report::save(&client, &req).await
    }

    /// Shows notices through `notifier` from now on (the real app: native notifications).
    pub fn set_notifier(&self, notifier: Notifier) {
        if let Ok(mut slot) = self.notifier.notifier.write() {
            *slot = Some(notifier);
        }
    }
}

/// The key name an event's payload carries (key events do; limit and alert events do not).
fn event_key_name(event: &keyward_core::api::webhooks::WebhookEvent) -> Option<String> {
    use keyward_core::api::webhooks::WebhookEvent as E;
    match event {
        E::KeyCreated(d) => Some(d.name.clone()),
        E::KeyRevoked(d) => Some(d.name.clone()),
        E::KeyRotated(d) => Some(d.name.clone()),
        E::KeyExpired(d) => Some(d.name.clone()),
        E::KeyExpiring(d) | E::KeyUnused(d) => Some(d.name.clone()),
        _ => None,
    }
}

/// Shows one notice; an `Err` is logged, never shown to the user.
pub type Notifier = Arc<dyn Fn(&Notice) -> std::result::Result<(), String> + Send + Sync>;
/// The notifier, and a lock so that the background loop and "Sync now" never pull analytics
/// (and notify) at the same time, which could show a notice twice.
#[derive(Default)]
struct AnalyticsCtl {
    notifier: std::sync::RwLock<Option<Notifier>>,
    running: tokio::sync::Mutex<()>,
}
type NotifierSlot = Arc<AnalyticsCtl>;

/// At most this many notifications at once; more are summed up in one.
const MAX_NOTIFICATIONS: usize = 5;
/// Analytics are pulled after a successful sync round at most this often (and after every
/// round started with "Sync now").
const ANALYTICS_INTERVAL: Duration = Duration::from_secs(30);
/// Limit standings refreshed per analytics pull (those fetched longest ago first).
const LIMITS_PER_PULL: u32 = 20;
/// A key's usage fetched on its own (outside the busiest keys) is refetched after this long.
const KEY_USAGE_FRESH: Duration = Duration::from_secs(300);

/// Now, at the replica's precision (microseconds), so a value read back equals the one kept.
fn now_micros() -> chrono::DateTime<Utc> {
    let now = Utc::now();
    chrono::DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

/// Pulls analytics, then shows what is new to notify. Failures are logged: analytics are a
/// view, the sync round itself already succeeded.
async fn refresh_analytics(engine: &SyncEngine, ctl: &NotifierSlot) {
    let _one_at_a_time = ctl.running.lock().await;
    if let Err(e) = engine.pull_analytics(LIMITS_PER_PULL).await {
        tracing::info!(error = %e, "analytics pull failed; the replica keeps the last ones");
        return;
    }
    let Some(notify) = ctl.notifier.read().ok().and_then(|n| n.clone()) else {
        return;
    };
    let replica = engine.replica();
    let now = Utc::now();
    let notices = match replica.notices_to_show(now).await {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "could not read what to notify");
            return;
        }
    };
    if notices.is_empty() {
        return;
    }
    for n in notices.iter().take(MAX_NOTIFICATIONS) {
        if let Err(e) = notify(n) {
            tracing::warn!(error = %e, notice = %n.id, "could not show a notification");
        }
    }
    if notices.len() > MAX_NOTIFICATIONS {
        let more = notices.len() - MAX_NOTIFICATIONS;
        let summary = Notice {
            id: "summary".into(),
            kind: notices[MAX_NOTIFICATIONS].kind,
            key_id: notices[MAX_NOTIFICATIONS].key_id,
            key_name: String::new(),
            title: format!("{more} more alerts and notices"),
            body: "open Keyward's dashboard to see them".into(),
        };
        if let Err(e) = notify(&summary) {
            tracing::warn!(error = %e, "could not show a notification");
        }
    }
    if let Err(e) = replica.mark_notified(&notices, now).await {
        tracing::warn!(error = %e, "could not record the notifications shown");
    }
}

/// Reads the replica's state into the status bar's shape and sends it when it changed.
async fn publish(
    engine: &SyncEngine,
    tx: &watch::Sender<SyncStatus>,
    outcome: &std::result::Result<keyward_replica::SyncReport, SyncError>,
    syncing: bool,
) {
    let status = SyncStatus {
        online: !matches!(outcome, Err(SyncError::Offline(_))),
        syncing,
        state: engine.replica().status().await.unwrap_or_default(),
    };
    tx.send_if_modified(|current| {
        let changed = *current != status;
        *current = status;
        changed
    });
}

/// What the app does after each round of the engine's sync loop: after a successful round,
/// pulls analytics at most every [`ANALYTICS_INTERVAL`] and notifies what is new; when the
/// server says the session is over, marks it so (commands then answer `unauthenticated`); and
/// after every round, publishes the status to the UI.
struct AppHooks {
    status: watch::Sender<SyncStatus>,
    valid: Arc<std::sync::atomic::AtomicBool>,
    notifier: NotifierSlot,
    analytics_at: std::sync::Mutex<Option<tokio::time::Instant>>,
}

impl AppHooks {
    /// Whether the last analytics pull ended [`ANALYTICS_INTERVAL`] ago or more.
    fn analytics_due(&self) -> bool {
        self.analytics_at.lock().map_or(true, |at| {
            at.is_none_or(|t| t.elapsed() >= ANALYTICS_INTERVAL)
        })
    }

    fn analytics_done(&self) {
        if let Ok(mut at) = self.analytics_at.lock() {
            *at = Some(tokio::time::Instant::now());
        }
    }
}

impl SyncHooks for AppHooks {
    async fn after_round(
        &self,
        engine: &SyncEngine,
        outcome: &std::result::Result<SyncReport, SyncError>,
    ) {
        match outcome {
            Ok(_) if self.analytics_due() => {
                refresh_analytics(engine, &self.notifier).await;
                self.analytics_done();
            }
            Ok(_) => {}
            Err(SyncError::Unauthorized) => {
                self.valid
                    .store(false, std::sync::atomic::Ordering::Relaxed);
            }
            // Logged by the loop, which also backs off.
            Err(_) => {}
        }
        publish(engine, &self.status, outcome, false).await;
    }
}

/// The signed-in account's sync loop: the engine's own ([`SyncEngine::run_with`]), every
/// [`SYNC_LOOP`] interval (and at once after a local change), backing off with jitter while
/// the server is away, until stopped or the session ends; [`AppHooks`] after each round.
async fn sync_loop(engine: SyncEngine, stop: CancellationToken, hooks: AppHooks) {
    match engine.run_with(stop, SYNC_LOOP, &hooks).await {
        Ok(()) => tracing::debug!("sync loop stopped"),
        Err(e) => tracing::info!(error = %e, "sync loop ended; sign in again"),
    }
}
