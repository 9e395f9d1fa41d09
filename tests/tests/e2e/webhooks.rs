//! Webhooks against a real server and a local receiver: the secret is shown once and kept only
//! encrypted, deliveries carry Standard Webhooks headers whose signature verifies with an
//! independent HMAC implementation, failures are retried under one message id until delivered
//! or given up, events reach only the endpoints whose patterns select them, and bad input is
//! refused with nothing stored.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode, Uri};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use keyward_client::KeywardClient;
use keyward_core::api::{
    CreateWebhookRequest, CreatedWebhook, DeliveryStatus, PageQuery, Role, WebhookDelivery,
};
use keyward_e2e::{TestApp, eventually};
use secrecy::ExposeSecret;
use sha2::Sha256;
use tokio::net::TcpListener;
use uuid::Uuid;

// --- a local receiver ---

#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) path: String,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
}

impl Received {
    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

#[derive(Default)]
struct ReceiverState {
    requests: Mutex<Vec<Received>>,
    /// Calls answered 500 before the first 200 (`usize::MAX`: always 500).
    fail_first: AtomicUsize,
    calls: AtomicUsize,
}

/// An HTTP server on 127.0.0.1:random that records every request and answers 500 to the first
/// `fail_first` of them, 200 after that.
pub(crate) struct Receiver {
    pub(crate) url: String,
    state: Arc<ReceiverState>,
}

impl Receiver {
    pub(crate) async fn start(fail_first: usize) -> Receiver {
        let state = Arc::new(ReceiverState::default());
        state.fail_first.store(fail_first, Ordering::SeqCst);
        let shared = state.clone();
        let app =
            axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: String| {
                let state = shared.clone();
                async move {
                    let n = state.calls.fetch_add(1, Ordering::SeqCst);
                    state.requests.lock().unwrap().push(Received {
                        path: uri.path().to_owned(),
                        headers,
                        body,
                    });
                    if n < state.fail_first.load(Ordering::SeqCst) {
                        StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        StatusCode::OK
                    }
                }
            });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver {
            url: format!("http://{addr}"),
            state,
        }
    }

    pub(crate) fn requests(&self) -> Vec<Received> {
        self.state.requests.lock().unwrap().clone()
    }

    pub(crate) async fn wait_for(&self, n: usize) -> Vec<Received> {
        assert!(
            eventually(Duration::from_secs(10), || async {
                self.requests().len() >= n
            })
            .await,
            "expected {n} requests, got {:?}",
            self.requests()
        );
        self.requests()
    }
}

// --- an independent Standard Webhooks verifier ---

/// Checks `webhook-signature` against HMAC-SHA256 over `{id}.{timestamp}.{body}` keyed with the
/// base64-decoded part of the secret after `whsec_` (the hmac crate directly, not server code).
pub(crate) fn signature_verifies(secret: &str, r: &Received) -> bool {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").expect("whsec_ prefix"))
        .expect("base64 secret");
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).unwrap();
    mac.update(
        format!(
            "{}.{}.{}",
            r.header("webhook-id"),
            r.header("webhook-timestamp"),
            r.body
        )
        .as_bytes(),
    );
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    // The header may list several space-separated signatures.
    r.header("webhook-signature")
        .split(' ')
        .any(|s| s == expected)
}

fn assert_fresh_timestamp(r: &Received) {
    let ts: i64 = r
        .header("webhook-timestamp")
        .parse()
        .expect("webhook-timestamp is unix seconds");
    let now = chrono::Utc::now().timestamp();
    assert!((now - ts).abs() <= 300, "timestamp {ts} vs now {now}");
}

// --- helpers ---

async fn create(owner: &KeywardClient, url: &str, events: Option<&[&str]>) -> CreatedWebhook {
    owner
        .create_webhook(&CreateWebhookRequest {
            url: url.to_owned(),
            events: events.map(|e| e.iter().map(|s| s.to_string()).collect()),
            enabled: None,
        })
        .await
        .expect("create webhook")
}

async fn deliveries(owner: &KeywardClient, id: Uuid) -> Vec<WebhookDelivery> {
    owner
        .webhook_deliveries(id, &PageQuery::default())
        .await
        .expect("deliveries")
        .items
}

/// Waits until the endpoint's newest delivery is settled, and returns it.
async fn settled(owner: &KeywardClient, id: Uuid) -> WebhookDelivery {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let newest = deliveries(owner, id).await.into_iter().next();
        if let Some(d) = &newest
            && d.status != DeliveryStatus::Pending
        {
            return newest.unwrap();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "delivery did not settle: {newest:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn session(client: &KeywardClient) -> String {
    client.session().unwrap().expose_secret().to_owned()
}

async fn org_id(app: &TestApp, name: &str) -> keyward_core::OrgId {
    let id: Uuid = sqlx::query_scalar("SELECT id FROM orgs WHERE name = $1")
        .bind(name)
        .fetch_one(app.pool())
        .await
        .unwrap();
    keyward_core::OrgId::from_uuid(id)
}

/// Everything this server process logs, from the first call on (one subscriber per process).
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl Write for Sink {
            fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(data);
                Ok(data.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || Sink(sink.clone()))
            .try_init();
        buf
    })
    .clone()
}

// --- tests ---

#[tokio::test]
async fn test_event_is_signed_and_the_secret_is_shown_once() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(0).await;
    let created = create(&app.owner, &format!("{}/hooks", receiver.url), None).await;
    let secret = created.secret.clone();
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert_eq!(
        STANDARD.decode(&secret["whsec_".len()..]).unwrap().len(),
        32
    );
    let hook = &created.webhook;
    assert_eq!(hook.events, ["*"]);
    assert!(hook.enabled);
    assert_eq!(hook.url, format!("{}/hooks", receiver.url));

    // No read ever shows the secret again.
    let http = reqwest::Client::new();
    let b64 = &secret["whsec_".len()..];
    for path in [
        "/v1/webhooks".to_owned(),
        format!("/v1/webhooks/{}", hook.id),
        "/v1/audit".to_owned(),
        "/v1/sync/pull?since=0".to_owned(),
    ] {
        let res = http
            .get(format!("{}{path}", app.server.base_url))
            .bearer_auth(session(&app.owner))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{path}");
        let text = res.text().await.unwrap();
        assert!(
            !text.contains(b64) && !text.contains("whsec_"),
            "{path} shows the secret: {text}"
        );
    }
    assert_eq!(
        app.owner.list_webhooks().await.unwrap(),
        std::slice::from_ref(hook)
    );
    assert_eq!(&app.owner.get_webhook(hook.id).await.unwrap(), hook);

    // Documented in /openapi.json.
    let doc = app.anon.openapi().await.unwrap();
    for path in [
        "/v1/webhooks",
        "/v1/webhooks/{id}",
        "/v1/webhooks/{id}/test",
        "/v1/webhooks/{id}/deliveries",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
    for schema in [
        "Webhook",
        "CreatedWebhook",
        "WebhookDelivery",
        "CreateWebhookRequest",
    ] {
        assert!(
            doc["components"]["schemas"][schema].is_object(),
            "{schema} missing"
        );
    }

    let test = app.owner.test_webhook(hook.id).await.unwrap();
    assert!(test.message_id.starts_with("msg_"));
    let got = receiver.wait_for(1).await;
    let r = &got[0];
    assert_eq!(r.path, "/hooks");
    assert_eq!(r.header("webhook-id"), test.message_id);
    assert!(r.header("webhook-signature").starts_with("v1,"));
    assert!(signature_verifies(&secret, r), "{r:?}");
    assert!(
        !signature_verifies(&format!("whsec_{}", STANDARD.encode([0u8; 32])), r),
        "a wrong secret does not verify"
    );
    assert_fresh_timestamp(r);
    assert_eq!(r.header("content-type"), "application/json");
    let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(body["type"], "webhook.test");
    assert_eq!(body["data"]["webhook_id"], hook.id.to_string());
    chrono::DateTime::parse_from_rfc3339(body["timestamp"].as_str().unwrap())
        .expect("RFC 3339 timestamp");

    let d = settled(&app.owner, hook.id).await;
    assert_eq!(d.status, DeliveryStatus::Delivered);
    assert_eq!(
        (d.attempts, d.message_id.as_str()),
        (1, test.message_id.as_str())
    );
    assert_eq!(d.event_type, "webhook.test");
    assert_eq!(d.next_attempt_at, None);
    assert_eq!(d.attempt_log.len(), 1);
    assert_eq!(d.attempt_log[0].http_status, Some(200));
    assert_eq!(d.attempt_log[0].error, None);

    // Audited, without the secret; the chain still verifies.
    let audit = app.owner.audit(&PageQuery::default()).await.unwrap().items;
    let actions: Vec<&str> = audit.iter().map(|e| e.action.as_str()).collect();
    assert!(actions.contains(&"webhook.create"), "{actions:?}");
    assert!(actions.contains(&"webhook.test"), "{actions:?}");

    app.owner.delete_webhook(hook.id).await.unwrap();
    let audit = app.owner.audit(&PageQuery::default()).await.unwrap().items;
    assert_eq!(audit[0].action, "webhook.delete");
    assert!(app.owner.verify_audit().await.unwrap().ok);
    assert!(app.owner.list_webhooks().await.unwrap().is_empty());
    for e in [
        app.owner.get_webhook(hook.id).await.unwrap_err(),
        app.owner.test_webhook(hook.id).await.unwrap_err(),
        app.owner.delete_webhook(hook.id).await.unwrap_err(),
    ] {
        assert_eq!(e.code(), Some("webhook_not_found"));
    }
}

#[tokio::test]
async fn failures_are_retried_under_one_message_id_until_delivered() {
    let app = TestApp::spawn_with(|c| c.webhooks.retry_base = Duration::from_millis(50)).await;
    let receiver = Receiver::start(2).await;
    let created = create(&app.owner, &receiver.url, Some(&["webhook.test"])).await;
    let test = app.owner.test_webhook(created.webhook.id).await.unwrap();

    let got = receiver.wait_for(3).await;
    for r in &got {
        assert_eq!(
            r.header("webhook-id"),
            test.message_id,
            "stable across retries"
        );
        assert!(signature_verifies(&created.secret, r));
        assert_fresh_timestamp(r);
        assert_eq!(r.body, got[0].body, "the same bytes on every attempt");
    }
    let d = settled(&app.owner, created.webhook.id).await;
    assert_eq!(d.status, DeliveryStatus::Delivered);
    assert_eq!(d.attempts, 3);
    let statuses: Vec<Option<i32>> = d.attempt_log.iter().map(|a| a.http_status).collect();
    assert_eq!(statuses, [Some(500), Some(500), Some(200)]);
    assert_eq!(
        d.attempt_log.iter().map(|a| a.attempt).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert!(d.attempt_log[0].error.as_deref().unwrap().contains("500"));
    assert_eq!(d.last_status, Some(200));
    assert_eq!(d.last_error, None);
    assert_eq!(d.next_attempt_at, None, "nothing left to try");
    // Nothing after delivery: a later message to the same endpoint arrives (the worker went
    // round again), and the first one was still sent exactly three times.
    let later = app.owner.test_webhook(created.webhook.id).await.unwrap();
    assert_ne!(later.message_id, test.message_id);
    let got = receiver.wait_for(4).await;
    assert_eq!(got.len(), 4, "{got:?}");
    assert_eq!(got[3].header("webhook-id"), later.message_id);
    assert_eq!(
        got.iter()
            .filter(|r| r.header("webhook-id") == test.message_id)
            .count(),
        3,
        "nothing after delivery"
    );
}

#[tokio::test]
async fn deliveries_give_up_after_max_attempts() {
    let app = TestApp::spawn_with(|c| {
        c.webhooks.retry_base = Duration::from_millis(50);
        c.webhooks.max_attempts = 3;
    })
    .await;
    let receiver = Receiver::start(usize::MAX).await;
    let failing = create(&app.owner, &receiver.url, None).await;
    // And an endpoint where nothing listens.
    let (_reserved, closed) = crate::gateway::refusing_address();
    let closed = format!("http://{closed}/");
    let unreachable = create(&app.owner, &closed, None).await;
    app.owner.test_webhook(failing.webhook.id).await.unwrap();
    app.owner
        .test_webhook(unreachable.webhook.id)
        .await
        .unwrap();

    let d = settled(&app.owner, failing.webhook.id).await;
    assert_eq!(d.status, DeliveryStatus::Failed);
    assert_eq!(d.attempts, 3);
    assert_eq!(d.next_attempt_at, None);
    assert_eq!(d.attempt_log.len(), 3);
    assert!(d.attempt_log.iter().all(|a| a.http_status == Some(500)));
    assert_eq!(d.last_status, Some(500));
    // No attempt after giving up: a later message's first attempt arrives (the worker went round
    // again), and the first message was still tried exactly three times.
    let later = app.owner.test_webhook(failing.webhook.id).await.unwrap();
    assert_ne!(later.message_id, d.message_id);
    assert!(
        eventually(Duration::from_secs(30), || async {
            receiver
                .requests()
                .iter()
                .any(|r| r.header("webhook-id") == later.message_id)
        })
        .await,
        "the later message arrives"
    );
    let got = receiver.requests();
    assert_eq!(
        got.iter()
            .filter(|r| r.header("webhook-id") == d.message_id)
            .count(),
        3,
        "no attempt after giving up"
    );
    assert!(got.iter().all(|r| {
        [d.message_id.as_str(), later.message_id.as_str()].contains(&r.header("webhook-id"))
    }));

    let d = settled(&app.owner, unreachable.webhook.id).await;
    assert_eq!(d.status, DeliveryStatus::Failed);
    assert_eq!(d.attempt_log.len(), 3);
    for a in &d.attempt_log {
        assert_eq!(a.http_status, None);
        let error = a.error.as_deref().unwrap();
        assert!(error.starts_with("connection failed"), "{error}");
        assert!(!error.contains(&closed), "the URL is not echoed: {error}");
    }
}

/// An event of type `ty` (key.expiring, alert.opened, limit.soft_threshold) carrying `n` in a
/// numeric field of its payload.
fn marked(ty: &str, n: i64) -> keyward_core::api::webhooks::WebhookEvent {
    use keyward_core::api::webhooks::*;
    let (key_id, at) = (keyward_core::KeyId::new(), chrono::Utc::now());
    match ty {
        KEY_EXPIRING => WebhookEvent::KeyExpiring(KeyNoticeData {
            key_id,
            name: "k".into(),
            expires_at: Some(at),
            last_used_at: None,
            within_days: Some(n),
        }),
        ALERT_OPENED => WebhookEvent::AlertOpened(AlertOpenedData {
            alert_id: Uuid::now_v7(),
            key_id,
            kind: "rate_spike".into(),
            observed: 1.0,
            expected: 1.0,
            window_start: at,
            window_secs: n as u32,
            detail: "d".into(),
        }),
        _ => WebhookEvent::LimitSoftThreshold(LimitEventData {
            key_id,
            rule: "r".into(),
            window_index: n,
            used: 1,
            limit: 1,
            at,
        }),
    }
}

#[tokio::test]
async fn events_reach_only_subscribed_enabled_endpoints_and_only_on_commit() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(0).await;
    let alerts = create(
        &app.owner,
        &format!("{}/alerts", receiver.url),
        Some(&["alert.*"]),
    )
    .await;
    let expiring = create(
        &app.owner,
        &format!("{}/expiring", receiver.url),
        Some(&["key.expiring", "key.expiring"]),
    )
    .await;
    assert_eq!(
        expiring.webhook.events,
        ["key.expiring"],
        "duplicates dropped"
    );
    let all = create(&app.owner, &format!("{}/all", receiver.url), Some(&["*"])).await;
    let disabled = app
        .owner
        .create_webhook(&CreateWebhookRequest {
            url: format!("{}/disabled", receiver.url),
            events: None,
            enabled: Some(false),
        })
        .await
        .unwrap();
    assert!(!disabled.webhook.enabled);
    let org = org_id(&app, "Acme").await;

    use keyward_server::webhooks::{self, ALERT_OPENED, KEY_EXPIRING, LIMIT_SOFT_THRESHOLD};
    // Rolled back: nothing is queued.
    let mut tx = app.pool().begin().await.unwrap();
    let q = webhooks::enqueue(&mut tx, org, &marked(ALERT_OPENED, 0))
        .await
        .unwrap();
    assert_eq!(q.deliveries, 2);
    tx.rollback().await.unwrap();

    let mut sent = Vec::new();
    for (n, event) in [KEY_EXPIRING, ALERT_OPENED, LIMIT_SOFT_THRESHOLD]
        .into_iter()
        .enumerate()
    {
        let mut tx = app.pool().begin().await.unwrap();
        let q = webhooks::enqueue(&mut tx, org, &marked(event, n as i64 + 1))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        sent.push((event, q));
    }
    assert_eq!(
        sent.iter().map(|(_, q)| q.deliveries).collect::<Vec<_>>(),
        [2, 2, 1]
    );
    // Another organisation's event reaches none of these.
    app.admin("Other", "owner@other.test", Role::Owner).await;
    let other = org_id(&app, "Other").await;
    let mut tx = app.pool().begin().await.unwrap();
    let q = webhooks::enqueue(&mut tx, other, &marked(KEY_EXPIRING, 9))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(q.deliveries, 0);

    let got = receiver.wait_for(5).await;
    // Nothing more than those five: a later event, enqueued after every one above, arrives at
    // `/all`, and still only the five came before or with it. What was never queued (the
    // rollback, the other organisation's event, the disabled endpoint) has no delivery row.
    let mut tx = app.pool().begin().await.unwrap();
    let barrier = webhooks::enqueue(&mut tx, org, &marked(LIMIT_SOFT_THRESHOLD, 99))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(barrier.deliveries, 1, "only `/all` takes it");
    assert!(
        eventually(Duration::from_secs(30), || async {
            receiver
                .requests()
                .iter()
                .any(|r| r.header("webhook-id") == barrier.message_id)
        })
        .await,
        "the later event arrives"
    );
    let got_all: Vec<Received> = receiver
        .requests()
        .into_iter()
        .filter(|r| r.header("webhook-id") != barrier.message_id)
        .collect();
    assert_eq!(got_all.len(), 5, "{got:?}");
    assert!(deliveries(&app.owner, disabled.webhook.id).await.is_empty());
    let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_deliveries")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(queued, 6, "2 + 2 + 1 deliveries and the later event's one");
    let types_at = |path: &str| {
        let mut v: Vec<(String, i64)> = got_all
            .iter()
            .filter(|r| r.path == path)
            .map(|r| {
                let b: serde_json::Value = serde_json::from_str(&r.body).unwrap();
                let d = &b["data"];
                let n = ["within_days", "window_secs", "window_index"]
                    .iter()
                    .find_map(|f| d[f].as_i64())
                    .unwrap();
                (b["type"].as_str().unwrap().to_owned(), n)
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(types_at("/alerts"), [("alert.opened".to_owned(), 2)]);
    assert_eq!(types_at("/expiring"), [("key.expiring".to_owned(), 1)]);
    assert_eq!(
        types_at("/all"),
        [
            ("alert.opened".to_owned(), 2),
            ("key.expiring".to_owned(), 1),
            ("limit.soft_threshold".to_owned(), 3)
        ]
    );
    assert!(types_at("/disabled").is_empty());
    // One message id per event, shared by its endpoints; each signed with its endpoint's secret.
    for r in &got_all {
        let secret = match r.path.as_str() {
            "/alerts" => &alerts.secret,
            "/expiring" => &expiring.secret,
            _ => &all.secret,
        };
        assert!(signature_verifies(secret, r));
        assert!(
            sent.iter()
                .any(|(_, q)| q.message_id == r.header("webhook-id"))
        );
    }

    // Deliveries page newest first.
    assert!(
        eventually(Duration::from_secs(5), || async {
            deliveries(&app.owner, all.webhook.id)
                .await
                .iter()
                .all(|d| d.status == DeliveryStatus::Delivered)
        })
        .await
    );
    let mut seen = Vec::new();
    let mut q = PageQuery {
        limit: Some(2),
        cursor: None,
    };
    loop {
        let page = app
            .owner
            .webhook_deliveries(all.webhook.id, &q)
            .await
            .unwrap();
        assert!(page.items.len() <= 2);
        seen.extend(page.items.into_iter().map(|d| d.event_type));
        match page.next_cursor {
            Some(c) => q.cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(
        seen,
        [
            "limit.soft_threshold",
            "limit.soft_threshold",
            "alert.opened",
            "key.expiring"
        ],
        "the later event first"
    );
}

#[tokio::test]
async fn secrets_are_encrypted_at_rest_and_never_logged() {
    let logs = captured_logs();
    for configured in [false, true] {
        let key = STANDARD.encode([42u8; 32]);
        let app = TestApp::spawn_with(|c| {
            c.webhooks.retry_base = Duration::from_millis(50);
            if configured {
                c.webhooks.key = Some(keyward_server::config::SecretKey::new([42u8; 32]));
            }
        })
        .await;
        let receiver = Receiver::start(1).await;
        let created = create(&app.owner, &receiver.url, None).await;
        app.owner.test_webhook(created.webhook.id).await.unwrap();
        let got = receiver.wait_for(2).await;
        assert!(got.iter().all(|r| signature_verifies(&created.secret, r)));
        settled(&app.owner, created.webhook.id).await;

        let raw = STANDARD.decode(&created.secret["whsec_".len()..]).unwrap();
        let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let needles = [
            created.secret.clone(),
            created.secret["whsec_".len()..].to_owned(),
            hex,
        ];
        // Every row of every table that could hold it, as text (bytea as hex).
        let mut dump = String::new();
        for table in [
            "webhook_endpoints",
            "webhook_deliveries",
            "webhook_attempts",
            "webhook_keys",
            "audit_log",
        ] {
            let rows: Vec<String> =
                sqlx::query_scalar(&format!("SELECT row_to_json(t)::text FROM {table} t"))
                    .fetch_all(app.pool())
                    .await
                    .unwrap();
            dump.push_str(&rows.join("\n"));
        }
        assert!(dump.contains(&created.webhook.id.to_string()));
        for n in &needles {
            assert!(!dump.contains(n.as_str()), "the secret is in the database");
        }
        let (source, keys): (String, i64) = (
            sqlx::query_scalar("SELECT secret_key FROM webhook_endpoints")
                .fetch_one(app.pool())
                .await
                .unwrap(),
            sqlx::query_scalar("SELECT count(*) FROM webhook_keys")
                .fetch_one(app.pool())
                .await
                .unwrap(),
        );
        if configured {
            assert_eq!((source.as_str(), keys), ("config", 0));
        } else {
            assert_eq!((source.as_str(), keys), ("database", 1));
        }

        let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
        assert!(
            text.contains("/v1/webhooks"),
            "the logs were captured: {} bytes",
            text.len()
        );
        for n in &needles {
            assert!(!text.contains(n.as_str()), "the secret is in the logs");
        }
        if configured {
            assert!(!text.contains(&key), "KEYWARD_WEBHOOK_KEY is in the logs");
        }
    }
}

#[tokio::test]
async fn bad_input_is_refused_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let http = reqwest::Client::new();
    let post = |body: serde_json::Value| {
        let http = http.clone();
        let url = format!("{}/v1/webhooks", app.server.base_url);
        let token = session(&app.owner);
        async move {
            let res = http
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            let ct = res
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned());
            (status, ct, res.json::<serde_json::Value>().await.unwrap())
        }
    };
    let long = format!("https://example.com/{}", "a".repeat(2100));
    let bad = [
        (
            serde_json::json!({"url": "not a url"}),
            "url",
            "invalid_url",
        ),
        (
            serde_json::json!({"url": "ftp://example.com/x"}),
            "url",
            "unsupported_scheme",
        ),
        (
            serde_json::json!({"url": "http://example.com/x"}),
            "url",
            "https_required",
        ),
        (serde_json::json!({"url": long}), "url", "too_long"),
        (
            serde_json::json!({"url": "https://user:pw@example.com/"}),
            "url",
            "credentials_not_allowed",
        ),
        (
            serde_json::json!({"url": "https://example.com/", "events": ["nope.event"]}),
            "events[0]",
            "unknown_event_type",
        ),
        (
            serde_json::json!({"url": "https://example.com/", "events": ["alert.*", "key.expirin"]}),
            "events[1]",
            "unknown_event_type",
        ),
        (
            serde_json::json!({"url": "https://example.com/", "events": []}),
            "events",
            "empty",
        ),
    ];
    for (body, field, code) in bad {
        let (status, ct, problem) = post(body.clone()).await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(ct.as_deref(), Some("application/problem+json"));
        assert_eq!(problem["code"], "validation_failed");
        let errors = problem["errors"].as_array().unwrap();
        assert!(
            errors
                .iter()
                .any(|e| e["field"] == field && e["code"] == code),
            "{body}: expected {field}/{code} in {errors:?}"
        );
    }
    // Both fields wrong: both reported.
    let (status, _, problem) =
        post(serde_json::json!({"url": "ftp://x/", "events": ["bogus"]})).await;
    assert_eq!(status, 422);
    assert_eq!(problem["errors"].as_array().unwrap().len(), 2);
    // Unknown fields and a missing url.
    for body in [
        serde_json::json!({"url": "https://example.com/", "secret": "whsec_mine"}),
        serde_json::json!({"events": ["*"]}),
    ] {
        assert_eq!(post(body.clone()).await.0, 422, "{body}");
    }
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_endpoints")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(stored, 0, "no refused webhook was stored");
    assert!(app.owner.list_webhooks().await.unwrap().is_empty());

    // At most 20 per organisation.
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(
            create(
                &app.owner,
                &format!("https://example.com/hook/{i}"),
                Some(&["key.*"]),
            )
            .await
            .webhook
            .id,
        );
    }
    let (status, _, problem) = post(serde_json::json!({"url": "https://example.com/21"})).await;
    assert_eq!(status, 409);
    assert_eq!(problem["code"], "webhook_limit_reached");
    assert_eq!(app.owner.list_webhooks().await.unwrap().len(), 20);

    // Viewers read only.
    let viewer = app.admin("Acme", "viewer@acme.test", Role::Viewer).await;
    assert_eq!(viewer.list_webhooks().await.unwrap().len(), 20);
    viewer
        .webhook_deliveries(ids[0], &PageQuery::default())
        .await
        .unwrap();
    let e = viewer
        .create_webhook(&CreateWebhookRequest {
            url: "https://example.com/viewer".into(),
            events: None,
            enabled: None,
        })
        .await
        .unwrap_err();
    assert_eq!(
        (e.status().map(|s| s.as_u16()), e.code()),
        (Some(403), Some("forbidden"))
    );
    for e in [
        viewer.delete_webhook(ids[0]).await.unwrap_err(),
        viewer.test_webhook(ids[0]).await.unwrap_err(),
    ] {
        assert_eq!(e.status().map(|s| s.as_u16()), Some(403));
    }

    // Another organisation sees none of them.
    let other = app.admin("Other", "owner@other.test", Role::Owner).await;
    assert!(other.list_webhooks().await.unwrap().is_empty());
    for e in [
        other.get_webhook(ids[0]).await.unwrap_err(),
        other.delete_webhook(ids[0]).await.unwrap_err(),
        other.test_webhook(ids[0]).await.unwrap_err(),
        other
            .webhook_deliveries(ids[0], &PageQuery::default())
            .await
            .unwrap_err(),
    ] {
        assert_eq!(
            (e.status().map(|s| s.as_u16()), e.code()),
            (Some(404), Some("webhook_not_found"))
        );
    }
    assert_eq!(
        app.owner.list_webhooks().await.unwrap().len(),
        20,
        "still there"
    );

    // Not an id, a bad cursor.
    let res = http
        .get(format!("{}/v1/webhooks/not-a-uuid", app.server.base_url))
        .bearer_auth(session(&app.owner))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let e = app
        .owner
        .webhook_deliveries(
            ids[0],
            &PageQuery {
                limit: None,
                cursor: Some("!!".into()),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.status().map(|s| s.as_u16()), Some(422));
}

/// Every documented event type is sent by some code path, once per happening, signed: an
/// endpoint subscribed to `*` sees each action of the list below exactly once, and the set of
/// types it receives is exactly `EVENT_TYPES` (so a type listed and never sent fails here).
#[tokio::test]
async fn every_documented_event_is_sent_exactly_once() {
    use keyward_core::api::webhooks::EVENT_TYPES;
    use keyward_core::api::{
        CreateKeyRequest, CreateTierRequest, Quota, RevokeKeyRequest, RotateKeyRequest,
    };
    use std::collections::HashSet;
    let app = TestApp::spawn_with(|c| {
        c.keys.events_interval = Duration::from_secs(1);
        c.usage.flush_interval = Duration::from_millis(200);
    })
    .await;
    let receiver = Receiver::start(0).await;
    let hook = create(&app.owner, &format!("{}/all", receiver.url), Some(&["*"])).await;
    let mint = |name: &str| CreateKeyRequest {
        name: name.into(),
        ..Default::default()
    };
    let key = |req: CreateKeyRequest| {
        let owner = app.owner.clone();
        async move { owner.create_key(&req).await.unwrap() }
    };
    let now = chrono::Utc::now();
    // key.created (every key below), key.revoked at once.
    let revoked = key(mint("revoked")).await;
    app.owner
        .revoke_key(revoked.key.id, &RevokeKeyRequest::default())
        .await
        .unwrap();
    // key.rotated, and key.revoked for the old key when its 1 s grace ends.
    let rotated = key(mint("rotated")).await;
    let successor = app
        .owner
        .rotate_key(
            rotated.key.id,
            &RotateKeyRequest {
                grace_seconds: Some(1),
            },
        )
        .await
        .unwrap();
    // key.expired, by the due sweep.
    let expired = key(CreateKeyRequest {
        expires_at: Some(now + chrono::Duration::seconds(2)),
        ..mint("expired")
    })
    .await;
    // limit.soft_threshold at the first call (1 of 2), limit.quota_exceeded at the third, once.
    app.owner
        .create_tier(&CreateTierRequest {
            name: "two".into(),
            quota: Some(Quota {
                daily: Some(2),
                monthly: None,
                consistency: Default::default(),
            }),
            soft_threshold: Some(0.5),
            ..Default::default()
        })
        .await
        .unwrap();
    let quota = key(CreateKeyRequest {
        tier: Some("two".into()),
        ..mint("quota")
    })
    .await;
    let client = app.server.client();
    let statuses: Vec<u16> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            v.push(match client.whoami(quota.token.as_deref().unwrap()).await {
                Ok(_) => 200,
                Err(e) => e.status().map_or(0, |s| s.as_u16()),
            });
        }
        v
    };
    assert_eq!(statuses, [200, 200, 429, 429]);
    // key.expiring and key.unused, by the hourly sweep.
    let expiring = key(CreateKeyRequest {
        expires_at: Some(now + chrono::Duration::days(3)),
        ..mint("expiring")
    })
    .await;
    let unused = key(mint("unused")).await;
    sqlx::query("UPDATE api_keys SET created_at = $2 WHERE id = $1")
        .bind(unused.key.id.into_uuid())
        .bind(now - chrono::Duration::days(100))
        .execute(app.pool())
        .await
        .unwrap();
    keyward_server::jobs::notices::sweep_hourly(app.pool(), chrono::Utc::now())
        .await
        .unwrap();
    // alert.opened, alert.acked, alert.resolved, from the detector.
    let spiky = key(mint("spiky")).await;
    let end = crate::alerts::align(now) - chrono::Duration::minutes(10);
    let spike = end - chrono::Duration::minutes(15);
    let day4 = end - chrono::Duration::days(4);
    crate::alerts::seed(&app, &spiky.key, day4, spike, "38 + (i % 5)").await;
    crate::alerts::seed(&app, &spiky.key, spike, end, "400").await;
    keyward_server::jobs::alerts::run_once(app.pool(), end + chrono::Duration::seconds(5))
        .await
        .unwrap();
    let alert = app.owner.alerts(&Default::default()).await.unwrap()[0].id;
    app.owner.ack_alert(alert).await.unwrap();
    let settled = end + chrono::Duration::minutes(5);
    crate::alerts::seed(&app, &spiky.key, end, settled, "40").await;
    keyward_server::jobs::alerts::run_once(app.pool(), settled + chrono::Duration::seconds(5))
        .await
        .unwrap();
    // webhook.test.
    app.owner.test_webhook(hook.webhook.id).await.unwrap();

    let types = |got: &[Received]| {
        let mut t: Vec<String> = got
            .iter()
            .map(|r| {
                serde_json::from_str::<serde_json::Value>(&r.body).unwrap()["type"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        t.sort();
        t.dedup();
        t
    };
    let mut listed: Vec<String> = EVENT_TYPES.iter().map(|t| t.to_string()).collect();
    listed.sort();
    assert!(
        eventually(Duration::from_secs(20), || async {
            types(&receiver.requests()) == listed
        })
        .await,
        "received {:?}, documented {listed:?}",
        types(&receiver.requests())
    );
    // The sweeps run again (as every node's would): nothing new is queued. Counted in the
    // outbox itself once every delivery has settled, then in what the receiver got: a delivery
    // retried (the receiver answered after the worker's timeout on a busy machine) carries the
    // same `webhook-id`: one event, delivered at least once as Standard Webhooks says.
    for _ in 0..2 {
        let now = chrono::Utc::now();
        keyward_server::jobs::notices::sweep_due(app.pool(), now)
            .await
            .unwrap();
        keyward_server::jobs::notices::sweep_hourly(app.pool(), now)
            .await
            .unwrap();
    }
    assert!(
        eventually(Duration::from_secs(30), || async {
            let pending: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = $1 AND status = 'pending'",
            )
            .bind(hook.webhook.id)
            .fetch_one(app.pool())
            .await
            .unwrap();
            pending == 0
        })
        .await,
        "every delivery settles"
    );
    let queued: Vec<(String, Option<String>, i64)> = sqlx::query_as(
        "SELECT event_type, body::jsonb -> 'data' ->> 'key_id', count(*) FROM webhook_deliveries
          WHERE endpoint_id = $1 GROUP BY 1, 2 HAVING count(*) > 1",
    )
    .bind(hook.webhook.id)
    .fetch_all(app.pool())
    .await
    .unwrap();
    assert!(queued.is_empty(), "queued more than once: {queued:?}");
    let got = receiver.requests();
    let mut messages = std::collections::HashMap::<(String, String), HashSet<String>>::new();
    for r in &got {
        assert!(signature_verifies(&hook.secret, r), "signed: {r:?}");
        let b: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        let who = b["data"]["key_id"].as_str().unwrap_or("-").to_owned();
        messages
            .entry((b["type"].as_str().unwrap().to_owned(), who))
            .or_default()
            .insert(r.header("webhook-id").to_owned());
    }
    let seen: std::collections::HashMap<_, usize> = messages
        .into_iter()
        .map(|(k, ids)| (k, ids.len()))
        .collect();
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "sent more than once: {twice:?}");
    let once = |ty: &str, k: &keyward_core::api::CreatedKey| {
        assert_eq!(
            seen.get(&(ty.to_owned(), k.key.id.to_string())),
            Some(&1),
            "{ty} for {}",
            k.key.name
        );
    };
    for k in [
        &revoked, &rotated, &expired, &quota, &expiring, &unused, &spiky,
    ] {
        once("key.created", k);
    }
    once("key.revoked", &revoked);
    once("key.revoked", &rotated);
    once("key.rotated", &rotated);
    once("key.expired", &expired);
    once("limit.quota_exceeded", &quota);
    once("limit.soft_threshold", &quota);
    once("key.expiring", &expiring);
    once("key.unused", &unused);
    assert_eq!(
        seen.get(&("key.created".to_owned(), successor.key.id.to_string())),
        Some(&1),
        "the successor's creation"
    );
    let rotated_body = got
        .iter()
        .map(|r| serde_json::from_str::<serde_json::Value>(&r.body).unwrap())
        .find(|b| b["type"] == "key.rotated")
        .unwrap();
    assert_eq!(
        rotated_body["data"]["new_key_id"].as_str(),
        Some(successor.key.id.to_string().as_str())
    );
    // Each payload is documented in /openapi.json, the event itself names every type.
    let doc = app.anon.openapi().await.unwrap();
    let schemas = &doc["components"]["schemas"];
    for name in [
        "WebhookEvent",
        "KeyCreatedData",
        "KeyRevokedData",
        "KeyRotatedData",
        "KeyExpiredData",
        "KeyNoticeData",
        "LimitEventData",
        "AlertOpenedData",
        "AlertAckedData",
        "AlertResolvedData",
        "WebhookTestData",
    ] {
        assert!(schemas[name].is_object(), "{name} documented");
    }
    let event_schema = schemas["WebhookEvent"].to_string();
    for t in EVENT_TYPES {
        assert!(
            event_schema.contains(&format!("\"{t}\"")),
            "{t} in WebhookEvent"
        );
    }
}
