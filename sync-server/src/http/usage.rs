//! Usage for admins: `GET /v1/usage` (the organisation's traffic, top keys, shares) and
//! `GET /v1/reports/usage` (per key and day, CSV or JSON, streamed). Every query reads the
//! rollup of its granularity; long periods never scan minutes.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use futures::StreamExt;
use keyward_core::KeyId;
use keyward_core::api::{
    CountPoint, KeySeries, OrgUsage, OrgUsageQuery, OutcomeSeries, ReportFormat, ReportQuery,
    ReportRow, UsageGroupBy, UsageTotals,
};
use keyward_core::csv::safe_cell;

use crate::error::{AppError, AppResult};
use crate::extract::AppQuery;
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
    let totals = series
        .iter()
        .fold(UsageTotals::default(), |t, p| UsageTotals {
            allowed: t.allowed + p.allowed,
            rate_limited: t.rate_limited + p.rate_limited,
            rejected: t.rejected + p.rejected,
        });
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

/// Calls per key and UTC day over any period (default the last 30 days), with a total, as CSV
/// (default) or JSON; streamed from the day rollup, so a year of a thousand keys never sits in
/// memory.
#[utoipa::path(get, path = "/v1/reports/usage", tag = "usage", security(("session" = [])), params(ReportQuery),
    responses((status = 200, description = "text/csv or application/json", body = [ReportRow]),
              (status = 401, body = Problem), (status = 422, body = Problem)))]
pub async fn report(
    State(state): State<AppState>,
    session: AdminSession,
    AppQuery(q): AppQuery<ReportQuery>,
) -> AppResult<Response> {
    let (from, to) = period(
        q.from,
        q.to,
        Duration::days(30),
        Duration::days(MAX_REPORT_DAYS),
        "report",
    )?;
    let format = q.format.unwrap_or_default();
    let org = session.org_id.into_uuid();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(8);
    let pool = state.pool.clone();
    tokio::spawn(async move {
        let mut rows = store::usage::report_rows(&pool, org, from, to);
        let mut out = match format {
            ReportFormat::Csv => "day,key_id,key_name,allowed,rate_limited,rejected\n".to_owned(),
            ReportFormat::Json => format!(
                "{{\"from\":{},\"to\":{},\"rows\":[",
                serde_json::json!(from),
                serde_json::json!(to)
            ),
        };
        let mut total = UsageTotals::default();
        let mut first = true;
        while let Some(row) = rows.next().await {
            let (day, key, name, allowed, rate_limited, rejected) = match row {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "usage report query failed");
                    let _ = tx
                        .send(Err(std::io::Error::other("report query failed")))
                        .await;
                    return;
                }
            };
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
                    if !first {
                        out.push(',');
                    }
                    out.push_str(&serde_json::to_string(&row).unwrap_or_default());
                }
            }
            first = false;
            if out.len() > 32 * 1024 && tx.send(Ok(std::mem::take(&mut out))).await.is_err() {
                return; // the client went away
            }
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
        let _ = tx.send(Ok(out)).await;
    });
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
