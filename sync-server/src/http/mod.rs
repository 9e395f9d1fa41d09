//! The router: one module per area, each a set of handlers that parse input into domain values,
//! run one transaction and answer. Beside them: the extractors those handlers parse input with
//! ([`extract`]), the OpenAPI document generated from their annotations ([`openapi`]) and the
//! `/gw` forwarding gateway ([`gateway`]).

pub mod alerts;
pub mod audit;
pub mod auth;
pub mod events;
pub mod extract;
pub mod gateway;
pub mod gateway_usage;
pub mod keys;
pub mod limits;
pub mod openapi;
pub mod ops;
pub mod request_id;
pub mod sessions;
pub mod sync;
pub mod tiers;
pub mod usage;
pub mod verify;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request};
use axum::routing::{any, get, post};
use axum::{Extension, Router};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::error::{AppError, ProblemCode};
use crate::state::AppState;

pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// `Cache-Control: no-store` on every API answer that does not set its own: several carry a
/// secret exactly once (sign-in, key creation and rotation, webhook creation) and the rest are
/// an organisation's private data, which no shared or browser cache should keep.
async fn no_store(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let api = req.uri().path().starts_with("/v1/");
    let mut res = next.run(req).await;
    if api {
        res.headers_mut()
            .entry(axum::http::header::CACHE_CONTROL)
            .or_insert(axum::http::HeaderValue::from_static("no-store"));
    }
    res
}

pub fn router(state: AppState) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    // The upstream client lives with the routes that use it, not in the shared state.
    let upstream = Extension(gateway::Gateway::from_config(&state.config.gateway).map(Arc::new));
    let api = Router::new()
        .route("/v1/auth/login", post(auth::login))
        .route("/v1/auth/logout", post(auth::logout))
        .route("/v1/auth/logout-all", post(sessions::logout_all))
        .route("/v1/auth/password", post(sessions::change_password))
        .route("/v1/keys", get(keys::list).post(keys::create))
        .route("/v1/keys/{id}", get(keys::get).patch(keys::update))
        .route("/v1/keys/{id}/revoke", post(keys::revoke))
        .route("/v1/keys/{id}/rotate", post(keys::rotate))
        .route("/v1/keys/{id}/usage", get(keys::usage))
        .route("/v1/keys/{id}/limits", get(limits::key_limits))
        .route("/v1/keys/{id}/gateway", get(gateway_usage::key_gateway))
        .route("/v1/keys/{id}/networks", get(gateway_usage::key_networks))
        .route("/v1/gateway/usage", get(gateway_usage::org_gateway))
        .route("/v1/tiers", get(tiers::list).post(tiers::create))
        .route(
            "/v1/tiers/{name}",
            get(tiers::get).patch(tiers::update).delete(tiers::delete),
        )
        .route("/v1/ratelimits/violations", get(limits::violations))
        .route("/v1/webhooks", get(webhooks::list).post(webhooks::create))
        .route(
            "/v1/webhooks/{id}",
            get(webhooks::get).delete(webhooks::delete),
        )
        .route("/v1/webhooks/{id}/test", post(webhooks::test))
        .route("/v1/webhooks/{id}/deliveries", get(webhooks::deliveries))
        .route("/v1/usage", get(usage::org_usage))
        .route("/v1/alerts", get(alerts::list))
        .route(
            "/v1/alerts/settings",
            get(alerts::settings).put(alerts::update_settings),
        )
        .route("/v1/alerts/{id}/ack", post(alerts::ack))
        .route("/v1/reports/usage", get(usage::report))
        .route("/gw", any(gateway::forward).layer(upstream.clone()))
        .route("/gw/{*path}", any(gateway::forward).layer(upstream))
        .route("/v1/whoami", get(verify::whoami))
        .route("/v1/verify", post(verify::verify))
        .route("/v1/events", get(events::list))
        .route("/v1/audit", get(audit::list))
        .route("/v1/audit/verify", get(audit::verify_chain))
        .route("/v1/sync/pull", get(sync::pull))
        .route("/v1/sync/push", post(sync::push))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi));
    api.fallback(|| async {
        AppError::NotFound { code: "not_found", detail: "no such endpoint".into() }
    })
    .method_not_allowed_fallback(|| async { AppError::MethodNotAllowed })
    .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
    .layer(crate::connections::BodyDeadlineLayer::new(state.config.connections.body_timeout))
    .layer(axum::middleware::from_fn(no_store))
    .layer(axum::middleware::from_fn(request_id::fill_problems))
    .layer(
        TraceLayer::new_for_http()
            .make_span_with(|req: &Request<_>| {
                let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
                // The path, never the query string: nothing secret travels there, but nothing
                // is logged that need not be.
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
            })
            .on_request(())
            .on_response(|res: &axum::response::Response, latency: Duration, _: &tracing::Span| {
                let code = res.extensions().get::<ProblemCode>().map(|c| c.0);
                tracing::info!(status = res.status().as_u16(), code, latency_us = latency.as_micros() as u64, "response");
            }),
    )
    .layer(PropagateRequestIdLayer::new(request_id.clone()))
    .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
    // Before anything logs or echoes it: a client's id that is too long or holds anything
    // outside [A-Za-z0-9._:-] is replaced with a fresh one.
    .layer(axum::middleware::from_fn(request_id::sanitise))
    .with_state(state)
}
