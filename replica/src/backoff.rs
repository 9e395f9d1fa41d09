//! Retry delays of the sync loop.

use std::time::Duration;

/// The wait before the next sync round: `interval` while rounds succeed, doubling with each
/// consecutive failure, capped at `cap` (and never below `interval`).
pub fn backoff_delay(interval: Duration, failures: u32, cap: Duration) -> Duration {
    let cap = cap.max(interval);
    let factor = 1u32.checked_shl(failures.min(31)).unwrap_or(u32::MAX);
    interval.checked_mul(factor).map_or(cap, |d| d.min(cap))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
