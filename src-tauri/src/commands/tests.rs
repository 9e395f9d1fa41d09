//! The commands through Tauri's mock runtime: real IPC serialisation, a real server and database
//! behind them, no window. One test per command group, each with its own server, database and
//! data directory, so one failure does not hide the rest.

use keyward_core::api::{ApiKey, CreateKeyRequest, RateLimitRule};
use serde_json::{Value, json};
use tauri::ipc::{CallbackFn, InvokeBody};
use tauri::test::{
    INVOKE_KEY, MockRuntime, get_ipc_response, mock_builder, mock_context, noop_assets,
};
use tauri::webview::InvokeRequest;
use tauri::{Manager, WebviewWindow};

use crate::services::Desktop;

type Shown = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// A directory removed when the test ends.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One test's world: a server and database, the app's commands behind a mock window on a fresh
/// data directory, and the native notifications it showed (by title).
struct Ipc {
    rt: tokio::runtime::Runtime,
    app: keyward_e2e::TestApp,
    w: WebviewWindow<MockRuntime>,
    notified: Shown,
    dir: TempDir,
    _tauri: tauri::App<MockRuntime>,
}

impl Ipc {
    /// Signed out, against a fresh server.
    fn start() -> Ipc {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let app = rt.block_on(keyward_e2e::TestApp::spawn());
        Self::on(rt, app)
    }

    /// Signed out, against `app` (spawned on `rt`).
    fn on(rt: tokio::runtime::Runtime, app: keyward_e2e::TestApp) -> Ipc {
        let dir = std::env::temp_dir().join(format!("keyward-desktop-test-{}", uuid_like()));
        let (tauri, w, notified) = window(dir.clone());
        Ipc {
            rt,
            app,
            w,
            notified,
            dir: TempDir(dir),
            _tauri: tauri,
        }
    }

    /// Signed in as the organisation's owner.
    fn signed_in() -> Ipc {
        Self::start().sign_in()
    }

    fn sign_in(self) -> Ipc {
        let session = self
            .invoke(
                "login",
                json!({"serverUrl": self.app.server.base_url, "email": "owner@acme.test", "password": keyward_e2e::PASSWORD}),
            )
            .unwrap();
        assert_eq!(session["role"], "owner");
        self
    }

    fn invoke(&self, cmd: &str, args: Value) -> Result<Value, Value> {
        invoke(&self.w, cmd, args)
    }

    /// A key made on the server (as another device would), with its token.
    fn server_key(&self, req: CreateKeyRequest) -> (ApiKey, String) {
        let created = self
            .rt
            .block_on(self.app.owner.create_key(&req))
            .expect("create a key on the server");
        (created.key, created.token.expect("a token"))
    }

    /// One call with `token`, which must be allowed.
    fn use_key(&self, token: &str) {
        self.rt
            .block_on(self.app.anon.whoami(token))
            .expect("the key works");
    }

    /// Syncs and reads the dashboard until its usage counts `allowed` calls (the server's usage
    /// flush writes them about every 100 ms here).
    fn dashboard_counting(&self, allowed: i64) -> Value {
        let mut board = Value::Null;
        for _ in 0..100 {
            self.invoke("sync_now", json!({})).unwrap();
            board = self.invoke("dashboard", json!({"period": "24h"})).unwrap();
            if board["usage"]["totals"]["allowed"].as_i64().unwrap_or(0) >= allowed {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert_eq!(board["usage"]["totals"]["allowed"], allowed, "{board}");
        board
    }

    /// Stops the server: the app is offline from here on.
    fn stop_server(self) -> Offline {
        let Ipc {
            rt,
            app,
            w,
            notified: _,
            dir,
            _tauri,
        } = self;
        let keyward_e2e::TestApp { db, server, .. } = app;
        rt.block_on(server.stop());
        Offline {
            w,
            _db: db,
            _dir: dir,
            _tauri,
            _rt: rt,
        }
    }
}

/// What is left once the server has stopped: the app and its replica.
struct Offline {
    w: WebviewWindow<MockRuntime>,
    _db: keyward_e2e::TestDb,
    _dir: TempDir,
    _tauri: tauri::App<MockRuntime>,
    _rt: tokio::runtime::Runtime,
}

impl Offline {
    fn invoke(&self, cmd: &str, args: Value) -> Result<Value, Value> {
        invoke(&self.w, cmd, args)
    }
}

fn window(
    data_dir: std::path::PathBuf,
) -> (tauri::App<MockRuntime>, WebviewWindow<MockRuntime>, Shown) {
    let desktop = tauri::async_runtime::block_on(Desktop::open(data_dir)).expect("open");
    // Notifications recorded by title (the real app shows them with the plugin).
    let shown = Shown::default();
    let record = shown.clone();
    desktop.set_notifier(std::sync::Arc::new(move |n: &keyward_replica::Notice| {
        record.lock().unwrap().push(n.title.clone());
        Ok(())
    }));
    let app = mock_builder()
        .invoke_handler(crate::handlers!())
        .build(mock_context(noop_assets()))
        .expect("app");
    app.manage(desktop);
    let webview = tauri::WebviewWindowBuilder::new(&app, "main", Default::default())
        .build()
        .expect("window");
    (app, webview, shown)
}

fn invoke(webview: &WebviewWindow<MockRuntime>, cmd: &str, args: Value) -> Result<Value, Value> {
    let request = InvokeRequest {
        cmd: cmd.into(),
        callback: CallbackFn(0),
        error: CallbackFn(1),
        url: "tauri://localhost".parse().unwrap(),
        body: InvokeBody::Json(args),
        headers: Default::default(),
        invoke_key: INVOKE_KEY.to_string(),
    };
    get_ipc_response(webview, request).map(|b| b.deserialize::<Value>().unwrap())
}

fn filter() -> Value {
    json!({"search": null, "status": null, "environment": null, "scope": null, "sort": "created", "descending": true, "limit": 50, "offset": 0})
}

fn uuid_like() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

fn has_alert(list: &Value, id: uuid::Uuid) -> Option<Value> {
    list.as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id.to_string())
        .cloned()
}

#[test]
fn signing_in_checks_the_address_and_credentials_and_signing_out_ends_the_session() {
    let ipc = Ipc::start();

    // Signed out: reads answer `unauthenticated`, the session is null.
    assert_eq!(ipc.invoke("current_session", json!({})), Ok(Value::Null));
    let err = ipc
        .invoke("list_keys", json!({"filter": filter()}))
        .unwrap_err();
    assert_eq!(err["code"], "unauthenticated");

    // A bad server address is a field error; bad credentials are refused.
    let err = ipc
        .invoke(
            "login",
            json!({"serverUrl": "ftp://x", "email": "a@b.c", "password": "p"}),
        )
        .unwrap_err();
    assert_eq!(err["fields"][0]["field"], "server_url");
    let err = ipc
        .invoke(
            "login",
            json!({"serverUrl": ipc.app.server.base_url, "email": "owner@acme.test", "password": "wrong password"}),
        )
        .unwrap_err();
    assert_eq!(err["code"], "invalid_credentials");
    assert_eq!(ipc.invoke("current_session", json!({})), Ok(Value::Null));

    let session = ipc
        .invoke(
            "login",
            json!({"serverUrl": ipc.app.server.base_url, "email": "owner@acme.test", "password": keyward_e2e::PASSWORD}),
        )
        .unwrap();
    assert_eq!(session["role"], "owner");
    assert_eq!(session["email"], "owner@acme.test");
    assert_eq!(ipc.invoke("current_session", json!({})), Ok(session));
    assert!(ipc.invoke("list_keys", json!({"filter": filter()})).is_ok());

    ipc.invoke("logout", json!({})).unwrap();
    assert_eq!(ipc.invoke("current_session", json!({})), Ok(Value::Null));
    let err = ipc
        .invoke("list_keys", json!({"filter": filter()}))
        .unwrap_err();
    assert_eq!(err["code"], "unauthenticated");
}

#[test]
fn keys_are_created_listed_read_and_revoked() {
    let ipc = Ipc::signed_in();
    let w = &ipc.w;

    // Create: bad input is refused with field errors and queues nothing; good input returns
    // the token once.
    let bad = json!({"form": {"name": "", "description": null, "environment": "live", "scopes": ["nope"], "allowed_ips": [], "expires_at": null}});
    let err = invoke(w, "create_key", bad).unwrap_err();
    assert_eq!(err["code"], "validation_failed");
    let fields: Vec<&str> = err["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, vec!["name", "scopes[0]"]);
    assert_eq!(invoke(w, "sync_status", json!({})).unwrap()["queued"], 0);

    let form = json!({"form": {"name": "From IPC", "description": null, "environment": "live", "scopes": ["achievements:read"], "allowed_ips": [], "expires_at": null}});
    let issued = invoke(w, "create_key", form).unwrap();
    let token = issued["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("kw_live_"));
    let status = invoke(w, "sync_now", json!({})).unwrap();
    assert_eq!(
        (status["online"].clone(), status["queued"].clone()),
        (json!(true), json!(0))
    );
    ipc.use_key(&token);

    let list = invoke(w, "list_keys", json!({"filter": filter()})).unwrap();
    assert_eq!(list["items"][0]["key"]["name"], "From IPC");
    let id = list["items"][0]["key"]["id"].as_str().unwrap().to_owned();
    let detail = invoke(w, "get_key", json!({"id": id})).unwrap();
    assert!(
        detail["audit"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "key.create")
    );
    assert_eq!(
        invoke(w, "get_key", json!({"id": "nope"})).unwrap_err()["code"],
        "not_found"
    );

    let revoked = invoke(
        w,
        "revoke_key",
        json!({"id": id, "revocation": {"grace_seconds": 0, "reason": "test"}}),
    )
    .unwrap();
    assert_eq!(revoked["key"]["status"], "revoked");
    invoke(w, "sync_now", json!({})).unwrap();
    let e = ipc.rt.block_on(ipc.app.anon.whoami(&token)).unwrap_err();
    assert_eq!(e.code(), Some("key_revoked"));
}

#[test]
fn a_keys_limits_come_from_the_server_and_are_kept_for_offline_use() {
    let ipc = Ipc::signed_in();
    // A key with its own rule, used once, stands at 1 of 5.
    let (limited, token) = ipc.server_key(CreateKeyRequest {
        name: "Limited".into(),
        rate_limits: Some(vec![RateLimitRule {
            name: None,
            algorithm: "fixed_window".into(),
            limit: 5,
            window_seconds: 3600,
            burst: None,
            consistency: Default::default(),
        }]),
        ..Default::default()
    });
    let (other, _) = ipc.server_key(CreateKeyRequest {
        name: "Never looked at".into(),
        ..Default::default()
    });
    ipc.use_key(&token);
    let limited_id = limited.id.to_string();
    let standing = ipc.invoke("key_limits", json!({"id": limited_id})).unwrap();
    assert_eq!(standing["limits"]["key_id"], limited_id.as_str());
    assert!(standing["fetched_at"].is_string());
    let rules = standing["limits"]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 1, "{standing}");
    assert_eq!(rules[0]["kind"], "fixed_window");
    assert_eq!(
        (
            rules[0]["limit"].clone(),
            rules[0]["used"].clone(),
            rules[0]["remaining"].clone()
        ),
        (json!(5), json!(1), json!(4)),
        "{standing}"
    );
    assert_eq!(
        ipc.invoke("key_limits", json!({"id": "nope"})).unwrap_err()["code"],
        "not_found"
    );

    // Offline: the last standing, from the replica; a key never looked at has none.
    let offline = ipc.stop_server();
    let kept = offline
        .invoke("key_limits", json!({"id": limited_id}))
        .unwrap();
    assert_eq!(kept["limits"], standing["limits"]);
    // The copy is the last fetch (the sync loop may have refreshed it since).
    let at = |v: &Value| {
        chrono::DateTime::parse_from_rfc3339(v["fetched_at"].as_str().unwrap()).unwrap()
    };
    assert!(at(&kept) >= at(&standing), "{kept} {standing}");
    let err = offline
        .invoke("key_limits", json!({"id": other.id.to_string()}))
        .unwrap_err();
    assert_eq!(err["code"], "offline");
}

#[test]
fn the_dashboard_usage_and_notifications_come_from_the_replica() {
    let ipc = Ipc::signed_in();
    let (busy, busy_token) = ipc.server_key(CreateKeyRequest {
        name: "Busy".into(),
        ..Default::default()
    });
    let (_, quiet_token) = ipc.server_key(CreateKeyRequest {
        name: "Quiet".into(),
        ..Default::default()
    });
    // A key about to expire and an alert (seeded in the database, of a kind no detector
    // touches: real ones need hours of baseline).
    let (expiring, _) = ipc.server_key(CreateKeyRequest {
        name: "Expiring".into(),
        expires_at: Some(chrono::Utc::now() + chrono::Duration::days(2)),
        ..Default::default()
    });
    let alert_id = ipc.rt.block_on(ipc.app.seed_alert(&busy));
    ipc.use_key(&busy_token);
    ipc.use_key(&quiet_token);

    let board = ipc.dashboard_counting(2);
    assert_eq!(board["period"], "24h");
    assert!(board["fetched_at"].is_string());
    let names: Vec<&str> = board["usage"]["top_by_volume"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"Busy") && names.contains(&"Quiet"),
        "{board}"
    );
    assert!(has_alert(&board["alerts"], alert_id).is_some(), "{board}");
    let attention = board["attention"].as_array().unwrap();
    assert!(
        attention
            .iter()
            .any(|a| a["kind"] == "expiry" && a["key_id"] == expiring.id.to_string()),
        "{board}"
    );
    let month = ipc.invoke("dashboard", json!({"period": "30d"})).unwrap();
    assert_eq!(month["usage"]["granularity"], "day");
    assert_eq!(month["usage"]["totals"], board["usage"]["totals"]);

    // One native notification each for the new alert and the expiring key, never again.
    let shown = ipc.notified.lock().unwrap().clone();
    assert!(
        shown.contains(&"Alert: seeded test on Busy".to_owned()),
        "{shown:?}"
    );
    assert!(
        shown.contains(&"Key Expiring expires soon".to_owned()),
        "{shown:?}"
    );
    ipc.invoke("sync_now", json!({})).unwrap();
    assert_eq!(
        ipc.notified.lock().unwrap().len(),
        shown.len(),
        "no repeats"
    );

    // A key's usage by hour, from the replica.
    let busy_id = busy.id.to_string();
    let usage = ipc
        .invoke("key_usage", json!({"id": busy_id, "granularity": "hour"}))
        .unwrap();
    let calls: i64 = usage["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["allowed"].as_i64().unwrap())
        .sum();
    assert_eq!(calls, 1, "{usage}");
    assert!(usage["fetched_at"].is_string());

    // Offline: the dashboard and a key's usage come from the replica.
    let offline = ipc.stop_server();
    let kept = offline
        .invoke("dashboard", json!({"period": "24h"}))
        .unwrap();
    assert!(kept["fetched_at"].is_string());
    assert_eq!(kept["usage"]["totals"], board["usage"]["totals"]);
    assert!(
        offline
            .invoke("dashboard", json!({"period": "30d"}))
            .is_ok()
    );
    let usage = offline
        .invoke("key_usage", json!({"id": busy_id, "granularity": "day"}))
        .unwrap();
    assert_eq!(usage["points"].as_array().map(Vec::len), Some(1), "{usage}");
}

#[test]
fn alerts_are_listed_from_the_replica_and_acknowledged_on_the_server() {
    let ipc = Ipc::signed_in();
    let (key, _) = ipc.server_key(CreateKeyRequest {
        name: "Alerting".into(),
        ..Default::default()
    });
    let alert_id = ipc.rt.block_on(ipc.app.seed_alert(&key));
    ipc.invoke("sync_now", json!({})).unwrap();

    let listed = ipc.invoke("alerts", json!({"status": null})).unwrap();
    assert_eq!(
        has_alert(&listed["items"], alert_id).unwrap()["status"],
        "open",
        "{listed}"
    );
    assert!(listed["synced_at"].is_string());
    let acked = ipc
        .invoke("ack_alert", json!({"id": alert_id.to_string()}))
        .unwrap();
    assert_eq!(acked["status"], "acked");
    let open = ipc.invoke("alerts", json!({"status": "open"})).unwrap();
    assert!(has_alert(&open["items"], alert_id).is_none());
    let again = ipc
        .invoke("ack_alert", json!({"id": alert_id.to_string()}))
        .unwrap_err();
    assert_eq!(again["code"], "alert_not_open");

    // Offline: the list as last synced; acknowledging needs the server and says so.
    let offline = ipc.stop_server();
    let kept = offline.invoke("alerts", json!({"status": null})).unwrap();
    assert_eq!(
        has_alert(&kept["items"], alert_id).unwrap()["status"],
        "acked"
    );
    let err = offline
        .invoke("ack_alert", json!({"id": alert_id.to_string()}))
        .unwrap_err();
    assert_eq!(err["code"], "offline");
}

#[test]
fn reports_are_validated_streamed_to_the_file_and_need_the_server() {
    let ipc = Ipc::signed_in();
    let (_, token) = ipc.server_key(CreateKeyRequest {
        name: "Reported".into(),
        ..Default::default()
    });
    ipc.use_key(&token);
    ipc.use_key(&token);
    let board = ipc.dashboard_counting(2);

    // Validated here; streamed to the file; CSV rows add up to its total, which matches the
    // dashboard's.
    let dir = &ipc.dir.0;
    let now = chrono::Utc::now();
    let csv_path = dir.join("usage.csv");
    let request = |path: &std::path::Path, from: chrono::DateTime<chrono::Utc>, format: &str| json!({"request": {"path": path.display().to_string(), "from": from, "to": now + chrono::Duration::hours(1), "format": format}});
    let err = ipc
        .invoke(
            "save_report",
            request(&csv_path, now + chrono::Duration::days(1), "csv"),
        )
        .unwrap_err();
    assert_eq!(err["fields"][0]["field"], "from");
    let err = ipc
        .invoke(
            "save_report",
            request(
                &dir.join("missing").join("r.csv"),
                now - chrono::Duration::days(1),
                "csv",
            ),
        )
        .unwrap_err();
    assert_eq!(err["fields"][0]["field"], "path");
    let saved = ipc
        .invoke(
            "save_report",
            request(&csv_path, now - chrono::Duration::days(1), "csv"),
        )
        .unwrap();
    let text = std::fs::read_to_string(&csv_path).unwrap();
    assert_eq!(saved["bytes"], text.len() as u64);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "day,key_id,key_name,allowed,rate_limited,rejected"
    );
    let total: Vec<i64> = lines
        .last()
        .unwrap()
        .split(',')
        .skip(3)
        .map(|n| n.parse().unwrap())
        .collect();
    let rows = &lines[1..lines.len() - 1];
    assert_eq!(saved["rows"], rows.len() as u64);
    assert!(rows.iter().any(|r| r.contains(",Reported,")), "{text}");
    let allowed: i64 = rows
        .iter()
        .map(|r| r.rsplit(',').nth(2).unwrap().parse::<i64>().unwrap())
        .sum();
    assert_eq!(allowed, total[0], "{text}");
    assert_eq!(
        total[0],
        board["usage"]["totals"]["allowed"].as_i64().unwrap(),
        "{text}"
    );
    let json_path = dir.join("usage.json");
    let saved_json = ipc
        .invoke(
            "save_report",
            request(&json_path, now - chrono::Duration::days(1), "json"),
        )
        .unwrap();
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    assert_eq!(
        saved_json["rows"],
        report["rows"].as_array().unwrap().len() as u64
    );
    assert_eq!(report["total"]["allowed"], total[0]);

    // Offline: a report needs the server and says so.
    let offline_path = dir.join("offline.csv");
    let offline = ipc.stop_server();
    let err = offline
        .invoke(
            "save_report",
            request(&offline_path, now - chrono::Duration::days(1), "csv"),
        )
        .unwrap_err();
    assert_eq!(err["code"], "offline");
}

#[test]
fn gateway_traffic_and_networks_are_fetched_and_kept_for_offline_use() {
    // The gateway forwards to a closed port: every call through it is a 502, which is gateway
    // traffic all the same (status class, latency) without an upstream to run.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(keyward_e2e::TestApp::spawn_with(|c| {
        c.gateway.live = Some(format!("http://{closed}").parse().unwrap());
    }));
    let ipc = Ipc::on(rt, app).sign_in();
    let (gw, gw_token) = ipc.server_key(CreateKeyRequest {
        name: "Gateway".into(),
        // Each gateway route needs its scope (`orders:read`, `users:read`).
        scopes: Some(vec!["orders:read".into(), "users:read".into()]),
        ..Default::default()
    });
    let (other, _) = ipc.server_key(CreateKeyRequest {
        name: "Never looked at".into(),
        ..Default::default()
    });
    ipc.invoke("sync_now", json!({})).unwrap();

    // A key without gateway calls has only its (empty) total.
    let gw_id = gw.id.to_string();
    let quiet = ipc
        .invoke("key_gateway", json!({"id": gw_id, "period": "24h"}))
        .unwrap();
    assert_eq!(quiet["period"], "24h");
    assert_eq!(quiet["key_id"], gw_id.as_str());
    let groups = quiet["usage"]["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{quiet}");
    assert_eq!(groups[0]["calls"], 0);
    assert!(groups[0]["route"].is_null());
    let http = reqwest::Client::new();
    for path in ["orders/17", "orders/18", "users"] {
        let answer = ipc
            .rt
            .block_on(
                http.get(format!("{}/gw/{path}", ipc.app.server.base_url))
                    .bearer_auth(&gw_token)
                    .send(),
            )
            .expect("a gateway call");
        assert_eq!(answer.status().as_u16(), 502, "the upstream is down");
    }
    let mut gateway = Value::Null;
    for _ in 0..100 {
        gateway = ipc
            .invoke("key_gateway", json!({"id": gw_id, "period": "24h"}))
            .unwrap();
        if gateway["usage"]["groups"][0]["calls"] == 3 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let groups = gateway["usage"]["groups"].as_array().unwrap();
    assert_eq!(groups[0]["calls"], 3, "the key's total first: {gateway}");
    assert!(groups[0]["route"].is_null());
    assert_eq!(groups[0]["status"]["server_error"], 3);
    assert_eq!(groups[0]["error_share"], 1.0);
    assert!(groups[0]["latency_p95_ms"].is_number(), "{gateway}");
    let routes: Vec<(&str, i64)> = groups[1..]
        .iter()
        .map(|g| (g["route"].as_str().unwrap(), g["calls"].as_i64().unwrap()))
        .collect();
    assert_eq!(routes, vec![("orders", 2), ("users", 1)]);
    assert!(gateway["fetched_at"].is_string());
    let week = ipc
        .invoke("key_gateway", json!({"id": gw_id, "period": "7d"}))
        .unwrap();
    assert_eq!(week["period"], "7d");
    assert_eq!(week["usage"]["groups"][0]["calls"], 3);
    assert_eq!(
        ipc.invoke("key_gateway", json!({"id": "nope", "period": "24h"}))
            .unwrap_err()["code"],
        "not_found"
    );
    let mut networks = Value::Null;
    for _ in 0..100 {
        networks = ipc.invoke("key_networks", json!({"id": gw_id})).unwrap();
        if !networks["items"].as_array().unwrap().is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        networks["items"][0]["network"], "127.0.0.0/24",
        "{networks}"
    );
    assert_eq!(networks["items"][0]["calls"], 3, "{networks}");
    assert!(networks["fetched_at"].is_string());

    // Offline: the key's gateway traffic and networks as last fetched, with that fetch's time;
    // a key never looked at has no copy.
    let offline = ipc.stop_server();
    for (period, online) in [("24h", &gateway), ("7d", &week)] {
        let kept = offline
            .invoke("key_gateway", json!({"id": gw_id, "period": period}))
            .unwrap();
        assert_eq!(kept["usage"], online["usage"]);
        assert_eq!(kept["fetched_at"], online["fetched_at"]);
    }
    assert_eq!(
        offline
            .invoke("key_networks", json!({"id": gw_id}))
            .unwrap(),
        networks
    );
    let other_id = other.id.to_string();
    let err = offline
        .invoke("key_gateway", json!({"id": other_id, "period": "24h"}))
        .unwrap_err();
    assert_eq!(err["code"], "offline");
    assert_eq!(
        offline
            .invoke("key_networks", json!({"id": other_id}))
            .unwrap_err()["code"],
        "offline"
    );
}

#[test]
fn alert_sensitivity_is_read_saved_validated_and_needs_the_server() {
    let ipc = Ipc::signed_in();
    // Read, changed, read back; out-of-range fields come back from the server (422) as field
    // errors, and nothing changes.
    let defaults = ipc.invoke("alert_settings", json!({})).unwrap();
    assert_eq!(defaults["z_score"], 4.0);
    assert_eq!(defaults["min_volume"], 30);
    let mut wanted = defaults.clone();
    wanted["z_score"] = json!(5.5);
    wanted["idle_days"] = json!(10);
    wanted["network_warmup_hours"] = json!(0);
    let saved = ipc
        .invoke("set_alert_settings", json!({"thresholds": wanted}))
        .unwrap();
    assert_eq!(saved, wanted);
    assert_eq!(ipc.invoke("alert_settings", json!({})).unwrap(), wanted);
    let mut bad = wanted.clone();
    bad["z_score"] = json!(0);
    bad["drop_fraction"] = json!(1.0);
    bad["idle_days"] = json!(0);
    let err = ipc
        .invoke("set_alert_settings", json!({"thresholds": bad}))
        .unwrap_err();
    assert_eq!(err["code"], "validation_failed");
    let fields: Vec<(&str, &str)> = err["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["field"].as_str().unwrap(), f["code"].as_str().unwrap()))
        .collect();
    assert_eq!(
        fields,
        vec![
            ("z_score", "out_of_range"),
            ("drop_fraction", "out_of_range"),
            ("idle_days", "out_of_range")
        ],
        "{err}"
    );
    assert!(
        err["fields"][0]["message"]
            .as_str()
            .unwrap()
            .contains("100")
    );
    assert_eq!(ipc.invoke("alert_settings", json!({})).unwrap(), wanted);

    // Alert sensitivity lives on the server: reading and saving offline say so.
    let offline = ipc.stop_server();
    let err = offline.invoke("alert_settings", json!({})).unwrap_err();
    assert_eq!(err["code"], "offline");
    let err = offline
        .invoke("set_alert_settings", json!({"thresholds": wanted}))
        .unwrap_err();
    assert_eq!(err["code"], "offline");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("saving alert sensitivity"),
        "{err}"
    );
}

#[test]
fn changing_the_password_and_signing_out_everywhere() {
    let ipc = Ipc::start();
    let rt = &ipc.rt;
    let app = &ipc.app;

    // Plain http:// is refused at the form's server field unless it is this computer.
    let err = ipc
        .invoke(
            "login",
            json!({"serverUrl": "http://keyward.example.com", "email": "owner@acme.test", "password": "p"}),
        )
        .unwrap_err();
    assert_eq!(err["fields"][0]["field"], "server_url");
    assert_eq!(err["fields"][0]["code"], "insecure_url");
    assert!(
        err["fields"][0]["message"]
            .as_str()
            .unwrap()
            .contains("https://")
    );
    ipc.invoke(
        "login",
        json!({"serverUrl": app.server.base_url, "email": "owner@acme.test", "password": keyward_e2e::PASSWORD}),
    )
    .unwrap();
    // The server's other session of this admin (another device).
    let other = app.owner.clone();

    let change = |current: &str, new: &str| {
        ipc.invoke(
            "change_password",
            json!({"currentPassword": current, "newPassword": new}),
        )
    };
    let field_codes = |err: Value| -> Vec<(String, String)> {
        err["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["field"].as_str().unwrap().to_owned(),
                    f["code"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let pair = |f: &str, c: &str| vec![(f.to_owned(), c.to_owned())];
    // Checked here first, then by the server.
    assert_eq!(
        field_codes(change(keyward_e2e::PASSWORD, "short").unwrap_err()),
        pair("new_password", "weak_password")
    );
    assert_eq!(
        field_codes(change("", "a brand new password").unwrap_err()),
        pair("current_password", "required")
    );
    assert_eq!(
        field_codes(change("not the password", "a brand new password").unwrap_err()),
        pair("current_password", "wrong_password")
    );
    assert_eq!(
        change(keyward_e2e::PASSWORD, "a brand new password"),
        Ok(Value::Null)
    );
    // This device stays signed in; the other session has ended.
    assert!(ipc.invoke("sync_now", json!({})).is_ok());
    assert_eq!(
        rt.block_on(other.list_keys(&Default::default()))
            .unwrap_err()
            .status()
            .map(|s| s.as_u16()),
        Some(401)
    );

    // Everywhere: a second session (another device) ends with this one.
    let (second, _) = rt
        .block_on(app.anon.login(
            "owner@acme.test",
            &secrecy::SecretString::from("a brand new password"),
        ))
        .unwrap();
    ipc.invoke("logout_everywhere", json!({})).unwrap();
    assert_eq!(ipc.invoke("current_session", json!({})), Ok(Value::Null));
    assert_eq!(
        rt.block_on(second.list_keys(&Default::default()))
            .unwrap_err()
            .status()
            .map(|s| s.as_u16()),
        Some(401)
    );
    let err = ipc.invoke("logout_everywhere", json!({})).unwrap_err();
    assert_eq!(err["code"], "unauthenticated");
}
