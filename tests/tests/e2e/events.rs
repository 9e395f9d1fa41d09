//! The event log (`GET /v1/events`) against a real server, with no webhook configured: a key
//! that expires, a revoked key and a used-up quota are each listed once with their typed
//! payloads, newest first, filtered by type, category and key, paged with a cursor; another
//! organisation sees none of them; bad query values are refused with problem+json.

use std::collections::HashSet;
use std::time::Duration;

use keyward_core::api::webhooks::WebhookEvent;
use keyward_core::api::{
    CreateKeyRequest, CreateTierRequest, EventsQuery, OrgEvent, Quota, RevokeKeyRequest, Role,
};
use keyward_e2e::{TestApp, clear_of_utc_midnight, eventually};
use secrecy::ExposeSecret;

async fn all_events(client: &keyward_client::KeywardClient, q: EventsQuery) -> Vec<OrgEvent> {
    client.events(&q).await.unwrap().items
}

fn types(events: &[OrgEvent]) -> Vec<&'static str> {
    events.iter().map(|e| e.event.event_type()).collect()
}

#[tokio::test]
async fn events_are_recorded_without_webhooks_and_listed_per_org() {
    clear_of_utc_midnight(Duration::from_secs(60)).await;
    let app = TestApp::spawn_with(|c| {
        c.keys.events_interval = Duration::from_secs(1);
        c.usage.flush_interval = Duration::from_millis(200);
    })
    .await;
    let now = chrono::Utc::now();
    let mint = |name: &str| CreateKeyRequest {
        name: name.into(),
        ..Default::default()
    };
    // key.expired, by the due sweep.
    let expiring = app
        .owner
        .create_key(&CreateKeyRequest {
            expires_at: Some(now + chrono::Duration::seconds(2)),
            ..mint("expiring")
        })
        .await
        .unwrap();
    // key.revoked at once, with a reason.
    let revoked = app.owner.create_key(&mint("revoked")).await.unwrap();
    app.owner
        .revoke_key(
            revoked.key.id,
            &RevokeKeyRequest {
                grace_seconds: None,
                reason: Some("leaked in a log".into()),
            },
        )
        .await
        .unwrap();
    // limit.quota_exceeded at the third call of a daily quota of 2.
    app.owner
        .create_tier(&CreateTierRequest {
            name: "two".into(),
            quota: Some(Quota {
                daily: Some(2),
                monthly: None,
                consistency: Default::default(),
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let quota = app
        .owner
        .create_key(&CreateKeyRequest {
            tier: Some("two".into()),
            ..mint("quota")
        })
        .await
        .unwrap();
    let client = app.server.client();
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(match client.whoami(quota.token.as_deref().unwrap()).await {
            Ok(_) => 200,
            Err(e) => e.status().map_or(0, |s| s.as_u16()),
        });
    }
    assert_eq!(statuses, [200, 200, 429]);

    let wanted = ["key.expired", "key.revoked", "limit.quota_exceeded"];
    let found = eventually(Duration::from_secs(20), || async {
        let got = all_events(&app.owner, EventsQuery::default()).await;
        wanted.iter().all(|w| types(&got).contains(w))
    })
    .await;
    let events = all_events(&app.owner, EventsQuery::default()).await;
    assert!(found, "got {:?}", types(&events));

    // Each once, with its typed payload and key.
    let one = |t: &str| {
        let of: Vec<&OrgEvent> = events
            .iter()
            .filter(|e| e.event.event_type() == t)
            .collect();
        assert_eq!(of.len(), 1, "{t}: {:?}", types(&events));
        of[0].clone()
    };
    let expired = one("key.expired");
    assert_eq!(expired.key_id, Some(expiring.key.id));
    match &expired.event {
        WebhookEvent::KeyExpired(d) => {
            assert_eq!(d.key_id, expiring.key.id);
            assert_eq!(d.name, "expiring");
            assert_eq!(
                d.expires_at.timestamp(),
                expiring.key.expires_at.unwrap().timestamp()
            );
        }
        other => panic!("{other:?}"),
    }
    let revocation = one("key.revoked");
    assert_eq!(revocation.key_id, Some(revoked.key.id));
    match &revocation.event {
        WebhookEvent::KeyRevoked(d) => {
            assert_eq!(d.name, "revoked");
            assert_eq!(d.reason.as_deref(), Some("leaked in a log"));
            assert_eq!(d.replaced_by, None);
        }
        other => panic!("{other:?}"),
    }
    let exceeded = one("limit.quota_exceeded");
    assert_eq!(exceeded.key_id, Some(quota.key.id));
    match &exceeded.event {
        WebhookEvent::LimitQuotaExceeded(d) => {
            assert_eq!(d.key_id, quota.key.id);
            assert_eq!(d.rule, "daily");
            assert_eq!(d.limit, 2);
            assert_eq!(d.window_index, chrono::Utc::now().timestamp() / 86_400);
        }
        other => panic!("{other:?}"),
    }
    // Every key's creation is there too; newest first.
    assert_eq!(
        events
            .iter()
            .filter(|e| e.event.event_type() == "key.created")
            .count(),
        3
    );
    assert!(
        events
            .windows(2)
            .all(|w| (w[0].created_at, w[0].id) > (w[1].created_at, w[1].id)),
        "newest first"
    );
    // Raw JSON: `{id, type, key_id, created_at, data}`.
    let raw = serde_json::to_value(&revocation).unwrap();
    for field in ["id", "type", "key_id", "created_at", "data"] {
        assert!(raw.get(field).is_some(), "{field} in {raw}");
    }

    // No webhook was configured, and no delivery made.
    assert!(app.owner.list_webhooks().await.unwrap().is_empty());
    let deliveries: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_deliveries")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(deliveries, 0);

    // Filters: an exact type, a category, a key.
    let only = all_events(
        &app.owner,
        EventsQuery {
            event_type: Some("key.revoked".into()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(types(&only), ["key.revoked"]);
    let keys = all_events(
        &app.owner,
        EventsQuery {
            event_type: Some("key.*".into()),
            ..Default::default()
        },
    )
    .await;
    assert!(
        !keys.is_empty()
            && keys
                .iter()
                .all(|e| e.event.event_type().starts_with("key."))
    );
    assert!(!types(&keys).contains(&"limit.quota_exceeded"));
    let of_quota = all_events(
        &app.owner,
        EventsQuery {
            key_id: Some(quota.key.id),
            ..Default::default()
        },
    )
    .await;
    assert!(of_quota.iter().all(|e| e.key_id == Some(quota.key.id)));
    assert!(types(&of_quota).contains(&"limit.quota_exceeded"));
    assert!(types(&of_quota).contains(&"key.created"));

    // Paging: one at a time walks the same list, without repeats.
    let mut paged = Vec::new();
    let mut cursor = None;
    loop {
        let page = app
            .owner
            .events(&EventsQuery {
                limit: Some(1),
                cursor: cursor.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(page.items.len() <= 1);
        paged.extend(page.items);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
        assert!(paged.len() <= events.len() + 5, "paging does not end");
    }
    let ids: Vec<_> = paged.iter().map(|e| e.id).collect();
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len());
    let now_listed: Vec<_> = all_events(&app.owner, EventsQuery::default())
        .await
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids, now_listed);

    // Another organisation sees none of them, not even by key id or with this org's cursor.
    let other = app.admin("Other", "owner@other.test", Role::Owner).await;
    assert!(all_events(&other, EventsQuery::default()).await.is_empty());
    assert!(
        all_events(
            &other,
            EventsQuery {
                key_id: Some(quota.key.id),
                ..Default::default()
            }
        )
        .await
        .is_empty()
    );
    let first = app
        .owner
        .events(&EventsQuery {
            limit: Some(1),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        all_events(
            &other,
            EventsQuery {
                cursor: first.next_cursor,
                ..Default::default()
            }
        )
        .await
        .is_empty()
    );

    // Bad query values: problem+json naming the parameter; no session: 401.
    let http = reqwest::Client::new();
    let session = app.owner.session().unwrap().expose_secret().to_owned();
    let get = |query: &'static str| {
        let (http, session) = (http.clone(), session.clone());
        let url = format!("{}/v1/events?{query}", app.anon.base_url());
        async move {
            let res = http.get(url).bearer_auth(session).send().await.unwrap();
            let status = res.status().as_u16();
            let ct = res
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            let body: serde_json::Value = res.json().await.unwrap_or_default();
            (status, ct, body)
        }
    };
    for (query, field) in [
        ("type=nope", "type"),
        ("type=key.nope", "type"),
        ("type=nope.*", "type"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=abc", "limit"),
        ("cursor=not-a-cursor", "cursor"),
        ("key_id=not-a-uuid", "key_id"),
        ("colour=blue", "colour"),
    ] {
        let (status, ct, body) = get(query).await;
        assert!(status == 422 || status == 400, "{query}: {status} {body}");
        assert_eq!(ct, "application/problem+json", "{query}");
        let fields: Vec<&str> = body["errors"]
            .as_array()
            .map(|a| a.iter().filter_map(|e| e["field"].as_str()).collect())
            .unwrap_or_default();
        assert!(fields.contains(&field), "{query}: {body}");
    }
    let (status, _, body) = get("type=key.*&limit=2").await;
    assert_eq!(status, 200, "{body}");
    let anon = http
        .get(format!("{}/v1/events", app.anon.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status().as_u16(), 401);

    // The API document describes it.
    let doc: serde_json::Value = http
        .get(format!("{}/openapi.json", app.anon.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let op = &doc["paths"]["/v1/events"]["get"];
    assert!(op.is_object(), "/v1/events is documented");
    let params: Vec<&str> = op["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    for p in ["limit", "cursor", "type", "key_id"] {
        assert!(params.contains(&p), "{p} in {params:?}");
    }
    assert!(doc["components"]["schemas"]["OrgEvent"].is_object());
}

/// The desktop's analytics pull (run after sync rounds) brings the event log into the replica,
/// where the Alerts screen reads it offline; a second pull adds only what is new.
#[tokio::test]
async fn the_replica_pulls_the_event_log_with_the_analytics() {
    use keyward_replica::{Replica, SyncEngine};
    let app = TestApp::spawn().await;
    let replica = Replica::in_memory().await.unwrap();
    let engine = SyncEngine::new(replica.clone(), app.owner.clone());
    let key = app
        .owner
        .create_key(&CreateKeyRequest {
            name: "desk".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    engine.sync_once().await.unwrap();
    engine.pull_analytics(5).await.unwrap();
    let first = replica.events(100).await.unwrap();
    assert_eq!(types(&first), ["key.created"]);
    assert_eq!(first[0].key_id, Some(key.key.id));
    assert!(replica.analytics_at().await.unwrap().is_some());

    app.owner
        .revoke_key(
            key.key.id,
            &RevokeKeyRequest {
                grace_seconds: None,
                reason: Some("lost laptop".into()),
            },
        )
        .await
        .unwrap();
    engine.pull_analytics(5).await.unwrap();
    let stored = replica.events(100).await.unwrap();
    assert_eq!(
        types(&stored),
        ["key.revoked", "key.created"],
        "newest first"
    );
    match &stored[0].event {
        WebhookEvent::KeyRevoked(d) => assert_eq!(d.reason.as_deref(), Some("lost laptop")),
        other => panic!("{other:?}"),
    }
    // The server's list and the replica's agree.
    assert_eq!(stored, all_events(&app.owner, EventsQuery::default()).await);
}
