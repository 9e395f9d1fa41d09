//! Webhooks on the wire (`/v1/webhooks`): endpoints, their deliveries and the event types an
//! endpoint can subscribe to. Deliveries follow the Standard Webhooks specification
//! (<https://www.standardwebhooks.com/>): `webhook-id`, `webhook-timestamp` and
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{KeyId, OrgId};

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

/// A webhook event as delivered: its `type` and its typed payload (`data`), beside the
/// envelope's `timestamp`. Every variant is one of [`EVENT_TYPES`] and the server sends nothing
/// else; no payload ever carries a secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "type", content = "data")]
pub enum WebhookEvent {
    /// The anomaly detector opened an alert.
    #[serde(rename = "alert.opened")]
    AlertOpened(AlertOpenedData),
    /// An admin acknowledged an alert.
    #[serde(rename = "alert.acked")]
    AlertAcked(AlertAckedData),
    /// An alert's condition cleared.
    #[serde(rename = "alert.resolved")]
    AlertResolved(AlertResolvedData),
    /// A key was created (through the API, a desktop's sync push, or as a rotation's successor).
    #[serde(rename = "key.created")]
    KeyCreated(KeyCreatedData),
    /// A key's revocation took effect: at once, or when its grace period (a rotation's too)
    /// ended. Sent once per key, whatever revoked it.
    #[serde(rename = "key.revoked")]
    KeyRevoked(KeyRevokedData),
    /// A key was rotated: its successor exists, the key retires at `retires_at`.
    #[serde(rename = "key.rotated")]
    KeyRotated(KeyRotatedData),
    /// A key expires within 7 days, then within 1 day (once each).
    #[serde(rename = "key.expiring")]
    KeyExpiring(KeyNoticeData),
    /// A key's expiry passed (sent within a minute, once per key).
    #[serde(rename = "key.expired")]
    KeyExpired(KeyExpiredData),
    /// A key has not been used for 90 days.
    #[serde(rename = "key.unused")]
    KeyUnused(KeyNoticeData),
    /// A key crossed the soft threshold of one of its limits (once per key, rule and window).
    #[serde(rename = "limit.soft_threshold")]
    LimitSoftThreshold(LimitEventData),
    /// A key used up a daily or monthly quota (once per key, quota and period).
    #[serde(rename = "limit.quota_exceeded")]
    LimitQuotaExceeded(LimitEventData),
    /// `POST /v1/webhooks/{id}/test`, to that endpoint only.
    #[serde(rename = "webhook.test")]
    WebhookTest(WebhookTestData),
}

impl WebhookEvent {
    /// The event type, one of [`EVENT_TYPES`].
    pub fn event_type(&self) -> &'static str {
        match self {
            WebhookEvent::AlertOpened(_) => ALERT_OPENED,
            WebhookEvent::AlertAcked(_) => ALERT_ACKED,
            WebhookEvent::AlertResolved(_) => ALERT_RESOLVED,
            WebhookEvent::KeyCreated(_) => KEY_CREATED,
            WebhookEvent::KeyRevoked(_) => KEY_REVOKED,
            WebhookEvent::KeyRotated(_) => KEY_ROTATED,
            WebhookEvent::KeyExpiring(_) => KEY_EXPIRING,
            WebhookEvent::KeyExpired(_) => KEY_EXPIRED,
            WebhookEvent::KeyUnused(_) => KEY_UNUSED,
            WebhookEvent::LimitSoftThreshold(_) => LIMIT_SOFT_THRESHOLD,
            WebhookEvent::LimitQuotaExceeded(_) => LIMIT_QUOTA_EXCEEDED,
            WebhookEvent::WebhookTest(_) => WEBHOOK_TEST,
        }
    }

    /// The payload, as the envelope's `data`.
    pub fn data(&self) -> serde_json::Value {
        let value = serde_json::to_value(self).unwrap_or_default();
        match value {
            serde_json::Value::Object(mut m) => m.remove("data").unwrap_or_default(),
            _ => serde_json::Value::Null,
        }
    }

    /// The key the event is about (every event names one, except `webhook.test`).
    pub fn key_id(&self) -> Option<KeyId> {
        Some(match self {
            WebhookEvent::AlertOpened(d) => d.key_id,
            WebhookEvent::AlertAcked(d) => d.key_id,
            WebhookEvent::AlertResolved(d) => d.key_id,
            WebhookEvent::KeyCreated(d) => d.key_id,
            WebhookEvent::KeyRevoked(d) => d.key_id,
            WebhookEvent::KeyRotated(d) => d.key_id,
            WebhookEvent::KeyExpiring(d) | WebhookEvent::KeyUnused(d) => d.key_id,
            WebhookEvent::KeyExpired(d) => d.key_id,
            WebhookEvent::LimitSoftThreshold(d) | WebhookEvent::LimitQuotaExceeded(d) => d.key_id,
            WebhookEvent::WebhookTest(_) => return None,
        })
    }
}

/// `alert.opened`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct AlertOpenedData {
    pub alert_id: Uuid,
    pub key_id: KeyId,
    /// The finding's kind (`rate_spike`, `rejection_burst`, `idle_key_used`, `new_network`).
    pub kind: String,
    pub observed: f64,
    pub expected: f64,
    pub window_start: DateTime<Utc>,
    pub window_secs: u32,
    pub detail: String,
}

/// `alert.acked`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct AlertAckedData {
    pub alert_id: Uuid,
    pub key_id: KeyId,
    pub kind: String,
    /// The email of the admin who acknowledged it.
    pub acked_by: String,
}

/// `alert.resolved`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct AlertResolvedData {
    pub alert_id: Uuid,
    pub key_id: KeyId,
    pub kind: String,
}

/// `key.created`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct KeyCreatedData {
    pub key_id: KeyId,
    pub name: String,
    /// `live` or `test`.
    pub environment: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    /// The key this one replaces, when it is a rotation's successor.
    pub rotated_from: Option<KeyId>,
}

/// `key.revoked`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct KeyRevokedData {
    pub key_id: KeyId,
    pub name: String,
    /// When the revocation took effect.
    pub revoked_at: DateTime<Utc>,
    /// The admin's reason, or `rotated` for a rotated key.
    pub reason: Option<String>,
    /// The successor of a rotated key.
    pub replaced_by: Option<KeyId>,
}

/// `key.rotated`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct KeyRotatedData {
    /// The rotated (retiring) key.
    pub key_id: KeyId,
    pub name: String,
    pub new_key_id: KeyId,
    /// When the rotated key stops working (its grace period's end).
    pub retires_at: DateTime<Utc>,
}

/// `key.expired`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct KeyExpiredData {
    pub key_id: KeyId,
    pub name: String,
    pub expires_at: DateTime<Utc>,
}

/// `key.expiring` and `key.unused`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct KeyNoticeData {
    pub key_id: KeyId,
    pub name: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    /// `key.expiring`: 7 or 1.
    pub within_days: Option<i64>,
}

/// `limit.soft_threshold` and `limit.quota_exceeded`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct LimitEventData {
    pub key_id: KeyId,
    /// The rule's policy name (`daily`, `monthly` for quotas).
    pub rule: String,
    /// The rule's window (or quota period) number since the epoch.
    pub window_index: i64,
    pub used: i64,
    pub limit: i64,
    pub at: DateTime<Utc>,
}

/// `webhook.test`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct WebhookTestData {
    pub webhook_id: Uuid,
    pub org_id: OrgId,
    pub message: String,
}

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

/// Every valid pattern ([`is_valid_pattern`]): `*`, each `<category>.*`, each type.
pub fn all_patterns() -> Vec<String> {
    let mut out = vec!["*".to_owned()];
    for t in EVENT_TYPES {
        for p in patterns_matching(t).into_iter().skip(1) {
            if !out.contains(&p) {
                out.push(p);
            }
        }
    }
    out
}

/// The OpenAPI schema of a pattern: a string, one of [`all_patterns`].
#[cfg(feature = "openapi")]
pub fn pattern_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(all_patterns()))
        .build()
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

    /// One event of every variant (a new variant must be added here, or this fails to compile
    /// through the exhaustive match in `event_type`).
    fn one_of_each() -> Vec<WebhookEvent> {
        let (key_id, at, alert_id) = (KeyId::new(), Utc::now(), Uuid::now_v7());
        let notice = KeyNoticeData {
            key_id,
            name: "k".into(),
            expires_at: Some(at),
            last_used_at: None,
            within_days: Some(7),
        };
        let limit = LimitEventData {
            key_id,
            rule: "daily".into(),
            window_index: 1,
            used: 10,
            limit: 10,
            at,
        };
        vec![
            WebhookEvent::AlertOpened(AlertOpenedData {
                alert_id,
                key_id,
                kind: "rate_spike".into(),
                observed: 10.0,
                expected: 1.0,
                window_start: at,
                window_secs: 300,
                detail: "d".into(),
            }),
            WebhookEvent::AlertAcked(AlertAckedData {
                alert_id,
                key_id,
                kind: "rate_spike".into(),
                acked_by: "a@example.com".into(),
            }),
            WebhookEvent::AlertResolved(AlertResolvedData {
                alert_id,
                key_id,
                kind: "rate_spike".into(),
            }),
            WebhookEvent::KeyCreated(KeyCreatedData {
                key_id,
                name: "k".into(),
                environment: "live".into(),
                created_at: at,
                expires_at: None,
                rotated_from: None,
            }),
            WebhookEvent::KeyRevoked(KeyRevokedData {
                key_id,
                name: "k".into(),
                revoked_at: at,
                reason: None,
                replaced_by: None,
            }),
            WebhookEvent::KeyRotated(KeyRotatedData {
                key_id,
                name: "k".into(),
                new_key_id: KeyId::new(),
                retires_at: at,
            }),
            WebhookEvent::KeyExpiring(notice.clone()),
            WebhookEvent::KeyExpired(KeyExpiredData {
                key_id,
                name: "k".into(),
                expires_at: at,
            }),
            WebhookEvent::KeyUnused(notice),
            WebhookEvent::LimitSoftThreshold(limit.clone()),
            WebhookEvent::LimitQuotaExceeded(limit),
            WebhookEvent::WebhookTest(WebhookTestData {
                webhook_id: alert_id,
                org_id: OrgId::new(),
                message: "m".into(),
            }),
        ]
    }

    #[test]
    fn every_listed_event_type_has_a_typed_payload_and_back() {
        let events = one_of_each();
        let mut types: Vec<&str> = events.iter().map(WebhookEvent::event_type).collect();
        types.sort_unstable();
        let mut listed = EVENT_TYPES.to_vec();
        listed.sort_unstable();
        assert_eq!(types, listed, "EVENT_TYPES and WebhookEvent disagree");
        for event in events {
            let json = serde_json::to_value(&event).unwrap();
            assert_eq!(json["type"], event.event_type());
            assert_eq!(json["data"], event.data());
            let back: WebhookEvent = serde_json::from_value(json).unwrap();
            assert_eq!(back, event);
        }
    }

    #[test]
    fn every_listed_pattern_is_valid() {
        let all = all_patterns();
        assert!(all.iter().all(|p| is_valid_pattern(p)), "{all:?}");
        for p in ["*", "key.*", "key.expired", "limit.*", "alert.acked"] {
            assert!(all.iter().any(|a| a == p), "{p}");
        }
    }

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
