//! Gateway traffic (`GET /v1/gateway/usage`, `GET /v1/keys/{id}/gateway`): calls by route group
//! and status class with latency percentiles (time to the upstream's response headers).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::KeyId;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct GatewayQuery {
    /// Start (inclusive, rounded down to the hour); default: `to` minus 24 hours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<DateTime<Utc>>,
    /// End (exclusive); default: now. At most 90 days after `from`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<DateTime<Utc>>,
}

/// Calls by the class of the status the caller got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct StatusCounts {
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub informational: i64,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub success: i64,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub redirect: i64,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub client_error: i64,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub server_error: i64,
}

impl StatusCounts {
    /// Adds `n` calls of status class `class` (1 = 1xx ... 5 = 5xx; others are ignored).
    pub fn add(&mut self, class: i16, n: i64) {
        match class {
            1 => self.informational += n,
            2 => self.success += n,
            3 => self.redirect += n,
            4 => self.client_error += n,
            5 => self.server_error += n,
            _ => {}
        }
    }
}

/// One group of gateway calls: a key's route (`route` set), a key's total (`route` absent), or
/// the organisation's total (both absent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct GatewayGroup {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<KeyId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub calls: i64,
    pub status: StatusCounts,
    /// Server errors (5xx, including the gateway's own 502/504) over all calls.
    pub error_share: f64,
    pub latency_mean_ms: Option<f64>,
    pub latency_p50_ms: Option<f64>,
    pub latency_p95_ms: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct GatewayUsage {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// The total first, then the groups by calls, most first.
    pub groups: Vec<GatewayGroup>,
}

/// A network (IPv4 /24, IPv6 /48) a key's successful calls came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct KeyNetwork {
    pub network: String,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub calls: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct KeyNetworkList {
    /// Most recently seen first; at most 200.
    pub items: Vec<KeyNetwork>,
}
