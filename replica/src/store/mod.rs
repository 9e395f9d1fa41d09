//! SQL over the replica's tables. Functions take a connection (or a transaction), so callers
//! decide what is atomic. Queries are checked at runtime; every one runs in this crate's tests.

pub(crate) mod audit;
pub(crate) mod keys;
pub(crate) mod outbox;
pub(crate) mod rejected;
pub(crate) mod state;

use chrono::{DateTime, Utc};

/// Stored times: microseconds since the Unix epoch, so they compare as integers.
pub(crate) fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

pub(crate) fn from_micros(m: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(m).unwrap_or_default()
}
