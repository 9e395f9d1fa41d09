//! What the usage API reads from the rollups: a lineage's series, the organisation's series,
//! the top keys and their series, and the counts per outcome. Each reads the rollup views
//! (`usage_key_rollups`, `usage_org_rollups`), which hold every granularity and classify the
//! outcomes.

use chrono::{DateTime, Utc};
use keyward_core::KeyId;
use keyward_core::api::{Granularity, KeyUsageTotal, UsagePoint, UsageTotals};

/// A bucket as read.
struct Bucket {
    ts: DateTime<Utc>,
    allowed: i64,
    rate_limited: i64,
    rejected: i64,
}

impl From<Bucket> for UsagePoint {
    fn from(b: Bucket) -> Self {
        UsagePoint {
            ts: b.ts,
            allowed: b.allowed,
            rate_limited: b.rate_limited,
            rejected: b.rejected,
        }
    }
}

/// A lineage's usage (a key and every key it was rotated from or into), bucketed, with empty
/// buckets left out.
pub async fn series(
    conn: &mut sqlx::PgConnection,
    lineage: uuid::Uuid,
    org: uuid::Uuid,
    granularity: Granularity,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<UsagePoint>, sqlx::Error> {
    let rows = sqlx::query_as!(
        Bucket,
        r#"SELECT date_trunc($1, u.ts, 'UTC') AS "ts!", sum(u.allowed)::int8 AS "allowed!",
                  sum(u.rate_limited)::int8 AS "rate_limited!", sum(u.rejected)::int8 AS "rejected!"
             FROM usage_key_rollups u JOIN api_keys k ON k.id = u.key_id
            WHERE u.granularity = $1 AND k.lineage_id = $2 AND k.org_id = $3
              AND u.ts >= date_trunc($1, $4::timestamptz, 'UTC') AND u.ts < $5
            GROUP BY 1 ORDER BY 1"#,
        granularity.as_str(),
        lineage,
        org,
        from,
        to,
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// The organisation's traffic by bucket (every key together).
pub async fn org_series(
    conn: &mut sqlx::PgConnection,
    org: uuid::Uuid,
    granularity: Granularity,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<UsagePoint>, sqlx::Error> {
    let rows = sqlx::query_as!(
        Bucket,
        r#"SELECT date_trunc($1, u.ts, 'UTC') AS "ts!", sum(u.allowed)::int8 AS "allowed!",
                  sum(u.rate_limited)::int8 AS "rate_limited!", sum(u.rejected)::int8 AS "rejected!"
             FROM usage_org_rollups u
            WHERE u.granularity = $1 AND u.org_id = $2
              AND u.ts >= date_trunc($1, $3::timestamptz, 'UTC') AND u.ts < $4
            GROUP BY 1 ORDER BY 1"#,
        granularity.as_str(),
        org,
        from,
        to,
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// Per-key totals over a period, the `top` biggest by volume or by rejections. Periods of a
/// week or more rank on the day rollup, of a day or more at least on the hour rollup.
pub async fn top_keys(
    conn: &mut sqlx::PgConnection,
    org: uuid::Uuid,
    granularity: Granularity,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    by_rejections: bool,
    top: i64,
) -> Result<Vec<KeyUsageTotal>, sqlx::Error> {
    // Long periods rank keys on a coarser rollup (buckets touching the period count whole).
    let span = to - from;
    let granularity = if span >= chrono::Duration::days(7) {
        Granularity::Day
    } else if span >= chrono::Duration::days(1) && granularity == Granularity::Minute {
        Granularity::Hour
    } else {
        granularity
    };
    let rows = sqlx::query!(
        r#"SELECT t.key_id AS "key_id!", coalesce(k.name, '') AS "name!", t.allowed AS "allowed!",
                  t.rate_limited AS "rate_limited!", t.rejected AS "rejected!"
             FROM (SELECT u.key_id, sum(u.allowed)::int8 AS allowed,
                          sum(u.rate_limited)::int8 AS rate_limited, sum(u.rejected)::int8 AS rejected
                     FROM usage_key_rollups u
                    WHERE u.granularity = $1 AND u.org_id = $2
                      AND u.ts >= date_trunc($1, $3::timestamptz, 'UTC') AND u.ts < $4
                    GROUP BY 1
                    ORDER BY CASE WHEN $6 THEN sum(u.rejected) ELSE 0 END DESC, sum(u.count) DESC
                    LIMIT $5) t
             LEFT JOIN api_keys k ON k.id = t.key_id
            ORDER BY CASE WHEN $6 THEN t.rejected ELSE 0 END DESC,
                     CASE WHEN $6 THEN t.allowed ELSE t.allowed + t.rate_limited + t.rejected END DESC"#,
        granularity.as_str(),
        org,
        from,
        to,
        top,
        by_rejections,
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .filter(|r| !by_rejections || r.rejected > 0)
        .map(|r| KeyUsageTotal {
            key_id: KeyId::from_uuid(r.key_id),
            name: r.name,
            totals: UsageTotals {
                allowed: r.allowed,
                rate_limited: r.rate_limited,
                rejected: r.rejected,
            },
        })
        .collect())
}

/// Series of the given keys, by bucket.
pub async fn keys_series(
    conn: &mut sqlx::PgConnection,
    org: uuid::Uuid,
    keys: &[uuid::Uuid],
    granularity: Granularity,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<(uuid::Uuid, UsagePoint)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT u.key_id AS "key_id!", date_trunc($1, u.ts, 'UTC') AS "ts!",
                  sum(u.allowed)::int8 AS "allowed!", sum(u.rate_limited)::int8 AS "rate_limited!",
                  sum(u.rejected)::int8 AS "rejected!"
             FROM usage_key_rollups u
            WHERE u.granularity = $1 AND u.org_id = $2 AND u.key_id = ANY($3)
              AND u.ts >= date_trunc($1, $4::timestamptz, 'UTC') AND u.ts < $5
            GROUP BY 1, 2 ORDER BY 1, 2"#,
        granularity.as_str(),
        org,
        keys,
        from,
        to,
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let point = UsagePoint {
                ts: r.ts,
                allowed: r.allowed,
                rate_limited: r.rate_limited,
                rejected: r.rejected,
            };
            (r.key_id, point)
        })
        .collect())
}

/// Counts per outcome, by bucket.
pub async fn outcome_series(
    conn: &mut sqlx::PgConnection,
    org: uuid::Uuid,
    granularity: Granularity,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<(String, DateTime<Utc>, i64)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT u.outcome AS "outcome!", date_trunc($1, u.ts, 'UTC') AS "ts!",
                  sum(u.count)::int8 AS "count!"
             FROM usage_org_rollups u
            WHERE u.granularity = $1 AND u.org_id = $2
              AND u.ts >= date_trunc($1, $3::timestamptz, 'UTC') AND u.ts < $4
            GROUP BY 1, 2 ORDER BY 1, 2"#,
        granularity.as_str(),
        org,
        from,
        to,
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.outcome, r.ts, r.count))
        .collect())
}
