//! Request-rate anomalies against a seasonal (hour-of-day) baseline.

mod learning;

#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Finding, FindingKind, Thresholds, align, at, check_window_secs, window_label};
use crate::api::FieldError;
use learning::{HourSum, Slot};

/// After this many days without any window fed, the rate baseline starts learning afresh
/// instead of filling the gap with empty windows (its old rhythm no longer says much).
pub const MAX_GAP_FILL_DAYS: i64 = 8;

/// An hour-of-day baseline must have learned this many days before it is trusted.
const MIN_SLOT_DAYS: u32 = 2;
/// Half-life of the recent level (see [`RateDetector`]).
pub const LEVEL_HALF_LIFE_HOURS: u32 = 6;
/// The recent level stays within `1..=MAX_LEVEL` times the hour-of-day baseline.
const MAX_LEVEL: f64 = 4.0;
/// Below this many expected requests per window the recent level is not trusted (it is 1).
const MIN_LEVEL_EXPECTED: f64 = 1.0;
const DAY: i64 = 86_400;
const HOUR: i64 = 3_600;

/// What the detector expects of a window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// Expected requests in the window: `seasonal × level`.
    pub expected: f64,
    /// The hour-of-day baseline for the window.
    pub seasonal: f64,
    /// The recent level: how much busier the key has been lately than its hour-of-day
    /// baselines (1 when it behaves as usual or is quieter, at most 4).
    pub level: f64,
    /// Standard deviation used for z-scores: `sqrt(max(variance × level, expected, 1))`.
    pub std_dev: f64,
    /// Days learned by the less experienced of the two hour-of-day baselines involved.
    pub learned_days: u32,
}

/// Spikes and collapses of one key's request rate, with the daily rhythm learned.
///
/// # Baseline
///
/// The detector keeps **24 hour-of-day baselines** (UTC hours). Each is an exponentially
/// weighted moving average (EWMA) of that hour's mean requests per window, plus an EWMA of
/// the squared deviation of that hour's windows from what was expected of them (an
/// exponentially weighted variance). A baseline learns **once a day**: an hour's windows are
/// summed while it runs and folded in when the next hour starts, with weight
/// [`Thresholds::ewma_alpha`] (0.2 by default, a half-life of about three days); the first days
/// are averaged equally (weight `max(alpha, 1/(days + 1))`) so that two days suffice to start.
///
/// A window's seasonal value and variance are interpolated linearly between the two baselines
/// whose hour centres (`hh:30`) surround the middle of the window, so a rising morning is a
/// slope, not a step at every full hour. This is the simplest model of a daily rhythm that
/// holds up: a key busy at noon and quiet at night is compared with its own noon and its own
/// night. A rhythm in a local time zone is still a daily rhythm in UTC; a daylight-saving shift
/// is absorbed within a few days.
///
/// Growth is followed by a short-term **level**: the ratio of two EWMAs with a half-life of
/// [`LEVEL_HALF_LIFE_HOURS`], one of the (clamped, see below) observed counts and one of the
/// seasonal values, kept within 1–4 (1 while fewer than one request per window is expected).
/// The expected value of a window is `seasonal × level`, its variance the seasonal variance
/// times the level. Without it the once-a-day baselines would lag a growing key by days, and
/// its night-time windows near `min_volume` would look like spikes. The level never lowers
/// expectations: a quieter period needs no help (a drop must fall below `drop_fraction`), and
/// a level that followed a quiet weekend down would make every Monday morning a spike.
///
/// A weekly rhythm is not modelled otherwise: with the defaults a weekend at a third of the
/// weekday traffic is no spike on Monday and only occasionally a drop (a quiet night window of
/// the first weekend falling below a tenth of the weekday night); a weekend at twice the
/// weekday traffic is at the edge of `spike_ratio`.
///
/// # Rule
///
/// With `sd = sqrt(max(variance × level, expected, 1))` (never below Poisson noise) and
/// `z = (observed − expected) / sd`, a window is
///
/// * a [`FindingKind::RateSpike`] if `observed ≥ min_volume`, `observed ≥ spike_ratio ×
///   expected` and `z ≥ z_score`;
/// * a [`FindingKind::RateDrop`] (a busy key collapsing to near zero) if `expected ≥
///   min_volume`, `observed ≤ drop_fraction × expected` and `z ≤ −z_score`.
///
/// `min_volume` keeps quiet keys out (a key doing 0–3 requests per window never alerts on a
/// burst to 12), yet a quiet key suddenly doing hundreds does. The ratio conditions demand a
/// practical difference on top of a statistical one, so a very busy key is not flagged for a
/// few per cent. No finding is made before [`Thresholds::warmup_windows`] windows have been
/// learned and both baselines involved have learned two days.
///
/// # Robustness and slow change
///
/// Before a window is learned its count is clamped to `expected ± z_score × sd`, so a spike or
/// an outage barely moves the baselines and is reported for as long as it lasts: one window
/// moves the level by at most `weight × z_score × sd / expected` (weight ≈ 0.0096 for
/// five-minute windows; about 0.3 % for 200 requests a window). A slow rise is followed by the
/// level within hours: traffic doubling over a week is not reported. A lasting jump is
/// reported at first and then learned, through the level in clamped steps and through the
/// hour-of-day baselines, whose clamped deviations inflate their variance by about
/// `1 − alpha + alpha × z_score²` a day: with the defaults a 200-a-window key jumping to 2.5×
/// for good is reported for about seven hours, to 4× for most of a day. A busy key that stops
/// for good is reported as a drop until the hour-of-day baselines have learned its silence,
/// about two days (see the tests).
///
/// # Feeding
///
/// See the [module contract](super): windows in order, empty windows included; a skipped
/// window counts as an empty one (its findings are returned with the next window), a gap of
/// more than [`MAX_GAP_FILL_DAYS`] restarts learning, and a replayed window is ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RateDetector {
    window_secs: u32,
    windows_seen: u64,
    /// Start of the last window fed (Unix seconds).
    last_window: Option<i64>,
    slots: [Slot; 24],
    current: Option<HourSum>,
    /// EWMAs of the clamped observed counts and of the seasonal values, for the level.
    recent_observed: f64,
    recent_seasonal: f64,
}

impl RateDetector {
    /// A detector for windows of `window_secs` (see [`super::check_window_secs`]).
    pub fn new(window_secs: u32) -> Result<RateDetector, FieldError> {
        let window_secs = check_window_secs("window_secs", window_secs)?;
        Ok(RateDetector::fresh(window_secs))
    }

    fn fresh(window_secs: u32) -> RateDetector {
        RateDetector {
            window_secs,
            windows_seen: 0,
            last_window: None,
            slots: [Slot::default(); 24],
            current: None,
            recent_observed: 0.0,
            recent_seasonal: 0.0,
        }
    }

    pub fn window_secs(&self) -> u32 {
        self.window_secs
    }

    /// Windows learned since the detector started (or restarted after a long gap).
    pub fn windows_seen(&self) -> u64 {
        self.windows_seen
    }

    /// What the detector would expect of the window starting at `window_start` (for charts:
    /// an expected line and a band of `z_score × std_dev`); `None` while it has not learned
    /// the hours involved.
    pub fn baseline(&self, window_start: DateTime<Utc>) -> Option<Baseline> {
        self.baseline_at(align(window_start.timestamp(), self.window_secs))
    }

    /// Feeds the request count of the window starting at `window_start`; returns the findings
    /// of this window and of any skipped windows before it, oldest first.
    pub fn observe(
        &mut self,
        thresholds: &Thresholds,
        window_start: DateTime<Utc>,
        count: u64,
    ) -> Vec<Finding> {
        let th = thresholds.sanitized();
        let w = i64::from(self.window_secs);
        let start = align(window_start.timestamp(), self.window_secs);
        let mut findings = Vec::new();
        if let Some(last) = self.last_window {
            if start <= last {
                return findings;
            }
            if start - last > MAX_GAP_FILL_DAYS * DAY {
                *self = RateDetector::fresh(self.window_secs);
            } else {
                let mut skipped = last + w;
                while skipped < start {
                    findings.extend(self.step(&th, skipped, 0));
                    skipped += w;
                }
            }
        }
        findings.extend(self.step(&th, start, count));
        findings
    }

    fn judge(&self, th: &Thresholds, start: i64, observed: f64, b: Baseline) -> Option<Finding> {
        let z = (observed - b.expected) / b.std_dev;
        let min_volume = th.min_volume as f64;
        let kind =
            if observed >= min_volume && observed >= th.spike_ratio * b.expected && z >= th.z_score
            {
                FindingKind::RateSpike
            } else if b.expected >= min_volume
                && observed <= th.drop_fraction * b.expected
                && z <= -th.z_score
            {
                FindingKind::RateDrop
            } else {
                return None;
            };
        let window_start = at(start);
        let ratio = if b.expected >= 1.0 {
            format!(", {:.1}× expected", observed / b.expected)
        } else {
            String::new()
        };
        let detail = format!(
            "{observed} requests in the {} window from {}, expected about {:.0} ± {:.0} for \
             this time of day (z = {z:.1}{ratio})",
            window_label(self.window_secs),
            window_start.format("%Y-%m-%d %H:%M UTC"),
            b.expected,
            b.std_dev,
        );
        Some(Finding {
            kind,
            window_start,
            window_secs: self.window_secs,
            observed,
            expected: b.expected,
            network: None,
            detail,
        })
    }
}
