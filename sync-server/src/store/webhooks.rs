//! Webhook endpoints, the delivery outbox and the attempt log. The signing secret is read only by
//! [`claim_due`] (for the worker, as ciphertext) and never by the admin queries.

use chrono::{DateTime, Utc};
use keyward_core::OrgId;
use keyward_core::api::{DeliveryStatus, Webhook, WebhookAttempt, WebhookDelivery};
use sqlx::PgConnection;
use uuid::Uuid;

/// An endpoint as the admin API shows it: no secret.
#[derive(Debug, Clone)]
pub struct EndpointRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub url: String,
    pub events: Vec<String>,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
}

impl EndpointRow {
    pub fn to_api(&self) -> Webhook {
        Webhook {
            id: self.id,
            url: self.url.clone(),
            events: self.events.clone(),
            enabled: self.enabled,
            created_at: self.created_at,
        }
    }
}

/// An encrypted signing secret.
#[derive(Debug, Clone)]
pub struct SealedSecret {
    /// `config` or `database`: which key encrypted it.
    pub key: &'static str,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

pub async fn list(conn: &mut PgConnection, org: OrgId) -> Result<Vec<EndpointRow>, sqlx::Error> {
    sqlx::query_as!(
        EndpointRow,
        "SELECT id, org_id, url, events, enabled, created_at FROM webhook_endpoints
         WHERE org_id = $1 ORDER BY created_at, id",
        org.as_uuid(),
    )
    .fetch_all(conn)
    .await
}

pub async fn find(
    conn: &mut PgConnection,
    org: OrgId,
    id: Uuid,
) -> Result<Option<EndpointRow>, sqlx::Error> {
    sqlx::query_as!(
        EndpointRow,
        "SELECT id, org_id, url, events, enabled, created_at FROM webhook_endpoints
         WHERE org_id = $1 AND id = $2",
        org.as_uuid(),
        id,
    )
    .fetch_optional(conn)
    .await
}

pub async fn count(conn: &mut PgConnection, org: OrgId) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM webhook_endpoints WHERE org_id = $1"#,
        org.as_uuid(),
    )
    .fetch_one(conn)
    .await
}

pub async fn insert(
    conn: &mut PgConnection,
    e: &EndpointRow,
    secret: &SealedSecret,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO webhook_endpoints (id, org_id, url, events, enabled, secret_key, secret_nonce,
            secret_ciphertext, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        e.id,
        e.org_id,
        e.url,
        &e.events,
        e.enabled,
        secret.key,
        secret.nonce,
        secret.ciphertext,
        e.created_at,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes the endpoint and, by cascade, its deliveries; returns the deleted row.
pub async fn delete(
    conn: &mut PgConnection,
    org: OrgId,
    id: Uuid,
) -> Result<Option<EndpointRow>, sqlx::Error> {
    sqlx::query_as!(
        EndpointRow,
        "DELETE FROM webhook_endpoints WHERE org_id = $1 AND id = $2
         RETURNING id, org_id, url, events, enabled, created_at",
        org.as_uuid(),
        id,
    )
    .fetch_optional(conn)
    .await
}

/// The per-database key (made here by the first caller), for when `KEYWARD_WEBHOOK_KEY` is unset.
pub async fn database_key(
    conn: &mut PgConnection,
    fresh: &[u8; 32],
) -> Result<Vec<u8>, sqlx::Error> {
    sqlx::query!(
        "INSERT INTO webhook_keys (id, key) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
        &fresh[..],
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query_scalar!("SELECT key FROM webhook_keys WHERE id = 1")
        .fetch_one(conn)
        .await
}

/// The enabled endpoints of `org` subscribed with any of `patterns`.
pub async fn subscribed(
    conn: &mut PgConnection,
    org: OrgId,
    patterns: &[String],
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT id FROM webhook_endpoints WHERE org_id = $1 AND enabled AND events && $2 ORDER BY id",
        org.as_uuid(),
        patterns,
    )
    .fetch_all(conn)
    .await
}

/// A message about to be queued for some endpoints.
pub struct NewMessage<'a> {
    pub org: OrgId,
    pub message_id: &'a str,
    pub event_type: &'a str,
    pub body: &'a str,
    pub created_at: DateTime<Utc>,
}

/// Queues `message` for each of `endpoints`, due at once; returns the rows written.
pub async fn insert_deliveries(
    conn: &mut PgConnection,
    message: &NewMessage<'_>,
    endpoints: &[Uuid],
) -> Result<u64, sqlx::Error> {
    if endpoints.is_empty() {
        return Ok(0);
    }
    let ids: Vec<Uuid> = endpoints.iter().map(|_| Uuid::now_v7()).collect();
    let done = sqlx::query!(
        "INSERT INTO webhook_deliveries (id, endpoint_id, org_id, message_id, event_type, body, status,
            attempts, next_attempt_at, created_at)
         SELECT d.id, d.endpoint_id, $3, $4, $5, $6, 'pending', 0, $7, $7
         FROM UNNEST($1::uuid[], $2::uuid[]) AS d (id, endpoint_id)",
        &ids,
        endpoints,
        message.org.as_uuid(),
        message.message_id,
        message.event_type,
        message.body,
        message.created_at,
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

struct DeliveryRow {
    id: Uuid,
    message_id: String,
    event_type: String,
    status: String,
    attempts: i32,
    next_attempt_at: Option<DateTime<Utc>>,
    last_attempt_at: Option<DateTime<Utc>>,
    last_status: Option<i32>,
    last_error: Option<String>,
    created_at: DateTime<Utc>,
}

struct AttemptRow {
    delivery_id: Uuid,
    attempt: i32,
    at: DateTime<Utc>,
    http_status: Option<i32>,
    error: Option<String>,
    duration_ms: i64,
}

/// Deliveries to one endpoint, newest first, after the cursor `before` (a delivery id).
pub async fn deliveries(
    conn: &mut PgConnection,
    endpoint: Uuid,
    before: Option<Uuid>,
    limit: u32,
) -> Result<Vec<WebhookDelivery>, sqlx::Error> {
    let rows = sqlx::query_as!(
        DeliveryRow,
        "SELECT id, message_id, event_type, status, attempts, next_attempt_at, last_attempt_at,
            last_status, last_error, created_at
         FROM webhook_deliveries
         WHERE endpoint_id = $1 AND ($2::uuid IS NULL OR id < $2)
         ORDER BY id DESC LIMIT $3",
        endpoint,
        before,
        i64::from(limit),
    )
    .fetch_all(&mut *conn)
    .await?;
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let attempts = sqlx::query_as!(
        AttemptRow,
        "SELECT delivery_id, attempt, at, http_status, error, duration_ms
         FROM webhook_attempts WHERE delivery_id = ANY($1) ORDER BY delivery_id, attempt",
        &ids,
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| WebhookDelivery {
            attempt_log: attempts
                .iter()
                .filter(|a| a.delivery_id == r.id)
                .map(|a| WebhookAttempt {
                    attempt: a.attempt,
                    at: a.at,
                    http_status: a.http_status,
                    error: a.error.clone(),
                    duration_ms: a.duration_ms,
                })
                .collect(),
            id: r.id,
            message_id: r.message_id,
            event_type: r.event_type,
            status: DeliveryStatus::parse(&r.status).unwrap_or(DeliveryStatus::Pending),
            attempts: r.attempts,
            next_attempt_at: r.next_attempt_at,
            last_attempt_at: r.last_attempt_at,
            last_status: r.last_status,
            last_error: r.last_error,
            created_at: r.created_at,
        })
        .collect())
}

/// A due delivery claimed by a worker, with what it needs to send it.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: Uuid,
    pub org_id: Uuid,
    pub endpoint_id: Uuid,
    pub message_id: String,
    pub body: String,
    /// Attempts made before this one.
    pub attempts: i32,
    pub url: String,
    pub secret_key: String,
    pub secret_nonce: Vec<u8>,
    pub secret_ciphertext: Vec<u8>,
}

/// Claims up to `limit` due deliveries for `lease_ms`: their due time moves past the lease, so
/// no other worker (on this node or another) takes them meanwhile; if this one dies, they are due
/// again when the lease ends. `SKIP LOCKED` lets concurrent workers claim disjoint rows.
pub async fn claim_due(
    conn: &mut PgConnection,
    limit: u32,
    lease_ms: u64,
    per_org: i32,
    busy: &[(Uuid, i32)],
) -> Result<Vec<Claimed>, sqlx::Error> {
    let (busy_orgs, busy_counts): (Vec<Uuid>, Vec<i32>) = busy.iter().copied().unzip();
    // Each organisation offers its earliest due rows up to its free share (`per_org` minus what
    // this node already sends for it); the earliest of those are claimed. One organisation's
    // backlog therefore never hides another's due rows.
    sqlx::query_as!(
        Claimed,
        r#"WITH busy AS (
             SELECT * FROM UNNEST($4::uuid[], $5::int[]) AS b (org_id, n)
         ), offered AS (
             SELECT x.id, x.next_attempt_at
             FROM (SELECT DISTINCT org_id FROM webhook_deliveries
                   WHERE status = 'pending' AND next_attempt_at <= now()) o
             LEFT JOIN busy b ON b.org_id = o.org_id
             CROSS JOIN LATERAL (
                 SELECT d.id, d.next_attempt_at FROM webhook_deliveries d
                 WHERE d.org_id = o.org_id AND d.status = 'pending' AND d.next_attempt_at <= now()
                 ORDER BY d.next_attempt_at
                 LIMIT GREATEST($3 - COALESCE(b.n, 0), 0)
             ) x
             ORDER BY x.next_attempt_at
             LIMIT $1
         ), due AS (
             SELECT d.id FROM webhook_deliveries d JOIN offered USING (id)
             WHERE d.status = 'pending' AND d.next_attempt_at <= now()
             FOR UPDATE OF d SKIP LOCKED
         ), claimed AS (
             UPDATE webhook_deliveries d
             SET next_attempt_at = now() + make_interval(secs => $2::float8 / 1000)
             FROM due WHERE d.id = due.id
             RETURNING d.id, d.org_id, d.endpoint_id, d.message_id, d.body, d.attempts
         )
         SELECT c.id AS "id!", c.org_id AS "org_id!", c.endpoint_id AS "endpoint_id!",
             c.message_id AS "message_id!", c.body AS "body!", c.attempts AS "attempts!", e.url,
             e.secret_key, e.secret_nonce, e.secret_ciphertext
         FROM claimed c JOIN webhook_endpoints e ON e.id = c.endpoint_id"#,
        i64::from(limit),
        lease_ms as f64,
        per_org,
        &busy_orgs,
        &busy_counts,
    )
    .fetch_all(conn)
    .await
}

/// What an attempt settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Delivered,
    RetryInMs(u64),
    Failed,
}

/// One finished attempt.
pub struct Attempt<'a> {
    pub delivery_id: Uuid,
    /// 1 for the first attempt.
    pub attempt: i32,
    pub at: DateTime<Utc>,
    pub http_status: Option<i32>,
    pub error: Option<&'a str>,
    pub duration_ms: i64,
    pub next: Next,
}

/// Logs the attempt and moves the delivery on, unless someone else already recorded this
/// attempt (a lease that ran out): then nothing changes and `false` is returned.
pub async fn record_attempt(conn: &mut PgConnection, a: &Attempt<'_>) -> Result<bool, sqlx::Error> {
    let (status, retry_ms) = match a.next {
        Next::Delivered => ("delivered", None),
        Next::RetryInMs(ms) => ("pending", Some(ms as f64)),
        Next::Failed => ("failed", None),
    };
    let updated = sqlx::query!(
        "UPDATE webhook_deliveries SET attempts = $2, status = $3,
            next_attempt_at = CASE WHEN $4::float8 IS NULL THEN NULL
                                   ELSE now() + make_interval(secs => $4::float8 / 1000) END,
            last_attempt_at = $5, last_status = $6, last_error = $7
         WHERE id = $1 AND attempts = $2 - 1 AND status = 'pending'",
        a.delivery_id,
        a.attempt,
        status,
        retry_ms,
        a.at,
        a.http_status,
        a.error,
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if updated == 0 {
        return Ok(false);
    }
    sqlx::query!(
        "INSERT INTO webhook_attempts (delivery_id, attempt, at, http_status, error, duration_ms)
         VALUES ($1, $2, $3, $4, $5, $6)",
        a.delivery_id,
        a.attempt,
        a.at,
        a.http_status,
        a.error,
        a.duration_ms,
    )
    .execute(conn)
    .await?;
    Ok(true)
}

/// Hands claimed deliveries back (due now) when a worker stops before attempting them.
pub async fn release(conn: &mut PgConnection, ids: &[(Uuid, i32)]) -> Result<(), sqlx::Error> {
    let (ids, attempts): (Vec<Uuid>, Vec<i32>) = ids.iter().copied().unzip();
    sqlx::query!(
        "UPDATE webhook_deliveries d SET next_attempt_at = now()
         FROM UNNEST($1::uuid[], $2::int[]) AS r (id, attempts)
         WHERE d.id = r.id AND d.attempts = r.attempts AND d.status = 'pending'",
        &ids,
        &attempts,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Milliseconds until the earliest pending delivery is due (0 when one is due now).
pub async fn next_due_ms(conn: &mut PgConnection) -> Result<Option<u64>, sqlx::Error> {
    let secs = sqlx::query_scalar!(
        "SELECT EXTRACT(EPOCH FROM (min(next_attempt_at) - now()))::float8
         FROM webhook_deliveries WHERE status = 'pending'",
    )
    .fetch_one(conn)
    .await?;
    Ok(secs.map(|s| (s.max(0.0) * 1000.0).ceil() as u64))
}

/// Deletes settled deliveries (and their attempts) created more than `days` ago.
pub async fn delete_settled(conn: &mut PgConnection, days: u64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "DELETE FROM webhook_deliveries
         WHERE status <> 'pending' AND created_at < now() - make_interval(days => $1::int)",
        i32::try_from(days).unwrap_or(i32::MAX),
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}
