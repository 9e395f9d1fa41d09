//! The event outbox: [`enqueue`] records an event in the organisation's log and queues one
//! delivery per subscribed endpoint, inside the caller's transaction (see [`crate::webhooks`]
//! for how deliveries are sent). Every emitted event passes here, store writes included.

use chrono::{DateTime, SecondsFormat, Utc};
use keyward_core::OrgId;
use keyward_core::api::webhooks::WebhookEvent;
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

use super::now_micros;
use super::webhooks::{self as store, NewMessage};

/// The `NOTIFY` channel that wakes delivery workers.
pub const CHANNEL: &str = "keyward_webhooks";

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
    super::events::record(conn, org, event, now_micros()).await?;
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
