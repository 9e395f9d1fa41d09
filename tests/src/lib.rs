//! Test harness: each test gets its own PostgreSQL database and its own servers on random
//! ports, driven through the real client (`keyward-client`).

pub mod webdriver;

use std::path::PathBuf;
use std::time::Duration;

use keyward_client::KeywardClient;
use keyward_core::api::Role;
use keyward_server::Config;
use secrecy::SecretString;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const PASSWORD: &str = "correct horse battery staple";

/// `postgres://user@host:port` of the server tests create their databases on.
pub fn pg_url() -> String {
    std::env::var("KEYWARD_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// A database of the test's own, dropped when the test ends.
pub struct TestDb {
    pub name: String,
    pub url: String,
    pub pool: PgPool,
}

impl TestDb {
    pub async fn new() -> TestDb {
        let name = format!("kw_e2e_{}", uuid::Uuid::new_v4().simple());
        let admin = PgPool::connect(&format!("{}/postgres", pg_url()))
            .await
            .expect("PostgreSQL must be running");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .expect("create test database");
        admin.close().await;
        let url = format!("{}/{name}", pg_url());
        let pool = PgPool::connect(&url)
            .await
            .expect("connect to test database");
        keyward_server::store::migrate(&pool)
            .await
            .expect("migrate");
        TestDb { name, url, pool }
    }

    /// Creates the organisation "Acme" and its owner `owner@acme.test` (password [`PASSWORD`]),
    /// for tests that start the server binary themselves and sign in.
    pub async fn add_owner(&self) {
        keyward_server::admin::create(
            &self.pool,
            "Acme",
            "owner@acme.test",
            Some(Role::Owner),
            &SecretString::from(PASSWORD),
        )
        .await
        .expect("create the owner");
    }
}

/// Test databases whose drop failed in this process (each is also reported on stderr).
pub static LEAKED_DATABASES: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(0);

impl TestDb {
    /// Drops the database (closing its connections); the error says what failed.
    fn drop_database(name: &str) -> Result<(), String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("runtime: {e}"))?;
        rt.block_on(async {
            let admin = PgPool::connect(&format!("{}/postgres", pg_url()))
                .await
                .map_err(|e| format!("connect: {e}"))?;
            // A pool of a server still stopping may reconnect between FORCE's termination and
            // the drop ("being accessed by other users"): a few attempts before giving up.
            let mut dropped = Ok(());
            for attempt in 0..5 {
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                dropped = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&admin)
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("DROP DATABASE: {e}"));
                if dropped.is_ok() {
                    break;
                }
            }
            admin.close().await;
            dropped
        })
    }
}

impl Drop for TestDb {
    /// Drops the database. A database that cannot be dropped is never silent: it is reported
    /// on stderr and counted in [`LEAKED_DATABASES`], and the test fails (unless it is already
    /// failing, when a second panic would abort the process and hide the first).
    fn drop(&mut self) {
        let name = self.name.clone();
        // Async drop is not a thing: a small runtime on a plain thread drops the database.
        let outcome = std::thread::spawn(move || Self::drop_database(&name))
            .join()
            .unwrap_or_else(|_| Err("the dropping thread panicked".to_owned()));
        if let Err(e) = outcome {
            let leaked = LEAKED_DATABASES.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            eprintln!(
                "LEAKED test database {} ({leaked} in this process): {e}; drop it with \
                 `DROP DATABASE {} WITH (FORCE)`",
                self.name, self.name
            );
            if !std::thread::panicking() {
                panic!("test database {} was not dropped: {e}", self.name);
            }
        }
    }
}

/// A server running in this process on 127.0.0.1:random.
pub struct TestServer {
    pub base_url: String,
    shutdown: CancellationToken,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestServer {
    pub async fn start(db: &TestDb, tweak: impl FnOnce(&mut Config)) -> TestServer {
        Self::start_on(db, "127.0.0.1:0", tweak).await
    }

    /// Like [`TestServer::start`] on a given address (to bring a stopped server back where its
    /// clients expect it).
    pub async fn start_on(db: &TestDb, addr: &str, tweak: impl FnOnce(&mut Config)) -> TestServer {
        let listener = TcpListener::bind(addr).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut config = Config::for_database(db.url.clone());
        config.bind = addr;
        config.usage.flush_interval = Duration::from_millis(100);
        // The tests' webhook receivers listen on loopback, which the destination policy refuses
        // unless allowed; the SSRF tests clear this.
        config.webhooks.allowed_networks = vec![
            "127.0.0.0/8".parse().expect("cidr"),
            "::1/128".parse().expect("cidr"),
        ];
        // The tests call /v1/verify from loopback as the platform service whose `client_ip` is
        // believed; `verify_trust` clears this to be an untrusted caller.
        config.client_ip.verify_trusted_callers = vec![
            "127.0.0.0/8".parse().expect("cidr"),
            "::1/128".parse().expect("cidr"),
        ];
        tweak(&mut config);
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(keyward_server::serve(config, listener, shutdown.clone()));
        let server = TestServer {
            base_url: format!("http://{addr}"),
            shutdown,
            handle: Some(handle),
        };
        server.wait_ready().await;
        server
    }

    async fn wait_ready(&self) {
        let client = self.client();
        // A deadline for a broken start, not a timing claim: generous on a busy machine.
        let ready = eventually(Duration::from_secs(60), || async {
            client.readyz().await.is_ok()
        })
        .await;
        assert!(ready, "server at {} did not become ready", self.base_url);
    }

    pub fn client(&self) -> KeywardClient {
        KeywardClient::new(&self.base_url).expect("client")
    }

    /// The server's `/metrics` text.
    pub async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.base_url))
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text")
    }

    /// Graceful stop: in-flight requests finish, usage is flushed.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(h) = self.handle.take() {
            h.await
                .expect("server task")
                .expect("server exited cleanly");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// One database, one server, one organisation with a signed-in owner.
pub struct TestApp {
    pub db: TestDb,
    pub server: TestServer,
    pub anon: KeywardClient,
    pub owner: KeywardClient,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
        let db = TestDb::new().await;
        let server = TestServer::start(&db, tweak).await;
        let anon = server.client();
        let mut app = TestApp {
            owner: anon.clone(),
            anon,
            db,
            server,
        };
        app.owner = app.admin("Acme", "owner@acme.test", Role::Owner).await;
        app
    }

    /// Creates an admin (and its organisation when new) and signs it in.
    pub async fn admin(&self, org: &str, email: &str, role: Role) -> KeywardClient {
        let password = SecretString::from(PASSWORD);
        keyward_server::admin::create(&self.db.pool, org, email, Some(role), &password)
            .await
            .expect("create admin");
        let (client, _) = self.anon.login(email, &password).await.expect("login");
        client
    }

    pub fn pool(&self) -> &PgPool {
        &self.db.pool
    }

    /// Opens an alert on `key` straight in the database (kind `seeded_test`, 420 observed
    /// against 35.5 expected over the 5 minutes from 10 minutes ago): a kind no detector
    /// touches, since real ones need hours of baseline. Returns its id.
    pub async fn seed_alert(&self, key: &keyward_core::api::ApiKey) -> uuid::Uuid {
        let id = uuid::Uuid::now_v7();
        sqlx::query(
            "INSERT INTO alerts (id, org_id, key_id, kind, status, observed, expected,
                window_start, window_secs, detail, opened_at, last_seen_at)
             VALUES ($1, $2, $3, 'seeded_test', 'open', 420, 35.5, now() - interval '10 minutes',
                300, '12x the usual rate', now(), now())",
        )
        .bind(id)
        .bind(key.org_id.into_uuid())
        .bind(key.id.into_uuid())
        .execute(&self.db.pool)
        .await
        .expect("seed an alert");
        id
    }
}

/// The `keyward-server` binary built beside the test binaries (target/<profile>/).
pub fn server_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let bin = dir.join("keyward-server");
    assert!(
        bin.exists(),
        "{} not built: run the tests through scripts/test.sh (cargo builds it)",
        bin.display()
    );
    bin
}

/// Polls `check` every 20 ms until it holds or `within` passes; returns whether it held.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The address in the server's `serving` log line (`... serving addr=127.0.0.1:PORT ...`, text
/// or JSON logs, colours stripped).
fn serving_address(logs: &str) -> Option<std::net::SocketAddr> {
    logs.lines()
        .map(strip_ansi)
        .filter(|line| line.contains("serving"))
        .find_map(|line| {
            let rest = &line[line.find("addr")? + "addr".len()..];
            let rest = rest.trim_start_matches(['=', '"', ':', ' ']);
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '[' | ']')))
                .unwrap_or(rest.len());
            rest[..end].parse().ok()
        })
}

/// `line` without ANSI escape sequences (`ESC [ ... letter`).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Waits, if needed, until at least `margin` remains before the next UTC midnight, so a test
/// counting against a daily window finishes inside the day it started in. A test that still
/// sees the day change must fail (see [`assert_same_utc_day`]), never pass silently.
pub async fn clear_of_utc_midnight(margin: Duration) {
    let now = chrono::Utc::now();
    let midnight = (now.date_naive() + chrono::Days::new(1))
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc();
    let left = (midnight - now).to_std().unwrap_or_default();
    if left < margin {
        eprintln!("waiting {left:?} for UTC midnight to pass before counting a daily window");
        tokio::time::sleep(left + Duration::from_secs(1)).await;
    }
}

/// Fails when the UTC day changed since `day`: a daily window turned over mid-test, so its
/// counts cannot be compared (raise the margin given to [`clear_of_utc_midnight`]).
pub fn assert_same_utc_day(day: chrono::NaiveDate) {
    let today = chrono::Utc::now().date_naive();
    assert_eq!(
        today, day,
        "the daily window turned over mid-test despite clear_of_utc_midnight's margin"
    );
}

/// The real `keyward-server serve` binary as a child process, its logs captured to a file.
pub struct ServerProcess {
    pub base_url: String,
    child: std::process::Child,
    log: PathBuf,
}

impl ServerProcess {
    /// Starts the binary on `127.0.0.1:0`: the server binds the port itself and the address is
    /// read from its `serving` log line, so no port is probed and hoped to stay free (a child
    /// process cannot be handed a listener without socket activation, which the server lacks).
    pub async fn start(db: &TestDb, env: &[(&str, &str)]) -> ServerProcess {
        let log = std::env::temp_dir().join(format!("{}-server.log", db.name));
        let file = std::fs::File::create(&log).unwrap();
        let mut cmd = std::process::Command::new(server_binary());
        cmd.arg("serve")
            .env("DATABASE_URL", &db.url)
            .env("KEYWARD_BIND", "127.0.0.1:0")
            // Plain text logs, so the `serving` line can be read.
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start keyward-server");
        let mut server = ServerProcess {
            base_url: String::new(),
            child,
            log,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let addr = loop {
            if let Some(addr) = serving_address(&server.logs()) {
                break addr;
            }
            if let Some(status) = server.child.try_wait().expect("wait") {
                panic!(
                    "keyward-server exited ({status}) before serving; log:\n{}",
                    server.logs()
                );
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "keyward-server logged no `serving` address; log:\n{}",
                server.logs()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        };
        server.base_url = format!("http://{addr}");
        let client = server.client();
        let ready = eventually(Duration::from_secs(60), || async {
            client.readyz().await.is_ok()
        })
        .await;
        assert!(
            ready,
            "keyward-server did not become ready; log:\n{}",
            server.logs()
        );
        server
    }

    pub fn client(&self) -> KeywardClient {
        KeywardClient::new(&self.base_url).expect("client")
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the exit; returns whether it exited 0, and its logs.
    pub async fn terminate(self) -> (bool, String) {
        // A deadline for a hung process, not a timing claim.
        self.terminate_within(Duration::from_secs(60)).await
    }

    /// Like [`ServerProcess::terminate`], waiting up to `within` for the exit.
    pub async fn terminate_within(self, within: Duration) -> (bool, String) {
        self.sigterm();
        self.wait_exit(within).await
    }

    /// Sends SIGTERM and returns at once (the server drains meanwhile).
    pub fn sigterm(&self) {
        let pid = self.child.id().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(sent.success());
    }

    /// Kills the process with SIGKILL (no drain, no flush: a crash) and returns its logs.
    pub fn kill(mut self) -> String {
        self.child.kill().expect("kill -9 keyward-server");
        self.child.wait().expect("wait");
        self.logs()
    }

    /// Waits up to `within` for the process to exit; returns whether it exited 0, and its logs.
    pub async fn wait_exit(mut self, within: Duration) -> (bool, String) {
        let deadline = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return (status.success(), self.logs());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let _ = self.child.kill();
        panic!(
            "keyward-server did not stop after SIGTERM; log:\n{}",
            self.logs()
        );
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// A TCP proxy to PostgreSQL that the test can cut (every connection closed, new ones closed at
/// once) and restore.
pub struct CutProxy {
    pub addr: std::net::SocketAddr,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    links: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl CutProxy {
    pub async fn start(target: String) -> CutProxy {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let proxy = CutProxy {
            addr,
            cut: Default::default(),
            links: Default::default(),
        };
        let (cut, links) = (proxy.cut.clone(), proxy.links.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if cut.load(Ordering::SeqCst) {
                    continue; // dropped: the connection closes at once
                }
                let target = target.clone();
                let link = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                links.lock().unwrap().push(link.abort_handle());
            }
        });
        proxy
    }

    pub fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    pub fn restore(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }

    /// `db`'s URL with this proxy in front of it.
    pub fn url_for(&self, db: &TestDb) -> String {
        let mut url = reqwest::Url::parse(&db.url).expect("database url");
        url.set_port(Some(self.addr.port())).expect("port");
        url.set_host(Some("127.0.0.1")).expect("host");
        url.to_string()
    }

    /// A proxy in front of `db`'s server.
    pub async fn in_front_of(db: &TestDb) -> CutProxy {
        let url = reqwest::Url::parse(&db.url).expect("database url");
        let target = format!(
            "{}:{}",
            url.host_str().unwrap_or("127.0.0.1"),
            url.port().unwrap_or(5432)
        );
        CutProxy::start(target).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_serving_address_is_read_from_text_and_json_logs() {
        let text = "2026-12-07T12:00:00.000000Z  INFO keyward_server: audit log is UNSIGNED\n\
                    2026-12-07T12:00:00.100000Z  \u{1b}[32m INFO\u{1b}[0m \u{1b}[2mkeyward_server\u{1b}[0m\u{1b}[2m:\u{1b}[0m serving \u{1b}[3maddr\u{1b}[0m\u{1b}[2m=\u{1b}[0m127.0.0.1:41234 \u{1b}[3mlimits\u{1b}[0m\u{1b}[2m=\u{1b}[0mLimits { max_connections: 1024 }\n";
        assert_eq!(
            serving_address(text),
            Some("127.0.0.1:41234".parse().unwrap())
        );
        let json = r#"{"timestamp":"2026-12-07T12:00:00Z","level":"INFO","fields":{"message":"serving","addr":"127.0.0.1:5123","limits":"Limits"},"target":"keyward_server"}"#;
        assert_eq!(
            serving_address(json),
            Some("127.0.0.1:5123".parse().unwrap())
        );
        assert_eq!(serving_address("INFO keyward_server: migrating\n"), None);
    }
}
