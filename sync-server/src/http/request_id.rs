//! `X-Request-Id`: what a client may send, and the id in every problem+json body.
//!
//! A client's id is kept only when it is 1 to [`MAX_LEN`] characters of `[A-Za-z0-9._:-]`
//! (one header, not several); otherwise it is dropped before anything logs or echoes it and the
//! request-id layer makes a fresh UUID. Every problem document the server writes
//! ([`crate::error::AppError`]) then gets that id as `request_id`, equal to the response's
//! `X-Request-Id` (which tower-http's propagation layer copies from the request).

use axum::body::Body;
use axum::extract::Request;
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;

use crate::error::ProblemBody;

pub const X_REQUEST_ID: &str = "x-request-id";

/// Longest client-sent request id kept.
pub const MAX_LEN: usize = 128;

/// Whether a client-sent request id may be kept: 1..=[`MAX_LEN`] bytes of `[A-Za-z0-9._:-]`.
pub fn is_safe(id: &[u8]) -> bool {
    (1..=MAX_LEN).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// Outermost layer: drops an `X-Request-Id` that is not [`is_safe`] (or sent more than once),
/// so that the request-id layer inside replaces it with a fresh one.
pub async fn sanitise(mut req: Request, next: Next) -> Response {
    let mut ids = req.headers().get_all(X_REQUEST_ID).iter();
    let keep = match (ids.next(), ids.next()) {
        (None, _) => true,
        (Some(id), None) => is_safe(id.as_bytes()),
        (Some(_), Some(_)) => false,
    };
    if !keep {
        req.headers_mut().remove(X_REQUEST_ID);
    }
    next.run(req).await
}

/// Writes the request's id into the body of a problem answer made by
/// [`crate::error::AppError`] (marked with [`ProblemBody`]); other answers — an upstream's
/// passed through by the gateway among them — are untouched.
pub async fn fill_problems(req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut res = next.run(req).await;
    if let Some(ProblemBody(problem)) = res.extensions_mut().remove::<ProblemBody>()
        && let Some(id) = id
    {
        let mut problem = std::sync::Arc::unwrap_or_clone(problem);
        problem.request_id = Some(id);
        if let Ok(body) = serde_json::to_vec(&problem) {
            res.headers_mut().remove(header::CONTENT_LENGTH);
            *res.body_mut() = Body::from(body);
        }
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_request_ids() {
        for ok in [
            "a",
            "0b8e2f3c-6a1d-4d0e-9a55-1c2d3e4f5a6b",
            "req_1.2:3-x",
            &"a".repeat(MAX_LEN),
        ] {
            assert!(is_safe(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "",
            &"a".repeat(MAX_LEN + 1),
            "a b",
            "a\tb",
            "a\r\nb",
            "a\nb",
            "a\u{1}b",
            "<script>",
            "a\"b",
            "a/b",
            "é",
            "a%0d%0a",
        ] {
            assert!(!is_safe(bad.as_bytes()), "{bad:?}");
        }
        assert!(!is_safe(b"a\xffb"));
    }
}
