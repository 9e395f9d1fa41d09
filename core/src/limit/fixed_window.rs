//! Fixed windows aligned to multiples of the window length.

use std::num::NonZeroU32;

use super::{Decision, Limiter, Millis};

#[derive(Debug, Clone)]
pub struct FixedWindow {
    limit: u32,
    window_ms: u64,
    start: Millis,
    used: u32,
}

impl FixedWindow {
    pub fn new(limit: NonZeroU32, window_ms: u64) -> Self {
        FixedWindow {
            limit: limit.get(),
            window_ms: window_ms.max(1),
            start: 0,
            used: 0,
        }
    }

    fn window_of(&self, now: Millis) -> Millis {
        now - now % self.window_ms
    }

    fn used_at(&self, now: Millis) -> u32 {
        if self.window_of(now) == self.start {
            self.used
        } else {
            0
        }
    }
}

impl Limiter for FixedWindow {
    fn peek(&self, now: Millis, cost: NonZeroU32) -> Decision {
        let used = self.used_at(now);
        let reset_ms = self.window_of(now) + self.window_ms - now;
        let allowed = cost.get() <= self.limit - used.min(self.limit);
        Decision {
            allowed,
            limit: self.limit,
            remaining: if allowed {
                self.limit - used - cost.get()
            } else {
                0
            },
            reset_ms,
            retry_after_ms: if allowed {
                0
            } else if cost.get() > self.limit {
                u64::MAX
            } else {
                reset_ms
            },
        }
    }

    fn commit(&mut self, now: Millis, cost: NonZeroU32) {
        let window = self.window_of(now);
        // A clock that went backwards stays in the window it already counted.
        if window > self.start {
            self.start = window;
            self.used = 0;
        }
        self.used = self.used.saturating_add(cost.get());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_allowance_and_edges() {
        let mut w = FixedWindow::new(NonZeroU32::new(3).unwrap(), 1000);
        let one = NonZeroU32::MIN;
        for t in [0, 400, 999] {
            assert!(w.peek(t, one).allowed);
            w.commit(t, one);
        }
        let d = w.peek(999, one);
        assert!(!d.allowed);
        assert_eq!((d.retry_after_ms, d.reset_ms), (1, 1));
        assert!(w.peek(1000, one).allowed, "a new window at the edge");
        assert_eq!(w.peek(1000, NonZeroU32::new(3).unwrap()).remaining, 0);
        assert!(
            !w.peek(1000, NonZeroU32::new(4).unwrap()).allowed,
            "a cost above the limit never passes"
        );
    }
}
