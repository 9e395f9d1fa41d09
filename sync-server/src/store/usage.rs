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
