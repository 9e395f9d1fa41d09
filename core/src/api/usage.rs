//! Usage series: verification outcomes per minute, hour or day.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum Granularity {
    Minute,
    #[default]
    Hour,
    Day,
}

impl Granularity {
    pub fn as_str(self) -> &'static str {
        match self {
            Granularity::Minute => "minute",
            Granularity::Hour => "hour",
            Granularity::Day => "day",
        }
    }

    /// The longest period one query may span at this granularity (about 10,000 points).
    pub fn max_span(self) -> chrono::Duration {
        match self {
            Granularity::Minute => chrono::Duration::days(7),
            Granularity::Hour => chrono::Duration::days(400),
            Granularity::Day => chrono::Duration::days(3660),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[serde(deny_unknown_fields)]
pub struct UsageQuery {
    /// Start (inclusive); default: `to` minus 24 hours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<DateTime<Utc>>,
    /// End (exclusive); default: now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub granularity: Option<Granularity>,
}

/// One bucket: `allowed` = valid, `rate_limited` = rate or quota refusals, `rejected` = every
/// other refusal (wrong secret, revoked, expired, disabled, address, scope).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct UsagePoint {
    pub ts: DateTime<Utc>,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub allowed: i64,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub rate_limited: i64,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub rejected: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UsageResponse {
    pub granularity: Granularity,
    pub series: Vec<UsagePoint>,
}
