//! What a monitor is fed: one key's requests in one window by outcome, and the refusals the
//! rejected-attempts detector watches.

use serde::{Deserialize, Serialize};

use super::FindingKind;

/// The refusals the [`RejectedDetector`] watches, named as the server's outcomes.
///
/// [`RejectedDetector`]: super::RejectedDetector
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectedKind {
    /// A known key id presented with a wrong secret.
    InvalidSecret,
    IpNotAllowed,
    InsufficientScope,
}

impl RejectedKind {
    pub const ALL: [RejectedKind; 3] = [
        RejectedKind::InvalidSecret,
        RejectedKind::IpNotAllowed,
        RejectedKind::InsufficientScope,
    ];

    /// The server's outcome name: `invalid_secret`, `ip_not_allowed`, `insufficient_scope`.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectedKind::InvalidSecret => "invalid_secret",
            RejectedKind::IpNotAllowed => "ip_not_allowed",
            RejectedKind::InsufficientScope => "insufficient_scope",
        }
    }

    pub fn from_outcome(outcome: &str) -> Option<RejectedKind> {
        RejectedKind::ALL
            .into_iter()
            .find(|k| k.as_str() == outcome)
    }

    pub fn finding_kind(self) -> FindingKind {
        match self {
            RejectedKind::InvalidSecret => FindingKind::InvalidSecretBurst,
            RejectedKind::IpNotAllowed => FindingKind::IpNotAllowedBurst,
            RejectedKind::InsufficientScope => FindingKind::InsufficientScopeBurst,
        }
    }

    pub(super) fn index(self) -> usize {
        self as usize
    }
}

/// One key's requests in one window, by outcome: the server's per-minute counts summed over
/// the window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WindowCounts {
    pub valid: u64,
    pub rate_limited: u64,
    pub quota_exceeded: u64,
    pub invalid_secret: u64,
    pub ip_not_allowed: u64,
    pub insufficient_scope: u64,
    pub revoked: u64,
    pub expired: u64,
    pub disabled: u64,
    /// Outcomes not listed above.
    pub other: u64,
}

impl WindowCounts {
    /// Adds `n` calls with the server's `outcome` name (`valid`, `rate_limited`, ...); an
    /// unknown name counts as `other`.
    pub fn add(&mut self, outcome: &str, n: u64) {
        let slot = match outcome {
            "valid" => &mut self.valid,
            "rate_limited" => &mut self.rate_limited,
            "quota_exceeded" => &mut self.quota_exceeded,
            "invalid_secret" => &mut self.invalid_secret,
            "ip_not_allowed" => &mut self.ip_not_allowed,
            "insufficient_scope" => &mut self.insufficient_scope,
            "revoked" => &mut self.revoked,
            "expired" => &mut self.expired,
            "disabled" => &mut self.disabled,
            _ => &mut self.other,
        };
        *slot = slot.saturating_add(n);
    }

    /// The key's request volume, what the [`RateDetector`] watches: calls that presented the
    /// key correctly (`valid`, `rate_limited`, `quota_exceeded`). Refusals have their own
    /// detector, so a burst of wrong secrets is not also a rate spike.
    ///
    /// [`RateDetector`]: super::RateDetector
    pub fn volume(&self) -> u64 {
        self.valid
            .saturating_add(self.rate_limited)
            .saturating_add(self.quota_exceeded)
    }

    /// Every call naming the key, whatever the outcome: what the [`IdleDetector`] counts as use
    /// (someone trying a long-unused key is worth knowing about even if it is refused).
    ///
    /// [`IdleDetector`]: super::IdleDetector
    pub fn total(&self) -> u64 {
        [
            self.valid,
            self.rate_limited,
            self.quota_exceeded,
            self.invalid_secret,
            self.ip_not_allowed,
            self.insufficient_scope,
            self.revoked,
            self.expired,
            self.disabled,
            self.other,
        ]
        .into_iter()
        .fold(0u64, u64::saturating_add)
    }

    pub fn rejected(&self, kind: RejectedKind) -> u64 {
        match kind {
            RejectedKind::InvalidSecret => self.invalid_secret,
            RejectedKind::IpNotAllowed => self.ip_not_allowed,
            RejectedKind::InsufficientScope => self.insufficient_scope,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_counts_sum_outcomes() {
        let mut c = WindowCounts::default();
        for (outcome, n) in [
            ("valid", 10),
            ("rate_limited", 2),
            ("quota_exceeded", 1),
            ("invalid_secret", 5),
            ("ip_not_allowed", 4),
            ("insufficient_scope", 3),
            ("revoked", 1),
            ("expired", 1),
            ("disabled", 1),
            ("something_new", 1),
            ("valid", 10),
        ] {
            c.add(outcome, n);
        }
        assert_eq!(c.volume(), 23);
        assert_eq!(c.total(), 39);
        assert_eq!(c.rejected(RejectedKind::IpNotAllowed), 4);
        assert_eq!(
            RejectedKind::from_outcome("insufficient_scope"),
            Some(RejectedKind::InsufficientScope)
        );
        assert_eq!(RejectedKind::from_outcome("valid"), None);
    }
}
