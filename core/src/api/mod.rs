//! Wire types of the HTTP API (see shared/API.md). The server serialises them, the client and
//! the desktop deserialise them: one definition, so the two sides cannot drift.
//!
//! Request types deny unknown fields: a misspelt field is an error, never silently ignored.

pub mod alerts;
pub mod audit;
pub mod auth;
pub mod events;
pub mod gateway;
pub mod keys;
pub mod limits;
pub mod page;
pub mod problem;
pub mod sync;
pub mod usage;
pub mod verify;
pub mod webhooks;

pub use alerts::{Alert, AlertFilter, AlertList, AlertStatus, AlertsQuery};
pub use audit::{AuditEntry, AuditHead, AuditVerifyReport, BrokenLink};
pub use auth::{AdminInfo, ChangePasswordRequest, LoginRequest, LoginResponse, Role};
pub use events::{EventsQuery, OrgEvent};
pub use gateway::{
    GatewayGroup, GatewayQuery, GatewayUsage, KeyNetwork, KeyNetworkList, StatusCounts,
};
pub use keys::{
    ApiKey, CreateKeyRequest, CreatedKey, KeyStatusFilter, ListKeysQuery, RevokeKeyRequest,
    RotateKeyRequest, RotatedKey, UpdateKeyRequest,
};
pub use limits::{
    Consistency, CreateTierRequest, KeyLimits, LimitState, LimitUsage, Quota, QuotaForecast,
    QuotaState, RateLimitRule, Tier, UpdateTierRequest, Violation, ViolationList, ViolationsQuery,
};
pub use page::{Page, PageQuery};
pub use problem::{FieldError, Problem};
pub use sync::{
    Change, ChangeOp, Entity, OpKind, OpParseError, OpResult, OpStatus, PullQuery, PullResponse,
    PushOp, PushRequest, PushResponse, ReceivedPush, RefusalCode, RotateOfflineRequest,
};
pub use usage::{
    CountPoint, Granularity, KeySeries, KeyUsageTotal, OrgUsage, OrgUsageQuery, OutcomeSeries,
    ReportFormat, ReportQuery, ReportRow, UsageGroupBy, UsagePoint, UsageQuery, UsageResponse,
    UsageTotals,
};
pub use verify::{MAX_COST, VerifyCode, VerifyRequest, VerifyResponse, Whoami, presented_key};
pub use webhooks::{
    CreateWebhookRequest, CreatedWebhook, DeliveryStatus, Webhook, WebhookAttempt, WebhookDelivery,
    WebhookTestResponse,
};

/// Deserialises a field that may be absent (leave as is), `null` (clear) or a value (set).
pub(crate) mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// `Some(None)` is written as `null`; `None` is skipped by `skip_serializing_if`.
    pub fn serialize<T, S>(value: &Option<Option<T>>, ser: S) -> Result<S::Ok, S::Error>
    where
        T: Serialize,
        S: Serializer,
    {
        match value {
            Some(inner) => inner.serialize(ser),
            None => ser.serialize_none(),
        }
    }

    pub fn deserialize<'de, T, D>(de: D) -> Result<Option<Option<T>>, D::Error>
    where
        T: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Option::<T>::deserialize(de).map(Some)
    }
}
