//! What one flush writes: the pending counts, last uses, quota units, violations, limit events,
//! gateway cells, networks and unrecognised calls, and the bounds on each. The usage recorder
//! (`usage::UsageRecorder`, above this layer) fills it on the request path;
//! [`super::write_batch_capped`] stores it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use keyward_core::latency::Histogram;
use keyward_core::{KeyId, OrgId};

use super::QuotaKey;
use crate::limits::KeyLimits;

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
    pub(crate) gateway_cells: Map<(KeyId, DateTime<Utc>), usize>,
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
pub(crate) const MAX_PENDING_EVENTS: usize = 10_000;

impl UsageBatch {
    pub(crate) fn merge(&mut self, other: UsageBatch) {
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
    /// [`super::write_batch_capped`]).
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
