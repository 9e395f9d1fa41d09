//! `POST /v1/auth/password`, `POST /v1/auth/logout-all`: the signed-in admin's own password and
//! sessions.

use axum::extract::State;
use axum::http::StatusCode;
use keyward_core::api::{ChangePasswordRequest, FieldError};
use keyward_core::hash::{
    PASSWORD_MAX_CHARS, check_password_policy, hash_password, verify_password,
};
use secrecy::SecretString;

use crate::audit::AuditEvent;
use crate::error::{AppError, AppResult};
use crate::http::auth::overloaded;
use crate::http::extract::AppJson;
use crate::session::AdminSession;
use crate::state::AppState;
use crate::store;

/// Checks the request's fields: the current password's length, the new one against the policy
/// and against the current one. Nothing is hashed for a request that fails here.
fn check(req: &ChangePasswordRequest) -> Result<(), AppError> {
    let mut errors = Vec::new();
    let current = &req.current_password;
    if current.is_empty()
        || current.len() > 4 * PASSWORD_MAX_CHARS
        || current.chars().count() > PASSWORD_MAX_CHARS
    {
        errors.push(FieldError::new(
            "current_password",
            "out_of_range",
            format!("must be 1–{PASSWORD_MAX_CHARS} characters"),
        ));
    }
    match check_password_policy(&req.new_password) {
        Err(e) => errors.push(FieldError::new(
            "new_password",
            "weak_password",
            e.to_string(),
        )),
        Ok(()) if req.new_password == *current => errors.push(FieldError::new(
            "new_password",
            "unchanged",
            "must differ from the current password",
        )),
        Ok(()) => {}
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(AppError::Validation(errors))
    }
}

/// Changes the signed-in admin's password. The current password must be given (argon2, on the
/// server's bounded hashers); a wrong one is refused with 403 `wrong_password` and counts as a
/// failed sign-in of the admin's email and network (429 past the limit). Every other session of
/// the admin ends; the calling one stays. Audited (`auth.password_changed`, without a secret).
#[utoipa::path(post, path = "/v1/auth/password", tag = "auth", security(("session" = [])),
    request_body = ChangePasswordRequest,
    responses((status = 204, description = "changed; the admin's other sessions have ended"),
              (status = 401, body = keyward_core::api::Problem),
              (status = 403, description = "`wrong_password`", body = keyward_core::api::Problem),
              (status = 409, description = "`password_changed` meanwhile", body = keyward_core::api::Problem),
              (status = 422, body = keyward_core::api::Problem),
              (status = 429, body = keyward_core::api::Problem),
              (status = 503, body = keyward_core::api::Problem)))]
pub async fn change_password(
    State(state): State<AppState>,
    session: AdminSession,
    AppJson(req): AppJson<ChangePasswordRequest>,
) -> AppResult<StatusCode> {
    check(&req)?;
    // Wrong current passwords count with failed sign-ins of the admin's email and network.
    let places = state
        .login_throttle
        .take(&session.email, session.actor.client_ip)
        .await?;
    let admin = match store::admins::find_by_id(&mut *state.pool.acquire().await?, session.admin_id)
        .await
    {
        Ok(Some(admin)) => admin,
        Ok(None) => {
            places.release().await;
            return Err(AppError::Unauthorized {
                code: "invalid_session",
                detail: "the session has expired or was signed out; sign in again".into(),
            });
        }
        Err(e) => {
            places.release().await;
            return Err(e.into());
        }
    };
    let (current, old_hash) = (
        SecretString::from(req.current_password),
        admin.password_hash.clone(),
    );
    let checked = state
        .hasher
        .run_for(session.org_id, move || verify_password(&current, &old_hash))
        .await;
    match checked {
        Ok(true) => places.succeeded().await,
        Ok(false) => {
            // The places stay taken: this window's failures.
            drop(places);
            let mut tx = state.pool.begin().await?;
            store::audit::append(
                &mut tx,
                &session.actor,
                AuditEvent::new("auth.password_change_failed", "admin", session.admin_id),
            )
            .await?;
            tx.commit().await?;
            return Err(AppError::Forbidden {
                code: "wrong_password",
                detail: "the current password is wrong".into(),
            });
        }
        Err(_) => {
            places.release().await;
            return Err(overloaded());
        }
    }

    let new = SecretString::from(req.new_password);
    let new_hash = state
        .hasher
        .run_for(session.org_id, move || hash_password(&new))
        .await
        .map_err(|_| overloaded())?;
    let mut tx = state.pool.begin().await?;
    // Only over the hash just checked: of two changes at once, one wins and the other is told.
    if !store::admins::replace_password_hash(
        &mut tx,
        session.admin_id,
        &admin.password_hash,
        &new_hash,
    )
    .await?
    {
        return Err(AppError::Conflict {
            code: "password_changed",
            detail: "the password was changed meanwhile; nothing was changed by this request"
                .into(),
        });
    }
    let ended =
        store::sessions::delete_for_admin(&mut tx, session.admin_id, Some(&session.token_hash))
            .await?;
    store::audit::append(
        &mut tx,
        &session.actor,
        AuditEvent::new("auth.password_changed", "admin", session.admin_id)
            .after(serde_json::json!({ "other_sessions_ended": ended })),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(admin = %session.admin_id, other_sessions_ended = ended, "password changed");
    Ok(StatusCode::NO_CONTENT)
}

/// Ends every session of the signed-in admin, the calling one included (a lost device's too).
/// Audited (`auth.logout_all`).
#[utoipa::path(post, path = "/v1/auth/logout-all", tag = "auth", security(("session" = [])),
    responses((status = 204, description = "every session of the admin has ended"),
              (status = 401, body = keyward_core::api::Problem)))]
pub async fn logout_all(
    State(state): State<AppState>,
    session: AdminSession,
) -> AppResult<StatusCode> {
    let mut tx = state.pool.begin().await?;
    let ended = store::sessions::delete_for_admin(&mut tx, session.admin_id, None).await?;
    store::audit::append(
        &mut tx,
        &session.actor,
        AuditEvent::new("auth.logout_all", "admin", session.admin_id)
            .after(serde_json::json!({ "sessions_ended": ended })),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(admin = %session.admin_id, sessions_ended = ended, "signed out everywhere");
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(current: &str, new: &str) -> ChangePasswordRequest {
        ChangePasswordRequest {
            current_password: current.into(),
            new_password: new.into(),
        }
    }

    fn fields(r: Result<(), AppError>) -> Vec<(String, String)> {
        match r {
            Err(AppError::Validation(errors)) => {
                errors.into_iter().map(|e| (e.field, e.code)).collect()
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn inputs_are_checked_field_by_field() {
        assert!(check(&req("old password", "a new password!")).is_ok());
        let f = |a: &str, b: &str| fields(check(&req(a, b)));
        let pair = |a: &str, b: &str| vec![(a.to_owned(), b.to_owned())];
        assert_eq!(
            f("", "a new password!"),
            pair("current_password", "out_of_range")
        );
        assert_eq!(f("old", "short"), pair("new_password", "weak_password"));
        assert_eq!(
            f("old", "            "),
            pair("new_password", "weak_password")
        );
        assert_eq!(
            f("the same password", "the same password"),
            pair("new_password", "unchanged")
        );
        assert_eq!(f("", "short").len(), 2);
        assert_eq!(
            f(&"x".repeat(PASSWORD_MAX_CHARS + 1), "a new password!"),
            pair("current_password", "out_of_range")
        );
    }
}
