//! One error type for every handler, rendered as RFC 9457 problem+json.
//!
//! Internal failures become an opaque 500 (logged once, here); everything else carries a stable
//! `code`. No variant ever holds a secret: messages are written by us, never echoed input.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keyward_core::api::{FieldError, Problem};

pub type AppResult<T> = Result<T, AppError>;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("malformed request body: {0}")]
    MalformedBody(String),
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// 400 for a request that cannot be served as written (not a body problem).
    #[error("{detail}")]
    BadRequest { code: &'static str, detail: String },
    /// 401 with `WWW-Authenticate: Bearer`.
    #[error("{detail}")]
    Unauthorized { code: &'static str, detail: String },
    #[error("{detail}")]
    Forbidden { code: &'static str, detail: String },
    #[error("{detail}")]
    NotFound { code: &'static str, detail: String },
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    #[error("{detail}")]
    TooManyRequests {
        code: &'static str,
        detail: String,
        retry_after_secs: u64,
    },
    #[error("{detail}")]
    Unavailable {
        code: &'static str,
        detail: String,
        retry_after_secs: Option<u64>,
    },
    #[error("{detail}")]
    BadGateway { code: &'static str, detail: String },
    #[error("{detail}")]
    GatewayTimeout { detail: String },
    /// 408: the request body did not arrive within `body_timeout_ms`.
    #[error("the request body was not received in time")]
    BodyTimeout,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl AppError {
    pub fn field(field: &str, code: &str, message: impl Into<String>) -> AppError {
        AppError::Validation(vec![FieldError::new(field, code, message)])
    }

    pub fn key_not_found() -> AppError {
        AppError::NotFound {
            code: "key_not_found",
            detail: "no such key in this organization".into(),
        }
    }

    pub fn forbidden_viewer() -> AppError {
        AppError::Forbidden {
            code: "forbidden",
            detail: "the viewer role is read-only".into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            AppError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::MalformedBody(_) | AppError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            AppError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            AppError::Forbidden { .. } => StatusCode::FORBIDDEN,
            AppError::NotFound { .. } => StatusCode::NOT_FOUND,
            AppError::Conflict { .. } => StatusCode::CONFLICT,
            AppError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            AppError::BadGateway { .. } => StatusCode::BAD_GATEWAY,
            AppError::GatewayTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            AppError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            AppError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            AppError::Database(_) | AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            AppError::Validation(_) => "validation_failed",
            AppError::MalformedBody(_) => "malformed_body",
            AppError::PayloadTooLarge => "payload_too_large",
            AppError::UnsupportedMediaType => "unsupported_media_type",
            AppError::MethodNotAllowed => "method_not_allowed",
            AppError::BadRequest { code, .. }
            | AppError::Unauthorized { code, .. }
            | AppError::Forbidden { code, .. }
            | AppError::NotFound { code, .. }
            | AppError::Conflict { code, .. }
            | AppError::TooManyRequests { code, .. }
            | AppError::Unavailable { code, .. }
            | AppError::BadGateway { code, .. } => code,
            AppError::GatewayTimeout { .. } => "upstream_timeout",
            AppError::BodyTimeout => "body_timeout",
            AppError::Database(_) | AppError::Internal(_) => "internal_error",
        }
    }

    fn detail(&self) -> String {
        match self {
            AppError::Validation(errors) => match errors.as_slice() {
                [one] => format!("{}: {}", one.field, one.message),
                many => format!("{} fields are invalid", many.len()),
            },
            AppError::PayloadTooLarge => "request bodies are limited to 1 MiB".into(),
            AppError::UnsupportedMediaType => "expected `Content-Type: application/json`".into(),
            AppError::MethodNotAllowed => "this path does not accept that method".into(),
            AppError::Database(_) | AppError::Internal(_) => {
                "the server failed to handle the request; it has been logged".into()
            }
            other => other.to_string(),
        }
    }

    /// The problem document; `title` is the status's reason phrase.
    pub fn to_problem(&self) -> Problem {
        let status = self.status();
        Problem {
            type_uri: format!(
                "https://keyward.dev/problems/{}",
                self.code().replace('_', "-")
            ),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: self.detail(),
            code: self.code().to_owned(),
            errors: match self {
                AppError::Validation(errors) => errors.clone(),
                _ => Vec::new(),
            },
            request_id: None,
        }
    }
}

impl From<FieldError> for AppError {
    fn from(error: FieldError) -> Self {
        AppError::Validation(vec![error])
    }
}

impl From<Vec<FieldError>> for AppError {
    fn from(errors: Vec<FieldError>) -> Self {
        AppError::Validation(errors)
    }
}

/// Whether a database error says the database cannot be reached (a connection, the pool's
/// timeout, a server shutting down or out of connections) rather than that a query was wrong:
/// the caller gets 503 `database_unavailable` and may retry, never a bare 500.
pub fn database_unreachable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| {
            // connection exception; too many connections; admin/crash shutdown, cannot connect now
            c.starts_with("08") || c == "53300" || c.starts_with("57P")
        }),
        _ => false,
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if let AppError::Database(e) = &self
            && database_unreachable(e)
        {
            tracing::warn!(error = %e, "database unavailable");
            return AppError::Unavailable {
                code: "database_unavailable",
                detail: "the database cannot be reached right now; retry shortly".into(),
                retry_after_secs: Some(2),
            }
            .into_response();
        }
        match &self {
            AppError::Database(e) => tracing::error!(error = %e, "database error"),
            AppError::Internal(e) => tracing::error!(error = format!("{e:#}"), "internal error"),
            other => tracing::debug!(code = other.code(), "request refused"),
        }
        let status = self.status();
        let problem = self.to_problem();
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        match &self {
            AppError::Unauthorized { code, .. } => {
                let value = match *code {
                    "invalid_key" | "key_revoked" | "key_expired" | "key_disabled" => {
                        format!(
                            "Bearer realm=\"keyward\", error=\"invalid_token\", error_description=\"{code}\""
                        )
                    }
                    _ => "Bearer realm=\"keyward\"".to_owned(),
                };
                if let Ok(v) = HeaderValue::from_str(&value) {
                    headers.insert(header::WWW_AUTHENTICATE, v);
                }
            }
            AppError::TooManyRequests {
                retry_after_secs, ..
            } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            AppError::Unavailable {
                retry_after_secs: Some(secs),
                ..
            } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*secs));
            }
            _ => {}
        }
        response.extensions_mut().insert(ProblemCode(self.code()));
        response
            .extensions_mut()
            .insert(ProblemBody(std::sync::Arc::new(problem)));
        response
    }
}

/// Attached to error responses so the request span can log the code once.
#[derive(Debug, Clone, Copy)]
pub struct ProblemCode(pub &'static str);

/// Attached to error responses: their problem document, so the router's outer layer can write it
/// again with the request's id (`request_id`) once that is known
/// (`crate::http::request_id::fill_problems`).
#[derive(Debug, Clone)]
pub struct ProblemBody(pub std::sync::Arc<Problem>);

/// Maps a named constraint violation to a 409 with our code, any other database error to 500.
pub fn on_constraint(e: sqlx::Error, map: &[(&str, &'static str, &'static str)]) -> AppError {
    if let sqlx::Error::Database(db) = &e
        && let Some(name) = db.constraint()
        && let Some((_, code, detail)) = map.iter().find(|(c, _, _)| *c == name)
    {
        return AppError::Conflict {
            code,
            detail: (*detail).to_owned(),
        };
    }
    AppError::Database(e)
}
