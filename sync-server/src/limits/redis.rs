//! Shared limits through Redis. Requests are batched: each of a few batcher tasks owns a
//! multiplexed connection (`ConnectionManager`, which reconnects by itself) and sends everything
//! that queued up while its previous call was in flight as one script call, so under load a
//! single round trip and a single script run serve many requests (the script checks each
//! request's rules atomically, in order). At low load a batch is one request: no added wait.
//! The batch layout is [`super::wire`]'s; time is the node's clock, sent with every request,
//! so a shared check counts in the same windows a local one would (see `wire`).
//!
//! Every request waits at most `KEYWARD_REDIS_TIMEOUT_MS`. A failure or timeout marks Redis
//! unhealthy: requests use local limits at once, and a background probe pings Redis and restores
//! shared mode when it answers. Transitions are logged once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use keyward_core::KeyId;
use keyward_core::limit::{Decision, Outcome};
use prometheus_client::metrics::counter::Counter;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use secrecy::ExposeSecret;
use tokio::sync::{OnceCell, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::KeyLimits;
use super::wire::{self, Request, RuleAnswer};
use crate::config::RedisConfig;

/// Requests per script call at most.
const MAX_BATCH: usize = 128;

/// One request's part of a batch, and where its decisions go.
struct Job {
    request: Request,
    reply: oneshot::Sender<Option<Vec<RuleAnswer>>>,
}

pub struct RedisLimiter {
    client: redis::Client,
    batchers: OnceCell<Vec<mpsc::Sender<Job>>>,
    next: AtomicUsize,
    pool_size: usize,
    timeout: Duration,
    script: Arc<redis::Script>,
    healthy: Arc<AtomicBool>,
    pub counters: RedisCounters,
}

/// What Redis mode counts (shared with `/metrics`).
#[derive(Clone, Default)]
pub struct RedisCounters {
    /// Times this node fell back to local limits.
    pub fallbacks: Counter,
    /// Calls that failed or timed out.
    pub errors: Counter,
    /// Script calls and the requests they carried (requests / calls = mean batch size).
    pub calls: Counter,
    pub requests: Counter,
}

impl RedisLimiter {
    pub fn from_config(config: &RedisConfig, counters: RedisCounters) -> Option<RedisLimiter> {
        let client = match redis::Client::open(config.url.expose_secret()) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "REDIS_URL is not a valid Redis URL; limits stay local");
                return None;
            }
        };
        Some(RedisLimiter {
            client,
            batchers: OnceCell::new(),
            next: AtomicUsize::new(0),
            pool_size: config.pool_size,
            timeout: config.timeout,
            script: Arc::new(redis::Script::new(wire::SCRIPT)),
            healthy: Arc::new(AtomicBool::new(false)),
            counters,
        })
    }

    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    fn mark_unhealthy(&self, why: &str) {
        mark_unhealthy(&self.healthy, &self.counters, why);
    }

    /// The script's answers for the rules of the key whose `wants` entry is set (in rule
    /// order), or `None` (Redis failed or was too slow: the caller goes local). `now` is this
    /// node's clock: the script counts in the windows it names.
    pub async fn check(
        &self,
        lineage: KeyId,
        limits: &KeyLimits,
        cost: u64,
        now: u64,
        wants: &[Option<u64>],
    ) -> Option<Vec<RuleAnswer>> {
        let batchers = self.batchers.get()?;
        let (tx, rx) = oneshot::channel();
        let job = Job {
            request: Request::for_rules(wire::NAMESPACE, lineage, limits, cost, now, wants),
            reply: tx,
        };
        let i = self.next.fetch_add(1, Ordering::Relaxed) % batchers.len();
        if batchers[i].try_send(job).is_err() {
            self.mark_unhealthy("batch queue full");
            return None;
        }
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(answers)) => answers, // None: the batcher recorded the failure
            Ok(Err(_)) => None,
            Err(_) => {
                self.mark_unhealthy("timed out");
                None
            }
        }
    }

    /// Opens the connections and starts one batcher per connection (once).
    async fn connect(&self) -> redis::RedisResult<()> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout.max(Duration::from_millis(500))))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let mut conns = Vec::with_capacity(self.pool_size);
        for _ in 0..self.pool_size {
            conns.push(
                ConnectionManager::new_with_config(self.client.clone(), config.clone()).await?,
            );
        }
        let senders = conns
            .into_iter()
            .map(|conn| {
                let (tx, rx) = mpsc::channel(4096);
                tokio::spawn(run_batcher(
                    rx,
                    conn,
                    self.script.clone(),
                    self.timeout,
                    self.healthy.clone(),
                    self.counters.clone(),
                ));
                tx
            })
            .collect();
        let _ = self.batchers.set(senders);
        Ok(())
    }

    async fn ping(&self) -> bool {
        if self.batchers.get().is_none() && self.connect().await.is_err() {
            return false;
        }
        let Ok(mut conn) = tokio::time::timeout(
            self.timeout.max(Duration::from_millis(500)),
            self.client.get_multiplexed_async_connection(),
        )
        .await
        .map_err(|_| ())
        .and_then(|c| c.map_err(|_| ())) else {
            return false;
        };
        let pong = tokio::time::timeout(self.timeout.max(Duration::from_millis(200)), async {
            self.script.prepare_invoke().load_async(&mut conn).await?;
            redis::cmd("PING").query_async::<String>(&mut conn).await
        })
        .await;
        matches!(pong, Ok(Ok(_)))
    }
}

fn mark_unhealthy(healthy: &AtomicBool, counters: &RedisCounters, why: &str) {
    counters.errors.inc();
    if healthy.swap(false, Ordering::AcqRel) {
        counters.fallbacks.inc();
        tracing::warn!(
            reason = why,
            "Redis unavailable: falling back to local limits"
        );
    }
}

/// The outcome of a key's check from the script's decisions (the same rules as a local check:
/// a refusal consumed nothing), with the key's local quota counts raised to the shared ones so
/// a fallback starts from them.
pub(super) fn shared_outcome(
    limits: &KeyLimits,
    decisions: &[Decision],
    cost: u64,
    now: u64,
) -> Outcome {
    let outcome = Outcome::from_decisions(&limits.rules, decisions, limits.soft_threshold, cost);
    if outcome.allowed {
        for i in [limits.daily, limits.monthly].into_iter().flatten() {
            if let Some(d) = decisions.get(i) {
                limits.state.raise_to(&limits.rules, i, now, d.used());
            }
        }
    }
    outcome
}

/// Sends whatever queued up as one script call, answers each request, repeats.
async fn run_batcher(
    mut rx: mpsc::Receiver<Job>,
    mut conn: ConnectionManager,
    script: Arc<redis::Script>,
    timeout: Duration,
    healthy: Arc<AtomicBool>,
    counters: RedisCounters,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let requests: Vec<&Request> = batch.iter().map(|j| &j.request).collect();
        let call = wire::invocation(&script, &requests);
        counters.calls.inc();
        counters.requests.inc_by(batch.len() as u64);
        let answer = tokio::time::timeout(timeout, call.invoke_async::<Vec<i64>>(&mut conn)).await;
        let decoded = match &answer {
            Ok(Ok(values)) => wire::decode(values, &requests),
            _ => None,
        };
        drop(requests);
        match decoded {
            Some(decisions) => {
                for (job, d) in batch.drain(..).zip(decisions) {
                    let _ = job.reply.send(Some(d));
                }
            }
            None => {
                let why = match answer {
                    Ok(Err(e)) => e.to_string(),
                    Err(_) => "timed out".to_owned(),
                    Ok(Ok(_)) => "unexpected script answer".to_owned(),
                };
                mark_unhealthy(&healthy, &counters, &why);
                for job in batch.drain(..) {
                    let _ = job.reply.send(None);
                }
            }
        }
    }
}

/// Connects, then watches: while Redis is unhealthy, pings it every `interval` and restores
/// shared mode when it answers.
pub async fn run_probe(
    limiter: Arc<super::Limiter>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let Some(redis) = limiter.redis() else { return };
    let mut logged_down = false;
    loop {
        if !redis.healthy() {
            if redis.ping().await {
                redis.healthy.store(true, Ordering::Release);
                tracing::info!("Redis reachable: limits are shared across nodes");
                logged_down = false;
            } else if !logged_down {
                tracing::warn!("Redis unreachable: limits are local to this node until it returns");
                logged_down = true;
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}
