//! What [`crate::Replica::keys`] lists and in which order: [`KeyFilter`], defined in
//! `keyward_core` (the desktop's UI sends the same type).

pub use keyward_core::{KeyFilter, KeySort};

/// The `keys` column a sort orders by.
pub(crate) fn sort_column(sort: KeySort) -> &'static str {
    match sort {
        KeySort::Name => "name_fold",
        KeySort::Created => "created_at",
        KeySort::LastUsed => "last_used_at",
        KeySort::Expiry => "expires_at",
    }
}
