//! Refused requests: their status, problem code and fields, and their RFC 9457 answer.

use std::borrow::Cow;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{Response, StatusCode};
use http_body_util::{Either, Full};
use keyward_core::api::{Problem, VerifyCode};

use super::LayerBody;
use crate::ClientError;

/// A refused request: the problem document and the fields that go with it.
#[derive(Debug, Clone)]
pub(super) struct Refusal {
    pub(super) status: StatusCode,
    pub(super) code: Cow<'static, str>,
    pub(super) detail: Cow<'static, str>,
    pub(super) headers: HeaderMap,
}

impl Refusal {
    fn new(status: StatusCode, code: &'static str, detail: &'static str) -> Refusal {
        Refusal {
            status,
            code: Cow::Borrowed(code),
            detail: Cow::Borrowed(detail),
            headers: HeaderMap::new(),
        }
    }

    /// No credential at all: a bare challenge (RFC 6750 §3.1 names no error then).
    pub(super) fn missing_key() -> Refusal {
        let mut r = Refusal::for_code(VerifyCode::NotFound);
        r.headers.insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"keyward\""),
        );
        r
    }

    fn unauthorized(code: &'static str, detail: &'static str) -> Refusal {
        let mut r = Refusal::new(StatusCode::UNAUTHORIZED, code, detail);
        let challenge = format!(
            "Bearer realm=\"keyward\", error=\"invalid_token\", error_description=\"{code}\""
        );
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            r.headers.insert(WWW_AUTHENTICATE, v);
        }
        r
    }

    fn too_many(code: Cow<'static, str>, detail: Cow<'static, str>, retry_after: u64) -> Refusal {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from(retry_after));
        Refusal {
            status: StatusCode::TOO_MANY_REQUESTS,
            code,
            detail,
            headers,
        }
    }

    /// The answer to a refused key, as the server's whoami and gateway give it. `Valid` has no
    /// refusal of its own and maps to `invalid_key`, like the server.
    pub(super) fn for_code(code: VerifyCode) -> Refusal {
        match code {
            VerifyCode::Revoked => Refusal::unauthorized("key_revoked", "the API key was revoked"),
            VerifyCode::Expired => Refusal::unauthorized("key_expired", "the API key has expired"),
            VerifyCode::Disabled => {
                Refusal::unauthorized("key_disabled", "the API key is disabled")
            }
            VerifyCode::IpNotAllowed => Refusal::new(
                StatusCode::FORBIDDEN,
                "ip_not_allowed",
                "the API key may not be used from this address",
            ),
            VerifyCode::InsufficientScope => Refusal::new(
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                "the API key lacks the scope this call needs",
            ),
            VerifyCode::RateLimited => Refusal::too_many(
                Cow::Borrowed("rate_limited"),
                Cow::Borrowed("the API key's rate limit is exhausted"),
                1,
            ),
            VerifyCode::QuotaExceeded => Refusal::too_many(
                Cow::Borrowed("quota_exceeded"),
                Cow::Borrowed("the API key's quota is exhausted"),
                60,
            ),
            VerifyCode::NotFound | VerifyCode::Valid => Refusal::unauthorized(
                "invalid_key",
                "the API key is missing, malformed or unknown",
            ),
        }
    }

    /// Fail closed: the key could not be checked.
    pub(super) fn unavailable() -> Refusal {
        let mut r = Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "verifier_unavailable",
            "API keys cannot be checked right now",
        );
        r.headers.insert(RETRY_AFTER, HeaderValue::from(1u64));
        r
    }

    /// A failed `/v1/verify` call: the server's own throttling passes through as a 429, all
    /// else is `verifier_unavailable`.
    pub(super) fn from_client_error(e: &ClientError) -> Refusal {
        if let ClientError::Api {
            status,
            problem,
            retry_after,
        } = e
            && *status == StatusCode::TOO_MANY_REQUESTS
        {
            let secs = retry_after.unwrap_or(1);
            // Only a code-shaped code is repeated; anything else is not ours to pass on.
            let code = if is_code(&problem.code) {
                Cow::Owned(problem.code.clone())
            } else {
                Cow::Borrowed("too_many_attempts")
            };
            return Refusal::too_many(
                code,
                Cow::Owned(format!(
                    "too many failed checks of API keys; retry in {secs} s"
                )),
                secs,
            );
        }
        Refusal::unavailable()
    }

    fn problem(&self) -> Problem {
        Problem {
            type_uri: format!(
                "https://keyward.dev/problems/{}",
                self.code.replace('_', "-")
            ),
            title: self.status.canonical_reason().unwrap_or("Error").to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.clone().into_owned(),
            code: self.code.clone().into_owned(),
            errors: Vec::new(),
            request_id: None,
        }
    }

    pub(super) fn into_response<B>(self) -> Response<LayerBody<B>> {
        let body = serde_json::to_vec(&self.problem()).unwrap_or_default();
        let mut res = Response::new(Either::Right(Full::new(Bytes::from(body))));
        *res.status_mut() = self.status;
        let headers = res.headers_mut();
        *headers = self.headers;
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        res
    }
}

/// `snake_case` ASCII, as every problem code is.
pub(super) fn is_code(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}
