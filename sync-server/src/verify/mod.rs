//! The verification pipeline shared by `/v1/whoami`, `/v1/verify` and (later) the gateway:
//!
//! parse + checksum → key record from the cache (ids that exist nowhere refused by the filter of
//! known ids, [`known`]; Postgres on a miss; unknown ids remembered briefly; while the database
//! cannot be reached, records verified within the fail-static window answer from memory) → secret: SHA-256 digest compared in constant time once argon2 has accepted the
//! token on this node, argon2 otherwise (bounded, coalesced per key id, throttled on failure)
//! → state, client address, scope.

pub(crate) mod hasher;
pub(crate) mod key;
pub(crate) mod known;
mod secret;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use keyward_core::api::VerifyCode;
use keyward_core::{ApiKeyToken, KeyId, Scope};
use moka::Expiry;
use moka::sync::Cache;
use secrecy::ExposeSecret;
use sqlx::PgPool;

use crate::config::Config;
use crate::error::database_unreachable;
use crate::limits::{LimitSource, Limiter};
use crate::metrics::{Metrics, ReasonLabel, VerifyCounters};
use crate::store;
use crate::throttle::FailureWindow;
use crate::usage::{Unrecognized, UsageRecorder};
pub use hasher::{Hasher, Overloaded};
pub use key::KeyRecord;
use known::{KnownIds, Membership};
use prometheus_client::metrics::counter::Counter;
use secret::SlowLane;

/// The answer for a well-formed request.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub code: VerifyCode,
    /// Present once the caller proved it holds the key's secret.
    pub key: Option<Arc<KeyRecord>>,
    /// The limits' answer, for a key with limits that passed every other check.
    pub limits: Option<keyward_core::limit::Outcome>,
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("too many failed checks of this key; retry in {retry_after_secs} s")]
    Throttled { retry_after_secs: u64 },
    #[error(transparent)]
    Overloaded(#[from] Overloaded),
    #[error("key store unavailable: {0}")]
    Store(#[from] sqlx::Error),
    #[error(transparent)]
    Corrupt(#[from] key::CorruptKey),
}

type Record = Option<Arc<KeyRecord>>;

/// A cached record and when it was read from the database.
#[derive(Clone)]
struct Entry {
    record: Record,
    loaded: Instant,
}

impl Entry {
    /// Whether a cache hit may answer without reloading. A found key's entry is kept
    /// `fail_static` longer than it is fresh, so that a database outage still finds it (see
    /// [`Verifier::fail_static_record`]); an absent key's entry expires when it goes stale.
    fn fresh(&self, ttl: Duration) -> bool {
        self.record.is_none() || self.loaded.elapsed() <= ttl
    }
}

pub struct Verifier {
    pool: PgPool,
    records: Cache<KeyId, Entry>,
    /// How long a found key's cached record answers without a reload (`KEYWARD_KEY_CACHE_TTL_SECS`).
    record_ttl: Duration,
    /// The key ids that exist ([`known`]).
    known: KnownIds,
    /// How long after it was last known current a record still answers while the database
    /// cannot be reached (`KEYWARD_FAIL_STATIC_SECS`; zero: never).
    fail_static: Duration,
    /// When the change feed was lost: records cached before then were current until then.
    feed_lost_at: std::sync::Mutex<Option<Instant>>,
    /// Until when (ms since `epoch`) the database is taken as unreachable, so calls with a
    /// fail-static record answer at once instead of waiting for the pool.
    db_down_until: AtomicU64,
    epoch: Instant,
    /// Digests argon2 has accepted, kept across record reloads so a settings change does not
    /// send a busy key back through argon2.
    digests: Cache<KeyId, [u8; 32]>,
    /// One loader and one argon2 run at a time per key id.
    cold_locks: Cache<KeyId, Arc<tokio::sync::Mutex<()>>>,
    /// Failed cold checks per key id and client network ([`keyward_core::ip::client_net`]).
    cold_failures: FailureWindow<(KeyId, Option<IpAddr>)>,
    /// The slow lane of throttled key ids and client networks, see [`Self::slow_lane`].
    slow_lanes: Cache<KeyId, Arc<SlowLane>>,
    hasher: Hasher,
    usage: Arc<UsageRecorder>,
    /// Off only to measure what recording costs (`KEYWARD_USAGE_RECORDING=false`).
    record_usage: bool,
    pub limiter: Arc<Limiter>,
    /// Invalidation bookkeeping that closes the load/invalidate race, see [`Self::load`].
    clock: AtomicU64,
    invalidated: Cache<KeyId, u64>,
    invalidated_all: AtomicU64,
    /// False while the change feed is down: the cache may be stale, so records are re-read.
    feed_live: AtomicBool,
    counters: VerifyCounters,
    /// Per [`Unrecognized`] reason, in declaration order.
    unrecognized: Vec<Counter>,
    /// The fast verifier's key (`KEYWARD_VERIFIER_KEY`): known-good tokens skip argon2 on
    /// every node, after restarts too.
    fast: Option<keyward_core::verifier::VerifierKey>,
}

struct RecordExpiry {
    positive: Duration,
    negative: Duration,
}

impl Expiry<KeyId, Entry> for RecordExpiry {
    fn expire_after_create(&self, _: &KeyId, value: &Entry, _: Instant) -> Option<Duration> {
        Some(if value.record.is_some() {
            self.positive
        } else {
            self.negative
        })
    }
}

impl Verifier {
    pub fn new(
        pool: PgPool,
        config: &Config,
        hasher: Hasher,
        usage: Arc<UsageRecorder>,
        limiter: Arc<Limiter>,
    ) -> Self {
        let capacity = config.cache.capacity;
        let record_ttl = config.cache.ttl;
        let fail_static = config.cache.fail_static;
        Verifier {
            pool,
            records: Cache::builder()
                .max_capacity(capacity)
                .expire_after(RecordExpiry {
                    // Past its freshness a found key's record stays for the fail-static window:
                    // an outage that begins just after it went stale still finds it.
                    positive: record_ttl + fail_static,
                    negative: config.cache.negative_ttl,
                })
                .build(),
            record_ttl,
            known: KnownIds::new(config.keys.filter),
            fail_static,
            feed_lost_at: std::sync::Mutex::new(None),
            db_down_until: AtomicU64::new(0),
            epoch: Instant::now(),
            digests: Cache::builder()
                .max_capacity(capacity)
                .time_to_idle(Duration::from_secs(3600))
                .build(),
            cold_locks: Cache::builder()
                .max_capacity(capacity)
                .time_to_idle(Duration::from_secs(60))
                .build(),
            cold_failures: FailureWindow::new(
                config.cold_failures.per_window,
                config.cold_failures.window,
                capacity,
            ),
            slow_lanes: Cache::builder()
                .max_capacity(capacity)
                .time_to_idle(Duration::from_secs(600))
                .build(),
            hasher,
            usage,
            record_usage: config.usage.recording,
            limiter,
            clock: AtomicU64::new(1),
            invalidated: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(Duration::from_secs(60))
                .build(),
            invalidated_all: AtomicU64::new(0),
            feed_live: AtomicBool::new(false),
            counters: VerifyCounters::default(),
            unrecognized: Vec::new(),
            fast: config
                .verifier_key
                .as_ref()
                .map(|key| keyward_core::verifier::VerifierKey::new(*key.expose_secret())),
        }
    }

    /// Counts outcomes, cache hits and unrecognized keys into `/metrics`.
    pub fn with_metrics(mut self, metrics: &Metrics) -> Self {
        self.counters = metrics.verify_counters();
        self.unrecognized = [
            Unrecognized::Missing,
            Unrecognized::Malformed,
            Unrecognized::Unknown,
        ]
        .iter()
        .map(|r| {
            metrics
                .unrecognized_keys
                .get_or_create(&ReasonLabel { reason: r.as_str() })
                .clone()
        })
        .collect();
        self
    }

    /// Verifies `token`, applies the key's limits (consuming `cost` units when every check
    /// passes) and records the outcome against the key when the key is known.
    pub async fn verify(
        &self,
        token: &str,
        scope: Option<&Scope>,
        client_ip: Option<IpAddr>,
        cost: u64,
        now: DateTime<Utc>,
    ) -> Result<Verdict, VerifyError> {
        let not_found = Verdict {
            code: VerifyCode::NotFound,
            key: None,
            limits: None,
        };
        let Ok(parsed) = ApiKeyToken::parse(token) else {
            self.unrecognized(Unrecognized::Malformed, now);
            return Ok(not_found);
        };
        let Some(key) = self.record(parsed.key_id, now).await? else {
            self.unrecognized(Unrecognized::Unknown, now);
            return Ok(not_found);
        };
        // From here the key names its organisation: refusals count against the key.
        if key.environment != parsed.environment {
            self.count(VerifyCode::NotFound);
            if self.record_usage {
                self.usage
                    .record(key.id, key.org_id, "not_found", now, client_ip);
            }
            return Ok(not_found);
        }
        if !self.secret_matches(&key, parsed.raw(), client_ip).await? {
            self.count(VerifyCode::NotFound);
            if self.record_usage {
                self.usage
                    .record(key.id, key.org_id, "invalid_secret", now, client_ip);
            }
            return Ok(not_found);
        }
        let mut code = key.decide(now, scope, client_ip);
        let mut outcome = None;
        if code == VerifyCode::Valid
            && let Some(limits) = &key.limits
        {
            let o = if self.limiter.shared() {
                self.limiter.check(key.lineage_id, limits, cost, now).await
            } else {
                Limiter::check_local(limits, cost, now)
            };
            if !o.allowed {
                code = crate::limits::refusal_code(limits, &o);
                self.limiter.count_refusal(code);
            }
            self.usage.record_limits(
                crate::usage::CountedKey {
                    id: key.id,
                    org_id: key.org_id,
                    lineage_id: key.lineage_id,
                },
                limits,
                &o,
                cost,
                now,
            );
            outcome = Some(o);
        }
        self.count(code);
        if self.record_usage {
            self.usage
                .record(key.id, key.org_id, code.as_str(), now, client_ip);
        }
        Ok(Verdict {
            code,
            key: Some(key),
            limits: outcome,
        })
    }

    fn count(&self, code: VerifyCode) {
        if let Some(c) = self.counters.outcome(code) {
            c.inc();
        }
    }

    /// A call whose key names no organisation: counted globally (metrics and hourly rows).
    pub fn unrecognized(&self, reason: Unrecognized, now: DateTime<Utc>) {
        self.count(VerifyCode::NotFound);
        if let Some(c) = self.unrecognized.get(reason as usize) {
            c.inc();
        }
        if self.record_usage {
            self.usage.record_unrecognized(reason, now);
        }
    }

    async fn record(&self, id: KeyId, now: DateTime<Utc>) -> Result<Record, VerifyError> {
        let live = self.feed_live.load(Ordering::Acquire);
        if live
            && let Some(hit) = self.records.get(&id)
            && hit.fresh(self.record_ttl)
        {
            self.counters.cache_hits.inc();
            self.counters.lookups.cache.inc();
            return Ok(hit.record);
        }
        match self.known.check(id, now) {
            Membership::Absent => {
                self.counters.lookups.filtered.inc();
                return Ok(None);
            }
            Membership::Recent if !self.known.admit_recent() => {
                self.counters.lookups.deferred.inc();
                return Ok(None);
            }
            Membership::Maybe | Membership::Recent | Membership::Unknown => {}
        }
        let lock = self.cold_locks.get_with(id, Default::default);
        let _guard = lock.lock().await;
        if live
            && let Some(hit) = self.records.get(&id)
            && hit.fresh(self.record_ttl)
        {
            self.counters.cache_hits.inc();
            self.counters.lookups.cache.inc();
            return Ok(hit.record);
        }
        let fallback = self.fail_static_record(id);
        if fallback.is_some() && self.db_known_down() {
            self.counters.lookups.stale.inc();
            return Ok(fallback.flatten());
        }
        self.counters.cache_misses.inc();
        let loaded = match fallback {
            // With an answer in hand, a database that does not answer promptly is taken as away.
            Some(_) => tokio::time::timeout(FAIL_STATIC_PROBE, self.load(id))
                .await
                .unwrap_or(Err(VerifyError::Store(sqlx::Error::PoolTimedOut))),
            None => self.load(id).await,
        };
        match loaded {
            Err(VerifyError::Store(e)) if database_unreachable(&e) => {
                self.db_down();
                match fallback {
                    Some(record) => {
                        self.counters.lookups.stale.inc();
                        Ok(record)
                    }
                    None => {
                        self.counters.lookups.unavailable.inc();
                        Err(VerifyError::Store(e))
                    }
                }
            }
            Ok(record) => {
                let lookups = &self.counters.lookups;
                match &record {
                    Some(_) => lookups.database_found.inc(),
                    None => lookups.database_absent.inc(),
                };
                Ok(record)
            }
            other => other,
        }
    }

    /// The record to answer with while the database cannot be reached: the cached one, if it was
    /// known current within the fail-static window. A record cached while the change feed was
    /// live was current until the feed was lost; one loaded since, until it was loaded.
    fn fail_static_record(&self, id: KeyId) -> Option<Record> {
        if self.fail_static.is_zero() {
            return None;
        }
        let entry = self.records.get(&id)?;
        let lost = *self.feed_lost_at.lock().unwrap_or_else(|p| p.into_inner());
        let current_at = lost.map_or(entry.loaded, |lost| lost.max(entry.loaded));
        (current_at.elapsed() <= self.fail_static).then_some(entry.record)
    }

    fn db_known_down(&self) -> bool {
        (self.epoch.elapsed().as_millis() as u64) < self.db_down_until.load(Ordering::Relaxed)
    }

    fn db_down(&self) {
        let until = (self.epoch.elapsed() + DB_DOWN_HOLD).as_millis() as u64;
        self.db_down_until.store(until, Ordering::Relaxed);
    }

    /// The change feed (LISTEN/NOTIFY) is connected again: the filter of known ids is reloaded
    /// (after LISTEN, so nothing created since is missed), every cached record is dropped (any
    /// of them may have changed unseen) and the cache is trusted again.
    pub async fn feed_connected(&self) -> Result<u64, sqlx::Error> {
        let ids = self.known.reload(&self.pool).await?;
        self.invalidate_all();
        *self.feed_lost_at.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.db_down_until.store(0, Ordering::Relaxed);
        self.feed_live.store(true, Ordering::Release);
        Ok(ids)
    }

    /// The change feed is lost: cached records are no longer trusted while the database answers
    /// (they are re-read), but stay for the fail-static window in case it does not; the filter
    /// of known ids may miss new keys from now on, so it is dropped.
    pub fn feed_lost(&self) {
        self.feed_live.store(false, Ordering::Release);
        let mut lost = self.feed_lost_at.lock().unwrap_or_else(|p| p.into_inner());
        lost.get_or_insert_with(Instant::now);
        self.known.clear();
    }

    /// Whether the filter of known ids has outgrown its size (the listener reloads it).
    pub fn known_ids_outgrown(&self) -> bool {
        self.known.needs_reload()
    }

    /// Reloads the filter of known ids.
    pub async fn reload_known_ids(&self) -> Result<u64, sqlx::Error> {
        self.known.reload(&self.pool).await
    }

    /// Key ids in the filter (0 while it is not loaded).
    pub fn known_ids(&self) -> u64 {
        self.known.loaded_ids()
    }

    /// Loads a record and caches it, unless it was invalidated while the query ran: the insert
    /// happens first and the check after, so an invalidation can never be overtaken by a load
    /// that read the old row.
    async fn load(&self, id: KeyId) -> Result<Record, VerifyError> {
        let started = self.clock.fetch_add(1, Ordering::SeqCst);
        let record = match store::keys::find_for_verify(&self.pool, id).await? {
            Some(row) => {
                let source = LimitSource {
                    key_rules: row.key.rate_limits.as_ref().map(|r| r.0.clone()),
                    key_quota: row.key.quota.as_ref().map(|q| q.0.clone()),
                    tier_rules: row.tier_rate_limits.map(|r| r.0),
                    tier_quota: row.tier_quota.map(|q| q.0),
                    tier_soft_threshold: row.tier_soft_threshold,
                    used_today: row.used_today.unwrap_or(0),
                    used_this_month: row.used_this_month.unwrap_or(0),
                };
                let lineage = KeyId::from_uuid(row.key.lineage_id);
                let limits = self.limiter.build(lineage, source, Utc::now());
                let mut key = KeyRecord::from_row(row.key, limits)?;
                key.verifier = row.verifier;
                Some(Arc::new(key))
            }
            None => None,
        };
        if record.is_some() {
            self.known.insert(id);
        }
        self.records.insert(
            id,
            Entry {
                record: record.clone(),
                loaded: Instant::now(),
            },
        );
        let stale = self.invalidated.get(&id).is_some_and(|at| at >= started)
            || self.invalidated_all.load(Ordering::SeqCst) >= started;
        if stale {
            self.records.invalidate(&id);
        }
        Ok(record)
    }

    /// Drops a key's cached record (after a change on any node).
    pub fn invalidate(&self, id: KeyId) {
        // Creations are announced the same way: the id exists.
        self.known.insert(id);
        let now = self.clock.fetch_add(1, Ordering::SeqCst);
        self.invalidated.insert(id, now);
        self.records.invalidate(&id);
    }

    /// The record of a key, loaded when not cached.
    pub async fn key(&self, id: KeyId) -> Result<Option<Arc<KeyRecord>>, VerifyError> {
        self.record(id, Utc::now()).await
    }

    /// Drops every cached record (the change feed was interrupted).
    pub fn invalidate_all(&self) {
        let now = self.clock.fetch_add(1, Ordering::SeqCst);
        self.invalidated_all.store(now, Ordering::SeqCst);
        self.records.invalidate_all();
    }
}

/// How long a lookup with a fail-static answer in hand waits for the database.
const FAIL_STATIC_PROBE: Duration = Duration::from_millis(500);
/// After the database failed to answer, how long calls with a fail-static answer skip it.
const DB_DOWN_HOLD: Duration = Duration::from_secs(1);
