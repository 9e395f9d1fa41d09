//! The alerts job against a real database: days of steady traffic, then a spike, open an alert
//! naming the key with observed and expected values; it can be acknowledged, resolves by itself
//! when traffic settles, and each step is a webhook event.

use chrono::{DateTime, Utc};
use keyward_core::api::{
    AlertFilter, AlertStatus, AlertsQuery, CreateKeyRequest, CreateWebhookRequest,
};
use keyward_e2e::TestApp;

pub(crate) fn align(t: DateTime<Utc>) -> DateTime<Utc> {
    let ts = t.timestamp();
    DateTime::from_timestamp(ts - ts.rem_euclid(300), 0).unwrap()
}

/// Per-minute `valid` counts for `[from, to)`: `per_minute(i)` for the i-th minute.
pub(crate) async fn seed(
    app: &TestApp,
    key: &keyward_core::api::ApiKey,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    per_minute: &str,
) {
    sqlx::query(&format!(
        "INSERT INTO usage_minute (key_id, org_id, minute, outcome, count)
         SELECT $1, $2, m, 'valid', {per_minute}
           FROM generate_series($3::timestamptz, $4::timestamptz - interval '1 minute', interval '1 minute') WITH ORDINALITY AS s(m, i)"
    ))
    .bind(key.id.into_uuid())
    .bind(key.org_id.into_uuid())
    .bind(from)
    .bind(to)
    .execute(app.pool())
    .await
    .unwrap();
}

#[tokio::test]
async fn a_spike_opens_an_alert_that_is_acked_and_resolves_when_traffic_settles() {
    // The test runs the detector itself: the server's own job must not race it.
    let app = TestApp::spawn_with(|c| c.background_jobs = false).await;
    let receiver = crate::webhooks::Receiver::start(0).await;
    let created = app
        .owner
        .create_webhook(&CreateWebhookRequest {
            url: format!("{}/alerts", receiver.url),
            events: Some(vec!["alert.*".into()]),
            enabled: None,
        })
        .await
        .unwrap();
    let (hook, secret) = (created.webhook, created.secret);
    let key = app
        .owner
        .create_key(&CreateKeyRequest {
            name: "spiky".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .key;
    let end = align(Utc::now()) - chrono::Duration::minutes(10);
    let spike = end - chrono::Duration::minutes(15);
    // Four days of about 40 calls a minute (200 per 5-minute window), then 15 minutes of 400.
    seed(
        &app,
        &key,
        end - chrono::Duration::days(4),
        spike,
        "38 + (i % 5)",
    )
    .await;
    seed(&app, &key, spike, end, "400").await;

    let opened =
        keyward_server::jobs::alerts::run_once(app.pool(), end + chrono::Duration::seconds(5))
            .await
            .unwrap();
    assert_eq!(
        opened, 1,
        "one alert for the spike, refreshed while it lasts"
    );
    let alerts = app.owner.alerts(&AlertsQuery::default()).await.unwrap();
    assert_eq!(alerts.len(), 1);
    let a = &alerts[0];
    assert_eq!(
        (a.key_id, a.key_name.as_str(), a.kind.as_str(), a.status),
        (key.id, "spiky", "rate_spike", AlertStatus::Open)
    );
    assert_eq!(a.observed, 2000.0, "400 a minute over a 5-minute window");
    assert!(
        a.expected > 150.0 && a.expected < 260.0,
        "the baseline is about 200: {}",
        a.expected
    );
    assert_eq!(a.window_secs, 300);
    assert_eq!(
        keyward_server::jobs::alerts::run_once(app.pool(), end + chrono::Duration::seconds(30))
            .await
            .unwrap(),
        0,
        "nothing new"
    );

    let acked = app.owner.ack_alert(a.id).await.unwrap();
    assert_eq!(acked.acked_by.as_deref(), Some("owner@acme.test"));
    assert_eq!(acked.status, AlertStatus::Acked);
    assert_eq!(
        app.owner.ack_alert(a.id).await.unwrap_err().code(),
        Some("alert_not_open")
    );
    assert_eq!(
        app.owner
            .ack_alert(uuid::Uuid::now_v7())
            .await
            .unwrap_err()
            .code(),
        Some("alert_not_found")
    );

    // Traffic settles: the next window is normal again and the alert resolves itself.
    seed(&app, &key, end, end + chrono::Duration::minutes(5), "40").await;
    keyward_server::jobs::alerts::run_once(
        app.pool(),
        end + chrono::Duration::minutes(5) + chrono::Duration::seconds(5),
    )
    .await
    .unwrap();
    assert!(
        app.owner
            .alerts(&AlertsQuery::default())
            .await
            .unwrap()
            .is_empty(),
        "no open alert left"
    );
    let resolved = app
        .owner
        .alerts(&AlertsQuery {
            status: Some(AlertFilter::Resolved),
        })
        .await
        .unwrap();
    assert_eq!(resolved.len(), 1);
    assert!(resolved[0].resolved_at.is_some() && resolved[0].acked_at.is_some());

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
    assert_eq!(events, ["alert.acked", "alert.opened", "alert.resolved"]);
    // Delivered, signed, each carrying its alert: what an endpoint receives, not only names.
    let got = receiver.wait_for(3).await;
    let mut bodies = std::collections::BTreeMap::new();
    for r in &got {
        assert!(
            crate::webhooks::signature_verifies(&secret, r),
            "signed: {r:?}"
        );
        let b: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        bodies.insert(b["type"].as_str().unwrap().to_owned(), b["data"].clone());
    }
    assert_eq!(bodies.len(), 3, "{got:?}");
    for data in bodies.values() {
        assert_eq!(data["alert_id"], serde_json::json!(a.id));
        assert_eq!(data["key_id"], serde_json::json!(key.id));
        assert_eq!(data["kind"], "rate_spike");
    }
    let opened = &bodies["alert.opened"];
    assert_eq!(opened["observed"], 2000.0);
    assert_eq!(opened["window_secs"], 300);
    // The baseline as it stood when the alert opened (the alert itself is refreshed after).
    let expected = opened["expected"].as_f64().unwrap();
    assert!((150.0..260.0).contains(&expected), "{expected}");
    assert_eq!(bodies["alert.acked"]["acked_by"], "owner@acme.test");
    let audit: Vec<String> = app
        .owner
        .audit(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert!(audit.iter().any(|a| a == "alert.ack"));
}

#[tokio::test]
async fn steady_traffic_opens_no_alert() {
    // The test runs the detector itself: the server's own job must not race it.
    let app = TestApp::spawn_with(|c| c.background_jobs = false).await;
    let key = app
        .owner
        .create_key(&CreateKeyRequest {
            name: "steady".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .key;
    let end = align(Utc::now()) - chrono::Duration::minutes(10);
    seed(
        &app,
        &key,
        end - chrono::Duration::days(4),
        end,
        "38 + (i % 5)",
    )
    .await;
    assert_eq!(
        keyward_server::jobs::alerts::run_once(app.pool(), end + chrono::Duration::seconds(5))
            .await
            .unwrap(),
        0
    );
    assert!(
        app.owner
            .alerts(&AlertsQuery {
                status: Some(AlertFilter::All)
            })
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn thresholds_are_per_organisation_and_feed_the_new_network_detector() {
    // The test runs the detector itself: the server's own job must not race it.
    let app = TestApp::spawn_with(|c| c.background_jobs = false).await;
    let key = app
        .owner
        .create_key(&CreateKeyRequest {
            name: "roaming".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .key;
    let t0 = align(Utc::now()) - chrono::Duration::hours(2);
    seed(&app, &key, t0, t0 + chrono::Duration::minutes(60), "5").await;
    let network = |net: &str, at: DateTime<Utc>| {
        sqlx::query(
            "INSERT INTO key_networks (key_id, network, org_id, first_seen, last_seen, calls)
             VALUES ($1, $2, $3, $4, $4, 5)",
        )
        .bind(key.id.into_uuid())
        .bind(net.to_owned())
        .bind(key.org_id.into_uuid())
        .bind(at)
        .execute(app.pool())
    };
    network("203.0.113.0/24", t0 + chrono::Duration::minutes(1))
        .await
        .unwrap();
    keyward_server::jobs::alerts::run_once(app.pool(), t0 + chrono::Duration::minutes(30))
        .await
        .unwrap();
    let open = app.owner.alerts(&AlertsQuery::default()).await.unwrap();
    assert!(open.is_empty(), "the first network is learned: {open:?}");

    // Out-of-range settings are refused field by field and change nothing.
    let defaults = app.owner.alert_settings().await.unwrap();
    assert_eq!(defaults, keyward_core::anomaly::Thresholds::default());
    let bad = keyward_core::anomaly::Thresholds {
        z_score: 0.0,
        ewma_alpha: 2.0,
        ..Default::default()
    };
    let err = app.owner.set_alert_settings(&bad).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(422));
    let fields: Vec<String> = err
        .problem()
        .map(|p| p.errors.iter().map(|e| e.field.clone()).collect())
        .unwrap_or_default();
    assert_eq!(fields, ["z_score", "ewma_alpha"]);
    assert_eq!(app.owner.alert_settings().await.unwrap(), defaults);
    let viewer = app
        .admin("Acme", "viewer@acme.test", keyward_core::api::Role::Viewer)
        .await;
    let quick = keyward_core::anomaly::Thresholds {
        network_warmup_hours: 0,
        ..Default::default()
    };
    assert_eq!(
        viewer
            .set_alert_settings(&quick)
            .await
            .unwrap_err()
            .status()
            .map(|s| s.as_u16()),
        Some(403)
    );
    assert_eq!(app.owner.set_alert_settings(&quick).await.unwrap(), quick);
    assert_eq!(app.owner.alert_settings().await.unwrap(), quick);
    let audited: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'alerts.settings'")
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!(audited, 1);

    // Without a warm-up, the next new network is reported, naming it.
    network("198.51.100.0/24", t0 + chrono::Duration::minutes(40))
        .await
        .unwrap();
    let opened =
        keyward_server::jobs::alerts::run_once(app.pool(), t0 + chrono::Duration::minutes(60))
            .await
            .unwrap();
    assert_eq!(opened, 1);
    let open = app.owner.alerts(&AlertsQuery::default()).await.unwrap();
    assert_eq!(open.len(), 1, "{open:?}");
    let a = &open[0];
    assert_eq!((a.kind.as_str(), a.key_id), ("new_network", key.id));
    assert!(a.detail.contains("198.51.100.0/24"), "{}", a.detail);
    assert_eq!((a.observed, a.expected), (2.0, 1.0));
}
