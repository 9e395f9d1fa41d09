//! `/gw/*`: authenticates the key, applies its limits, records the call and forwards it to the
//! upstream of the key's environment (`live`: `KEYWARD_UPSTREAM`, `test`:
//! `KEYWARD_UPSTREAM_TEST`; a test key is never sent to the live upstream), streaming both
//! bodies (nothing large is buffered; a body sent with a `Content-Length` keeps it). The
//! upstream sees `X-Keyward-Key-Id`, `X-Keyward-Org-Id`, `X-Keyward-Environment` and
//! `X-Keyward-Scopes` (space-separated) and never the credential; its answers, errors included,
//! pass through with the rate-limit fields added. No answer within `upstream_timeout_ms` is a
//! 504; an unreachable upstream a 502.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Extension;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use keyward_core::Environment;
use reqwest::Url;

use crate::config::GatewayConfig;
use crate::error::AppError;
use crate::http::extract::ClientIp;
use crate::http::verify::authenticate;
use crate::state::AppState;

pub struct Gateway {
    /// Where `live` keys' calls go.
    live: Option<Url>,
    /// Where `test` keys' calls go.
    test: Option<Url>,
    client: reqwest::Client,
    timeout: Duration,
}

/// Connecting to the upstream takes at most this long (less when the whole timeout is shorter).
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// `None` when no upstream is configured.
    pub fn from_config(config: &GatewayConfig) -> Option<Gateway> {
        if config.live.is_none() && config.test.is_none() {
            return None;
        }
        let client = reqwest::Client::builder()
            .connect_timeout(config.timeout.min(MAX_CONNECT_TIMEOUT))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .ok()?;
        Some(Gateway {
            live: config.live.clone(),
            test: config.test.clone(),
            client,
            timeout: config.timeout,
        })
    }

    /// The upstream of an environment, when configured.
    fn upstream(&self, environment: Environment) -> Option<&Url> {
        match environment {
            Environment::Live => self.live.as_ref(),
            Environment::Test => self.test.as_ref(),
        }
    }

    /// The upstream URL of a checked `/gw` path; `None` when it would not stay under the
    /// upstream's base path (a second guard behind [`keyward_core::gateway::check_path`]).
    fn target(upstream: &Url, path_and_query: &str) -> Option<Url> {
        let rest = path_and_query.strip_prefix("/gw").unwrap_or(path_and_query);
        let base = upstream.as_str().trim_end_matches('/');
        let url = Url::parse(&format!(
            "{base}{}",
            if rest.is_empty() { "/" } else { rest }
        ))
        .ok()?;
        let base_path = upstream.path().trim_end_matches('/');
        let inside = url.path() == base_path
            || url
                .path()
                .strip_prefix(base_path)
                .is_some_and(|r| r.starts_with('/'));
        (inside && url.host_str() == upstream.host_str()).then_some(url)
    }
}

/// A streamed body whose length is known (the client's `Content-Length`): said so to the
/// HTTP client, which then sends it with that `Content-Length`, not chunked (an upstream
/// without chunked support would otherwise read an empty body). reqwest keeps a wrapped
/// body's size hint; the incoming body still ends where its length says (hyper checks it).
struct KnownLength {
    inner: reqwest::Body,
    length: u64,
}

impl HttpBody for KnownLength {
    type Data = Bytes;
    type Error = reqwest::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, reqwest::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.length)
    }
}

/// The body to send upstream: no body when the client sent none, the same length (and
/// `Content-Length`, 0 included, into `headers`) when it sent one with a `Content-Length`,
/// chunked only when the client's was.
fn upstream_body(body: Body, client_headers: &HeaderMap, headers: &mut HeaderMap) -> reqwest::Body {
    // hyper's size hint is exact for a request with a `Content-Length` (and 0 without a body),
    // unknown for a chunked one.
    let length = body.size_hint().exact();
    if let Some(length) = length
        && client_headers.contains_key(header::CONTENT_LENGTH)
    {
        // An empty body is sent without a length unless told: some upstreams want one (411).
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    match length {
        Some(0) => reqwest::Body::from(Bytes::new()),
        Some(length) => reqwest::Body::wrap(KnownLength {
            inner: reqwest::Body::wrap_stream(body.into_data_stream()),
            length,
        }),
        None => reqwest::Body::wrap_stream(body.into_data_stream()),
    }
}

/// Headers a client could use to claim another address or origin to the upstream: never
/// forwarded (the gateway sets `X-Forwarded-For` itself, from the connection).
const CLIENT_ADDRESS_CLAIMS: [&str; 6] = [
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
    "x-client-ip",
];

fn forwarded_headers(incoming: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(incoming.len() + 2);
    for (name, value) in incoming {
        let drop = HOP_BY_HOP.contains(name)
            || name == header::HOST
            || name == header::CONTENT_LENGTH
            || name == header::AUTHORIZATION
            || name.as_str() == "x-api-key"
            || name.as_str().starts_with("x-keyward-")
            || CLIENT_ADDRESS_CLAIMS.contains(&name.as_str());
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
/// A `live` key's call goes to `KEYWARD_UPSTREAM`, a `test` key's to `KEYWARD_UPSTREAM_TEST`;
/// the upstream gets `X-Keyward-Key-Id`, `X-Keyward-Org-Id`, `X-Keyward-Environment` and
/// `X-Keyward-Scopes`, never the credential.
#[utoipa::path(get, path = "/gw/{path}", tag = "gateway", security(("api_key" = [])),
    params(("path" = String, Path, pattern = r"^([^/\\.][^/\\]*|\.[^/\\.][^/\\]*|\.\.[^/\\]+)$",
            description = "path forwarded to the upstream (one segment here; `/gw/a/b` forwards `/a/b`). \
                           Never a dot segment (`.`, `..`) nor a backslash or an encoded slash or backslash")),
    responses((status = 200, description = "the upstream's answer, passed through with the rate-limit fields"),
              (status = 400, description = "`invalid_path`: a path that would leave the upstream's base path", body = keyward_core::api::Problem),
              (status = 401, body = keyward_core::api::Problem),
              (status = 403, description = "`insufficient_scope`, `ip_not_allowed`, or `wrong_environment`: a test key and no test upstream (`KEYWARD_UPSTREAM_TEST`) is configured", body = keyward_core::api::Problem),
              (status = 429, body = keyward_core::api::Problem), (status = 502, body = keyward_core::api::Problem),
              (status = 503, description = "`gateway_not_configured`: no upstream for the key's environment", body = keyward_core::api::Problem),
              (status = 504, body = keyward_core::api::Problem)))]
pub async fn forward(
    State(state): State<AppState>,
    Extension(gateway): Extension<Option<Arc<Gateway>>>,
    ClientIp(ip): ClientIp,
    req: Request,
) -> Response {
    // The methods HTTP APIs serve (and the document lists); never TRACE, CONNECT or extensions.
    if !matches!(
        *req.method(),
        Method::GET
            | Method::HEAD
            | Method::POST
            | Method::PUT
            | Method::PATCH
            | Method::DELETE
            | Method::OPTIONS
    ) {
        let mut refused = AppError::MethodNotAllowed.into_response();
        refused.headers_mut().insert(
            axum::http::header::ALLOW,
            HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
        );
        return refused;
    }
    let Some(gw) = gateway.as_deref() else {
        return problem(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "gateway_not_configured",
            "this server has no upstream (KEYWARD_UPSTREAM)".into(),
        );
    };
    // Nothing leaves the upstream's base path: dot segments and encoded separators are refused,
    // not normalised (before the key is checked: the answer says nothing about it).
    let forwarded_path = req.uri().path().strip_prefix("/gw").unwrap_or("/");
    if let Err(e) = keyward_core::gateway::check_path(forwarded_path) {
        return AppError::BadRequest {
            code: "invalid_path",
            detail: format!("{e}; such a path is never forwarded"),
        }
        .into_response();
    }
    let scope = keyward_core::gateway::required_scope(req.method().as_str(), forwarded_path);
    let auth = match authenticate(&state, req.headers(), ip, Some(&scope), 1).await {
        Ok(ok) => ok,
        Err(refused) => return refused,
    };
    let key = &auth.key;
    // Each environment has its own upstream: a test key never reaches the live one.
    let Some(upstream) = gw.upstream(key.environment) else {
        let mut refused = match key.environment {
            Environment::Test => AppError::Forbidden {
                code: "wrong_environment",
                detail: "this is a test key and this server has no test upstream \
                         (KEYWARD_UPSTREAM_TEST); it is never sent to the live one"
                    .into(),
            }
            .into_response(),
            Environment::Live => problem(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "gateway_not_configured",
                "this server has no upstream for live keys (KEYWARD_UPSTREAM)".into(),
            ),
        };
        auth.write_headers(refused.headers_mut());
        return refused;
    };
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
        if state.config.usage.recording {
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
    let Some(url) = Gateway::target(upstream, path) else {
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
    headers.insert(
        "x-keyward-environment",
        HeaderValue::from_static(key.environment.as_str()),
    );
    let scopes = key.scopes.to_strings().join(" ");
    headers.insert(
        "x-keyward-scopes",
        HeaderValue::from_str(&scopes).unwrap_or(HeaderValue::from_static("")),
    );
    if let Some(ip) = ip
        && let Ok(v) = HeaderValue::from_str(&ip.to_string())
    {
        headers.insert("x-forwarded-for", v);
    }
    let body = upstream_body(body, &parts.headers, &mut headers);
    let started = std::time::Instant::now();
    let send = gw
        .client
        .request(parts.method, url)
        .headers(headers)
        .body(body)
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
