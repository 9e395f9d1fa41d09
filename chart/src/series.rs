//! The usage series as the plot needs it: buckets sorted and merged, the three lines in seconds
//! since the epoch (with the empty buckets the server leaves out drawn as zeros), time-axis
//! marks and labels in UTC, count-axis labels and the hover text. Plain Rust, tested on the
//! host; `web.rs` only hands these to egui_plot.

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Timelike, Utc};
use serde::Deserialize;

const MINUTE: i64 = 60;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;
/// What a calendar month / year counts as when only an approximate length matters.
const MONTH_APPROX: f64 = 30.436_875 * DAY as f64;
const YEAR_APPROX: f64 = 365.2425 * DAY as f64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Granularity {
    Minute,
    #[default]
    Hour,
    Day,
}

impl Granularity {
    /// The length of one bucket, in seconds (UTC buckets start on multiples of it).
    pub fn step_secs(self) -> i64 {
        match self {
            Granularity::Minute => MINUTE,
            Granularity::Hour => HOUR,
            Granularity::Day => DAY,
        }
    }
}

/// One bucket as sent by the app (`UsagePoint` in ui/src/bindings).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct UsagePoint {
    pub ts: DateTime<Utc>,
    pub allowed: i64,
    pub rate_limited: i64,
    pub rejected: i64,
}

/// The JSON given to `ChartHandle.set_series` (`UsageSeries` in ui/src/bindings).
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
pub struct UsageSeries {
    #[serde(default)]
    pub key_id: String,
    #[serde(default)]
    pub granularity: Granularity,
    #[serde(default)]
    pub points: Vec<UsagePoint>,
    #[serde(default)]
    pub fetched_at: Option<String>,
}

/// The three lines of the chart, in drawing and legend order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Allowed,
    RateLimited,
    Rejected,
}

impl Outcome {
    pub const ALL: [Outcome; 3] = [Outcome::Allowed, Outcome::RateLimited, Outcome::Rejected];

    /// The legend name.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::RateLimited => "rate limited",
            Outcome::Rejected => "rejected",
        }
    }

    /// The line colour, the same as the legend swatches of the UI (styles.css).
    pub fn rgb(self) -> [u8; 3] {
        match self {
            Outcome::Allowed => [0x12, 0xb7, 0x6a],
            Outcome::RateLimited => [0xf7, 0x90, 0x09],
            Outcome::Rejected => [0xd9, 0x2d, 0x20],
        }
    }

    pub fn count(self, b: &Bucket) -> i64 {
        match self {
            Outcome::Allowed => b.allowed,
            Outcome::RateLimited => b.rate_limited,
            Outcome::Rejected => b.rejected,
        }
    }
}

/// One bucket in seconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    pub ts: i64,
    pub allowed: i64,
    pub rate_limited: i64,
    pub rejected: i64,
}

impl Bucket {
    fn zero(ts: i64) -> Self {
        Bucket {
            ts,
            allowed: 0,
            rate_limited: 0,
            rejected: 0,
        }
    }
}

/// Markers are drawn on the lines up to this many buckets (so a lone bucket shows as a dot);
/// beyond it they would only clutter.
pub const MAX_MARKED_BUCKETS: usize = 120;

/// A series ready to draw.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChartData {
    pub granularity: Granularity,
    /// Sorted by time, one per timestamp (duplicates summed).
    pub buckets: Vec<Bucket>,
    /// Per outcome (`Outcome::ALL` order): `[x = unix seconds, y = count]`, with a zero
    /// bucket drawn on each side of a run of missing (empty) buckets.
    pub lines: [Vec<[f64; 2]>; 3],
    /// The x range the plot must show: the data plus one bucket each side.
    pub x_range: (f64, f64),
    /// The largest count (at least 1, so an all-zero series still has a y range).
    pub y_max: f64,
}

impl ChartData {
    pub fn from_json(json: &str) -> Result<Self, String> {
        let series: UsageSeries =
            serde_json::from_str(json).map_err(|e| format!("bad usage series: {e}"))?;
        Ok(Self::from_series(&series))
    }

    pub fn from_series(series: &UsageSeries) -> Self {
        let granularity = series.granularity;
        let step = granularity.step_secs();

        let mut buckets: Vec<Bucket> = series
            .points
            .iter()
            .map(|p| Bucket {
                ts: p.ts.timestamp(),
                allowed: p.allowed,
                rate_limited: p.rate_limited,
                rejected: p.rejected,
            })
            .collect();
        buckets.sort_by_key(|b| b.ts);
        buckets.dedup_by(|later, kept| {
            if later.ts != kept.ts {
                return false;
            }
            kept.allowed = kept.allowed.saturating_add(later.allowed);
            kept.rate_limited = kept.rate_limited.saturating_add(later.rate_limited);
            kept.rejected = kept.rejected.saturating_add(later.rejected);
            true
        });

        // The server leaves empty buckets out: put zeros next to each gap so the line drops
        // to zero instead of running straight across it.
        let mut drawn: Vec<Bucket> = Vec::with_capacity(buckets.len() + 8);
        for (i, b) in buckets.iter().enumerate() {
            if let Some(prev) = i.checked_sub(1).map(|j| buckets[j]) {
                let gap = b.ts - prev.ts;
                if gap > step {
                    drawn.push(Bucket::zero(prev.ts + step));
                    if gap > 2 * step {
                        drawn.push(Bucket::zero(b.ts - step));
                    }
                }
            }
            drawn.push(*b);
        }
        let lines = Outcome::ALL.map(|o| {
            drawn
                .iter()
                .map(|b| [b.ts as f64, o.count(b) as f64])
                .collect::<Vec<_>>()
        });

        let x_range = match (buckets.first(), buckets.last()) {
            (Some(first), Some(last)) => ((first.ts - step) as f64, (last.ts + step) as f64),
            _ => (0.0, 0.0),
        };
        let y_max = buckets
            .iter()
            .flat_map(|b| Outcome::ALL.map(|o| o.count(b)))
            .max()
            .unwrap_or(0)
            .max(1) as f64;

        ChartData {
            granularity,
            buckets,
            lines,
            x_range,
            y_max,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// Whether to draw a marker on each bucket.
    pub fn show_markers(&self) -> bool {
        self.buckets.len() <= MAX_MARKED_BUCKETS
    }

    /// The markers: the real buckets of each outcome (no zero fill).
    pub fn markers(&self) -> [Vec<[f64; 2]>; 3] {
        Outcome::ALL.map(|o| {
            self.buckets
                .iter()
                .map(|b| [b.ts as f64, o.count(b) as f64])
                .collect()
        })
    }

    /// The bucket nearest to `x` (unix seconds) within the series' span, for the hover label:
    /// a recorded bucket, or zeros for an empty bucket the server left out.
    pub fn bucket_at(&self, x: f64) -> Option<Bucket> {
        let (first, last) = (self.buckets.first()?, self.buckets.last()?);
        if !x.is_finite() {
            return None;
        }
        let step = self.granularity.step_secs();
        let half = step as f64 / 2.0;
        let x = x.clamp(first.ts as f64, last.ts as f64);

        // The recorded bucket nearest to x.
        let i = self.buckets.partition_point(|b| (b.ts as f64) < x);
        let nearest = [i.checked_sub(1), Some(i)]
            .into_iter()
            .flatten()
            .filter_map(|j| self.buckets.get(j))
            .min_by(|a, b| (a.ts as f64 - x).abs().total_cmp(&(b.ts as f64 - x).abs()))?;
        if (nearest.ts as f64 - x).abs() <= half {
            return Some(*nearest);
        }
        // Otherwise x is over a gap: the empty bucket there.
        let ts = ((x / step as f64).round() as i64 * step).clamp(first.ts, last.ts);
        Some(
            self.buckets
                .iter()
                .find(|b| b.ts == ts)
                .copied()
                .unwrap_or(Bucket::zero(ts)),
        )
    }
}

fn utc(secs: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_opt(secs, 0).single()
}

/// `1234567` → `1,234,567`.
pub fn format_count(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The hover label: the bucket's time (UTC, as precise as the granularity) and its counts.
pub fn hover_text(b: &Bucket, granularity: Granularity) -> String {
    let when = utc(b.ts).map_or_else(String::new, |t| match granularity {
        Granularity::Minute | Granularity::Hour => t.format("%Y-%m-%d %H:%M UTC").to_string(),
        Granularity::Day => t.format("%Y-%m-%d (UTC)").to_string(),
    });
    format!(
        "{when}\nallowed: {}\nrate limited: {}\nrejected: {}",
        format_count(b.allowed),
        format_count(b.rate_limited),
        format_count(b.rejected)
    )
}

/// A spacing of time-axis marks.
#[derive(Debug, Clone, Copy, PartialEq)]
enum TimeStep {
    /// Every `secs` seconds, counted from `offset` seconds after the epoch.
    Fixed { secs: i64, offset: i64 },
    /// The first of every `n`th month (counted from January).
    Months(i64),
}

impl TimeStep {
    fn approx_secs(self) -> f64 {
        match self {
            TimeStep::Fixed { secs, .. } => secs as f64,
            TimeStep::Months(n) => n as f64 * MONTH_APPROX,
        }
    }

    /// Whether every mark of `coarser` is also a mark of `self`.
    fn divides(self, coarser: TimeStep) -> bool {
        match (self, coarser) {
            (
                TimeStep::Fixed {
                    secs: a,
                    offset: oa,
                },
                TimeStep::Fixed {
                    secs: b,
                    offset: ob,
                },
            ) => b % a == 0 && (ob - oa) % a == 0,
            (TimeStep::Fixed { secs, offset }, TimeStep::Months(_)) => {
                DAY % secs == 0 && offset % secs == 0
            }
            (TimeStep::Months(a), TimeStep::Months(b)) => b % a == 0,
            (TimeStep::Months(_), TimeStep::Fixed { .. }) => false,
        }
    }
}

/// How many times egui_plot's smallest grid spacing (8 points) the coarsest level of marks
/// spans at least: labels need 60 to 80 points on the time axis, 20 to 30 on the count axis.
const TIME_LABEL_SPAN: f64 = 12.0;
const COUNT_LABEL_SPAN: f64 = 4.0;

/// Levels of marks, finest first: the first step at least `until` (spaced enough for labels),
/// then ever finer steps that divide the one after them (so the labels and lines of two levels
/// never interleave), down to `min`. `steps` is sorted from fine to coarse.
fn nested_levels<T: Copy>(
    steps: &[T],
    size: impl Fn(T) -> f64,
    divides: impl Fn(T, T) -> bool,
    min: f64,
    until: f64,
) -> Vec<T> {
    let Some(top) = steps
        .iter()
        .position(|&s| size(s) >= until.max(min))
        .or_else(|| steps.iter().rposition(|&s| size(s) >= min))
    else {
        return Vec::new();
    };
    let mut levels = vec![steps[top]];
    for &s in steps[..top].iter().rev() {
        let coarser = levels[levels.len() - 1];
        if size(s) >= min && divides(s, coarser) {
            levels.push(s);
        }
    }
    levels.reverse();
    levels
}

/// 1970-01-05 was a Monday: weeks start on Mondays.
const MONDAY: i64 = 4 * DAY;

fn time_steps() -> Vec<TimeStep> {
    let fixed = |secs| TimeStep::Fixed { secs, offset: 0 };
    let mut steps = vec![
        fixed(MINUTE),
        fixed(2 * MINUTE),
        fixed(5 * MINUTE),
        fixed(10 * MINUTE),
        fixed(15 * MINUTE),
        fixed(30 * MINUTE),
        fixed(HOUR),
        fixed(2 * HOUR),
        fixed(3 * HOUR),
        fixed(6 * HOUR),
        fixed(12 * HOUR),
        fixed(DAY),
        fixed(2 * DAY),
        TimeStep::Fixed {
            secs: 7 * DAY,
            offset: MONDAY,
        },
        TimeStep::Fixed {
            secs: 14 * DAY,
            offset: MONDAY,
        },
        TimeStep::Months(1),
        TimeStep::Months(3),
        TimeStep::Months(6),
    ];
    for years in [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000] {
        steps.push(TimeStep::Months(12 * years));
    }
    steps
}

/// Beyond these (years -9999 and 9999) there is nothing to label.
const MIN_SECS: f64 = -377_705_116_800.0;
const MAX_SECS: f64 = 253_402_300_799.0;

/// Grid marks for the time axis: `(value, step_size)`, at whole minutes, hours, days, weeks,
/// months or years (UTC): nested levels of spacing from the first at least `base_step`
/// (egui_plot's smallest grid spacing) and one bucket long, up to one wide enough for labels.
/// A mark on several levels is listed once, with the largest step.
pub fn time_marks(bounds: (f64, f64), base_step: f64, granularity: Granularity) -> Vec<(f64, f64)> {
    let (lo, hi) = (bounds.0.max(MIN_SECS), bounds.1.min(MAX_SECS));
    if lo.is_nan() || hi.is_nan() || lo > hi || !base_step.is_finite() {
        return Vec::new();
    }
    let min_step = base_step.max(granularity.step_secs() as f64);
    let levels = nested_levels(
        &time_steps(),
        TimeStep::approx_secs,
        TimeStep::divides,
        min_step,
        base_step * TIME_LABEL_SPAN,
    );
    let (lo, hi) = (lo.ceil() as i64, hi.floor() as i64);
    let mut marks: Vec<(i64, f64)> = Vec::new();
    for step in &levels {
        let size = step.approx_secs();
        match *step {
            TimeStep::Fixed { secs, offset } => {
                let mut t = (lo - offset).div_euclid(secs) * secs + offset;
                if t < lo {
                    t += secs;
                }
                while t <= hi {
                    marks.push((t, size));
                    t += secs;
                }
            }
            TimeStep::Months(n) => {
                let Some(start) = utc(lo) else { continue };
                let mut month =
                    (i64::from(start.year()) * 12 + i64::from(start.month0())).div_euclid(n) * n;
                loop {
                    let (y, m0) = (month.div_euclid(12), month.rem_euclid(12));
                    let Some(t) = i32::try_from(y)
                        .ok()
                        .and_then(|y| NaiveDate::from_ymd_opt(y, m0 as u32 + 1, 1))
                        .and_then(|d| d.and_hms_opt(0, 0, 0))
                        .map(|d| d.and_utc().timestamp())
                    else {
                        break;
                    };
                    if t > hi {
                        break;
                    }
                    if t >= lo {
                        marks.push((t, size));
                    }
                    month += n;
                }
            }
        }
    }
    // One mark per value, keeping the largest step.
    marks.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)));
    marks.dedup_by_key(|m| m.0);
    marks
        .into_iter()
        .map(|(t, size)| (t as f64, size))
        .collect()
}

/// The label of a time-axis mark (UTC): times of day for marks less than a day apart (the
/// date at midnight), day and month for days and weeks (the year on 1 January), month names
/// for months (the year in January), years beyond.
pub fn axis_label(value: f64, step_size: f64, granularity: Granularity) -> String {
    let Some(t) = value
        .is_finite()
        .then(|| value.round() as i64)
        .and_then(utc)
    else {
        return String::new();
    };
    let midnight = t.hour() == 0 && t.minute() == 0;
    let new_year = midnight && t.ordinal() == 1;
    let step = step_size.max(granularity.step_secs() as f64);
    let fmt = if step < DAY as f64 {
        if midnight { "%-d %b" } else { "%H:%M" }
    } else if step < MONTH_APPROX * 0.9 {
        if new_year { "%Y" } else { "%-d %b" }
    } else if step < YEAR_APPROX * 0.9 {
        if t.month() == 1 { "%Y" } else { "%b" }
    } else {
        "%Y"
    };
    t.format(fmt).to_string()
}

/// Grid marks for the count axis: `(value, step_size)` at whole counts only, spaced 1, 2 or 5
/// times a power of ten: nested levels from the first at least `base_step`, up to one wide
/// enough for labels.
pub fn count_marks(bounds: (f64, f64), base_step: f64) -> Vec<(f64, f64)> {
    let (lo, hi) = bounds;
    if !lo.is_finite() || !hi.is_finite() || lo > hi || !base_step.is_finite() {
        return Vec::new();
    }
    let candidates: Vec<f64> = (0..18)
        .flat_map(|p| [1.0, 2.0, 5.0].map(|m| m * 10f64.powi(p)))
        .collect();
    let levels = nested_levels(
        &candidates,
        |s| s,
        |fine, coarse| (coarse / fine).fract() == 0.0,
        base_step.max(1.0),
        base_step * COUNT_LABEL_SPAN,
    );
    let mut marks: Vec<(f64, f64)> = Vec::new();
    for &s in &levels {
        let mut v = (lo / s).ceil() * s;
        // Bounded: the smallest step is at least egui_plot's readable spacing.
        while v <= hi && marks.len() < 10_000 {
            marks.push((v + 0.0, s)); // (no -0)
            v += s;
        }
    }
    marks.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.total_cmp(&a.1)));
    marks.dedup_by(|a, b| a.0 == b.0);
    marks
}

/// The label of a count-axis mark: whole, non-negative counts only, compact from 100,000.
pub fn count_label(value: f64) -> String {
    if !value.is_finite() || value < 0.0 || value.fract() != 0.0 {
        return String::new();
    }
    let compact = |v: f64, unit: &str| {
        let s = format!("{v:.2}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        format!("{s}{unit}")
    };
    if value >= 1e9 {
        compact(value / 1e9, "G")
    } else if value >= 1e6 {
        compact(value / 1e6, "M")
    } else if value >= 1e5 {
        compact(value / 1e3, "k")
    } else {
        format_count(value as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-25T10:00:00Z
    const T10: i64 = 1_795_600_800;

    fn series(granularity: &str, points: &[(&str, i64, i64, i64)]) -> ChartData {
        let points: Vec<String> = points
            .iter()
            .map(|(ts, a, r, x)| {
                format!(r#"{{"ts":"{ts}","allowed":{a},"rate_limited":{r},"rejected":{x}}}"#)
            })
            .collect();
        ChartData::from_json(&format!(
            r#"{{"key_id":"k","granularity":"{granularity}","fetched_at":null,"points":[{}]}}"#,
            points.join(",")
        ))
        .unwrap()
    }

    #[test]
    fn parses_the_ui_json() {
        let d = series(
            "hour",
            &[
                ("2026-11-25T10:00:00Z", 5, 1, 0),
                ("2026-11-25T11:00:00+00:00", 7, 0, 2),
            ],
        );
        assert_eq!(d.granularity, Granularity::Hour);
        assert_eq!(d.buckets.len(), 2);
        assert_eq!(
            d.buckets[1],
            Bucket {
                ts: T10 + HOUR,
                allowed: 7,
                rate_limited: 0,
                rejected: 2
            }
        );
        // fetched_at as a string, and no optional field at all.
        let s: UsageSeries = serde_json::from_str(
            r#"{"key_id":"k","granularity":"day","points":[],"fetched_at":"2026-11-25T10:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(s.fetched_at.as_deref(), Some("2026-11-25T10:00:00Z"));
        assert!(ChartData::from_json("{}").unwrap().is_empty());
        assert!(ChartData::from_json(r#"{"granularity":"week"}"#).is_err());
        assert!(ChartData::from_json(r#"{"points":[{"ts":"yesterday"}]}"#).is_err());
    }

    #[test]
    fn three_lines_in_time_order_with_duplicates_summed() {
        let d = series(
            "hour",
            &[
                ("2026-11-25T11:00:00Z", 7, 0, 2),
                ("2026-11-25T10:00:00Z", 5, 1, 0),
                ("2026-11-25T11:00:00Z", 1, 1, 1),
            ],
        );
        let h = HOUR as f64;
        let t = T10 as f64;
        assert_eq!(d.lines[0], vec![[t, 5.0], [t + h, 8.0]]);
        assert_eq!(d.lines[1], vec![[t, 1.0], [t + h, 1.0]]);
        assert_eq!(d.lines[2], vec![[t, 0.0], [t + h, 3.0]]);
        assert_eq!(
            Outcome::ALL.map(Outcome::name),
            ["allowed", "rate limited", "rejected"]
        );
        assert_eq!(d.y_max, 8.0);
        assert_eq!(d.x_range, (t - h, t + 2.0 * h));
    }

    #[test]
    fn gaps_drop_to_zero() {
        // 10:00, (11:00 empty), 12:00, (13:00 .. 16:00 empty), 17:00
        let d = series(
            "hour",
            &[
                ("2026-11-25T10:00:00Z", 4, 0, 0),
                ("2026-11-25T12:00:00Z", 6, 0, 0),
                ("2026-11-25T17:00:00Z", 2, 0, 0),
            ],
        );
        let at = |h: i64| (T10 + h * HOUR) as f64;
        assert_eq!(
            d.lines[0],
            vec![
                [at(0), 4.0],
                [at(1), 0.0],
                [at(2), 6.0],
                [at(3), 0.0],
                [at(6), 0.0],
                [at(7), 2.0]
            ]
        );
        // Markers only on recorded buckets.
        assert_eq!(
            d.markers()[0],
            vec![[at(0), 4.0], [at(2), 6.0], [at(7), 2.0]]
        );
        assert!(d.show_markers());
    }

    #[test]
    fn empty_and_single_bucket() {
        let d = series("day", &[]);
        assert!(d.is_empty());
        assert_eq!(d.bucket_at(0.0), None);
        assert!(d.lines.iter().all(Vec::is_empty));

        let d = series("minute", &[("2026-11-25T10:00:00Z", 0, 0, 0)]);
        assert_eq!(d.y_max, 1.0, "an all-zero series still has a y range");
        assert_eq!(d.x_range, ((T10 - 60) as f64, (T10 + 60) as f64));
        assert_eq!(d.bucket_at(0.0).unwrap().ts, T10, "clamped to the series");
    }

    #[test]
    fn hover_snaps_to_the_nearest_bucket_and_reports_gaps_as_zero() {
        let d = series(
            "hour",
            &[
                ("2026-11-25T10:00:00Z", 4, 1, 2),
                ("2026-11-25T14:00:00Z", 6, 0, 3),
            ],
        );
        let h = HOUR as f64;
        let t = T10 as f64;
        assert_eq!(d.bucket_at(t + 0.4 * h).unwrap().allowed, 4);
        assert_eq!(d.bucket_at(t + 3.6 * h).unwrap().rejected, 3);
        assert_eq!(
            d.bucket_at(t + 2.2 * h).unwrap(),
            Bucket::zero(T10 + 2 * HOUR)
        );
        assert_eq!(d.bucket_at(t + 99.0 * h).unwrap().ts, T10 + 4 * HOUR);
        assert_eq!(d.bucket_at(f64::NAN), None);

        let text = hover_text(&d.bucket_at(t).unwrap(), Granularity::Hour);
        assert_eq!(
            text,
            "2026-11-25 10:00 UTC\nallowed: 4\nrate limited: 1\nrejected: 2"
        );
        let b = Bucket {
            ts: T10,
            allowed: 1_234_567,
            rate_limited: 0,
            rejected: 0,
        };
        assert!(
            hover_text(&b, Granularity::Day).starts_with("2026-11-25 (UTC)\nallowed: 1,234,567")
        );
    }

    #[test]
    fn counts_format() {
        assert_eq!(format_count(0), "0");
        assert_eq!(format_count(999), "999");
        assert_eq!(format_count(1000), "1,000");
        assert_eq!(format_count(-1_234_567), "-1,234,567");
        assert_eq!(count_label(2.0), "2");
        assert_eq!(count_label(2.5), "");
        assert_eq!(count_label(-1.0), "");
        assert_eq!(count_label(12_000.0), "12,000");
        assert_eq!(count_label(250_000.0), "250k");
        assert_eq!(count_label(1_500_000.0), "1.5M");
    }

    #[test]
    fn count_marks_are_whole() {
        // Few counts: every whole number, none between.
        let marks = count_marks((-0.5, 3.2), 0.1);
        assert_eq!(marks, vec![(0.0, 1.0), (1.0, 1.0), (2.0, 1.0), (3.0, 1.0)]);
        // 0..350 over ~310 points (base step ~9): lines every 10, labelled every 50.
        let marks = count_marks((0.0, 350.0), 9.0);
        assert!(
            marks
                .iter()
                .all(|(v, s)| v.fract() == 0.0 && (*s == 10.0 || *s == 50.0))
        );
        assert_eq!(marks.iter().filter(|(_, s)| *s == 50.0).count(), 8);
        assert_eq!(marks.len(), 36);
        assert!(count_marks((1.0, 0.0), 1.0).is_empty());
        assert!(count_marks((0.0, f64::INFINITY), 1.0).is_empty());
    }

    #[test]
    fn time_marks_land_on_whole_units() {
        // 74 hours over ~770 points (base step ~46 min): lines every 1 h, 3 h and 6 h,
        // labels every 12 h (at least 12 base steps apart), on whole hours.
        let t = T10 as f64;
        let (h, d) = (HOUR as f64, DAY as f64);
        let marks = time_marks((t, t + 74.0 * h), 2770.0, Granularity::Hour);
        let steps: Vec<f64> = marks.iter().map(|m| m.1).collect();
        assert!(
            steps
                .iter()
                .all(|s| [h, 3.0 * h, 6.0 * h, 12.0 * h].contains(s))
        );
        assert!(marks.iter().all(|(v, _)| (*v as i64) % HOUR == 0));
        assert_eq!(marks.len(), 75);
        assert_eq!(
            marks[2],
            (t + 2.0 * h, 12.0 * h),
            "12:00 is on the 12 h level"
        );
        assert_eq!(marks[1], (t + h, h));
        assert_eq!(
            marks[5],
            (t + 5.0 * h, 3.0 * h),
            "15:00 is on the 3 h level"
        );

        // Never finer than the granularity.
        let marks = time_marks((t, t + 3.0 * d), 60.0, Granularity::Day);
        assert!(marks.iter().all(|(v, s)| *s >= d && (*v as i64) % DAY == 0));
        assert_eq!(marks.len(), 3, "26, 27 and 28 Nov at midnight");

        // Weeks start on Mondays.
        let marks = time_marks((t, t + 60.0 * d), 0.5 * d, Granularity::Day);
        let weeks: Vec<_> = marks.iter().filter(|(_, s)| *s == 7.0 * d).collect();
        assert!(weeks.len() >= 8);
        assert!(
            weeks
                .iter()
                .all(|(v, _)| utc(*v as i64).unwrap().weekday() == chrono::Weekday::Mon)
        );

        // Months on the 1st (no weeks under them: weeks do not divide months).
        let year = (t - 200.0 * d, t + 200.0 * d);
        let marks = time_marks(year, 2.0 * d, Granularity::Day);
        assert!(marks.iter().all(|(_, s)| *s >= MONTH_APPROX));
        assert!(
            marks
                .iter()
                .all(|(v, _)| utc(*v as i64).unwrap().day() == 1)
        );
        assert_eq!(marks.len(), 13);

        // Decades; and nothing for nonsense bounds.
        let marks = time_marks((0.0, 3e9), 3e7, Granularity::Day);
        assert!(
            marks
                .iter()
                .all(|(v, _)| utc(*v as i64).unwrap().ordinal() == 1)
        );
        assert!(time_marks((1.0, 0.0), 1.0, Granularity::Hour).is_empty());
        assert!(time_marks((-1e300, 1e300), 1e290, Granularity::Hour).is_empty());
        assert!(time_marks((0.0, 1.0), f64::NAN, Granularity::Hour).is_empty());
    }

    #[test]
    fn axis_labels_fit_the_spacing() {
        let t = T10 as f64;
        let midnight = (T10 - 10 * HOUR) as f64;
        let (m, h, d) = (MINUTE as f64, HOUR as f64, DAY as f64);
        assert_eq!(
            axis_label(t + 15.0 * m, 15.0 * m, Granularity::Minute),
            "10:15"
        );
        assert_eq!(axis_label(midnight, 6.0 * h, Granularity::Hour), "25 Nov");
        assert_eq!(axis_label(t, h, Granularity::Hour), "10:00");
        assert_eq!(axis_label(midnight, d, Granularity::Day), "25 Nov");
        // A day chart never shows times of day, even zoomed in.
        assert_eq!(axis_label(midnight, h, Granularity::Day), "25 Nov");
        let dec1 = (T10 + 6 * DAY - 10 * HOUR) as f64;
        assert_eq!(axis_label(dec1, MONTH_APPROX, Granularity::Day), "Dec");
        let jan1 = 1_798_761_600.0; // 2027-01-01
        assert_eq!(axis_label(jan1, MONTH_APPROX, Granularity::Day), "2027");
        assert_eq!(axis_label(jan1, d, Granularity::Day), "2027");
        assert_eq!(axis_label(jan1, YEAR_APPROX, Granularity::Day), "2027");
        assert_eq!(axis_label(f64::NAN, d, Granularity::Day), "");
    }
}
