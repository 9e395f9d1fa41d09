//! The one error every command returns: a stable `code`, a message for people, and per-field
//! problems the forms show inline.

use keyward_client::ClientError;
use keyward_core::api::FieldError;
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
            ClientError::Transport(e) => CommandError::new("server_error", e.to_string()),
            ClientError::NotSignedIn => CommandError::unauthenticated(),
            ClientError::Unexpected { .. } => CommandError::new("server_error", e.to_string()),
        }
    }
}
