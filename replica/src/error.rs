//! Errors of the replica's storage, of local operations and of a sync round.

use keyward_client::ClientError;
use keyward_core::KeyId;
use keyward_core::api::FieldError;
use thiserror::Error;

/// The local database failed or holds something unreadable.
#[derive(Debug, Error)]
pub enum ReplicaError {
    #[error("replica database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("replica migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("replica holds a record it cannot read: {0}")]
    Corrupt(#[from] serde_json::Error),
    #[error("replica holds an invalid id {0:?}")]
    BadId(String),
    #[error("replica holds an operation of unknown kind {0:?}")]
    BadKind(String),
}

/// Why a local operation was refused. A refused operation writes nothing.
#[derive(Debug, Error)]
pub enum LocalOpError {
    /// The input breaks the server's rules; one entry per bad field, as the server would say.
    #[error("invalid input: {}", summary(.0))]
    Invalid(Vec<FieldError>),
    #[error("key {0} is not in the replica")]
    KeyNotFound(KeyId),
    #[error("key {0} is revoked and cannot change")]
    KeyRevoked(KeyId),
    #[error("key {id} was already rotated; rotate its successor {successor} instead")]
    AlreadyRotated { id: KeyId, successor: KeyId },
    #[error("no refused change {0} is kept (already retried or discarded)")]
    NoSuchRejection(uuid::Uuid),
    #[error("{0} cannot be sent again: its token was shown once and is gone; make it anew")]
    NotRetryable(String),
    #[error("hashing the new key's secret failed: {0}")]
    Hashing(#[from] tokio::task::JoinError),
    #[error(transparent)]
    Replica(#[from] ReplicaError),
}

impl LocalOpError {
    /// The field errors of an [`LocalOpError::Invalid`] refusal, empty otherwise.
    pub fn field_errors(&self) -> &[FieldError] {
        match self {
            LocalOpError::Invalid(errors) => errors,
            _ => &[],
        }
    }
}

impl From<sqlx::Error> for LocalOpError {
    fn from(e: sqlx::Error) -> Self {
        LocalOpError::Replica(e.into())
    }
}

impl From<serde_json::Error> for LocalOpError {
    fn from(e: serde_json::Error) -> Self {
        LocalOpError::Replica(e.into())
    }
}

fn summary(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Why a sync round stopped. The outbox is intact after every one of these: a retry resends
/// the same operation ids, which the server applies at most once.
#[derive(Debug, Error)]
pub enum SyncError {
    /// The session expired or was revoked (401), or there is none: the user must sign in again.
    #[error("the session is no longer valid; sign in again")]
    Unauthorized,
    /// The server could not be reached ([`ClientError::is_unreachable`]: no answer, or a 502,
    /// 503 or 504): retry later.
    #[error("server unavailable: {0}")]
    Offline(#[source] ClientError),
    /// The server refused the request itself (not one operation): e.g. `forbidden` for a
    /// read-only admin.
    #[error("server refused the sync: {0}")]
    Server(#[source] ClientError),
    #[error(transparent)]
    Replica(#[from] ReplicaError),
}

impl SyncError {
    /// The failure in a sentence for the app's status (no transport internals, no codes); the
    /// full error goes to the log.
    pub fn for_people(&self) -> String {
        match self {
            SyncError::Unauthorized => {
                "Your session has ended: sign in again (unsynced changes are kept).".into()
            }
            SyncError::Offline(_) => "The server cannot be reached. Changes are kept on this \
                device and sent when it is back."
                .into(),
            SyncError::Server(ClientError::Api { problem, .. }) if !problem.detail.is_empty() => {
                let d = problem.detail.trim_end_matches('.');
                let mut c = d.chars();
                let first = c.next().map(|f| f.to_uppercase().collect::<String>());
                format!(
                    "The server refused the sync: {}{}.",
                    first.unwrap_or_default(),
                    c.as_str()
                )
            }
            SyncError::Server(_) => "The server answered in a way this app did not expect; \
                the next sync tries again."
                .into(),
            SyncError::Replica(_) => {
                "This device's copy of the data could not be read or written; the next sync \
                 tries again."
                    .into()
            }
        }
    }
}

impl From<sqlx::Error> for SyncError {
    fn from(e: sqlx::Error) -> Self {
        SyncError::Replica(e.into())
    }
}

impl From<ClientError> for SyncError {
    fn from(e: ClientError) -> Self {
        match &e {
            ClientError::NotSignedIn => SyncError::Unauthorized,
            _ if e.status().is_some_and(|s| s.as_u16() == 401) => SyncError::Unauthorized,
            _ if e.is_unreachable() => SyncError::Offline(e),
            _ => SyncError::Server(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16) -> ClientError {
        let problem = serde_json::from_value(serde_json::json!({
            "type": "about:blank", "title": "t", "status": status, "detail": "d", "code": "c",
        }))
        .unwrap();
        ClientError::Api {
            status: status.try_into().unwrap(),
            problem: Box::new(problem),
            retry_after: None,
        }
    }

    /// Offline is [`ClientError::is_unreachable`]; a reachable server's refusal is not.
    #[test]
    fn a_round_is_offline_only_when_the_server_cannot_be_reached() {
        let kind = |e: ClientError| match SyncError::from(e) {
            SyncError::Unauthorized => "unauthorized",
            SyncError::Offline(_) => "offline",
            SyncError::Server(_) => "server",
            SyncError::Replica(_) => "replica",
        };
        assert_eq!(kind(ClientError::NotSignedIn), "unauthorized");
        assert_eq!(kind(answer(401)), "unauthorized");
        for status in [502, 503, 504] {
            assert_eq!(kind(answer(status)), "offline", "{status}");
        }
        for status in [403, 429, 500] {
            assert_eq!(kind(answer(status)), "server", "{status}");
        }
    }
}
