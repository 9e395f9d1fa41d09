//! What a detector reports: the kind of anomaly and the finding that becomes an alert.

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// What a detector found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// Far more requests than the key's baseline for this time of day.
    RateSpike,
    /// A busy key's traffic collapsed to near zero.
    RateDrop,
    /// A burst of `invalid_secret` refusals (a known key id with a wrong secret).
    InvalidSecretBurst,
    /// A burst of `ip_not_allowed` refusals.
    IpNotAllowedBurst,
    /// A burst of `insufficient_scope` refusals.
    InsufficientScopeBurst,
    /// A successful call from a network the key was not seen using before.
    NewNetwork,
    /// Traffic on a key that had been idle for longer than `idle_days`.
    IdleKeyUsed,
}

impl FindingKind {
    pub const ALL: [FindingKind; 7] = [
        FindingKind::RateSpike,
        FindingKind::RateDrop,
        FindingKind::InvalidSecretBurst,
        FindingKind::IpNotAllowedBurst,
        FindingKind::InsufficientScopeBurst,
        FindingKind::NewNetwork,
        FindingKind::IdleKeyUsed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::RateSpike => "rate_spike",
            FindingKind::RateDrop => "rate_drop",
            FindingKind::InvalidSecretBurst => "invalid_secret_burst",
            FindingKind::IpNotAllowedBurst => "ip_not_allowed_burst",
            FindingKind::InsufficientScopeBurst => "insufficient_scope_burst",
            FindingKind::NewNetwork => "new_network",
            FindingKind::IdleKeyUsed => "idle_key_used",
        }
    }

    /// True for level-triggered kinds, reported in every window while they hold and cleared by
    /// the first window without them; false for one-off events (`new_network`,
    /// `idle_key_used`), which never clear.
    pub fn is_condition(self) -> bool {
        !matches!(self, FindingKind::NewNetwork | FindingKind::IdleKeyUsed)
    }
}

impl std::fmt::Display for FindingKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One anomaly: enough, with the caller's key id, for an alert that names the key, the
/// observed and expected values and the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub kind: FindingKind,
    /// Start of the window the finding is about; for a `new_network` event, the call's time.
    pub window_start: DateTime<Utc>,
    /// Length of that window; 0 for a `new_network` event (an instant).
    pub window_secs: u32,
    /// What was seen: requests (rate), rejected attempts (bursts), days idle (`idle_key_used`),
    /// networks known including the new one (`new_network`).
    pub observed: f64,
    /// What the baseline expected: requests for this time of day, the usual rejected attempts
    /// per window, the idle threshold in days, networks known before the new one.
    pub expected: f64,
    /// The network a `new_network` finding is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<IpNet>,
    /// A sentence for people.
    pub detail: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finding_kinds_serialise_as_their_names() {
        for k in FindingKind::ALL {
            assert_eq!(
                serde_json::to_value(k).unwrap(),
                serde_json::json!(k.as_str())
            );
        }
        assert!(FindingKind::RateDrop.is_condition());
        assert!(!FindingKind::NewNetwork.is_condition());
    }
}
