//! The usage series as the plot needs it: points in seconds since the epoch per outcome,
//! axis labels and hover text. Plain Rust, tested on the host.

use chrono::{DateTime, TimeZone, Utc};
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Granularity {
    Minute,
    #[default]
    Hour,
    Day,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct UsagePoint {
    pub ts: DateTime<Utc>,
    pub allowed: i64,
    pub rate_limited: i64,
    pub rejected: i64,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
pub struct UsageSeries {
    #[serde(default)]
    pub key_id: String,
    #[serde(default)]
    pub granularity: Granularity,
    #[serde(default)]
    pub points: Vec<UsagePoint>,
}

/// The three lines: (name, [x = unix seconds, y = count]).
pub fn lines(series: &UsageSeries) -> [(&'static str, Vec<[f64; 2]>); 3] {
    let pick = |f: fn(&UsagePoint) -> i64| {
        series.points.iter().map(|p| [p.ts.timestamp() as f64, f(p) as f64]).collect::<Vec<_>>()
    };
    [
        ("allowed", pick(|p| p.allowed)),
        ("rate limited", pick(|p| p.rate_limited)),
        ("rejected", pick(|p| p.rejected)),
    ]
}

/// An x-axis label for unix seconds `x` at this granularity (UTC).
pub fn time_label(x: f64, granularity: Granularity) -> String {
    let Some(t) = Utc.timestamp_opt(x.round() as i64, 0).single() else { return String::new() };
    match granularity {
        Granularity::Minute => t.format("%H:%M").to_string(),
        Granularity::Hour => t.format("%d %b %H:00").to_string(),
        Granularity::Day => t.format("%Y-%m-%d").to_string(),
    }
}

/// The point nearest to `x`, for the hover label.
pub fn nearest(series: &UsageSeries, x: f64) -> Option<&UsagePoint> {
    series.points.iter().min_by(|a, b| {
        let da = (a.ts.timestamp() as f64 - x).abs();
        let db = (b.ts.timestamp() as f64 - x).abs();
        da.total_cmp(&db)
    })
}

pub fn hover_text(p: &UsagePoint, granularity: Granularity) -> String {
    format!(
        "{} UTC\nallowed {}\nrate limited {}\nrejected {}",
        time_label(p.ts.timestamp() as f64, granularity),
        p.allowed,
        p.rate_limited,
        p.rejected
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> UsageSeries {
        serde_json::from_str(
            r#"{"key_id":"k","granularity":"hour","fetched_at":null,"points":[
                {"ts":"2026-11-25T10:00:00Z","allowed":5,"rate_limited":1,"rejected":0},
                {"ts":"2026-11-25T11:00:00Z","allowed":7,"rate_limited":0,"rejected":2}]}"#,
        )
        .unwrap()
    }

    #[test]
    fn three_lines_in_time_order() {
        let s = sample();
        let l = lines(&s);
        assert_eq!(l[0].1, vec![[1_795_600_800.0, 5.0], [1_795_604_400.0, 7.0]]);
        assert_eq!(l[2].1[1][1], 2.0);
    }

    #[test]
    fn labels_and_hover() {
        let s = sample();
        assert_eq!(time_label(1_795_600_800.0, Granularity::Hour), "25 Nov 10:00");
        assert_eq!(time_label(1_795_600_800.0, Granularity::Day), "2026-11-25");
        let p = nearest(&s, 1_795_604_000.0).unwrap();
        assert_eq!(p.allowed, 7);
        assert!(hover_text(p, Granularity::Minute).contains("rejected 2"));
        assert!(nearest(&UsageSeries::default(), 0.0).is_none());
    }
}
