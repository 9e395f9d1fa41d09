//! Quotas per UTC day and UTC month: fixed windows whose boundaries come from the calendar.

use chrono::{Datelike, TimeZone, Utc};

use super::window::{decide, pack, used_in};
use super::{Decision, Kind, Millis, Rule};

const DAY_MS: u64 = 86_400_000;

/// Days or months since the epoch.
pub(super) fn index(kind: Kind, now: Millis) -> u64 {
    match kind {
        Kind::Monthly => {
            let t = Utc
                .timestamp_millis_opt(now as i64)
                .single()
                .unwrap_or_default();
            (t.year() as u64).saturating_sub(1970) * 12 + u64::from(t.month0())
        }
        _ => now / DAY_MS,
    }
}

/// When period `i` (days or months since the epoch) starts, in ms since the epoch.
fn start_of(kind: Kind, i: u64) -> Option<Millis> {
    match kind {
        Kind::Monthly => {
            let (year, month) = (1970 + i / 12, (i % 12) as u32 + 1);
            Utc.with_ymd_and_hms(year as i32, month, 1, 0, 0, 0)
                .single()
                .map(|t| t.timestamp_millis() as u64)
        }
        _ => Some(i * DAY_MS),
    }
}

/// The period `now` falls in, as `[start, end)` in ms since the epoch.
pub(super) fn bounds(kind: Kind, now: Millis) -> (Millis, Millis) {
    let i = index(kind, now);
    let start = start_of(kind, i).unwrap_or(now);
    let end = start_of(kind, i + 1).unwrap_or(now + DAY_MS);
    (start, end)
}

/// Milliseconds from `now` to the start of the next period.
pub(super) fn reset_ms(kind: Kind, now: Millis) -> u64 {
    bounds(kind, now).1.saturating_sub(now)
}

pub(super) fn peek(rule: &Rule, state: u64, now: Millis, cost: u64) -> Decision {
    let used = used_in(state, index(rule.kind, now));
    decide(rule.limit, used, cost, reset_ms(rule.kind, now))
}

pub(super) fn commit(rule: &Rule, state: u64, now: Millis, cost: u64) -> u64 {
    let i = index(rule.kind, now);
    pack(i, used_in(state, i) + cost)
}

pub(super) fn refund(rule: &Rule, state: u64, now: Millis, cost: u64) -> u64 {
    let i = index(rule.kind, now);
    pack(i, used_in(state, i).saturating_sub(cost))
}

#[cfg(test)]
mod tests {
    use super::super::SharedState;
    use super::*;

    fn at(s: &str) -> Millis {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .timestamp_millis() as u64
    }

    #[test]
    fn a_daily_quota_resets_at_utc_midnight() {
        let rules = [Rule::daily(2)];
        let s = SharedState::new(1);
        assert!(s.check(&rules, at("2026-11-25T23:59:58Z"), 2, 0.8).allowed);
        let refused = s.check(&rules, at("2026-11-25T23:59:59Z"), 1, 0.8);
        assert!(!refused.allowed);
        assert_eq!(refused.deciding().retry_after_ms, 1000);
        assert!(s.check(&rules, at("2026-11-26T00:00:00Z"), 1, 0.8).allowed);
    }

    #[test]
    fn a_monthly_quota_resets_on_the_first() {
        let rules = [Rule::monthly(1)];
        let s = SharedState::new(1);
        assert!(s.check(&rules, at("2026-02-10T12:00:00Z"), 1, 0.8).allowed);
        let refused = s.check(&rules, at("2026-02-28T23:00:00Z"), 1, 0.8);
        assert_eq!(refused.deciding().reset_ms, 3_600_000);
        assert!(s.check(&rules, at("2026-03-01T00:00:00Z"), 1, 0.8).allowed);
        let dec = s.check(&rules, at("2026-12-31T00:00:00Z"), 1, 0.8);
        assert_eq!(
            dec.deciding().reset_ms,
            DAY_MS,
            "December rolls over into the next year"
        );
    }
}
