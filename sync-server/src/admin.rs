//! `keyward-server admin create`: the first admin of an organisation, from the command line.

use std::sync::Arc;

use keyward_core::api::{FieldError, Role};
use keyward_core::audit_head::HeadSigner;
use keyward_core::hash::{check_password_policy, hash_password};
use keyward_core::{AdminId, validate};
use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;

use crate::audit::{Actor, AuditEvent};
use crate::store;

#[derive(Debug, thiserror::Error)]
pub enum CreateAdminError {
    #[error("{}: {}", .0.field, .0.message)]
    Invalid(FieldError),
    #[error("an admin with this email already exists")]
    DuplicateEmail,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Creates the organisation when absent; its first admin is `owner` unless `role` says otherwise,
/// later ones `admin`. Nothing is written when anything is refused. The audit chain head it
/// leaves is unsigned (the next signed append signs it): tools with the server's configuration
/// use [`create_signed`].
pub async fn create(
    pool: &PgPool,
    org_name: &str,
    email: &str,
    role: Option<Role>,
    password: &SecretString,
) -> Result<AdminId, CreateAdminError> {
    create_signed(pool, None, org_name, email, role, password).await
}

/// [`create`], signing the organisation's audit chain head with `signer`.
pub async fn create_signed(
    pool: &PgPool,
    signer: Option<Arc<HeadSigner>>,
    org_name: &str,
    email: &str,
    role: Option<Role>,
    password: &SecretString,
) -> Result<AdminId, CreateAdminError> {
    let org_name = validate::name("org", org_name).map_err(CreateAdminError::Invalid)?;
    let email = validate::email("email", email).map_err(CreateAdminError::Invalid)?;
    check_password_policy(password.expose_secret()).map_err(|e| {
        CreateAdminError::Invalid(FieldError::new("password", "weak_password", e.to_string()))
    })?;
    let password = password.clone();
    let hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| sqlx::Error::Protocol(format!("hashing failed: {e}")))?;

    let mut tx = pool.begin().await?;
    if store::admins::find_by_email(&mut tx, &email)
        .await?
        .is_some()
    {
        return Err(CreateAdminError::DuplicateEmail);
    }
    let (org_id, _) = store::orgs::get_or_create(&mut tx, &org_name).await?;
    let first = store::admins::count_in_org(&mut tx, org_id).await? == 0;
    let role = role.unwrap_or(if first { Role::Owner } else { Role::Admin });
    let id = AdminId::new();
    store::admins::insert(&mut tx, id, org_id, &email, &hash, role)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(db) if db.constraint() == Some("admins_email_key") => {
                CreateAdminError::DuplicateEmail
            }
            _ => CreateAdminError::Database(e),
        })?;
    let actor = Actor {
        org_id,
        admin_id: None,
        email: Some("cli".into()),
        client_ip: None,
        request_id: None,
        signer,
    };
    let event = AuditEvent::new("admin.create", "admin", id)
        .after(serde_json::json!({"id": id, "email": email, "role": role, "org_id": org_id}));
    store::audit::append(&mut tx, &actor, event).await?;
    tx.commit().await?;
    Ok(id)
}
