use keyward_core::OrgId;
use sqlx::PgConnection;

/// The organisation's id, creating it when absent. Returns whether it was created.
pub async fn get_or_create(
    conn: &mut PgConnection,
    name: &str,
) -> Result<(OrgId, bool), sqlx::Error> {
    let id = OrgId::new();
    let inserted = sqlx::query_scalar!(
        "INSERT INTO orgs (id, name) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING RETURNING id",
        id.as_uuid(),
        name,
    )
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(id) = inserted {
        return Ok((OrgId::from_uuid(id), true));
    }
    let id = sqlx::query_scalar!("SELECT id FROM orgs WHERE name = $1", name)
        .fetch_one(conn)
        .await?;
    Ok((OrgId::from_uuid(id), false))
}

pub async fn all_ids(conn: &mut PgConnection) -> Result<Vec<OrgId>, sqlx::Error> {
    let ids = sqlx::query_scalar!("SELECT id FROM orgs ORDER BY id")
        .fetch_all(conn)
        .await?;
    Ok(ids.into_iter().map(OrgId::from_uuid).collect())
}

/// The organisation's name (empty if it is gone).
pub async fn name(conn: &mut PgConnection, id: OrgId) -> Result<String, sqlx::Error> {
    let name = sqlx::query_scalar!("SELECT name FROM orgs WHERE id = $1", id.as_uuid())
        .fetch_optional(conn)
        .await?;
    Ok(name.unwrap_or_default())
}
