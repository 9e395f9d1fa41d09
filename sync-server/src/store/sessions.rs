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
    sqlx::query!(
        "INSERT INTO sessions (token_hash, admin_id, expires_at, client_ip) VALUES ($1, $2, $3, $4)",
        &token_hash[..],
        admin.as_uuid(),
        expires_at,
        client_ip,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A session within its absolute lifetime, with its admin.
#[derive(Debug, Clone)]
pub struct LiveSession {
    pub admin: AdminRow,
    /// Seconds since the session was last recorded as used, by the database's clock.
    pub idle_secs: f64,
}

/// The admin behind a session that has not reached its absolute expiry (the idle timeout is the
/// caller's to check against `idle_secs`).
pub async fn find_admin(
    conn: &mut PgConnection,
    token_hash: &[u8; 32],
) -> Result<Option<LiveSession>, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT a.id, a.org_id, a.email, a.password_hash, a.role,
                extract(epoch FROM now() - s.last_seen_at)::float8 AS "idle_secs!"
           FROM sessions s JOIN admins a ON a.id = s.admin_id
          WHERE s.token_hash = $1 AND s.expires_at > now()"#,
        &token_hash[..],
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| LiveSession {
        admin: AdminRow {
            id: r.id,
            org_id: r.org_id,
            email: r.email,
            password_hash: r.password_hash,
            role: r.role,
        },
        idle_secs: r.idle_secs,
    }))
}

/// Records that the session was used now.
pub async fn touch(conn: &mut PgConnection, token_hash: &[u8; 32]) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE sessions SET last_seen_at = now() WHERE token_hash = $1",
        &token_hash[..]
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Ends every session of `admin` but `keep` (all of them without one); returns how many ended.
pub async fn delete_for_admin(
    conn: &mut PgConnection,
    admin: AdminId,
    keep: Option<&[u8; 32]>,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "DELETE FROM sessions WHERE admin_id = $1 AND ($2::bytea IS NULL OR token_hash <> $2)",
        admin.as_uuid(),
        keep.map(|k| &k[..]),
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

pub async fn delete(conn: &mut PgConnection, token_hash: &[u8; 32]) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "DELETE FROM sessions WHERE token_hash = $1",
        &token_hash[..]
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Deletes sessions past their absolute expiry or idle for longer than `idle_secs`.
pub async fn delete_expired(conn: &mut PgConnection, idle_secs: u64) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query!(
        "DELETE FROM sessions
          WHERE expires_at <= now() OR last_seen_at < now() - make_interval(secs => $1)",
        idle_secs as f64,
    )
    .execute(conn)
    .await?
    .rows_affected())
}
