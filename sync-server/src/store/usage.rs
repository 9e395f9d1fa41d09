use sqlx::PgPool;

use crate::usage::UsageBatch;

/// One statement for the counts and one for last-used, in one transaction.
pub async fn write_batch(pool: &PgPool, batch: &UsageBatch) -> Result<(), sqlx::Error> {
    let n = batch.counts.len();
    let (mut keys, mut orgs, mut minutes, mut outcomes, mut counts) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for ((key, minute, outcome), (org, count)) in &batch.counts {
        keys.push(key.into_uuid());
        orgs.push(org.into_uuid());
        minutes.push(*minute);
        outcomes.push(*outcome);
        counts.push(*count);
    }
    let mut tx = pool.begin().await?;
    if n > 0 {
        sqlx::query(
            "INSERT INTO usage_minute (key_id, org_id, minute, outcome, count)
             SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::timestamptz[], $4::text[], $5::int8[])
             ON CONFLICT (key_id, minute, outcome) DO UPDATE SET count = usage_minute.count + EXCLUDED.count",
        )
        .bind(&keys)
        .bind(&orgs)
        .bind(&minutes)
        .bind(&outcomes)
        .bind(&counts)
        .execute(&mut *tx)
        .await?;
    }
    if !batch.last_used.is_empty() {
        let (mut ids, mut times, mut ips) = (Vec::new(), Vec::new(), Vec::new());
        for (key, (at, ip)) in &batch.last_used {
            ids.push(key.into_uuid());
            times.push(*at);
            ips.push(ip.map(|ip| ip.to_string()));
        }
        sqlx::query(
            "UPDATE api_keys k SET last_used_at = u.at, last_used_ip = u.ip
               FROM UNNEST($1::uuid[], $2::timestamptz[], $3::text[]) AS u(id, at, ip)
              WHERE k.id = u.id AND (k.last_used_at IS NULL OR k.last_used_at < u.at)",
        )
        .bind(&ids)
        .bind(&times)
        .bind(&ips)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

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
    let rows: Vec<(chrono::DateTime<chrono::Utc>, i64, i64, i64)> = sqlx::query_as(
        "SELECT date_trunc($1, u.minute, 'UTC') AS ts,
                coalesce(sum(u.count) FILTER (WHERE u.outcome = 'valid'), 0)::int8,
                coalesce(sum(u.count) FILTER (WHERE u.outcome IN ('rate_limited', 'quota_exceeded')), 0)::int8,
                coalesce(sum(u.count) FILTER (WHERE u.outcome NOT IN ('valid', 'rate_limited', 'quota_exceeded')), 0)::int8
           FROM usage_minute u JOIN api_keys k ON k.id = u.key_id
          WHERE k.lineage_id = $2 AND k.org_id = $3 AND u.minute >= $4 AND u.minute < $5
          GROUP BY 1 ORDER BY 1",
    )
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
