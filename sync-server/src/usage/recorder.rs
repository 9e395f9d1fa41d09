//! The recorder on the request path (a short lock and a map update per call, no I/O) and the
//! flusher task that writes its batch.

use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Datelike, DurationRound, NaiveDate, TimeDelta, Utc};
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
use crate::store::usage::{
    GatewayCell, LimitEvent, MAX_PENDING_EVENTS, MAX_PENDING_GATEWAY, MAX_PENDING_NETWORKS,
    MAX_ROUTES_PER_KEY, NetworkCell, Unrecognized, UsageBatch,
};

/// The key a limits check was made for: what its counts are kept under.
#[derive(Debug, Clone, Copy)]
pub struct CountedKey {
    pub id: KeyId,
    pub org_id: OrgId,
    /// Quotas count per lineage.
    pub lineage_id: KeyId,
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
        key: CountedKey,
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
