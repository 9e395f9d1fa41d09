//! Request-rate anomalies against a seasonal (hour-of-day) baseline.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Finding, FindingKind, Thresholds, align, at, check_window_secs, window_label};
use crate::api::FieldError;

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

/// One hour of the day: the exponentially weighted mean of that hour's requests per window and
/// the exponentially weighted variance of its windows around what was expected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
struct Slot {
    mean: f64,
    var: f64,
    /// Days learned (saturating).
    days: u32,
}

/// The hour being observed, folded into its [`Slot`] once the next hour starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
struct HourSum {
    /// Hours since the Unix epoch.
    hour: i64,
    windows: u32,
    /// Sum and sum of squares of the (clamped) counts.
    sum: f64,
    sum_sq: f64,
    /// Windows that had a baseline, and their squared (clamped) deviations from it.
    residuals: u32,
    residual_sq: f64,
}

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

    fn baseline_at(&self, start: i64) -> Option<Baseline> {
        let middle = start + i64::from(self.window_secs) / 2;
        // Hours since the centre of hour 0 (00:30).
        let position = middle.rem_euclid(DAY) as f64 / HOUR as f64 - 0.5;
        let below = position.floor();
        let frac = position - below;
        let h0 = (below as i64).rem_euclid(24) as usize;
        let (a, b) = (self.slots[h0], self.slots[(h0 + 1) % 24]);
        if a.days == 0 || b.days == 0 {
            return None;
        }
        let seasonal = (a.mean + frac * (b.mean - a.mean)).max(0.0);
        let var = (a.var + frac * (b.var - a.var)).max(0.0);
        let level = self.level();
        let expected = seasonal * level;
        Some(Baseline {
            expected,
            seasonal,
            level,
            std_dev: (var * level).max(expected).max(1.0).sqrt(),
            learned_days: a.days.min(b.days),
        })
    }

    fn level(&self) -> f64 {
        if self.recent_seasonal < MIN_LEVEL_EXPECTED {
            return 1.0;
        }
        (self.recent_observed / self.recent_seasonal).clamp(1.0, MAX_LEVEL)
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

    fn step(&mut self, th: &Thresholds, start: i64, count: u64) -> Option<Finding> {
        let hour = start.div_euclid(HOUR);
        if let Some(sum) = self.current
            && sum.hour != hour
        {
            self.learn(th, sum);
            self.current = None;
        }
        let observed = count as f64;
        let baseline = self.baseline_at(start);
        let warm = self.windows_seen >= u64::from(th.warmup_windows);
        let finding = baseline
            .filter(|b| warm && b.learned_days >= MIN_SLOT_DAYS)
            .and_then(|b| self.judge(th, start, observed, b));

        let sum = self.current.get_or_insert(HourSum {
            hour,
            ..HourSum::default()
        });
        sum.windows += 1;
        let learned = match baseline {
            Some(b) => {
                let reach = th.z_score * b.std_dev;
                let clamped = observed.min(b.expected + reach).max(b.expected - reach);
                sum.residuals += 1;
                sum.residual_sq += (clamped - b.expected).powi(2);
                let clamped = clamped.max(0.0);
                let weight = 1.0
                    - 0.5f64.powf(
                        f64::from(self.window_secs) / f64::from(LEVEL_HALF_LIFE_HOURS * 3600),
                    );
                self.recent_observed += weight * (clamped - self.recent_observed);
                self.recent_seasonal += weight * (b.seasonal - self.recent_seasonal);
                clamped
            }
            None => observed,
        };
        sum.sum += learned;
        sum.sum_sq += learned * learned;
        self.windows_seen += 1;
        self.last_window = Some(start);
        finding
    }

    /// Folds a finished hour into its hour-of-day baseline.
    fn learn(&mut self, th: &Thresholds, sum: HourSum) {
        if sum.windows == 0 {
            return;
        }
        let slot = &mut self.slots[sum.hour.rem_euclid(24) as usize];
        let n = f64::from(sum.windows);
        let mean = sum.sum / n;
        if slot.days == 0 {
            slot.mean = mean;
            slot.var = (sum.sum_sq / n - mean * mean).max(0.0);
        } else {
            let weight = th.ewma_alpha.max(1.0 / (f64::from(slot.days) + 1.0));
            slot.mean += weight * (mean - slot.mean);
            if sum.residuals > 0 {
                slot.var += weight * (sum.residual_sq / f64::from(sum.residuals) - slot.var);
            }
        }
        slot.days = slot.days.saturating_add(1);
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

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    const SPIKE_DAY: usize = 10;

    /// Feeds `days` of five-minute windows with Poisson-like noise around `lambda(i)`;
    /// returns the findings with their window index.
    fn run(
        det: &mut RateDetector,
        th: &Thresholds,
        days: usize,
        seed: u64,
        lambda: impl Fn(usize) -> f64,
    ) -> Vec<(usize, Finding)> {
        let mut rng = rng(seed);
        let mut out = Vec::new();
        for i in 0..days * DAY_WINDOWS {
            let count = poisson_like(&mut rng, lambda(i));
            for f in det.observe(th, window(i), count) {
                out.push((i, f));
            }
        }
        out
    }

    fn detector() -> RateDetector {
        RateDetector::new(300).unwrap()
    }

    fn indices(findings: &[(usize, Finding)]) -> Vec<usize> {
        findings.iter().map(|(i, _)| *i).collect()
    }

    fn near(value: f64, target: f64, tolerance: f64) -> bool {
        (value - target).abs() <= tolerance * target
    }

    #[test]
    fn steady_traffic_gives_no_finding() {
        let th = Thresholds::default();
        for seed in [1, 2, 3] {
            let mut det = detector();
            let found = run(&mut det, &th, 14, seed, |_| 200.0);
            assert!(found.is_empty(), "seed {seed}: {found:?}");
            let b = det.baseline(window(14 * DAY_WINDOWS)).unwrap();
            assert!(near(b.expected, 200.0, 0.03), "{b:?}");
            assert!((12.0..20.0).contains(&b.std_dev), "{b:?}");
        }
    }

    #[test]
    fn daily_rhythm_gives_no_finding() {
        let th = Thresholds::default();
        for seed in [1, 2, 3] {
            let mut det = detector();
            let found = run(&mut det, &th, 14, seed, seasonal);
            assert!(found.is_empty(), "seed {seed}: {found:?}");
            let noon = det.baseline(window(14 * DAY_WINDOWS + 144)).unwrap();
            let night = det.baseline(window(14 * DAY_WINDOWS)).unwrap();
            assert!(near(noon.expected, 400.0, 0.05), "{noon:?}");
            assert!(near(night.expected, 20.0, 0.25), "{night:?}");
        }
    }

    #[test]
    fn a_spike_is_reported_exactly_while_it_lasts() {
        let th = Thresholds::default();
        // Day 10, 14:00–14:15: ten times the usual 200.
        let spike = SPIKE_DAY * DAY_WINDOWS + 14 * 12;
        let mut det = detector();
        let found = run(&mut det, &th, 14, 7, |i| {
            if (spike..spike + 3).contains(&i) {
                2000.0
            } else {
                200.0
            }
        });
        assert_eq!(indices(&found), [spike, spike + 1, spike + 2]);
        for (i, f) in &found {
            assert_eq!(f.kind, FindingKind::RateSpike);
            assert_eq!(f.window_start, window(*i));
            assert_eq!(f.window_secs, 300);
            assert!(near(f.observed, 2000.0, 0.1), "{f:?}");
            assert!(near(f.expected, 200.0, 0.05), "{f:?}");
            assert!(f.detail.contains("5-minute window"), "{}", f.detail);
        }
        assert!(
            found[0]
                .1
                .detail
                .contains("from 2024-01-11 14:00 UTC, expected about 2"),
            "{}",
            found[0].1.detail
        );
    }

    #[test]
    fn a_night_spike_is_reported_on_a_daily_rhythm() {
        // 10× the night-time level at 02:00 is still about the noon level: only a seasonal
        // baseline sees it.
        let th = Thresholds::default();
        let spike = SPIKE_DAY * DAY_WINDOWS + 2 * 12;
        let mut det = detector();
        let found = run(&mut det, &th, 14, 8, |i| {
            let base = seasonal(i);
            if (spike..spike + 3).contains(&i) {
                10.0 * base
            } else {
                base
            }
        });
        assert_eq!(indices(&found), [spike, spike + 1, spike + 2]);
        assert!(found.iter().all(|(_, f)| f.kind == FindingKind::RateSpike));
        assert!(found[0].1.expected < 60.0, "{:?}", found[0].1);
        assert!(found[0].1.observed > 350.0, "{:?}", found[0].1);
    }

    #[test]
    fn a_slow_ramp_is_not_an_anomaly() {
        // Four days flat, then doubling over seven days, then three days at the new level.
        let growth = |i: usize| {
            let days = i as f64 / DAY_WINDOWS as f64;
            2f64.powf(((days - 4.0) / 7.0).clamp(0.0, 1.0))
        };
        let th = Thresholds::default();
        let mut det = detector();
        let found = run(&mut det, &th, 14, 9, |i| 200.0 * growth(i));
        assert!(found.is_empty(), "{found:?}");
        // The hour-of-day baselines lag; the recent level makes up for it.
        let b = det.baseline(window(14 * DAY_WINDOWS)).unwrap();
        assert!(near(b.expected, 400.0, 0.05), "{b:?}");
        assert!(b.level > 1.1, "{b:?}");

        let mut det = detector();
        let found = run(&mut det, &th, 14, 10, |i| seasonal(i) * growth(i));
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn a_quiet_weekend_is_no_spike_on_monday() {
        // Weekends (2024-01-06/07 and 13/14) at 30 % of the weekday rhythm.
        let th = Thresholds::default();
        let mut det = detector();
        let found = run(&mut det, &th, 14, 22, |i| {
            let weekend = (i / DAY_WINDOWS) % 7 >= 5;
            seasonal(i) * if weekend { 0.3 } else { 1.0 }
        });
        assert!(
            found.iter().all(|(_, f)| f.kind == FindingKind::RateDrop),
            "{found:?}"
        );
    }

    #[test]
    fn a_lasting_jump_is_reported_then_learned() {
        let th = Thresholds::default();
        let jump = 7 * DAY_WINDOWS;
        let mut det = detector();
        let found = run(
            &mut det,
            &th,
            14,
            12,
            |i| if i < jump { 200.0 } else { 500.0 },
        );
        assert_eq!(found.first().map(|(i, _)| *i), Some(jump));
        let last = found.last().unwrap().0;
        assert!(last < jump + DAY_WINDOWS / 2, "still reported at {last}");
        let b = det.baseline(window(14 * DAY_WINDOWS)).unwrap();
        assert!(near(b.expected, 500.0, 0.05), "{b:?}");
    }

    #[test]
    fn a_quiet_key_gives_no_rate_finding() {
        let th = Thresholds::default();
        let burst = SPIKE_DAY * DAY_WINDOWS + 100;
        let mut det = detector();
        let mut rng = rng(13);
        for i in 0..14 * DAY_WINDOWS {
            let count = if i == burst {
                12
            } else {
                rand::Rng::gen_range(&mut rng, 0..=3)
            };
            assert_eq!(det.observe(&th, window(i), count), [], "window {i}");
        }
    }

    #[test]
    fn a_quiet_key_turning_busy_is_reported() {
        let th = Thresholds::default();
        let burst = SPIKE_DAY * DAY_WINDOWS + 100;
        let mut det = detector();
        let found = run(
            &mut det,
            &th,
            12,
            14,
            |i| if i == burst { 300.0 } else { 2.0 },
        );
        assert_eq!(indices(&found), [burst]);
    }

    #[test]
    fn a_busy_key_dropping_to_zero_is_reported() {
        let th = Thresholds::default();
        let stop = SPIKE_DAY * DAY_WINDOWS + 9 * 12;
        let resume = stop + 6 * 12;
        let mut det = detector();
        let found = run(&mut det, &th, 12, 15, |i| {
            if (stop..resume).contains(&i) {
                0.0
            } else {
                200.0
            }
        });
        assert_eq!(indices(&found), (stop..resume).collect::<Vec<_>>());
        let (_, first) = &found[0];
        assert_eq!(first.kind, FindingKind::RateDrop);
        assert_eq!(first.observed, 0.0);
        assert!(near(first.expected, 200.0, 0.05), "{first:?}");
        assert!(found.iter().all(|(_, f)| f.kind == FindingKind::RateDrop));
    }

    #[test]
    fn a_retired_key_becomes_quiet_normal() {
        let th = Thresholds::default();
        let stop = 7 * DAY_WINDOWS;
        let mut det = detector();
        let found = run(
            &mut det,
            &th,
            14,
            23,
            |i| if i < stop { 200.0 } else { 0.0 },
        );
        assert_eq!(found.first().map(|(i, _)| *i), Some(stop));
        assert!(found.iter().all(|(_, f)| f.kind == FindingKind::RateDrop));
        let last = found.last().unwrap().0;
        assert!(last < stop + 3 * DAY_WINDOWS, "still reported at {last}");
    }

    #[test]
    fn skipped_windows_count_as_silence() {
        let th = Thresholds::default();
        let mut det = detector();
        let mut rng = rng(16);
        let end = SPIKE_DAY * DAY_WINDOWS;
        for i in 0..end {
            assert_eq!(
                det.observe(&th, window(i), poisson_like(&mut rng, 200.0)),
                []
            );
        }
        // Two hours without any row, then traffic again.
        let found = det.observe(&th, window(end + 24), 200);
        assert_eq!(found.len(), 24);
        assert_eq!(found[0].window_start, window(end));
        assert_eq!(found[23].window_start, window(end + 23));
        assert!(found.iter().all(|f| f.kind == FindingKind::RateDrop));
    }

    #[test]
    fn warm_up_is_silent() {
        let th = Thresholds::default();
        let mut det = detector();
        // Spikes on the key's first and second day: nothing to compare with yet.
        let found = run(&mut det, &th, 3, 17, |i| {
            if i % DAY_WINDOWS == 150 {
                5000.0
            } else {
                200.0
            }
        });
        assert!(found.is_empty(), "{found:?}");
        assert_eq!(det.windows_seen(), 3 * DAY_WINDOWS as u64);
        assert!(RateDetector::new(300).unwrap().baseline(t0()).is_none());
    }

    #[test]
    fn replays_are_ignored_and_long_gaps_restart_learning() {
        let th = Thresholds::default();
        let mut det = detector();
        run(&mut det, &th, 5, 18, |_| 200.0);
        let before = det.clone();
        assert_eq!(det.observe(&th, window(10), 10_000), []);
        assert_eq!(det.observe(&th, window(5 * DAY_WINDOWS - 1), 0), []);
        assert_eq!(det, before);

        let later = window(5 * DAY_WINDOWS) + chrono::Duration::days(MAX_GAP_FILL_DAYS + 1);
        assert_eq!(det.observe(&th, later, 10_000), []);
        assert_eq!(det.windows_seen(), 1);
    }

    #[test]
    fn unaligned_starts_are_rounded_down() {
        let th = Thresholds::default();
        let mut det = detector();
        det.observe(&th, t0() + chrono::Duration::seconds(299), 5);
        // Same window again, once aligned: a replay.
        let before = det.clone();
        det.observe(&th, t0(), 5);
        assert_eq!(det, before);
    }

    #[test]
    fn hourly_windows_work_too() {
        let th = Thresholds {
            min_volume: 360,
            warmup_windows: 72,
            ..Thresholds::default()
        };
        let mut det = RateDetector::new(3600).unwrap();
        let mut rng = rng(19);
        let mut found = Vec::new();
        for h in 0..14 * 24 {
            let lambda = 12.0 * seasonal(h * 12) * if h == 10 * 24 + 15 { 10.0 } else { 1.0 };
            let start = t0() + chrono::Duration::hours(h as i64);
            for f in det.observe(&th, start, poisson_like(&mut rng, lambda)) {
                found.push((h, f));
            }
        }
        assert_eq!(
            found.iter().map(|(h, _)| *h).collect::<Vec<_>>(),
            [10 * 24 + 15]
        );
        assert!(found[0].1.detail.contains("1-hour window"));
    }
}
