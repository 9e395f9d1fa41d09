use chrono::{DateTime, Utc};
use keyward_core::api::webhooks::{KeyCreatedData, KeyRevokedData, WebhookEvent};
use keyward_core::api::{ApiKey, KeyStatusFilter, Quota, RateLimitRule};
use keyward_core::{AdminId, Environment, IpAllowList, KeyId, KeyStatus, OrgId, ScopeSet};
use sqlx::types::Json;
use sqlx::{PgConnection, Postgres};
use uuid::Uuid;

/// Channel on which key changes are announced to every node (payload: the key id).
pub const CHANGES_CHANNEL: &str = "keyward_key_changes";

#[derive(Debug, Clone)]
pub struct KeyRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub environment: String,
    pub secret_hash: String,
    pub scopes: Vec<String>,
    pub allowed_ips: Vec<String>,
    pub metadata: serde_json::Value,
    pub disabled: bool,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoke_reason: Option<String>,
    pub rotated_from: Option<Uuid>,
    pub replaced_by: Option<Uuid>,
    pub lineage_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub created_by: Option<Uuid>,
    pub updated_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub last_used_ip: Option<String>,
    /// The change sequence value of the row's last edit (what an offline edit is based on).
    pub seq: i64,
    /// The change sequence value taken when the key's last use moved into a new minute (0:
    /// never); a pull positions the key at the greater of the two.
    pub usage_seq: i64,
    pub tier: Option<String>,
    pub rate_limits: Option<Json<Vec<RateLimitRule>>>,
    pub quota: Option<Json<Quota>>,
}

/// `query_as!(KeyRow, ...)` for `SELECT <every KeyRow column> FROM api_keys <tail>`: the column
/// list is written once, and sqlx still checks the whole query when it compiles.
macro_rules! select_keys {
    ($tail:literal $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            KeyRow,
            r#"SELECT id, org_id, name, description, environment, secret_hash, scopes, allowed_ips,
                metadata, disabled, expires_at, revoked_at, revoke_reason, rotated_from, replaced_by,
                lineage_id, created_at, created_by, updated_at, last_used_at, last_used_ip, seq, usage_seq, tier,
                rate_limits AS "rate_limits: Json<Vec<RateLimitRule>>",
                quota AS "quota: Json<Quota>"
              FROM api_keys "# + $tail
            $(, $arg)*
        )
    };
}

impl KeyRow {
    /// Where the key stands in the change feed: its last edit or its last minute of use.
    pub fn change_seq(&self) -> i64 {
        self.seq.max(self.usage_seq)
    }

    pub fn status(&self, now: DateTime<Utc>) -> KeyStatus {
        KeyStatus::at(now, self.disabled, self.revoked_at, self.expires_at)
    }

    /// The admin view: never the hash.
    pub fn to_api(&self, now: DateTime<Utc>) -> ApiKey {
        let id = KeyId::from_uuid(self.id);
        let environment: Environment = self.environment.parse().unwrap_or_default();
        ApiKey {
            id,
            org_id: OrgId::from_uuid(self.org_id),
            name: self.name.clone(),
            description: self.description.clone(),
            environment,
            prefix: format!("kw_{}_{}_", environment.as_str(), id.to_base62()),
            status: self.status(now),
            scopes: ScopeSet::parse(&self.scopes).unwrap_or_default(),
            allowed_ips: IpAllowList::parse(&self.allowed_ips).unwrap_or_default(),
            metadata: self.metadata.clone(),
            disabled: self.disabled,
            expires_at: self.expires_at,
            revoked_at: self.revoked_at,
            revoke_reason: self.revoke_reason.clone(),
            rotated_from: self.rotated_from.map(KeyId::from_uuid),
            replaced_by: self.replaced_by.map(KeyId::from_uuid),
            lineage_id: KeyId::from_uuid(self.lineage_id),
            created_at: self.created_at,
            created_by: self.created_by.map(AdminId::from_uuid),
            updated_at: self.updated_at,
            last_used_at: self.last_used_at,
            last_used_ip: self.last_used_ip.clone(),
            tier: self.tier.clone(),
            rate_limits: self.rate_limits.as_ref().map(|r| r.0.clone()),
            quota: self.quota.as_ref().map(|q| q.0.clone()),
        }
    }
}

/// What verification loads: the key, its tier's settings and the stored quota counts of its
/// lineage for the current UTC day and month.
#[derive(Debug)]
pub struct VerifyRow {
    pub key: KeyRow,
    pub tier_rate_limits: Option<Json<Vec<RateLimitRule>>>,
    pub tier_quota: Option<Json<Quota>>,
    pub tier_soft_threshold: Option<f64>,
    pub used_today: Option<i64>,
    pub used_this_month: Option<i64>,
    /// The fast verifier (`keyward_core::verifier`), when one was stored.
    pub verifier: Option<Vec<u8>>,
}

pub async fn find_for_verify<'e, E>(ex: E, id: KeyId) -> Result<Option<VerifyRow>, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = Postgres>,
{
    let row = sqlx::query!(
        r#"SELECT k.id, k.org_id, k.name, k.description, k.environment, k.secret_hash, k.scopes,
            k.allowed_ips, k.metadata, k.disabled, k.expires_at, k.revoked_at, k.revoke_reason,
            k.rotated_from, k.replaced_by, k.lineage_id, k.created_at, k.created_by, k.updated_at,
            k.last_used_at, k.last_used_ip, k.seq, k.usage_seq, k.tier,
            k.rate_limits AS "rate_limits: Json<Vec<RateLimitRule>>",
            k.quota AS "quota: Json<Quota>",
            t.rate_limits AS "tier_rate_limits?: Json<Vec<RateLimitRule>>",
            t.quota AS "tier_quota?: Json<Quota>",
            t.soft_threshold AS "tier_soft_threshold?",
            (SELECT used FROM quota_usage q WHERE q.lineage_id = k.lineage_id AND q.period = 'day'
                AND q.period_start = (now() AT TIME ZONE 'UTC')::date) AS used_today,
            (SELECT used FROM quota_usage q WHERE q.lineage_id = k.lineage_id AND q.period = 'month'
                AND q.period_start = date_trunc('month', now() AT TIME ZONE 'UTC')::date) AS used_this_month,
            k.verifier
         FROM api_keys k LEFT JOIN tiers t ON t.org_id = k.org_id AND t.name = k.tier
         WHERE k.id = $1"#,
        id.as_uuid(),
    )
    .fetch_optional(ex)
    .await?;
    Ok(row.map(|r| VerifyRow {
        key: KeyRow {
            id: r.id,
            org_id: r.org_id,
            name: r.name,
            description: r.description,
            environment: r.environment,
            secret_hash: r.secret_hash,
            scopes: r.scopes,
            allowed_ips: r.allowed_ips,
            metadata: r.metadata,
            disabled: r.disabled,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            revoke_reason: r.revoke_reason,
            rotated_from: r.rotated_from,
            replaced_by: r.replaced_by,
            lineage_id: r.lineage_id,
            created_at: r.created_at,
            created_by: r.created_by,
            updated_at: r.updated_at,
            last_used_at: r.last_used_at,
            last_used_ip: r.last_used_ip,
            seq: r.seq,
            usage_seq: r.usage_seq,
            tier: r.tier,
            rate_limits: r.rate_limits,
            quota: r.quota,
        },
        tier_rate_limits: r.tier_rate_limits,
        tier_quota: r.tier_quota,
        tier_soft_threshold: r.tier_soft_threshold,
        used_today: r.used_today,
        used_this_month: r.used_this_month,
        verifier: r.verifier,
    }))
}

/// For verification: any organisation.
pub async fn find_by_id<'e, E>(ex: E, id: KeyId) -> Result<Option<KeyRow>, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = Postgres>,
{
    select_keys!("WHERE id = $1", id.as_uuid())
        .fetch_optional(ex)
        .await
}

/// A key of `org`, locked for the rest of the transaction when `for_update`.
pub async fn find_in_org(
    conn: &mut PgConnection,
    org: OrgId,
    id: KeyId,
    for_update: bool,
) -> Result<Option<KeyRow>, sqlx::Error> {
    if for_update {
        select_keys!(
            "WHERE id = $1 AND org_id = $2 FOR UPDATE",
            id.as_uuid(),
            org.as_uuid()
        )
        .fetch_optional(conn)
        .await
    } else {
        select_keys!("WHERE id = $1 AND org_id = $2", id.as_uuid(), org.as_uuid())
            .fetch_optional(conn)
            .await
    }
}

/// Stores a key's fast verifier (no change to its `seq`: nothing to sync).
pub async fn set_verifier<'e, E>(ex: E, id: KeyId, verifier: &[u8]) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'e, Database = Postgres>,
{
    sqlx::query!(
        "UPDATE api_keys SET verifier = $2 WHERE id = $1",
        id.as_uuid(),
        verifier,
    )
    .execute(ex)
    .await?;
    Ok(())
}

/// Keys of the organisation that are not revoked.
pub async fn count_unrevoked(conn: &mut PgConnection, org: OrgId) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM api_keys WHERE org_id = $1 AND revoked_at IS NULL"#,
        org.as_uuid(),
    )
    .fetch_one(conn)
    .await
}

pub async fn insert(conn: &mut PgConnection, k: &KeyRow) -> Result<(), sqlx::Error> {
    super::audit::lock_head(conn, OrgId::from_uuid(k.org_id)).await?;
    sqlx::query!(
        "INSERT INTO api_keys (id, org_id, name, description, environment, secret_hash, scopes, allowed_ips, metadata,
            disabled, expires_at, revoked_at, revoke_reason, rotated_from, replaced_by, lineage_id, created_at,
            created_by, updated_at, tier, rate_limits, quota)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)",
        k.id,
        k.org_id,
        k.name,
        k.description,
        k.environment,
        k.secret_hash,
        &k.scopes,
        &k.allowed_ips,
        k.metadata,
        k.disabled,
        k.expires_at,
        k.revoked_at,
        k.revoke_reason,
        k.rotated_from,
        k.replaced_by,
        k.lineage_id,
        k.created_at,
        k.created_by,
        k.updated_at,
        k.tier,
        k.rate_limits as _,
        k.quota as _,
    )
    .execute(&mut *conn)
    .await?;
    notify(&mut *conn, KeyId::from_uuid(k.id)).await?;
    // Every key is created here (API, sync push, a rotation's successor): announced once.
    let event = WebhookEvent::KeyCreated(KeyCreatedData {
        key_id: KeyId::from_uuid(k.id),
        name: k.name.clone(),
        environment: k.environment.clone(),
        created_at: k.created_at,
        expires_at: k.expires_at,
        rotated_from: k.rotated_from.map(KeyId::from_uuid),
    });
    crate::store::outbox::enqueue(conn, OrgId::from_uuid(k.org_id), &event).await?;
    Ok(())
}

/// Writes back every field an admin can change.
pub async fn update(conn: &mut PgConnection, k: &KeyRow) -> Result<(), sqlx::Error> {
    super::audit::lock_head(conn, OrgId::from_uuid(k.org_id)).await?;
    sqlx::query!(
        "UPDATE api_keys SET name = $2, description = $3, scopes = $4, allowed_ips = $5, metadata = $6,
            disabled = $7, expires_at = $8, revoked_at = $9, revoke_reason = $10, replaced_by = $11, updated_at = $12,
            tier = $13, rate_limits = $14, quota = $15, seq = nextval('change_seq')
          WHERE id = $1",
        k.id,
        k.name,
        k.description,
        &k.scopes,
        &k.allowed_ips,
        k.metadata,
        k.disabled,
        k.expires_at,
        k.revoked_at,
        k.revoke_reason,
        k.replaced_by,
        k.updated_at,
        k.tier,
        k.rate_limits as _,
        k.quota as _,
    )
    .execute(&mut *conn)
    .await?;
    notify(&mut *conn, KeyId::from_uuid(k.id)).await?;
    // Every change is written here: a revocation in effect now is announced once.
    announce_revoked(conn, k).await
}

/// Called with every key write (inside its transaction): a revocation in effect as of the
/// write is announced once (`key.revoked`), whatever made it (an admin, a desktop's push, a
/// policy). One that takes effect later is the due sweep's.
pub async fn announce_revoked(conn: &mut PgConnection, k: &KeyRow) -> Result<(), sqlx::Error> {
    let Some(revoked_at) = k.revoked_at.filter(|r| *r <= k.updated_at) else {
        return Ok(());
    };
    let fresh = sqlx::query!(
        "INSERT INTO key_notices (key_id, kind, created_at) VALUES ($1, 'revoked', $2)
         ON CONFLICT DO NOTHING",
        k.id,
        k.updated_at,
    )
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if fresh {
        let event = WebhookEvent::KeyRevoked(KeyRevokedData {
            key_id: KeyId::from_uuid(k.id),
            name: k.name.clone(),
            revoked_at,
            reason: k.revoke_reason.clone(),
            replaced_by: k.replaced_by.map(KeyId::from_uuid),
        });
        crate::store::outbox::enqueue(conn, OrgId::from_uuid(k.org_id), &event).await?;
    }
    Ok(())
}

/// Tells every node (this one included) to drop its cached copy; delivered at commit.
pub async fn notify(conn: &mut PgConnection, id: KeyId) -> Result<(), sqlx::Error> {
    sqlx::query!("SELECT pg_notify($1, $2)", CHANGES_CHANNEL, id.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

/// Keys of `org` edited or newly used after `since`, in change order (see
/// [`KeyRow::change_seq`]).
pub async fn changed_since(
    conn: &mut PgConnection,
    org: OrgId,
    since: i64,
    limit: u32,
) -> Result<Vec<KeyRow>, sqlx::Error> {
    select_keys!(
        "WHERE org_id = $1 AND (seq > $2 OR usage_seq > $2)
         ORDER BY greatest(seq, usage_seq) LIMIT $3",
        org.as_uuid(),
        since,
        i64::from(limit),
    )
    .fetch_all(conn)
    .await
}

/// A page of `org`'s keys, newest first; `after` is the last id of the previous page.
pub async fn list(
    conn: &mut PgConnection,
    org: OrgId,
    filter: KeyStatusFilter,
    after: Option<KeyId>,
    limit: u32,
) -> Result<Vec<KeyRow>, sqlx::Error> {
    // The status rule mirrors KeyStatus::at: revoked outranks expired outranks disabled.
    let status = match filter {
        KeyStatusFilter::All => "all",
        KeyStatusFilter::Revoked => "revoked",
        KeyStatusFilter::Expired => "expired",
        KeyStatusFilter::Disabled => "disabled",
        KeyStatusFilter::Active => "active",
    };
    select_keys!(
        "WHERE org_id = $1 AND ($2::uuid IS NULL OR id < $2)
           AND CASE
               WHEN revoked_at IS NOT NULL AND revoked_at <= now() THEN 'revoked'
               WHEN expires_at IS NOT NULL AND expires_at <= now() THEN 'expired'
               WHEN disabled THEN 'disabled'
               ELSE 'active'
           END = ANY(CASE WHEN $3 = 'all'
               THEN ARRAY['revoked', 'expired', 'disabled', 'active'] ELSE ARRAY[$3] END)
         ORDER BY id DESC LIMIT $4",
        org.as_uuid(),
        after.map(KeyId::into_uuid),
        status,
        i64::from(limit),
    )
    .fetch_all(conn)
    .await
}
