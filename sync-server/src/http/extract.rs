//! Extractors whose rejections speak problem+json: JSON bodies, query strings, path ids, the
//! client address.

use std::net::{IpAddr, SocketAddr};

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use keyward_core::api::FieldError;
use keyward_core::ip::client::ClientIpHeader;
use keyward_core::{AdminId, OrgId};
use serde::de::DeserializeOwned;

use crate::audit::Actor;
use crate::error::AppError;
use crate::session::{self, AdminSession};
use crate::state::AppState;
use crate::store;

/// `Json<T>` whose failures are 400 (syntax), 413 (size), 415 (content type) or 422 (shape,
/// unknown fields, wrong types) with the offending field named.
pub struct AppJson<T>(pub T);

impl<S, T> FromRequest<S> for AppJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !json_content_type(req.headers()) {
            return Err(AppError::UnsupportedMediaType);
        }
        let bytes = match axum::body::Bytes::from_request(req, state).await {
            Ok(bytes) => bytes,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(AppError::PayloadTooLarge);
            }
            Err(_) => return Err(AppError::MalformedBody("the body could not be read".into())),
        };
        // Every request body is a JSON object; serde would also read a struct from an array.
        if bytes.trim_ascii_start().first() == Some(&b'[') {
            return Err(AppError::field(
                "body",
                "invalid_type",
                "must be a JSON object",
            ));
        }
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(v)) => Ok(AppJson(v)),
            Err(rejection @ JsonRejection::JsonDataError(_)) => {
                // JSON has one number type: `5.0` is the integer 5 (and the document's `integer`
                // admits it), but serde refuses it for an integer field. Only on that refusal
                // (never on the common path) the body is read again with such numbers written
                // as integers.
                match integral_floats_as_integers(&bytes)
                    .map(|fixed| axum::Json::<T>::from_bytes(&fixed))
                {
                    Some(Ok(axum::Json(v))) => Ok(AppJson(v)),
                    _ => Err(json_rejection(rejection)),
                }
            }
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

/// `application/json` or `application/<anything>+json`, as `axum::Json` accepts.
fn json_content_type(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The body with every integral floating-point number (`5.0`, `1e3`) written as an integer, or
/// `None` when it holds none (or is not JSON).
fn integral_floats_as_integers(bytes: &[u8]) -> Option<Vec<u8>> {
    fn walk(value: &mut serde_json::Value) -> bool {
        match value {
            serde_json::Value::Number(n) => {
                let Some(f) = n.as_f64().filter(|_| n.is_f64()) else {
                    return false;
                };
                // Exactly representable integers only (|f| <= 2^53).
                if f.fract() != 0.0 || f.abs() > 9_007_199_254_740_992.0 {
                    return false;
                }
                *n = serde_json::Number::from(f as i64);
                true
            }
            serde_json::Value::Array(items) => {
                // Every element, not only up to the first change.
                let mut changed = false;
                for v in items {
                    changed |= walk(v);
                }
                changed
            }
            serde_json::Value::Object(map) => {
                let mut changed = false;
                for v in map.values_mut() {
                    changed |= walk(v);
                }
                changed
            }
            _ => false,
        }
    }
    let mut value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    if !walk(&mut value) {
        return None;
    }
    serde_json::to_vec(&value).ok()
}

/// Like [`AppJson`], but a request with no body at all means `T::default()`: `POST .../revoke`
/// with nothing to say is a complete request.
pub struct AppJsonOrEmpty<T>(pub T);

impl<S, T> FromRequest<S> for AppJsonOrEmpty<T>
where
    T: DeserializeOwned + Default,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let headers = req.headers();
        let no_type = !headers.contains_key(axum::http::header::CONTENT_TYPE);
        let length = headers
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if no_type
            && matches!(length, None | Some(0))
            && !headers.contains_key(axum::http::header::TRANSFER_ENCODING)
        {
            return Ok(AppJsonOrEmpty(T::default()));
        }
        AppJson::from_request(req, state)
            .await
            .map(|AppJson(v)| AppJsonOrEmpty(v))
    }
}

fn json_rejection(rejection: JsonRejection) -> AppError {
    match rejection {
        JsonRejection::JsonDataError(e) => {
            AppError::Validation(vec![serde_field_error(&e.body_text())])
        }
        JsonRejection::JsonSyntaxError(_) => {
            AppError::MalformedBody("the body is not valid JSON".into())
        }
        JsonRejection::MissingJsonContentType(_) => AppError::UnsupportedMediaType,
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            AppError::PayloadTooLarge
        }
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => AppError::PayloadTooLarge,
        _ => AppError::MalformedBody("the body could not be read".into()),
    }
}

/// Turns serde's "path: message" into a field error. serde's messages quote the expected shape
/// and the unknown field's name, never the submitted value, so they are safe to return.
fn serde_field_error(text: &str) -> FieldError {
    let text = text
        .strip_prefix("Failed to deserialize the JSON body into the target type: ")
        .or_else(|| text.strip_prefix("Failed to deserialize query string: "))
        .unwrap_or(text);
    let (path, message) = match text.split_once(": ") {
        Some((path, msg)) if !path.contains(' ') => (path.to_owned(), msg.to_owned()),
        _ => (String::new(), text.to_owned()),
    };
    // Drop serde_json's " at line 1 column 17" position suffix: it helps nobody here.
    let message = match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message,
    };
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let name = rest.split('`').next().unwrap_or_default();
        // serde_path_to_error already puts the unknown field at the end of the path.
        let field = if path.is_empty() || path == "." {
            name.to_owned()
        } else {
            path
        };
        return FieldError::new(field, "unknown_field", "is not a field of this request");
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        let name = rest.split('`').next().unwrap_or_default();
        return FieldError::new(name, "required", "is required");
    }
    let field = if path.is_empty() || path == "." {
        "body".to_owned()
    } else {
        path
    };
    FieldError::new(field, "invalid", message)
}

/// `Query<T>` whose failures are 422 with the field named.
pub struct AppQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for AppQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(AppQuery(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => Err(AppError::Validation(
                vec![serde_field_error(&e.body_text())],
            )),
            Err(_) => Err(AppError::MalformedBody(
                "the query string could not be read".into(),
            )),
        }
    }
}

/// Path parameters whose rejection (invalid UTF-8 after percent-decoding, a value that does not
/// parse) is problem+json like every other error, not axum's plain text.
#[derive(Debug, Clone)]
pub struct AppPath<T>(pub T);

impl<S, T> FromRequestParts<S> for AppPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(AppPath(v)),
            Err(_) => Err(AppError::BadRequest {
                code: "invalid_path",
                detail: "the path could not be decoded (it must be UTF-8 after percent-decoding)"
                    .into(),
            }),
        }
    }
}

/// The address of the client: the TCP peer, or, when the peer is a trusted proxy, the entry of
/// the configured header (`X-Forwarded-For` or `Forwarded`) that
/// [`keyward_core::ip::client::resolve`] chooses: walking from the right, the nearest untrusted
/// address, or the last trusted hop when an entry does not parse (never a value left of it).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        Ok(ClientIp(peer.map(|peer| {
            resolve_client_ip(
                peer,
                parts,
                state.config.client_ip.header,
                &state.config.client_ip.trusted_proxies,
            )
        })))
    }
}

fn resolve_client_ip(
    peer: IpAddr,
    parts: &Parts,
    header: ClientIpHeader,
    trusted: &[ipnet::IpNet],
) -> IpAddr {
    let lines = parts
        .headers
        .get_all(header.name())
        .iter()
        .map(|v| v.as_bytes());
    keyward_core::ip::client::resolve(header, peer, lines, trusted)
}

/// The `x-request-id` set by the request-id layer (a client's own only when it passed
/// [`crate::http::request_id::is_safe`]), for the audit log.
#[derive(Debug, Clone)]
pub struct RequestId(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(RequestId(
            parts
                .headers
                .get(crate::http::request_id::X_REQUEST_ID)
                .filter(|v| crate::http::request_id::is_safe(v.as_bytes()))
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        ))
    }
}

// --- the admin session ---

/// The bearer token of a request, if it has one.
pub fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl FromRequestParts<AppState> for AdminSession {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let unauthenticated = |detail: &str| AppError::Unauthorized {
            code: "unauthenticated",
            detail: detail.into(),
        };
        let token = bearer(parts).ok_or_else(|| {
            unauthenticated("sign in and send `Authorization: Bearer <session token>`")
        })?;
        if !token.starts_with(session::PREFIX) || token.len() > 128 {
            return Err(unauthenticated("the session token is malformed"));
        }
        let hash = session::token_hash(token);
        let mut conn = state.pool.acquire().await?;
        let live = store::sessions::find_admin(&mut conn, &hash)
            .await?
            .ok_or_else(|| AppError::Unauthorized {
                code: "invalid_session",
                detail: "the session has expired or was signed out; sign in again".into(),
            })?;
        let idle = session::Idle::new(state.config.sessions.idle.as_secs());
        if live.idle_secs > idle.limit_secs {
            // Ended here rather than left for the hourly sweep.
            store::sessions::delete(&mut conn, &hash).await?;
            return Err(AppError::Unauthorized {
                code: "session_expired",
                detail: format!(
                    "the session was unused for more than {} s and has ended; sign in again",
                    state.config.sessions.idle.as_secs()
                ),
            });
        }
        if live.idle_secs >= idle.touch_secs {
            store::sessions::touch(&mut conn, &hash).await?;
        }
        let admin = live.admin;
        let ClientIp(client_ip) = ClientIp::from_request_parts(parts, state)
            .await
            .unwrap_or(ClientIp(None));
        let RequestId(request_id) = RequestId::from_request_parts(parts, state)
            .await
            .unwrap_or(RequestId(None));
        let (admin_id, org_id) = (AdminId::from_uuid(admin.id), OrgId::from_uuid(admin.org_id));
        Ok(AdminSession {
            admin_id,
            org_id,
            role: admin.role(),
            actor: Actor {
                org_id,
                admin_id: Some(admin_id),
                email: Some(admin.email.clone()),
                client_ip,
                request_id,
                signer: state.audit_signer.clone(),
            },
            email: admin.email,
            token_hash: hash,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_messages_become_field_errors() {
        let e = serde_field_error(
            "Failed to deserialize the JSON body into the target type: nmae: unknown field `nmae`, expected one of `name` at line 1 column 7",
        );
        assert_eq!(
            (e.field.as_str(), e.code.as_str()),
            ("nmae", "unknown_field")
        );
        let e = serde_field_error(
            "Failed to deserialize the JSON body into the target type: expires_at: premature end of input at line 1 column 30",
        );
        assert_eq!(
            (e.field.as_str(), e.code.as_str()),
            ("expires_at", "invalid")
        );
        assert_eq!(e.message, "premature end of input");
        let e = serde_field_error(
            "Failed to deserialize the JSON body into the target type: missing field `name` at line 1 column 2",
        );
        assert_eq!((e.field.as_str(), e.code.as_str()), ("name", "required"));
    }

    #[test]
    fn integral_floats_are_read_as_integers() {
        let fixed = integral_floats_as_integers(br#"{"a": 5.0, "b": [1e3, 0.5], "c": "6.0"}"#);
        let fixed: serde_json::Value = serde_json::from_slice(&fixed.unwrap()).unwrap();
        assert_eq!(
            fixed,
            serde_json::json!({"a": 5, "b": [1000, 0.5], "c": "6.0"})
        );
        assert_eq!(integral_floats_as_integers(br#"{"a": 5, "b": 0.5}"#), None);
        assert_eq!(integral_floats_as_integers(b"not json"), None);
    }

    #[test]
    fn forwarded_for_is_trusted_only_from_proxies() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let req = axum::http::Request::builder()
            .header("x-forwarded-for", "203.0.113.9, 10.1.1.1")
            .header("forwarded", "for=198.51.100.4")
            .body(())
            .unwrap();
        let (parts, _) = req.into_parts();
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        let stranger: IpAddr = "198.51.100.1".parse().unwrap();
        let xff = ClientIpHeader::XForwardedFor;
        assert_eq!(
            resolve_client_ip(proxy, &parts, xff, &trusted),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        assert_eq!(resolve_client_ip(stranger, &parts, xff, &trusted), stranger);
        assert_eq!(
            resolve_client_ip(proxy, &parts, ClientIpHeader::Forwarded, &trusted),
            "198.51.100.4".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn forwarded_for_stops_at_an_entry_that_does_not_parse() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let req = axum::http::Request::builder()
            .header("x-forwarded-for", "203.0.113.9, unknown")
            .header("x-forwarded-for", "10.1.1.1")
            .body(())
            .unwrap();
        let (parts, _) = req.into_parts();
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(
            resolve_client_ip(proxy, &parts, ClientIpHeader::XForwardedFor, &trusted),
            "10.1.1.1".parse::<IpAddr>().unwrap()
        );
    }
}
