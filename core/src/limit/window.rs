//! Fixed windows aligned to multiples of the window length since the Unix epoch, so every node
//! agrees where a window starts. State: window index (24 bits, compared modulo 2^24) and units
//! used (40 bits). Calendar quotas share the packing.

use super::{Decision, Millis, Rule};

const USED_BITS: u32 = 40;
const USED_MASK: u64 = (1 << USED_BITS) - 1;
const INDEX_MASK: u64 = (1 << 24) - 1;

pub(super) fn pack(index: u64, used: u64) -> u64 {
    ((index & INDEX_MASK) << USED_BITS) | (used & USED_MASK)
}

/// Units used in window `index` according to `state` (0 when the state is of another window).
pub(super) fn used_in(state: u64, index: u64) -> u64 {
    if state >> USED_BITS == index & INDEX_MASK {
        state & USED_MASK
    } else {
        0
    }
}

/// The decision for a window of `limit` units holding `used`, `reset_ms` from its end.
pub(super) fn decide(limit: u64, used: u64, cost: u64, reset_ms: u64) -> Decision {
    let allowed = used.saturating_add(cost) <= limit;
    Decision {
        allowed,
        limit,
        remaining: if allowed {
            limit - used - cost
        } else {
            limit.saturating_sub(used)
        },
        reset_ms,
        retry_after_ms: if allowed {
            0
        } else if cost > limit {
            u64::MAX
        } else {
            reset_ms
        },
    }
}

pub(super) fn peek(rule: &Rule, state: u64, now: Millis, cost: u64) -> Decision {
    let index = now / rule.window_ms;
    let reset_ms = (index + 1) * rule.window_ms - now;
    decide(rule.limit, used_in(state, index), cost, reset_ms)
}

pub(super) fn commit(rule: &Rule, state: u64, now: Millis, cost: u64) -> u64 {
    let index = now / rule.window_ms;
    pack(index, used_in(state, index) + cost)
}

pub(super) fn refund(rule: &Rule, state: u64, now: Millis, cost: u64) -> u64 {
    let index = now / rule.window_ms;
    pack(index, used_in(state, index).saturating_sub(cost))
}

#[cfg(test)]
mod tests {
    use super::super::{Algorithm, SharedState};
    use super::*;

    #[test]
    fn exact_allowance_at_the_window_edges() {
        let rules = [Rule::rate("f", Algorithm::FixedWindow, 3, 1, None)];
        let s = SharedState::new(1);
        for t in [1000, 1500, 1999] {
            assert!(s.check(&rules, t, 1, 0.8).allowed, "at {t}");
        }
        let refused = s.check(&rules, 1999, 1, 0.8);
        assert!(!refused.allowed);
        assert_eq!(refused.deciding().retry_after_ms, 1);
        assert_eq!(refused.deciding().remaining, 0);
        let next = s.check(&rules, 2000, 1, 0.8);
        assert!(next.allowed, "the next window starts exactly at 2000");
        assert_eq!(
            (next.deciding().remaining, next.deciding().reset_ms),
            (2, 1000)
        );
    }

    #[test]
    fn a_clock_going_backwards_keeps_counting_the_window_it_is_in() {
        let rules = [Rule::rate("f", Algorithm::FixedWindow, 1, 10, None)];
        let s = SharedState::new(1);
        assert!(s.check(&rules, 25_000, 1, 0.8).allowed);
        assert!(
            !s.check(&rules, 21_000, 1, 0.8).allowed,
            "same window, earlier instant"
        );
    }
}
