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
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Async drop is not a thing: a small runtime on a plain thread drops the database.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let admin = PgPool::connect(&format!("{}/postgres", pg_url()))
                    .await
                    .ok()?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&admin)
                    .await
                    .ok()
            })
        })
        .join();
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
        config.usage_flush_interval_ms = 100;
        // The tests' webhook receivers listen on loopback, which the destination policy refuses
        // unless allowed; the SSRF tests clear this.
        config.webhook_allowed_networks = vec![
            "127.0.0.0/8".parse().expect("cidr"),
            "::1/128".parse().expect("cidr"),
        ];
        // The tests call /v1/verify from loopback as the platform service whose `client_ip` is
        // believed; `verify_trust` clears this to be an untrusted caller.
        config.verify_trusted_callers = vec![
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
        for _ in 0..200 {
            if client.readyz().await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("server at {} did not become ready", self.base_url);
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

/// The real `keyward-server serve` binary as a child process, its logs captured to a file.
pub struct ServerProcess {
    pub base_url: String,
    child: std::process::Child,
    log: PathBuf,
}

impl ServerProcess {
    pub async fn start(db: &TestDb, env: &[(&str, &str)]) -> ServerProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::env::temp_dir().join(format!("{}-server.log", db.name));
        let file = std::fs::File::create(&log).unwrap();
        let mut cmd = std::process::Command::new(server_binary());
        cmd.arg("serve")
            .env("DATABASE_URL", &db.url)
            .env("KEYWARD_BIND", format!("127.0.0.1:{port}"))
            .stdin(std::process::Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start keyward-server");
        let server = ServerProcess {
            base_url: format!("http://127.0.0.1:{port}"),
            child,
            log,
        };
        let client = server.client();
        for _ in 0..400 {
            if client.readyz().await.is_ok() {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!(
            "keyward-server did not become ready; log:\n{}",
            server.logs()
        );
    }

    pub fn client(&self) -> KeywardClient {
        KeywardClient::new(&self.base_url).expect("client")
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the exit; returns whether it exited 0, and its logs.
    pub async fn terminate(self) -> (bool, String) {
        self.terminate_within(Duration::from_secs(10)).await
    }

    /// Like [`ServerProcess::terminate`], waiting up to `within` for the exit.
    pub async fn terminate_within(mut self, within: Duration) -> (bool, String) {
        let pid = self.child.id().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(sent.success());
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
