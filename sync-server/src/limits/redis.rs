//! Shared limits through Redis. Requests are batched: each of a few batcher tasks owns a
//! multiplexed connection (`ConnectionManager`, which reconnects by itself) and sends everything
//! that queued up while its previous call was in flight as one script call, so under load a
//! single round trip and a single script run serve many requests (the script checks each
//! request's rules atomically, in order). At low load a batch is one request: no added wait.
//!
//! Every request waits at most `redis_timeout_ms`. A failure or timeout marks Redis unhealthy:
//! requests use local limits at once, and a background probe pings Redis and restores shared
//! mode when it answers. Transitions are logged once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use keyward_core::KeyId;
use keyward_core::limit::{Decision, Kind, Outcome};
use prometheus_client::metrics::counter::Counter;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use secrecy::ExposeSecret;
use tokio::sync::{OnceCell, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::KeyLimits;
use crate::config::Config;

static SCRIPT: &str = include_str!("check.lua");

/// Requests per script call at most.
const MAX_BATCH: usize = 128;

/// One request's part of a batch: its keys and arguments, and where its answer goes.
struct Job {
    keys: Vec<String>,
    /// cost, rule count, then 7 values per rule (see check.lua).
    args: Vec<u64>,
    kinds: Vec<&'static str>,
    reply: oneshot::Sender<Option<Vec<i64>>>,
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
    pub fn from_config(config: &Config, counters: RedisCounters) -> Option<RedisLimiter> {
        let url = config.redis_url.as_ref()?;
        let client = match redis::Client::open(url.expose_secret()) {
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
            pool_size: config.redis_pool_size.max(1),
            timeout: Duration::from_millis(config.redis_timeout_ms.max(1)),
            script: Arc::new(redis::Script::new(SCRIPT)),
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

    /// The shared answer, or `None` (Redis failed or was too slow: the caller goes local).
    pub async fn check(
        &self,
        lineage: KeyId,
        limits: &KeyLimits,
        cost: u64,
        now: u64,
    ) -> Option<Outcome> {
        let batchers = self.batchers.get()?;
        let n = limits.rules.len();
        let mut job = Job {
            keys: Vec::with_capacity(n),
            args: Vec::with_capacity(2 + 6 * n),
            kinds: Vec::with_capacity(n),
            reply: oneshot::channel().0,
        };
        job.args.extend([cost, n as u64]);
        for (i, rule) in limits.rules.iter().enumerate() {
            // Counters belong to the rotation lineage and the rule's slot, as in local mode:
            // rotating the key or changing a limit goes on from what was used.
            let (_, window_ms, nth) = keyward_core::limit::slot(&limits.rules, i);
            let (kind, base) = match rule.kind {
                Kind::Rate(a) => (
                    a.as_str(),
                    format!("kw:rl:{lineage}:{}:{window_ms}:{nth}", a.as_str()),
                ),
                Kind::Daily => ("daily", format!("kw:q:{lineage}:d")),
                Kind::Monthly => ("monthly", format!("kw:q:{lineage}:m")),
            };
            let (period, reset, seed) = if rule.is_quota() {
                (
                    rule.window_index(now),
                    rule.peek(0, now, 0).reset_ms,
                    limits.quota_used(i, now),
                )
            } else {
                (0, 0, 0)
            };
            job.keys.push(base);
            job.kinds.push(kind);
            job.args
                .extend([rule.limit, rule.window_ms, rule.burst, period, reset, seed]);
        }
        let (tx, rx) = oneshot::channel();
        job.reply = tx;
        let i = self.next.fetch_add(1, Ordering::Relaxed) % batchers.len();
        if batchers[i].try_send(job).is_err() {
            self.mark_unhealthy("batch queue full");
            return None;
        }
        let values = match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(Some(v))) if v.len() == n * 5 => v,
            Ok(Ok(Some(_))) => {
                self.mark_unhealthy("unexpected script answer");
                return None;
            }
            Ok(Ok(None) | Err(_)) => return None, // the batcher recorded the failure
            Err(_) => {
                self.mark_unhealthy("timed out");
                return None;
            }
        };
        let decisions: Vec<Decision> = values
            .chunks_exact(5)
            .map(|c| Decision {
                allowed: c[0] == 1,
                limit: c[1].max(0) as u64,
                remaining: c[2].max(0) as u64,
                reset_ms: c[3].max(0) as u64,
                retry_after_ms: if c[4] < 0 { u64::MAX } else { c[4] as u64 },
            })
            .collect();
        let outcome =
            Outcome::from_decisions(&limits.rules, &decisions, limits.soft_threshold, cost);
        if outcome.allowed {
            // Keep the local quota state current, so a fallback starts from the shared count.
            for i in [limits.daily, limits.monthly].into_iter().flatten() {
                if let Some(d) = decisions.get(i) {
                    limits.state.raise_to(&limits.rules, i, now, d.used());
                }
            }
        }
        Some(outcome)
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
        let mut call = script.prepare_invoke();
        call.arg(batch.len());
        for job in &batch {
            for k in &job.keys {
                call.key(k);
            }
            let (head, rules) = job.args.split_at(2);
            call.arg(head[0]).arg(head[1]);
            for (kind, values) in job.kinds.iter().zip(rules.chunks_exact(6)) {
                call.arg(*kind);
                for v in values {
                    call.arg(*v);
                }
            }
        }
        counters.calls.inc();
        counters.requests.inc_by(batch.len() as u64);
        let answer = tokio::time::timeout(timeout, call.invoke_async::<Vec<i64>>(&mut conn)).await;
        let want: usize = batch.iter().map(|j| j.kinds.len() * 5).sum();
        match answer {
            Ok(Ok(values)) if values.len() == want => {
                let mut at = 0;
                for job in batch.drain(..) {
                    let n = job.kinds.len() * 5;
                    let _ = job.reply.send(Some(values[at..at + n].to_vec()));
                    at += n;
                }
            }
            other => {
                let why = match other {
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
