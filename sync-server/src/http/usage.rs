//! Usage for admins: `GET /v1/usage` (the organisation's traffic, top keys, shares) and
//! `GET /v1/reports/usage` (per key and day, CSV or JSON, streamed page by page: no database
//! connection is held while a client reads). Every query reads the rollup of its granularity;
//! long periods never scan minutes.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use keyward_core::KeyId;
use keyward_core::api::{
    CountPoint, KeySeries, OrgUsage, OrgUsageQuery, OutcomeSeries, ReportFormat, ReportQuery,
    ReportRow, UsageGroupBy, UsageTotals,
};
use keyward_core::csv::safe_cell;
use tracing::Instrument;

use crate::error::{AppError, AppResult};
use crate::http::extract::AppQuery;
use crate::session::AdminSession;
use crate::state::AppState;
use crate::store;

type Problem = keyward_core::api::Problem;

/// The longest report period.
const MAX_REPORT_DAYS: i64 = 3660;

/// A checked period: `from` before `to`, no longer than the granularity allows.
pub fn period(
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    default_span: Duration,
    max_span: Duration,
    unit: &str,
) -> AppResult<(DateTime<Utc>, DateTime<Utc>)> {
    let to = to.unwrap_or_else(Utc::now);
    let from = from.unwrap_or(to - default_span);
    if from >= to {
        return Err(AppError::field(
            "from",
            "out_of_range",
            "must be before `to`",
        ));
    }
    if to - from > max_span {
        return Err(AppError::field(
            "from",
            "out_of_range",
            format!("a {unit} period spans at most {} days", max_span.num_days()),
        ));
    }
    Ok((from, to))
}

/// A report's period in whole UTC days: `from` down to its day's start, `to` up to the next
/// midnight unless it is one (a time within a day takes that whole day, so the default `to`, now,
/// includes today), at most [`MAX_REPORT_DAYS`] days once rounded.
fn report_days(
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> AppResult<(DateTime<Utc>, DateTime<Utc>)> {
    let (from, to) = period(
        from,
        to,
        Duration::days(30),
        Duration::days(MAX_REPORT_DAYS),
        "report",
    )?;
    let day_start = |t: DateTime<Utc>| t.date_naive().and_time(chrono::NaiveTime::MIN).and_utc();
    let from = day_start(from);
    let to = match day_start(to) {
        midnight if midnight == to => to,
        midnight => midnight + Duration::days(1),
    };
    if to - from > Duration::days(MAX_REPORT_DAYS) {
        return Err(AppError::field(
            "from",
            "out_of_range",
            format!("a report spans at most {MAX_REPORT_DAYS} whole UTC days"),
        ));
    }
    Ok((from, to))
}

fn share(part: i64, totals: &UsageTotals) -> f64 {
    match totals.total() {
        0 => 0.0,
        all => part as f64 / all as f64,
    }
}

/// The organisation's traffic over a period: the series by outcome class, totals, error and
/// rate-limited shares, top keys by volume and by rejections, and optionally a series per key
/// (`group_by=key`, the top keys) or per outcome (`group_by=outcome`).
#[utoipa::path(get, path = "/v1/usage", tag = "usage", security(("session" = [])), params(OrgUsageQuery),
    responses((status = 200, body = OrgUsage), (status = 401, body = Problem), (status = 422, body = Problem)))]
pub async fn org_usage(
    State(state): State<AppState>,
    session: AdminSession,
    AppQuery(q): AppQuery<OrgUsageQuery>,
) -> AppResult<Json<OrgUsage>> {
    let granularity = q.granularity.unwrap_or_default();
    let (from, to) = period(
        q.from,
        q.to,
        Duration::hours(24),
        granularity.max_span(),
        granularity.as_str(),
    )?;
    let top = match q.top {
        None => 10,
        Some(n @ 1..=100) => i64::from(n),
        Some(_) => {
            return Err(AppError::field(
                "top",
                "out_of_range",
                "must be between 1 and 100",
            ));
        }
    };
    let org = session.org_id.into_uuid();
    let mut conn = state.pool.acquire().await?;
    let series = store::usage::org_series(&mut conn, org, granularity, from, to).await?;
    let totals = UsageTotals::of(&series);
    let top_by_volume =
        store::usage::top_keys(&mut conn, org, granularity, from, to, false, top).await?;
    let top_by_rejections =
        store::usage::top_keys(&mut conn, org, granularity, from, to, true, top).await?;
    let by_key = match q.group_by {
        Some(UsageGroupBy::Key) => {
            let ids: Vec<uuid::Uuid> = top_by_volume.iter().map(|k| k.key_id.into_uuid()).collect();
            let mut per: BTreeMap<uuid::Uuid, Vec<_>> = BTreeMap::new();
            for (k, p) in
                store::usage::keys_series(&mut conn, org, &ids, granularity, from, to).await?
            {
                per.entry(k).or_default().push(p);
            }
            Some(
                top_by_volume
                    .iter()
                    .map(|k| KeySeries {
                        key_id: k.key_id,
                        name: k.name.clone(),
                        series: per.remove(&k.key_id.into_uuid()).unwrap_or_default(),
                    })
                    .collect(),
            )
        }
        _ => None,
    };
    let by_outcome = match q.group_by {
        Some(UsageGroupBy::Outcome) => {
            let mut per: BTreeMap<String, Vec<CountPoint>> = BTreeMap::new();
            for (outcome, ts, count) in
                store::usage::outcome_series(&mut conn, org, granularity, from, to).await?
            {
                per.entry(outcome)
                    .or_default()
                    .push(CountPoint { ts, count });
            }
            Some(
                per.into_iter()
                    .map(|(outcome, series)| OutcomeSeries { outcome, series })
                    .collect(),
            )
        }
        _ => None,
    };
    Ok(Json(OrgUsage {
        granularity,
        from,
        to,
        error_share: share(totals.rejected, &totals),
        rate_limited_share: share(totals.rate_limited, &totals),
        series,
        totals,
        top_by_volume,
        top_by_rejections,
        by_key,
        by_outcome,
    }))
}

/// How long a report waits for the reports' share of the pool before its first page: past it,
/// 503 `reports_busy` with `Retry-After`, rather than a request left hanging.
const REPORT_ADMISSION_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// How long a report already under way waits for the share for its next page (the response
/// has begun: past it the body ends early, and the client sees an incomplete response).
const REPORT_PAGE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Formatted text handed to the response body at once.
const REPORT_CHUNK_BYTES: usize = 32 * 1024;

/// Why a page of a report could not be read.
#[derive(Debug)]
enum PageError {
    /// The reports' share of the pool stayed taken for the whole wait.
    Busy {
        waited: std::time::Duration,
    },
    Database(sqlx::Error),
}

impl From<PageError> for AppError {
    fn from(e: PageError) -> AppError {
        match e {
            PageError::Busy { .. } => AppError::Unavailable {
                code: "reports_busy",
                detail: "too many reports are being read right now; retry shortly".into(),
                retry_after_secs: Some(1),
            },
            PageError::Database(e) => AppError::Database(e),
        }
    }
}

impl std::fmt::Display for PageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PageError::Busy { waited } => {
                write!(
                    f,
                    "the reports' share of the pool stayed busy for {waited:?}"
                )
            }
            PageError::Database(e) => std::fmt::Display::fmt(e, f),
        }
    }
}

/// One page of a report, read on a pooled connection held for that query only: a permit of
/// the reports' share first (waiting at most `wait`), then a connection; both are given back
/// before the caller writes a byte of it, so a slow client never holds either.
async fn report_page(
    share: &tokio::sync::Semaphore,
    pool: &sqlx::PgPool,
    org: uuid::Uuid,
    after: store::usage::ReportCursor,
    to: DateTime<Utc>,
    wait: std::time::Duration,
) -> Result<Vec<store::usage::ReportRecord>, PageError> {
    let _permit = match tokio::time::timeout(wait, share.acquire()).await {
        Ok(Ok(permit)) => permit,
        // Timed out, or closed (never: the state owns it).
        _ => return Err(PageError::Busy { waited: wait }),
    };
    let mut conn = pool.acquire().await.map_err(PageError::Database)?;
    store::usage::report_page(&mut conn, org, after, to, store::usage::REPORT_PAGE_ROWS)
        .await
        .map_err(PageError::Database)
}

/// The JSON report (`format=json`), written as a stream: the period, its rows and their sum.
/// Only describes the document; the handler writes the JSON itself.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct UsageReport {
    from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
    rows: Vec<ReportRow>,
    total: keyward_core::api::UsageTotals,
}

/// Calls per key and UTC day over any period (default the last 30 days), with a total, as CSV
/// (default) or JSON. Streamed: the rows are read page by page (keyset, 2,000 rows), each page on
/// a pooled connection held only for its query, so a year of a thousand keys never sits in
/// memory and a client reading slowly never holds a database connection. The reports together
/// hold at most `report_db_connections` (a quarter of the pool by default); a report that cannot
/// get one for its first page within a second is refused with 503 `reports_busy` and
/// `Retry-After`. Each page is read as of its own moment: past days do not change, today's rows
/// may have grown between pages; the total is the sum of the rows sent.
#[utoipa::path(get, path = "/v1/reports/usage", tag = "usage", security(("session" = [])), params(ReportQuery),
    responses((status = 200, description = "CSV (`format=csv`, the default) or JSON rows",
                content((String = "text/csv"), (UsageReport = "application/json"))),
              (status = 401, body = Problem), (status = 422, body = Problem),
              (status = 503, description = "`reports_busy`: too many reports at once (see `Retry-After`)", body = Problem)))]
pub async fn report(
    State(state): State<AppState>,
    session: AdminSession,
    AppQuery(q): AppQuery<ReportQuery>,
) -> AppResult<Response> {
    let (from, to) = report_days(q.from, q.to)?;
    let format = q.format.unwrap_or_default();
    let org = session.org_id.into_uuid();
    let started = std::time::Instant::now();
    // The first page before the answer, so a busy share or a database failure is a proper
    // problem+json instead of a response cut short.
    let first = report_page(
        &state.reports,
        &state.pool,
        org,
        store::usage::report_start(from),
        to,
        REPORT_ADMISSION_WAIT,
    )
    .await
    .inspect_err(|e| {
        // The request's own log line carries the code (`reports_busy`); this says why.
        if let PageError::Busy { .. } = e {
            tracing::debug!(
                share = state.config.database.report_permits,
                error = %e,
                "usage report refused: the reports' share of the pool is busy"
            );
        }
    })?;
    // Two chunks ahead of the client at most: what a stalled report holds, beside its page.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(2);
    let share = state.reports.clone();
    let pool = state.pool.clone();
    // In the request's span, so that what it logs carries the request id.
    let producer = async move {
        let mut out = match format {
            ReportFormat::Csv => "day,key_id,key_name,allowed,rate_limited,rejected\n".to_owned(),
            ReportFormat::Json => format!(
                "{{\"from\":{},\"to\":{},\"rows\":[",
                serde_json::json!(from),
                serde_json::json!(to)
            ),
        };
        let mut total = UsageTotals::default();
        let (mut rows, mut pages) = (0u64, 1u64);
        let mut page = first;
        loop {
            // No connection is held from here on: the page is ours, in memory.
            let next = store::usage::report_next(&page, store::usage::REPORT_PAGE_ROWS);
            for (day, key, name, allowed, rate_limited, rejected) in page {
                total.allowed += allowed;
                total.rate_limited += rate_limited;
                total.rejected += rejected;
                let row = ReportRow {
                    day: day.date_naive(),
                    key_id: KeyId::from_uuid(key),
                    key_name: name,
                    allowed,
                    rate_limited,
                    rejected,
                };
                match format {
                    ReportFormat::Csv => out.push_str(&csv_line(&row)),
                    ReportFormat::Json => {
                        if rows > 0 {
                            out.push(',');
                        }
                        out.push_str(&serde_json::to_string(&row).unwrap_or_default());
                    }
                }
                rows += 1;
                if out.len() > REPORT_CHUNK_BYTES
                    && tx.send(Ok(std::mem::take(&mut out))).await.is_err()
                {
                    tracing::debug!(rows, pages, "usage report abandoned by the client");
                    return;
                }
            }
            let Some(after) = next else { break };
            page = match report_page(&share, &pool, org, after, to, REPORT_PAGE_WAIT).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::error!(error = %e, rows, pages, "usage report cut short");
                    let _ = tx
                        .send(Err(std::io::Error::other("report query failed")))
                        .await;
                    return;
                }
            };
            pages += 1;
        }
        match format {
            ReportFormat::Csv => out.push_str(&format!(
                "total,,,{},{},{}\n",
                total.allowed, total.rate_limited, total.rejected
            )),
            ReportFormat::Json => {
                out.push_str(&format!("],\"total\":{}}}", serde_json::json!(total)))
            }
        }
        if tx.send(Ok(out)).await.is_ok() {
            tracing::debug!(
                rows,
                pages,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "usage report sent"
            );
        }
    };
    tokio::spawn(producer.in_current_span());
    let body = Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    }));
    let (content_type, ext) = match format {
        ReportFormat::Csv => ("text/csv; charset=utf-8", "csv"),
        ReportFormat::Json => ("application/json", "json"),
    };
    let filename = format!(
        "attachment; filename=\"keyward-usage-{}-{}.{ext}\"",
        from.format("%Y%m%d"),
        to.format("%Y%m%d")
    );
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (header::CONTENT_DISPOSITION, filename),
        ],
        body,
    )
        .into_response())
}

/// One CSV record, quoted as RFC 4180 wants (by the csv crate: names may hold commas, quotes or
/// newlines). Text cells are guarded against formula injection first (a key named `=...` is
/// written `'=...`, see `keyward_core::csv`); the counts are ours and never negative.
fn csv_line(row: &ReportRow) -> String {
    let mut w = csv::Writer::from_writer(Vec::with_capacity(96));
    let _ = w.write_record([
        row.day.to_string(),
        safe_cell(&row.key_id.to_string()).into_owned(),
        safe_cell(&row.key_name).into_owned(),
        row.allowed.to_string(),
        row.rate_limited.to_string(),
        row.rejected.to_string(),
    ]);
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_awkward_names() {
        let row = ReportRow {
            day: chrono::NaiveDate::from_ymd_opt(2026, 11, 25).unwrap(),
            key_id: KeyId::new(),
            key_name: "billing, \"eu\"".into(),
            allowed: 3,
            rate_limited: 1,
            rejected: 0,
        };
        let line = csv_line(&row);
        assert!(line.starts_with("2026-11-25,"));
        assert!(line.ends_with(",\"billing, \"\"eu\"\"\",3,1,0\n"), "{line}");
    }

    #[test]
    fn csv_names_cannot_be_formulas() {
        let row = |name: &str| ReportRow {
            day: chrono::NaiveDate::from_ymd_opt(2026, 11, 25).unwrap(),
            key_id: KeyId::new(),
            key_name: name.into(),
            allowed: 3,
            rate_limited: 1,
            rejected: 0,
        };
        let line = csv_line(&row("=HYPERLINK(\"http://evil.example\",\"x\")"));
        assert!(
            line.ends_with(",\"'=HYPERLINK(\"\"http://evil.example\"\",\"\"x\"\")\",3,1,0\n"),
            "{line}"
        );
        assert!(csv_line(&row("@SUM(A1)")).contains(",'@SUM(A1),3,1,0"));
        assert!(csv_line(&row("-2+3")).contains(",'-2+3,3,1,0"));
        assert!(csv_line(&row("plain")).contains(",plain,3,1,0"));
    }

    #[tokio::test]
    async fn a_report_beyond_the_share_is_refused_quickly_with_retry_after() {
        // Every permit taken: the page never reaches the pool (which could not connect anyway).
        let share = tokio::sync::Semaphore::new(0);
        let pool = sqlx::postgres::PgPoolOptions::new()
            .connect_lazy("postgres://nobody@127.0.0.1:1/none")
            .unwrap();
        let started = std::time::Instant::now();
        let now = Utc::now();
        let err = report_page(
            &share,
            &pool,
            uuid::Uuid::nil(),
            store::usage::report_start(now),
            now,
            std::time::Duration::from_millis(50),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, PageError::Busy { .. }), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        let response = AppError::from(err).into_response();
        assert_eq!(
            response.status(),
            axum::http::StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
    }

    #[test]
    fn report_pages_follow_their_last_row() {
        let day = |d: u32| {
            chrono::NaiveDate::from_ymd_opt(2026, 11, d)
                .unwrap()
                .and_time(chrono::NaiveTime::MIN)
                .and_utc()
        };
        let start = store::usage::report_start(day(25) + Duration::hours(13));
        assert_eq!(start, (day(25), uuid::Uuid::nil()));
        let key = uuid::Uuid::now_v7();
        let row = |d| (day(d), key, String::new(), 1, 0, 0);
        assert_eq!(
            store::usage::report_next(&[row(25), row(26)], 2),
            Some((day(26), key))
        );
        assert_eq!(store::usage::report_next(&[row(25)], 2), None);
        assert_eq!(store::usage::report_next(&[], 2), None);
    }

    #[test]
    fn reports_cover_whole_utc_days() {
        let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let (from, to) = report_days(
            Some(t("2025-01-31T17:45:00Z")),
            Some(t("2025-02-02T00:00:01Z")),
        )
        .unwrap();
        assert_eq!(
            (from, to),
            (t("2025-01-31T00:00:00Z"), t("2025-02-03T00:00:00Z"))
        );
        let (_, to) = report_days(
            Some(t("2025-01-01T00:00:00Z")),
            Some(t("2025-01-02T00:00:00Z")),
        )
        .unwrap();
        assert_eq!(to, t("2025-01-02T00:00:00Z"), "midnight stays");
        let from = t("2015-01-01T00:00:00Z");
        assert!(report_days(Some(from), Some(from + Duration::days(MAX_REPORT_DAYS))).is_ok());
        // One second more is one more day once rounded.
        assert!(
            report_days(
                Some(from),
                Some(from + Duration::days(MAX_REPORT_DAYS) + Duration::seconds(1))
            )
            .is_err()
        );
        // A `from` late in its day cannot stretch the span past the cap.
        assert!(
            report_days(
                Some(from + Duration::hours(23)),
                Some(from + Duration::days(MAX_REPORT_DAYS) + Duration::hours(1))
            )
            .is_err()
        );
    }

    #[test]
    fn periods_are_checked() {
        let now = Utc::now();
        assert!(
            period(
                Some(now),
                Some(now),
                Duration::hours(1),
                Duration::days(1),
                "x"
            )
            .is_err()
        );
        assert!(
            period(
                Some(now - Duration::days(2)),
                Some(now),
                Duration::hours(1),
                Duration::days(1),
                "x"
            )
            .is_err()
        );
        assert!(period(None, Some(now), Duration::hours(1), Duration::days(1), "x").is_ok());
    }
}
