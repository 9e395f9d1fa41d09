//! Leased limits on three nodes sharing one Redis: for every algorithm, many clients hammering
//! one key across the nodes for several windows never get more than the rule allows plus the
//! README's bound, and, while they ask for more than the limit, never less than the limit minus
//! the bound (no units stranded in the nodes' blocks beyond it). Every node must take blocks:
//! the Redis calls per request are far below one.
//!
//! Which window an allowed call was counted in is read from its answer: `X-RateLimit-Reset` says
//! when the deciding rule's window ends (whole seconds), exact enough with 4-second windows.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use keyward_core::api::{Consistency, CreateKeyRequest, Quota, RateLimitRule};
use keyward_e2e::{TestApp, TestServer, assert_same_utc_day, clear_of_utc_midnight, eventually};
use keyward_server::config::RedisConfig;
use secrecy::SecretString;

use crate::limits_redis::redis_url;

const NODES: u64 = 3;
const WINDOW_SECS: u64 = 4;
const LIMIT: u64 = 160;
/// Rule::max_lease: the quota / 32.
const MAX_LEASE: u64 = LIMIT / 32;
/// The README's bound: at most one block per node beyond (or short of) the limit.
const BOUND: u64 = NODES * MAX_LEASE;
const CLIENTS: usize = 24;
const RUN: Duration = Duration::from_secs(3 * WINDOW_SECS + 2);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn rule(algorithm: &str) -> RateLimitRule {
    RateLimitRule {
        name: Some("w".into()),
        algorithm: algorithm.into(),
        limit: LIMIT as i64,
        window_seconds: WINDOW_SECS as i64,
        burst: None,
        consistency: Consistency::Leased,
    }
}

/// One answered call: when it was sent and answered, whether it passed, and when the deciding
/// rule's window resets (seconds, from the answer).
#[derive(Debug, Clone, Copy)]
struct Call {
    sent: u64,
    answered: u64,
    allowed: bool,
    reset_secs: u64,
}

fn redis_config() -> RedisConfig {
    RedisConfig {
        timeout: Duration::from_secs(2),
        ..RedisConfig::new(SecretString::from(redis_url()))
    }
}

async fn redis_counts(node: &TestServer) -> (u64, u64) {
    let detail = node.client().readyz_detail().await.unwrap();
    let redis = &detail["limits"]["redis"];
    (
        redis["calls"].as_u64().unwrap_or(0),
        redis["requests"].as_u64().unwrap_or(0),
    )
}

#[tokio::test]
async fn three_nodes_on_leases_keep_every_algorithm_within_the_bound() {
    let app = TestApp::spawn_with(|c| c.redis = Some(redis_config())).await;
    let mut others = vec![];
    for _ in 1..NODES {
        others.push(TestServer::start(&app.db, |c| c.redis = Some(redis_config())).await);
    }
    let nodes: Vec<&TestServer> = others.iter().chain([&app.server]).collect();
    for node in &nodes {
        assert!(
            eventually(Duration::from_secs(5), || async {
                let detail = node.client().readyz_detail().await.unwrap_or_default();
                detail["limits"]["mode"] == "redis"
            })
            .await,
            "every node uses Redis"
        );
    }
    // One key per algorithm, and one with a daily quota only.
    let mut keys = vec![];
    for algorithm in ["fixed_window", "sliding_window", "gcra"] {
        let created = app
            .owner
            .create_key(&CreateKeyRequest {
                name: algorithm.into(),
                rate_limits: Some(vec![rule(algorithm)]),
                ..Default::default()
            })
            .await
            .unwrap();
        keys.push((algorithm, created.token.unwrap()));
    }
    let created = app
        .owner
        .create_key(&CreateKeyRequest {
            name: "daily".into(),
            quota: Some(Quota {
                daily: Some(LIMIT as i64),
                monthly: None,
                consistency: Consistency::Leased,
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    keys.push(("daily", created.token.unwrap()));

    clear_of_utc_midnight(RUN + Duration::from_secs(30)).await;
    let day = chrono::Utc::now().date_naive();
    let before: Vec<(u64, u64)> = futures_counts(&nodes).await;
    let bases: Vec<String> = nodes.iter().map(|n| n.base_url.clone()).collect();
    let start = std::time::Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (bases, keys) = (bases.clone(), keys.clone());
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut calls: Vec<Vec<Call>> = vec![vec![]; keys.len()];
            let mut i = c;
            while start.elapsed() < RUN {
                let k = i % keys.len();
                let base = &bases[(i / keys.len()) % bases.len()];
                i += 1;
                let sent = now_ms();
                let answer = http
                    .get(format!("{base}/v1/whoami"))
                    .bearer_auth(&keys[k].1)
                    .send()
                    .await
                    .expect("the node answers");
                let answered = now_ms();
                let status = answer.status().as_u16();
                assert!(status == 200 || status == 429, "unexpected status {status}");
                let reset_secs = answer
                    .headers()
                    .get("x-ratelimit-reset")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .expect("every limited answer says when its window resets");
                calls[k].push(Call {
                    sent,
                    answered,
                    allowed: status == 200,
                    reset_secs,
                });
            }
            calls
        }));
    }
    let mut by_key: Vec<Vec<Call>> = vec![vec![]; keys.len()];
    for t in tasks {
        for (k, calls) in t.await.unwrap().into_iter().enumerate() {
            by_key[k].extend(calls);
        }
    }
    assert_same_utc_day(day);
    let after = futures_counts(&nodes).await;

    let mut report = vec![];
    for (k, (name, _)) in keys.iter().enumerate() {
        let calls = &by_key[k];
        let allowed: Vec<&Call> = calls.iter().filter(|c| c.allowed).collect();
        let demand = calls.len() as u64;
        match *name {
            "fixed_window" | "sliding_window" => {
                let window_ms = WINDOW_SECS * 1000;
                // The window each allowed call was counted in: the one that ends `reset` after
                // its answer (rounded: the header is in whole seconds).
                let window_of =
                    |c: &Call| (c.answered + c.reset_secs * 1000 + window_ms / 2) / window_ms - 1;
                let first = calls.iter().map(|c| c.sent).min().unwrap() / window_ms + 1;
                let last = calls.iter().map(|c| c.answered).max().unwrap() / window_ms;
                assert!(last > first + 1, "{name}: the run covers whole windows");
                let short_by = if *name == "sliding_window" {
                    // Units stranded at a window's end weigh on the next one too.
                    2 * BOUND
                } else {
                    BOUND
                };
                for w in first..last {
                    let n = allowed.iter().filter(|c| window_of(c) == w).count() as u64;
                    report.push(format!("{name} window {w}: {n} allowed of {demand} calls"));
                    assert!(
                        n <= LIMIT,
                        "{name}: {n} allowed in one window, limit {LIMIT}"
                    );
                    assert!(
                        n + short_by >= LIMIT,
                        "{name}: only {n} allowed in a window while demand exceeded {LIMIT} \
                         (bound {short_by})"
                    );
                }
            }
            "gcra" => {
                // GCRA: at most burst + rate × elapsed, plus one block per node; at least
                // rate × elapsed minus one block per node while demand exceeds it.
                let rate_per_ms = LIMIT as f64 / (WINDOW_SECS * 1000) as f64;
                let outer = calls.iter().map(|c| c.answered).max().unwrap()
                    - calls.iter().map(|c| c.sent).min().unwrap();
                let inner = calls.iter().map(|c| c.sent).max().unwrap()
                    - calls.iter().map(|c| c.answered).min().unwrap();
                let n = allowed.len() as u64;
                let most = LIMIT + (rate_per_ms * outer as f64) as u64 + BOUND;
                let least = (rate_per_ms * inner as f64) as u64 - BOUND;
                report.push(format!(
                    "gcra: {n} allowed of {demand} calls in {outer} ms ({least}..={most})"
                ));
                assert!(n <= most, "gcra: {n} allowed, at most {most}");
                assert!(n >= least, "gcra: {n} allowed, at least {least}");
            }
            _ => {
                let n = allowed.len() as u64;
                report.push(format!("daily: {n} allowed of {demand} calls"));
                assert!(n <= LIMIT, "daily quota: {n} allowed of {LIMIT}");
                assert!(n + BOUND >= LIMIT, "daily quota: only {n} of {LIMIT}");
            }
        }
        assert!(
            demand > 2 * LIMIT,
            "{name}: demand exceeded the limit ({demand} calls)"
        );
    }
    // The blocks did the work: far fewer script calls than limited requests.
    let calls: u64 = after.iter().zip(&before).map(|(a, b)| a.0 - b.0).sum();
    let total: u64 = by_key.iter().map(|c| c.len() as u64).sum();
    report.push(format!("{calls} Redis calls for {total} limited requests"));
    println!("{}", report.join("\n"));
    assert!(
        calls * 2 < total,
        "{calls} Redis calls for {total} requests: the nodes did not lease"
    );
}

async fn futures_counts(nodes: &[&TestServer]) -> Vec<(u64, u64)> {
    let mut out = vec![];
    for node in nodes {
        out.push(redis_counts(node).await);
    }
    out
}
