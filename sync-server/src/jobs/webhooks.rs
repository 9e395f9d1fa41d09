//! The webhook delivery worker: claims due deliveries from the outbox ([`crate::webhooks`]),
//! sends them signed, retries with backoff and logs every attempt.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::StreamExt;
use ipnet::IpNet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use rand::RngCore;
use rand::rngs::OsRng;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::WebhooksConfig;
use crate::metrics::ResultLabel;
use crate::store::now_micros;
use crate::store::webhooks::{self as store, Attempt, Claimed, Next};
use crate::webhooks::destinations::{delivery_client, find_refused, literal_refused};
use crate::webhooks::{CHANNEL, Keyring, sign};

/// Deliveries one node sends at once.
const CONCURRENCY: usize = 16;
/// Growth of the retry delay per attempt.
const BACKOFF_FACTOR: u64 = 6;
/// No retry waits longer than this.
const MAX_RETRY_DELAY_MS: u64 = 24 * 3600 * 1000;
/// The longest error text kept per attempt.
const ERROR_MAX_CHARS: usize = 500;

/// The worker's settings, from [`WebhooksConfig`].
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub keyring: Keyring,
    pub retry_base: Duration,
    pub max_attempts: u32,
    pub timeout: Duration,
    pub poll_interval: Duration,
    /// Settled deliveries and events older than this many days are deleted.
    pub retention_days: u64,
    /// Networks outside the public internet that deliveries may still reach.
    pub allowed_networks: Arc<[IpNet]>,
    /// Deliveries of one organisation in flight at once on this node.
    pub max_in_flight_per_org: usize,
    /// Attempts by result, for `/metrics`.
    pub attempts: Family<ResultLabel, Counter>,
}

impl WorkerConfig {
    pub fn from_config(config: &WebhooksConfig) -> WorkerConfig {
        WorkerConfig {
            keyring: Keyring::new(config.key.clone()),
            retry_base: config.retry_base,
            max_attempts: config.max_attempts,
            timeout: config.timeout,
            poll_interval: config.poll_interval,
            retention_days: config.retention.as_secs() / 86_400,
            allowed_networks: config.allowed_networks.clone().into(),
            max_in_flight_per_org: config.max_in_flight_per_org.min(CONCURRENCY),
            attempts: Family::default(),
        }
    }
}

/// The delay before the attempt after attempt `n` (1-based): base × 6^(n-1), at most a day, plus
/// up to 10% jitter so that retries of many deliveries spread out.
pub fn retry_delay(base: Duration, n: u32) -> Duration {
    let base_ms = u64::try_from(base.as_millis()).unwrap_or(u64::MAX);
    let factor = BACKOFF_FACTOR.saturating_pow(n.saturating_sub(1));
    let ms = base_ms.saturating_mul(factor).min(MAX_RETRY_DELAY_MS);
    let jitter = if ms >= 10 {
        OsRng.next_u64() % (ms / 10)
    } else {
        0
    };
    Duration::from_millis(ms + jitter)
}

/// What an attempt's outcome says: the HTTP status (when there was an answer) and the error.
fn describe(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("timed out after {} ms", timeout.as_millis());
    }
    let kind = if e.is_connect() {
        "connection failed"
    } else if e.is_redirect() {
        "redirect refused"
    } else {
        "request failed"
    };
    // The URL may carry a token in its path: it is left out of the text.
    let mut text = kind.to_owned();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text.chars().take(ERROR_MAX_CHARS).collect()
}

/// Why an attempt got no answer.
enum SendError {
    /// The destination is not one webhooks may reach: logged as refused, never retried.
    Refused(String),
    Failed(String),
}

struct Worker {
    pool: PgPool,
    config: WorkerConfig,
    http: reqwest::Client,
}

/// Delivers due webhooks until `shutdown`: every `poll_interval`, when this or another node
/// enqueues (LISTEN on [`CHANNEL`]), when a retry falls due and whenever a send finishes and
/// frees its slot. At most [`CONCURRENCY`] sends run at once, and at most
/// `max_in_flight_per_org` of them for one organisation, so a tenant whose endpoints hang until
/// the timeout holds a few slots, never all of them.
pub async fn run_worker(pool: PgPool, config: WorkerConfig, shutdown: CancellationToken) {
    let http = match delivery_client(config.timeout, &config.allowed_networks) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "webhook worker: cannot build an HTTP client");
            return;
        }
    };
    if config.keyring.config_key.is_none() {
        tracing::info!(
            "KEYWARD_WEBHOOK_KEY is not set: webhook secrets are encrypted with a key kept in the \
             database; set it in production"
        );
    }
    let wake = Arc::new(Notify::new());
    let listener = tokio::spawn(listen(pool.clone(), wake.clone(), shutdown.clone()));
    let worker = Worker { pool, config, http };
    worker.run(&wake, &shutdown).await;
    let _ = listener.await;
}

/// Turns `NOTIFY keyward_webhooks` (sent when an enqueueing transaction commits, on any node)
/// into a wake-up of this node's worker. Polling covers the gaps while it reconnects.
async fn listen(pool: PgPool, wake: Arc<Notify>, shutdown: CancellationToken) {
    loop {
        let connected = async {
            let mut l = PgListener::connect_with(&pool).await?;
            l.listen(CHANNEL).await?;
            Ok::<_, sqlx::Error>(l)
        };
        let mut listener = tokio::select! {
            _ = shutdown.cancelled() => return,
            l = connected => match l {
                Ok(l) => l,
                Err(e) => {
                    tracing::debug!(error = %e, "webhook listener cannot connect; polling");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(5)) => continue,
                    }
                }
            },
        };
        // A reconnect may have missed notifications: look once.
        wake.notify_one();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                n = listener.try_recv() => match n {
                    Ok(Some(_)) => wake.notify_one(),
                    // The connection dropped; try_recv reconnects on the next call.
                    Ok(None) => wake.notify_one(),
                    Err(e) => {
                        tracing::debug!(error = %e, "webhook listener lost its connection");
                        break;
                    }
                },
            }
        }
    }
}

impl Worker {
    async fn run(&self, wake: &Notify, shutdown: &CancellationToken) {
        let mut sending = futures::stream::FuturesUnordered::new();
        // Claims being sent, with their organisation: the per-org counts, and what to give back
        // if the node stops mid-send.
        let mut claims: HashMap<(Uuid, i32), Uuid> = HashMap::new();
        let mut last_retention: Option<Instant> = None;
        loop {
            let free = CONCURRENCY - sending.len();
            // Claim when a quarter of the slots are free (or all), not once per finished send.
            let mut idle_wait = None;
            if free > 0 && (free >= CONCURRENCY / 4 || sending.is_empty()) {
                match self.claim(free, &claims).await {
                    Ok(batch) => {
                        let short = batch.len() < free;
                        for d in batch {
                            claims.insert((d.id, d.attempts), d.org_id);
                            sending.push(self.attempt(d));
                        }
                        if short {
                            idle_wait = Some(self.next_wait(!sending.is_empty()).await);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "claiming webhook deliveries failed");
                        idle_wait = Some(self.config.poll_interval);
                    }
                }
            }
            if shutdown.is_cancelled() {
                break;
            }
            if last_retention.is_none_or(|t| t.elapsed() >= Duration::from_secs(3600)) {
                last_retention = Some(Instant::now());
                self.retention().await;
            }
            // With every slot busy, only a finished send (or the end) matters.
            let wait = idle_wait.unwrap_or(Duration::MAX);
            tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(claim) = sending.next(), if !sending.is_empty() => {
                    claims.remove(&claim);
                }
                _ = wake.notified(), if idle_wait.is_some() => {}
                _ = tokio::time::sleep(wait), if idle_wait.is_some() => {}
            }
        }
        drop(sending);
        // Sends cut short by the stop are due again at once, for whichever node runs next.
        if !claims.is_empty() {
            let unsent: Vec<(Uuid, i32)> = claims.into_keys().collect();
            let released = match self.pool.acquire().await {
                Ok(mut conn) => store::release(&mut conn, &unsent).await,
                Err(e) => Err(e),
            };
            if let Err(e) = released {
                tracing::warn!(error = %e, "releasing unsent webhook deliveries failed");
            }
        }
    }

    /// Claims up to `free` due deliveries, at most `max_in_flight_per_org` per organisation
    /// counting the ones already being sent.
    async fn claim(
        &self,
        free: usize,
        claims: &HashMap<(Uuid, i32), Uuid>,
    ) -> Result<Vec<Claimed>, sqlx::Error> {
        let mut busy: HashMap<Uuid, i32> = HashMap::new();
        for org in claims.values() {
            *busy.entry(*org).or_default() += 1;
        }
        let busy: Vec<(Uuid, i32)> = busy.into_iter().collect();
        let lease_ms = u64::try_from(self.config.timeout.as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(30_000);
        store::claim_due(
            &mut *self.pool.acquire().await?,
            u32::try_from(free).unwrap_or(u32::MAX),
            lease_ms,
            i32::try_from(self.config.max_in_flight_per_org).unwrap_or(i32::MAX),
            &busy,
        )
        .await
    }

    /// How long to wait when nothing more could be claimed: until the next pending delivery is
    /// due, at most the poll interval; while sends run, at least 100 ms (due rows of an
    /// organisation at its cap would otherwise wake the loop at once).
    async fn next_wait(&self, sending: bool) -> Duration {
        let due = match self.pool.acquire().await {
            Ok(mut conn) => store::next_due_ms(&mut conn).await.ok().flatten(),
            Err(_) => None,
        };
        let wait = due.map_or(self.config.poll_interval, |ms| {
            self.config.poll_interval.min(Duration::from_millis(ms))
        });
        if sending {
            wait.max(Duration::from_millis(100))
        } else {
            wait
        }
    }

    /// One attempt of one delivery, recorded; returns the delivery's claim.
    async fn attempt(&self, d: Claimed) -> (Uuid, i32) {
        let claim = (d.id, d.attempts);
        let n = d.attempts + 1;
        let at = now_micros();
        let started = Instant::now();
        let mut refused = false;
        let (http_status, error) = match self.send(&d).await {
            Ok(status) if (200..300).contains(&status) => (Some(i32::from(status)), None),
            Ok(status) => (
                Some(i32::from(status)),
                Some(format!("the endpoint answered HTTP {status}")),
            ),
            Err(SendError::Refused(why)) => {
                refused = true;
                (None, Some(why))
            }
            Err(SendError::Failed(error)) => (None, Some(error)),
        };
        let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let next = if error.is_none() {
            Next::Delivered
        } else if refused || u32::try_from(n).unwrap_or(u32::MAX) >= self.config.max_attempts {
            Next::Failed
        } else {
            let delay = retry_delay(self.config.retry_base, u32::try_from(n).unwrap_or(1));
            Next::RetryInMs(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX))
        };
        let attempt = Attempt {
            delivery_id: d.id,
            attempt: n,
            at,
            http_status,
            error: error.as_deref(),
            duration_ms,
            next,
        };
        let recorded = async {
            let mut tx = self.pool.begin().await?;
            let recorded = store::record_attempt(&mut tx, &attempt).await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(recorded)
        }
        .await;
        match recorded {
            Ok(true) => {}
            Ok(false) => {
                tracing::debug!(delivery = %d.id, "webhook attempt already recorded elsewhere")
            }
            Err(e) => {
                tracing::warn!(delivery = %d.id, error = %e, "recording a webhook attempt failed")
            }
        }
        let result = match next {
            _ if refused => "refused",
            Next::Delivered => "delivered",
            Next::RetryInMs(_) => "retry",
            Next::Failed => "failed",
        };
        self.config
            .attempts
            .get_or_create(&ResultLabel { result })
            .inc();
        match next {
            Next::Delivered => tracing::debug!(
                delivery = %d.id, endpoint = %d.endpoint_id, message_id = %d.message_id,
                attempt = n, status = http_status, duration_ms, "webhook delivered"
            ),
            Next::RetryInMs(ms) => tracing::info!(
                delivery = %d.id, endpoint = %d.endpoint_id, message_id = %d.message_id,
                attempt = n, status = http_status, error = error.as_deref(), retry_in_ms = ms,
                "webhook attempt failed; will retry"
            ),
            Next::Failed => tracing::warn!(
                delivery = %d.id, endpoint = %d.endpoint_id, message_id = %d.message_id,
                attempt = n, status = http_status, error = error.as_deref(),
                "webhook delivery failed; no more retries"
            ),
        }
        claim
    }

    /// POSTs the delivery; the endpoint's status, or why there was none.
    async fn send(&self, d: &Claimed) -> Result<u16, SendError> {
        if let Some(refused) = literal_refused(&d.url, &self.config.allowed_networks) {
            return Err(SendError::Refused(refused.to_string()));
        }
        let secret = {
            let mut conn = self
                .pool
                .acquire()
                .await
                .map_err(|_| SendError::Failed("the database was unavailable".to_owned()))?;
            self.config
                .keyring
                .open(&mut conn, d)
                .await
                .map_err(SendError::Failed)?
        };
        let timestamp = Utc::now().timestamp();
        let signature = sign(&secret, &d.message_id, timestamp, &d.body);
        let res = self
            .http
            .post(&d.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", &d.message_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(d.body.clone())
            .send()
            .await
            .map_err(|e| match find_refused(&e) {
                Some(why) => SendError::Refused(why),
                None => SendError::Failed(describe(&e, self.config.timeout)),
            })?;
        Ok(res.status().as_u16())
    }

    async fn retention(&self) {
        let deleted = match self.pool.acquire().await {
            Ok(mut conn) => store::delete_settled(&mut conn, self.config.retention_days).await,
            Err(e) => Err(e),
        };
        match deleted {
            Ok(n) if n > 0 => tracing::info!(deliveries = n, "old webhook deliveries deleted"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "webhook retention failed"),
        }
        // The event log keeps the same horizon as the deliveries of its events.
        let pruned = match self.pool.acquire().await {
            Ok(mut conn) => {
                crate::store::events::prune(&mut conn, self.config.retention_days).await
            }
            Err(e) => Err(e),
        };
        match pruned {
            Ok(n) if n > 0 => tracing::info!(events = n, "old events deleted"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "event log retention failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_sixfold() {
        let base = Duration::from_millis(5000);
        let ms = |n| retry_delay(base, n).as_millis() as u64;
        assert!((5000..5500).contains(&ms(1)));
        assert!((30_000..33_000).contains(&ms(2)));
        assert!((180_000..198_000).contains(&ms(3)));
        assert!(ms(40) <= MAX_RETRY_DELAY_MS * 11 / 10);
    }
}
