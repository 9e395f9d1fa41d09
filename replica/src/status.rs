//! What the UI shows about synchronisation.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// The replica's sync state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncStatus {
    /// The server's change cursor the replica has caught up to.
    pub cursor: i64,
    /// Local operations waiting to be pushed.
    pub queued: u64,
    pub last_pull_at: Option<DateTime<Utc>>,
    pub last_push_at: Option<DateTime<Utc>>,
    /// The last sync round's failure, cleared by the next success.
    pub last_error: Option<String>,
}
