//! What [`crate::Replica::keys`] lists and in which order.

use keyward_core::{Environment, KeyStatus};

/// A query over the replica's keys. `Default` lists every key by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyFilter {
    /// Case-insensitive substring of the name.
    pub search: Option<String>,
    /// The status at the moment of the query (revocation and expiry take effect by the clock).
    pub status: Option<KeyStatus>,
    pub environment: Option<Environment>,
    /// Keys holding exactly this scope string (`billing:read`, `usage:*`).
    pub scope: Option<String>,
    pub sort: KeySort,
    pub descending: bool,
    /// At most this many keys (all when `None`).
    pub limit: Option<u32>,
    pub offset: u32,
}

/// Sort orders. Keys without a value (never used, no expiry) come last either way; ties are
/// broken by id so pages are stable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum KeySort {
    /// Case-insensitive name.
    #[default]
    Name,
    Created,
    LastUsed,
    Expiry,
}

impl KeySort {
    pub(crate) fn column(self) -> &'static str {
        match self {
            KeySort::Name => "name_fold",
            KeySort::Created => "created_at",
            KeySort::LastUsed => "last_used_at",
            KeySort::Expiry => "expires_at",
        }
    }
}
