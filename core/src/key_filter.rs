//! Which of an organisation's keys a local list shows, and in which order: the desktop's key
//! list (its UI sends this over IPC) and the replica's query, one type for both.

use serde::{Deserialize, Serialize};

use crate::status::KeyStatus;
use crate::token::Environment;

/// A query over keys. `Default` lists every key by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
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
    /// At most this many keys (all when `None`; the desktop's `list_keys` command serves 1 to
    /// its page maximum, the maximum when `None`).
    pub limit: Option<u32>,
    pub offset: u32,
}

/// Sort orders. Keys without a value (never used, no expiry) come last either way; ties are
/// broken by id so pages are stable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum KeySort {
    /// Case-insensitive name.
    #[default]
    Name,
    Created,
    LastUsed,
    #[serde(rename = "expires")]
    Expiry,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_names_the_ui_sends() {
        let names: Vec<String> = [
            KeySort::Name,
            KeySort::Created,
            KeySort::LastUsed,
            KeySort::Expiry,
        ]
        .iter()
        .map(|s| serde_json::to_string(s).unwrap())
        .collect();
        assert_eq!(
            names,
            [
                r#""name""#,
                r#""created""#,
                r#""last_used""#,
                r#""expires""#
            ]
        );
        let f: KeyFilter = serde_json::from_str(
            r#"{"search":null,"status":"active","environment":null,"scope":null,
                "sort":"expires","descending":true,"limit":50,"offset":0}"#,
        )
        .unwrap();
        assert_eq!(f.sort, KeySort::Expiry);
        assert_eq!(f.status, Some(KeyStatus::Active));
        assert_eq!(f.limit, Some(50));
    }
}
