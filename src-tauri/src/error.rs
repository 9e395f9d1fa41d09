//! The one error every command returns: a stable `code`, a message for people, and per-field
//! problems the forms show inline.

use keyward_client::ClientError;
use keyward_core::api::FieldError;
use keyward_replica::{FetchError, LocalOpError};
use serde::Serialize;
use ts_rs::TS;

#[derive(Debug, Clone, PartialEq, Serialize, TS, thiserror::Error)]
#[error("{code}: {message}")]
pub struct CommandError {
    /// `validation_failed`, `offline`, `unauthenticated`, `not_found`, `keychain_unavailable`, ...
    pub code: String,
    pub message: String,
    pub fields: Vec<FieldError>,
}

impl CommandError {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        CommandError {
            code: code.to_owned(),
            message: message.into(),
            fields: Vec::new(),
        }
    }

    pub fn validation(fields: Vec<FieldError>) -> Self {
        let message = match fields.as_slice() {
            [one] => format!("{}: {}", one.field, one.message),
            many => format!("{} fields need attention", many.len()),
        };
        CommandError {
            code: "validation_failed".into(),
            message,
            fields,
        }
    }

    pub fn unauthenticated() -> Self {
        CommandError::new(
            "unauthenticated",
            "your session has ended; sign in again (unsynced changes are kept)",
        )
    }
}

impl From<ClientError> for CommandError {
    fn from(e: ClientError) -> Self {
        match &e {
            ClientError::Api {
                status, problem, ..
            } if status.as_u16() == 401 && problem.code != "invalid_credentials" => {
                CommandError::unauthenticated()
            }
            _ if e.is_unreachable() => CommandError::new("offline", "the server cannot be reached"),
            ClientError::Api { problem, .. } => CommandError {
                code: problem.code.clone(),
                message: problem.detail.clone(),
                fields: problem.errors.clone(),
            },
            // The transport's own words ("error sending request for url ...") go to the log,
            // not to the person.
            ClientError::Transport(t) => {
                tracing::warn!(error = %t, "request failed");
                CommandError::new(
                    "server_error",
                    "the connection to the server broke before it answered; try again",
                )
            }
            ClientError::NotSignedIn => CommandError::unauthenticated(),
            ClientError::Unexpected { .. } => {
                tracing::warn!(error = %e, "unexpected answer");
                CommandError::new(
                    "server_error",
                    "the server answered in a way this app does not understand; check that the app and the server are up to date",
                )
            }
        }
    }
}

/// A failure of the local replica (or of the app's files beside it).
pub(crate) fn replica_error(e: impl std::fmt::Display) -> CommandError {
    CommandError::new("replica_error", format!("the local replica failed: {e}"))
}

pub(crate) fn local_error(e: LocalOpError) -> CommandError {
    match e {
        LocalOpError::Invalid(fields) => CommandError::validation(fields),
        LocalOpError::KeyNotFound(_) => CommandError::new("not_found", "no such key"),
        LocalOpError::KeyRevoked(_) => {
            CommandError::new("key_revoked", "a revoked key cannot change")
        }
        e @ LocalOpError::AlreadyRotated { .. } => {
            CommandError::new("already_rotated", e.to_string())
        }
        e @ LocalOpError::NoSuchRejection(_) => CommandError::new("not_found", e.to_string()),
        e @ LocalOpError::NotRetryable(_) => CommandError::new("not_retryable", e.to_string()),
        other => replica_error(other),
    }
}

/// A key's details read online-first ([`Account::key_limits`]...): `offline` with no saved copy.
pub(crate) fn fetch_error(e: FetchError) -> CommandError {
    match e {
        FetchError::Replica(e) => replica_error(e),
        FetchError::Server(e) => e.into(),
    }
}

/// `offline` for a read with no saved copy: `what` names what is missing.
pub(crate) fn no_copy(what: &str) -> CommandError {
    CommandError::new(
        "offline",
        format!("the server cannot be reached and this device has no saved copy of {what} yet"),
    )
}

/// `offline` for something that needs the server (`what`: "saving alert sensitivity"), or the
/// server's own refusal.
pub(crate) fn needs_server(what: &str) -> impl FnOnce(ClientError) -> CommandError + '_ {
    move |e| match e {
        e if e.is_unreachable() => CommandError::new(
            "offline",
            format!(
                "the server cannot be reached: {what} needs a connection; try again when online"
            ),
        ),
        e => CommandError::from(e),
    }
}
