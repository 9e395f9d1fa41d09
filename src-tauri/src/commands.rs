//! Tauri commands: one line each, into [`Desktop`]. Everything testable lives there.

use keyward_core::{KeyFilter, SyncStatus};
use keyward_core::anomaly::Thresholds;
use keyward_core::api::{Alert, AlertStatus, AuditEntry, Granularity};
use tauri::State;

use crate::dto::{
    AlertsView, Dashboard, DashboardPeriod, GatewayPeriod, GatewaySnapshot, IssuedKey, KeyDetail,
    KeyEdit, KeyEventsView, KeyList, KeyListItem, LimitsSnapshot, NetworksSnapshot, NewKeyForm,
    ReportRequest, ReportSaved, Revocation, Session, UsageSeries,
};
use crate::error::CommandError;
use crate::services::Desktop;

type Result<T> = std::result::Result<T, CommandError>;

#[tauri::command]
pub async fn login(
    desktop: State<'_, Desktop>,
    server_url: String,
    email: String,
    password: String,
) -> Result<Session> {
    desktop.login(&server_url, &email, password).await
}

#[tauri::command]
pub async fn logout(desktop: State<'_, Desktop>) -> Result<()> {
    desktop.logout().await
}

#[tauri::command]
pub async fn change_password(
    desktop: State<'_, Desktop>,
    current_password: String,
    new_password: String,
) -> Result<()> {
    desktop
        .change_password(current_password, new_password)
        .await
}

#[tauri::command]
pub async fn logout_everywhere(desktop: State<'_, Desktop>) -> Result<()> {
    desktop.logout_everywhere().await
}

#[tauri::command]
pub async fn current_session(desktop: State<'_, Desktop>) -> Result<Option<Session>> {
    Ok(desktop.current_session().await)
}

#[tauri::command]
pub async fn list_keys(desktop: State<'_, Desktop>, filter: KeyFilter) -> Result<KeyList> {
    desktop.list_keys(filter).await
}

#[tauri::command]
pub async fn get_key(desktop: State<'_, Desktop>, id: String) -> Result<KeyDetail> {
    desktop.get_key(&id).await
}

#[tauri::command]
pub async fn create_key(desktop: State<'_, Desktop>, form: NewKeyForm) -> Result<IssuedKey> {
    desktop.create_key(form).await
}

#[tauri::command]
pub async fn update_key(
    desktop: State<'_, Desktop>,
    id: String,
    edit: KeyEdit,
) -> Result<KeyListItem> {
    desktop.update_key(&id, edit).await
}

#[tauri::command]
pub async fn revoke_key(
    desktop: State<'_, Desktop>,
    id: String,
    revocation: Revocation,
) -> Result<KeyListItem> {
    desktop.revoke_key(&id, revocation).await
}

#[tauri::command]
pub async fn rotate_key(
    desktop: State<'_, Desktop>,
    id: String,
    grace_seconds: u32,
) -> Result<IssuedKey> {
    desktop.rotate_key(&id, grace_seconds).await
}

#[tauri::command]
pub async fn audit_log(
    desktop: State<'_, Desktop>,
    limit: u32,
    before_seq: Option<i64>,
) -> Result<Vec<AuditEntry>> {
    desktop.audit_log(limit, before_seq).await
}

#[tauri::command]
pub async fn sync_status(desktop: State<'_, Desktop>) -> Result<SyncStatus> {
    Ok(desktop.sync_status().await)
}

#[tauri::command]
pub async fn sync_now(desktop: State<'_, Desktop>) -> Result<SyncStatus> {
    desktop.sync_now().await
}

#[tauri::command]
pub async fn key_usage(
    desktop: State<'_, Desktop>,
    id: String,
    granularity: Granularity,
) -> Result<UsageSeries> {
    desktop.key_usage(&id, granularity).await
}

#[tauri::command]
pub async fn key_limits(desktop: State<'_, Desktop>, id: String) -> Result<LimitsSnapshot> {
    desktop.key_limits(&id).await
}

#[tauri::command]
pub async fn key_gateway(
    desktop: State<'_, Desktop>,
    id: String,
    period: GatewayPeriod,
) -> Result<GatewaySnapshot> {
    desktop.key_gateway(&id, period).await
}

#[tauri::command]
pub async fn key_networks(desktop: State<'_, Desktop>, id: String) -> Result<NetworksSnapshot> {
    desktop.key_networks(&id).await
}

#[tauri::command]
pub async fn alert_settings(desktop: State<'_, Desktop>) -> Result<Thresholds> {
    desktop.alert_settings().await
}

#[tauri::command]
pub async fn set_alert_settings(
    desktop: State<'_, Desktop>,
    thresholds: Thresholds,
) -> Result<Thresholds> {
    desktop.set_alert_settings(thresholds).await
}

#[tauri::command]
pub async fn dashboard(desktop: State<'_, Desktop>, period: DashboardPeriod) -> Result<Dashboard> {
    desktop.dashboard(period).await
}

#[tauri::command]
pub async fn alerts(
    desktop: State<'_, Desktop>,
    status: Option<AlertStatus>,
) -> Result<AlertsView> {
    desktop.alerts(status).await
}

/// The organisation's events as last synced (the Alerts screen's "Key events").
#[tauri::command]
pub async fn events(desktop: State<'_, Desktop>) -> Result<KeyEventsView> {
    desktop.events().await
}

#[tauri::command]
pub async fn ack_alert(desktop: State<'_, Desktop>, id: String) -> Result<Alert> {
    desktop.ack_alert(&id).await
}

#[tauri::command]
pub async fn save_report(
    desktop: State<'_, Desktop>,
    request: ReportRequest,
) -> Result<ReportSaved> {
    desktop.save_report(request).await
}

#[cfg(test)]
mod tests {
    //! The commands through Tauri's mock runtime: real IPC serialisation, a real server and
    //! database behind them, no window.

    use keyward_core::api::{CreateKeyRequest, RateLimitRule};
    use serde_json::{Value, json};
    use tauri::ipc::{CallbackFn, InvokeBody};
    use tauri::test::{
        INVOKE_KEY, MockRuntime, get_ipc_response, mock_builder, mock_context, noop_assets,
    };
    use tauri::webview::InvokeRequest;
    use tauri::{Manager, WebviewWindow};

    use crate::services::Desktop;

    type Shown = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

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

    fn invoke(
        webview: &WebviewWindow<MockRuntime>,
        cmd: &str,
        args: Value,
    ) -> Result<Value, Value> {
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

    #[test]
    fn commands_work_through_ipc_against_a_real_server() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        // The gateway forwards to a closed port: every call through it is a 502, which is
        // gateway traffic all the same (status class, latency) without an upstream to run.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let app = rt.block_on(keyward_e2e::TestApp::spawn_with(|c| {
            c.upstream = Some(format!("http://{closed}"));
        }));
        let dir = std::env::temp_dir().join(format!("keyward-desktop-test-{}", uuid_like()));
        let (_app, w, notified) = window(dir.clone());

        // Signed out: reads answer `unauthenticated`, the session is null.
        assert_eq!(invoke(&w, "current_session", json!({})), Ok(Value::Null));
        let err = invoke(&w, "list_keys", json!({"filter": filter()})).unwrap_err();
        assert_eq!(err["code"], "unauthenticated");

        // A bad server address is a field error; bad credentials are refused.
        let err = invoke(
            &w,
            "login",
            json!({"serverUrl": "ftp://x", "email": "a@b.c", "password": "p"}),
        )
        .unwrap_err();
        assert_eq!(err["fields"][0]["field"], "server_url");
        let err = invoke(&w, "login", json!({"serverUrl": app.server.base_url, "email": "owner@acme.test", "password": "wrong password"}))
            .unwrap_err();
        assert_eq!(err["code"], "invalid_credentials");

        let session = invoke(
            &w,
            "login",
            json!({"serverUrl": app.server.base_url, "email": "owner@acme.test", "password": keyward_e2e::PASSWORD}),
        )
        .unwrap();
        assert_eq!(session["role"], "owner");

        // Create: bad input is refused with field errors and queues nothing; good input returns
        // the token once.
        let bad = json!({"form": {"name": "", "description": null, "environment": "live", "scopes": ["nope"], "allowed_ips": [], "expires_at": null}});
        let err = invoke(&w, "create_key", bad).unwrap_err();
        assert_eq!(err["code"], "validation_failed");
        let fields: Vec<&str> = err["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["field"].as_str().unwrap())
            .collect();
        assert_eq!(fields, vec!["name", "scopes[0]"]);
        assert_eq!(invoke(&w, "sync_status", json!({})).unwrap()["queued"], 0);

        let form = json!({"form": {"name": "From IPC", "description": null, "environment": "live", "scopes": ["achievements:read"], "allowed_ips": [], "expires_at": null}});
        let issued = invoke(&w, "create_key", form).unwrap();
        let token = issued["token"].as_str().unwrap().to_owned();
        assert!(token.starts_with("kw_live_"));
        let status = invoke(&w, "sync_now", json!({})).unwrap();
        assert_eq!(
            (status["online"].clone(), status["queued"].clone()),
            (json!(true), json!(0))
        );
        rt.block_on(app.anon.whoami(&token))
            .expect("the key works on the server");

        let list = invoke(&w, "list_keys", json!({"filter": filter()})).unwrap();
        assert_eq!(list["items"][0]["key"]["name"], "From IPC");
        let id = list["items"][0]["key"]["id"].as_str().unwrap().to_owned();
        let detail = invoke(&w, "get_key", json!({"id": id})).unwrap();
        assert!(
            detail["audit"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["action"] == "key.create")
        );

        // Limits: a key with its own rule, used once, stands at 1 of 5; the answer is kept in
        // the replica for offline use.
        let limited = rt
            .block_on(app.owner.create_key(&CreateKeyRequest {
                name: "Limited".into(),
                rate_limits: Some(vec![RateLimitRule {
                    name: None,
                    algorithm: "fixed_window".into(),
                    limit: 5,
                    window_seconds: 3600,
                    burst: None,
                }]),
                ..Default::default()
            }))
            .expect("create a limited key");
        let limited_id = limited.key.id.to_string();
        rt.block_on(app.anon.whoami(limited.token.as_deref().unwrap()))
            .expect("the limited key works once");
        let standing = invoke(&w, "key_limits", json!({"id": limited_id})).unwrap();
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
            invoke(&w, "key_limits", json!({"id": "nope"})).unwrap_err()["code"],
            "not_found"
        );

        // A key about to expire and an alert on the limited key (seeded in the database, of a
        // kind no detector touches: real ones need hours of baseline).
        let expiring = rt
            .block_on(app.owner.create_key(&CreateKeyRequest {
                name: "Expiring".into(),
                expires_at: Some(chrono::Utc::now() + chrono::Duration::days(2)),
                ..Default::default()
            }))
            .expect("create an expiring key");
        let alert_id = rt.block_on(app.seed_alert(&limited.key));

        // Dashboard, from the replica after a sync: the organisation's usage counts the calls
        // above (once the server's usage flush, about every 100 ms here, has written them).
        let mut board = Value::Null;
        for _ in 0..100 {
            invoke(&w, "sync_now", json!({})).unwrap();
            board = invoke(&w, "dashboard", json!({"period": "24h"})).unwrap();
            if board["usage"]["totals"]["allowed"].as_i64().unwrap_or(0) >= 2 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert_eq!(board["period"], "24h");
        assert_eq!(board["usage"]["totals"]["allowed"], 2, "{board}");
        assert!(board["fetched_at"].is_string());
        let names: Vec<&str> = board["usage"]["top_by_volume"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["name"].as_str().unwrap())
            .collect();
        assert!(
            names.contains(&"Limited") && names.contains(&"From IPC"),
            "{board}"
        );
        let has_alert = |list: &Value| {
            list.as_array()
                .unwrap()
                .iter()
                .find(|a| a["id"] == alert_id.to_string())
                .cloned()
        };
        assert!(has_alert(&board["alerts"]).is_some(), "{board}");
        let attention = board["attention"].as_array().unwrap();
        assert!(
            attention
                .iter()
                .any(|a| a["kind"] == "expiry" && a["key_id"] == expiring.key.id.to_string()),
            "{board}"
        );
        let month = invoke(&w, "dashboard", json!({"period": "30d"})).unwrap();
        assert_eq!(month["usage"]["granularity"], "day");
        assert_eq!(month["usage"]["totals"], board["usage"]["totals"]);

        // One native notification each for the new alert and the expiring key, never again.
        let shown = notified.lock().unwrap().clone();
        assert!(
            shown.contains(&"Alert: seeded test on Limited".to_owned()),
            "{shown:?}"
        );
        assert!(
            shown.contains(&"Key Expiring expires soon".to_owned()),
            "{shown:?}"
        );
        invoke(&w, "sync_now", json!({})).unwrap();
        assert_eq!(notified.lock().unwrap().len(), shown.len(), "no repeats");

        // A key's usage by hour, from the replica.
        let usage = invoke(
            &w,
            "key_usage",
            json!({"id": limited_id, "granularity": "hour"}),
        )
        .unwrap();
        let calls: i64 = usage["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["allowed"].as_i64().unwrap())
            .sum();
        assert_eq!(calls, 1, "{usage}");
        assert!(usage["fetched_at"].is_string());

        // Alerts: listed from the replica, acknowledged on the server, the row updated.
        let listed = invoke(&w, "alerts", json!({"status": null})).unwrap();
        assert_eq!(has_alert(&listed["items"]).unwrap()["status"], "open");
        assert!(listed["synced_at"].is_string());
        let acked = invoke(&w, "ack_alert", json!({"id": alert_id.to_string()})).unwrap();
        assert_eq!(acked["status"], "acked");
        let open = invoke(&w, "alerts", json!({"status": "open"})).unwrap();
        assert!(has_alert(&open["items"]).is_none());
        let again = invoke(&w, "ack_alert", json!({"id": alert_id.to_string()})).unwrap_err();
        assert_eq!(again["code"], "alert_not_open");

        // Reports: validated here; streamed to the file; CSV rows add up to its total, which
        // matches the dashboard's.
        let now = chrono::Utc::now();
        let csv_path = dir.join("usage.csv");
        let request = |path: &std::path::Path,
                       from: chrono::DateTime<chrono::Utc>,
                       format: &str| {
            json!({"request": {"path": path.display().to_string(), "from": from, "to": now + chrono::Duration::hours(1), "format": format}})
        };
        let err = invoke(
            &w,
            "save_report",
            request(&csv_path, now + chrono::Duration::days(1), "csv"),
        )
        .unwrap_err();
        assert_eq!(err["fields"][0]["field"], "from");
        let err = invoke(
            &w,
            "save_report",
            request(
                &dir.join("missing").join("r.csv"),
                now - chrono::Duration::days(1),
                "csv",
            ),
        )
        .unwrap_err();
        assert_eq!(err["fields"][0]["field"], "path");
        let saved = invoke(
            &w,
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
        let saved_json = invoke(
            &w,
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

        // Gateway traffic and networks: fetched from the server while online and kept in the
        // replica. A key without gateway calls has only its (empty) total.
        let gw = rt
            .block_on(app.owner.create_key(&CreateKeyRequest {
                name: "Gateway".into(),
                // Each gateway route needs its scope (`orders:read`, `users:read`).
                scopes: Some(vec!["orders:read".into(), "users:read".into()]),
                ..Default::default()
            }))
            .expect("create a gateway key");
        let gw_id = gw.key.id.to_string();
        let quiet = invoke(&w, "key_gateway", json!({"id": gw_id, "period": "24h"})).unwrap();
        assert_eq!(quiet["period"], "24h");
        assert_eq!(quiet["key_id"], gw_id.as_str());
        let groups = quiet["usage"]["groups"].as_array().unwrap();
        assert_eq!(groups.len(), 1, "{quiet}");
        assert_eq!(groups[0]["calls"], 0);
        assert!(groups[0]["route"].is_null());
        let http = reqwest::Client::new();
        for path in ["orders/17", "orders/18", "users"] {
            let answer = rt
                .block_on(
                    http.get(format!("{}/gw/{path}", app.server.base_url))
                        .bearer_auth(gw.token.as_deref().unwrap())
                        .send(),
                )
                .expect("a gateway call");
            assert_eq!(answer.status().as_u16(), 502, "the upstream is down");
        }
        let mut gateway = Value::Null;
        for _ in 0..100 {
            gateway = invoke(&w, "key_gateway", json!({"id": gw_id, "period": "24h"})).unwrap();
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
        let week = invoke(&w, "key_gateway", json!({"id": gw_id, "period": "7d"})).unwrap();
        assert_eq!(week["period"], "7d");
        assert_eq!(week["usage"]["groups"][0]["calls"], 3);
        assert_eq!(
            invoke(&w, "key_gateway", json!({"id": "nope", "period": "24h"})).unwrap_err()["code"],
            "not_found"
        );
        let mut networks = Value::Null;
        for _ in 0..100 {
            networks = invoke(&w, "key_networks", json!({"id": gw_id})).unwrap();
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

        // Alert sensitivity: read, changed, read back; out-of-range fields come back from the
        // server (422) as field errors, and nothing changes.
        let defaults = invoke(&w, "alert_settings", json!({})).unwrap();
        assert_eq!(defaults["z_score"], 4.0);
        assert_eq!(defaults["min_volume"], 30);
        let mut wanted = defaults.clone();
        wanted["z_score"] = json!(5.5);
        wanted["idle_days"] = json!(10);
        wanted["network_warmup_hours"] = json!(0);
        let saved = invoke(&w, "set_alert_settings", json!({"thresholds": wanted})).unwrap();
        assert_eq!(saved, wanted);
        assert_eq!(invoke(&w, "alert_settings", json!({})).unwrap(), wanted);
        let mut bad = wanted.clone();
        bad["z_score"] = json!(0);
        bad["drop_fraction"] = json!(1.0);
        bad["idle_days"] = json!(0);
        let err = invoke(&w, "set_alert_settings", json!({"thresholds": bad})).unwrap_err();
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
        assert_eq!(invoke(&w, "alert_settings", json!({})).unwrap(), wanted);

        let revoked = invoke(
            &w,
            "revoke_key",
            json!({"id": id, "revocation": {"grace_seconds": 0, "reason": "test"}}),
        )
        .unwrap();
        assert_eq!(revoked["key"]["status"], "revoked");
        invoke(&w, "sync_now", json!({})).unwrap();
        let e = rt.block_on(app.anon.whoami(&token)).unwrap_err();
        assert_eq!(e.code(), Some("key_revoked"));

        assert_eq!(
            invoke(&w, "get_key", json!({"id": "nope"})).unwrap_err()["code"],
            "not_found"
        );

        // Offline: the dashboard, the alerts, a key's usage and its last standing come from the
        // replica; acknowledging and saving a report need the server and say so.
        let last_board = invoke(&w, "dashboard", json!({"period": "24h"})).unwrap();
        rt.block_on(app.server.stop());
        let offline_board = invoke(&w, "dashboard", json!({"period": "24h"})).unwrap();
        assert!(offline_board["fetched_at"].is_string());
        assert!(
            offline_board["usage"]["totals"]["allowed"]
                .as_i64()
                .unwrap()
                >= last_board["usage"]["totals"]["allowed"].as_i64().unwrap()
        );
        assert!(invoke(&w, "dashboard", json!({"period": "30d"})).is_ok());
        let kept = invoke(&w, "alerts", json!({"status": null})).unwrap();
        assert_eq!(has_alert(&kept["items"]).unwrap()["status"], "acked");
        let kept = invoke(&w, "key_limits", json!({"id": limited_id})).unwrap();
        assert_eq!(kept["limits"]["key_id"], limited_id.as_str());
        assert_eq!(kept["limits"]["rules"][0]["limit"], 5);
        let err = invoke(&w, "key_limits", json!({"id": id})).unwrap_err();
        assert_eq!(err["code"], "offline");
        let usage = invoke(
            &w,
            "key_usage",
            json!({"id": limited_id, "granularity": "day"}),
        )
        .unwrap();
        assert_eq!(usage["points"].as_array().map(Vec::len), Some(1), "{usage}");
        let err = invoke(&w, "ack_alert", json!({"id": alert_id.to_string()})).unwrap_err();
        assert_eq!(err["code"], "offline");
        // The key's gateway traffic and networks as last fetched, with that fetch's time; a
        // key never looked at has no copy.
        for (period, online) in [("24h", &gateway), ("7d", &week)] {
            let kept = invoke(&w, "key_gateway", json!({"id": gw_id, "period": period})).unwrap();
            assert_eq!(kept["usage"], online["usage"]);
            assert_eq!(kept["fetched_at"], online["fetched_at"]);
        }
        assert_eq!(
            invoke(&w, "key_networks", json!({"id": gw_id})).unwrap(),
            networks
        );
        let err = invoke(&w, "key_gateway", json!({"id": id, "period": "24h"})).unwrap_err();
        assert_eq!(err["code"], "offline");
        assert_eq!(
            invoke(&w, "key_networks", json!({"id": id})).unwrap_err()["code"],
            "offline"
        );
        // Alert sensitivity lives on the server: reading and saving say so.
        let err = invoke(&w, "alert_settings", json!({})).unwrap_err();
        assert_eq!(err["code"], "offline");
        let err = invoke(&w, "set_alert_settings", json!({"thresholds": wanted})).unwrap_err();
        assert_eq!(err["code"], "offline");
        assert!(
            err["message"]
                .as_str()
                .unwrap()
                .contains("saving alert sensitivity"),
            "{err}"
        );
        let err = invoke(
            &w,
            "save_report",
            request(&csv_path, now - chrono::Duration::days(1), "csv"),
        )
        .unwrap_err();
        assert_eq!(err["code"], "offline");

        invoke(&w, "logout", json!({})).unwrap();
        assert_eq!(invoke(&w, "current_session", json!({})), Ok(Value::Null));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn account_commands_through_ipc() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let app = rt.block_on(keyward_e2e::TestApp::spawn());
        let dir = std::env::temp_dir().join(format!("keyward-desktop-account-{}", uuid_like()));
        let (_app, w, _) = window(dir.clone());

        // Plain http:// is refused at the form's server field unless it is this computer.
        let err = invoke(
            &w,
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
        invoke(
            &w,
            "login",
            json!({"serverUrl": app.server.base_url, "email": "owner@acme.test", "password": keyward_e2e::PASSWORD}),
        )
        .unwrap();
        // The server's other session of this admin (another device).
        let other = app.owner.clone();

        let change = |current: &str, new: &str| {
            invoke(
                &w,
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
        assert!(invoke(&w, "sync_now", json!({})).is_ok());
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
        invoke(&w, "logout_everywhere", json!({})).unwrap();
        assert_eq!(invoke(&w, "current_session", json!({})), Ok(Value::Null));
        assert_eq!(
            rt.block_on(second.list_keys(&Default::default()))
                .unwrap_err()
                .status()
                .map(|s| s.as_u16()),
            Some(401)
        );
        let err = invoke(&w, "logout_everywhere", json!({})).unwrap_err();
        assert_eq!(err["code"], "unauthenticated");
        let _ = std::fs::remove_dir_all(dir);
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
}
