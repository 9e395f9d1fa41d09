//! Bursts of refused attempts against one key.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{
    Finding, RejectedKind, Thresholds, WindowCounts, align, at, check_window_secs, window_label,
};
use crate::api::FieldError;

const HOUR: f64 = 3_600.0;

/// Bursts of `invalid_secret` (a known key id with a wrong secret: someone guessing or holding
/// an old secret), `ip_not_allowed` and `insufficient_scope` refusals.
///
/// # Rule
///
/// For each kind separately the detector keeps the key's *usual* refusals per window, an EWMA
/// learning every window with the weight that gives a half-life of
/// [`Thresholds::rejected_half_life_hours`] (`1 − 0.5^(window_secs / half_life)`, about 0.0024
/// for five-minute windows and the default 24 hours). A window with `observed` refusals of a
/// kind is a burst if
///
/// * `observed ≥ rejected_burst` (20 by default), and
/// * it is far above the usual `u`: `observed ≥ spike_ratio × u` and
///   `(observed − u) / sqrt(max(u, 1)) ≥ z_score` (Poisson noise).
///
/// So 50 wrong secrets in five minutes on a key that normally has none is a burst, 5 is not.
/// There is no warm-up: a new key has no refusals to expect.
///
/// A window is learned after it is judged, its count capped at the burst threshold
/// (`max(rejected_burst, spike_ratio × u)`), so a lasting attack keeps being reported for
/// days instead of teaching itself as normal within hours. The price: a client that starts
/// failing steadily (say 30 times a window, because of a stale secret) is reported until it
/// is fixed or learned, which takes a few days with the defaults, the end flapping as the
/// usual rate nears half the observed one. Debounce, or raise `rejected_burst` for such keys.
/// Skipped windows count as windows without refusals; replayed windows are ignored. Findings
/// are level-triggered (see the [module contract](super)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RejectedDetector {
    window_secs: u32,
    /// Start of the last window fed (Unix seconds).
    last_window: Option<i64>,
    /// Usual refusals per window, indexed by [`RejectedKind`].
    usual: [f64; 3],
}

impl RejectedDetector {
    /// A detector for windows of `window_secs` (see [`super::check_window_secs`]).
    pub fn new(window_secs: u32) -> Result<RejectedDetector, FieldError> {
        Ok(RejectedDetector {
            window_secs: check_window_secs("window_secs", window_secs)?,
            last_window: None,
            usual: [0.0; 3],
        })
    }

    /// The key's usual refusals of `kind` per window.
    pub fn usual(&self, kind: RejectedKind) -> f64 {
        self.usual[kind.index()]
    }

    /// Feeds the refusals of the window starting at `window_start`; one finding per kind in a
    /// burst.
    pub fn observe(
        &mut self,
        thresholds: &Thresholds,
        window_start: DateTime<Utc>,
        counts: &WindowCounts,
    ) -> Vec<Finding> {
        let th = thresholds.sanitized();
        let w = i64::from(self.window_secs);
        let start = align(window_start.timestamp(), self.window_secs);
        let half_life = f64::from(th.rejected_half_life_hours) * HOUR;
        if let Some(last) = self.last_window {
            if start <= last {
                return Vec::new();
            }
            // Skipped windows had no refusals: the usual rate decays over them.
            let skipped = ((start - last) / w - 1) as f64;
            let decay = 0.5f64.powf(skipped * f64::from(self.window_secs) / half_life);
            self.usual.iter_mut().for_each(|u| *u *= decay);
        }
        self.last_window = Some(start);
        let weight = 1.0 - 0.5f64.powf(f64::from(self.window_secs) / half_life);
        let burst = th.rejected_burst as f64;

        let mut findings = Vec::new();
        for kind in RejectedKind::ALL {
            let observed = counts.rejected(kind) as f64;
            let usual = self.usual[kind.index()];
            let z = (observed - usual) / usual.max(1.0).sqrt();
            if observed >= burst && observed >= th.spike_ratio * usual && z >= th.z_score {
                let window_start = at(start);
                findings.push(Finding {
                    kind: kind.finding_kind(),
                    window_start,
                    window_secs: self.window_secs,
                    observed,
                    expected: usual,
                    network: None,
                    detail: format!(
                        "{observed} {} refusals in the {} window from {}, usually about {usual:.1} \
                         per window",
                        kind.as_str(),
                        window_label(self.window_secs),
                        window_start.format("%Y-%m-%d %H:%M UTC"),
                    ),
                });
            }
            let cap = burst.max(th.spike_ratio * usual);
            self.usual[kind.index()] += weight * (observed.min(cap) - usual);
        }
        findings
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::{FindingKind, WindowCounts};
    use super::*;

    fn refusals(invalid_secret: u64, ip_not_allowed: u64, insufficient_scope: u64) -> WindowCounts {
        WindowCounts {
            valid: 100,
            invalid_secret,
            ip_not_allowed,
            insufficient_scope,
            ..WindowCounts::default()
        }
    }

    /// Ten days of background refusals from `background`, then `burst` in one window.
    fn burst_after_history(
        background: impl Fn(&mut rand::rngs::StdRng) -> WindowCounts,
        burst: WindowCounts,
    ) -> (Vec<Finding>, Vec<Finding>) {
        let th = Thresholds::default();
        let mut det = RejectedDetector::new(300).unwrap();
        let mut rng = rng(21);
        let mut history = Vec::new();
        for i in 0..10 * DAY_WINDOWS {
            history.extend(det.observe(&th, window(i), &background(&mut rng)));
        }
        let found = det.observe(&th, window(10 * DAY_WINDOWS), &burst);
        (history, found)
    }

    fn rare_failures(rng: &mut rand::rngs::StdRng) -> WindowCounts {
        // About one wrong secret an hour.
        let n = u64::from(rand::Rng::gen_range(rng, 0..12) == 0);
        refusals(n, 0, 0)
    }

    #[test]
    fn fifty_wrong_secrets_are_a_burst() {
        let (history, found) = burst_after_history(rare_failures, refusals(50, 0, 0));
        assert_eq!(history, []);
        assert_eq!(found.len(), 1);
        let f = &found[0];
        assert_eq!(f.kind, FindingKind::InvalidSecretBurst);
        assert_eq!(f.observed, 50.0);
        assert!(f.expected < 0.2, "{f:?}");
        assert_eq!(f.window_start, window(10 * DAY_WINDOWS));
        assert!(
            f.detail
                .starts_with("50 invalid_secret refusals in the 5-minute window")
        );
    }

    #[test]
    fn five_wrong_secrets_are_not() {
        let (history, found) = burst_after_history(rare_failures, refusals(5, 0, 0));
        assert_eq!(history, []);
        assert_eq!(found, []);
    }

    #[test]
    fn each_kind_is_reported_separately() {
        let (_, found) = burst_after_history(rare_failures, refusals(0, 25, 40));
        let kinds: Vec<_> = found.iter().map(|f| f.kind).collect();
        assert_eq!(
            kinds,
            [
                FindingKind::IpNotAllowedBurst,
                FindingKind::InsufficientScopeBurst
            ]
        );
    }

    #[test]
    fn a_steadily_failing_client_is_learned() {
        // A misconfigured client starts failing about 30 times a window and keeps at it.
        let (history, found) = burst_after_history(
            |rng| refusals(0, poisson_like(rng, 30.0), 0),
            refusals(0, 50, 0),
        );
        // It is reported from its first windows until it is learned (a few days with the
        // defaults, the tail flapping as the usual rate nears half the observed one) ...
        assert!(history.first().unwrap().window_start < window(6));
        let last = history.last().unwrap().window_start;
        assert!(
            last < window(4 * DAY_WINDOWS),
            "{} findings, last {last}",
            history.len()
        );
        // ... after which it is the key's normal, and 50 is not far above it.
        assert_eq!(found, []);
    }

    #[test]
    fn a_lasting_attack_keeps_being_reported() {
        let th = Thresholds::default();
        let mut det = RejectedDetector::new(300).unwrap();
        for i in 0..DAY_WINDOWS {
            let found = det.observe(&th, window(i), &refusals(60, 0, 0));
            assert_eq!(found.len(), 1, "window {i}");
        }
        // It ends: the condition clears with the next window.
        assert_eq!(
            det.observe(&th, window(DAY_WINDOWS), &refusals(0, 0, 0)),
            []
        );
    }

    #[test]
    fn skipped_windows_decay_the_usual_rate_and_replays_are_ignored() {
        let th = Thresholds::default();
        let mut det = RejectedDetector::new(300).unwrap();
        for i in 0..DAY_WINDOWS {
            det.observe(&th, window(i), &refusals(10, 0, 0));
        }
        let usual = det.usual(RejectedKind::InvalidSecret);
        assert!((1.0..10.0).contains(&usual), "{usual}");
        let before = det.clone();
        assert_eq!(det.observe(&th, window(3), &refusals(500, 0, 0)), []);
        assert_eq!(det, before);
        // A day with no rows at all: one half-life.
        det.observe(&th, window(2 * DAY_WINDOWS), &refusals(0, 0, 0));
        let decayed = det.usual(RejectedKind::InvalidSecret);
        assert!(
            (decayed - usual * 0.5).abs() < 0.01 * usual,
            "{usual} → {decayed}"
        );
    }
}
