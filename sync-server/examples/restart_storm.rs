//! The restart storm: how long a freshly started node takes to answer every warm key again.
//!
//! 1,000 keys are created and each verified once (warm). Then a new node starts on the same
//! database and all 1,000 are verified against it by 16 concurrent clients, timed from the
//! moment `/healthz` answers until the last key is answered: once with `KEYWARD_VERIFIER_KEY`
//! (one indexed read and one HMAC per key) and once without it (argon2 per key, as before the
//! fast verifier), in the same run; the figure is the ratio.
//!
//! `cargo run --release -p keyward-server --example restart_storm [KEYS]` (PostgreSQL from
//! KEYWARD_TEST_PG_URL, default postgres://postgres@127.0.0.1:5432; a scratch database is made
//! and dropped).

use std::time::{Duration, Instant};

use futures::StreamExt;
use keyward_core::api::Role;
use keyward_server::{Config, store};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

const PASSWORD: &str = "restart storm password";

struct Node {
    base: String,
    shutdown: CancellationToken,
    handle: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn start(db_url: &str, verifier: bool) -> anyhow::Result<Node> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let mut config = Config::for_database(db_url.to_owned());
    config.bind = addr;
    if verifier {
        config.verifier_key = Some(keyward_server::config::SecretKey::new([0x5a; 32]));
    }
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(keyward_server::serve(config, listener, shutdown.clone()));
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();
    for _ in 0..400 {
        if http
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(Node {
                base,
                shutdown,
                handle,
            });
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    anyhow::bail!("node did not start")
}

impl Node {
    async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.handle.await??;
        Ok(())
    }
}

/// Verifies every token against `base` (16 at a time); the time until all answered 200.
async fn verify_all(base: &str, tokens: &[String]) -> anyhow::Result<Duration> {
    let http = reqwest::Client::new();
    let started = Instant::now();
    let mut answers = futures::stream::iter(tokens.iter().map(|t| {
        let http = http.clone();
        let url = format!("{base}/v1/whoami");
        async move {
            loop {
                let r = http.get(&url).bearer_auth(t).send().await?;
                match r.status().as_u16() {
                    200 => return Ok::<_, anyhow::Error>(()),
                    503 => tokio::time::sleep(Duration::from_millis(20)).await,
                    s => anyhow::bail!("whoami answered {s}"),
                }
            }
        }
    }))
    .buffer_unordered(16);
    while let Some(a) = answers.next().await {
        a?;
    }
    Ok(started.elapsed())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let keys: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(1_000);
    let admin_url = std::env::var("KEYWARD_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let db = format!("kw_storm_{}", uuid::Uuid::new_v4().simple());
    let admin = sqlx::PgPool::connect(&format!("{admin_url}/postgres")).await?;
    sqlx::query(&format!("CREATE DATABASE {db}"))
        .execute(&admin)
        .await?;
    let db_url = format!("{admin_url}/{db}");
    let result = run(&db_url, keys).await;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .execute(&admin)
        .await?;
    result
}

async fn run(db_url: &str, keys: usize) -> anyhow::Result<()> {
    let pool = store::connect(&Config::for_database(db_url.to_owned())).await?;
    store::migrate(&pool).await?;
    keyward_server::admin::create(
        &pool,
        "Storm",
        "owner@storm.test",
        Some(Role::Owner),
        &SecretString::from(PASSWORD),
    )
    .await?;
    let node = start(db_url, true).await?;
    let http = reqwest::Client::new();
    let login: serde_json::Value = http
        .post(format!("{}/v1/auth/login", node.base))
        .json(&serde_json::json!({"email": "owner@storm.test", "password": PASSWORD}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let session = login["token"].as_str().expect("a session token").to_owned();
    let created = Instant::now();
    let mut tokens = Vec::with_capacity(keys);
    let mut made = futures::stream::iter((0..keys).map(|i| {
        let (http, session) = (http.clone(), session.clone());
        let url = format!("{}/v1/keys", node.base);
        async move {
            let key: serde_json::Value = http
                .post(url)
                .bearer_auth(session)
                .json(&serde_json::json!({"name": format!("storm {i}")}))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            Ok::<_, anyhow::Error>(key["token"].as_str().expect("a minted token").to_owned())
        }
    }))
    .buffer_unordered(4);
    while let Some(k) = made.next().await {
        tokens.push(k?);
    }
    drop(made);
    println!(
        "{keys} keys created in {:.1} s",
        created.elapsed().as_secs_f64()
    );
    let warm = verify_all(&node.base, &tokens).await?;
    println!(
        "first verification of all {keys} (warm-up): {:.2} s",
        warm.as_secs_f64()
    );
    node.stop().await?;

    let fast = start(db_url, true).await?;
    let with_verifier = verify_all(&fast.base, &tokens).await?;
    fast.stop().await?;
    let slow = start(db_url, false).await?;
    let argon2_only = verify_all(&slow.base, &tokens).await?;
    slow.stop().await?;
    println!(
        "restart, then all {keys} warm keys answered: with the fast verifier {:.2} s, argon2 only {:.2} s ({:.1}x)",
        with_verifier.as_secs_f64(),
        argon2_only.as_secs_f64(),
        argon2_only.as_secs_f64() / with_verifier.as_secs_f64()
    );
    Ok(())
}
