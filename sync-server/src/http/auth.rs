//! `POST /v1/auth/login`, `POST /v1/auth/logout`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::Duration;
use keyward_core::api::{AdminInfo, LoginRequest, LoginResponse};
use keyward_core::hash::{dummy_password_hash, verify_password};
use keyward_core::{AdminId, OrgId, validate};
use secrecy::SecretString;

use crate::audit::{Actor, AuditEvent};
use crate::error::{AppError, AppResult};
use crate::http::extract::{AppJson, ClientIp, RequestId};
use crate::session::{self, AdminSession};
use crate::state::AppState;
use crate::store;

const PASSWORD_MAX_CHARS: usize = 1024;

fn invalid_credentials() -> AppError {
    AppError::Unauthorized {
        code: "invalid_credentials",
        detail: "the email or the password is wrong".into(),
    }
}

/// Signs an admin in. An unknown email and a wrong password get the same answer after the same
/// work (argon2 against a dummy hash); repeated failures per email or address are throttled.
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 401, body = keyward_core::api::Problem),
              (status = 422, body = keyward_core::api::Problem), (status = 429, body = keyward_core::api::Problem)))]
pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    RequestId(request_id): RequestId,
    AppJson(req): AppJson<LoginRequest>,
) -> AppResult<Json<LoginResponse>> {
    let email = validate::email("email", &req.email)?;
    if req.password.is_empty() || req.password.chars().count() > PASSWORD_MAX_CHARS {
        return Err(AppError::field(
            "password",
            "out_of_range",
            format!("must be 1–{PASSWORD_MAX_CHARS} characters"),
        ));
    }
    // The check takes its places in the sign-in windows *before* argon2 runs, atomically and
    // where every node sees them (see `login_throttle`).
    let places = state.login_throttle.take(&email, ip).await?;
    let admin = match store::admins::find_by_email(&mut *state.pool.acquire().await?, &email).await
    {
        Ok(admin) => admin,
        Err(e) => {
            places.release().await;
            return Err(e.into());
        }
    };
    let hash = admin.as_ref().map_or_else(
        || dummy_password_hash().to_owned(),
        |a| a.password_hash.clone(),
    );
    let password = SecretString::from(req.password);
    let admission = match &admin {
        Some(a) => state.hasher.admit_for(OrgId::from_uuid(a.org_id)),
        None => state.hasher.admit(),
    };
    let checked = match admission {
        Ok(admission) => admission
            .run(move || verify_password(&password, &hash))
            .await
            .map_err(|_| overloaded()),
        Err(_) => Err(overloaded()),
    };
    let ok = match checked {
        Ok(ok) => ok,
        Err(e) => {
            // Not checked: the places do not count.
            places.release().await;
            return Err(e);
        }
    };

    let admin = match admin {
        Some(admin) if ok => admin,
        known => {
            // The places taken above stay taken: they are this window's failures.
            drop(places);
            if let Some(known) = known {
                // Audited off the response path, so a known email answers no slower than an
                // unknown one.
                let actor = Actor {
                    org_id: OrgId::from_uuid(known.org_id),
                    admin_id: Some(AdminId::from_uuid(known.id)),
                    email: Some(known.email),
                    client_ip: ip,
                    request_id,
                    signer: state.audit_signer.clone(),
                };
                let pool = state.pool.clone();
                tokio::spawn(async move {
                    let event = AuditEvent::new("auth.login_failed", "admin", known.id);
                    if let Err(e) = append_now(&pool, &actor, event).await {
                        tracing::warn!(error = %e, "could not audit a failed sign-in");
                    }
                });
            }
            return Err(invalid_credentials());
        }
    };
    places.succeeded().await;

    let token = session::new_token();
    let ttl = Duration::from_std(state.config.sessions.ttl).unwrap_or(Duration::MAX);
    let expires_at = store::now_micros() + ttl;
    let (admin_id, org_id) = (AdminId::from_uuid(admin.id), OrgId::from_uuid(admin.org_id));
    let actor = Actor {
        org_id,
        admin_id: Some(admin_id),
        email: Some(admin.email.clone()),
        client_ip: ip,
        request_id,
        signer: state.audit_signer.clone(),
    };
    let mut tx = state.pool.begin().await?;
    store::sessions::insert(
        &mut tx,
        &session::token_hash(&token),
        admin_id,
        expires_at,
        ip.map(|i| i.to_string()),
    )
    .await?;
    store::audit::append(
        &mut tx,
        &actor,
        AuditEvent::new("auth.login", "admin", admin_id),
    )
    .await?;
    let org_name = store::orgs::name(&mut tx, org_id).await?;
    tx.commit().await?;
    Ok(Json(LoginResponse {
        token,
        expires_at,
        admin: AdminInfo {
            id: admin_id,
            email: admin.email.clone(),
            role: admin.role(),
            org_id,
            org_name,
        },
    }))
}

async fn append_now(
    pool: &sqlx::PgPool,
    actor: &Actor,
    event: AuditEvent,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    store::audit::append(&mut tx, actor, event).await?;
    tx.commit().await
}

pub(crate) fn overloaded() -> AppError {
    AppError::Unavailable {
        code: "overloaded",
        detail: "the server is busy hashing; retry shortly".into(),
        retry_after_secs: Some(1),
    }
}

/// Ends the session of the token presented.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth", security(("session" = [])),
    responses((status = 204), (status = 401, body = keyward_core::api::Problem)))]
pub async fn logout(State(state): State<AppState>, session: AdminSession) -> AppResult<StatusCode> {
    let mut tx = state.pool.begin().await?;
    store::sessions::delete(&mut tx, &session.token_hash).await?;
    store::audit::append(
        &mut tx,
        &session.actor,
        AuditEvent::new("auth.logout", "admin", session.admin_id),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
