//! Admin sessions: random bearer tokens, stored only as SHA-256 digests, with an expiry. The
//! extractor that finds a request's session is [`crate::http::extract`]'s.

use keyward_core::api::Role;
use keyward_core::{AdminId, OrgId};
use rand::Rng;
use rand::distributions::Alphanumeric;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};

use crate::audit::Actor;
use crate::error::AppError;

/// What every session token starts with.
pub const PREFIX: &str = "kws_";

/// 43 base62 characters: about 256 bits.
pub fn new_token() -> String {
    let body: String = OsRng
        .sample_iter(&Alphanumeric)
        .take(43)
        .map(char::from)
        .collect();
    format!("{PREFIX}{body}")
}

pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The idle timeout and how stale a session's last use may be before it is written again: a
/// minute (a tenth of the timeout when that is shorter), so a busy session costs one write a
/// minute, not one per request, and ends at most that much before its timeout.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Idle {
    pub limit_secs: f64,
    pub touch_secs: f64,
}

impl Idle {
    pub const MAX_TOUCH_SECS: f64 = 60.0;

    pub fn new(idle_secs: u64) -> Idle {
        let limit_secs = idle_secs.max(1) as f64;
        Idle {
            limit_secs,
            touch_secs: (limit_secs / 10.0).min(Self::MAX_TOUCH_SECS),
        }
    }
}

/// The signed-in admin of a request.
#[derive(Debug, Clone)]
pub struct AdminSession {
    pub admin_id: AdminId,
    pub org_id: OrgId,
    pub email: String,
    pub role: Role,
    pub token_hash: [u8; 32],
    pub actor: Actor,
}

impl AdminSession {
    /// Viewers read; everything that writes calls this first.
    pub fn require_write(&self) -> Result<(), AppError> {
        if self.role.can_write() {
            Ok(())
        } else {
            Err(AppError::forbidden_viewer())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_use_is_written_at_most_once_a_minute() {
        assert_eq!(
            Idle::new(1800),
            Idle {
                limit_secs: 1800.0,
                touch_secs: 60.0
            }
        );
        assert_eq!(
            Idle::new(2),
            Idle {
                limit_secs: 2.0,
                touch_secs: 0.2
            }
        );
        assert_eq!(Idle::new(0).limit_secs, 1.0, "never zero");
    }
}
