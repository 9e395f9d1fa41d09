//! `/gw/*`: authenticates the key, applies its limits, records the call and forwards it to
//! `KEYWARD_UPSTREAM`, streaming both bodies (nothing large is buffered). The upstream sees
//! `X-Keyward-Key-Id` and `X-Keyward-Org-Id` and never the credential; its answers, errors
//! included, pass through with the rate-limit fields added. No answer within
//! `upstream_timeout_ms` is a 504; an unreachable upstream a 502.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use reqwest::Url;

use crate::config::Config;
use crate::error::AppError;
use crate::extract::ClientIp;
use crate::http::verify::authenticate;
use crate::state::AppState;

pub struct Gateway {
    upstream: Url,
    client: reqwest::Client,
    timeout: Duration,
}

/// Headers that describe one connection, not the message: never forwarded.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

impl Gateway {
    /// `None` when no upstream is configured; an unusable one was refused by `Config::load`.
    pub fn from_config(config: &Config) -> Option<Gateway> {
        let upstream = Url::parse(config.upstream.as_deref()?).ok()?;
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(
                config.upstream_timeout_ms.clamp(1, 10_000),
            ))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .ok()?;
        Some(Gateway {
            upstream,
            client,
            timeout: Duration::from_millis(config.upstream_timeout_ms.max(1)),
        })
    }

    fn target(&self, path_and_query: &str) -> Option<Url> {
        let rest = path_and_query.strip_prefix("/gw").unwrap_or(path_and_query);
        let base = self.upstream.as_str().trim_end_matches('/');
        Url::parse(&format!(
            "{base}{}",
            if rest.is_empty() { "/" } else { rest }
        ))
        .ok()
    }
}

fn forwarded_headers(incoming: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(incoming.len() + 2);
    for (name, value) in incoming {
        let drop = HOP_BY_HOP.contains(name)
            || name == header::HOST
            || name == header::CONTENT_LENGTH
            || name == header::AUTHORIZATION
            || name.as_str() == "x-api-key"
            || name.as_str().starts_with("x-keyward-");
        if !drop {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

fn problem(status: axum::http::StatusCode, code: &'static str, detail: String) -> Response {
    match status.as_u16() {
        504 => AppError::GatewayTimeout { detail }.into_response(),
        502 => AppError::BadGateway { code, detail }.into_response(),
        _ => AppError::Unavailable {
            code,
            detail,
            retry_after_secs: None,
        }
        .into_response(),
    }
}

/// Forwards any method under `/gw/` to the upstream once the key passes (documented as GET).
#[utoipa::path(get, path = "/gw/{path}", tag = "gateway", security(("api_key" = [])),
    params(("path" = String, Path, description = "path forwarded to the upstream")),
    responses((status = 200, description = "the upstream's answer, passed through with the rate-limit fields"),
              (status = 401, body = keyward_core::api::Problem), (status = 403, body = keyward_core::api::Problem),
              (status = 429, body = keyward_core::api::Problem), (status = 502, body = keyward_core::api::Problem),
              (status = 503, body = keyward_core::api::Problem), (status = 504, body = keyward_core::api::Problem)))]
pub async fn forward(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    req: Request,
) -> Response {
    let Some(gw) = state.gateway.as_deref() else {
        return problem(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "gateway_not_configured",
            "this server has no upstream (KEYWARD_UPSTREAM)".into(),
        );
    };
    let auth = match authenticate(&state, req.headers(), ip, 1).await {
        Ok(ok) => ok,
        Err(refused) => return refused,
    };
    let key = &auth.key;
    let (parts, body) = req.into_parts();
    let route_path = parts
        .uri
        .path()
        .strip_prefix("/gw")
        .unwrap_or("/")
        .to_owned();
    // Recorded once the upstream answered (or did not): status, time to its headers.
    let record = |status: u16, started: std::time::Instant| {
        let elapsed = started.elapsed();
        state
            .metrics
            .gateway_duration
            .observe(elapsed.as_secs_f64());
        if state.config.usage_recording {
            state.usage.record_gateway(
                key.id,
                key.org_id,
                &route_path,
                status,
                elapsed,
                chrono::Utc::now(),
            );
        }
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let Some(url) = gw.target(path) else {
        return AppError::field("path", "invalid_path", "the path cannot be forwarded")
            .into_response();
    };
    let mut headers = forwarded_headers(&parts.headers);
    headers.insert(
        "x-keyward-key-id",
        HeaderValue::from_str(&key.id.to_string()).unwrap_or(HeaderValue::from_static("")),
    );
    headers.insert(
        "x-keyward-org-id",
        HeaderValue::from_str(&key.org_id.to_string()).unwrap_or(HeaderValue::from_static("")),
    );
    if let Some(ip) = ip
        && let Ok(v) = HeaderValue::from_str(&ip.to_string())
    {
        headers.insert("x-forwarded-for", v);
    }
    let started = std::time::Instant::now();
    let send = gw
        .client
        .request(parts.method, url)
        .headers(headers)
        .body(reqwest::Body::wrap_stream(body.into_data_stream()))
        .send();
    let upstream = match tokio::time::timeout(gw.timeout, send).await {
        Err(_) => {
            record(504, started);
            return problem(
                axum::http::StatusCode::GATEWAY_TIMEOUT,
                "upstream_timeout",
                format!(
                    "the upstream did not answer within {} ms",
                    gw.timeout.as_millis()
                ),
            );
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e.without_url(), "upstream request failed");
            record(502, started);
            return problem(
                axum::http::StatusCode::BAD_GATEWAY,
                "upstream_unavailable",
                "the upstream could not be reached".into(),
            );
        }
        Ok(Ok(r)) => r,
    };
    let status = upstream.status();
    record(status.as_u16(), started);
    let mut out_headers = HeaderMap::with_capacity(upstream.headers().len() + 7);
    for (name, value) in upstream.headers() {
        if !HOP_BY_HOP.contains(name) {
            out_headers.append(name.clone(), value.clone());
        }
    }
    auth.write_headers(&mut out_headers);
    let mut response = Response::new(Body::from_stream(upstream.bytes_stream()));
    *response.status_mut() = status;
    *response.headers_mut() = out_headers;
    response
}
