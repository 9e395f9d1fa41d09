//! Retry delays of the sync loop.

use std::time::Duration;

/// The wait before the next sync round: `interval` while rounds succeed, doubling with each
/// consecutive failure, capped at `cap` (and never below `interval`).
pub fn backoff_delay(interval: Duration, failures: u32, cap: Duration) -> Duration {
    let cap = cap.max(interval);
    let factor = 1u32.checked_shl(failures.min(31)).unwrap_or(u32::MAX);
    interval.checked_mul(factor).map_or(cap, |d| d.min(cap))
}

/// [`backoff_delay`] with jitter once rounds fail: somewhere between half that delay and all of
/// it, placed by `unit` (a random number in `0.0..1.0`), and never below `interval`. Desktops
/// cut off by the same outage so do not all come back at the same instant; while rounds
/// succeed the wait is exactly `interval`.
pub fn jittered_backoff(interval: Duration, failures: u32, cap: Duration, unit: f64) -> Duration {
    let delay = backoff_delay(interval, failures, cap);
    if failures == 0 {
        return delay;
    }
    let half = delay / 2;
    let room = delay - half;
    let spread = Duration::try_from_secs_f64(room.as_secs_f64() * unit.clamp(0.0, 1.0))
        .unwrap_or(room)
        .min(room);
    (half + spread).max(interval).min(delay)
}

/// [`jittered_backoff`] with a fresh random `unit`.
pub(crate) fn next_wait(interval: Duration, failures: u32, cap: Duration) -> Duration {
    jittered_backoff(interval, failures, cap, rand::random::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn doubles_then_caps() {
        let s = Duration::from_secs;
        let cases = [
            (s(10), 0, s(300), s(10)),
            (s(10), 1, s(300), s(20)),
            (s(10), 2, s(300), s(40)),
            (s(10), 5, s(300), s(300)),
            (s(10), 40, s(300), s(300)),
            (s(10), u32::MAX, s(300), s(300)),
            (s(600), 3, s(300), s(600)),
            (Duration::MAX, 2, s(300), Duration::MAX),
        ];
        for (interval, failures, cap, expected) in cases {
            assert_eq!(
                backoff_delay(interval, failures, cap),
                expected,
                "{interval:?} {failures} {cap:?}"
            );
        }
    }

    #[test]
    fn jitter_spreads_failed_waits_between_half_and_all_of_the_delay() {
        let s = Duration::from_secs;
        // The desktop's own pacing: 2 s, at most 10 s.
        assert_eq!(
            jittered_backoff(s(2), 0, s(10), 0.7),
            s(2),
            "no jitter while well"
        );
        assert_eq!(jittered_backoff(s(2), 3, s(10), 0.0), s(5));
        assert_eq!(
            jittered_backoff(s(2), 3, s(10), 0.5),
            Duration::from_millis(7500)
        );
        assert_eq!(jittered_backoff(s(2), 3, s(10), 1.0), s(10));
        // Half of the first doubling is the interval itself: never shorter than that.
        assert_eq!(jittered_backoff(s(2), 1, s(10), 0.0), s(2));
        assert!(jittered_backoff(Duration::MAX, 3, s(1), 1.0) <= Duration::MAX);
        let waits: std::collections::BTreeSet<Duration> =
            (0..50).map(|_| next_wait(s(2), 4, s(10))).collect();
        assert!(waits.len() > 1, "random: {waits:?}");
    }

    proptest! {
        #[test]
        fn a_jittered_wait_stays_within_its_bounds(
            interval_ms in 1u64..100_000,
            cap_ms in 0u64..1_000_000,
            failures in any::<u32>(),
            unit in 0.0f64..1.0,
        ) {
            let (interval, cap) = (Duration::from_millis(interval_ms), Duration::from_millis(cap_ms));
            let delay = backoff_delay(interval, failures, cap);
            let wait = jittered_backoff(interval, failures, cap, unit);
            prop_assert!(wait <= delay, "{wait:?} > {delay:?}");
            prop_assert!(wait >= interval, "{wait:?} < {interval:?}");
            prop_assert!(wait >= delay / 2);
            if failures == 0 {
                prop_assert_eq!(wait, interval);
            }
        }
    }
}
