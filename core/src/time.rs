//! Time at the precision Keyward stores.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

/// Now, truncated to microseconds: PostgreSQL's and the replica's precision, so a value reads
/// back exactly as written (the audit chain hashes timestamps).
pub fn now_micros() -> DateTime<Utc> {
    let now = Utc::now();
    now.duration_trunc(TimeDelta::microseconds(1))
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    #[test]
    fn whole_microseconds() {
        let t = super::now_micros();
        assert_eq!(t.timestamp_subsec_nanos() % 1000, 0);
        assert_eq!(
            chrono::DateTime::from_timestamp_micros(t.timestamp_micros()),
            Some(t)
        );
    }
}
