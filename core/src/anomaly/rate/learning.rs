//! How a [`RateDetector`] learns and what it expects: the hour-of-day baselines ([`Slot`]), the
//! hour being summed ([`HourSum`]), the recent level, and the [`Baseline`] they give a window.

use serde::{Deserialize, Serialize};

use super::{
    Baseline, DAY, HOUR, LEVEL_HALF_LIFE_HOURS, MAX_LEVEL, MIN_LEVEL_EXPECTED, MIN_SLOT_DAYS,
    RateDetector,
};
use crate::anomaly::{Finding, Thresholds};

/// One hour of the day: the exponentially weighted mean of that hour's requests per window and
/// the exponentially weighted variance of its windows around what was expected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct Slot {
    mean: f64,
    var: f64,
    /// Days learned (saturating).
    days: u32,
}

/// The hour being observed, folded into its [`Slot`] once the next hour starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct HourSum {
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

impl RateDetector {
    pub(super) fn baseline_at(&self, start: i64) -> Option<Baseline> {
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

    pub(super) fn step(&mut self, th: &Thresholds, start: i64, count: u64) -> Option<Finding> {
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
}
