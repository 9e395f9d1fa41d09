//! Attacks from the security model, each performed against a real server: webhook SSRF (at
//! creation and after DNS), test-event floods, one tenant's slow endpoints, tenant-chosen argon2
//! costs, keys per organisation, a tenant flooding the hashers, a wrong-secret flood against a
//! public key id, parallel password guesses, IPv6 clients counted per /64, and gateway path
//! escapes, address claims and route scopes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use keyward_client::{ClientError, KeywardClient};
use keyward_core::api::{
    CreateKeyRequest, CreateWebhookRequest, DeliveryStatus, PageQuery, RevokeKeyRequest, Role,
    WebhookDelivery,
};
use keyward_core::{ApiKeyToken, Environment, KeyId};
use keyward_e2e::{PASSWORD, TestApp, TestServer, eventually};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use uuid::Uuid;

fn session(client: &KeywardClient) -> String {
    client
        .session()
        .expect("signed in")
        .expose_secret()
        .to_owned()
}

async fn post_json(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    let res = reqwest::Client::new()
        .post(format!("{}{path}", app.server.base_url))
        .bearer_auth(session(&app.owner))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// A listener that accepts connections, reads what arrives and never answers until `release`
/// is called; it counts the connections it got.
struct Sink {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    release: Arc<tokio::sync::Notify>,
}

impl Sink {
    async fn start() -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(tokio::sync::Notify::new());
        let (count, gate) = (connections.clone(), release.clone());
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let gate = gate.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = socket.read(&mut buf).await;
                    gate.notified().await;
                    let _ = socket
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                        .await;
                });
            }
        });
        Sink {
            addr,
            connections,
            release,
        }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

async fn create_webhook(client: &KeywardClient, url: &str) -> Uuid {
    client
        .create_webhook(&CreateWebhookRequest {
            url: url.to_owned(),
            events: None,
            enabled: None,
        })
        .await
        .expect("create webhook")
        .webhook
        .id
}

async fn newest_delivery(client: &KeywardClient, id: Uuid) -> Option<WebhookDelivery> {
    client
        .webhook_deliveries(id, &PageQuery::default())
        .await
        .expect("deliveries")
        .items
        .into_iter()
        .next()
}

// --- webhook SSRF ---

#[tokio::test]
async fn webhook_urls_into_the_network_are_refused_at_creation() {
    let app = TestApp::spawn_with(|c| c.webhooks.allowed_networks.clear()).await;
    for url in [
        "http://127.0.0.1:9000/hook",
        "https://127.0.0.1/hook",
        "https://localhost/hook",
        "https://2130706433/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://10.0.0.7/",
        "https://172.20.1.1/",
        "https://192.168.0.10/",
        "https://100.100.100.200/",
        "https://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "https://[::ffff:a9fe:a9fe]/",
        "https://[fd12::1]/",
        "https://[fe80::1]/",
        "https://0.0.0.0/",
        "https://224.0.0.251/",
    ] {
        let (status, body) = post_json(&app, "/v1/webhooks", json!({ "url": url })).await;
        assert_eq!(status, 422, "{url}: {body}");
        assert_eq!(body["errors"][0]["field"], "url", "{url}: {body}");
        assert_eq!(
            body["errors"][0]["code"], "forbidden_destination",
            "{url}: {body}"
        );
    }
    assert!(app.owner.list_webhooks().await.unwrap().is_empty());
    // A public destination is still fine.
    create_webhook(&app.owner, "https://hooks.example.com/keyward").await;
}

#[tokio::test]
async fn a_name_that_resolves_into_the_network_is_never_connected_to() {
    let sink = Sink::start().await;
    let app = TestApp::spawn_with(|c| c.webhooks.allowed_networks.clear()).await;
    // Created with a public name; the name then "rebinds" to this machine (written straight
    // into the row, as DNS would do it after the check at creation).
    let hook = create_webhook(&app.owner, "https://hooks.example.com/keyward").await;
    sqlx::query("UPDATE webhook_endpoints SET url = $1 WHERE id = $2")
        .bind(format!("http://localhost:{}/hook", sink.addr.port()))
        .bind(hook)
        .execute(app.pool())
        .await
        .unwrap();
    app.owner.test_webhook(hook).await.unwrap();
    assert!(
        eventually(Duration::from_secs(20), || async {
            newest_delivery(&app.owner, hook)
                .await
                .is_some_and(|d| d.status != DeliveryStatus::Pending)
        })
        .await,
        "the delivery settles"
    );
    let d = newest_delivery(&app.owner, hook).await.unwrap();
    assert_eq!(d.status, DeliveryStatus::Failed, "{d:?}");
    assert_eq!(d.attempts, 1, "a refused destination is not retried: {d:?}");
    let error = d.last_error.clone().unwrap_or_default();
    assert!(
        error.starts_with("refused: localhost resolves only to loopback"),
        "logged as refused, not as a connection error: {error}"
    );
    assert_eq!(d.last_status, None);
    assert_eq!(sink.connections(), 0, "nothing connected to the sink");

    // An address literal stored earlier (the operator has since closed the network) is
    // refused the same way.
    sqlx::query("UPDATE webhook_endpoints SET url = $1 WHERE id = $2")
        .bind(format!("http://127.0.0.1:{}/hook", sink.addr.port()))
        .bind(hook)
        .execute(app.pool())
        .await
        .unwrap();
    let sent = app.owner.test_webhook(hook).await.unwrap();
    assert!(
        eventually(Duration::from_secs(20), || async {
            newest_delivery(&app.owner, hook).await.is_some_and(|d| {
                d.message_id == sent.message_id && d.status != DeliveryStatus::Pending
            })
        })
        .await
    );
    let d = newest_delivery(&app.owner, hook).await.unwrap();
    assert!(
        d.last_error
            .as_deref()
            .is_some_and(|e| e.starts_with("refused: 127.0.0.1 is a loopback address")),
        "{d:?}"
    );
    assert_eq!(sink.connections(), 0);
    let metrics = app.server.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("keyward_webhook_attempts_total{result=\"refused\"} 2")),
        "{metrics}"
    );
}

#[tokio::test]
async fn test_events_are_limited_per_organisation() {
    let app = TestApp::spawn_with(|c| c.webhooks.tests_per_minute = 3).await;
    let hook = create_webhook(&app.owner, "https://hooks.example.com/a").await;
    for _ in 0..3 {
        app.owner.test_webhook(hook).await.unwrap();
    }
    let e = app.owner.test_webhook(hook).await.unwrap_err();
    assert_eq!(e.status().unwrap().as_u16(), 429);
    assert_eq!(e.code(), Some("too_many_test_events"));
    match &e {
        ClientError::Api { retry_after, .. } => assert!(retry_after.unwrap() >= 1),
        other => panic!("{other:?}"),
    }
    let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_deliveries")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(queued, 3, "the refused call queued nothing");
    // Another organisation has its own allowance.
    let other = app.admin("Globex", "owner@globex.test", Role::Owner).await;
    let theirs = create_webhook(&other, "https://hooks.example.com/b").await;
    other.test_webhook(theirs).await.unwrap();
}

#[tokio::test]
async fn one_organisations_hanging_endpoints_do_not_delay_another_organisation() {
    let hanging = Sink::start().await;
    let prompt = Sink::start().await;
    let app = TestApp::spawn_with(|c| {
        c.webhooks.tests_per_minute = 100;
        c.webhooks.timeout = Duration::from_secs(120);
        c.webhooks.max_in_flight_per_org = 4;
    })
    .await;
    let slow = create_webhook(
        &app.owner,
        &format!("http://127.0.0.1:{}/", hanging.addr.port()),
    )
    .await;
    // More deliveries than the node has send slots (16).
    for _ in 0..20 {
        app.owner.test_webhook(slow).await.unwrap();
    }
    assert!(
        eventually(Duration::from_secs(20), || async {
            hanging.connections() >= 4
        })
        .await,
        "the slow organisation's deliveries start"
    );
    let other = app.admin("Globex", "owner@globex.test", Role::Owner).await;
    let fine = create_webhook(&other, &format!("http://127.0.0.1:{}/", prompt.addr.port())).await;
    other.test_webhook(fine).await.unwrap();
    assert!(
        eventually(Duration::from_secs(20), || async {
            prompt.connections() >= 1
        })
        .await,
        "the other organisation's delivery is sent while the slow ones hang"
    );
    assert_eq!(
        hanging.connections(),
        4,
        "one organisation holds at most its share of the send slots"
    );
    hanging.release.notify_waiters();
    prompt.release.notify_waiters();
}

// --- argon2 cost, keys per organisation, the hashers ---

/// An argon2id PHC string of `token` with the given costs.
fn phc(token: &str, m: u32, t: u32, p: u32) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let params = argon2::Params::new(m, t, p, Some(32)).unwrap();
    let salt = SaltString::encode_b64(&[7u8; 16]).unwrap();
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password(token.as_bytes(), &salt)
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn tenant_chosen_argon2_costs_outside_the_policy_are_refused() {
    let app = TestApp::spawn().await;
    let id = KeyId::new();
    let hostile = "$argon2id$v=19$m=1048576,t=20,p=16$BwcHBwcHBwcHBwcHBwcHBw$\
                   AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    for (hash, what) in [
        (hostile.to_owned(), "1 GiB, 20 passes"),
        (
            hostile.replace("m=1048576,t=20,p=16", "m=65537,t=2,p=1"),
            "memory",
        ),
        (
            hostile.replace("m=1048576,t=20,p=16", "m=19456,t=5,p=1"),
            "passes",
        ),
        (
            hostile.replace("m=1048576,t=20,p=16", "m=19456,t=2,p=5"),
            "lanes",
        ),
    ] {
        let (status, body) = post_json(
            &app,
            "/v1/keys",
            json!({"name": "offline", "id": id, "secret_hash": hash}),
        )
        .await;
        assert_eq!(status, 422, "{what}: {body}");
        assert_eq!(body["errors"][0]["field"], "secret_hash", "{what}: {body}");
        assert_eq!(
            body["errors"][0]["code"], "hash_cost_too_high",
            "{what}: {body}"
        );
    }
    // The same through a sync push from the desktop.
    let (status, body) = post_json(
        &app,
        "/v1/sync/push",
        json!({"ops": [{
            "op_id": Uuid::now_v7(),
            "kind": "create_key",
            "data": {"name": "offline", "id": id, "secret_hash": hostile},
        }]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["status"], "rejected", "{body}");
    assert_eq!(body["results"][0]["code"], "validation_failed", "{body}");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM api_keys")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(stored, 0);
    // The ceiling itself is accepted.
    let token = ApiKeyToken::generate(Environment::Live, id);
    let (status, body) = post_json(
        &app,
        "/v1/keys",
        json!({"name": "offline", "id": id, "secret_hash": phc(token.expose_secret(), 65_536, 4, 4)}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        app.anon.whoami(token.expose_secret()).await.unwrap().key_id,
        id
    );
}

#[tokio::test]
async fn an_organisation_holds_a_bounded_number_of_keys() {
    let app = TestApp::spawn_with(|c| c.keys.max_per_org = 3).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let req = CreateKeyRequest {
            name: format!("k{i}"),
            ..Default::default()
        };
        ids.push(app.owner.create_key(&req).await.unwrap().key.id);
    }
    let req = CreateKeyRequest {
        name: "one too many".into(),
        ..Default::default()
    };
    let e = app.owner.create_key(&req).await.unwrap_err();
    assert_eq!(
        (e.status().unwrap().as_u16(), e.code()),
        (409, Some("key_limit_reached"))
    );
    // Other organisations are not affected; a revoked key frees its place.
    let other = app.admin("Globex", "owner@globex.test", Role::Owner).await;
    other.create_key(&req).await.unwrap();
    app.owner
        .revoke_key(ids[0], &RevokeKeyRequest::default())
        .await
        .unwrap();
    app.owner.create_key(&req).await.unwrap();
}

#[tokio::test]
async fn a_tenant_flooding_the_hashers_cannot_keep_another_tenant_out() {
    let app = TestApp::spawn_with(|c| {
        c.argon2.permits = 2;
        c.argon2.per_org = 1;
        c.argon2.max_queue = 4;
        c.cold_failures.per_window = 1000;
    })
    .await;
    // The greedy tenant's keys carry the costliest hashes the policy allows.
    let expensive = phc("not any key's token", 65_536, 4, 4);
    let mut keys = Vec::new();
    for i in 0..16 {
        let id = KeyId::new();
        let (status, body) = post_json(
            &app,
            "/v1/keys",
            json!({"name": format!("heavy{i}"), "id": id, "secret_hash": expensive}),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        keys.push(id);
    }
    let other = app.admin("Globex", "owner@globex.test", Role::Owner).await;
    let flood = keys.iter().map(|id| {
        let anon = app.anon.clone();
        let guess = ApiKeyToken::generate(Environment::Live, *id);
        async move { anon.whoami(guess.expose_secret()).await.unwrap_err() }
    });
    let sign_in = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        app.anon
            .login("owner@globex.test", &SecretString::from(PASSWORD))
            .await
    };
    let (answers, signed_in) = tokio::join!(futures::future::join_all(flood), sign_in);
    signed_in.expect("the other tenant signs in during the flood");
    let overloaded = answers
        .iter()
        .filter(|e| e.status().map(|s| s.as_u16()) == Some(503))
        .count();
    assert!(
        overloaded >= 10,
        "the flooding tenant gets its share (1 running, 1 waiting), the rest 503: {answers:?}"
    );
    other.list_keys(&Default::default()).await.unwrap();
}

// --- a public key id, wrong secrets ---

#[tokio::test]
async fn a_wrong_secret_flood_never_refuses_the_right_token() {
    let app = TestApp::spawn().await;
    let created = app
        .owner
        .create_key(&CreateKeyRequest {
            name: "target".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let token = created.token.unwrap();
    let id = created.key.id;
    // A node that has never verified the key (as after a restart).
    let cold = TestServer::start(&app.db, |c| {
        c.webhooks.allowed_networks.clear();
    })
    .await;
    let client = cold.client();
    for i in 0..25 {
        // Forged tokens: the right key id, a valid checksum, a wrong secret.
        let forged = ApiKeyToken::generate(Environment::Live, id);
        let e = client.whoami(forged.expose_secret()).await.unwrap_err();
        assert!(
            matches!(e.code(), Some("invalid_key" | "too_many_attempts")),
            "forged {i}: {e:?}"
        );
    }
    let me = client
        .whoami(&token)
        .await
        .expect("the right token still verifies");
    assert_eq!(me.key_id, id);
}

// --- sign-in ---

#[tokio::test]
async fn parallel_password_guesses_get_no_more_checks_than_the_limit() {
    let app = TestApp::spawn().await;
    let guesses = (0..40).map(|i| {
        let anon = app.anon.clone();
        async move {
            anon.login(
                "owner@acme.test",
                &SecretString::from(format!("wrong password number {i}")),
            )
            .await
            .unwrap_err()
        }
    });
    let answers = futures::future::join_all(guesses).await;
    let checked = answers
        .iter()
        .filter(|e| e.code() == Some("invalid_credentials"))
        .count();
    let throttled: Vec<&ClientError> = answers
        .iter()
        .filter(|e| e.code() == Some("too_many_attempts"))
        .collect();
    assert_eq!(
        checked, 5,
        "exactly the configured 5 are checked: {answers:?}"
    );
    assert_eq!(throttled.len(), 35);
    for e in throttled {
        assert_eq!(e.status().unwrap().as_u16(), 429);
        match e {
            ClientError::Api { retry_after, .. } => assert!(retry_after.unwrap() >= 1),
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn ipv6_clients_are_counted_per_64() {
    let app = TestApp::spawn_with(|c| {
        c.client_ip.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        c.login.per_window = 2;
    })
    .await;
    let http = reqwest::Client::new();
    // Per address: 4 x 2 = 8 failures per window. Nine addresses of one /64, nine emails (so
    // that no email reaches its own limit).
    let mut statuses = Vec::new();
    for i in 1..=9 {
        let res = http
            .post(format!("{}/v1/auth/login", app.server.base_url))
            .header("x-forwarded-for", format!("2001:db8:aa:bb::{i:x}"))
            .json(
                &json!({"email": format!("user{i}@acme.test"), "password": "wrong password here"}),
            )
            .send()
            .await
            .unwrap();
        statuses.push(res.status().as_u16());
    }
    assert_eq!(&statuses[..8], &[401; 8], "{statuses:?}");
    assert_eq!(
        statuses[8], 429,
        "the ninth address of the /64: {statuses:?}"
    );
    // Another /64 is not affected.
    let res = http
        .post(format!("{}/v1/auth/login", app.server.base_url))
        .header("x-forwarded-for", "2001:db8:aa:cc::1")
        .json(&json!({"email": "user1@acme.test", "password": "wrong password here"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
}

// --- gateway ---

/// An upstream that answers every request with what it received, and logs the paths.
async fn recording_upstream() -> (String, Arc<std::sync::Mutex<Vec<Value>>>) {
    use axum::extract::Request;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let app = axum::Router::new().fallback(move |req: Request| {
        let log = log.clone();
        async move {
            let h = |n: &str| {
                req.headers()
                    .get(n)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            let entry = json!({
                "method": req.method().as_str(),
                "path": req.uri().path(),
                "forwarded": h("forwarded"),
                "x_real_ip": h("x-real-ip"),
                "x_forwarded_for": h("x-forwarded-for"),
                "x_forwarded_host": h("x-forwarded-host"),
            });
            log.lock().unwrap().push(entry.clone());
            axum::Json(entry)
        }
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

/// Sends a raw request line (no client-side path normalisation) and returns the status.
async fn raw_status(base_url: &str, method: &str, target: &str, token: &str) -> u16 {
    let addr = base_url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "{method} {target} HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {token}\r\n\
         content-length: 0\r\nconnection: close\r\n\r\n"
    );
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let text = String::from_utf8_lossy(&answer);
    text.split(' ').nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn the_gateway_never_leaves_the_upstream_base_path() {
    let (up, seen) = recording_upstream().await;
    let base = format!("{up}/public");
    let app =
        TestApp::spawn_with(move |c| c.gateway.live = Some(base.parse().expect("upstream URL")))
            .await;
    let token = app
        .owner
        .create_key(&CreateKeyRequest {
            name: "gw".into(),
            scopes: Some(vec!["*:*".into()]),
            ..Default::default()
        })
        .await
        .unwrap()
        .token
        .unwrap();
    for target in [
        "/gw/%2e%2e/admin",
        "/gw/%2E%2e/admin",
        "/gw/../admin",
        "/gw/./../admin",
        "/gw/a/../../admin",
        "/gw/.%2e/admin",
        "/gw/..%2fadmin",
        "/gw/..%5cadmin",
        "/gw/..\\admin",
    ] {
        assert_eq!(
            raw_status(&app.server.base_url, "GET", target, &token).await,
            400,
            "{target}"
        );
    }
    assert!(seen.lock().unwrap().is_empty(), "nothing was forwarded");
    // A normal path stays under the base path.
    assert_eq!(
        raw_status(&app.server.base_url, "GET", "/gw/orders/1", &token).await,
        200
    );
    assert_eq!(seen.lock().unwrap()[0]["path"], "/public/orders/1");
}

#[tokio::test]
async fn the_gateway_drops_address_claims_and_enforces_route_scopes() {
    let (up, seen) = recording_upstream().await;
    let app =
        TestApp::spawn_with(move |c| c.gateway.live = Some(up.parse().expect("upstream URL")))
            .await;
    let token = app
        .owner
        .create_key(&CreateKeyRequest {
            name: "orders reader".into(),
            scopes: Some(vec!["orders:read".into()]),
            ..Default::default()
        })
        .await
        .unwrap()
        .token
        .unwrap();
    let http = reqwest::Client::new();
    let res = http
        .get(format!("{}/gw/orders/7", app.server.base_url))
        .bearer_auth(&token)
        .header("forwarded", "for=10.9.8.7;host=evil.example")
        .header("x-real-ip", "10.9.8.7")
        .header("x-forwarded-for", "10.9.8.7")
        .header("x-forwarded-host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let got: Value = res.json().await.unwrap();
    assert_eq!(got["forwarded"], Value::Null);
    assert_eq!(got["x_real_ip"], Value::Null);
    assert_eq!(got["x_forwarded_host"], Value::Null);
    assert_eq!(
        got["x_forwarded_for"], "127.0.0.1",
        "set from the connection"
    );

    for (method, path) in [
        ("POST", "/gw/orders"),
        ("DELETE", "/gw/orders/7"),
        ("GET", "/gw/admin/users"),
        ("GET", "/gw/Orders/7"),
    ] {
        let res = http
            .request(
                method.parse().unwrap(),
                format!("{}{path}", app.server.base_url),
            )
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403, "{method} {path}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(
            body["code"], "insufficient_scope",
            "{method} {path}: {body}"
        );
    }
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "only the allowed call reached the upstream"
    );
}
