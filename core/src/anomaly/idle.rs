//! Keys that come back to life.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Finding, FindingKind, Thresholds, check_window_secs, window_label};
use crate::api::FieldError;

/// Traffic on a key that had not been used for longer than [`Thresholds::idle_days`].
///
/// # Rule
///
/// The detector remembers the start of the last window with any traffic (or the last use it
/// was seeded with, see [`IdleDetector::with_last_used`]). A window with traffic starting more
/// than `idle_days` days after that is reported once, as a [`FindingKind::IdleKeyUsed`] event
/// whose `observed` is the days idle and `expected` the threshold. A key's first use ever is
/// not reported (a new key is not an idle one). Windows before the last use are ignored.
///
/// What counts as traffic is the caller's choice; [`super::KeyMonitor`] counts every call
/// naming the key, refused ones included: someone trying a long-forgotten key is news even
/// when the key no longer works.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdleDetector {
    window_secs: u32,
    last_used: Option<DateTime<Utc>>,
}

impl IdleDetector {
    /// A detector for windows of `window_secs` (see [`super::check_window_secs`]).
    pub fn new(window_secs: u32) -> Result<IdleDetector, FieldError> {
        Ok(IdleDetector {
            window_secs: check_window_secs("window_secs", window_secs)?,
            last_used: None,
        })
    }

    /// Seeds the last use, e.g. from the key's stored `last_used_at`, for a detector started
    /// on a key with a history.
    pub fn with_last_used(mut self, last_used: Option<DateTime<Utc>>) -> IdleDetector {
        self.last_used = last_used;
        self
    }

    /// The last use the detector knows of.
    pub fn last_used(&self) -> Option<DateTime<Utc>> {
        self.last_used
    }

    /// Feeds the window starting at `window_start` with `requests` calls.
    pub fn observe(
        &mut self,
        thresholds: &Thresholds,
        window_start: DateTime<Utc>,
        requests: u64,
    ) -> Option<Finding> {
        if requests == 0 {
            return None;
        }
        let th = thresholds.sanitized();
        let previous = self.last_used;
        if previous.is_some_and(|last| window_start <= last) {
            return None;
        }
        self.last_used = Some(window_start);
        let last = previous?;
        let idle = window_start - last;
        if idle <= chrono::Duration::days(i64::from(th.idle_days)) {
            return None;
        }
        let days = idle.num_seconds() as f64 / 86_400.0;
        Some(Finding {
            kind: FindingKind::IdleKeyUsed,
            window_start,
            window_secs: self.window_secs,
            observed: days,
            expected: f64::from(th.idle_days),
            network: None,
            detail: format!(
                "{requests} requests in the {} window from {} after {days:.1} days without use \
                 (last use {}; idle threshold {} days)",
                window_label(self.window_secs),
                window_start.format("%Y-%m-%d %H:%M UTC"),
                last.format("%Y-%m-%d %H:%M UTC"),
                th.idle_days,
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::super::testutil::*;
    use super::*;

    fn resume_after(days: i64) -> Option<Finding> {
        let th = Thresholds::default();
        let mut det = IdleDetector::new(300).unwrap();
        for i in 0..DAY_WINDOWS {
            assert_eq!(det.observe(&th, window(i), 50), None);
        }
        let last = window(DAY_WINDOWS - 1);
        // Empty windows in between change nothing.
        assert_eq!(det.observe(&th, last + Duration::days(1), 0), None);
        det.observe(&th, last + Duration::days(days), 3)
    }

    #[test]
    fn a_key_resuming_after_forty_days_is_reported() {
        let f = resume_after(40).unwrap();
        assert_eq!(f.kind, FindingKind::IdleKeyUsed);
        assert_eq!(f.observed, 40.0);
        assert_eq!(f.expected, 30.0);
        assert_eq!(f.window_start, window(DAY_WINDOWS - 1) + Duration::days(40));
        assert!(
            f.detail.contains("after 40.0 days without use"),
            "{}",
            f.detail
        );
    }

    #[test]
    fn a_key_resuming_after_ten_days_is_not() {
        assert_eq!(resume_after(10), None);
        assert_eq!(
            resume_after(30),
            None,
            "exactly the threshold is not over it"
        );
    }

    #[test]
    fn reported_once_and_only_for_known_history() {
        let th = Thresholds::default();
        let mut fresh = IdleDetector::new(300).unwrap();
        assert_eq!(
            fresh.observe(&th, t0(), 1),
            None,
            "a first use is not a resumption"
        );

        let mut det = IdleDetector::new(300)
            .unwrap()
            .with_last_used(Some(t0() - Duration::days(90)));
        assert!(det.observe(&th, t0(), 1).is_some());
        assert_eq!(det.observe(&th, window(1), 1), None);
        assert_eq!(det.observe(&th, window(0), 1), None, "replay");
        assert_eq!(det.last_used(), Some(window(1)));

        let short = Thresholds {
            idle_days: 5,
            ..Thresholds::default()
        };
        assert!(
            det.observe(&short, window(1) + Duration::days(6), 1)
                .is_some()
        );
    }
}
