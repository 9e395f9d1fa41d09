//! The alerts job against a real database: days of steady traffic, then a spike, open an alert
//! naming the key with observed and expected values; it can be acknowledged, resolves by itself
//! when traffic settles, and each step is a webhook event.

use chrono::{DateTime, Utc};
use keyward_core::api::{
    AlertFilter, AlertStatus, AlertsQuery, CreateKeyRequest, CreateWebhookRequest,
};
use keyward_e2e::TestApp;

fn align(t: DateTime<Utc>) -> DateTime<Utc> {
    let ts = t.timestamp();
    DateTime::from_timestamp(ts - ts.rem_euclid(300), 0).unwrap()
}

/// Per-minute `valid` counts for `[from, to)`: `per_minute(i)` for the i-th minute.
async fn seed(
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
    let app = TestApp::spawn().await;
    let hook = app
        .owner
        .create_webhook(&CreateWebhookRequest {
            url: "http://127.0.0.1:9/hook".into(),
            events: Some(vec!["alert.*".into()]),
            enabled: None,
        })
        .await
        .unwrap()
        .webhook;
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

    let opened = keyward_server::alerts::run_once(app.pool(), end + chrono::Duration::seconds(5))
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
        keyward_server::alerts::run_once(app.pool(), end + chrono::Duration::seconds(30))
            .await
            .unwrap(),
        0,
        "nothing new"
    );

    let acked = app.owner.ack_alert(a.id).await.unwrap();
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
    keyward_server::alerts::run_once(
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
    let app = TestApp::spawn().await;
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
        keyward_server::alerts::run_once(app.pool(), end + chrono::Duration::seconds(5))
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
