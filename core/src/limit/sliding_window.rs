//! Sliding window, the weighted two-window approximation: the previous window's count weighs
//! in proportion to how much of it still overlaps the sliding window.

use std::num::NonZeroU32;

use super::{Decision, Limiter, Millis};

#[derive(Debug, Clone)]
pub struct SlidingWindow {
    limit: u32,
    window_ms: u64,
    current_start: Millis,
    current: u32,
    previous: u32,
}

impl SlidingWindow {
    pub fn new(limit: NonZeroU32, window_ms: u64) -> Self {
        SlidingWindow {
            limit: limit.get(),
            window_ms: window_ms.max(1),
            current_start: 0,
            current: 0,
            previous: 0,
        }
    }

    /// (current count, previous count) as seen at `now`.
    fn counts(&self, now: Millis) -> (u32, u32) {
        let start = now - now % self.window_ms;
        if start == self.current_start {
            (self.current, self.previous)
        } else if start == self.current_start + self.window_ms {
            (0, self.current)
        } else if start < self.current_start {
            (self.current, self.previous)
        } else {
            (0, 0)
        }
    }

    fn estimate(&self, now: Millis) -> f64 {
        let (current, previous) = self.counts(now);
        let elapsed = (now % self.window_ms) as f64 / self.window_ms as f64;
        f64::from(current) + f64::from(previous) * (1.0 - elapsed)
    }
}

impl Limiter for SlidingWindow {
    fn peek(&self, now: Millis, cost: NonZeroU32) -> Decision {
        let used = self.estimate(now);
        let allowed = used + f64::from(cost.get()) <= f64::from(self.limit);
        let reset_ms = self.window_ms - now % self.window_ms;
        Decision {
            allowed,
            limit: self.limit,
            remaining: if allowed {
                (f64::from(self.limit) - used - f64::from(cost.get())).floor() as u32
            } else {
                0
            },
            reset_ms,
            retry_after_ms: if allowed {
                0
            } else if cost.get() > self.limit {
                u64::MAX
            } else {
                // At most one window: by then the previous window no longer counts.
                reset_ms.min(self.window_ms)
            },
        }
    }

    fn commit(&mut self, now: Millis, cost: NonZeroU32) {
        let start = now - now % self.window_ms;
        if start > self.current_start {
            self.previous = if start == self.current_start + self.window_ms {
                self.current
            } else {
                0
            };
            self.current = 0;
            self.current_start = start;
        }
        self.current = self.current.saturating_add(cost.get());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_previous_window_fades_out() {
        let mut s = SlidingWindow::new(NonZeroU32::new(10).unwrap(), 1000);
        let one = NonZeroU32::MIN;
        for _ in 0..10 {
            s.commit(900, one);
        }
        assert!(!s.peek(950, one).allowed);
        // Halfway into the next window half of the previous 10 still counts.
        let d = s.peek(1500, one);
        assert!(d.allowed);
        assert_eq!(d.remaining, 4);
        assert!(!s.peek(1500, NonZeroU32::new(6).unwrap()).allowed);
        assert_eq!(
            s.peek(2000, NonZeroU32::new(10).unwrap()).remaining,
            0,
            "a full window later nothing counts"
        );
    }
}
