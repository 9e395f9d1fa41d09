//! The organisation's event log (`GET /v1/events`): every event the server emits (the typed
//! payloads of [`WebhookEvent`]), recorded whether or not a webhook subscribes to it, so an admin
//! (and the desktop's Alerts screen) can read what happened to the keys.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::KeyId;
use crate::api::webhooks::WebhookEvent;

/// One recorded event: `{id, type, key_id, created_at, data}`, `type` and `data` as a webhook
/// delivery carries them (`data` is the event type's typed payload).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct OrgEvent {
    /// UUIDv7, time-ordered.
    pub id: Uuid,
    /// The key the event is about.
    pub key_id: Option<KeyId>,
    /// When the change that emitted it was made (its transaction).
    pub created_at: DateTime<Utc>,
    /// `type` and `data`.
    #[serde(flatten)]
    #[cfg_attr(feature = "ts", ts(flatten))]
    pub event: WebhookEvent,
}

/// `GET /v1/events` query: paging plus filters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// 1..=500, default 50.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 500))]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page (an event id, base64url without padding).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(pattern = r"^[A-Za-z0-9_-]{21}[AQgw]$"))]
    pub cursor: Option<String>,
    /// Only events of this type (`key.expired`) or category (`key.*`); `*` is every type.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        param(schema_with = crate::api::webhooks::pattern_schema)
    )]
    pub event_type: Option<String>,
    /// Only events about this key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<KeyId>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::webhooks::KeyExpiredData;

    #[test]
    fn an_event_reads_as_id_type_key_time_and_payload() {
        let key = KeyId::from_uuid(Uuid::now_v7());
        let e = OrgEvent {
            id: Uuid::now_v7(),
            key_id: Some(key),
            created_at: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
            event: WebhookEvent::KeyExpired(KeyExpiredData {
                key_id: key,
                name: "ci".into(),
                expires_at: DateTime::from_timestamp(1_799_999_990, 0).unwrap(),
            }),
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["type"], "key.expired");
        assert_eq!(v["data"]["name"], "ci");
        assert_eq!(v["key_id"], key.to_string());
        assert_eq!(serde_json::from_value::<OrgEvent>(v).unwrap(), e);
    }
}
