//! `GET /v1/reports/usage` at its edges: `from` rounded down to its UTC day, `to` excluded, a
//! period across month ends, the longest period accepted and one beyond it refused, and a report
//! of many pages streamed in several chunks with every row exactly once (CSV and JSON).
//!
//! Usage is written the way the server writes it (the usage recorder, flushed into every
//! rollup) at chosen past instants, or, for the large report, straight into `usage_day`, the
//! rollup the report reads.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use keyward_core::api::{ApiKey, CreateKeyRequest, ReportFormat, ReportQuery, ReportRow};
use keyward_e2e::TestApp;
use keyward_server::usage::UsageRecorder;

fn at(y: i32, m: u32, d: u32, h: u32, min: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, min, s).unwrap()
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

async fn spawn() -> TestApp {
    // No retention job: the seeded usage lies in the past.
    TestApp::spawn_with(|c| c.background_jobs = false).await
}

async fn key(app: &TestApp, name: &str) -> ApiKey {
    app.owner
        .create_key(&CreateKeyRequest {
            name: name.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .key
}

/// Records `n` calls of `key` with `outcome` at `when`, as the server does, and flushes them.
async fn record(app: &TestApp, key: &ApiKey, outcome: &'static str, when: DateTime<Utc>, n: u32) {
    let recorder = UsageRecorder::default();
    for _ in 0..n {
        recorder.record(key.id, key.org_id, outcome, when, None);
    }
    recorder.flush(app.pool()).await.expect("flush usage");
}

/// The JSON report's rows as (day, key name) → (allowed, rate_limited, rejected), and its total.
async fn json_report(
    app: &TestApp,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> (
    BTreeMap<(NaiveDate, String), (i64, i64, i64)>,
    serde_json::Value,
) {
    let text = app
        .owner
        .usage_report(&ReportQuery {
            from: Some(from),
            to: Some(to),
            format: Some(ReportFormat::Json),
        })
        .await
        .unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).expect("a JSON report");
    let rows: Vec<ReportRow> = serde_json::from_value(doc["rows"].clone()).unwrap();
    let mut out = BTreeMap::new();
    for r in rows {
        let dup = out.insert((r.day, r.key_name), (r.allowed, r.rate_limited, r.rejected));
        assert!(dup.is_none(), "a row twice in {text}");
    }
    (out, doc["total"].clone())
}

#[tokio::test]
async fn from_is_rounded_down_to_its_day_and_to_is_excluded() {
    let app = spawn().await;
    let k = key(&app, "edges").await;
    // 2025-06-09: before the period's first day. 2025-06-10, early: before `from`'s time but on
    // its day. 2025-06-11 23:59:59: the last second before `to`. 2025-06-12 00:00:00: `to`.
    record(&app, &k, "valid", at(2025, 6, 9, 23, 59, 59), 1).await;
    record(&app, &k, "valid", at(2025, 6, 10, 0, 0, 0), 2).await;
    record(&app, &k, "rate_limited", at(2025, 6, 10, 6, 0, 0), 3).await;
    record(&app, &k, "valid", at(2025, 6, 11, 23, 59, 0), 4).await;
    record(&app, &k, "invalid_secret", at(2025, 6, 11, 23, 59, 59), 5).await;
    record(&app, &k, "valid", at(2025, 6, 12, 0, 0, 0), 100).await;

    let from = at(2025, 6, 10, 17, 45, 12);
    let to = at(2025, 6, 12, 0, 0, 0);
    let (rows, total) = json_report(&app, from, to).await;
    let name = "edges".to_owned();
    assert_eq!(
        rows,
        BTreeMap::from([
            ((date(2025, 6, 10), name.clone()), (2, 3, 0)),
            ((date(2025, 6, 11), name.clone()), (4, 0, 5)),
        ]),
        "from's whole day, up to but not including to"
    );
    assert_eq!(
        total,
        serde_json::json!({"allowed": 6, "rate_limited": 3, "rejected": 5})
    );

    // The same in CSV.
    let csv = app
        .owner
        .usage_report(&ReportQuery {
            from: Some(from),
            to: Some(to),
            format: Some(ReportFormat::Csv),
        })
        .await
        .unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines,
        [
            "day,key_id,key_name,allowed,rate_limited,rejected",
            &format!("2025-06-10,{},edges,2,3,0", k.id),
            &format!("2025-06-11,{},edges,4,0,5", k.id),
            "total,,,6,3,5",
        ],
        "{csv}"
    );

    // One second later `to` takes in the day that starts at it; one day earlier it leaves out
    // the day that ends at it.
    let (rows, _) = json_report(&app, from, to + chrono::Duration::seconds(1)).await;
    assert_eq!(
        rows.get(&(date(2025, 6, 12), name.clone())),
        Some(&(100, 0, 0))
    );
    let (rows, _) = json_report(&app, from, at(2025, 6, 11, 0, 0, 0)).await;
    assert_eq!(
        rows.keys().map(|(d, _)| *d).collect::<Vec<_>>(),
        [date(2025, 6, 10)]
    );
    // `from` at midnight exactly is its own day; a second before it, the day before.
    let (rows, _) = json_report(&app, at(2025, 6, 10, 0, 0, 0), to).await;
    assert_eq!(rows.len(), 2);
    let (rows, _) = json_report(&app, at(2025, 6, 9, 23, 59, 59), to).await;
    assert_eq!(rows.get(&(date(2025, 6, 9), name)), Some(&(1, 0, 0)));
    assert_eq!(rows.len(), 3);
}

#[tokio::test]
async fn a_period_across_month_ends_counts_each_day_once() {
    let app = spawn().await;
    let (a, b) = (key(&app, "alpha").await, key(&app, "beta").await);
    // January into February, and February (2025: 28 days) into March.
    for (when, n) in [
        (at(2025, 1, 31, 12, 0, 0), 1),
        (at(2025, 1, 31, 23, 59, 59), 2),
        (at(2025, 2, 1, 0, 0, 0), 3),
        (at(2025, 2, 28, 23, 30, 0), 4),
        (at(2025, 3, 1, 0, 30, 0), 5),
    ] {
        record(&app, &a, "valid", when, n).await;
        record(&app, &b, "quota_exceeded", when, n * 10).await;
    }
    let (rows, total) = json_report(&app, at(2025, 1, 31, 8, 0, 0), at(2025, 3, 2, 0, 0, 0)).await;
    let expect = |name: &str, per: i64| {
        let cell = |n: i64| {
            if name == "alpha" {
                (n * per, 0, 0)
            } else {
                (0, n * per, 0)
            }
        };
        [
            ((date(2025, 1, 31), name.to_owned()), cell(3)),
            ((date(2025, 2, 1), name.to_owned()), cell(3)),
            ((date(2025, 2, 28), name.to_owned()), cell(4)),
            ((date(2025, 3, 1), name.to_owned()), cell(5)),
        ]
    };
    let mut want = BTreeMap::from(expect("alpha", 1));
    want.extend(expect("beta", 10));
    assert_eq!(rows, want);
    assert_eq!(
        total,
        serde_json::json!({"allowed": 15, "rate_limited": 150, "rejected": 0})
    );
    // A period ending at the month's end leaves the next month out.
    let (rows, _) = json_report(&app, at(2025, 2, 15, 0, 0, 0), at(2025, 3, 1, 0, 0, 0)).await;
    assert_eq!(
        rows.keys().map(|(d, _)| *d).collect::<Vec<_>>(),
        [date(2025, 2, 28), date(2025, 2, 28)]
    );
}

#[tokio::test]
async fn the_longest_period_is_accepted_and_a_second_more_refused() {
    let app = spawn().await;
    let k = key(&app, "old").await;
    let to = at(2026, 1, 1, 0, 0, 0);
    // The longest report period: 3,660 days.
    let from = to - chrono::Duration::days(3660);
    record(&app, &k, "valid", from, 7).await;
    record(&app, &k, "valid", to - chrono::Duration::seconds(1), 8).await;
    let (rows, total) = json_report(&app, from, to).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(total["allowed"], 15);

    let beyond = ReportQuery {
        from: Some(from - chrono::Duration::seconds(1)),
        to: Some(to),
        format: Some(ReportFormat::Csv),
    };
    let e = app.owner.usage_report(&beyond).await.unwrap_err();
    assert_eq!(e.status().map(|s| s.as_u16()), Some(422), "{e}");
    let problem = e.problem().expect("a problem document");
    assert_eq!(problem.errors.len(), 1, "{problem:?}");
    assert_eq!(problem.errors[0].field, "from");
    assert_eq!(problem.errors[0].code, "out_of_range");
    assert!(problem.errors[0].message.contains("3660"), "{problem:?}");
    // Sent as problem+json.
    let res = reqwest::Client::new()
        .get(format!("{}/v1/reports/usage", app.server.base_url))
        .bearer_auth(secrecy::ExposeSecret::expose_secret(
            app.owner.session().unwrap(),
        ))
        .query(&beyond)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 422);
    assert_eq!(
        res.headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
}

/// Seeded per (key, day): `allowed`, `rate_limited`, `rejected` of day `d` of key `k`.
fn seeded(k: i64, d: i64) -> (i64, i64, i64) {
    (
        1 + (k * 7 + d) % 13,
        (d % 3 == 0) as i64 * (k + 1),
        (d % 5) * k,
    )
}

#[tokio::test]
async fn a_report_of_many_pages_streams_every_row_once() {
    const KEYS: i64 = 5;
    const DAYS: i64 = 1500; // 7,500 key-days: four pages of 2,000 rows
    let app = spawn().await;
    let first = at(2021, 1, 1, 0, 0, 0);
    let mut keys = Vec::new();
    for k in 0..KEYS {
        keys.push(key(&app, &format!("bulk-{k}")).await);
    }
    for (k, key) in keys.iter().enumerate() {
        let k = k as i64;
        // One row per outcome and day, as the rollup holds them: `valid`, `rate_limited`,
        // `invalid_secret` (the last two only where non-zero).
        sqlx::query(
            "INSERT INTO usage_day (key_id, org_id, day, outcome, count)
             SELECT $1, $2, $3::timestamptz + d * interval '1 day', o.outcome, o.count
               FROM generate_series(0, $4 - 1) AS d,
                    LATERAL (VALUES
                        ('valid', 1 + ($5 * 7 + d) % 13),
                        ('rate_limited', CASE WHEN d % 3 = 0 THEN $5 + 1 ELSE 0 END),
                        ('invalid_secret', (d % 5) * $5)
                    ) AS o(outcome, count)
              WHERE o.count > 0",
        )
        .bind(key.id.into_uuid())
        .bind(key.org_id.into_uuid())
        .bind(first)
        .bind(DAYS)
        .bind(k)
        .execute(app.pool())
        .await
        .unwrap();
    }
    let to = first + chrono::Duration::days(DAYS);
    let mut want = BTreeMap::new();
    let mut want_total = (0, 0, 0);
    for (k, key) in keys.iter().enumerate() {
        for d in 0..DAYS {
            let v = seeded(k as i64, d);
            want_total = (want_total.0 + v.0, want_total.1 + v.1, want_total.2 + v.2);
            let day = (first + chrono::Duration::days(d)).date_naive();
            want.insert((day, key.id.to_string()), v);
        }
    }
    assert_eq!(want.len() as i64, KEYS * DAYS);

    for format in [ReportFormat::Csv, ReportFormat::Json] {
        let mut download = app
            .owner
            .usage_report_download(&ReportQuery {
                from: Some(first),
                to: Some(to),
                format: Some(format),
            })
            .await
            .unwrap();
        let (mut body, mut chunks) = (Vec::new(), 0);
        while let Some(chunk) = download.chunk().await.unwrap() {
            chunks += 1;
            body.extend_from_slice(&chunk);
        }
        let body = String::from_utf8(body).unwrap();
        assert!(
            chunks > 1,
            "{format:?}: {} bytes arrived in one chunk",
            body.len()
        );
        let mut got = BTreeMap::new();
        let mut order = Vec::new();
        let total;
        match format {
            ReportFormat::Csv => {
                let mut lines = body.lines();
                assert_eq!(
                    lines.next(),
                    Some("day,key_id,key_name,allowed,rate_limited,rejected")
                );
                let mut last = None;
                for line in lines.by_ref() {
                    let cells: Vec<&str> = line.split(',').collect();
                    assert_eq!(cells.len(), 6, "{line}");
                    let n = |i: usize| cells[i].parse::<i64>().unwrap();
                    if cells[0] == "total" {
                        last = Some((n(3), n(4), n(5)));
                        break;
                    }
                    let day: NaiveDate = cells[0].parse().unwrap();
                    let dup = got.insert((day, cells[1].to_owned()), (n(3), n(4), n(5)));
                    assert!(dup.is_none(), "{format:?}: {line} twice");
                    order.push((day, cells[1].to_owned()));
                }
                assert_eq!(lines.next(), None, "nothing after the total");
                total = last.expect("a total line");
            }
            ReportFormat::Json => {
                let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
                let rows: Vec<ReportRow> = serde_json::from_value(doc["rows"].clone()).unwrap();
                for r in rows {
                    let id = r.key_id.to_string();
                    let dup =
                        got.insert((r.day, id.clone()), (r.allowed, r.rate_limited, r.rejected));
                    assert!(dup.is_none(), "{format:?}: {} {id} twice", r.day);
                    order.push((r.day, id));
                }
                let t = &doc["total"];
                total = (
                    t["allowed"].as_i64().unwrap(),
                    t["rate_limited"].as_i64().unwrap(),
                    t["rejected"].as_i64().unwrap(),
                );
            }
        }
        assert_eq!(got.len(), want.len(), "{format:?}: every key-day once");
        assert!(got == want, "{format:?}: the rows are the seeded ones");
        assert_eq!(total, want_total, "{format:?}: the total is the seeded one");
        assert!(
            order.windows(2).all(|w| w[0] < w[1]),
            "{format:?}: rows in day and key order"
        );
    }
}
