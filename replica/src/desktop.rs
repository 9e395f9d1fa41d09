//! What the desktop app does around its replica, without any UI framework: the signed-in
//! [`Account`] (its client, replica and background sync loop), where an account's files live,
//! the app's side of the sync loop (the status bar's [`SyncStatus`], analytics pulls and the
//! notifications they raise, see [`Analytics`]), and a key's details read from the server when
//! online with the replica as the fallback.
//!
//! The app's shell (Tauri) keeps its commands, the session token's keychain and the shapes
//! the UI reads; it calls in here for the rest.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use keyward_client::{ClientError, KeywardClient};
use keyward_core::api::Granularity;
use keyward_core::api::{
    GatewayQuery, GatewayUsage, KeyLimits, KeyNetwork, UsagePoint, UsageQuery,
};
use keyward_core::{KeyId, SyncStatus};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::{
    LoopPolicy, Notice, Replica, ReplicaError, SyncEngine, SyncError, SyncHooks, SyncReport,
};

/// How often the background loop syncs when all is well, and the longest it waits after
/// failures (short, so the app notices a returning server quickly).
pub const SYNC_LOOP: LoopPolicy = LoopPolicy {
    interval: Duration::from_secs(2),
    max_backoff: Duration::from_secs(10),
};
/// At most this many notifications at once; more are summed up in one.
pub const MAX_NOTIFICATIONS: usize = 5;
/// Analytics are pulled after a successful sync round at most this often (and after every
/// round started with [`Account::sync_now`]).
pub const ANALYTICS_INTERVAL: Duration = Duration::from_secs(30);
/// Limit standings refreshed per analytics pull (those fetched longest ago first).
pub const LIMITS_PER_PULL: u32 = 20;
/// A key's usage fetched on its own (outside the busiest keys) is refetched after this long.
pub const KEY_USAGE_FRESH: Duration = Duration::from_secs(300);

/// The file that remembers who is signed in (never the token: that is in the keychain).
pub fn session_path(dir: &Path) -> PathBuf {
    dir.join("session.json")
}

/// The saved session in `dir`, if there is one that reads as an `S`.
pub fn load_session<S: DeserializeOwned>(dir: &Path) -> Option<S> {
    let text = std::fs::read_to_string(session_path(dir)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Saves `session` in `dir`, for the next start.
pub fn save_session<S: Serialize>(dir: &Path, session: &S) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(session).map_err(std::io::Error::other)?;
    std::fs::write(session_path(dir), text)
}

/// Forgets the saved session in `dir` (none is fine).
pub fn forget_session(dir: &Path) {
    let _ = std::fs::remove_file(session_path(dir));
}

/// One replica per account (server and email), so signing in elsewhere never mixes data.
pub fn replica_path(dir: &Path, server_url: &str, email: &str) -> PathBuf {
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

pub use keyward_core::time::now_micros;

/// Shows one notice; an `Err` is logged, never shown to the user.
pub type Notifier = Arc<dyn Fn(&Notice) -> Result<(), String> + Send + Sync>;

/// Analytics pulls and the notifications they raise: the notifier, and a lock so that the
/// background loop and [`Account::sync_now`] never pull analytics (and notify) at the same
/// time, which could show a notice twice.
#[derive(Default)]
pub struct Analytics {
    notifier: std::sync::RwLock<Option<Notifier>>,
    running: tokio::sync::Mutex<()>,
}

impl Analytics {
    /// Shows notices through `notifier` from now on (the real app: native notifications).
    pub fn set_notifier(&self, notifier: Notifier) {
        if let Ok(mut slot) = self.notifier.write() {
            *slot = Some(notifier);
        }
    }

    /// Pulls analytics, then shows what is new to notify. Failures are logged: analytics are a
    /// view, the sync round itself already succeeded.
    pub async fn refresh(&self, engine: &SyncEngine) {
        let _one_at_a_time = self.running.lock().await;
        if let Err(e) = engine.pull_analytics(LIMITS_PER_PULL).await {
            tracing::info!(error = %e, "analytics pull failed; the replica keeps the last ones");
            return;
        }
        let Some(notify) = self.notifier.read().ok().and_then(|n| n.clone()) else {
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
        for n in notifications(&notices) {
            if let Err(e) = notify(&n) {
                tracing::warn!(error = %e, notice = %n.id, "could not show a notification");
            }
        }
        if let Err(e) = replica.mark_notified(&notices, now).await {
            tracing::warn!(error = %e, "could not record the notifications shown");
        }
    }
}

/// The notifications that show `notices`: the first [`MAX_NOTIFICATIONS`], then one summing
/// up the rest (with the first left out's kind and key).
pub fn notifications(notices: &[Notice]) -> Vec<Notice> {
    let mut shown: Vec<Notice> = notices.iter().take(MAX_NOTIFICATIONS).cloned().collect();
    if let Some(first_left) = notices.get(MAX_NOTIFICATIONS) {
        let more = notices.len() - MAX_NOTIFICATIONS;
        shown.push(Notice {
            id: "summary".into(),
            kind: first_left.kind,
            key_id: first_left.key_id,
            key_name: String::new(),
            title: format!("{more} more alerts and notices"),
            body: "open Keyward's dashboard to see them".into(),
        });
    }
    shown
}

/// The status bar after a round with `outcome`: offline only when the server could not be
/// reached.
pub fn status_after(
    outcome: &Result<SyncReport, SyncError>,
    state: crate::SyncState,
    syncing: bool,
) -> SyncStatus {
    SyncStatus {
        online: !matches!(outcome, Err(SyncError::Offline(_))),
        syncing,
        state,
    }
}

/// Reads the replica's state into the status bar's shape and sends it when it changed.
async fn publish(
    engine: &SyncEngine,
    tx: &watch::Sender<SyncStatus>,
    outcome: &Result<SyncReport, SyncError>,
) {
    let state = engine.replica().status().await.unwrap_or_default();
    let status = status_after(outcome, state, false);
    tx.send_if_modified(|current| {
        let changed = *current != status;
        *current = status;
        changed
    });
}

/// What the app does after each round of the engine's sync loop: after a successful round,
/// pulls analytics at most every [`ANALYTICS_INTERVAL`] and notifies what is new; when the
/// server says the session is over, marks it so; and after every round, publishes the status.
struct AppHooks {
    status: watch::Sender<SyncStatus>,
    valid: Arc<AtomicBool>,
    analytics: Arc<Analytics>,
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
    async fn after_round(&self, engine: &SyncEngine, outcome: &Result<SyncReport, SyncError>) {
        match outcome {
            Ok(_) if self.analytics_due() => {
                self.analytics.refresh(engine).await;
                self.analytics_done();
            }
            Ok(_) => {}
            Err(SyncError::Unauthorized) => self.valid.store(false, Ordering::Relaxed),
            // Logged by the loop, which also backs off.
            Err(_) => {}
        }
        publish(engine, &self.status, outcome).await;
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

/// Why a key's details could not be read: the replica failed, or the server refused (an
/// unreachable server is not an error: the replica answers).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(transparent)]
    Replica(#[from] ReplicaError),
    #[error(transparent)]
    Server(#[from] ClientError),
}

/// A signed-in account: its client, its replica and the sync loop running on them, stopped
/// with [`Account::stop`] (or when the server ends the session, after which
/// [`Account::is_valid`] is false).
pub struct Account {
    client: KeywardClient,
    replica: Replica,
    engine: SyncEngine,
    stop: CancellationToken,
    valid: Arc<AtomicBool>,
    status: watch::Sender<SyncStatus>,
    analytics: Arc<Analytics>,
}

impl Account {
    /// Opens the replica of `email` on `server_url` in `data_dir` and starts its sync loop with
    /// `client` (signed in there), publishing to `status` and pulling analytics through
    /// `analytics`.
    pub async fn open(
        data_dir: &Path,
        server_url: &str,
        email: &str,
        client: KeywardClient,
        status: watch::Sender<SyncStatus>,
        analytics: Arc<Analytics>,
    ) -> Result<Account, ReplicaError> {
        let replica = Replica::open(replica_path(data_dir, server_url, email)).await?;
        let engine = SyncEngine::new(replica.clone(), client.clone());
        let stop = CancellationToken::new();
        let valid = Arc::new(AtomicBool::new(true));
        tokio::spawn(sync_loop(
            engine.clone(),
            stop.clone(),
            AppHooks {
                status: status.clone(),
                valid: valid.clone(),
                analytics: analytics.clone(),
                analytics_at: std::sync::Mutex::new(None),
            },
        ));
        Ok(Account {
            client,
            replica,
            engine,
            stop,
            valid,
            status,
            analytics,
        })
    }

    pub fn client(&self) -> &KeywardClient {
        &self.client
    }

    pub fn replica(&self) -> &Replica {
        &self.replica
    }

    /// Whether the server still accepts the session (cleared when it says it is over).
    pub fn is_valid(&self) -> bool {
        self.valid.load(Ordering::Relaxed)
    }

    /// Stops the sync loop (the replica and its outbox stay).
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// Starts a sync round at once (after a local change).
    pub fn sync_soon(&self) {
        self.engine.sync_soon();
    }

    /// One sync round now, then an analytics pull when it succeeded, then the status
    /// published. [`SyncError::Unauthorized`] also marks the session over.
    pub async fn sync_now(&self) -> Result<SyncReport, SyncError> {
        let outcome = self.engine.sync_once().await;
        if outcome.is_ok() {
            self.analytics.refresh(&self.engine).await;
        }
        publish(&self.engine, &self.status, &outcome).await;
        if matches!(outcome, Err(SyncError::Unauthorized)) {
            self.valid.store(false, Ordering::Relaxed);
        }
        outcome
    }

    /// A key's hourly usage over the last [`crate::USAGE_RETENTION`] (by UTC day when `daily`)
    /// and when it was fetched. A key outside the busiest ones an analytics pull covers gets
    /// its series fetched first when online and older than [`KEY_USAGE_FRESH`] (and kept in
    /// the replica); offline, the replica answers alone.
    pub async fn key_usage(
        &self,
        id: KeyId,
        daily: bool,
    ) -> Result<(Vec<UsagePoint>, Option<DateTime<Utc>>), FetchError> {
        let now = Utc::now();
        let from = now - crate::USAGE_RETENTION;
        let (_, fetched) = self.replica.key_usage(id, from, now, false).await?;
        if fetched.is_none_or(|at| {
            now - at > chrono::Duration::from_std(KEY_USAGE_FRESH).unwrap_or_default()
        }) {
            let q = UsageQuery {
                from: Some(from),
                to: Some(now),
                granularity: Some(Granularity::Hour),
            };
            match self.client.key_usage(id, &q).await {
                Ok(answer) => {
                    self.replica
                        .store_key_usage(id, &answer.series, now)
                        .await?
                }
                Err(e) if e.is_unreachable() => {
                    tracing::debug!(error = %e, "offline: the key's usage comes from the replica")
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(self.replica.key_usage(id, from, now, daily).await?)
    }

    /// A key's standing against its limits from the server when online (kept in the replica),
    /// else the replica's copy; `None`: offline with no copy.
    pub async fn key_limits(
        &self,
        id: KeyId,
    ) -> Result<Option<(KeyLimits, DateTime<Utc>)>, FetchError> {
        match self.client.key_limits(id).await {
            Ok(limits) => {
                let fetched_at = now_micros();
                self.replica.store_key_limits(&limits, fetched_at).await?;
                Ok(Some((limits, fetched_at)))
            }
            Err(e) if e.is_unreachable() => Ok(self.replica.key_limits(id).await?),
            Err(e) => Err(e.into()),
        }
    }

    /// A key's gateway calls over the `span` before now (kept under `period`), from the server
    /// when online (kept in the replica), else the replica's last copy; `None`: offline with no
    /// copy.
    pub async fn key_gateway(
        &self,
        id: KeyId,
        period: &str,
        span: chrono::Duration,
    ) -> Result<Option<(GatewayUsage, DateTime<Utc>)>, FetchError> {
        let now = now_micros();
        let q = GatewayQuery {
            from: Some(now - span),
            to: Some(now),
        };
        match self.client.key_gateway(id, &q).await {
            Ok(usage) => {
                self.replica
                    .store_key_gateway(id, period, &usage, now)
                    .await?;
                Ok(Some((usage, now)))
            }
            Err(e) if e.is_unreachable() => Ok(self.replica.key_gateway(id, period).await?),
            Err(e) => Err(e.into()),
        }
    }

    /// The networks a key was used from, most recent first: from the server when online (kept
    /// in the replica), else the replica's last copy; `None`: offline with no copy.
    pub async fn key_networks(
        &self,
        id: KeyId,
    ) -> Result<Option<(Vec<KeyNetwork>, DateTime<Utc>)>, FetchError> {
        match self.client.key_networks(id).await {
            Ok(items) => {
                let now = now_micros();
                self.replica.store_key_networks(id, &items, now).await?;
                Ok(Some((items, now)))
            }
            Err(e) if e.is_unreachable() => Ok(self.replica.key_networks(id).await?),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NoticeKind;

    fn notice(i: usize, kind: NoticeKind) -> Notice {
        Notice {
            id: format!("n{i}"),
            kind,
            key_id: Some(KeyId::new()),
            key_name: format!("key {i}"),
            title: format!("notice {i}"),
            body: String::new(),
        }
    }

    #[test]
    fn up_to_five_notifications_are_shown_as_they_are() {
        assert!(notifications(&[]).is_empty());
        let five: Vec<Notice> = (0..5).map(|i| notice(i, NoticeKind::Alert)).collect();
        let shown = notifications(&five);
        assert_eq!(
            shown.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(),
            ["n0", "n1", "n2", "n3", "n4"]
        );
    }

    #[test]
    fn more_than_five_are_summed_up_in_one() {
        let mut all: Vec<Notice> = (0..5).map(|i| notice(i, NoticeKind::Alert)).collect();
        all.extend((5..8).map(|i| notice(i, NoticeKind::Expiry)));
        let shown = notifications(&all);
        assert_eq!(shown.len(), MAX_NOTIFICATIONS + 1);
        let summary = shown.last().unwrap();
        assert_eq!(summary.id, "summary");
        assert_eq!(summary.title, "3 more alerts and notices");
        assert_eq!(summary.kind, NoticeKind::Expiry);
        assert_eq!(summary.key_id, all[5].key_id);
        assert!(summary.key_name.is_empty());
    }

    #[test]
    fn only_an_unreachable_server_is_offline() {
        let state = crate::SyncState::default();
        assert!(status_after(&Ok(SyncReport::default()), state.clone(), false).online);
        assert!(status_after(&Err(SyncError::Unauthorized), state.clone(), true).online);
        let offline = status_after(
            &Err(SyncError::Offline(ClientError::NotSignedIn)),
            state.clone(),
            false,
        );
        assert!(!offline.online);
        assert!(!offline.syncing);
    }

    #[test]
    fn each_account_has_its_own_replica_file() {
        let dir = Path::new("/data");
        let a = replica_path(dir, "https://k.example", "ann@example.com");
        assert_eq!(
            a,
            Path::new("/data/replica-ann_example.com_https___k.example.sqlite")
        );
        assert_ne!(a, replica_path(dir, "https://k.example", "bob@example.com"));
        assert_ne!(
            a,
            replica_path(dir, "https://other.example", "ann@example.com")
        );
    }

    #[test]
    fn a_saved_session_reads_back_and_is_forgotten() {
        let dir = std::env::temp_dir().join(format!("keyward-session-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(load_session::<Vec<String>>(&dir), None);
        save_session(&dir, &vec!["ann".to_owned()]).unwrap();
        assert_eq!(
            load_session::<Vec<String>>(&dir),
            Some(vec!["ann".to_owned()])
        );
        // Not an `S`: as good as none.
        assert_eq!(load_session::<u32>(&dir), None);
        forget_session(&dir);
        forget_session(&dir);
        assert_eq!(load_session::<Vec<String>>(&dir), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// With no server: a round now is offline (not an error of the account), the status says
    /// so, the session stays valid and a key's details come from the replica (none here).
    #[tokio::test]
    async fn an_account_without_its_server_answers_from_the_replica() {
        let dir = std::env::temp_dir().join(format!("keyward-account-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let client = KeywardClient::new("http://127.0.0.1:1")
            .unwrap()
            .with_session(secrecy::SecretString::from("kws_test"));
        let (status, rx) = watch::channel(SyncStatus::default());
        let account = Account::open(
            &dir,
            "http://127.0.0.1:1",
            "ann@example.com",
            client,
            status,
            Arc::default(),
        )
        .await
        .unwrap();
        account.stop();
        assert!(matches!(
            account.sync_now().await,
            Err(SyncError::Offline(_))
        ));
        assert!(!rx.borrow().online);
        assert!(account.is_valid());
        let id = KeyId::new();
        assert!(account.key_limits(id).await.unwrap().is_none());
        assert!(account.key_networks(id).await.unwrap().is_none());
        assert!(
            account
                .key_gateway(id, "day", chrono::Duration::hours(24))
                .await
                .unwrap()
                .is_none()
        );
        let (points, fetched) = account.key_usage(id, false).await.unwrap();
        assert!(points.is_empty() && fetched.is_none());
        assert!(replica_path(&dir, "http://127.0.0.1:1", "ann@example.com").exists());
        drop(account);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
