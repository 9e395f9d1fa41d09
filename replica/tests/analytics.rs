//! Synced analytics: stored in one go, read back by hour and by day, alerts replaced but their
//! `notified_at` kept, notices picked once.

mod common;

use chrono::{DateTime, Duration, DurationRound, Utc};
use common::*;
use keyward_core::KeyId;
use keyward_core::api::OrgEvent;
use keyward_core::api::webhooks::{KeyExpiredData, KeyRevokedData, LimitEventData, WebhookEvent};
use keyward_core::api::{
    Alert, AlertStatus, KeyLimits, KeyUsageTotal, LimitUsage, UsagePoint, UsageTotals,
};
use keyward_replica::{AnalyticsSnapshot, EVENTS_KEPT, KeyHourly, NoticeKind, Replica, TopKeys};
use uuid::Uuid;

fn hour(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(Duration::hours(1)).unwrap()
}

fn p(ts: DateTime<Utc>, allowed: i64, rate_limited: i64, rejected: i64) -> UsagePoint {
    UsagePoint {
        ts,
        allowed,
        rate_limited,
        rejected,
    }
}

fn alert(key: KeyId, status: AlertStatus, opened_at: DateTime<Utc>) -> Alert {
    Alert {
        id: Uuid::now_v7(),
        key_id: key,
        key_name: "alpha".into(),
        kind: "rate_spike".into(),
        status,
        observed: 100.0,
        expected: 10.0,
        window_start: opened_at,
        window_secs: 300,
        detail: "10x the usual rate".into(),
        opened_at,
        last_seen_at: opened_at,
        acked_at: None,
        acked_by: None,
        resolved_at: None,
    }
}

fn total(key: KeyId, name: &str, allowed: i64) -> KeyUsageTotal {
    KeyUsageTotal {
        key_id: key,
        name: name.into(),
        totals: UsageTotals {
            allowed,
            rate_limited: 0,
            rejected: 1,
        },
    }
}

#[tokio::test]
async fn analytics_are_stored_and_read_back_by_hour_and_day() {
    let replica = Replica::in_memory().await.unwrap();
    assert_eq!(replica.analytics_at().await.unwrap(), None);
    let now = Utc::now();
    let h = hour(now);
    let key = server_key("alpha", Duration::days(40));
    replica
        .apply_pull(&page(vec![key_change(1, &key)]))
        .await
        .unwrap();
    let org = vec![
        p(h - Duration::days(3), 5, 0, 0),
        p(h - Duration::hours(2), 10, 1, 2),
        p(h - Duration::hours(1), 20, 0, 3),
    ];
    let open = alert(key.id, AlertStatus::Open, now - Duration::minutes(5));
    let snapshot = AnalyticsSnapshot {
        at: now,
        org_hourly: org.clone(),
        key_hourly: vec![KeyHourly {
            key_id: key.id,
            points: vec![p(h - Duration::hours(1), 20, 0, 3)],
        }],
        top: vec![TopKeys {
            period: "24h".into(),
            by_volume: vec![total(key.id, "alpha", 30)],
            by_rejections: vec![total(key.id, "alpha", 30)],
        }],
        alerts: vec![open.clone()],
        limits: vec![],
        events: vec![],
    };
    replica.store_analytics(&snapshot).await.unwrap();
    assert_eq!(
        replica
            .analytics_at()
            .await
            .unwrap()
            .map(|t| t.timestamp_micros()),
        Some(now.timestamp_micros())
    );

    // Hourly over the last day; by day over the month.
    let day = replica
        .org_usage(now - Duration::hours(24), now, false)
        .await
        .unwrap();
    assert_eq!(day, org[1..].to_vec());
    let month = replica
        .org_usage(now - Duration::days(30), now, true)
        .await
        .unwrap();
    let sum: i64 = month.iter().map(|p| p.allowed).sum();
    assert_eq!(sum, 35);
    assert!(
        month
            .iter()
            .all(|p| p.ts == p.ts.duration_trunc(Duration::days(1)).unwrap())
    );

    let (series, fetched) = replica
        .key_usage(key.id, now - Duration::days(30), now, false)
        .await
        .unwrap();
    assert_eq!(series.len(), 1);
    assert!(fetched.is_some());
    let (none, never) = replica
        .key_usage(KeyId::new(), now - Duration::days(30), now, false)
        .await
        .unwrap();
    assert!(none.is_empty() && never.is_none());

    let (volume, rejections) = replica.top_keys("24h").await.unwrap();
    assert_eq!(volume[0].name, "alpha");
    assert_eq!(rejections.len(), 1);
    assert!(replica.top_keys("7d").await.unwrap().0.is_empty());

    // Notify the open alert once; a later pull keeps `notified_at` and drops what the server no
    // longer lists.
    let first = replica.notices_to_show(now).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].kind, NoticeKind::Alert);
    replica.mark_notified(&first, now).await.unwrap();
    assert!(replica.notices_to_show(now).await.unwrap().is_empty());

    let second_alert = alert(key.id, AlertStatus::Open, now - Duration::minutes(1));
    let mut acked = open.clone();
    acked.status = AlertStatus::Acked;
    replica
        .store_analytics(&AnalyticsSnapshot {
            at: now + Duration::minutes(1),
            alerts: vec![acked.clone(), second_alert.clone()],
            key_hourly: vec![],
            ..snapshot.clone()
        })
        .await
        .unwrap();
    let stored = replica.alerts(None).await.unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0].alert, second_alert, "newest first");
    assert!(stored[1].notified_at.is_some(), "kept across pulls");
    assert_eq!(
        replica.alerts(Some(AlertStatus::Open)).await.unwrap().len(),
        1
    );
    let next = replica.notices_to_show(now).await.unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].id, format!("alert:{}", second_alert.id));

    // The key's series survives a pull that does not list it.
    let (series, _) = replica
        .key_usage(key.id, now - Duration::days(30), now, false)
        .await
        .unwrap();
    assert_eq!(series.len(), 1);

    // An acknowledgement answered by the server updates the row.
    let mut acked_second = second_alert.clone();
    acked_second.status = AlertStatus::Acked;
    replica.put_alert(&acked_second).await.unwrap();
    assert!(
        replica
            .alerts(Some(AlertStatus::Open))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn expiry_and_limit_notices_are_shown_once() {
    let replica = Replica::in_memory().await.unwrap();
    let now = Utc::now();
    let mut expiring = server_key("expiring", Duration::days(10));
    expiring.expires_at = Some(now + Duration::days(2));
    let mut limited = server_key("limited", Duration::days(10));
    limited.rate_limits = Some(vec![]);
    let plain = server_key("plain", Duration::days(10));
    replica
        .apply_pull(&page(vec![
            key_change(1, &expiring),
            key_change(2, &limited),
            key_change(3, &plain),
        ]))
        .await
        .unwrap();
    assert_eq!(
        replica.keys_with_limits(10).await.unwrap(),
        vec![limited.id]
    );
    let standing = KeyLimits {
        key_id: limited.id,
        tier: None,
        soft_threshold: 0.8,
        rules: vec![LimitUsage {
            policy: "day".into(),
            kind: "daily".into(),
            limit: 10,
            window_seconds: 86_400,
            used: 9,
            remaining: 1,
            reset_seconds: 3600,
            consistency: Default::default(),
        }],
        violations: vec![],
        mode: "local".into(),
        forecast: vec![],
    };
    replica.store_key_limits(&standing, now).await.unwrap();
    let (kept, at) = replica.key_limits(limited.id).await.unwrap().unwrap();
    assert_eq!(kept, standing);
    assert_eq!(at.timestamp_micros(), now.timestamp_micros());

    let attention = replica.attention(now).await.unwrap();
    let kinds: Vec<(NoticeKind, &str)> = attention
        .iter()
        .map(|n| (n.kind, n.key_name.as_str()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (NoticeKind::Expiry, "expiring"),
            (NoticeKind::Limit, "limited")
        ]
    );

    let shown = replica.notices_to_show(now).await.unwrap();
    assert_eq!(shown.len(), 2);
    replica.mark_notified(&shown, now).await.unwrap();
    assert!(replica.notices_to_show(now).await.unwrap().is_empty());
    // Still listed for the dashboard after being notified.
    assert_eq!(replica.attention(now).await.unwrap().len(), 2);
}

fn expired(key: KeyId, at: DateTime<Utc>) -> OrgEvent {
    OrgEvent {
        id: Uuid::now_v7(),
        key_id: Some(key),
        created_at: at,
        event: WebhookEvent::KeyExpired(KeyExpiredData {
            key_id: key,
            name: "alpha".into(),
            expires_at: at,
        }),
    }
}

fn empty_snapshot(at: DateTime<Utc>, events: Vec<OrgEvent>) -> AnalyticsSnapshot {
    AnalyticsSnapshot {
        at,
        org_hourly: vec![],
        key_hourly: vec![],
        top: vec![],
        alerts: vec![],
        limits: vec![],
        events,
    }
}

#[tokio::test]
async fn pulled_events_are_stored_listed_newest_first_and_capped() {
    let replica = Replica::in_memory().await.unwrap();
    assert!(replica.events(100).await.unwrap().is_empty());
    let now = Utc::now()
        .duration_trunc(Duration::microseconds(1))
        .unwrap();
    let key = KeyId::new();
    let old = expired(key, now - Duration::hours(2));
    let revoked = OrgEvent {
        id: Uuid::now_v7(),
        key_id: Some(key),
        created_at: now - Duration::hours(1),
        event: WebhookEvent::KeyRevoked(KeyRevokedData {
            key_id: key,
            name: "alpha".into(),
            revoked_at: now - Duration::hours(1),
            reason: Some("leaked".into()),
            replaced_by: None,
        }),
    };
    let quota = OrgEvent {
        id: Uuid::now_v7(),
        key_id: Some(key),
        created_at: now,
        event: WebhookEvent::LimitQuotaExceeded(LimitEventData {
            key_id: key,
            rule: "daily".into(),
            window_index: 20_000,
            used: 3,
            limit: 3,
            at: now,
        }),
    };
    replica
        .store_analytics(&empty_snapshot(now, vec![old.clone(), quota.clone()]))
        .await
        .unwrap();
    // A later pull adds what is new; one already stored is upserted, not doubled.
    replica
        .store_analytics(&empty_snapshot(
            now + Duration::minutes(1),
            vec![revoked.clone(), quota.clone()],
        ))
        .await
        .unwrap();
    let listed = replica.events(100).await.unwrap();
    assert_eq!(listed, vec![quota.clone(), revoked.clone(), old.clone()]);
    assert_eq!(replica.events(1).await.unwrap(), vec![quota.clone()]);
    let ids = replica.event_ids().await.unwrap();
    assert!(ids.contains(&old.id) && ids.contains(&revoked.id) && ids.contains(&quota.id));
    // Offline, the screen says when this was pulled.
    assert_eq!(
        replica
            .analytics_at()
            .await
            .unwrap()
            .map(|t| t.timestamp_micros()),
        Some((now + Duration::minutes(1)).timestamp_micros())
    );

    // Only the newest EVENTS_KEPT stay.
    let many: Vec<OrgEvent> = (0..EVENTS_KEPT + 10)
        .map(|i| expired(key, now + Duration::seconds(i64::from(i) + 1)))
        .collect();
    replica
        .store_analytics(&empty_snapshot(now + Duration::minutes(2), many.clone()))
        .await
        .unwrap();
    let kept = replica.events(EVENTS_KEPT * 2).await.unwrap();
    assert_eq!(kept.len(), EVENTS_KEPT as usize);
    assert_eq!(kept[0], *many.last().unwrap());
    assert!(!kept.iter().any(|e| e.id == old.id), "the oldest went");
}
