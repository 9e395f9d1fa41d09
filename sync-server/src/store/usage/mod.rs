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

/// Recomputes the hour and day rollups of `keys` from their minutes (the demo seeds minutes).
pub async fn rebuild_rollups(
    conn: &mut sqlx::PgConnection,
    keys: &[uuid::Uuid],
) -> Result<(), sqlx::Error> {
    macro_rules! key_rollup {
        ($table:literal, $unit:literal) => {
            sqlx::query!(
                "INSERT INTO "
                    + $table
                    + " (key_id, org_id, "
                    + $unit
                    + ", outcome, count)
                 SELECT key_id, org_id, date_trunc('"
                    + $unit
                    + "', minute, 'UTC'), outcome, sum(count)::int8
                   FROM usage_minute WHERE key_id = ANY($1) GROUP BY 1, 2, 3, 4
                 ON CONFLICT (key_id, "
                    + $unit
                    + ", outcome) DO UPDATE SET count = EXCLUDED.count",
                keys,
            )
            .execute(&mut *conn)
            .await?
        };
    }
    macro_rules! org_rollup {
        ($table:literal, $unit:literal, $source:literal) => {
            sqlx::query!(
                "INSERT INTO " + $table + " (org_id, " + $unit + ", outcome, count)
                 SELECT org_id, " + $unit + ", outcome, sum(count)::int8 FROM " + $source + "
                  WHERE org_id IN (SELECT org_id FROM api_keys WHERE id = ANY($1)) GROUP BY 1, 2, 3
                 ON CONFLICT (org_id, " + $unit + ", outcome) DO UPDATE SET count = EXCLUDED.count",
                keys,
            )
            .execute(&mut *conn)
            .await?
        };
    }
    key_rollup!("usage_hour", "hour");
    key_rollup!("usage_day", "day");
    org_rollup!("usage_org_minute", "minute", "usage_minute");
    org_rollup!("usage_org_hour", "hour", "usage_hour");
    org_rollup!("usage_org_day", "day", "usage_day");
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
    // One checked statement per table: batches of at most `batch` rows, in short transactions
    // beside the flusher.
    macro_rules! delete_from {
        ($table:literal, $column:literal) => {{
            let mut total = 0;
            loop {
                let gone = sqlx::query!(
                    "DELETE FROM "
                        + $table
                        + " WHERE ctid IN (SELECT ctid FROM "
                        + $table
                        + " WHERE "
                        + $column
                        + " < $1 LIMIT $2)",
                    before,
                    batch,
                )
                .execute(pool)
                .await?
                .rows_affected();
                total += gone;
                if gone < batch as u64 {
                    break total;
                }
            }
        }};
    }
    Ok(match granularity {
        Granularity::Minute => {
            delete_from!("usage_org_minute", "minute");
            delete_from!("usage_minute", "minute")
        }
        Granularity::Hour => {
            delete_from!("usage_org_hour", "hour");
            // Hourly detail shares the hours' retention; a network unseen that long is forgotten.
            delete_from!("gateway_usage_hour", "hour");
            delete_from!("unrecognized_usage_hour", "hour");
            delete_from!("key_networks", "last_seen");
            delete_from!("usage_hour", "hour")
        }
        Granularity::Day => {
            delete_from!("usage_org_day", "day");
            delete_from!("usage_day", "day")
        }
    })
}
