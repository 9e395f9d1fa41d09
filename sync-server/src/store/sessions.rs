use chrono::{DateTime, Utc};
use keyward_core::AdminId;
use sqlx::PgConnection;

use super::admins::AdminRow;

pub async fn insert(
    conn: &mut PgConnection,
    token_hash: &[u8; 32],
    admin: AdminId,
    expires_at: DateTime<Utc>,
    client_ip: Option<String>,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO sessions (token_hash, admin_id, expires_at, client_ip) VALUES ($1, $2, $3, $4)")
        .bind(&token_hash[..])
        .bind(admin.as_uuid())
        .bind(expires_at)
        .bind(client_ip)
        .execute(conn)
        .await?;
    Ok(())
}

/// The admin behind a live session.
pub async fn find_admin(
    conn: &mut PgConnection,
    token_hash: &[u8; 32],
) -> Result<Option<AdminRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT a.id, a.org_id, a.email, a.password_hash, a.role
           FROM sessions s JOIN admins a ON a.id = s.admin_id
          WHERE s.token_hash = $1 AND s.expires_at > now()",
    )
    .bind(&token_hash[..])
    .fetch_optional(conn)
    .await
}

pub async fn delete(conn: &mut PgConnection, token_hash: &[u8; 32]) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
        .bind(&token_hash[..])
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

pub async fn delete_expired(conn: &mut PgConnection) -> Result<u64, sqlx::Error> {
    Ok(
        sqlx::query("DELETE FROM sessions WHERE expires_at <= now()")
            .execute(conn)
            .await?
            .rows_affected(),
    )
}
