//! `/v1/webhooks`: an organisation's endpoints, test events and delivery logs. The signing secret
//! is in the creation answer and nowhere else (see [`crate::webhooks`] for how it is kept).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keyward_core::api::{
    CreateWebhookRequest, CreatedWebhook, FieldError, Page, PageQuery, Webhook, WebhookDelivery,
    WebhookTestResponse,
};
use keyward_core::validate::{self, FieldErrors};
use uuid::Uuid;

use crate::audit::AuditEvent;
use crate::error::{AppError, AppResult};
use crate::http::extract::{AppJson, AppPath, AppQuery};
use crate::session::AdminSession;
use crate::state::AppState;
use crate::store::webhooks::EndpointRow;
use crate::store::{self, now_micros};
use crate::webhooks::{self, Keyring, MAX_WEBHOOKS_PER_ORG};
use keyward_core::api::webhooks::{WebhookEvent, WebhookTestData};

type Problem = keyward_core::api::Problem;

fn not_found() -> AppError {
    AppError::NotFound {
        code: "webhook_not_found",
        detail: "no such webhook in this organization".into(),
    }
}

/// A path id that is not a UUID names no webhook: 404, like any other unknown id.
fn webhook_id(raw: &str) -> AppResult<Uuid> {
    raw.parse().map_err(|_| not_found())
}

/// The organisation's webhook endpoints, oldest first (at most 20, one page). No secrets.
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks", security(("session" = [])),
    responses((status = 200, body = Page<Webhook>), (status = 401, body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    session: AdminSession,
) -> AppResult<Json<Page<Webhook>>> {
    let rows = store::webhooks::list(&mut *state.pool.acquire().await?, session.org_id).await?;
    Ok(Json(Page {
        items: rows.iter().map(EndpointRow::to_api).collect(),
        next_cursor: None,
    }))
}

/// One endpoint of the organisation; another organisation's is a 404. No secret.
#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "webhooks", security(("session" = [])),
    params(("id" = String, Path, description = "webhook id")),
    responses((status = 200, body = Webhook), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn get(
    State(state): State<AppState>,
    session: AdminSession,
    AppPath(id): AppPath<String>,
) -> AppResult<Json<Webhook>> {
    let id = webhook_id(&id)?;
    let row = store::webhooks::find(&mut *state.pool.acquire().await?, session.org_id, id)
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(row.to_api()))
}

/// Adds an endpoint (at most 20 per organisation). The answer carries the signing secret
/// (`whsec_...`): the only time it is shown.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", security(("session" = [])), request_body = CreateWebhookRequest,
    responses((status = 201, body = CreatedWebhook), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create(
    State(state): State<AppState>,
    session: AdminSession,
    AppJson(req): AppJson<CreateWebhookRequest>,
) -> AppResult<(StatusCode, Json<CreatedWebhook>)> {
    session.require_write()?;
    let mut errs = FieldErrors::new();
    let url = errs.check(keyward_core::webhook_url::validate(
        "url",
        &req.url,
        &state.config.webhooks.allowed_networks,
    ));
    let events = match webhooks::validate_events("events", req.events.as_deref()) {
        Ok(e) => Some(e),
        Err(v) => {
            v.into_iter().for_each(|e| errs.push(e));
            None
        }
    };
    errs.into_result()?;
    let (Some(url), Some(events)) = (url, events) else {
        unreachable!("checked above")
    };
    let keyring = Keyring::new(state.config.webhooks.key.clone());
    let (secret_bytes, secret) = webhooks::new_secret();
    let row = EndpointRow {
        id: Uuid::now_v7(),
        org_id: session.org_id.into_uuid(),
        url,
        events,
        enabled: req.enabled.unwrap_or(true),
        created_at: now_micros(),
    };
    let webhook = row.to_api();
    let mut tx = state.pool.begin().await?;
    // Serialises this organisation's writes, so two creations cannot both pass the count.
    store::audit::lock_head(&mut tx, session.org_id).await?;
    if store::webhooks::count(&mut tx, session.org_id).await? >= MAX_WEBHOOKS_PER_ORG as i64 {
        return Err(AppError::Conflict {
            code: "webhook_limit_reached",
            detail: format!(
                "an organization has at most {MAX_WEBHOOKS_PER_ORG} webhooks; delete one first"
            ),
        });
    }
    let sealed = keyring.seal(&mut tx, row.id, &secret_bytes).await?;
    store::webhooks::insert(&mut tx, &row, &sealed).await?;
    store::audit::append(
        &mut tx,
        &session.actor,
        AuditEvent::new("webhook.create", "webhook", row.id).after(&webhook),
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedWebhook { webhook, secret }),
    ))
}

/// Deletes an endpoint and its delivery log; pending deliveries to it are dropped.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks", security(("session" = [])),
    params(("id" = String, Path, description = "webhook id")),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem)))]
pub async fn delete(
    State(state): State<AppState>,
    session: AdminSession,
    AppPath(id): AppPath<String>,
) -> AppResult<StatusCode> {
    session.require_write()?;
    let id = webhook_id(&id)?;
    let mut tx = state.pool.begin().await?;
    store::audit::lock_head(&mut tx, session.org_id).await?;
    let row = store::webhooks::delete(&mut tx, session.org_id, id)
        .await?
        .ok_or_else(not_found)?;
    store::audit::append(
        &mut tx,
        &session.actor,
        AuditEvent::new("webhook.delete", "webhook", row.id).before(row.to_api()),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Queues a `webhook.test` event for this endpoint only (whatever its event patterns); 202 with
/// the message id its delivery carries as `webhook-id`. At most `webhook_tests_per_minute`
/// (default 10) per organisation and minute: 429 with Retry-After past that.
#[utoipa::path(post, path = "/v1/webhooks/{id}/test", tag = "webhooks", security(("session" = [])),
    params(("id" = String, Path, description = "webhook id")),
    responses((status = 202, body = WebhookTestResponse), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 429, body = Problem)))]
pub async fn test(
    State(state): State<AppState>,
    session: AdminSession,
    AppPath(id): AppPath<String>,
) -> AppResult<(StatusCode, Json<WebhookTestResponse>)> {
    session.require_write()?;
    let id = webhook_id(&id)?;
    let mut tx = state.pool.begin().await?;
    let row = store::webhooks::find(&mut tx, session.org_id, id)
        .await?
        .ok_or_else(not_found)?;
    if let Err(retry_after_secs) = state.webhook_tests.try_take(session.org_id) {
        return Err(AppError::TooManyRequests {
            code: "too_many_test_events",
            detail: format!(
                "at most {} test events per organization and minute",
                state.config.webhooks.tests_per_minute
            ),
            retry_after_secs,
        });
    }
    let queued = webhooks::enqueue_to(
        &mut tx,
        session.org_id,
        row.id,
        &WebhookEvent::WebhookTest(WebhookTestData {
            webhook_id: row.id,
            org_id: session.org_id,
            message: "a test event sent from Keyward".into(),
        }),
    )
    .await?;
    store::audit::append(
        &mut tx,
        &session.actor,
        AuditEvent::new("webhook.test", "webhook", row.id)
            .after(serde_json::json!({"message_id": queued.message_id})),
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(WebhookTestResponse {
            message_id: queued.message_id,
        }),
    ))
}

fn encode_cursor(id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(id.as_bytes())
}

fn decode_cursor(raw: &str) -> Result<Uuid, FieldError> {
    URL_SAFE_NO_PAD
        .decode(raw)
        .ok()
        .and_then(|b| Uuid::from_slice(&b).ok())
        .ok_or_else(|| {
            FieldError::new(
                "cursor",
                "invalid_cursor",
                "is not a cursor this server issued",
            )
        })
}

/// Deliveries to one endpoint, newest first, each with its attempts.
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks", security(("session" = [])),
    params(("id" = String, Path, description = "webhook id"), PageQuery),
    responses((status = 200, body = Page<WebhookDelivery>), (status = 401, body = Problem),
              (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn deliveries(
    State(state): State<AppState>,
    session: AdminSession,
    AppPath(id): AppPath<String>,
    AppQuery(q): AppQuery<PageQuery>,
) -> AppResult<Json<Page<WebhookDelivery>>> {
    let id = webhook_id(&id)?;
    let mut errs = FieldErrors::new();
    let limit = errs.check(validate::page_limit("limit", q.limit));
    let before = errs.check(q.cursor.as_deref().map(decode_cursor).transpose());
    errs.into_result()?;
    let (Some(limit), Some(before)) = (limit, before) else {
        unreachable!("checked above")
    };
    let mut conn = state.pool.acquire().await?;
    store::webhooks::find(&mut conn, session.org_id, id)
        .await?
        .ok_or_else(not_found)?;
    let mut items = store::webhooks::deliveries(&mut conn, id, before, limit + 1).await?;
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let next_cursor = more
        .then(|| items.last().map(|d| encode_cursor(d.id)))
        .flatten();
    Ok(Json(Page { items, next_cursor }))
}
