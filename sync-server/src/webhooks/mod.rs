//! Webhooks: the event outbox the rest of the server writes to ([`enqueue`], kept in
//! [`crate::store::outbox`] so the store's own writes can use it), signing and secrets
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

use keyward_core::api::FieldError;
use keyward_core::validate::FieldErrors;

pub use keyward_core::api::webhooks::{
    ALERT_ACKED, ALERT_OPENED, ALERT_RESOLVED, EVENT_TYPES, KEY_CREATED, KEY_EXPIRED, KEY_EXPIRING,
    KEY_REVOKED, KEY_ROTATED, KEY_UNUSED, LIMIT_QUOTA_EXCEEDED, LIMIT_SOFT_THRESHOLD,
    MAX_EVENT_PATTERNS, MAX_WEBHOOKS_PER_ORG, URL_MAX_CHARS, WEBHOOK_TEST, WebhookEvent,
};

pub use crate::store::outbox::{CHANNEL, Enqueued, enqueue, enqueue_to};

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
