use keyward_core::api::Role;
use keyward_core::{AdminId, OrgId};
use sqlx::PgConnection;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct AdminRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub email: String,
    pub password_hash: String,
    pub role: String,
}

impl AdminRow {
    pub fn role(&self) -> Role {
        // The column's CHECK constraint admits only the three roles; read-only is the safe default.
        self.role.parse().unwrap_or(Role::Viewer)
    }
}

pub async fn find_by_email(
    conn: &mut PgConnection,
    email: &str,
) -> Result<Option<AdminRow>, sqlx::Error> {
    sqlx::query_as!(
        AdminRow,
        "SELECT id, org_id, email, password_hash, role FROM admins WHERE email = $1",
        email,
    )
    .fetch_optional(conn)
    .await
}

pub async fn count_in_org(conn: &mut PgConnection, org: OrgId) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM admins WHERE org_id = $1"#,
        org.as_uuid(),
    )
    .fetch_one(conn)
    .await
}

pub async fn insert(
    conn: &mut PgConnection,
    id: AdminId,
    org: OrgId,
    email: &str,
    password_hash: &str,
    role: Role,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO admins (id, org_id, email, password_hash, role) VALUES ($1, $2, $3, $4, $5)",
        id.as_uuid(),
        org.as_uuid(),
        email,
        password_hash,
        role.as_str(),
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Replaces the admin's password hash if it is still `old_hash` (a concurrent change wins
/// otherwise); whether it was replaced.
pub async fn replace_password_hash(
    conn: &mut PgConnection,
    id: AdminId,
    old_hash: &str,
    new_hash: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "UPDATE admins SET password_hash = $3 WHERE id = $1 AND password_hash = $2",
        id.as_uuid(),
        old_hash,
        new_hash,
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn find_by_id(
    conn: &mut PgConnection,
    id: AdminId,
) -> Result<Option<AdminRow>, sqlx::Error> {
    sqlx::query_as!(
        AdminRow,
        "SELECT id, org_id, email, password_hash, role FROM admins WHERE id = $1",
        id.as_uuid(),
    )
    .fetch_optional(conn)
    .await
}
