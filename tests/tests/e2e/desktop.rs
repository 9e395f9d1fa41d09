//! The real desktop app in a real window, driven by WebDriver (tauri-driver + WebKitWebDriver)
//! against a real server: sign in, create a key, see it, revoke it, see an alert (on the Alerts
//! screen and as a native notification) and acknowledge it, save a usage report through the
//! native save dialog, go offline, create a key, come back and see it synced. Screenshots of each screen land in artifacts/desktop/.
//!
//! Needs a display, a session bus with an unlocked keyring and tauri-driver: run through
//! `scripts/desktop-e2e.sh` (part of `scripts/test.sh`), which sets all of that up.

use std::path::PathBuf;
use std::time::Duration;

use keyward_core::KeyStatus;
use keyward_core::api::{AlertFilter, AlertStatus, AlertsQuery, KeyStatusFilter, ListKeysQuery};
use keyward_e2e::webdriver::WebDriver;
use keyward_e2e::{PASSWORD, TestApp, TestServer, eventually};

const WAIT: Duration = Duration::from_secs(20);

fn artifacts() -> PathBuf {
    let root = std::env::var("KEYWARD_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("artifacts")
        });
    root.join("desktop")
}

fn desktop_binary() -> String {
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(|d| d.parent())
        .unwrap()
        .join("keyward-desktop");
    assert!(
        bin.exists(),
        "{} not built: scripts/desktop-e2e.sh builds it",
        bin.display()
    );
    bin.display().to_string()
}

/// Types `text` into the field and checks that the field holds it. WebKitWebDriver answers
/// "unknown error" to a key press sent while the page is still settling (right after the first
/// paint, or while React replaces the element), so a refused or lost input is retried with a
/// fresh element until `WAIT` runs out.
async fn fill(wd: &WebDriver, testid: &str, text: &str) -> anyhow::Result<()> {
    let css = format!("[data-testid='{testid}']");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let attempt = async {
            let el = wd.find(&css, WAIT).await?;
            wd.clear(&el).await?;
            wd.type_text(&el, text).await?;
            let value = wd.value(&el).await?;
            anyhow::ensure!(
                value.as_deref() == Some(text),
                "{testid} holds {value:?} after typing"
            );
            Ok(())
        }
        .await;
        match attempt {
            Ok(()) => return Ok(()),
            Err(e) if tokio::time::Instant::now() >= deadline => {
                return Err(e.context(format!("filling {testid}")));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

async fn click(wd: &WebDriver, testid: &str) -> anyhow::Result<()> {
    let el = wd.find(&format!("[data-testid='{testid}']"), WAIT).await?;
    wd.click(&el).await
}

/// Runs xdotool (for the native dialogs WebDriver cannot reach) with a 20-second limit.
async fn xdotool(args: &[&str]) -> anyhow::Result<String> {
    let out = tokio::time::timeout(
        WAIT,
        tokio::process::Command::new("xdotool").args(args).output(),
    )
    .await
    .map_err(|_| anyhow::anyhow!("xdotool {args:?} did not finish"))??;
    anyhow::ensure!(
        out.status.success(),
        "xdotool {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A fresh directory under the system's temporary directory.
fn tempfile_dir(what: &str) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("keyward-e2e-{what}-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

async fn text_of(wd: &WebDriver, testid: &str) -> String {
    match wd
        .find(&format!("[data-testid='{testid}']"), Duration::from_secs(1))
        .await
    {
        Ok(el) => wd.text(&el).await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Waits until the row of the key named `name` is listed; returns its element.
async fn row_named(wd: &WebDriver, name: &str) -> anyhow::Result<String> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        for row in wd.find_all("[data-testid='key-row']").await? {
            if wd.text(&row).await.unwrap_or_default().contains(name) {
                return Ok(row);
            }
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "no key row named {name}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
#[ignore = "needs a display, a keyring and tauri-driver: run scripts/desktop-e2e.sh"]
async fn an_admin_manages_keys_online_and_offline() {
    let driver_url =
        std::env::var("KEYWARD_WEBDRIVER_URL").unwrap_or_else(|_| "http://127.0.0.1:4444".into());
    let shots = artifacts();
    let app = TestApp::spawn().await;
    let addr = app.server.base_url.trim_start_matches("http://").to_owned();

    let launched = std::time::Instant::now();
    let wd = WebDriver::launch(&driver_url, &desktop_binary())
        .await
        .expect("tauri-driver session");
    if wd.find("[data-testid='login-server']", WAIT).await.is_ok() {
        // A figure for the closing note (nextest shows it with --no-capture), not an assertion.
        println!(
            "cold start to first paint (login form present): {:?}",
            launched.elapsed()
        );
    }
    let result = async {
        // Sign in.
        fill(&wd, "login-server", &app.server.base_url).await?;
        fill(&wd, "login-email", "owner@acme.test").await?;
        fill(&wd, "login-password", PASSWORD).await?;
        wd.screenshot(&shots.join("01-login.png")).await?;
        click(&wd, "login-submit").await?;
        wd.find("[data-testid='new-key']", WAIT).await?;
        wd.screenshot(&shots.join("02-keys-empty.png")).await?;

        // Create a key: the token is shown once and works once synced.
        click(&wd, "new-key").await?;
        fill(&wd, "create-name", "Deploy bot").await?;
        fill(&wd, "create-scopes", "achievements:read badges:*").await?;
        wd.screenshot(&shots.join("03-create.png")).await?;
        click(&wd, "create-submit").await?;
        let token_el = wd.find("[data-testid='issued-token']", WAIT).await?;
        let token = wd.text(&token_el).await?;
        anyhow::ensure!(token.starts_with("kw_live_"), "token shown: {token:?}");
        wd.screenshot(&shots.join("04-token-once.png")).await?;
        click(&wd, "token-done").await?;
        row_named(&wd, "Deploy bot").await?;
        let synced = eventually(WAIT, || async { app.anon.whoami(&token).await.is_ok() }).await;
        anyhow::ensure!(
            synced,
            "the key created in the app works against the server"
        );
        wd.screenshot(&shots.join("05-keys-list.png")).await?;

        // Revoke it from its detail screen.
        let row = row_named(&wd, "Deploy bot").await?;
        wd.js_click(&row).await?;
        wd.find("[data-testid='key-detail']", WAIT).await?;
        // The egui_plot chart (wasm) mounts in its canvas.
        wd.find("[data-testid='usage-chart'][data-chart='ready']", WAIT)
            .await?;
        tokio::time::sleep(Duration::from_millis(800)).await;
        wd.screenshot(&shots.join("06-key-detail.png")).await?;
        click(&wd, "revoke-open").await?;
        fill(&wd, "revoke-grace", "0").await?;
        fill(&wd, "revoke-reason", "end-to-end test").await?;
        wd.screenshot(&shots.join("07-revoke.png")).await?;
        click(&wd, "revoke-submit").await?;
        let revoked = eventually(WAIT, || async {
            app.anon
                .whoami(&token)
                .await
                .err()
                .and_then(|e| e.code().map(str::to_owned))
                .as_deref()
                == Some("key_revoked")
        })
        .await;
        anyhow::ensure!(revoked, "revocation reached the server");
        Ok::<_, anyhow::Error>(token)
    }
    .await;
    let first_token = match result {
        Ok(token) => token,
        Err(e) => {
            let _ = wd.screenshot(&shots.join("failure-online.png")).await;
            let _ = wd.quit().await;
            panic!("online part: {e:#}");
        }
    };

    // Alerts: one seeded in the database (of a kind no detector touches: real ones need hours
    // of baseline) is listed on the Alerts screen once the app has pulled analytics, which
    // "Sync now" does at once; it is acknowledged in the UI and so on the server.
    let result = async {
        let keys = app
            .owner
            .list_all_keys(&ListKeysQuery {
                status: Some(KeyStatusFilter::All),
                ..Default::default()
            })
            .await?;
        let key = keys
            .iter()
            .find(|k| k.name == "Deploy bot")
            .ok_or_else(|| anyhow::anyhow!("Deploy bot is not on the server"))?;
        let alert_id = app.seed_alert(key).await;
        let row = format!("[data-testid='alert-row'][data-alert-id='{alert_id}']");
        // Each round: "Sync now" on Settings (a sync round, then the analytics pull), then the
        // Alerts screen, which reads the replica when it opens.
        let listed = eventually(Duration::from_secs(45), || async {
            let round = async {
                click(&wd, "nav-settings").await?;
                click(&wd, "sync-now").await?;
                wd.find("[data-testid='sync-now']:not([disabled])", WAIT)
                    .await?;
                click(&wd, "nav-alerts").await?;
                wd.find("[data-testid='alerts-screen'][aria-busy='false']", WAIT)
                    .await?;
                wd.find(&row, Duration::from_secs(1)).await
            };
            round.await.is_ok()
        })
        .await;
        anyhow::ensure!(listed, "the seeded alert is listed on the Alerts screen");
        let text = wd.text(&wd.find(&row, WAIT).await?).await?;
        anyhow::ensure!(
            text.contains("Deploy bot") && text.contains("seeded test") && text.contains("open"),
            "alert row: {text:?}"
        );
        wd.screenshot(&shots.join("07b-alerts.png")).await?;

        // The same sync showed it as a native notification: dunst, the session's notification
        // daemon, logs each one it shows (application, summary, body) to this file.
        let log = std::env::var("KEYWARD_NOTIFICATIONS_LOG").map_err(|_| {
            anyhow::anyhow!("KEYWARD_NOTIFICATIONS_LOG unset: run through scripts/desktop-e2e.sh")
        })?;
        let wanted = "Alert: seeded test on Deploy bot";
        let shown = eventually(WAIT, || async {
            std::fs::read_to_string(&log).is_ok_and(|all| {
                all.lines()
                    .filter(|l| l.split('\t').nth(1) == Some(wanted))
                    .count()
                    == 1
            })
        })
        .await;
        anyhow::ensure!(
            shown,
            "one notification {wanted:?} in {log}: {:?}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );

        let ack = wd
            .find(&format!("{row} [data-testid='alert-ack']"), WAIT)
            .await?;
        wd.click(&ack).await?;
        // The open list drops it once the server has answered.
        let gone = eventually(WAIT, || async {
            wd.find_all(&row).await.is_ok_and(|rows| rows.is_empty())
        })
        .await;
        anyhow::ensure!(
            gone,
            "the acknowledged alert left the open list; ack error: {:?}",
            text_of(&wd, "ack-error").await
        );
        let acked = eventually(WAIT, || async {
            app.owner
                .alerts(&AlertsQuery {
                    status: Some(AlertFilter::All),
                })
                .await
                .is_ok_and(|list| {
                    list.iter().any(|a| {
                        a.id == alert_id && a.status == AlertStatus::Acked && a.acked_at.is_some()
                    })
                })
        })
        .await;
        anyhow::ensure!(acked, "the alert is acknowledged on the server");
        click(&wd, "alerts-filter-acked").await?;
        let text = wd.text(&wd.find(&row, WAIT).await?).await?;
        anyhow::ensure!(text.contains("acknowledged"), "acked row: {text:?}");
        wd.screenshot(&shots.join("07c-alert-acked.png")).await?;
        Ok::<_, anyhow::Error>(())
    }
    .await;
    if let Err(e) = result {
        let _ = wd.screenshot(&shots.join("failure-alerts.png")).await;
        let _ = wd.quit().await;
        panic!("alerts part: {e:#}");
    }

    // Reports: "Save report…" opens the real GTK save dialog (outside the web view, so driven
    // with xdotool: the dialog's name field takes a whole path); the report streams into that
    // file and the screen says how many rows it wrote.
    let result = async {
        click(&wd, "nav-reports").await?;
        wd.find("[data-testid='reports-screen']", WAIT).await?;
        click(&wd, "report-format-csv").await?;
        click(&wd, "report-save").await?;
        let dialog = xdotool(&[
            "search",
            "--sync",
            "--onlyvisible",
            "--name",
            "Save usage report",
        ])
        .await?;
        let dialog = dialog
            .lines()
            .next()
            .ok_or_else(|| anyhow::anyhow!("no save dialog window"))?
            .to_owned();
        let dir = tempfile_dir("report")?;
        let path = dir.join("usage.csv");
        let typed = path.to_string_lossy().into_owned();
        xdotool(&["windowfocus", "--sync", &dialog]).await?;
        xdotool(&["key", "--clearmodifiers", "ctrl+a"]).await?;
        xdotool(&["type", "--delay", "15", &typed]).await?;
        xdotool(&["key", "Return"]).await?;
        let banner = wd.find("[data-testid='report-saved']", WAIT).await?;
        let said = wd.text(&banner).await?;
        anyhow::ensure!(said.contains(&typed), "saved banner: {said:?}");
        let csv = std::fs::read_to_string(&path)?;
        let mut lines = csv.lines();
        anyhow::ensure!(
            lines.next() == Some("day,key_id,key_name,allowed,rate_limited,rejected"),
            "report: {csv:?}"
        );
        anyhow::ensure!(csv.contains(",Deploy bot,"), "report: {csv:?}");
        anyhow::ensure!(
            !dir.join("usage.csv.part").exists(),
            "the .part file was renamed"
        );
        wd.screenshot(&shots.join("07d-report-saved.png")).await?;
        let _ = std::fs::remove_dir_all(&dir);
        Ok::<_, anyhow::Error>(())
    }
    .await;
    if let Err(e) = result {
        let _ = wd.screenshot(&shots.join("failure-reports.png")).await;
        let _ = wd.quit().await;
        panic!("reports part: {e:#}");
    }

    // Offline: the server goes away; a key created now waits in the outbox.
    let TestApp {
        db,
        server,
        owner,
        anon,
    } = app;
    server.stop().await;
    let result = async {
        click(&wd, "nav-keys").await?;
        let offline = eventually(WAIT, || async {
            text_of(&wd, "status-online").await.contains("Offline")
        })
        .await;
        anyhow::ensure!(offline, "the status bar shows offline");
        click(&wd, "new-key").await?;
        fill(&wd, "create-name", "Made offline").await?;
        click(&wd, "create-submit").await?;
        let token_el = wd.find("[data-testid='issued-token']", WAIT).await?;
        let offline_token = wd.text(&token_el).await?;
        click(&wd, "token-done").await?;
        row_named(&wd, "Made offline").await?;
        let queued = eventually(WAIT, || async {
            text_of(&wd, "status-queued").await.trim() == "1"
        })
        .await;
        anyhow::ensure!(
            queued,
            "one change queued, status bar says {:?}",
            text_of(&wd, "status-queued").await
        );
        wd.screenshot(&shots.join("08-offline-queued.png")).await?;

        // Back online on the same address: the queued key lands and works.
        let server = TestServer::start_on(&db, &addr, |_| {}).await;
        let synced = eventually(Duration::from_secs(30), || async {
            text_of(&wd, "status-queued").await.trim() == "0"
                && text_of(&wd, "status-online").await.contains("Online")
        })
        .await;
        anyhow::ensure!(synced, "the queue drained once the server was back");
        wd.screenshot(&shots.join("09-back-online.png")).await?;
        let keys = owner
            .list_all_keys(&ListKeysQuery {
                status: Some(KeyStatusFilter::All),
                ..Default::default()
            })
            .await?;
        let made = keys
            .iter()
            .find(|k| k.name == "Made offline")
            .ok_or_else(|| anyhow::anyhow!("not on the server"))?;
        anyhow::ensure!(made.status == KeyStatus::Active);
        anon.whoami(&offline_token).await?;
        let revoked = keys
            .iter()
            .find(|k| k.name == "Deploy bot")
            .map(|k| k.status);
        anyhow::ensure!(revoked == Some(KeyStatus::Revoked));

        click(&wd, "nav-audit").await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        wd.screenshot(&shots.join("10-audit.png")).await?;
        click(&wd, "nav-settings").await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        wd.screenshot(&shots.join("11-settings.png")).await?;
        server.stop().await;
        Ok::<_, anyhow::Error>(vec![offline_token, first_token])
    }
    .await;
    let _ = wd.screenshot(&shots.join("99-last.png")).await;
    let _ = wd.quit().await;
    drop(db);
    let tokens = result.expect("offline part");

    // The app's files (replica, settings, usage cache) hold no token: the tokens were shown
    // once and the session token lives in the keychain. Every file is read: a missing data
    // directory or an unreadable file fails the test rather than skipping the scan.
    let dir = std::env::var_os("KEYWARD_DESKTOP_DATA_DIR")
        .expect("KEYWARD_DESKTOP_DATA_DIR names the app's data directory (scripts/desktop-e2e.sh)");
    let files = files_under(std::path::Path::new(&dir));
    assert!(
        !files.is_empty(),
        "the app wrote nothing under {}",
        std::path::Path::new(&dir).display()
    );
    for path in files {
        let bytes = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("cannot read {} to scan it: {e}", path.display()));
        let text = String::from_utf8_lossy(&bytes);
        for token in &tokens {
            assert!(
                !text.contains(token.as_str()),
                "a token in {}",
                path.display()
            );
        }
        assert!(
            !text.contains("kws_"),
            "a session token in {}",
            path.display()
        );
    }
}

/// Every file under `dir`, its subdirectories' included; a directory that cannot be listed
/// fails the test.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    for entry in entries {
        let entry = entry.unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
        let path = entry.path();
        let kind = entry
            .file_type()
            .unwrap_or_else(|e| panic!("cannot stat {}: {e}", path.display()));
        if kind.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}
