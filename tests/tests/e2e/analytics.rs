//! Usage rollups, organisation series, reports and retention against a real database.

use std::time::Duration;

use chrono::{DurationRound, TimeDelta, Utc};
use keyward_core::api::{
    CreateKeyRequest, Granularity, OrgUsageQuery, ReportFormat, ReportQuery, RevokeKeyRequest,
    UsageGroupBy,
};
use keyward_e2e::{TestApp, eventually};

async fn count(app: &TestApp, table: &str) -> i64 {
    sqlx::query_scalar(&format!(
        "SELECT coalesce(sum(count), 0)::int8 FROM {table}"
    ))
    .fetch_one(app.pool())
    .await
    .unwrap()
}

#[tokio::test]
async fn rollups_series_top_keys_and_reports_agree_with_the_raw_counts() {
    let app = TestApp::spawn().await;
    let busy = app
        .owner
        .create_key(&CreateKeyRequest {
            name: "busy, \"eu\"".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let quiet = app
        .owner
        .create_key(&CreateKeyRequest {
            name: "quiet".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let (busy_token, quiet_token) = (busy.token.unwrap(), quiet.token.unwrap());
    // A concurrent burst on one key, a few calls on the other, then refusals of the second.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (client, token) = (app.anon.clone(), busy_token.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..25 {
                client.whoami(&token).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    for _ in 0..3 {
        app.anon.whoami(&quiet_token).await.unwrap();
    }
    app.owner
        .revoke_key(quiet.key.id, &RevokeKeyRequest::default())
        .await
        .unwrap();
    for _ in 0..4 {
        app.anon.whoami(&quiet_token).await.unwrap_err();
    }
    let flushed = eventually(Duration::from_secs(5), || async {
        count(&app, "usage_minute").await == 207
    })
    .await;
    assert!(flushed, "every call counted once in minutes");
    assert_eq!(count(&app, "usage_hour").await, 207, "hour rollup");
    assert_eq!(count(&app, "usage_day").await, 207, "day rollup");

    for granularity in [Granularity::Minute, Granularity::Hour, Granularity::Day] {
        let u = app
            .owner
            .org_usage(&OrgUsageQuery {
                granularity: Some(granularity),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(
            (u.totals.allowed, u.totals.rate_limited, u.totals.rejected),
            (203, 0, 4),
            "{granularity:?}"
        );
        assert_eq!(u.top_by_volume[0].key_id, busy.key.id);
        assert_eq!(u.top_by_volume[0].totals.allowed, 200);
        assert_eq!(u.top_by_rejections.len(), 1);
        assert_eq!(
            (
                u.top_by_rejections[0].key_id,
                u.top_by_rejections[0].totals.rejected
            ),
            (quiet.key.id, 4)
        );
        assert!((u.error_share - 4.0 / 207.0).abs() < 1e-9);
        assert_eq!(u.rate_limited_share, 0.0);
    }
    let by_outcome = app
        .owner
        .org_usage(&OrgUsageQuery {
            group_by: Some(UsageGroupBy::Outcome),
            ..Default::default()
        })
        .await
        .unwrap()
        .by_outcome
        .unwrap();
    let outcomes: Vec<(&str, i64)> = by_outcome
        .iter()
        .map(|o| (o.outcome.as_str(), o.series.iter().map(|p| p.count).sum()))
        .collect();
    assert_eq!(outcomes, [("revoked", 4), ("valid", 203)]);
    let by_key = app
        .owner
        .org_usage(&OrgUsageQuery {
            group_by: Some(UsageGroupBy::Key),
            top: Some(1),
            ..Default::default()
        })
        .await
        .unwrap()
        .by_key
        .unwrap();
    assert_eq!(by_key.len(), 1);
    assert_eq!(by_key[0].series.iter().map(|p| p.allowed).sum::<i64>(), 200);

    let csv = app
        .owner
        .usage_report(&ReportQuery::default())
        .await
        .unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "day,key_id,key_name,allowed,rate_limited,rejected"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("\"busy, \"\"eu\"\"\",200,0,0")),
        "{csv}"
    );
    assert_eq!(*lines.last().unwrap(), "total,,,203,0,4");
    let json: serde_json::Value = serde_json::from_str(
        &app.owner
            .usage_report(&ReportQuery {
                format: Some(ReportFormat::Json),
                ..Default::default()
            })
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        json["total"],
        serde_json::json!({"allowed": 203, "rate_limited": 0, "rejected": 4})
    );
    assert_eq!(json["rows"].as_array().unwrap().len(), 2);

    let e = app
        .owner
        .org_usage(&OrgUsageQuery {
            top: Some(0),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.problem().unwrap().errors[0].field, "top");
    let now = Utc::now();
    let e = app
        .owner
        .usage_report(&ReportQuery {
            from: Some(now),
            to: Some(now - chrono::Duration::days(1)),
            format: None,
        })
        .await
        .unwrap_err();
    assert_eq!(e.problem().unwrap().errors[0].field, "from");
}

#[tokio::test]
async fn report_csv_cells_cannot_be_formulas() {
    const EVIL: &str = "=HYPERLINK(\"http://evil.example\",\"x\")";
    let app = TestApp::spawn().await;
    let mut tokens = Vec::new();
    for name in [EVIL, "@SUM(A1:A9)", "-2+3", "plain"] {
        let key = app
            .owner
            .create_key(&CreateKeyRequest {
                name: name.into(),
                ..Default::default()
            })
            .await
            .unwrap();
        tokens.push(key.token.unwrap());
    }
    for token in &tokens {
        app.anon.whoami(token).await.unwrap();
    }
    let flushed = eventually(Duration::from_secs(5), || async {
        count(&app, "usage_day").await == 4
    })
    .await;
    assert!(flushed, "every call counted");

    let csv = app
        .owner
        .usage_report(&ReportQuery::default())
        .await
        .unwrap();
    let names: Vec<&str> = csv
        .lines()
        .skip(1)
        .filter(|l| !l.starts_with("total,"))
        .map(|l| {
            // day,key_id,<name>,allowed,rate_limited,rejected: the name is what lies between.
            let rest = l.splitn(3, ',').nth(2).unwrap();
            rest.rsplitn(4, ',').nth(3).unwrap()
        })
        .collect();
    let mut names = names;
    names.sort();
    assert_eq!(
        names,
        [
            "\"'=HYPERLINK(\"\"http://evil.example\"\",\"\"x\"\")\"",
            "'-2+3",
            "'@SUM(A1:A9)",
            "plain",
        ],
        "{csv}"
    );
    assert!(csv.contains(",\"'=HYPERLINK(\"\"http://evil.example\"\",\"\"x\"\")\",1,0,0\n"));
    assert_eq!(csv.lines().last().unwrap(), "total,,,4,0,0");
    // JSON is no spreadsheet: names stay as they are.
    let json: serde_json::Value = serde_json::from_str(
        &app.owner
            .usage_report(&ReportQuery {
                format: Some(ReportFormat::Json),
                ..Default::default()
            })
            .await
            .unwrap(),
    )
    .unwrap();
    assert!(
        json["rows"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["key_name"] == EVIL),
        "{json}"
    );
}

#[tokio::test]
async fn retention_removes_exactly_what_is_past_each_granularity() {
    let app = TestApp::spawn().await;
    let key = app
        .owner
        .create_key(&CreateKeyRequest {
            name: "r".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .key;
    let now = Utc::now().duration_trunc(TimeDelta::minutes(1)).unwrap();
    let retention = keyward_server::jobs::retention::Retention {
        minutes: chrono::Duration::hours(48),
        hours: chrono::Duration::days(90),
        days: chrono::Duration::days(730),
    };
    // Rows one step either side of each cutoff.
    let cases = [
        (
            "usage_minute",
            "minute",
            retention.minutes,
            chrono::Duration::minutes(1),
        ),
        (
            "usage_hour",
            "hour",
            retention.hours,
            chrono::Duration::hours(1),
        ),
        (
            "usage_day",
            "day",
            retention.days,
            chrono::Duration::days(1),
        ),
    ];
    for (table, column, keep, step) in cases {
        for at in [now - keep - step, now - keep + step, now] {
            sqlx::query(&format!("INSERT INTO {table} (key_id, org_id, {column}, outcome, count) VALUES ($1, $2, $3, 'valid', 1)"))
                .bind(key.id.into_uuid())
                .bind(key.org_id.into_uuid())
                .bind(at)
                .execute(app.pool())
                .await
                .unwrap();
        }
    }
    let removed = retention.enforce(app.pool(), now).await.unwrap();
    assert_eq!(removed, [1, 1, 1]);
    for (table, column, keep, _) in cases {
        let oldest: chrono::DateTime<Utc> =
            sqlx::query_scalar(&format!("SELECT min({column}) FROM {table}"))
                .fetch_one(app.pool())
                .await
                .unwrap();
        assert!(
            oldest > now - keep,
            "{table} keeps only rows inside its retention"
        );
        assert_eq!(count(&app, table).await, 2);
    }
    assert_eq!(
        retention.enforce(app.pool(), now).await.unwrap(),
        [0, 0, 0],
        "nothing more to do"
    );
}

#[tokio::test]
async fn counts_wait_out_a_database_outage_and_land_exactly_once() {
    let db = keyward_e2e::TestDb::new().await;
    let org = keyward_core::OrgId::new();
    sqlx::query("INSERT INTO orgs (id, name) VALUES ($1, 'outage')")
        .bind(org.into_uuid())
        .execute(&db.pool)
        .await
        .unwrap();
    let key = keyward_core::KeyId::new();
    let recorder = keyward_server::usage::UsageRecorder::default();
    let pool =
        keyward_server::store::connect(&keyward_server::Config::for_database(db.url.clone()))
            .await
            .unwrap();
    let now = Utc::now();
    for _ in 0..100 {
        recorder.record(key, org, "valid", now, None);
    }
    // The database goes away: no new connections, the open ones cut.
    let admin = sqlx::PgPool::connect(&format!("{}/postgres", keyward_e2e::pg_url()))
        .await
        .unwrap();
    let cut = |allow: bool| {
        let (admin, name) = (admin.clone(), db.name.clone());
        async move {
            sqlx::query(&format!(
                "ALTER DATABASE {name} WITH ALLOW_CONNECTIONS {allow}"
            ))
            .execute(&admin)
            .await
            .unwrap();
            if !allow {
                sqlx::query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                )
                .bind(&name)
                .execute(&admin)
                .await
                .unwrap();
            }
        }
    };
    cut(false).await;
    assert!(
        recorder.flush(&pool).await.is_err(),
        "the flush fails while the database is away"
    );
    for _ in 0..50 {
        recorder.record(key, org, "valid", now, None);
    }
    assert!(recorder.flush(&pool).await.is_err());
    cut(true).await;
    let mut landed = false;
    for _ in 0..50 {
        if recorder.flush(&pool).await.is_ok() {
            landed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(landed, "the flush succeeds once the database is back");
    assert_eq!(
        recorder.flush(&pool).await.unwrap(),
        0,
        "nothing left, nothing written twice"
    );
    let fresh = sqlx::PgPool::connect(&db.url).await.unwrap();
    for table in [
        "usage_minute",
        "usage_hour",
        "usage_day",
        "usage_org_minute",
        "usage_org_day",
    ] {
        let n: i64 = sqlx::query_scalar(&format!(
            "SELECT coalesce(sum(count), 0)::int8 FROM {table}"
        ))
        .fetch_one(&fresh)
        .await
        .unwrap();
        assert_eq!(n, 150, "{table}: every count exactly once");
    }
}

#[tokio::test]
async fn keys_expiring_or_unused_are_notified_once() {
    // The test runs the hourly sweep itself: the server's own must not race it.
    let app = TestApp::spawn_with(|c| c.background_jobs = false).await;
    let hook = app
        .owner
        .create_webhook(&keyward_core::api::CreateWebhookRequest {
            url: "http://127.0.0.1:9/hook".into(),
            events: Some(vec!["key.*".into()]),
            enabled: None,
        })
        .await
        .unwrap()
        .webhook;
    let now = Utc::now();
    for (name, expires_in) in [
        ("in two days", chrono::Duration::days(2)),
        ("in twelve hours", chrono::Duration::hours(12)),
        ("in a month", chrono::Duration::days(30)),
    ] {
        app.owner
            .create_key(&CreateKeyRequest {
                name: name.into(),
                expires_at: Some(now + expires_in),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let idle = app
        .owner
        .create_key(&CreateKeyRequest {
            name: "idle".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .key;
    sqlx::query("UPDATE api_keys SET created_at = $2 WHERE id = $1")
        .bind(idle.id.into_uuid())
        .bind(now - chrono::Duration::days(100))
        .execute(app.pool())
        .await
        .unwrap();
    assert_eq!(
        keyward_server::jobs::notices::sweep_hourly(app.pool(), now)
            .await
            .unwrap(),
        3,
        "seven days ahead, one day ahead (that key hears only the nearer notice), unused"
    );
    assert_eq!(
        keyward_server::jobs::notices::sweep_hourly(app.pool(), now)
            .await
            .unwrap(),
        0,
        "once per key and kind"
    );
    let mut events: Vec<String> = app
        .owner
        .webhook_deliveries(hook.id, &Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|d| d.event_type)
        .collect();
    events.sort();
    // Every event the hook received, the four creations included: none filtered away.
    assert_eq!(
        events,
        [
            "key.created",
            "key.created",
            "key.created",
            "key.created",
            "key.expiring",
            "key.expiring",
            "key.unused"
        ]
    );
}

#[tokio::test]
async fn networks_and_unrecognized_keys_are_counted() {
    let app = TestApp::spawn().await;
    let created = app
        .owner
        .create_key(&CreateKeyRequest {
            name: "roaming".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let token = created.token.unwrap();
    let verify = |ip: &str| keyward_core::api::VerifyRequest {
        key: token.clone(),
        scope: None,
        cost: None,
        client_ip: Some(ip.into()),
    };
    for ip in [
        "203.0.113.7",
        "203.0.113.200",
        "198.51.100.9",
        "2001:db8:1:2::5",
    ] {
        assert!(app.anon.verify(&verify(ip)).await.unwrap().valid);
    }
    let mut networks = Vec::new();
    for _ in 0..100 {
        networks = app.owner.key_networks(created.key.id).await.unwrap();
        if networks.len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(networks.len(), 3, "three networks: {networks:?}");
    let of = |n: &str| networks.iter().find(|x| x.network == n).map(|x| x.calls);
    assert_eq!(of("203.0.113.0/24"), Some(2), "{networks:?}");
    assert_eq!(of("198.51.100.0/24"), Some(1));
    assert_eq!(of("2001:db8:1::/48"), Some(1));

    // Keys that name no organisation are counted globally, by reason.
    let http = reqwest::Client::new();
    let whoami = |token: Option<String>| {
        let mut req = http.get(format!("{}/v1/whoami", app.server.base_url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    let unknown = keyward_core::ApiKeyToken::generate(
        keyward_core::Environment::Live,
        keyward_core::KeyId::new(),
    );
    assert_eq!(whoami(None).await.unwrap().status(), 401);
    assert_eq!(
        whoami(Some("kw_live_garbage".into()))
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        whoami(Some(unknown.expose_secret().to_owned()))
            .await
            .unwrap()
            .status(),
        401
    );
    let by_reason = || async {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT reason, sum(count)::int8 FROM unrecognized_usage_hour GROUP BY 1 ORDER BY 1",
        )
        .fetch_all(app.pool())
        .await
        .unwrap();
        rows
    };
    let counted = eventually(Duration::from_secs(10), || async {
        by_reason().await.len() == 3
    })
    .await;
    assert!(counted, "{:?}", by_reason().await);
    assert_eq!(
        by_reason().await,
        vec![
            ("malformed".to_owned(), 1),
            ("missing".to_owned(), 1),
            ("unknown".to_owned(), 1)
        ]
    );
    let metrics = app.server.metrics().await;
    for line in [
        "keyward_unrecognized_keys_total{reason=\"unknown\"} 1",
        "keyward_unrecognized_keys_total{reason=\"missing\"} 1",
        "keyward_verifications_total{code=\"valid\"} 4",
        "keyward_key_cache_misses_total",
        "keyward_usage_flush_lag_seconds",
        "keyward_usage_pending_rows",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
}
