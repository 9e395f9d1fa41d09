//! Rate limits, quotas and tiers on the wire (`/v1/tiers`, the `rate_limits`/`quota`/`tier`
//! fields of keys, the `ratelimit`/`quota` parts of `/v1/verify`, violations).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::KeyId;

/// How a limit shared by several nodes (through Redis) is kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum Consistency {
    /// Each node takes blocks of units from the shared counter and grants them locally: most
    /// requests never wait for Redis. Fixed and sliding windows and quotas never allow more
    /// than the limit; GCRA at most nodes × ⌊burst / 32⌋ more (see the README's bound).
    #[default]
    Leased,
    /// Every request is checked against the shared counter (one Redis round trip, batched).
    Exact,
}

impl Consistency {
    pub fn as_str(self) -> &'static str {
        match self {
            Consistency::Leased => "leased",
            Consistency::Exact => "exact",
        }
    }
}

/// One rate-limit rule. Numbers are read as signed so that a negative or zero value gets a
/// precise validation error rather than a type error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(deny_unknown_fields)]
pub struct RateLimitRule {
    /// The policy name in the `RateLimit` fields (`[A-Za-z0-9_.:-]`, 1–32 characters); derived
    /// from the window when absent (`second`, `minute`, `hour`, `day`, `<n>s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub name: Option<String>,
    /// `gcra` (token bucket), `fixed_window` or `sliding_window`.
    pub algorithm: String,
    /// Units per window, 1–1,000,000.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1_000_000))]
    pub limit: i64,
    /// 1 second to 1 day.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 86_400))]
    pub window_seconds: i64,
    /// `gcra` only: units that may pass at once (default: `limit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional, type = "number"))]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1_000_000))]
    pub burst: Option<i64>,
    /// `leased` (default) or `exact`: how the rule is kept when limits are shared by nodes.
    #[serde(default)]
    pub consistency: Consistency,
}

/// Requests per UTC day and per UTC month.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(deny_unknown_fields)]
pub struct Quota {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional, type = "number"))]
    #[cfg_attr(
        feature = "openapi",
        schema(minimum = 1, maximum = 100_000_000_000_i64)
    )]
    pub daily: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional, type = "number"))]
    #[cfg_attr(
        feature = "openapi",
        schema(minimum = 1, maximum = 100_000_000_000_i64)
    )]
    pub monthly: Option<i64>,
    /// `leased` (default) or `exact`: how the quotas are kept when limits are shared by nodes.
    #[serde(default)]
    pub consistency: Consistency,
}

/// A named rule set of an organisation that keys inherit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Tier {
    pub name: String,
    pub rate_limits: Vec<RateLimitRule>,
    pub quota: Option<Quota>,
    /// Share of a limit past which answers carry `X-RateLimit-Warning` (0–1).
    pub soft_threshold: f64,
    /// Keys that name this tier.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub keys: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateTierRequest {
    /// Lower-case slug: `[a-z0-9][a-z0-9_-]*`, at most 32 characters.
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[a-z0-9][a-z0-9_-]{0,31}$"))]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limits: Option<Vec<RateLimitRule>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<Quota>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(exclusive_minimum = 0.0, maximum = 1.0))]
    pub soft_threshold: Option<f64>,
}

/// Absent fields stay as they are; `"quota": null` removes the quota.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateTierRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limits: Option<Vec<RateLimitRule>>,
    #[serde(
        default,
        with = "super::double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Quota>))]
    pub quota: Option<Option<Quota>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(exclusive_minimum = 0.0, maximum = 1.0))]
    pub soft_threshold: Option<f64>,
}

/// Where a key stands against one rule (the deciding one in `/v1/verify`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct LimitState {
    /// The rule's policy name.
    pub policy: String,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub limit: u64,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub remaining: u64,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub reset_seconds: u64,
}

/// Where a key stands against its quotas.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct QuotaState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub daily: Option<LimitState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub monthly: Option<LimitState>,
}

/// `GET /v1/keys/{id}/limits`: the key's effective rules, where it stands against each, and its
/// recent violations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct KeyLimits {
    pub key_id: KeyId,
    pub tier: Option<String>,
    pub soft_threshold: f64,
    /// Effective rules (the key's own, else its tier's), quotas last.
    pub rules: Vec<LimitUsage>,
    /// Violations in the last 24 hours.
    pub violations: Vec<Violation>,
    /// `local` or `redis`: whose counters `used` comes from.
    pub mode: String,
    /// For each quota (daily, monthly), when it runs out at the rate used so far in its period.
    #[serde(default)]
    pub forecast: Vec<QuotaForecast>,
}

/// A quota's projected exhaustion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct QuotaForecast {
    /// `daily` or `monthly`.
    pub quota: String,
    /// When the quota runs out at the period-to-date rate (now, if it already has); `null`: it
    /// lasts the period at that rate.
    pub exhausts_at: Option<DateTime<Utc>>,
    /// `low`, `medium` or `high`: how much of the period and how many units it has seen.
    pub confidence: crate::limit::forecast::Confidence,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct LimitUsage {
    pub policy: String,
    /// `gcra`, `fixed_window`, `sliding_window`, `daily` or `monthly`.
    pub kind: String,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub limit: u64,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub window_seconds: u64,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub used: u64,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub remaining: u64,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub reset_seconds: u64,
    /// How the rule is kept across nodes (`remaining` of a leased rule is this node's view).
    pub consistency: Consistency,
}

/// Refusals of one key by one rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Violation {
    pub key_id: KeyId,
    pub rule: String,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub count: i64,
    pub last_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct ViolationsQuery {
    /// Default: 24 hours before `to`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<DateTime<Utc>>,
    /// Default: now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<KeyId>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ViolationList {
    pub items: Vec<Violation>,
}
