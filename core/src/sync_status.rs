//! What the desktop knows and shows about synchronising its replica with the server.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The replica's sync state as it stores it (`keyward_replica::Replica::status`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct SyncState {
    /// The server's change cursor the replica has caught up to.
    pub cursor: i64,
    /// Local operations waiting to be pushed.
    pub queued: u64,
    /// Of those, revocations: keys that still work on the server until this device syncs.
    #[serde(default)]
    pub queued_revocations: u64,
    /// Changes the server refused that the admin has not retried or discarded yet.
    #[serde(default)]
    pub rejected: u64,
    /// When the replica last caught up with the server's changes (the UI's "last sync").
    pub last_pull_at: Option<DateTime<Utc>>,
    pub last_push_at: Option<DateTime<Utc>>,
    /// The last sync round's failure, cleared by the next success.
    pub last_error: Option<String>,
}

/// The status bar's sync status: the stored [`SyncState`] and what only the running app knows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct SyncStatus {
    /// The last round reached the server: false before the first round and while the server
    /// cannot be reached (`keyward_client::ClientError::is_unreachable`), true even when it
    /// refused the round (then `last_error` says why).
    pub online: bool,
    /// A round is under way.
    pub syncing: bool,
    #[serde(flatten)]
    pub state: SyncState,
}
