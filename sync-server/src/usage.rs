//! Usage counting off the request path: each verification adds one to an in-memory counter per
//! (key, minute, outcome); a background task swaps the map out about once a second and writes
//! it to Postgres in one statement. A failed write is merged back and retried, and shutdown
//! flushes what is left, so counts are neither lost nor written twice.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use keyward_core::{KeyId, OrgId};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::store;

#[derive(Debug, Default)]
pub struct UsageBatch {
    /// (key, minute start, outcome) → (org, count)
    pub counts: HashMap<(KeyId, DateTime<Utc>, &'static str), (OrgId, i64)>,
    /// Last successful use per key.
    pub last_used: HashMap<KeyId, (DateTime<Utc>, Option<IpAddr>)>,
}

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
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty() && self.last_used.is_empty()
    }
}

#[derive(Default)]
pub struct UsageRecorder {
    batch: Mutex<UsageBatch>,
}

impl UsageRecorder {
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
        batch
            .counts
            .entry((key, minute, outcome))
            .or_insert((org, 0))
            .1 += 1;
        if outcome == "valid" {
            batch.last_used.insert(key, (now, ip));
        }
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
        let batch = self.take();
        if batch.is_empty() {
            return Ok(0);
        }
        let rows = batch.counts.len();
        match store::usage::write_batch(pool, &batch).await {
            Ok(()) => Ok(rows),
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
