//! A key's state at a moment in time, derived from its stored timestamps.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What a key is at a given instant. Derived, never stored: revocation with a grace period and
/// expiry take effect by the clock alone, so no job has to flip a flag on time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum KeyStatus {
    Active,
    Expired,
    Revoked,
    Disabled,
}

impl KeyStatus {
    /// Revocation outranks expiry, which outranks the reversible `disabled` switch.
    pub fn at(
        now: DateTime<Utc>,
        disabled: bool,
        revoked_at: Option<DateTime<Utc>>,
        expires_at: Option<DateTime<Utc>>,
    ) -> KeyStatus {
        if revoked_at.is_some_and(|t| t <= now) {
            KeyStatus::Revoked
        } else if expires_at.is_some_and(|t| t <= now) {
            KeyStatus::Expired
        } else if disabled {
            KeyStatus::Disabled
        } else {
            KeyStatus::Active
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Active => "active",
            KeyStatus::Expired => "expired",
            KeyStatus::Revoked => "revoked",
            KeyStatus::Disabled => "disabled",
        }
    }
}

impl std::fmt::Display for KeyStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn revocation_and_expiry_take_effect_by_the_clock() {
        let now = Utc::now();
        let later = now + Duration::seconds(60);
        let earlier = now - Duration::seconds(1);
        assert_eq!(KeyStatus::at(now, false, None, None), KeyStatus::Active);
        assert_eq!(
            KeyStatus::at(now, false, Some(later), None),
            KeyStatus::Active
        );
        assert_eq!(
            KeyStatus::at(now, false, Some(now), None),
            KeyStatus::Revoked
        );
        assert_eq!(
            KeyStatus::at(now, false, None, Some(earlier)),
            KeyStatus::Expired
        );
        assert_eq!(KeyStatus::at(now, true, None, None), KeyStatus::Disabled);
        assert_eq!(
            KeyStatus::at(now, true, Some(earlier), Some(earlier)),
            KeyStatus::Revoked
        );
        assert_eq!(
            KeyStatus::at(now, true, None, Some(earlier)),
            KeyStatus::Expired
        );
    }
}
