//! Alerts (`/v1/alerts`): what the per-key anomaly detectors found.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ids::KeyId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    Open,
    Acked,
    Resolved,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Open => "open",
            AlertStatus::Acked => "acked",
            AlertStatus::Resolved => "resolved",
        }
    }
}

/// One alert: the key, what was observed against what was expected, and the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Alert {
    pub id: Uuid,
    pub key_id: KeyId,
    pub key_name: String,
    /// `rate_spike`, `rate_drop`, `invalid_secret_burst`, `ip_not_allowed_burst`,
    /// `insufficient_scope_burst`, `new_network`, `idle_key_used`.
    pub kind: String,
    pub status: AlertStatus,
    pub observed: f64,
    pub expected: f64,
    pub window_start: DateTime<Utc>,
    pub window_secs: i32,
    pub detail: String,
    pub opened_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub acked_at: Option<DateTime<Utc>>,
    /// The email of the admin who acknowledged it (absent from servers before it was added).
    #[serde(default)]
    pub acked_by: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AlertFilter {
    #[default]
    Open,
    Acked,
    Resolved,
    All,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct AlertsQuery {
    /// Default `open`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<AlertFilter>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlertList {
    pub items: Vec<Alert>,
}
