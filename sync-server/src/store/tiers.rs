use chrono::{DateTime, Utc};
use keyward_core::OrgId;
use keyward_core::api::{Quota, RateLimitRule, Tier};
use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;

use super::keys::CHANGES_CHANNEL;

#[derive(Debug, Clone)]
pub struct TierRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    pub rate_limits: Json<Vec<RateLimitRule>>,
    pub quota: Option<Json<Quota>>,
    pub soft_threshold: f64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Keys naming the tier.
    pub keys: i64,
}

impl TierRow {
    pub fn to_api(&self) -> Tier {
        Tier {
            name: self.name.clone(),
            rate_limits: self.rate_limits.0.clone(),
            quota: self.quota.as_ref().map(|q| q.0.clone()),
            soft_threshold: self.soft_threshold,
            keys: self.keys,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// `query_as!(TierRow, ...)` for `SELECT <every TierRow column> FROM tiers t <tail>`.
macro_rules! select_tiers {
    ($tail:literal $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            TierRow,
            r#"SELECT t.id, t.org_id, t.name,
                t.rate_limits AS "rate_limits: Json<Vec<RateLimitRule>>",
                t.quota AS "quota: Json<Quota>", t.soft_threshold, t.created_at, t.updated_at,
                (SELECT count(*) FROM api_keys k WHERE k.org_id = t.org_id AND k.tier = t.name) AS "keys!"
               FROM tiers t "# + $tail
            $(, $arg)*
        )
    };
}

pub async fn list(conn: &mut PgConnection, org: OrgId) -> Result<Vec<TierRow>, sqlx::Error> {
    select_tiers!("WHERE t.org_id = $1 ORDER BY t.name", org.as_uuid())
        .fetch_all(conn)
        .await
}

/// One tier; locked for the rest of the transaction when `for_update`.
pub async fn find(
    conn: &mut PgConnection,
    org: OrgId,
    name: &str,
    for_update: bool,
) -> Result<Option<TierRow>, sqlx::Error> {
    if for_update {
        select_tiers!(
            "WHERE t.org_id = $1 AND t.name = $2 FOR UPDATE OF t",
            org.as_uuid(),
            name,
        )
        .fetch_optional(conn)
        .await
    } else {
        select_tiers!("WHERE t.org_id = $1 AND t.name = $2", org.as_uuid(), name)
            .fetch_optional(conn)
            .await
    }
}

pub async fn exists(conn: &mut PgConnection, org: OrgId, name: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM tiers WHERE org_id = $1 AND name = $2) AS "exists!""#,
        org.as_uuid(),
        name,
    )
    .fetch_one(conn)
    .await
}

pub async fn insert(conn: &mut PgConnection, t: &TierRow) -> Result<(), sqlx::Error> {
    super::audit::lock_head(conn, OrgId::from_uuid(t.org_id)).await?;
    sqlx::query!(
        "INSERT INTO tiers (id, org_id, name, rate_limits, quota, soft_threshold, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        t.id,
        t.org_id,
        t.name,
        t.rate_limits as _,
        t.quota as _,
        t.soft_threshold,
        t.created_at,
        t.updated_at,
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn update(conn: &mut PgConnection, t: &TierRow) -> Result<(), sqlx::Error> {
    super::audit::lock_head(conn, OrgId::from_uuid(t.org_id)).await?;
    sqlx::query!(
        "UPDATE tiers SET rate_limits = $2, quota = $3, soft_threshold = $4, updated_at = $5,
            seq = nextval('change_seq') WHERE id = $1",
        t.id,
        t.rate_limits as _,
        t.quota as _,
        t.soft_threshold,
        t.updated_at,
    )
    .execute(&mut *conn)
    .await?;
    notify(conn, OrgId::from_uuid(t.org_id), &t.name).await
}

pub async fn delete(conn: &mut PgConnection, t: &TierRow) -> Result<(), sqlx::Error> {
    super::audit::lock_head(conn, OrgId::from_uuid(t.org_id)).await?;
    sqlx::query!("DELETE FROM tiers WHERE id = $1", t.id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Tells every node that the keys of a tier have new rules (payload `tier:<org>:<name>`).
async fn notify(conn: &mut PgConnection, org: OrgId, name: &str) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "SELECT pg_notify($1, $2)",
        CHANGES_CHANNEL,
        format!("tier:{org}:{name}"),
    )
    .execute(conn)
    .await?;
    Ok(())
}
