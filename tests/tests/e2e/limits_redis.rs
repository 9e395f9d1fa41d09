//! Limits shared through a real Redis: three nodes never let more through than the limit, and a
//! node whose Redis dies falls back to local limits, keeps answering, and returns when Redis is
//! back.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use keyward_core::api::{CreateKeyRequest, Quota, RateLimitRule};
use keyward_e2e::{TestApp, TestServer, assert_same_utc_day, clear_of_utc_midnight, eventually};
use keyward_server::config::RedisConfig;
use secrecy::SecretString;

pub(crate) fn redis_url() -> String {
    std::env::var("KEYWARD_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A daily fixed-window rule allowing `limit`.
pub(crate) fn fixed(limit: i64) -> RateLimitRule {
    RateLimitRule {
        name: None,
        algorithm: "fixed_window".into(),
        limit,
        window_seconds: 86_400,
        burst: None,
        consistency: Default::default(),
    }
}

async fn mode(server: &TestServer) -> String {
    let detail = server.client().readyz_detail().await.unwrap_or_default();
    detail["limits"]["mode"].as_str().unwrap_or("").to_owned()
}

async fn status(http: &reqwest::Client, base: &str, token: &str) -> u16 {
    http.get(format!("{base}/v1/whoami"))
        .bearer_auth(token)
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

#[tokio::test]
async fn three_nodes_sharing_redis_never_exceed_the_limit() {
    let app = TestApp::spawn_with(|c| {
        c.redis = Some(RedisConfig {
            timeout: Duration::from_secs(2),
            ..RedisConfig::new(SecretString::from(redis_url()))
        });
    })
    .await;
    let mut nodes = vec![];
    for _ in 0..2 {
        nodes.push(
            TestServer::start(&app.db, |c| {
                c.redis = Some(RedisConfig {
                    timeout: Duration::from_secs(2),
                    ..RedisConfig::new(SecretString::from(redis_url()))
                });
            })
            .await,
        );
    }
    for node in nodes.iter().chain([&app.server]) {
        assert!(
            eventually(Duration::from_secs(5), || async {
                mode(node).await == "redis"
            })
            .await,
            "node uses Redis"
        );
    }
    let created = app
        .owner
        .create_key(&CreateKeyRequest {
            name: "shared".into(),
            rate_limits: Some(vec![fixed(300)]),
            quota: Some(Quota {
                daily: Some(100_000),
                monthly: None,
                consistency: Default::default(),
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let token = created.token.unwrap();
    let bases: Vec<String> = nodes
        .iter()
        .chain([&app.server])
        .map(|n| n.base_url.clone())
        .collect();
    // The day's window must not turn over mid-run: wait out UTC midnight if it is close.
    clear_of_utc_midnight(Duration::from_secs(120)).await;
    let day = chrono::Utc::now().date_naive();
    let mut tasks = Vec::new();
    for t in 0..24 {
        let (bases, token) = (bases.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut allowed = 0;
            for i in 0..40 {
                let base = &bases[(t + i) % bases.len()];
                match status(&http, base, &token).await {
                    200 => allowed += 1,
                    429 => {}
                    other => panic!("unexpected status {other}"),
                }
            }
            allowed
        }));
    }
    let mut allowed = 0;
    for t in tasks {
        allowed += t.await.unwrap();
    }
    assert_same_utc_day(day);
    assert!(
        allowed <= 300,
        "three nodes let {allowed} through a limit of 300"
    );
    assert!(allowed >= 294, "three nodes reached only {allowed} of 300");
    for node in nodes.iter().chain([&app.server]) {
        let detail = node.client().readyz_detail().await.unwrap();
        assert_eq!(
            detail["limits"]["redis"]["fallbacks"], 0,
            "no node fell back during the run"
        );
    }
    // Every node agrees on where the key stands.
    let standing = app.owner.key_limits(created.key.id).await.unwrap();
    assert_eq!(
        (standing.mode.as_str(), standing.rules[0].used),
        ("redis", 300)
    );
}

/// A private Redis on a Unix socket in a directory of the test's own: nothing else can take its
/// address while it is down, so it restarts where the node expects it (no port probed and hoped
/// to stay free).
struct PrivateRedis {
    dir: PathBuf,
}

impl PrivateRedis {
    fn new() -> PrivateRedis {
        let dir = std::env::temp_dir().join(format!("kw-redis-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir(&dir).expect("a directory for the Redis socket");
        PrivateRedis { dir }
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("redis.sock")
    }

    fn url(&self) -> String {
        format!("redis+unix://{}", self.socket().display())
    }

    /// Starts redis-server on the socket (TCP off, nothing kept on disk).
    fn start(&self) -> tokio::process::Child {
        start_redis(&self.socket(), &self.dir)
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start_redis(socket: &Path, dir: &Path) -> tokio::process::Child {
    tokio::process::Command::new("redis-server")
        .arg("--port")
        .arg("0")
        .arg("--unixsocket")
        .arg(socket)
        .arg("--unixsocketperm")
        .arg("700")
        .arg("--dir")
        .arg(dir)
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-server is installed (scripts/lib.sh ensure_redis)")
}

/// Waits until `answered` has grown by `more` from now; false after a generous deadline.
async fn progress(answered: &AtomicUsize, more: usize) -> bool {
    let from = answered.load(Ordering::SeqCst);
    eventually(Duration::from_secs(30), || async {
        answered.load(Ordering::SeqCst) >= from + more
    })
    .await
}

#[tokio::test]
async fn a_node_falls_back_when_redis_dies_and_returns_when_it_is_back() {
    let private = PrivateRedis::new();
    let mut redis = private.start();
    let url = private.url();
    let app = TestApp::spawn_with(|c| {
        c.redis = Some(RedisConfig {
            timeout: Duration::from_millis(50),
            probe_interval: Duration::from_millis(100),
            ..RedisConfig::new(SecretString::from(url.clone()))
        });
    })
    .await;
    assert!(
        eventually(Duration::from_secs(30), || async {
            mode(&app.server).await == "redis"
        })
        .await,
        "the node uses Redis"
    );
    let token = app
        .owner
        .create_key(&CreateKeyRequest {
            name: "busy".into(),
            rate_limits: Some(vec![fixed(1_000_000)]),
            ..Default::default()
        })
        .await
        .unwrap()
        .token
        .unwrap();

    let stop = tokio_util::sync::CancellationToken::new();
    let answered = Arc::new(AtomicUsize::new(0));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (base, token, stop) = (app.server.base_url.clone(), token.clone(), stop.clone());
        let answered = answered.clone();
        load.push(tokio::spawn(async move {
            // A stalled request fails the run here rather than hiding in a slow loop.
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap();
            let mut statuses = Vec::new();
            while !stop.is_cancelled() {
                statuses.push(status(&http, &base, &token).await);
                answered.fetch_add(1, Ordering::SeqCst);
            }
            statuses
        }));
    }
    assert!(progress(&answered, 50).await, "the load runs on Redis");
    redis.kill().await.unwrap();
    assert!(
        eventually(Duration::from_secs(30), || async {
            mode(&app.server).await == "fallback"
        })
        .await,
        "the node noticed Redis is gone"
    );
    // No stall: calls keep being answered (by local limits) while Redis is still down. How
    // quickly the node falls back is a figure for the benchmarks, not a test bound.
    assert!(
        progress(&answered, 100).await,
        "calls are answered while Redis is down"
    );
    assert_eq!(mode(&app.server).await, "fallback", "Redis is still down");
    let _redis = private.start();
    assert!(
        eventually(Duration::from_secs(30), || async {
            mode(&app.server).await == "redis"
        })
        .await,
        "the node returned to Redis"
    );
    assert!(
        progress(&answered, 50).await,
        "the load runs on Redis again"
    );
    stop.cancel();
    let mut all = Vec::new();
    for l in load {
        all.extend(l.await.unwrap());
    }
    assert!(
        all.iter().all(|s| *s == 200),
        "every request was answered by Redis or local limits: {:?}",
        all.iter().filter(|s| **s != 200).collect::<Vec<_>>()
    );
    let detail = app.server.client().readyz_detail().await.unwrap();
    assert!(detail["limits"]["redis"]["fallbacks"].as_u64().unwrap() >= 1);
    // On a busy machine a call may still exceed the timeout now and then and fall back for a
    // probe interval (that is the design); with the load stopped the node settles on Redis.
    let metrics_settled = eventually(Duration::from_secs(30), || async {
        app.server
            .metrics()
            .await
            .contains("keyward_limiter_mode{mode=\"redis\"} 1")
    })
    .await;
    let metrics = app.server.metrics().await;
    assert!(metrics_settled, "{metrics}");
    let fallbacks = metrics
        .lines()
        .find_map(|l| l.strip_prefix("keyward_redis_fallbacks_total "))
        .and_then(|v| v.trim().parse::<u64>().ok());
    assert!(fallbacks.is_some_and(|n| n >= 1), "{metrics}");
}
