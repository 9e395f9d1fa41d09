//! GCRA (the generic cell rate algorithm), equivalent to a token bucket: `limit` units per
//! window, with room for `burst` at once. The state is one number: the theoretical arrival time
//! (TAT) of the next unit, in integer nanoseconds (no floating point, no division on the allow
//! path but the remaining count). The Redis script runs the same arithmetic, on the same
//! nanoseconds ([`Rule::gcra_ns`]).

use super::{Decision, Millis, Rule};

const NS_PER_MS: u64 = 1_000_000;

/// The most a bucket holds, in nanoseconds of refill: 2^62 ns, 146 years. Then the TAT, now
/// plus the tolerance plus any cost's emission, fits in a u64 for centuries to come. Only
/// absurd rules reach it (a burst of more than 53,375 at one unit a day is cut to that); before
/// the cap, `now + tolerance` saturated for them, and past a burst of 213,503 at one a day the
/// tolerance itself did, and such a rule let every request through.
pub(super) const MAX_TOLERANCE_NS: u64 = 1 << 62;

/// (nanoseconds per unit, tolerance) for `limit` units per window with `burst` at once.
pub(super) fn params(limit: u64, window_ms: u64, burst: u64) -> (u64, u64) {
    let emission = (window_ms.saturating_mul(NS_PER_MS) / limit.max(1)).max(1);
    let tolerance = u64::try_from(u128::from(emission) * u128::from(burst))
        .unwrap_or(u64::MAX)
        .min(MAX_TOLERANCE_NS);
    (emission, tolerance)
}

pub(super) fn peek(rule: &Rule, tat: u64, now: Millis, cost: u64) -> Decision {
    let now = now.saturating_mul(NS_PER_MS);
    let basis = tat.max(now);
    let next = basis.saturating_add(rule.emission_ns.saturating_mul(cost));
    let allow_at = next.saturating_sub(rule.tolerance_ns);
    let allowed = allow_at <= now;
    let after = if allowed { next } else { basis };
    let room = now.saturating_add(rule.tolerance_ns).saturating_sub(after);
    Decision {
        allowed,
        limit: rule.burst,
        remaining: (room / rule.emission_ns).min(rule.burst),
        reset_ms: (after - now).div_ceil(NS_PER_MS),
        retry_after_ms: if allowed {
            0
        } else if cost > rule.burst {
            u64::MAX
        } else {
            (allow_at - now).div_ceil(NS_PER_MS)
        },
    }
}

/// The state is the theoretical arrival time in nanoseconds since the epoch.
pub(super) fn commit(rule: &Rule, tat: u64, now: Millis, cost: u64) -> u64 {
    tat.max(now.saturating_mul(NS_PER_MS))
        .saturating_add(rule.emission_ns.saturating_mul(cost))
}

pub(super) fn refund(rule: &Rule, tat: u64, cost: u64) -> u64 {
    tat.saturating_sub(rule.emission_ns.saturating_mul(cost))
}

#[cfg(test)]
mod tests {
    use super::super::{Algorithm, SharedState};
    use super::*;

    #[test]
    fn burst_then_steady_refill() {
        // 10 per second, burst 5.
        let rules = [Rule::rate("g", Algorithm::Gcra, 10, 1, Some(5))];
        let s = SharedState::new(1);
        let t0 = 1_000_000;
        for i in 0..5 {
            let d = s.check(&rules, t0, 1, 0.8);
            assert!(d.allowed, "burst unit {i}");
            assert_eq!(d.deciding().remaining, 4 - i);
        }
        let d = s.check(&rules, t0, 1, 0.8);
        assert!(!d.allowed);
        assert_eq!(d.deciding().retry_after_ms, 100);
        assert!(!s.check(&rules, t0 + 99, 1, 0.8).allowed);
        assert!(
            s.check(&rules, t0 + 100, 1, 0.8).allowed,
            "one unit refills every 100 ms"
        );
        assert!(
            s.check(&rules, t0 + 600, 5, 0.8).allowed,
            "a full burst 500 ms later"
        );
        assert_eq!(
            s.check(&rules, t0 + 5000, 6, 0.8).deciding().retry_after_ms,
            u64::MAX
        );
    }

    #[test]
    fn a_clock_going_backwards_grants_nothing_extra() {
        let rules = [Rule::rate("g", Algorithm::Gcra, 1, 1, None)];
        let s = SharedState::new(1);
        assert!(s.check(&rules, 5000, 1, 0.8).allowed);
        assert!(!s.check(&rules, 4000, 1, 0.8).allowed);
        assert!(!s.check(&rules, 5999, 1, 0.8).allowed);
        assert!(s.check(&rules, 6000, 1, 0.8).allowed);
    }

    #[test]
    fn a_burst_worth_centuries_is_capped_not_unlimited() {
        // One a day with a burst of a million: 2,738 years of refill, more than a u64 of
        // nanoseconds holds. Such a rule let every request through; now the bucket holds
        // MAX_TOLERANCE_NS (53,375 days' worth) and refuses past it.
        let rules = [Rule::rate("g", Algorithm::Gcra, 1, 86_400, Some(1_000_000))];
        let cap = MAX_TOLERANCE_NS / 86_400_000_000_000;
        assert_eq!(cap, 53_375);
        let s = SharedState::new(1);
        let now = 4_000_000_000_000; // 2096
        let first = s.check(&rules, now, 1, 0.8);
        assert!(first.allowed);
        assert_eq!(first.deciding().remaining, cap - 1);
        assert!(s.check(&rules, now, 10_000, 0.8).allowed);
        assert!(s.check(&rules, now, cap - 10_001, 0.8).allowed);
        let refused = s.check(&rules, now, 1, 0.8);
        assert!(!refused.allowed, "the bucket is empty");
        // The next unit fits when the TAT has come down to the cap again.
        let day_ns = 86_400_000_000_000;
        assert_eq!(
            refused.deciding().retry_after_ms,
            ((cap + 1) * day_ns - MAX_TOLERANCE_NS).div_ceil(NS_PER_MS)
        );
    }

    #[test]
    fn over_a_long_run_the_rate_holds() {
        // 100 per second, burst 1, one attempt per millisecond for 10 s: exactly 1,000.
        let rules = [Rule::rate("g", Algorithm::Gcra, 100, 1, Some(1))];
        let s = SharedState::new(1);
        let allowed = (0..10_000)
            .filter(|t| s.check(&rules, 10_000 + t, 1, 0.8).allowed)
            .count();
        assert_eq!(allowed, 1000);
    }
}
