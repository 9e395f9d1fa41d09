//! Webhooks: the event outbox the rest of the server writes to (here), signing and secrets
//! encrypted at rest ([`secrets`]) and where deliveries may go ([`destinations`]). The delivery
//! worker that sends what the outbox holds is a background job: [`crate::jobs::webhooks`].
//!
//! # Sending an event
//!
//! Code that changes something calls [`enqueue`] inside its own transaction:
//!
//! ```ignore
//! let mut tx = state.pool.begin().await?;
//! // ... the change itself ...
//! webhooks::enqueue(&mut tx, org, &WebhookEvent::KeyExpired(KeyExpiredData { .. })).await?;
//! tx.commit().await?;
//! ```
//!
//! It writes one delivery row per enabled endpoint of the organisation whose patterns select the
//! event (a transactional outbox: the event exists if and only if the change committed) and a
//! `NOTIFY` that wakes the delivery workers of every node when the transaction commits.
//!
//! # Delivery
//!
//! [`crate::jobs::webhooks::run_worker`] claims due rows with `FOR UPDATE SKIP LOCKED` plus a
//! lease (safe with several nodes), POSTs the stored body with `webhook-id` (the message id, the
//! same on every attempt), `webhook-timestamp` (this attempt, unix seconds) and
//! `webhook-signature` (`v1,` + base64 of HMAC-SHA256 over `{id}.{timestamp}.{body}`, keyed with
//! the bytes after `whsec_`). A 2xx answer delivers; anything else (other status, timeout,
//! connection error) is retried after `webhook_retry_base_ms` × 6^(n-1) (5 s, 30 s, 3 min,
//! 18 min, 1.8 h by default) until `webhook_max_attempts`, then the delivery is `failed`. Every
//! attempt is logged (`webhook_attempts`).
//!
//! # Secrets
//!
//! A secret is `whsec_` + base64 of 32 random bytes from the OS, shown once in the creation
//! answer. It must stay usable for signing, so it is encrypted, not hashed: ChaCha20-Poly1305
//! with a random nonce per secret and the endpoint id as associated data (a ciphertext copied to
//! another endpoint does not open). The key is `KEYWARD_WEBHOOK_KEY` (32 bytes, base64) when set;
//! otherwise a random key stored in the database (`webhook_keys`, made on first use), which keeps
//! secrets working across restarts and nodes but protects a database dump only when that table is
//! left out: production should set `KEYWARD_WEBHOOK_KEY`. Each endpoint records which key sealed
//! its secret, so setting the variable later leaves existing endpoints working. Secrets are never
//! logged, never returned after creation and never synced to the desktop.

use chrono::{DateTime, SecondsFormat, Utc};
use keyward_core::OrgId;
use keyward_core::api::FieldError;
use keyward_core::validate::FieldErrors;
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

pub use keyward_core::api::webhooks::{
    ALERT_ACKED, ALERT_OPENED, ALERT_RESOLVED, EVENT_TYPES, KEY_CREATED, KEY_EXPIRED, KEY_EXPIRING,
    KEY_REVOKED, KEY_ROTATED, KEY_UNUSED, LIMIT_QUOTA_EXCEEDED, LIMIT_SOFT_THRESHOLD,
    MAX_EVENT_PATTERNS, MAX_WEBHOOKS_PER_ORG, URL_MAX_CHARS, WEBHOOK_TEST, WebhookEvent,
};

use crate::store::now_micros;
use crate::store::webhooks::{self as store, NewMessage};

/// The `NOTIFY` channel that wakes delivery workers.
pub const CHANNEL: &str = "keyward_webhooks";

pub(crate) mod destinations;
mod secrets;

pub use destinations::Refused;
pub use secrets::*;

// --- validation ---

fn bad(field: &str, code: &str, message: impl Into<String>) -> FieldError {
    FieldError::new(field, code, message)
}

/// Event patterns: `*` when absent; otherwise 1–50 valid patterns, duplicates dropped.
pub fn validate_events(
    field: &str,
    events: Option<&[String]>,
) -> Result<Vec<String>, Vec<FieldError>> {
    let Some(events) = events else {
        return Ok(vec!["*".to_owned()]);
    };
    if events.is_empty() {
        return Err(vec![bad(
            field,
            "empty",
            "must name at least one event pattern (omit it for every event)",
        )]);
    }
    if events.len() > MAX_EVENT_PATTERNS {
        return Err(vec![bad(
            field,
            "too_many",
            format!("at most {MAX_EVENT_PATTERNS} patterns"),
        )]);
    }
    let mut errs = FieldErrors::new();
    let mut out: Vec<String> = Vec::new();
    for (i, e) in events.iter().enumerate() {
        if keyward_core::api::webhooks::is_valid_pattern(e) {
            if !out.contains(e) {
                out.push(e.clone());
            }
        } else {
            errs.push(bad(
                &format!("{field}[{i}]"),
                "unknown_event_type",
                format!(
                    "must be `*`, an event type or `<category>.*`; event types: {}",
                    EVENT_TYPES.join(", ")
                ),
            ));
        }
    }
    errs.into_result()?;
    Ok(out)
}

// --- the outbox ---

/// What [`enqueue`] queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueued {
    /// The `webhook-id` every delivery of this event carries (empty when no endpoint subscribes).
    pub message_id: String,
    /// Endpoints the event was queued for (0 when none subscribes).
    pub deliveries: u64,
}

#[derive(Serialize)]
struct Envelope<'a> {
    #[serde(rename = "type")]
    event_type: &'a str,
    timestamp: String,
    data: &'a serde_json::Value,
}

fn message(event_type: &str, data: &serde_json::Value, at: DateTime<Utc>) -> (String, String) {
    let message_id = format!("msg_{}", Uuid::now_v7().simple());
    let body = serde_json::to_string(&Envelope {
        event_type,
        timestamp: at.to_rfc3339_opts(SecondsFormat::Millis, true),
        data,
    })
    .expect("a JSON value serialises");
    (message_id, body)
}

async fn queue(
    conn: &mut PgConnection,
    org: OrgId,
    event_type: &str,
    data: &serde_json::Value,
    endpoints: &[Uuid],
) -> Result<Enqueued, sqlx::Error> {
    let at = now_micros();
    let (message_id, body) = message(event_type, data, at);
    let deliveries = store::insert_deliveries(
        conn,
        &NewMessage {
            org,
            message_id: &message_id,
            event_type,
            body: &body,
            created_at: at,
        },
        endpoints,
    )
    .await?;
    if deliveries > 0 {
        // Delivered on commit only, to every node's worker: the rows are visible by then.
        sqlx::query!("SELECT pg_notify($1, '')", CHANNEL)
            .execute(conn)
            .await?;
    }
    Ok(Enqueued {
        message_id,
        deliveries,
    })
}

/// Records `event` in the organisation's event log (`events`, read by `GET /v1/events`) and
/// queues it for every enabled endpoint of `org` subscribed to its type, inside the caller's
/// transaction: the event and its deliveries exist if and only if the caller commits. Payloads
/// are the typed structs of [`WebhookEvent`]; none carries a secret.
pub async fn enqueue(
    conn: &mut PgConnection,
    org: OrgId,
    event: &WebhookEvent,
) -> Result<Enqueued, sqlx::Error> {
    // Recorded whether or not any webhook subscribes: the log is what admins read.
    crate::store::events::record(conn, org, event, now_micros()).await?;
    let (event_type, data) = (event.event_type(), event.data());
    let patterns = keyward_core::api::webhooks::patterns_matching(event_type);
    let endpoints = store::subscribed(conn, org, &patterns).await?;
    if endpoints.is_empty() {
        return Ok(Enqueued {
            message_id: String::new(),
            deliveries: 0,
        });
    }
    queue(conn, org, event_type, &data, &endpoints).await
}

/// Queues an event for one endpoint whatever its patterns and enabled flag (`webhook.test`).
pub async fn enqueue_to(
    conn: &mut PgConnection,
    org: OrgId,
    endpoint: Uuid,
    event: &WebhookEvent,
) -> Result<Enqueued, sqlx::Error> {
    queue(conn, org, event.event_type(), &event.data(), &[endpoint]).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events() {
        assert_eq!(validate_events("events", None).unwrap(), ["*"]);
        let given = ["alert.*", "key.expiring", "alert.*"].map(String::from);
        assert_eq!(
            validate_events("events", Some(&given)).unwrap(),
            ["alert.*", "key.expiring"]
        );
        let errs =
            validate_events("events", Some(&["key.expiring".into(), "nope".into()])).unwrap_err();
        assert_eq!(errs[0].field, "events[1]");
        assert_eq!(
            validate_events("events", Some(&[])).unwrap_err()[0].code,
            "empty"
        );
    }
}
