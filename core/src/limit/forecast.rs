//! When a quota will run out at the rate it has been used so far in its period.

use chrono::{DateTime, Duration, Utc};

use super::{Kind, calendar};
use serde::{Deserialize, Serialize};

/// How much to trust a forecast: how much of the period it has seen, and how many units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum Confidence {
    /// Under 20 units used, or under a tenth of the period elapsed.
    Low,
    /// Under 200 units, or under a third of the period.
    Medium,
    High,
}

/// A quota's projected exhaustion: `exhausts_at` is when it runs out at the period-to-date
/// rate (now, if it already has), `None` if it lasts the period at that rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forecast {
    pub exhausts_at: Option<DateTime<Utc>>,
    pub confidence: Confidence,
}

/// The quota period of `kind` (UTC day or month) that `now` falls in, as `[start, end)`;
/// `None` for a rate rule.
pub fn period(kind: Kind, now: DateTime<Utc>) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    if let Kind::Rate(_) = kind {
        return None;
    }
    let at = |ms: u64| DateTime::from_timestamp_millis(ms as i64);
    let (start, end) = calendar::bounds(kind, now.timestamp_millis().max(0) as u64);
    Some((at(start)?, at(end)?))
}

/// The period is `[start, end)`; `used` of `limit` units by `now`.
pub fn forecast(
    limit: u64,
    used: u64,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Forecast {
    let period = (end - start).num_milliseconds().max(1) as f64;
    let elapsed = (now - start).num_milliseconds().clamp(1, period as i64) as f64;
    let confidence = if used < 20 || elapsed < period / 10.0 {
        Confidence::Low
    } else if used < 200 || elapsed < period / 3.0 {
        Confidence::Medium
    } else {
        Confidence::High
    };
    if used >= limit {
        return Forecast {
            exhausts_at: Some(now),
            confidence: Confidence::High,
        };
    }
    if used == 0 {
        return Forecast {
            exhausts_at: None,
            confidence,
        };
    }
    let per_ms = used as f64 / elapsed;
    let left_ms = (limit - used) as f64 / per_ms;
    let at = now + Duration::milliseconds(left_ms.min(i64::MAX as f64 / 2.0) as i64);
    Forecast {
        exhausts_at: (at < end).then_some(at),
        confidence,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 8, h, m, 0).unwrap()
    }

    #[test]
    fn the_period_to_date_rate_projects_the_end() {
        let (start, end) = (t(0, 0), t(0, 0) + Duration::days(1));
        // 600 of 1,000 by 06:00: 100 an hour, the last 400 by 10:00.
        let f = forecast(1_000, 600, start, end, t(6, 0));
        assert_eq!(f.exhausts_at, Some(t(10, 0)));
        assert_eq!(f.confidence, Confidence::Medium, "a quarter of the day");
        // 200 of 1,000 by 12:00: lasts the day.
        let f = forecast(1_000, 200, start, end, t(12, 0));
        assert_eq!(f.exhausts_at, None);
        assert_eq!(f.confidence, Confidence::High);
    }

    #[test]
    fn periods_are_utc_days_and_months() {
        let now = t(13, 5);
        assert_eq!(
            period(Kind::Daily, now),
            Some((t(0, 0), t(0, 0) + Duration::days(1)))
        );
        let (s, e) = period(Kind::Monthly, now).unwrap();
        assert_eq!(s, Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap());
        assert_eq!(e, Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap());
        assert_eq!(period(Kind::Rate(super::super::Algorithm::Gcra), now), None);
    }

    #[test]
    fn spent_unused_and_early_periods() {
        let (start, end) = (t(0, 0), t(0, 0) + Duration::days(1));
        let spent = forecast(100, 100, start, end, t(9, 30));
        assert_eq!(spent.exhausts_at, Some(t(9, 30)), "already out");
        assert_eq!(spent.confidence, Confidence::High);
        let unused = forecast(100, 0, start, end, t(9, 30));
        assert_eq!(unused.exhausts_at, None);
        assert_eq!(unused.confidence, Confidence::Low);
        let early = forecast(100_000, 5_000, start, end, t(1, 0));
        assert_eq!(early.confidence, Confidence::Low, "an hour of the day");
        assert_eq!(early.exhausts_at, Some(t(20, 0)));
    }
}
