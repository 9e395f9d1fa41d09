//! What the usage API reads from the rollups: a lineage's series, the organisation's series,
//! the top keys and their series, and the counts per outcome.

use keyward_core::KeyId;
use keyward_core::api::Granularity;

use super::{OUTCOME_SUMS, org_table_of, table_of};

/// A lineage's usage (a key and every key it was rotated from or into), bucketed, with empty
/// buckets left out.
pub async fn series(
    conn: &mut sqlx::PgConnection,
    lineage: uuid::Uuid,
    org: uuid::Uuid,
    granularity: keyward_core::api::Granularity,
    from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<keyward_core::api::UsagePoint>, sqlx::Error> {
    let (table, column) = table_of(granularity);
    let rows: Vec<(chrono::DateTime<chrono::Utc>, i64, i64, i64)> = sqlx::query_as(&format!(
        "SELECT date_trunc($1, u.{column}, 'UTC') AS ts, {OUTCOME_SUMS}
           FROM {table} u JOIN api_keys k ON k.id = u.key_id
          WHERE k.lineage_id = $2 AND k.org_id = $3 AND u.{column} >= date_trunc($1, $4::timestamptz, 'UTC') AND u.{column} < $5
          GROUP BY 1 ORDER BY 1"
    ))
    .bind(granularity.as_str())
    .bind(lineage)
    .bind(org)
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(ts, allowed, rate_limited, rejected)| keyward_core::api::UsagePoint {
                ts,
                allowed,
                rate_limited,
                rejected,
            },
        )
        .collect())
}

type Bucket = (chrono::DateTime<chrono::Utc>, i64, i64, i64);

fn point((ts, allowed, rate_limited, rejected): Bucket) -> keyward_core::api::UsagePoint {
    keyward_core::api::UsagePoint {
        ts,
        allowed,
        rate_limited,
        rejected,
    }
}

/// The organisation's traffic by bucket (every key together).
pub async fn org_series(
    conn: &mut sqlx::PgConnection,
    org: uuid::Uuid,
    granularity: Granularity,
    from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<keyward_core::api::UsagePoint>, sqlx::Error> {
    let (table, column) = org_table_of(granularity);
    let rows: Vec<Bucket> = sqlx::query_as(&format!(
        "SELECT date_trunc($1, u.{column}, 'UTC') AS ts, {OUTCOME_SUMS}
           FROM {table} u
          WHERE u.org_id = $2 AND u.{column} >= date_trunc($1, $3::timestamptz, 'UTC') AND u.{column} < $4
          GROUP BY 1 ORDER BY 1"
    ))
    .bind(granularity.as_str())
    .bind(org)
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(point).collect())
}

/// Per-key totals over a period, the `top` biggest by volume or by rejections. Periods of a
/// week or more rank on the day rollup, of a day or more at least on the hour rollup.
pub async fn top_keys(
    conn: &mut sqlx::PgConnection,
    org: uuid::Uuid,
    granularity: Granularity,
    from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
    by_rejections: bool,
    top: i64,
) -> Result<Vec<keyward_core::api::KeyUsageTotal>, sqlx::Error> {
    // Long periods rank keys on a coarser rollup (buckets touching the period count whole).
    let span = to - from;
    let granularity = if span >= chrono::Duration::days(7) {
        Granularity::Day
    } else if span >= chrono::Duration::days(1) && granularity == Granularity::Minute {
        Granularity::Hour
    } else {
        granularity
    };
    let (table, column) = table_of(granularity);
    let order = if by_rejections {
        "coalesce(sum(u.count) FILTER (WHERE u.outcome NOT IN ('valid', 'rate_limited', 'quota_exceeded')), 0) DESC, sum(u.count) DESC"
    } else {
        "sum(u.count) DESC"
    };
    let rows: Vec<(uuid::Uuid, String, i64, i64, i64)> = sqlx::query_as(&format!(
        "SELECT t.key_id, coalesce(k.name, ''), t.allowed, t.rate_limited, t.rejected FROM (
            SELECT u.key_id, {OUTCOME_SUMS}
              FROM {table} u
             WHERE u.org_id = $2 AND u.{column} >= date_trunc($1, $3::timestamptz, 'UTC') AND u.{column} < $4
             GROUP BY 1 ORDER BY {order} LIMIT $5
         ) AS t(key_id, allowed, rate_limited, rejected)
         LEFT JOIN api_keys k ON k.id = t.key_id
         ORDER BY {}",
        if by_rejections { "t.rejected DESC, t.allowed DESC" } else { "(t.allowed + t.rate_limited + t.rejected) DESC" }
    ))
    .bind(granularity.as_str())
    .bind(org)
    .bind(from)
    .bind(to)
    .bind(top)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .filter(|r| !by_rejections || r.4 > 0)
        .map(
            |(key_id, name, allowed, rate_limited, rejected)| keyward_core::api::KeyUsageTotal {
                key_id: KeyId::from_uuid(key_id),
                name,
                totals: keyward_core::api::UsageTotals {
                    allowed,
                    rate_limited,
                    rejected,
                },
            },
        )
        .collect())
}

/// Series of the given keys, by bucket.
pub async fn keys_series(
    conn: &mut sqlx::PgConnection,
    org: uuid::Uuid,
    keys: &[uuid::Uuid],
    granularity: Granularity,
    from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<(uuid::Uuid, keyward_core::api::UsagePoint)>, sqlx::Error> {
    let (table, column) = table_of(granularity);
    let rows: Vec<(uuid::Uuid, chrono::DateTime<chrono::Utc>, i64, i64, i64)> = sqlx::query_as(&format!(
        "SELECT u.key_id, date_trunc($1, u.{column}, 'UTC') AS ts, {OUTCOME_SUMS}
           FROM {table} u
          WHERE u.org_id = $2 AND u.key_id = ANY($3) AND u.{column} >= date_trunc($1, $4::timestamptz, 'UTC') AND u.{column} < $5
          GROUP BY 1, 2 ORDER BY 1, 2"
    ))
    .bind(granularity.as_str())
    .bind(org)
    .bind(keys)
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(k, ts, a, r, j)| (k, point((ts, a, r, j))))
        .collect())
}

/// Counts per outcome, by bucket.
pub async fn outcome_series(
    conn: &mut sqlx::PgConnection,
    org: uuid::Uuid,
    granularity: Granularity,
    from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<(String, chrono::DateTime<chrono::Utc>, i64)>, sqlx::Error> {
    let (table, column) = org_table_of(granularity);
    sqlx::query_as(&format!(
        "SELECT u.outcome, date_trunc($1, u.{column}, 'UTC') AS ts, sum(u.count)::int8
           FROM {table} u
          WHERE u.org_id = $2 AND u.{column} >= date_trunc($1, $3::timestamptz, 'UTC') AND u.{column} < $4
          GROUP BY 1, 2 ORDER BY 1, 2"
    ))
    .bind(granularity.as_str())
    .bind(org)
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await
}
