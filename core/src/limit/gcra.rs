//! GCRA (the generic cell rate algorithm), equivalent to a token bucket: `limit` units per
//! `period_ms`, with room for `burst` units at once. State is one timestamp: the theoretical
//! arrival time of the next unit.

use std::num::NonZeroU32;

use super::{Decision, Limiter, Millis};

#[derive(Debug, Clone)]
pub struct Gcra {
    limit: u32,
    /// Milliseconds per unit.
    emission_ms: f64,
    /// How far ahead of now the arrival time may run: the burst.
    tolerance_ms: f64,
    tat: f64,
}

impl Gcra {
    pub fn new(limit: NonZeroU32, period_ms: u64, burst: NonZeroU32) -> Self {
        let emission_ms = period_ms.max(1) as f64 / f64::from(limit.get());
        Gcra {
            limit: burst.get(),
            emission_ms,
            tolerance_ms: emission_ms * f64::from(burst.get()),
            tat: 0.0,
        }
    }

    fn next_tat(&self, now: f64, cost: NonZeroU32) -> f64 {
        self.tat.max(now) + self.emission_ms * f64::from(cost.get())
    }
}

impl Limiter for Gcra {
    fn peek(&self, now: Millis, cost: NonZeroU32) -> Decision {
        let now = now as f64;
        let tat = self.next_tat(now, cost);
        let allow_at = tat - self.tolerance_ms;
        let allowed = allow_at <= now;
        let basis = if allowed { tat } else { self.tat.max(now) };
        let remaining = ((now + self.tolerance_ms - basis) / self.emission_ms)
            .floor()
            .max(0.0) as u32;
        Decision {
            allowed,
            limit: self.limit,
            remaining: remaining.min(self.limit),
            reset_ms: (basis - now).max(0.0).ceil() as u64,
            retry_after_ms: if allowed {
                0
            } else if self.emission_ms * f64::from(cost.get()) > self.tolerance_ms {
                u64::MAX
            } else {
                (allow_at - now).ceil() as u64
            },
        }
    }

    fn commit(&mut self, now: Millis, cost: NonZeroU32) {
        self.tat = self.next_tat(now as f64, cost);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_steady_refill() {
        // 10 per second, burst 5.
        let mut g = Gcra::new(
            NonZeroU32::new(10).unwrap(),
            1000,
            NonZeroU32::new(5).unwrap(),
        );
        let one = NonZeroU32::MIN;
        for i in 0..5 {
            let d = g.peek(0, one);
            assert!(d.allowed, "burst unit {i}");
            assert_eq!(d.remaining, 4 - i);
            g.commit(0, one);
        }
        let d = g.peek(0, one);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_ms, 100);
        assert!(!g.peek(99, one).allowed);
        assert!(g.peek(100, one).allowed, "one unit refills every 100 ms");
        let five = NonZeroU32::new(5).unwrap();
        assert!(g.peek(500, five).allowed, "a full burst after 500 ms");
        assert_eq!(
            g.peek(500, NonZeroU32::new(6).unwrap()).retry_after_ms,
            u64::MAX
        );
    }

    #[test]
    fn a_clock_going_backwards_grants_nothing_extra() {
        let mut g = Gcra::new(NonZeroU32::new(1).unwrap(), 1000, NonZeroU32::MIN);
        g.commit(5000, NonZeroU32::MIN);
        assert!(!g.peek(4000, NonZeroU32::MIN).allowed);
        assert!(g.peek(6000, NonZeroU32::MIN).allowed);
    }
}
