//! Webhooks on the wire (`/v1/webhooks`): endpoints, their deliveries and the event types an
//! endpoint can subscribe to. Deliveries follow the Standard Webhooks specification
//! (<https://www.standardwebhooks.com/>): `webhook-id`, `webhook-timestamp` and
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// An alert was opened.
pub const ALERT_OPENED: &str = "alert.opened";
/// An alert was acknowledged.
pub const ALERT_ACKED: &str = "alert.acked";
/// An alert was resolved.
pub const ALERT_RESOLVED: &str = "alert.resolved";
/// A key was created.
pub const KEY_CREATED: &str = "key.created";
/// A key was revoked.
pub const KEY_REVOKED: &str = "key.revoked";
/// A key was rotated.
pub const KEY_ROTATED: &str = "key.rotated";
/// A key expires soon.
pub const KEY_EXPIRING: &str = "key.expiring";
/// A key has expired.
pub const KEY_EXPIRED: &str = "key.expired";
/// A key has not been used for 90 days.
pub const KEY_UNUSED: &str = "key.unused";
/// A key crossed the soft threshold of one of its limits.
pub const LIMIT_SOFT_THRESHOLD: &str = "limit.soft_threshold";
/// A key used up a daily or monthly quota.
pub const LIMIT_QUOTA_EXCEEDED: &str = "limit.quota_exceeded";
/// Sent by `POST /v1/webhooks/{id}/test`, to that endpoint only.
pub const WEBHOOK_TEST: &str = "webhook.test";

/// Every event type the server sends; an endpoint's `events` patterns are checked against it.
pub const EVENT_TYPES: &[&str] = &[
    ALERT_OPENED,
    ALERT_ACKED,
    ALERT_RESOLVED,
    KEY_CREATED,
    KEY_REVOKED,
    KEY_ROTATED,
    KEY_EXPIRING,
    KEY_EXPIRED,
    KEY_UNUSED,
    LIMIT_SOFT_THRESHOLD,
    LIMIT_QUOTA_EXCEEDED,
    WEBHOOK_TEST,
];

/// Endpoints an organisation may have.
pub const MAX_WEBHOOKS_PER_ORG: usize = 20;
/// Longest endpoint URL.
pub const URL_MAX_CHARS: usize = 2048;
/// Most patterns in one endpoint's `events`.
pub const MAX_EVENT_PATTERNS: usize = 50;

/// Whether `pattern` is one an endpoint may subscribe with: `*`, a known event type, or
/// `<category>.*` where some known type is `<category>.<name>` (`alert.*`, `key.*`, ...).
pub fn is_valid_pattern(pattern: &str) -> bool {
    if pattern == "*" || EVENT_TYPES.contains(&pattern) {
        return true;
    }
    match pattern.strip_suffix(".*") {
        Some(prefix) if !prefix.is_empty() && !prefix.contains('*') => EVENT_TYPES
            .iter()
            .any(|t| t.strip_prefix(prefix).is_some_and(|r| r.starts_with('.'))),
        _ => false,
    }
}

/// Every pattern that selects `event_type`: `*`, the type itself and each `<prefix>.*` above it
/// (`a.b.c` is selected by `*`, `a.b.c`, `a.*` and `a.b.*`).
pub fn patterns_matching(event_type: &str) -> Vec<String> {
    let mut out = vec!["*".to_owned(), event_type.to_owned()];
    out.extend(
        event_type
            .match_indices('.')
            .map(|(i, _)| format!("{}.*", &event_type[..i])),
    );
    out
}

/// Whether an endpoint subscribed with `pattern` receives `event_type`.
pub fn pattern_matches(pattern: &str, event_type: &str) -> bool {
    patterns_matching(event_type).iter().any(|p| p == pattern)
}

/// A webhook endpoint. The signing secret is never part of it: it is shown once, on creation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Webhook {
    pub id: Uuid,
    pub url: String,
    /// Event patterns: `*`, an event type (`key.expiring`) or a category (`alert.*`).
    pub events: Vec<String>,
    /// Disabled endpoints receive no events (test events excepted).
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
}

/// `POST /v1/webhooks`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookRequest {
    /// `https://...`, or `http://` to a loopback or private address (local receivers); at most
    /// 2048 characters, no credentials.
    pub url: String,
    /// Default `["*"]`: every event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<String>>,
    /// Default `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// `201 Created`: the endpoint and its signing secret, shown this once and never again.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedWebhook {
    #[serde(flatten)]
    pub webhook: Webhook,
    /// `whsec_` + base64 of 32 random bytes; the HMAC key is the base64-decoded part.
    pub secret: String,
}

impl std::fmt::Debug for CreatedWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedWebhook")
            .field("webhook", &self.webhook)
            .field("secret", &"[redacted]")
            .finish()
    }
}

/// `202 Accepted` for `POST /v1/webhooks/{id}/test`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookTestResponse {
    /// The `webhook-id` the test delivery carries.
    pub message_id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its first attempt or a retry.
    Pending,
    /// The endpoint answered 2xx.
    Delivered,
    /// Every attempt failed; no more retries.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    pub fn parse(raw: &str) -> Option<DeliveryStatus> {
        match raw {
            "pending" => Some(DeliveryStatus::Pending),
            "delivered" => Some(DeliveryStatus::Delivered),
            "failed" => Some(DeliveryStatus::Failed),
            _ => None,
        }
    }
}

/// One attempt to deliver a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct WebhookAttempt {
    /// 1 for the first attempt.
    pub attempt: i32,
    pub at: DateTime<Utc>,
    /// The endpoint's HTTP status, when it answered.
    pub http_status: Option<i32>,
    /// Why the attempt failed, when it did without an answer or with a non-2xx one.
    pub error: Option<String>,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub duration_ms: i64,
}

/// One message to one endpoint, with its attempts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct WebhookDelivery {
    pub id: Uuid,
    /// The `webhook-id` header: the same on every attempt.
    pub message_id: String,
    pub event_type: String,
    pub status: DeliveryStatus,
    pub attempts: i32,
    /// When the next attempt is due (pending deliveries only).
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// The HTTP status of the last attempt, when the endpoint answered.
    pub last_status: Option<i32>,
    /// The error of the last attempt, when it failed.
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Every attempt so far, oldest first.
    pub attempt_log: Vec<WebhookAttempt>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        for ok in [
            "*",
            "alert.*",
            "key.*",
            "key.expiring",
            "limit.soft_threshold",
            "webhook.test",
        ] {
            assert!(is_valid_pattern(ok), "{ok}");
        }
        for bad in [
            "",
            "alert",
            "alerts.*",
            "key.expir",
            ".*",
            "*.*",
            "key.**",
            "a*",
            "KEY.EXPIRING",
        ] {
            assert!(!is_valid_pattern(bad), "{bad}");
        }
        assert!(pattern_matches("*", "key.expiring"));
        assert!(pattern_matches("key.*", "key.expiring"));
        assert!(pattern_matches("key.expiring", "key.expiring"));
        assert!(!pattern_matches("alert.*", "key.expiring"));
        assert!(!pattern_matches("key.expired", "key.expiring"));
        assert_eq!(
            patterns_matching("a.b.c"),
            ["*", "a.b.c", "a.*", "a.b.*"].map(String::from)
        );
    }
}
