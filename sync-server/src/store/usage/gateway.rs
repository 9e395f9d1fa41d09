//! The hourly detail: gateway traffic per key, route and status class, and the networks keys
//! were used from.

use keyward_core::latency::BUCKETS;
use sqlx::PgPool;

/// A period's gateway traffic of one key, route and status class, summed over its hours.
#[derive(Debug, sqlx::FromRow)]
pub struct GatewayRow {
    pub key_id: uuid::Uuid,
    pub key_name: String,
    pub route: String,
    pub status: i16,
    pub calls: i64,
    pub latency_sum_us: i64,
    pub latency: Vec<i64>,
}

/// Gateway traffic of an organisation (or one of its keys) from `from` (rounded down to its
/// hour) to `to`, summed per key, route and status class, histograms bucket by bucket.
pub async fn gateway_rows(
    pool: &PgPool,
    org: uuid::Uuid,
    key: Option<uuid::Uuid>,
    from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<GatewayRow>, sqlx::Error> {
    // Bucket by bucket as 64 plain sums over the matching rows: an order of magnitude faster
    // than unnesting every histogram and grouping the elements (1.4 s → ~0.1 s for 100,800
    // rows), and the arrays never leave the database unmerged.
    let buckets = (1..=BUCKETS)
        .map(|i| format!("coalesce(sum(latency[{i}]), 0)::int8"))
        .collect::<Vec<_>>()
        .join(", ");
    sqlx::query_as(&format!(
        "SELECT t.key_id, coalesce(k.name, '') AS key_name, t.route, t.status, t.calls,
                t.latency_sum_us, t.latency
           FROM (SELECT key_id, route, status, sum(calls)::int8 AS calls,
                        sum(latency_sum_us)::int8 AS latency_sum_us, ARRAY[{buckets}] AS latency
                   FROM gateway_usage_hour
                  WHERE org_id = $1 AND ($2::uuid IS NULL OR key_id = $2)
                    AND hour >= date_trunc('hour', $3::timestamptz, 'UTC') AND hour < $4
                  GROUP BY key_id, route, status) t
           LEFT JOIN api_keys k ON k.id = t.key_id"
    ))
    .bind(org)
    .bind(key)
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await
}

/// A network a key was used from.
#[derive(Debug, sqlx::FromRow)]
pub struct NetworkRow {
    pub network: String,
    pub first_seen: chrono::DateTime<chrono::Utc>,
    pub last_seen: chrono::DateTime<chrono::Utc>,
    pub calls: i64,
}

/// Networks first seen on a key in `[from, to)`, oldest first (what the new-network detector
/// has not been fed yet).
pub async fn networks_first_seen(
    conn: &mut sqlx::PgConnection,
    key: uuid::Uuid,
    from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<NetworkRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT network, first_seen, last_seen, calls FROM key_networks
          WHERE key_id = $1 AND first_seen >= $2 AND first_seen < $3 ORDER BY first_seen",
    )
    .bind(key)
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await
}

/// Every network a key lineage was used from, most recent first (at most 200).
pub async fn networks_of_key(
    pool: &PgPool,
    key: uuid::Uuid,
    org: uuid::Uuid,
) -> Result<Vec<NetworkRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT n.network, min(n.first_seen) AS first_seen, max(n.last_seen) AS last_seen,
                sum(n.calls)::int8 AS calls
           FROM key_networks n JOIN api_keys k ON k.id = n.key_id
          WHERE k.lineage_id = (SELECT lineage_id FROM api_keys WHERE id = $1 AND org_id = $2)
          GROUP BY n.network ORDER BY max(n.last_seen) DESC LIMIT 200",
    )
    .bind(key)
    .bind(org)
    .fetch_all(pool)
    .await
}
