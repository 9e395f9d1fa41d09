//! Usage counting off the request path: each verification adds one to an in-memory counter per
//! (key, minute, outcome); a background task swaps the map out about once a second and writes
//! it to Postgres in one statement. A failed write is merged back and retried, and shutdown
//! flushes what is left, so counts are neither lost nor written twice.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Datelike, DurationRound, NaiveDate, TimeDelta, Utc};
use ipnet::IpNet;
use keyward_core::anomaly::network_of;
use keyward_core::latency::{Histogram, route_group};
use keyward_core::limit::{Kind, Outcome};
use keyward_core::{KeyId, OrgId};
use prometheus_client::metrics::counter::Counter;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::limits::{KeyLimits, now_ms};
use crate::store;
use crate::store::usage::QuotaKey;
use crate::verify::KeyRecord;

/// The batch's maps, hashed with foldhash: each request updates two or three of them under the
/// batch lock, and SipHash over (key id, minute, outcome) was a measurable part of a verification.
/// foldhash is seeded per process, so keys (ids and networks of callers) cannot be aimed at one
/// bucket from outside.
type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

#[derive(Debug, Default)]
pub struct UsageBatch {
    /// (key, minute start, outcome) → (org, count)
    pub counts: Map<(KeyId, DateTime<Utc>, &'static str), (OrgId, i64)>,
    /// Last successful use per key.
    pub last_used: Map<KeyId, (DateTime<Utc>, Option<IpAddr>)>,
    /// Quota units consumed: (lineage, period, period start) → (the key's limits, the quota's
    /// rule index, units). The limits let the flush feed the stored total back to the state.
    pub quota: Map<QuotaKey, (Arc<KeyLimits>, usize, i64)>,
    /// Refusals: (key, rule, minute) → (org, count, last).
    pub violations: Map<ViolationKey, (OrgId, i64, DateTime<Utc>)>,
    /// First crossings of a soft threshold.
    pub events: Vec<LimitEvent>,
    /// Used-up quotas: (key, rule, period index) → the first refusal (`limit.quota_exceeded`
    /// once per key, quota and period; the database keeps it once across nodes).
    pub exceeded: Map<(KeyId, String, i64), LimitEvent>,
    /// Gateway calls: (key, hour, route group, status class) → cell.
    pub gateway: Map<GatewayKey, GatewayCell>,
    /// Networks successful calls came from: (key, network) → (org, first, last, calls).
    pub networks: Map<(KeyId, IpNet), NetworkCell>,
    /// Calls with a missing, malformed or unknown key: (hour, reason) → count.
    pub unrecognized: Map<(DateTime<Utc>, &'static str), i64>,
    /// Gateway cells per (key, hour) in this batch, for the per-key route bound.
    gateway_cells: Map<(KeyId, DateTime<Utc>), usize>,
}

/// (key, hour, route group, status class).
pub type GatewayKey = (KeyId, DateTime<Utc>, String, i16);

#[derive(Debug, Clone)]
pub struct GatewayCell {
    pub org_id: OrgId,
    pub calls: i64,
    pub latency_sum_us: i64,
    pub latency: Histogram,
}

#[derive(Debug, Clone, Copy)]
pub struct NetworkCell {
    pub org_id: OrgId,
    pub first: DateTime<Utc>,
    pub last: DateTime<Utc>,
    pub calls: i64,
}

/// Why a call's key could not be attributed to an organisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unrecognized {
    Missing,
    Malformed,
    Unknown,
}

impl Unrecognized {
    pub fn as_str(self) -> &'static str {
        match self {
            Unrecognized::Missing => "missing",
            Unrecognized::Malformed => "malformed",
            Unrecognized::Unknown => "unknown",
        }
    }
}

/// Distinct route groups one key may add per hour and flush (times five status classes);
/// further ones count as `:other`, so a client spraying paths cannot grow the table.
pub const MAX_ROUTES_PER_KEY: usize = 32;
/// Pending gateway cells and networks at most (beyond them new ones are dropped and counted).
pub const MAX_PENDING_GATEWAY: usize = 100_000;
pub const MAX_PENDING_NETWORKS: usize = 100_000;

/// (key, rule name, minute).
pub type ViolationKey = (KeyId, String, DateTime<Utc>);

/// A rule's soft threshold was reached in a window, or a quota was used up in its period.
#[derive(Debug, Clone)]
pub struct LimitEvent {
    /// `soft_threshold` or `quota_exceeded` (`limit_events.kind`).
    pub kind: &'static str,
    pub org_id: OrgId,
    pub key_id: KeyId,
    pub rule: String,
    pub window_index: i64,
    pub used: i64,
    pub limit: i64,
    pub at: DateTime<Utc>,
}

/// Pending events beyond this are dropped (and counted): a flood of windows cannot grow memory.
const MAX_PENDING_EVENTS: usize = 10_000;

impl UsageBatch {
    fn merge(&mut self, other: UsageBatch) {
        for (k, (org, n)) in other.counts {
            self.counts.entry(k).or_insert((org, 0)).1 += n;
        }
        for (k, v) in other.last_used {
            let slot = self.last_used.entry(k).or_insert(v);
            if v.0 > slot.0 {
                *slot = v;
            }
        }
        for (k, (limits, index, n)) in other.quota {
            self.quota.entry(k).or_insert((limits, index, 0)).2 += n;
        }
        for (k, (org, n, last)) in other.violations {
            let slot = self.violations.entry(k).or_insert((org, 0, last));
            slot.1 += n;
            slot.2 = slot.2.max(last);
        }
        let room = MAX_PENDING_EVENTS.saturating_sub(self.events.len());
        self.events.extend(other.events.into_iter().take(room));
        for (k, e) in other.exceeded {
            if self.exceeded.len() < MAX_PENDING_EVENTS {
                self.exceeded.entry(k).or_insert(e);
            }
        }
        for (k, cell) in other.gateway {
            match self.gateway.get_mut(&k) {
                Some(slot) => {
                    slot.calls += cell.calls;
                    slot.latency_sum_us += cell.latency_sum_us;
                    slot.latency.merge(&cell.latency);
                }
                None => {
                    self.gateway.insert(k, cell);
                }
            }
        }
        for (k, cell) in other.networks {
            let slot = self
                .networks
                .entry(k)
                .or_insert(NetworkCell { calls: 0, ..cell });
            slot.first = slot.first.min(cell.first);
            slot.last = slot.last.max(cell.last);
            slot.calls += cell.calls;
        }
        for (k, n) in other.gateway_cells {
            *self.gateway_cells.entry(k).or_insert(0) += n;
        }
        for (k, n) in other.unrecognized {
            *self.unrecognized.entry(k).or_insert(0) += n;
        }
    }

    /// Keeps at most `cap` networks per key in this batch, the most recently seen; returns how
    /// many were dropped (the store evicts the rest past the cap, see
    /// [`store::usage::write_batch_capped`]).
    pub fn trim_networks(&mut self, cap: usize) -> u64 {
        let cap = cap.max(1);
        if self.networks.len() <= cap {
            return 0;
        }
        let mut per_key: Map<KeyId, usize> = Map::default();
        for (key, _) in self.networks.keys() {
            *per_key.entry(*key).or_insert(0) += 1;
        }
        per_key.retain(|_, n| *n > cap);
        if per_key.is_empty() {
            return 0;
        }
        // One pass over the batch: each over-cap key's networks, by last then first sighting.
        type Seen = (DateTime<Utc>, DateTime<Utc>, IpNet);
        let mut over: Map<KeyId, Vec<Seen>> = Map::default();
        for ((key, net), cell) in &self.networks {
            if per_key.contains_key(key) {
                over.entry(*key)
                    .or_default()
                    .push((cell.last, cell.first, *net));
            }
        }
        let mut dropped = 0;
        for (key, mut seen) in over {
            seen.sort_unstable_by(|a, b| b.cmp(a));
            for (_, _, net) in seen.into_iter().skip(cap) {
                self.networks.remove(&(key, net));
                dropped += 1;
            }
        }
        dropped
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
            && self.last_used.is_empty()
            && self.quota.is_empty()
            && self.violations.is_empty()
            && self.events.is_empty()
            && self.exceeded.is_empty()
            && self.gateway.is_empty()
            && self.networks.is_empty()
            && self.unrecognized.is_empty()
    }
}

pub struct UsageRecorder {
    batch: Mutex<UsageBatch>,
    /// When the counts were last written (or found empty), Unix milliseconds; 0 before that.
    last_flush_ms: AtomicI64,
    /// Soft-threshold events dropped because too many were pending.
    pub dropped_events: Counter,
    /// Calls not counted because too many (key, minute, outcome) rows were pending.
    pub dropped_counts: Counter,
    /// Networks kept per key (`max_networks_per_key`): past it the least recently seen go.
    max_networks_per_key: usize,
    /// Networks forgotten because their key reached the cap.
    pub networks_evicted: Counter,
}

/// Networks kept per key unless configured otherwise (`max_networks_per_key`).
pub const DEFAULT_MAX_NETWORKS_PER_KEY: usize = 256;

impl Default for UsageRecorder {
    fn default() -> Self {
        UsageRecorder {
            batch: Mutex::default(),
            last_flush_ms: AtomicI64::new(0),
            dropped_events: Counter::default(),
            dropped_counts: Counter::default(),
            max_networks_per_key: DEFAULT_MAX_NETWORKS_PER_KEY,
            networks_evicted: Counter::default(),
        }
    }
}

/// Pending (key, minute, outcome) rows at most: about 100 MB, an hour-long outage of 25,000
/// busy keys.
pub const MAX_PENDING_ROWS: usize = 1_000_000;

/// The period a quota rule counts in, as stored: ("day", date) or ("month", first of month).
fn period_of(kind: Kind, now: DateTime<Utc>) -> Option<(&'static str, NaiveDate)> {
    let day = now.date_naive();
    match kind {
        Kind::Daily => Some(("day", day)),
        Kind::Monthly => Some(("month", day.with_day(1)?)),
        Kind::Rate(_) => None,
    }
}

impl UsageRecorder {
    /// A recorder counting what it drops into `/metrics`.
    pub fn with_counters(dropped_events: Counter, dropped_counts: Counter) -> UsageRecorder {
        UsageRecorder {
            last_flush_ms: AtomicI64::new(Utc::now().timestamp_millis()),
            dropped_events,
            dropped_counts,
            ..UsageRecorder::default()
        }
    }

    /// Keeps at most `max` networks per key (at least one), counting what it forgets into
    /// `evicted`.
    pub fn with_network_cap(mut self, max: u64, evicted: Counter) -> UsageRecorder {
        self.max_networks_per_key = usize::try_from(max).unwrap_or(usize::MAX).max(1);
        self.networks_evicted = evicted;
        self
    }

    /// Called on the request path: a short lock and a hash map update, no I/O.
    pub fn record(
        &self,
        key: KeyId,
        org: OrgId,
        outcome: &'static str,
        now: DateTime<Utc>,
        ip: Option<IpAddr>,
    ) {
        let minute = now.duration_trunc(TimeDelta::minutes(1)).unwrap_or(now);
        let mut batch = self.batch.lock().unwrap_or_else(|p| p.into_inner());
        let full = batch.counts.len() >= MAX_PENDING_ROWS;
        match batch.counts.get_mut(&(key, minute, outcome)) {
            Some(slot) => slot.1 += 1,
            // While the database is away the counts wait here; past the bound a new
            // (key, minute, outcome) is dropped and counted, never an unbounded map.
            None if full => {
                self.dropped_counts.inc();
                return;
            }
            None => {
                batch.counts.insert((key, minute, outcome), (org, 1));
            }
        }
        if outcome == "valid" {
            batch.last_used.insert(key, (now, ip));
            if let Some(ip) = ip {
                let network = network_of(ip);
                let full = batch.networks.len() >= MAX_PENDING_NETWORKS;
                match batch.networks.get_mut(&(key, network)) {
                    Some(cell) => {
                        cell.last = cell.last.max(now);
                        cell.calls += 1;
                    }
                    None if full => {
                        self.dropped_counts.inc();
                    }
                    None => {
                        batch.networks.insert(
                            (key, network),
                            NetworkCell {
                                org_id: org,
                                first: now,
                                last: now,
                                calls: 1,
                            },
                        );
                    }
                }
            }
        }
    }

    /// A call whose key names no organisation (counted globally, by hour).
    pub fn record_unrecognized(&self, reason: Unrecognized, now: DateTime<Utc>) {
        let hour = now.duration_trunc(TimeDelta::hours(1)).unwrap_or(now);
        let mut batch = self.batch.lock().unwrap_or_else(|p| p.into_inner());
        *batch
            .unrecognized
            .entry((hour, reason.as_str()))
            .or_insert(0) += 1;
    }

    /// A forwarded gateway call: its route group, the status the caller got and the time to
    /// the upstream's response headers (or to the gateway's own 502/504).
    pub fn record_gateway(
        &self,
        key: KeyId,
        org: OrgId,
        path: &str,
        status: u16,
        latency: Duration,
        now: DateTime<Utc>,
    ) {
        let hour = now.duration_trunc(TimeDelta::hours(1)).unwrap_or(now);
        let class = i16::try_from(status / 100).unwrap_or(5).clamp(1, 5);
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let mut route = route_group(path);
        let mut batch = self.batch.lock().unwrap_or_else(|p| p.into_inner());
        if !batch
            .gateway
            .contains_key(&(key, hour, route.clone(), class))
        {
            if batch.gateway.len() >= MAX_PENDING_GATEWAY {
                self.dropped_counts.inc();
                return;
            }
            let cells = batch.gateway_cells.entry((key, hour)).or_insert(0);
            if *cells >= MAX_ROUTES_PER_KEY * 5 {
                route = ":other".into();
            } else {
                *cells += 1;
            }
        }
        let cell = batch
            .gateway
            .entry((key, hour, route, class))
            .or_insert_with(|| GatewayCell {
                org_id: org,
                calls: 0,
                latency_sum_us: 0,
                latency: Histogram::default(),
            });
        cell.calls += 1;
        cell.latency_sum_us = cell
            .latency_sum_us
            .saturating_add(i64::try_from(us).unwrap_or(i64::MAX));
        cell.latency.record(us);
    }

    /// After a limits check: quota units consumed, the refusing rule, thresholds crossed.
    pub fn record_limits(
        &self,
        key: &KeyRecord,
        limits: &Arc<KeyLimits>,
        outcome: &Outcome,
        cost: u64,
        now: DateTime<Utc>,
    ) {
        if outcome.allowed
            && limits.daily.is_none()
            && limits.monthly.is_none()
            && outcome.crossed == 0
        {
            return;
        }
        let mut batch = self.batch.lock().unwrap_or_else(|p| p.into_inner());
        if !outcome.allowed {
            let rule = limits
                .rules
                .get(outcome.deciding)
                .map_or_else(String::new, |r| r.name.clone());
            let minute = now.duration_trunc(TimeDelta::minutes(1)).unwrap_or(now);
            let slot = batch
                .violations
                .entry((key.id, rule.clone(), minute))
                .or_insert((key.org_id, 0, now));
            slot.1 += 1;
            slot.2 = slot.2.max(now);
            if let Some(r) = limits.rules.get(outcome.deciding).filter(|r| r.is_quota()) {
                let d = outcome.deciding();
                let window_index = r.window_index(now_ms(now)) as i64;
                let room = batch.exceeded.len() < MAX_PENDING_EVENTS;
                match batch.exceeded.entry((key.id, rule, window_index)) {
                    std::collections::hash_map::Entry::Vacant(v) if room => {
                        v.insert(LimitEvent {
                            kind: "quota_exceeded",
                            org_id: key.org_id,
                            key_id: key.id,
                            rule: r.name.clone(),
                            window_index,
                            used: d.used() as i64,
                            limit: d.limit as i64,
                            at: now,
                        });
                    }
                    std::collections::hash_map::Entry::Vacant(_) => {
                        self.dropped_events.inc();
                    }
                    std::collections::hash_map::Entry::Occupied(_) => {}
                }
            }
            return;
        }
        for index in [limits.daily, limits.monthly].into_iter().flatten() {
            if let Some((period, start)) =
                limits.rules.get(index).and_then(|r| period_of(r.kind, now))
            {
                batch
                    .quota
                    .entry((key.lineage_id, period, start))
                    .or_insert_with(|| (limits.clone(), index, 0))
                    .2 += cost as i64;
            }
        }
        let t = now_ms(now);
        for (i, (rule, d)) in limits.rules.iter().zip(outcome.decisions()).enumerate() {
            if outcome.crossed & (1 << i) == 0 {
                continue;
            }
            if batch.events.len() >= MAX_PENDING_EVENTS {
                self.dropped_events.inc();
                continue;
            }
            batch.events.push(LimitEvent {
                kind: "soft_threshold",
                org_id: key.org_id,
                key_id: key.id,
                rule: rule.name.clone(),
                window_index: rule.window_index(t) as i64,
                used: d.used() as i64,
                limit: d.limit as i64,
                at: now,
            });
        }
    }

    fn flushed(&self) {
        self.last_flush_ms
            .store(Utc::now().timestamp_millis(), Ordering::Relaxed);
    }

    /// Seconds since the counts were last written (the flush lag `/metrics` reports).
    pub fn flush_lag_secs(&self, now: DateTime<Utc>) -> f64 {
        let last = self.last_flush_ms.load(Ordering::Relaxed);
        ((now.timestamp_millis() - last).max(0) as f64) / 1000.0
    }

    /// (key, minute, outcome) rows waiting for the next flush.
    pub fn pending_rows(&self) -> usize {
        self.batch
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .counts
            .len()
    }

    pub fn take(&self) -> UsageBatch {
        std::mem::take(&mut *self.batch.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn put_back(&self, batch: UsageBatch) {
        self.batch
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .merge(batch);
    }

    /// Writes everything counted so far; on failure the counts stay queued.
    pub async fn flush(&self, pool: &PgPool) -> Result<usize, sqlx::Error> {
        let mut batch = self.take();
        if batch.is_empty() {
            self.flushed();
            return Ok(0);
        }
        let trimmed = batch.trim_networks(self.max_networks_per_key);
        self.networks_evicted.inc_by(trimmed);
        let rows = batch.counts.len();
        match store::usage::write_batch_capped(pool, &batch, Some(self.max_networks_per_key)).await
        {
            Ok(store::usage::Written {
                totals,
                networks_evicted,
            }) => {
                if networks_evicted > 0 {
                    self.networks_evicted.inc_by(networks_evicted);
                    tracing::debug!(
                        networks_evicted,
                        max = self.max_networks_per_key,
                        "least recently seen networks forgotten"
                    );
                }
                // Every node's consumption, fed back so local quota checks see it.
                let t = now_ms(Utc::now());
                for (key, total) in totals {
                    if let Some((limits, index, _)) = batch.quota.get(&key) {
                        limits
                            .state
                            .raise_to(&limits.rules, *index, t, total.max(0) as u64);
                    }
                }
                self.flushed();
                Ok(rows)
            }
            Err(e) => {
                self.put_back(batch);
                Err(e)
            }
        }
    }
}

/// How long each granularity is kept.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub minutes: chrono::Duration,
    pub hours: chrono::Duration,
    pub days: chrono::Duration,
}

impl Retention {
    pub fn from_config(c: &crate::Config) -> Retention {
        let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX / 2).max(1);
        Retention {
            minutes: chrono::Duration::hours(clamp(c.usage_minute_retention_hours)),
            hours: chrono::Duration::days(clamp(c.usage_hour_retention_days)),
            days: chrono::Duration::days(clamp(c.usage_day_retention_days)),
        }
    }

    /// Deletes what is older than each granularity's retention, as of `now`; returns the rows
    /// removed per granularity (minute, hour, day).
    pub async fn enforce(
        &self,
        pool: &PgPool,
        now: DateTime<Utc>,
    ) -> Result<[u64; 3], sqlx::Error> {
        use keyward_core::api::Granularity as G;
        Ok([
            store::usage::delete_before(pool, G::Minute, now - self.minutes, 10_000).await?,
            store::usage::delete_before(pool, G::Hour, now - self.hours, 10_000).await?,
            store::usage::delete_before(pool, G::Day, now - self.days, 10_000).await?,
        ])
    }
}

/// The retention job: at start and every `interval`.
pub async fn run_retention(
    retention: Retention,
    pool: PgPool,
    interval: Duration,
    shutdown: CancellationToken,
) {
    crate::jobs::every(interval, shutdown, || async {
        let pass = retention
            .enforce(&pool, Utc::now())
            .instrument(tracing::info_span!("usage_retention"));
        match pass.await {
            Ok([0, 0, 0]) => {}
            Ok([minutes, hours, days]) => {
                tracing::info!(minutes, hours, days, "old usage rows deleted")
            }
            Err(e) => tracing::warn!(error = %e, "usage retention failed; retrying next interval"),
        }
    })
    .await;
}

/// The flusher task: every `interval`, and once more after `shutdown`.
pub async fn run_flusher(
    recorder: std::sync::Arc<UsageRecorder>,
    pool: PgPool,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            _ = tick.tick() => false,
            _ = shutdown.cancelled() => true,
        };
        let span = tracing::debug_span!("usage_flush", final_flush = stopping);
        match recorder.flush(&pool).instrument(span).await {
            Ok(0) => {}
            Ok(rows) => tracing::debug!(rows, "usage flushed"),
            Err(e) => {
                tracing::warn!(error = %e, "usage flush failed; counts kept for the next try")
            }
        }
        if stopping {
            // One retry on the way out if the last write failed.
            if let Err(e) = recorder.flush(&pool).await {
                tracing::error!(error = %e, "usage could not be flushed at shutdown");
            }
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_bound_new_rows_are_dropped_and_counted_existing_ones_still_count() {
        let r = UsageRecorder::default();
        let (o, t) = (OrgId::new(), Utc::now());
        let keys: Vec<KeyId> = (0..MAX_PENDING_ROWS).map(|_| KeyId::new()).collect();
        for k in &keys {
            r.record(*k, o, "valid", t, None);
        }
        r.record(KeyId::new(), o, "valid", t, None);
        assert_eq!(r.dropped_counts.get(), 1);
        r.record(keys[0], o, "valid", t, None);
        let minute = t.duration_trunc(TimeDelta::minutes(1)).unwrap();
        let batch = r.take();
        assert_eq!(batch.counts.len(), MAX_PENDING_ROWS);
        assert_eq!(batch.counts[&(keys[0], minute, "valid")].1, 2);
    }

    #[test]
    fn counts_per_key_minute_and_outcome() {
        let r = UsageRecorder::default();
        let (k, o) = (KeyId::new(), OrgId::new());
        let t = Utc::now();
        r.record(k, o, "valid", t, None);
        r.record(k, o, "valid", t, None);
        r.record(k, o, "revoked", t, None);
        let batch = r.take();
        let minute = t.duration_trunc(TimeDelta::minutes(1)).unwrap();
        assert_eq!(batch.counts[&(k, minute, "valid")].1, 2);
        assert_eq!(batch.counts[&(k, minute, "revoked")].1, 1);
        assert!(batch.last_used.contains_key(&k));
        assert!(r.take().is_empty());
    }

    #[test]
    fn a_batch_keeps_the_most_recently_seen_networks_of_each_key() {
        let r = UsageRecorder::default();
        let (busy, calm, o) = (KeyId::new(), KeyId::new(), OrgId::new());
        let t = Utc::now();
        for i in 0..5u8 {
            let at = t + TimeDelta::seconds(i64::from(i));
            r.record(busy, o, "valid", at, Some(IpAddr::from([198, 51, i, 1])));
        }
        // The first network again, last: it is the most recent now.
        r.record(
            busy,
            o,
            "valid",
            t + TimeDelta::seconds(9),
            Some(IpAddr::from([198, 51, 0, 2])),
        );
        r.record(calm, o, "valid", t, Some(IpAddr::from([192, 0, 2, 1])));
        let mut batch = r.take();
        assert_eq!(batch.trim_networks(3), 2);
        let mut kept: Vec<String> = batch
            .networks
            .keys()
            .filter(|(k, _)| *k == busy)
            .map(|(_, n)| n.to_string())
            .collect();
        kept.sort();
        assert_eq!(
            kept,
            ["198.51.0.0/24", "198.51.3.0/24", "198.51.4.0/24"],
            "the least recently seen go"
        );
        assert!(batch.networks.keys().any(|(k, _)| *k == calm));
        assert_eq!(batch.trim_networks(3), 0);
    }

    #[test]
    fn a_failed_write_is_merged_back() {
        let r = UsageRecorder::default();
        let (k, o) = (KeyId::new(), OrgId::new());
        let t = Utc::now();
        r.record(k, o, "valid", t, None);
        let first = r.take();
        r.record(k, o, "valid", t, None);
        r.put_back(first);
        let minute = t.duration_trunc(TimeDelta::minutes(1)).unwrap();
        assert_eq!(r.take().counts[&(k, minute, "valid")].1, 2);
    }
}
