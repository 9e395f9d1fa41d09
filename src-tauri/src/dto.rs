//! What the UI sends and receives. TypeScript types are generated from these (ts-rs) into
//! ui/src/bindings by the `bindings_are_current` test, so the two sides cannot drift.

use chrono::{DateTime, Utc};
use keyward_core::api::{
    Alert, ApiKey, AuditEntry, CreateKeyRequest, GatewayUsage, Granularity, KeyLimits, KeyNetwork,
    OrgEvent, OrgUsage, Quota, RateLimitRule, Role, UpdateKeyRequest, UsagePoint,
};
use keyward_core::{Environment, KeyId, KeyStatus, OrgId};
use keyward_replica::LocalKey;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct Session {
    pub server_url: String,
    pub email: String,
    pub role: Role,
    pub org_id: OrgId,
    /// The organisation's name (empty for a session saved before it was kept).
    #[serde(default)]
    pub org_name: String,
}

/// A server rejection of a queued change, shown on the affected key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct OpError {
    pub code: String,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct KeyListItem {
    /// The key as this device shows it: the server's record with queued changes applied.
    pub key: ApiKey,
    /// Local changes wait in the outbox.
    pub pending: bool,
    pub error: Option<OpError>,
    /// The key's status on the server now, what client systems get whatever is queued here
    /// (`null`: the server does not have the key yet, e.g. made offline and not synced).
    pub server_status: Option<KeyStatus>,
    /// The revocation time the server decided (`null` while a revocation is only queued).
    pub server_revoked_at: Option<DateTime<Utc>>,
}

/// A change the server refused, kept until retried or discarded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct RejectedChange {
    pub op_id: String,
    /// `update_key`, `revoke_key`, `create_key` or `rotate_key`.
    pub kind: String,
    pub key_id: KeyId,
    pub key_name: String,
    /// What the change was ("Edit", "Revoke now", ...).
    pub summary: String,
    /// What it set, field by field, in words.
    pub fields: Vec<ChangedField>,
    /// Why the server refused it.
    pub error: OpError,
    pub queued_at: DateTime<Utc>,
    pub rejected_at: DateTime<Utc>,
    /// Retry sends it again on the key as the server has it now.
    pub retryable: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ChangedField {
    pub field: String,
    pub value: String,
}

impl From<keyward_replica::RejectedChange> for RejectedChange {
    fn from(c: keyward_replica::RejectedChange) -> Self {
        RejectedChange {
            op_id: c.op_id.to_string(),
            kind: c.kind,
            key_id: c.key_id,
            key_name: c.key_name,
            summary: c.summary,
            fields: c
                .fields
                .into_iter()
                .map(|f| ChangedField {
                    field: f.field,
                    value: f.value,
                })
                .collect(),
            error: OpError {
                code: c.rejection.code,
                detail: c.rejection.detail,
            },
            queued_at: c.queued_at,
            rejected_at: c.rejected_at,
            retryable: c.retryable,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct KeyList {
    pub items: Vec<KeyListItem>,
    pub total: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct KeyDetail {
    pub item: KeyListItem,
    pub audit: Vec<AuditEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct NewKeyForm {
    pub name: String,
    pub description: Option<String>,
    pub environment: Environment,
    pub scopes: Vec<String>,
    pub allowed_ips: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
    /// The key's tier and own limits (`null`: the defaults, no tier and no own limits).
    pub limits: Option<LimitsForm>,
}

/// A key's limits as the forms set them, all three at once: its tier (whose rules and quota
/// apply where the key has none of its own), its own rate-limit rules and its own quota.
/// `null` rules or quota: the tier's (none without a tier).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TS)]
pub struct LimitsForm {
    pub tier: Option<String>,
    pub rate_limits: Option<Vec<RateLimitRule>>,
    pub quota: Option<Quota>,
}

/// `None` leaves a field as it is; `clear_expiry` removes the expiry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TS)]
pub struct KeyEdit {
    pub name: Option<String>,
    pub description: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub allowed_ips: Option<Vec<String>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub clear_expiry: bool,
    pub disabled: Option<bool>,
    /// Replaces the key's tier, rules and quota with these (absent: left as they are).
    pub limits: Option<LimitsForm>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Revocation {
    pub grace_seconds: u32,
    pub reason: Option<String>,
}

/// The token is shown once and never stored by the app.
#[derive(Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct IssuedKey {
    pub key: ApiKey,
    pub token: String,
}

impl std::fmt::Debug for IssuedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedKey")
            .field("key", &self.key.id)
            .field("token", &"[redacted]")
            .finish()
    }
}

/// A key's usage over the last 30 days, by hour or by day, from the replica.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct UsageSeries {
    pub key_id: KeyId,
    pub granularity: Granularity,
    pub points: Vec<UsagePoint>,
    /// When the series was last synced from the server (`None`: never, so no points means
    /// "not known yet" rather than "no calls").
    pub fetched_at: Option<DateTime<Utc>>,
}

/// A key's standing against its rate limits and quotas, and its recent violations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct LimitsSnapshot {
    pub limits: KeyLimits,
    /// When the standing was fetched from the server (the app keeps the last one for offline
    /// use, so an old time means `used` and the reset times are as they were then).
    pub fetched_at: DateTime<Utc>,
}

/// The period the dashboard covers: the last 24 hours or 7 days by hour, or 30 days by day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
pub enum DashboardPeriod {
    #[serde(rename = "24h")]
    Day,
    #[serde(rename = "7d")]
    Week,
    #[serde(rename = "30d")]
    Month,
}

impl DashboardPeriod {
    pub fn as_str(self) -> &'static str {
        match self {
            DashboardPeriod::Day => "24h",
            DashboardPeriod::Week => "7d",
            DashboardPeriod::Month => "30d",
        }
    }
}

/// A key that needs attention: it expires within a week (`expiry`) or stands at or past its
/// soft threshold on a rule or quota (`limit`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct Attention {
    /// `expiry` or `limit`.
    pub kind: String,
    pub key_id: KeyId,
    pub key_name: String,
    /// "expires in 3 days (2026-11-28 10:00 UTC)", "9 of 10 used on day (90%)".
    pub detail: String,
}

/// The organisation's usage over a period, its open alerts and the keys that need attention,
/// all from the replica.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct Dashboard {
    pub period: DashboardPeriod,
    pub usage: OrgUsage,
    pub alerts: Vec<Alert>,
    pub attention: Vec<Attention>,
    /// When the analytics were synced (the period ends then; offline, an old time means the
    /// figures are as they were then).
    pub fetched_at: DateTime<Utc>,
}

/// Alerts as last synced, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct AlertsView {
    pub items: Vec<Alert>,
    /// When the alert list was synced (`None`: never).
    pub synced_at: Option<DateTime<Utc>>,
}

/// One of the organisation's events (`GET /v1/events`: `id`, `type`, `key_id`, `created_at`
/// and the typed `data`) with the name of its key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct KeyEvent {
    #[serde(flatten)]
    #[ts(flatten)]
    pub event: OrgEvent,
    /// The key's name in the replica, else the one the event carries (`None`: unknown).
    pub key_name: Option<String>,
}

/// The organisation's events as last synced, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct KeyEventsView {
    pub items: Vec<KeyEvent>,
    /// When the events were last pulled (`None`: never).
    pub synced_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum ReportFormat {
    #[default]
    Csv,
    Json,
}

/// A usage report to save: calls per key and UTC day in `[from, to)`, written to `path`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct ReportRequest {
    pub path: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub format: ReportFormat,
}

/// A saved report: where, how many bytes and how many rows (the total line excepted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct ReportSaved {
    pub path: String,
    pub bytes: u64,
    pub rows: u64,
}

/// The period a key's gateway traffic covers: the last 24 hours or the last 7 days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
pub enum GatewayPeriod {
    #[serde(rename = "24h")]
    Day,
    #[serde(rename = "7d")]
    Week,
}

impl GatewayPeriod {
    pub fn as_str(self) -> &'static str {
        match self {
            GatewayPeriod::Day => "24h",
            GatewayPeriod::Week => "7d",
        }
    }

    pub fn span(self) -> chrono::Duration {
        match self {
            GatewayPeriod::Day => chrono::Duration::hours(24),
            GatewayPeriod::Week => chrono::Duration::days(7),
        }
    }
}

/// A key's gateway traffic over a period: the key's total first, then each route group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct GatewaySnapshot {
    pub key_id: KeyId,
    pub period: GatewayPeriod,
    pub usage: GatewayUsage,
    /// When it was fetched from the server (offline, the app shows the last copy it kept, so
    /// an old time means the figures are as they were then).
    pub fetched_at: DateTime<Utc>,
}

/// The networks (IPv4 /24, IPv6 /48) a key's successful calls came from, most recent first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct NetworksSnapshot {
    pub key_id: KeyId,
    pub items: Vec<KeyNetwork>,
    /// When the list was fetched from the server (offline: the last copy kept).
    pub fetched_at: DateTime<Utc>,
}

impl From<LocalKey> for KeyListItem {
    fn from(k: LocalKey) -> Self {
        KeyListItem {
            key: k.key,
            pending: k.pending,
            error: k.rejection.map(|r| OpError {
                code: r.code,
                detail: r.detail,
            }),
            server_status: k.server_status,
            server_revoked_at: k.server_revoked_at,
        }
    }
}

/// The new-key form as the replica's (and the server's) request.
impl From<NewKeyForm> for CreateKeyRequest {
    fn from(form: NewKeyForm) -> Self {
        CreateKeyRequest {
            name: form.name,
            description: form.description,
            environment: Some(form.environment),
            scopes: Some(form.scopes),
            expires_at: form.expires_at,
            allowed_ips: Some(form.allowed_ips),
            tier: form.limits.as_ref().and_then(|l| l.tier.clone()),
            rate_limits: form.limits.as_ref().and_then(|l| l.rate_limits.clone()),
            quota: form.limits.and_then(|l| l.quota),
            ..Default::default()
        }
    }
}

/// The edit form as a partial update: a blank description clears it, `clear_expiry` removes
/// the expiry, fields left out stay as they are.
impl From<KeyEdit> for UpdateKeyRequest {
    fn from(edit: KeyEdit) -> Self {
        UpdateKeyRequest {
            name: edit.name,
            description: edit
                .description
                .map(|d| Some(d).filter(|d| !d.trim().is_empty())),
            scopes: edit.scopes,
            allowed_ips: edit.allowed_ips,
            expires_at: if edit.clear_expiry {
                Some(None)
            } else {
                edit.expires_at.map(Some)
            },
            metadata: None,
            disabled: edit.disabled,
            tier: edit.limits.as_ref().map(|l| l.tier.clone()),
            rate_limits: edit.limits.as_ref().map(|l| l.rate_limits.clone()),
            quota: edit.limits.map(|l| l.quota),
        }
    }
}
