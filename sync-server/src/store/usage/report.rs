//! The usage report: per key and UTC day from the day rollup, read in keyset-paged pages.

/// A report row as read: day, key id, key name, allowed, rate limited, rejected.
pub type ReportRecord = (
    chrono::DateTime<chrono::Utc>,
    uuid::Uuid,
    String,
    i64,
    i64,
    i64,
);

/// Where a page of the report starts: after this day and key.
pub type ReportCursor = (chrono::DateTime<chrono::Utc>, uuid::Uuid);

/// Rows per report page: a page and its formatted text are what a report holds in memory.
pub const REPORT_PAGE_ROWS: i64 = 2000;

/// The cursor of a report's first page: the UTC day of `from`, before any key (the nil key is
/// never a key's id).
pub fn report_start(from: chrono::DateTime<chrono::Utc>) -> ReportCursor {
    (
        from.date_naive().and_time(chrono::NaiveTime::MIN).and_utc(),
        uuid::Uuid::nil(),
    )
}

/// The cursor after a page: its last row, or `None` when the page was the last one (shorter
/// than a full page).
pub fn report_next(page: &[ReportRecord], limit: i64) -> Option<ReportCursor> {
    let last = page.last().filter(|_| page.len() as i64 >= limit)?;
    Some((last.0, last.1))
}

/// One page of the report: at most `limit` rows per key and UTC day after `after` and before
/// `to`, from the day rollup, in day and key order: keyset paging, an ordered scan of
/// `usage_day_org_day_key_idx` from the cursor, so a page costs its own rows however far into
/// the period it starts. The caller holds a connection for one page's query only, never while
/// its client reads what it sent.
pub async fn report_page(
    conn: &mut sqlx::PgConnection,
    org: uuid::Uuid,
    after: ReportCursor,
    to: chrono::DateTime<chrono::Utc>,
    limit: i64,
) -> Result<Vec<ReportRecord>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT t.day AS "day!", t.key_id AS "key_id!", coalesce(k.name, '') AS "name!",
                  t.allowed AS "allowed!", t.rate_limited AS "rate_limited!", t.rejected AS "rejected!"
             FROM (SELECT u.ts AS day, u.key_id, sum(u.allowed)::int8 AS allowed,
                          sum(u.rate_limited)::int8 AS rate_limited, sum(u.rejected)::int8 AS rejected
                     FROM usage_key_rollups u
                    WHERE u.granularity = 'day' AND u.org_id = $1 AND u.ts >= $2 AND u.ts < $4
                      AND (u.ts, u.key_id) > ($2, $3)
                    GROUP BY 1, 2 ORDER BY 1, 2 LIMIT $5) t
             LEFT JOIN api_keys k ON k.id = t.key_id
            ORDER BY 1, 2"#,
        org,
        after.0,
        after.1,
        to,
        limit,
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r.day,
                r.key_id,
                r.name,
                r.allowed,
                r.rate_limited,
                r.rejected,
            )
        })
        .collect())
}
