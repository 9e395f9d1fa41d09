use keyward_core::OrgId;
use sqlx::PgConnection;

/// The organisation's id, creating it when absent. Returns whether it was created.
pub async fn get_or_create(
    conn: &mut PgConnection,
    name: &str,
) -> Result<(OrgId, bool), sqlx::Error> {
    let id = OrgId::new();
    let inserted: Option<(uuid::Uuid,)> = sqlx::query_as(
        "INSERT INTO orgs (id, name) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING RETURNING id",
    )
    .bind(id.as_uuid())
    .bind(name)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some((id,)) = inserted {
        return Ok((OrgId::from_uuid(id), true));
    }
    let (id,): (uuid::Uuid,) = sqlx::query_as("SELECT id FROM orgs WHERE name = $1")
        .bind(name)
        .fetch_one(conn)
        .await?;
    Ok((OrgId::from_uuid(id), false))
}

pub async fn all_ids(conn: &mut PgConnection) -> Result<Vec<OrgId>, sqlx::Error> {
    let rows: Vec<(uuid::Uuid,)> = sqlx::query_as("SELECT id FROM orgs ORDER BY id")
        .fetch_all(conn)
        .await?;
    Ok(rows.into_iter().map(|(id,)| OrgId::from_uuid(id)).collect())
}
