//! A key as the replica shows it: the record plus its sync state.

use keyward_core::api::ApiKey;
use serde::{Deserialize, Serialize};

/// A key in the replica.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LocalKey {
    /// The server's record with this device's queued operations applied on top; `status` is
    /// computed for the moment of reading.
    #[serde(flatten)]
    pub key: ApiKey,
    /// The server's change sequence value of the record (0: never pulled).
    pub seq: i64,
    /// Local operations on this key wait in the outbox.
    pub pending: bool,
    /// The server has (or had, at the last sync) this key. False for a key made offline and not
    /// pushed yet, or refused by the server.
    pub on_server: bool,
    /// Why the server refused the last local operation on this key, until dismissed with
    /// [`crate::Replica::dismiss_error`].
    pub rejection: Option<Rejection>,
}

/// The server's refusal of one operation: its problem `code` (`key_revoked`, `conflict`,
/// `validation_failed`, ...) and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    pub code: String,
    pub detail: String,
}
