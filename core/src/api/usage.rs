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
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
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

/// How `GET /v1/usage` splits its series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum UsageGroupBy {
    Key,
    Outcome,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct OrgUsageQuery {
    /// Start (inclusive); default: `to` minus 24 hours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<DateTime<Utc>>,
    /// End (exclusive); default: now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub granularity: Option<Granularity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_by: Option<UsageGroupBy>,
    /// How many keys the top lists (and `group_by=key`) hold: 1–100, default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top: Option<u32>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct UsageTotals {
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub allowed: i64,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub rate_limited: i64,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub rejected: i64,
}

impl UsageTotals {
    pub fn total(&self) -> i64 {
        self.allowed + self.rate_limited + self.rejected
    }

    /// The sums of a series' buckets.
    pub fn of<'a>(points: impl IntoIterator<Item = &'a UsagePoint>) -> UsageTotals {
        points
            .into_iter()
            .fold(UsageTotals::default(), |t, p| UsageTotals {
                allowed: t.allowed + p.allowed,
                rate_limited: t.rate_limited + p.rate_limited,
                rejected: t.rejected + p.rejected,
            })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct KeyUsageTotal {
    pub key_id: crate::ids::KeyId,
    pub name: String,
    pub totals: UsageTotals,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct KeySeries {
    pub key_id: crate::ids::KeyId,
    pub name: String,
    pub series: Vec<UsagePoint>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct OutcomeSeries {
    /// `valid`, `rate_limited`, `invalid_secret`, `revoked`, ...
    pub outcome: String,
    pub series: Vec<CountPoint>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct CountPoint {
    pub ts: DateTime<Utc>,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub count: i64,
}

/// `GET /v1/usage`: the organisation's traffic over a period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct OrgUsage {
    pub granularity: Granularity,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Every key together, by bucket.
    pub series: Vec<UsagePoint>,
    pub totals: UsageTotals,
    /// Share of calls refused for any reason but limits (0 when there were none).
    pub error_share: f64,
    /// Share of calls refused by a rate limit or quota.
    pub rate_limited_share: f64,
    pub top_by_volume: Vec<KeyUsageTotal>,
    pub top_by_rejections: Vec<KeyUsageTotal>,
    /// With `group_by=key`: the top keys' series.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_key: Option<Vec<KeySeries>>,
    /// With `group_by=outcome`: one series per outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_outcome: Option<Vec<OutcomeSeries>>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ReportFormat {
    #[default]
    Csv,
    Json,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    /// First day (UTC; a time is truncated to its day). Default: 30 days before `to`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<DateTime<Utc>>,
    /// End (exclusive), in whole UTC days: a time within a day takes that whole day (rounded up
    /// to the next midnight). Default: now, so today is included. At most 3,660 days once
    /// rounded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<ReportFormat>,
}

/// One report row: a key's calls on one UTC day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReportRow {
    pub day: chrono::NaiveDate,
    pub key_id: crate::ids::KeyId,
    pub key_name: String,
    pub allowed: i64,
    pub rate_limited: i64,
    pub rejected: i64,
}
