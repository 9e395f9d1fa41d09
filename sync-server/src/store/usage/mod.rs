//! The usage tables: the per-key and organisation rollups (minute, hour, day) and where each
//! granularity lives (here, with rebuilding and retention), what one flush writes (`batch`: the
//! [`UsageBatch`] the usage recorder fills) and its write (`write`), the series and rankings the
//! usage API reads (`series`), the paged daily report (`report`) and the hourly gateway and
//! network detail (`gateway`).

use keyward_core::api::Granularity;
use sqlx::PgPool;

mod batch;
mod gateway;
mod report;
mod series;
mod write;

pub(crate) use batch::MAX_PENDING_EVENTS;
pub use batch::{
    GatewayCell, GatewayKey, LimitEvent, MAX_PENDING_GATEWAY, MAX_PENDING_NETWORKS,
    MAX_ROUTES_PER_KEY, NetworkCell, Unrecognized, UsageBatch, ViolationKey,
};
pub use gateway::{GatewayRow, NetworkRow, gateway_rows, networks_first_seen, networks_of_key};
pub use report::{
    REPORT_PAGE_ROWS, ReportCursor, ReportRecord, report_next, report_page, report_start,
};
pub use series::{keys_series, org_series, outcome_series, series, top_keys};
pub use write::{QuotaKey, Written, write_batch, write_batch_capped};

/// The rollup tables and their time column.
const KEY_ROLLUPS: [(&str, &str); 3] = [
    ("usage_minute", "minute"),
    ("usage_hour", "hour"),
    ("usage_day", "day"),
];
const ORG_ROLLUPS: [(&str, &str); 3] = [
    ("usage_org_minute", "minute"),
    ("usage_org_hour", "hour"),
    ("usage_org_day", "day"),
];

fn index_of(granularity: Granularity) -> usize {
    match granularity {
        Granularity::Minute => 0,
        Granularity::Hour => 1,
        Granularity::Day => 2,
    }
}

/// The table and time column holding a granularity.
pub fn table_of(granularity: Granularity) -> (&'static str, &'static str) {
    KEY_ROLLUPS[index_of(granularity)]
}

/// The organisation rollup of a granularity.
fn org_table_of(granularity: Granularity) -> (&'static str, &'static str) {
    ORG_ROLLUPS[index_of(granularity)]
}

/// Recomputes the hour and day rollups of `keys` from their minutes (the demo seeds minutes).
pub async fn rebuild_rollups(
    conn: &mut sqlx::PgConnection,
    keys: &[uuid::Uuid],
) -> Result<(), sqlx::Error> {
    for (table, unit) in &KEY_ROLLUPS[1..] {
        sqlx::query(&format!(
            "INSERT INTO {table} (key_id, org_id, {unit}, outcome, count)
             SELECT key_id, org_id, date_trunc('{unit}', minute, 'UTC'), outcome, sum(count)::int8
               FROM usage_minute WHERE key_id = ANY($1) GROUP BY 1, 2, 3, 4
             ON CONFLICT (key_id, {unit}, outcome) DO UPDATE SET count = EXCLUDED.count"
        ))
        .bind(keys)
        .execute(&mut *conn)
        .await?;
    }
    for ((table, unit), (source, column)) in ORG_ROLLUPS.into_iter().zip(KEY_ROLLUPS) {
        sqlx::query(&format!(
            "INSERT INTO {table} (org_id, {unit}, outcome, count)
             SELECT org_id, {column}, outcome, sum(count)::int8 FROM {source}
              WHERE org_id IN (SELECT org_id FROM api_keys WHERE id = ANY($1)) GROUP BY 1, 2, 3
             ON CONFLICT (org_id, {unit}, outcome) DO UPDATE SET count = EXCLUDED.count"
        ))
        .bind(keys)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Deletes rows older than `before` from one granularity's table, at most `batch` at a time
/// (short transactions beside the flusher); returns how many went.
pub async fn delete_before(
    pool: &PgPool,
    granularity: Granularity,
    before: chrono::DateTime<chrono::Utc>,
    batch: i64,
) -> Result<u64, sqlx::Error> {
    let (org_table, _) = org_table_of(granularity);
    delete_batches(pool, org_table, table_of(granularity).1, before, batch).await?;
    if granularity == Granularity::Hour {
        // Hourly detail shares the hours' retention; a network unseen that long is forgotten.
        delete_batches(pool, "gateway_usage_hour", "hour", before, batch).await?;
        delete_batches(pool, "unrecognized_usage_hour", "hour", before, batch).await?;
        delete_batches(pool, "key_networks", "last_seen", before, batch).await?;
    }
    let (table, column) = table_of(granularity);
    delete_batches(pool, table, column, before, batch).await
}

async fn delete_batches(
    pool: &PgPool,
    table: &str,
    column: &str,
    before: chrono::DateTime<chrono::Utc>,
    batch: i64,
) -> Result<u64, sqlx::Error> {
    let mut total = 0;
    loop {
        let gone = sqlx::query(&format!(
            "DELETE FROM {table} WHERE ctid IN (SELECT ctid FROM {table} WHERE {column} < $1 LIMIT $2)"
        ))
        .bind(before)
        .bind(batch)
        .execute(pool)
        .await?
        .rows_affected();
        total += gone;
        if gone < batch as u64 {
            return Ok(total);
        }
    }
}

/// allowed, rate_limited (rate and quota refusals), rejected (every other refusal).
pub const OUTCOME_SUMS: &str = "coalesce(sum(u.count) FILTER (WHERE u.outcome = 'valid'), 0)::int8,
    coalesce(sum(u.count) FILTER (WHERE u.outcome IN ('rate_limited', 'quota_exceeded')), 0)::int8,
    coalesce(sum(u.count) FILTER (WHERE u.outcome NOT IN ('valid', 'rate_limited', 'quota_exceeded')), 0)::int8";
