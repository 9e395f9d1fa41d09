//! Query times of the usage views over seeded history: 1,000 keys of one organisation with 48
//! hours of per-minute counts, 90 days of hourly and a year of daily rollups (every key, every
//! bucket, three outcomes). Times (median of 5 runs, after one warm-up):
//!
//! - the organisation's 48-hour per-minute series (`GET /v1/usage?granularity=minute`);
//! - its 90-day per-hour series;
//! - the 1-year daily report read to the end, page by page (`GET /v1/reports/usage`);
//! - top keys by volume over 90 days (hourly rollup);
//! - 7 days of gateway detail of 100 keys merged per key, route and status (histograms summed).
//!
//! `cargo run --release -p keyward-server --example analytics_bench` (PostgreSQL from
//! KEYWARD_TEST_PG_URL, default postgres://postgres@127.0.0.1:5432; a scratch database is made
//! and dropped).

use std::time::{Duration, Instant};

use chrono::{DurationRound, TimeDelta, Utc};
use keyward_core::api::Granularity;
use keyward_server::{Config, store};

const KEYS: i64 = 1_000;

async fn time<F, Fut, T>(label: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    f().await;
    let mut runs: Vec<Duration> = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        f().await;
        runs.push(started.elapsed());
    }
    runs.sort();
    println!(
        "{label:<48} median {:>8.1} ms (min {:.1}, max {:.1})",
        ms(runs[2]),
        ms(runs[0]),
        ms(runs[4])
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let admin_url = std::env::var("KEYWARD_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let db = format!("kw_analytics_{}", uuid::Uuid::new_v4().simple());
    let admin = sqlx::PgPool::connect(&format!("{admin_url}/postgres")).await?;
    sqlx::query(&format!("CREATE DATABASE {db}"))
        .execute(&admin)
        .await?;
    let pool = store::connect(&Config::for_database(format!("{admin_url}/{db}"))).await?;
    store::migrate(&pool).await?;
    let org = uuid::Uuid::now_v7();
    sqlx::query("INSERT INTO orgs (id, name) VALUES ($1, 'bench')")
        .bind(org)
        .execute(&pool)
        .await?;
    let now = Utc::now().duration_trunc(TimeDelta::minutes(1))?;
    let seeding = Instant::now();
    sqlx::query(
        "INSERT INTO api_keys (id, org_id, name, environment, secret_hash, lineage_id, created_at, updated_at)
         SELECT k, $1, 'key ' || n, 'live', 'x', k, now(), now()
           FROM (SELECT n, gen_random_uuid() AS k FROM generate_series(1, $2) AS n) s",
    )
    .bind(org)
    .bind(KEYS)
    .execute(&pool)
    .await?;
    for (table, column, step, span) in [
        ("usage_minute", "minute", "1 minute", "48 hours"),
        ("usage_hour", "hour", "1 hour", "90 days"),
        ("usage_day", "day", "1 day", "365 days"),
    ] {
        sqlx::query(&format!(
            "INSERT INTO {table} (key_id, org_id, {column}, outcome, count)
             SELECT k.id, k.org_id, t, o, 1 + (abs(hashtext(k.id::text || t::text || o)) % 50)
               FROM api_keys k,
                    generate_series($1::timestamptz - interval '{span}', $1::timestamptz - interval '{step}', interval '{step}') AS t,
                    unnest(ARRAY['valid', 'rate_limited', 'invalid_secret']) AS o
              WHERE k.org_id = $2"
        ))
        .bind(now)
        .bind(org)
        .execute(&pool)
        .await?;
    }
    // The organisation rollups, as the flusher would have written them.
    for (table, source, column) in [
        ("usage_org_minute", "usage_minute", "minute"),
        ("usage_org_hour", "usage_hour", "hour"),
        ("usage_org_day", "usage_day", "day"),
    ] {
        sqlx::query(&format!(
            "INSERT INTO {table} (org_id, {column}, outcome, count)
             SELECT org_id, {column}, outcome, sum(count) FROM {source} GROUP BY 1, 2, 3"
        ))
        .execute(&pool)
        .await?;
    }
    // Gateway detail for the first 100 keys: 7 days of hours, three route groups, two status
    // classes, a 64-bucket latency histogram each (100,800 rows).
    sqlx::query(
        "INSERT INTO gateway_usage_hour (key_id, org_id, hour, route, status, calls, latency_sum_us, latency)
         SELECT k.id, k.org_id, t, r, s, 320, 320 * 4000,
                ARRAY(SELECT (b % 11)::int8 FROM generate_series(1, 64) AS b)
           FROM (SELECT * FROM api_keys WHERE org_id = $2 ORDER BY id LIMIT 100) k,
                generate_series($1::timestamptz - interval '7 days', $1::timestamptz - interval '1 hour', interval '1 hour') AS t,
                unnest(ARRAY['achievements', 'badges', ':id']) AS r,
                unnest(ARRAY[2, 5]::int2[]) AS s",
    )
    .bind(now.duration_trunc(TimeDelta::hours(1))?)
    .bind(org)
    .execute(&pool)
    .await?;
    sqlx::query("ANALYZE").execute(&pool).await?;
    let rows: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM usage_minute) + (SELECT count(*) FROM usage_hour) + (SELECT count(*) FROM usage_day)",
    )
    .fetch_one(&pool)
    .await?;
    println!(
        "seeded {rows} rollup rows for {KEYS} keys in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );

    let pool_ref = &pool;
    time(
        "org series, 48 h per minute (2,880 points)",
        || async move {
            let mut c = pool_ref.acquire().await.unwrap();
            store::usage::org_series(
                &mut c,
                org,
                Granularity::Minute,
                now - chrono::Duration::hours(48),
                now,
            )
            .await
            .unwrap()
            .len()
        },
    )
    .await;
    time(
        "org series, 90 days per hour (2,160 points)",
        || async move {
            let mut c = pool_ref.acquire().await.unwrap();
            store::usage::org_series(
                &mut c,
                org,
                Granularity::Hour,
                now - chrono::Duration::days(90),
                now,
            )
            .await
            .unwrap()
            .len()
        },
    )
    .await;
    time("top 10 keys by volume, 90 days (hourly)", || async move {
        let mut c = pool_ref.acquire().await.unwrap();
        store::usage::top_keys(
            &mut c,
            org,
            Granularity::Hour,
            now - chrono::Duration::days(90),
            now,
            false,
            10,
        )
        .await
        .unwrap()
        .len()
    })
    .await;
    time(
        "report, 1 year daily (365,000 rows in pages)",
        || async move {
            let mut after = store::usage::report_start(now - chrono::Duration::days(365));
            let limit = store::usage::REPORT_PAGE_ROWS;
            let mut n = 0usize;
            loop {
                // A connection per page, as the report endpoint reads them.
                let mut c = pool_ref.acquire().await.unwrap();
                let page = store::usage::report_page(&mut c, org, after, now, limit)
                    .await
                    .unwrap();
                n += page.len();
                match store::usage::report_next(&page, limit) {
                    Some(next) => after = next,
                    None => break,
                }
            }
            assert_eq!(n, 365_000);
            n
        },
    )
    .await;
    time(
        "gateway, 7 days, org total + 100 keys (100,800 rows)",
        || async move {
            store::usage::gateway_rows(pool_ref, org, None, now - chrono::Duration::days(7), now)
                .await
                .unwrap()
                .len()
        },
    )
    .await;

    pool.close().await;
    sqlx::query(&format!("DROP DATABASE {db} WITH (FORCE)"))
        .execute(&admin)
        .await?;
    Ok(())
}
