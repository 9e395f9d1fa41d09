//! Sliding window, the weighted two-window approximation: the previous window's count weighs in
//! proportion to how much of it the sliding window still covers. State: window index (20 bits,
//! compared modulo 2^20), previous count and current count (22 bits each; rule limits are at
//! most 1,000,000).

use super::{Decision, Millis, Rule};

const COUNT_BITS: u32 = 22;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
const INDEX_MASK: u64 = (1 << 20) - 1;

fn pack(index: u64, previous: u64, current: u64) -> u64 {
    ((index & INDEX_MASK) << (2 * COUNT_BITS))
        | ((previous & COUNT_MASK) << COUNT_BITS)
        | (current & COUNT_MASK)
}

/// (previous, current) counts as seen from window `index`.
fn counts(state: u64, index: u64) -> (u64, u64) {
    let at = state >> (2 * COUNT_BITS);
    let (previous, current) = ((state >> COUNT_BITS) & COUNT_MASK, state & COUNT_MASK);
    if at == index & INDEX_MASK {
        (previous, current)
    } else if at == index.wrapping_sub(1) & INDEX_MASK {
        (current, 0)
    } else {
        (0, 0)
    }
}

pub(super) fn peek(rule: &Rule, state: u64, now: Millis, cost: u64) -> Decision {
    // In units × milliseconds, so everything stays integer: the estimate is
    // current + previous × (window − elapsed) / window. Counts < 2^22 and windows < 2^27 ms.
    let window = rule.window_ms;
    let index = now / window;
    let elapsed = now % window;
    let (previous, current) = counts(state, index);
    let used = current * window + previous * (window - elapsed);
    let capacity = rule.limit * window;
    let want = cost.saturating_mul(window);
    let allowed = used.saturating_add(want) <= capacity;
    let left = capacity.saturating_sub(used);
    let reset_ms = window - elapsed;
    Decision {
        allowed,
        limit: rule.limit,
        remaining: if allowed {
            (left - want) / window
        } else {
            left / window
        },
        reset_ms,
        retry_after_ms: if allowed {
            0
        } else if cost > rule.limit {
            u64::MAX
        } else {
            // By the end of the next window at the latest, nothing of today's counts remains.
            reset_ms.min(window)
        },
    }
}

pub(super) fn commit(rule: &Rule, state: u64, now: Millis, cost: u64) -> u64 {
    let index = now / rule.window_ms;
    let (previous, current) = counts(state, index);
    pack(index, previous, current + cost)
}

pub(super) fn refund(rule: &Rule, state: u64, now: Millis, cost: u64) -> u64 {
    let index = now / rule.window_ms;
    let (previous, current) = counts(state, index);
    pack(index, previous, current.saturating_sub(cost))
}

#[cfg(test)]
mod tests {
    use super::super::{Algorithm, SharedState};
    use super::*;

    #[test]
    fn the_previous_window_fades_out() {
        let rules = [Rule::rate("s", Algorithm::SlidingWindow, 10, 1, None)];
        let s = SharedState::new(1);
        for _ in 0..10 {
            assert!(s.check(&rules, 900, 1, 0.8).allowed);
        }
        assert!(!s.check(&rules, 950, 1, 0.8).allowed);
        // Halfway into the next window half of the previous 10 still counts.
        let d = s.check(&rules, 1500, 1, 0.8);
        assert!(d.allowed);
        assert_eq!(d.deciding().remaining, 4);
        assert!(!s.check(&rules, 1500, 5, 0.8).allowed);
        assert!(s.check(&rules, 1500, 4, 0.8).allowed);
        assert_eq!(
            s.check(&rules, 3000, 10, 0.8).deciding().remaining,
            0,
            "two windows later only the new request counts"
        );
    }
}
