//! What every desktop test shares: a fresh server and database, the real app launched through
//! tauri-driver on a data directory emptied first, sign-in, form helpers, screenshots, and the
//! closing checks (a failure screenshot, the app quit, no token in the app's files).

use std::path::{Path, PathBuf};
use std::time::Duration;

use keyward_client::KeywardClient;
use keyward_core::api::{ApiKey, CreateKeyRequest, KeyStatusFilter, ListKeysQuery};
use keyward_e2e::webdriver::WebDriver;
use keyward_e2e::{PASSWORD, TestApp, TestDb, TestServer, eventually};

pub const WAIT: Duration = Duration::from_secs(20);

/// One test's app: its own server and database, and the desktop app in a window.
pub struct Desk {
    pub app: TestApp,
    pub wd: WebDriver,
    /// The server's `host:port`, to bring it back where the app expects it.
    pub addr: String,
}

/// Prints how long the test has run at `what` (a figure for the closing note, shown with
/// --no-capture), not an assertion.
pub fn note(since: std::time::Instant, what: &str) {
    println!("{:>8.1?} {what}", since.elapsed());
}

/// Where screenshots go: `$KEYWARD_ARTIFACTS/desktop` (scripts/desktop-e2e.sh).
pub fn shot(name: &str) -> PathBuf {
    let root = std::env::var("KEYWARD_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("artifacts")
        });
    root.join("desktop").join(name)
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

/// The app's data directory (replica, settings, usage cache), which tauri-driver's environment
/// names for every app it launches.
pub fn data_dir() -> PathBuf {
    std::env::var_os("KEYWARD_DESKTOP_DATA_DIR")
        .map(PathBuf::from)
        .expect("KEYWARD_DESKTOP_DATA_DIR names the app's data directory (scripts/desktop-e2e.sh)")
}

/// Empties the data directory so the app starts signed out with no replica. The desktop tests
/// share it, and so run one at a time (the `desktop` test group in .config/nextest.toml).
fn empty_data_dir() {
    let dir = data_dir();
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot empty {}: {e}", dir.display()));
    }
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
}

fn driver_url() -> String {
    std::env::var("KEYWARD_WEBDRIVER_URL").unwrap_or_else(|_| "http://127.0.0.1:4444".into())
}

/// Launches the app (a new process) through tauri-driver.
pub async fn launch() -> WebDriver {
    WebDriver::launch(&driver_url(), &desktop_binary())
        .await
        .expect("tauri-driver session")
}

/// A fresh server and database, and the app on an empty data directory at its sign-in form.
pub async fn open() -> Desk {
    empty_data_dir();
    let app = TestApp::spawn().await;
    let addr = app.server.base_url.trim_start_matches("http://").to_owned();
    let launched = std::time::Instant::now();
    let wd = launch().await;
    if let Err(e) = wd.find("[data-testid='login-server']", WAIT).await {
        let _ = wd.screenshot(&shot("failure-start.png")).await;
        let _ = wd.quit().await;
        panic!("the sign-in form did not appear: {e:#}");
    }
    // A figure for the closing note (nextest shows it with --no-capture), not an assertion.
    println!(
        "cold start to first paint (login form present): {:?}",
        launched.elapsed()
    );
    Desk { app, wd, addr }
}

/// Like [`open`], signed in as the organisation's owner, on the Keys screen.
pub async fn signed_in() -> Desk {
    let desk = open().await;
    if let Err(e) = sign_in(&desk.wd, &desk.app.server.base_url, PASSWORD).await {
        let _ = desk.wd.screenshot(&shot("failure-sign-in.png")).await;
        let _ = desk.wd.quit().await;
        panic!("signing in: {e:#}");
    }
    desk
}

/// Fills and sends the sign-in form; with the right password, waits for the Keys screen.
pub async fn sign_in(wd: &WebDriver, server: &str, password: &str) -> anyhow::Result<()> {
    fill(wd, "login-server", server).await?;
    fill(wd, "login-email", "owner@acme.test").await?;
    fill(wd, "login-password", password).await?;
    click(wd, "login-submit").await?;
    if password == PASSWORD {
        wd.find("[data-testid='new-key']", WAIT).await?;
    }
    Ok(())
}

impl Desk {
    /// Ends the test: a screenshot named after it when `result` failed, the app quit, and its
    /// data directory scanned for `tokens` and session tokens; panics on any failure.
    pub async fn finish(self, name: &str, result: anyhow::Result<Vec<String>>) {
        finish(self.wd, name, result).await;
    }
}

/// [`Desk::finish`] for a test that has taken its `Desk` apart.
pub async fn finish(wd: WebDriver, name: &str, result: anyhow::Result<Vec<String>>) {
    if result.is_err() {
        let _ = wd.screenshot(&shot(&format!("failure-{name}.png"))).await;
    }
    let _ = wd.quit().await;
    let tokens = result.unwrap_or_else(|e| panic!("{name}: {e:#}"));
    assert_no_tokens_on_disk(&tokens);
}

/// The app's files (replica, settings, usage cache) hold none of `tokens` and no session token
/// (`kws_`): tokens are shown once and the session token lives in the keychain. Every file is
/// read: an empty data directory or an unreadable file fails rather than skipping the scan.
pub fn assert_no_tokens_on_disk(tokens: &[String]) {
    let dir = data_dir();
    let files = files_under(&dir);
    assert!(
        !files.is_empty(),
        "the app wrote nothing under {}",
        dir.display()
    );
    for path in files {
        let bytes = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("cannot read {} to scan it: {e}", path.display()));
        let text = String::from_utf8_lossy(&bytes);
        for token in tokens {
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
fn files_under(dir: &Path) -> Vec<PathBuf> {
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

pub fn css(testid: &str) -> String {
    format!("[data-testid='{testid}']")
}

/// Types `text` into the field and checks that the field holds it. WebKitWebDriver answers
/// "unknown error" to a key press sent while the page is still settling (right after the first
/// paint, or while React replaces the element), so a refused or lost input is retried with a
/// fresh element until `WAIT` runs out.
pub async fn fill(wd: &WebDriver, testid: &str, text: &str) -> anyhow::Result<()> {
    let css = css(testid);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let attempt = async {
            let el = wd.find(&css, WAIT).await?;
            // Into the middle of the content first: at the window's bottom edge a field is
            // under the status bar, and WebKit refuses to type into a covered element.
            wd.execute(
                "arguments[0].scrollIntoView({block: 'center'});",
                vec![serde_json::json!({ keyward_e2e::webdriver::ELEMENT: el })],
            )
            .await?;
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

pub async fn click(wd: &WebDriver, testid: &str) -> anyhow::Result<()> {
    let el = wd.find(&css(testid), WAIT).await?;
    wd.execute(
        "arguments[0].scrollIntoView({block: 'center'});",
        vec![serde_json::json!({ keyward_e2e::webdriver::ELEMENT: el })],
    )
    .await?;
    wd.click(&el).await
}

/// The element's text, or empty when it is not there (within a second).
pub async fn text_of(wd: &WebDriver, testid: &str) -> String {
    match wd.find(&css(testid), Duration::from_secs(1)).await {
        Ok(el) => wd.text(&el).await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Waits until the element's text satisfies `want`; the error names what it said last.
pub async fn wait_text(
    wd: &WebDriver,
    testid: &str,
    what: &str,
    want: impl Fn(&str) -> bool,
) -> anyhow::Result<String> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let text = text_of(wd, testid).await;
        if want(&text) {
            return Ok(text);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "{testid}: expected {what}, it says {text:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The texts of every element matching `css`.
pub async fn texts(wd: &WebDriver, css: &str) -> anyhow::Result<Vec<String>> {
    let mut all = Vec::new();
    for el in wd.find_all(css).await? {
        all.push(wd.text(&el).await.unwrap_or_default());
    }
    Ok(all)
}

/// Waits until the row of the key named `name` is listed; returns its element.
pub async fn row_named(wd: &WebDriver, name: &str) -> anyhow::Result<String> {
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

/// Opens the detail screen of the key named `name` from the Keys screen.
pub async fn open_key(wd: &WebDriver, name: &str) -> anyhow::Result<()> {
    click(wd, "nav-keys").await?;
    let row = row_named(wd, name).await?;
    wd.js_click(&row).await?;
    let detail = wd.find("[data-testid='key-detail']", WAIT).await?;
    let head = wd.text(&detail).await?;
    anyhow::ensure!(head.contains(name), "the detail of {name} shows {head:?}");
    Ok(())
}

/// Revokes the open key from its detail screen, at once.
pub async fn revoke_open_key(wd: &WebDriver, reason: &str) -> anyhow::Result<()> {
    click(wd, "revoke-open").await?;
    fill(wd, "revoke-grace", "0").await?;
    fill(wd, "revoke-reason", reason).await?;
    click(wd, "revoke-submit").await
}

/// One "Sync now" from Settings: a sync round, then the analytics pull.
pub async fn sync_now(wd: &WebDriver) -> anyhow::Result<()> {
    click(wd, "nav-settings").await?;
    click(wd, "sync-now").await?;
    wd.find("[data-testid='sync-now']:not([disabled])", WAIT)
        .await?;
    Ok(())
}

/// Creates a key on the server (as another device would); returns it and its token.
pub async fn server_key(
    owner: &KeywardClient,
    req: CreateKeyRequest,
) -> anyhow::Result<(ApiKey, String)> {
    let created = owner.create_key(&req).await?;
    let token = created
        .token
        .ok_or_else(|| anyhow::anyhow!("no token for {}", req.name))?;
    Ok((created.key, token))
}

/// The server's key named `name`, whatever its status.
pub async fn key_on_server(owner: &KeywardClient, name: &str) -> anyhow::Result<ApiKey> {
    owner
        .list_all_keys(&ListKeysQuery {
            status: Some(KeyStatusFilter::All),
            ..Default::default()
        })
        .await?
        .into_iter()
        .find(|k| k.name == name)
        .ok_or_else(|| anyhow::anyhow!("{name} is not on the server"))
}

/// Whether the server refuses `token` as revoked (waiting for the change to sync).
pub async fn refused_as_revoked(anon: &KeywardClient, token: &str) -> bool {
    eventually(WAIT, || async {
        anon.whoami(token)
            .await
            .err()
            .and_then(|e| e.code().map(str::to_owned))
            .as_deref()
            == Some("key_revoked")
    })
    .await
}

/// Stops the server; waits for the app's status bar to say so.
pub async fn go_offline(wd: &WebDriver, server: TestServer) -> anyhow::Result<()> {
    server.stop().await;
    wait_text(wd, "status-online", "Offline", |t| t.contains("Offline")).await?;
    Ok(())
}

/// Waits until the status bar shows `n` queued changes.
pub async fn queued(wd: &WebDriver, n: usize) -> anyhow::Result<()> {
    wait_text(wd, "status-queued", &format!("{n} queued"), |t| {
        t.trim() == n.to_string()
    })
    .await?;
    Ok(())
}

/// Brings the server back on `addr` and waits for the app to be online with its queue drained.
pub async fn back_online(wd: &WebDriver, db: &TestDb, addr: &str) -> anyhow::Result<TestServer> {
    let server = TestServer::start_on(db, addr, |_| {}).await;
    // The app retries with a backoff of up to 10 s after a failed round.
    let synced = eventually(Duration::from_secs(30), || async {
        text_of(wd, "status-queued").await.trim() == "0"
            && text_of(wd, "status-online").await.contains("Online")
    })
    .await;
    anyhow::ensure!(
        synced,
        "the queue drained once the server was back; status bar: {:?} {:?}",
        text_of(wd, "status-online").await,
        text_of(wd, "status-queued").await
    );
    Ok(server)
}

/// Runs xdotool (for the native dialogs WebDriver cannot reach) with a 20-second limit.
pub async fn xdotool(args: &[&str]) -> anyhow::Result<String> {
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
pub fn tempfile_dir(what: &str) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("keyward-e2e-{what}-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
