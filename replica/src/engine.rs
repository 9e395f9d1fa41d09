//! [`SyncEngine`]: push the outbox, then pull, over the real client.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use keyward_client::KeywardClient;
use keyward_core::api::{AlertFilter, AlertsQuery, Granularity, OrgUsageQuery, UsageGroupBy};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::analytics::{AnalyticsSnapshot, EVENTS_KEPT, KeyHourly, TopKeys, USAGE_RETENTION};
use crate::backoff::next_wait;
use crate::error::SyncError;
use crate::push::Batch;
use crate::replica::Replica;

/// At most this many operations go in one push.
pub const MAX_PUSH_BATCH: usize = 100;
/// Changes asked for per pull request.
const PULL_PAGE: u32 = 500;
/// Keys in each top list of the dashboard.
const TOP_KEYS: u32 = 5;
/// Events asked for per page when pulling the event log.
const EVENTS_PAGE: u32 = 100;
/// The longest wait between failed rounds.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// What one sync round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Operations the server applied.
    pub applied: usize,
    /// Operations the server refused (their refusal shows on the key).
    pub rejected: usize,
    /// Operations dropped because they depended on a refused one.
    pub dropped: usize,
    /// Changes pulled.
    pub pulled: usize,
}

/// How [`SyncEngine::run_with`] paces its rounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoopPolicy {
    /// The wait between rounds while they succeed.
    pub interval: Duration,
    /// The longest wait after failed rounds: the wait doubles with each consecutive failure up
    /// to this, jittered ([`crate::jittered_backoff`]).
    pub max_backoff: Duration,
}

impl LoopPolicy {
    /// Rounds every `interval`, backing off up to five minutes.
    pub fn every(interval: Duration) -> LoopPolicy {
        LoopPolicy {
            interval,
            max_backoff: MAX_BACKOFF,
        }
    }
}

/// What an app does around the rounds of [`SyncEngine::run_with`]: show the sync status, pull
/// what it shows besides keys, notify. The loop waits for each hook before pacing on.
pub trait SyncHooks: Send + Sync {
    /// After every round, with its outcome; also after the last one, whose
    /// [`SyncError::Unauthorized`] ends the loop.
    fn after_round(
        &self,
        engine: &SyncEngine,
        outcome: &Result<SyncReport, SyncError>,
    ) -> impl Future<Output = ()> + Send;
}

/// No hooks: the loop only syncs.
impl SyncHooks for () {
    async fn after_round(&self, _: &SyncEngine, _: &Result<SyncReport, SyncError>) {}
}

/// Synchronises a [`Replica`] with the server through a signed-in [`KeywardClient`].
#[derive(Debug, Clone)]
pub struct SyncEngine {
    replica: Replica,
    client: KeywardClient,
    batch_size: usize,
    wake: Arc<Notify>,
}

impl SyncEngine {
    pub fn new(replica: Replica, client: KeywardClient) -> SyncEngine {
        SyncEngine {
            replica,
            client,
            batch_size: MAX_PUSH_BATCH,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Pushes at most `n` operations at a time (1..=[`MAX_PUSH_BATCH`]).
    pub fn with_batch_size(mut self, n: usize) -> SyncEngine {
        self.batch_size = n.clamp(1, MAX_PUSH_BATCH);
        self
    }

    pub fn replica(&self) -> &Replica {
        &self.replica
    }

    /// Asks a running [`SyncEngine::run`] loop to sync now (after a local edit, say).
    pub fn sync_soon(&self) {
        self.wake.notify_one();
    }

    /// One round: push the whole outbox in order, in batches, recording each answer; then pull
    /// until the replica is caught up. On error the outbox keeps every operation not answered,
    /// and the error is kept for [`Replica::status`].
    #[tracing::instrument(skip_all, fields(base = %self.client.base_url()))]
    pub async fn sync_once(&self) -> Result<SyncReport, SyncError> {
        let result = self.round().await;
        let note = match &result {
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(error = %e, "sync round failed");
                Some(e.for_people())
            }
        };
        if let Err(e) = self.replica.record_sync_error(note.as_deref()).await {
            tracing::warn!(error = %e, "could not record the sync outcome");
        }
        result
    }

    async fn round(&self) -> Result<SyncReport, SyncError> {
        let mut report = SyncReport::default();
        // Whether the replica has pulled since the last push (chained edits need fresh seqs).
        let mut fresh = false;
        loop {
            let mut batch = self.replica.next_batch(self.batch_size).await?;
            if batch.is_empty() {
                break;
            }
            if batch.resolves_chained && !fresh {
                report.pulled += self.pull_all().await?;
                batch = self.replica.next_batch(self.batch_size).await?;
            }
            let outcome = self.push(&batch).await?;
            report.applied += outcome.applied;
            report.rejected += outcome.rejected;
            report.dropped += outcome.dropped;
            fresh = false;
            if outcome.applied + outcome.rejected + outcome.dropped == 0 {
                // The server answered none of it: do not spin; the next round retries.
                tracing::warn!("push made no progress");
                break;
            }
            // Edits chained to what was just pushed are based on its result: pull first.
            report.pulled += self.pull_all().await?;
            fresh = true;
        }
        if !fresh {
            report.pulled += self.pull_all().await?;
        }
        tracing::debug!(?report, "sync round done");
        Ok(report)
    }

    async fn push(&self, batch: &Batch) -> Result<crate::push::PushOutcome, SyncError> {
        match self.client.push(&batch.to_push()).await {
            Ok(answer) => Ok(self
                .replica
                .apply_push_results(batch, &answer.results)
                .await?),
            Err(e) => {
                let e = SyncError::from(e);
                // A refused session says nothing about the operations: leave them be.
                let noted = match e {
                    SyncError::Unauthorized => Ok(()),
                    _ => self.replica.note_push_failure(batch, &e.to_string()).await,
                };
                if let Err(note) = noted {
                    tracing::warn!(error = %note, "could not note the failed push");
                }
                Err(e)
            }
        }
    }

    /// Pulls pages until the server has nothing more; returns how many changes came.
    async fn pull_all(&self) -> Result<usize, SyncError> {
        let mut cursor = self.replica.cursor().await?;
        let mut pulled = 0;
        loop {
            let page = self.client.pull(cursor, Some(PULL_PAGE)).await?;
            pulled += page.changes.len();
            self.replica.apply_pull(&page).await?;
            if !page.has_more || page.cursor <= cursor {
                return Ok(pulled);
            }
            cursor = page.cursor;
        }
    }

    /// Pulls the analytics the desktop shows offline and stores them in one transaction
    /// ([`Replica::store_analytics`]): the organisation's hourly usage over the last 30 days with
    /// the 100 busiest keys' series, the top keys of each dashboard period, the alert list, and
    /// the limit standings of up to `limits` keys with rules (those fetched longest ago first).
    #[tracing::instrument(skip_all)]
    pub async fn pull_analytics(&self, limits: u32) -> Result<(), SyncError> {
        let at = Utc::now();
        let month = OrgUsageQuery {
            from: Some(at - USAGE_RETENTION),
            to: Some(at),
            granularity: Some(Granularity::Hour),
            group_by: Some(UsageGroupBy::Key),
            top: Some(100),
        };
        let usage = self.client.org_usage(&month).await?;
        let mut top = Vec::new();
        for (period, span) in [
            ("24h", chrono::Duration::hours(24)),
            ("7d", chrono::Duration::days(7)),
        ] {
            let q = OrgUsageQuery {
                from: Some(at - span),
                to: Some(at),
                granularity: Some(Granularity::Hour),
                group_by: None,
                top: Some(TOP_KEYS),
            };
            let u = self.client.org_usage(&q).await?;
            top.push(TopKeys {
                period: period.to_owned(),
                by_volume: u.top_by_volume,
                by_rejections: u.top_by_rejections,
            });
        }
        top.push(TopKeys {
            period: "30d".to_owned(),
            by_volume: usage
                .top_by_volume
                .iter()
                .take(TOP_KEYS as usize)
                .cloned()
                .collect(),
            by_rejections: usage
                .top_by_rejections
                .iter()
                .take(TOP_KEYS as usize)
                .cloned()
                .collect(),
        });
        let alerts = self
            .client
            .alerts(&AlertsQuery {
                status: Some(AlertFilter::All),
            })
            .await?;
        let mut standings = Vec::new();
        for id in self.replica.keys_with_limits(limits).await? {
            match self.client.key_limits(id).await {
                Ok(l) => standings.push(l),
                // Gone on the server since the last pull: the next pull removes the key.
                Err(e) if e.status().is_some_and(|s| s.as_u16() == 404) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let events = self.pull_events().await?;
        let snapshot = AnalyticsSnapshot {
            at,
            org_hourly: usage.series,
            key_hourly: usage
                .by_key
                .unwrap_or_default()
                .into_iter()
                .map(|k| KeyHourly {
                    key_id: k.key_id,
                    points: k.series,
                })
                .collect(),
            top,
            alerts,
            limits: standings,
            events,
        };
        self.replica.store_analytics(&snapshot).await?;
        Ok(())
    }

    /// The organisation's events the replica does not have yet, newest first: pages of
    /// [`EVENTS_PAGE`] until one reaches a stored event, the server has no more, or
    /// [`EVENTS_KEPT`] came. The first page is always read whole, so an event whose transaction
    /// committed a little after a newer one was pulled still arrives. A server without
    /// `/v1/events` (older) brings none.
    async fn pull_events(&self) -> Result<Vec<keyward_core::api::OrgEvent>, SyncError> {
        let known = self.replica.event_ids().await?;
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let q = keyward_core::api::EventsQuery {
                limit: Some(EVENTS_PAGE),
                cursor,
                ..Default::default()
            };
            let page = match self.client.events(&q).await {
                Ok(page) => page,
                Err(e) if e.status().is_some_and(|s| s.as_u16() == 404) => return Ok(out),
                Err(e) => return Err(e.into()),
            };
            let reached = page.items.iter().any(|e| known.contains(&e.id));
            out.extend(page.items.into_iter().filter(|e| !known.contains(&e.id)));
            if reached || out.len() >= EVENTS_KEPT as usize || page.next_cursor.is_none() {
                return Ok(out);
            }
            cursor = page.next_cursor;
        }
    }

    /// Syncs every `interval` (or sooner after [`SyncEngine::sync_soon`]) until `shutdown`,
    /// backing off up to five minutes: [`SyncEngine::run_with`] without hooks.
    pub async fn run(
        &self,
        shutdown: CancellationToken,
        interval: Duration,
    ) -> Result<(), SyncError> {
        self.run_with(shutdown, LoopPolicy::every(interval), &())
            .await
    }

    /// The desktop's one sync loop: a round ([`SyncEngine::sync_once`]) every
    /// `policy.interval`, then `hooks` with its outcome. Failed rounds back off (the wait doubles
    /// with each, up to `policy.max_backoff`, jittered so that desktops cut off together do not
    /// return together). [`SyncEngine::sync_soon`] (a local edit) starts a round at once, even
    /// while backing off: someone is waiting for it. Returns `Ok` on `shutdown` and
    /// [`SyncError::Unauthorized`] when the session is no longer valid (sign in again, then
    /// start a new loop); the outbox is intact either way.
    pub async fn run_with<H: SyncHooks>(
        &self,
        shutdown: CancellationToken,
        policy: LoopPolicy,
        hooks: &H,
    ) -> Result<(), SyncError> {
        let mut failures: u32 = 0;
        loop {
            if shutdown.is_cancelled() {
                return Ok(());
            }
            let outcome = self.sync_once().await;
            match &outcome {
                Ok(_) => failures = 0,
                Err(SyncError::Unauthorized) => {}
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::info!(error = %e, failures, "sync failed; will retry");
                }
            }
            hooks.after_round(self, &outcome).await;
            if let Err(SyncError::Unauthorized) = outcome {
                return Err(SyncError::Unauthorized);
            }
            let wait = next_wait(policy.interval, failures, policy.max_backoff);
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                () = tokio::time::sleep(wait) => {}
                () = self.wake.notified() => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_core::api::CreateKeyRequest;

    async fn replica_with_one_op() -> Replica {
        let replica = Replica::in_memory().await.unwrap();
        replica
            .create_key_offline(CreateKeyRequest {
                name: "queued".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        replica
    }

    /// A port nothing listens on.
    fn unreachable() -> KeywardClient {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        KeywardClient::new(format!("http://127.0.0.1:{port}"))
            .unwrap()
            .with_session("session".to_owned().into())
    }

    #[tokio::test]
    async fn without_a_session_the_loop_stops_unauthorized_and_keeps_the_outbox() {
        let replica = replica_with_one_op().await;
        let client = KeywardClient::new("http://127.0.0.1:9").unwrap();
        let engine = SyncEngine::new(replica.clone(), client);
        let result = engine
            .run(CancellationToken::new(), Duration::from_secs(1))
            .await;
        assert!(matches!(result, Err(SyncError::Unauthorized)), "{result:?}");
        assert_eq!(replica.outbox_len().await.unwrap(), 1);
        let status = replica.status().await.unwrap();
        assert!(status.last_error.unwrap().contains("sign in"));
    }

    /// Records each round's outcome as the loop reports it.
    #[derive(Default)]
    struct Rounds(std::sync::Mutex<Vec<String>>, Notify);

    impl SyncHooks for Rounds {
        async fn after_round(&self, engine: &SyncEngine, outcome: &Result<SyncReport, SyncError>) {
            // The round's outcome is recorded in the replica before the hook runs.
            let noted = engine.replica().status().await.unwrap().last_error;
            assert_eq!(noted.is_some(), outcome.is_err());
            let what = match outcome {
                Ok(_) => "ok".to_owned(),
                Err(SyncError::Unauthorized) => "unauthorized".to_owned(),
                Err(SyncError::Offline(_)) => "offline".to_owned(),
                Err(e) => e.to_string(),
            };
            self.0.lock().unwrap().push(what);
            self.1.notify_one();
        }
    }

    impl Rounds {
        fn seen(&self) -> Vec<String> {
            self.0.lock().unwrap().clone()
        }
    }

    #[tokio::test]
    async fn hooks_see_every_round_and_the_unauthorized_one_that_ends_the_loop() {
        let replica = replica_with_one_op().await;
        let client = KeywardClient::new("http://127.0.0.1:9").unwrap();
        let engine = SyncEngine::new(replica.clone(), client);
        let rounds = Rounds::default();
        let result = engine
            .run_with(
                CancellationToken::new(),
                LoopPolicy::every(Duration::from_millis(1)),
                &rounds,
            )
            .await;
        assert!(matches!(result, Err(SyncError::Unauthorized)), "{result:?}");
        assert_eq!(rounds.seen(), ["unauthorized"]);
    }

    #[tokio::test]
    async fn a_local_edit_wakes_the_loop_even_while_it_backs_off() {
        let replica = replica_with_one_op().await;
        let engine = SyncEngine::new(replica.clone(), unreachable());
        let rounds = Arc::new(Rounds::default());
        let shutdown = CancellationToken::new();
        // A failed round waits at least the interval (5 s) before the next one...
        let policy = LoopPolicy {
            interval: Duration::from_secs(5),
            max_backoff: Duration::from_secs(60),
        };
        let looping = tokio::spawn({
            let (engine, rounds, shutdown) = (engine.clone(), rounds.clone(), shutdown.clone());
            async move { engine.run_with(shutdown, policy, &*rounds).await }
        });
        tokio::time::timeout(Duration::from_secs(5), rounds.1.notified())
            .await
            .expect("a first round");
        assert_eq!(rounds.seen(), ["offline"]);
        // ... unless a local edit asks for one.
        engine.sync_soon();
        tokio::time::timeout(Duration::from_secs(3), rounds.1.notified())
            .await
            .expect("woken at once, not after the backoff");
        assert_eq!(rounds.seen(), ["offline", "offline"]);
        shutdown.cancel();
        let ended = tokio::time::timeout(Duration::from_secs(5), looping)
            .await
            .expect("the loop stops on shutdown")
            .unwrap();
        assert!(ended.is_ok());
        assert_eq!(replica.outbox_len().await.unwrap(), 1);
    }

    #[tokio::test]
    async fn an_unreachable_server_is_offline_and_the_loop_backs_off_until_shutdown() {
        let replica = replica_with_one_op().await;
        let engine = SyncEngine::new(replica.clone(), unreachable());
        let err = engine.sync_once().await.unwrap_err();
        assert!(matches!(err, SyncError::Offline(_)), "{err:?}");
        assert_eq!(replica.outbox_len().await.unwrap(), 1);

        let shutdown = CancellationToken::new();
        let looping = tokio::spawn({
            let engine = engine.clone();
            let shutdown = shutdown.clone();
            async move { engine.run(shutdown, Duration::from_millis(10)).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        shutdown.cancel();
        let ended = tokio::time::timeout(Duration::from_secs(5), looping)
            .await
            .expect("the loop stops on shutdown")
            .unwrap();
        assert!(ended.is_ok());
        assert_eq!(replica.outbox_len().await.unwrap(), 1);
        assert!(replica.status().await.unwrap().last_error.is_some());
    }
}
