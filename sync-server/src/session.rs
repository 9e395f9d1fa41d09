//! Admin sessions: random bearer tokens, stored only as SHA-256 digests, with an expiry.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use keyward_core::api::Role;
use keyward_core::{AdminId, OrgId};
use rand::Rng;
use rand::distributions::Alphanumeric;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};

use crate::audit::Actor;
use crate::error::AppError;
use crate::http::extract::{ClientIp, RequestId};
use crate::state::AppState;
use crate::store;

const PREFIX: &str = "kws_";

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

/// The bearer token of a request, if it has one.
pub fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl FromRequestParts<AppState> for AdminSession {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let unauthenticated = |detail: &str| AppError::Unauthorized {
            code: "unauthenticated",
            detail: detail.into(),
        };
        let token = bearer(parts).ok_or_else(|| {
            unauthenticated("sign in and send `Authorization: Bearer <session token>`")
        })?;
        if !token.starts_with(PREFIX) || token.len() > 128 {
            return Err(unauthenticated("the session token is malformed"));
        }
        let hash = token_hash(token);
        let mut conn = state.pool.acquire().await?;
        let live = store::sessions::find_admin(&mut conn, &hash)
            .await?
            .ok_or_else(|| AppError::Unauthorized {
                code: "invalid_session",
                detail: "the session has expired or was signed out; sign in again".into(),
            })?;
        let idle = Idle::new(state.config.sessions.idle.as_secs());
        if live.idle_secs > idle.limit_secs {
            // Ended here rather than left for the hourly sweep.
            store::sessions::delete(&mut conn, &hash).await?;
            return Err(AppError::Unauthorized {
                code: "session_expired",
                detail: format!(
                    "the session was unused for more than {} s and has ended; sign in again",
                    state.config.sessions.idle.as_secs()
                ),
            });
        }
        if live.idle_secs >= idle.touch_secs {
            store::sessions::touch(&mut conn, &hash).await?;
        }
        let admin = live.admin;
        let ClientIp(client_ip) = ClientIp::from_request_parts(parts, state)
            .await
            .unwrap_or(ClientIp(None));
        let RequestId(request_id) = RequestId::from_request_parts(parts, state)
            .await
            .unwrap_or(RequestId(None));
        let (admin_id, org_id) = (AdminId::from_uuid(admin.id), OrgId::from_uuid(admin.org_id));
        Ok(AdminSession {
            admin_id,
            org_id,
            role: admin.role(),
            actor: Actor {
                org_id,
                admin_id: Some(admin_id),
                email: Some(admin.email.clone()),
                client_ip,
                request_id,
                signer: state.audit_signer.clone(),
            },
            email: admin.email,
            token_hash: hash,
        })
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
