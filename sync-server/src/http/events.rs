//! `GET /v1/events`: the organisation's event log — every event the server emitted (the payloads
//! webhooks deliver), recorded whether or not a webhook subscribes.

use axum::Json;
use axum::extract::State;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keyward_core::api::{EventsQuery, FieldError, OrgEvent, Page};
use keyward_core::validate::{self, FieldErrors};
use uuid::Uuid;

use crate::error::AppResult;
use crate::http::extract::AppQuery;
use crate::session::AdminSession;
use crate::state::AppState;
use crate::store::events::{self, TypeFilter};

type Problem = keyward_core::api::Problem;

fn encode_cursor(id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(id.as_bytes())
}

fn decode_cursor(raw: &str) -> Result<Uuid, FieldError> {
    Some(raw)
        .filter(|r| r.len() == 22)
        .and_then(|r| URL_SAFE_NO_PAD.decode(r).ok())
        .and_then(|b| Uuid::from_slice(&b).ok())
        // Exactly the encoding this server writes (no other bits in the last character).
        .filter(|id| encode_cursor(*id) == raw)
        .ok_or_else(|| {
            FieldError::new(
                "cursor",
                "invalid_cursor",
                "is not a cursor this server issued",
            )
        })
}

fn type_filter(raw: Option<&str>) -> Result<TypeFilter, FieldError> {
    match raw {
        None => Ok(TypeFilter::All),
        Some(t) => TypeFilter::parse(t).ok_or_else(|| {
            FieldError::new(
                "type",
                "invalid_event_type",
                "must be an event type (`key.expired`), a category (`key.*`) or `*`",
            )
        }),
    }
}

/// The organisation's events, newest first: key created, revoked, rotated, expiring, expired and
/// unused, limit thresholds and quotas, alerts opened, acknowledged and resolved — each with the
/// typed payload a webhook delivery carries (`data`). Recorded in the transaction of the change
/// whether or not a webhook subscribes; kept as long as webhook deliveries
/// (`KEYWARD_WEBHOOK_RETENTION_DAYS`). `type` filters by type or category (`key.*`), `key_id`
/// by key (another organisation's key: an empty list).
#[utoipa::path(get, path = "/v1/events", tag = "events", security(("session" = [])), params(EventsQuery),
    responses((status = 200, body = Page<OrgEvent>), (status = 401, body = Problem), (status = 422, body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    session: AdminSession,
    AppQuery(q): AppQuery<EventsQuery>,
) -> AppResult<Json<Page<OrgEvent>>> {
    let mut errs = FieldErrors::new();
    let limit = errs.check(validate::page_limit("limit", q.limit));
    let before = errs.check(q.cursor.as_deref().map(decode_cursor).transpose());
    let types = errs.check(type_filter(q.event_type.as_deref()));
    errs.into_result()?;
    let (Some(limit), Some(before), Some(types)) = (limit, before, types) else {
        unreachable!("checked above")
    };
    let mut items = events::list(
        &mut *state.pool.acquire().await?,
        session.org_id,
        &types,
        q.key_id,
        before,
        limit + 1,
    )
    .await?;
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let next_cursor = more
        .then(|| items.last().map(|e| encode_cursor(e.id)))
        .flatten();
    Ok(Json(Page { items, next_cursor }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_nothing_else_reads() {
        let id = Uuid::now_v7();
        let c = encode_cursor(id);
        assert_eq!(decode_cursor(&c).unwrap(), id);
        for bad in ["", "abc", "0", &format!("{c}A"), &c[..21]] {
            assert!(decode_cursor(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_document_describes_an_event_as_its_fields_and_a_typed_payload() {
        let doc = crate::http::openapi::document();
        let schema = &doc["components"]["schemas"]["OrgEvent"];
        let text = schema.to_string();
        assert!(text.contains("#/components/schemas/WebhookEvent"), "{text}");
        for field in ["id", "key_id", "created_at"] {
            assert!(text.contains(&format!("\"{field}\"")), "{field}: {text}");
        }
        assert!(!text.contains("\"event\""), "flattened: {text}");
        let op = &doc["paths"]["/v1/events"]["get"];
        assert_eq!(op["tags"][0], "events");
        assert!(op["responses"]["422"].is_object());
    }
}
