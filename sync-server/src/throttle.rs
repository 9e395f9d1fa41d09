//! Counting failures per key in fixed windows: failed logins per email and per client address,
//! failed cold key checks per key id. Idle windows expire on their own (moka TTL), so memory
//! stays bounded however many distinct keys an attacker tries.

use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use moka::sync::Cache;

pub struct FailureWindow<K> {
    windows: Cache<K, Arc<Window>>,
    limit: u32,
    window: Duration,
}

struct Window {
    started: Instant,
    failures: AtomicU32,
}

impl<K: Hash + Eq + Send + Sync + Clone + 'static> FailureWindow<K> {
    pub fn new(limit: u32, window: Duration, capacity: u64) -> Self {
        FailureWindow {
            windows: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(window)
                .build(),
            limit: limit.max(1),
            window,
        }
    }

    /// Seconds until another attempt is allowed, when the limit is reached.
    pub fn blocked(&self, key: &K) -> Option<u64> {
        let w = self.windows.get(key)?;
        if w.failures.load(Ordering::Relaxed) < self.limit {
            return None;
        }
        let left = self.window.saturating_sub(w.started.elapsed());
        Some(left.as_secs().max(1))
    }

    pub fn record_failure(&self, key: K) {
        let w = self.windows.get_with(key, || {
            Arc::new(Window {
                started: Instant::now(),
                failures: AtomicU32::new(0),
            })
        });
        w.failures.fetch_add(1, Ordering::Relaxed);
    }

    pub fn reset(&self, key: &K) {
        self.windows.invalidate(key);
    }

    /// Takes one of the window's places atomically: `Err(seconds until the window ends)` when
    /// all are taken. Concurrent callers never take more than the limit between them (unlike
    /// [`Self::blocked`] followed by [`Self::record_failure`]).
    pub fn try_take(&self, key: K) -> Result<(), u64> {
        let w = self.windows.get_with(key, || {
            Arc::new(Window {
                started: Instant::now(),
                failures: AtomicU32::new(0),
            })
        });
        w.failures
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.limit).then_some(n + 1)
            })
            .map(|_| ())
            .map_err(|_| {
                self.window
                    .saturating_sub(w.started.elapsed())
                    .as_secs()
                    .max(1)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_the_limit_until_reset() {
        let w = FailureWindow::new(3, Duration::from_secs(60), 100);
        for _ in 0..2 {
            w.record_failure("a");
        }
        assert_eq!(w.blocked(&"a"), None);
        w.record_failure("a");
        let secs = w.blocked(&"a").expect("blocked");
        assert!((1..=60).contains(&secs));
        assert_eq!(w.blocked(&"b"), None);
        w.reset(&"a");
        assert_eq!(w.blocked(&"a"), None);
    }

    #[test]
    fn reservations_never_exceed_the_limit_under_contention() {
        let w = Arc::new(FailureWindow::new(5, Duration::from_secs(60), 100));
        let taken: Vec<bool> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..40)
                .map(|_| {
                    let w = w.clone();
                    s.spawn(move || w.try_take("k").is_ok())
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(taken.iter().filter(|t| **t).count(), 5);
        assert!(w.try_take("k").is_err());
        assert!(w.try_take("other").is_ok());
    }
}
