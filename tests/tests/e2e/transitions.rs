//! Time transitions on a warm verify cache, with no notification to bring them: an expiry
//! passing, a revocation's and a rotation's grace lapsing. Each answer that changes is shown to
//! come from the cached record (`keyward_key_lookups_total{result="cache"}` moved by one and
//! `{result="database_found"}` not at all during that very call), so the cache itself decides by
//! the clock instead of waiting for a reload. Then the limits a warm key carries across changes:
//! a quota across rotation, a key's own rules over its tier's, a tier lowered (local and Redis).

use std::time::Duration;

use keyward_core::api::{
    CreateKeyRequest, CreateTierRequest, Quota, RevokeKeyRequest, RotateKeyRequest,
    UpdateKeyRequest, UpdateTierRequest,
};
use keyward_e2e::{TestApp, TestServer, assert_same_utc_day, clear_of_utc_midnight, eventually};
use keyward_server::config::RedisConfig;
use secrecy::SecretString;

use crate::limits_redis::{fixed as per_day, redis_url};

/// A deadline for a broken run, never a timing claim: the transitions themselves are seconds.
const DEADLINE: Duration = Duration::from_secs(60);

/// Key record lookups answered from the cache and loaded from the database so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Lookups {
    cache: u64,
    database: u64,
}

fn counter(metrics: &str, series: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

async fn lookups(server: &TestServer) -> Lookups {
    let m = server.metrics().await;
    Lookups {
        cache: counter(&m, "keyward_key_lookups_total{result=\"cache\"}"),
        database: counter(&m, "keyward_key_lookups_total{result=\"database_found\"}")
            + counter(&m, "keyward_key_lookups_total{result=\"database_absent\"}"),
    }
}

/// One `GET /v1/whoami`: its status, its problem code (if refused) and headers.
async fn whoami(server: &TestServer, token: &str) -> (u16, String, reqwest::header::HeaderMap) {
    let res = reqwest::Client::new()
        .get(format!("{}/v1/whoami", server.base_url))
        .bearer_auth(token)
        .send()
        .await
        .expect("whoami");
    let (status, headers) = (res.status().as_u16(), res.headers().clone());
    let body: serde_json::Value = res.json().await.unwrap_or_default();
    let code = body["code"].as_str().unwrap_or("").to_owned();
    (status, code, headers)
}

/// A whoami call with the lookups it made: (status, code, lookups before, lookups after). The
/// test's server serves nothing else, so the difference is this call's.
async fn traced(server: &TestServer, token: &str) -> (u16, String, Lookups, Lookups) {
    let before = lookups(server).await;
    let (status, code, _) = whoami(server, token).await;
    let after = lookups(server).await;
    (status, code, before, after)
}

/// Calls until the key is refused with `code` (401), asserting every answer until then was a
/// 200, and that the refusal came from the warm cache: one cache lookup, no database load.
async fn refused_from_the_warm_cache(server: &TestServer, token: &str, code: &str) {
    let last = std::sync::Mutex::new(None);
    let refused = eventually(DEADLINE, || async {
        let (status, got, before, after) = traced(server, token).await;
        *last.lock().unwrap() = Some((status, got.clone(), before, after));
        match status {
            200 => false,
            401 => true,
            other => panic!("neither valid nor refused: {other} {got}"),
        }
    })
    .await;
    let last = last.into_inner().unwrap();
    assert!(refused, "the key was never refused; last answer {last:?}");
    let (status, got, before, after) = last.expect("an answer");
    assert_eq!((status, got.as_str()), (401, code));
    assert_eq!(
        after.database, before.database,
        "the refusal came from a database load, not the warm cache: {before:?} -> {after:?}"
    );
    assert_eq!(
        after.cache,
        before.cache + 1,
        "the refusal was answered from the cache: {before:?} -> {after:?}"
    );
}

/// Calls until an answer comes from the cache (a record is warm), each one a 200.
async fn warm(server: &TestServer, token: &str) {
    let warmed = eventually(DEADLINE, || async {
        let (status, code, before, after) = traced(server, token).await;
        assert_eq!(status, 200, "warming a valid key: {code}");
        after.cache > before.cache && after.database == before.database
    })
    .await;
    assert!(warmed, "the key's record never answered from the cache");
}

async fn spawn() -> TestApp {
    // Background jobs (notices, retention) off: nothing but the test touches the key.
    TestApp::spawn_with(|c| c.background_jobs = false).await
}

#[tokio::test]
async fn an_expiry_passing_refuses_a_warm_key_without_a_reload() {
    let app = spawn().await;
    let created = app
        .owner
        .create_key(&CreateKeyRequest {
            name: "short-lived".into(),
            expires_at: Some(chrono::Utc::now() + chrono::Duration::seconds(12)),
            ..Default::default()
        })
        .await
        .unwrap();
    let token = created.token.unwrap();
    warm(&app.server, &token).await;
    refused_from_the_warm_cache(&app.server, &token, "key_expired").await;
    // And it stays refused, from the cache or from the database alike.
    assert_eq!(whoami(&app.server, &token).await.0, 401);
}

#[tokio::test]
async fn a_revocation_grace_lapsing_refuses_a_warm_key_without_a_reload() {
    let app = spawn().await;
    let created = app
        .owner
        .create_key(&CreateKeyRequest {
            name: "revoked later".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let token = created.token.unwrap();
    warm(&app.server, &token).await;
    let revoked = app
        .owner
        .revoke_key(
            created.key.id,
            &RevokeKeyRequest {
                grace_seconds: Some(5),
                reason: None,
            },
        )
        .await
        .unwrap();
    assert!(revoked.revoked_at.is_some_and(|at| at > chrono::Utc::now()));
    // Within the grace the key works, and its record (with the deadline) is warm again.
    warm(&app.server, &token).await;
    refused_from_the_warm_cache(&app.server, &token, "key_revoked").await;
}

#[tokio::test]
async fn a_rotation_grace_lapsing_refuses_the_old_warm_key_without_a_reload() {
    let app = spawn().await;
    let created = app
        .owner
        .create_key(&CreateKeyRequest {
            name: "rotated".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let old = created.token.unwrap();
    warm(&app.server, &old).await;
    let rotated = app
        .owner
        .rotate_key(
            created.key.id,
            &RotateKeyRequest {
                grace_seconds: Some(5),
            },
        )
        .await
        .unwrap();
    assert!(rotated.previous.revoked_at.is_some());
    warm(&app.server, &old).await;
    warm(&app.server, &rotated.token).await;
    refused_from_the_warm_cache(&app.server, &old, "key_revoked").await;
    assert_eq!(
        whoami(&app.server, &rotated.token).await.0,
        200,
        "the successor works"
    );
}

/// (status, code) of a whoami call.
async fn answer(server: &TestServer, token: &str) -> (u16, String) {
    let (status, code, _) = whoami(server, token).await;
    (status, code)
}

fn ok() -> (u16, String) {
    (200, String::new())
}

fn refused(code: &str) -> (u16, String) {
    (429, code.to_owned())
}

async fn spawn_limited(redis: bool) -> TestApp {
    let app = TestApp::spawn_with(|c| {
        c.background_jobs = false;
        if redis {
            c.redis = Some(RedisConfig {
                timeout: Duration::from_secs(2),
                ..RedisConfig::new(SecretString::from(redis_url()))
            });
        }
    })
    .await;
    if redis {
        let shared = eventually(DEADLINE, || async {
            let detail = app
                .server
                .client()
                .readyz_detail()
                .await
                .unwrap_or_default();
            detail["limits"]["mode"] == "redis"
        })
        .await;
        assert!(shared, "the node uses Redis");
    }
    app
}

/// The node's limiter mode must not have fallen back during the test.
async fn still_in_mode(app: &TestApp, redis: bool) {
    let detail = app.server.client().readyz_detail().await.unwrap();
    let mode = if redis { "redis" } else { "local" };
    assert_eq!(detail["limits"]["mode"], mode, "{detail}");
    if redis {
        assert_eq!(detail["limits"]["redis"]["fallbacks"], 0, "{detail}");
    }
}

async fn quota_carried_across_rotation(redis: bool) {
    // Counts against a daily quota: not across UTC midnight.
    clear_of_utc_midnight(Duration::from_secs(120)).await;
    let day = chrono::Utc::now().date_naive();
    let app = spawn_limited(redis).await;
    let created = app
        .owner
        .create_key(&CreateKeyRequest {
            name: "metered".into(),
            quota: Some(Quota {
                daily: Some(3),
                monthly: None,
                consistency: Default::default(),
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let old = created.token.unwrap();
    for _ in 0..2 {
        assert_eq!(answer(&app.server, &old).await, ok());
    }
    let rotated = app
        .owner
        .rotate_key(
            created.key.id,
            &RotateKeyRequest {
                grace_seconds: Some(600),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        answer(&app.server, &rotated.token).await,
        ok(),
        "the successor has the one unit left"
    );
    assert_eq!(
        answer(&app.server, &rotated.token).await,
        refused("quota_exceeded"),
        "the successor does not start a fresh quota"
    );
    assert_eq!(
        answer(&app.server, &old).await,
        refused("quota_exceeded"),
        "the predecessor in its grace shares the spent quota"
    );
    assert_same_utc_day(day);
    still_in_mode(&app, redis).await;
}

#[tokio::test]
async fn a_quota_is_carried_across_rotation_locally() {
    quota_carried_across_rotation(false).await;
}

#[tokio::test]
async fn a_quota_is_carried_across_rotation_through_redis() {
    quota_carried_across_rotation(true).await;
}

async fn own_rules_override_the_tier(redis: bool) {
    clear_of_utc_midnight(Duration::from_secs(120)).await;
    let day = chrono::Utc::now().date_naive();
    let app = spawn_limited(redis).await;
    for (name, limit) in [("generous", 100), ("strict", 1)] {
        app.owner
            .create_tier(&CreateTierRequest {
                name: name.into(),
                rate_limits: Some(vec![per_day(limit)]),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    // A generous tier, the key's own rule allows 1.
    let tight = app
        .owner
        .create_key(&CreateKeyRequest {
            name: "tight".into(),
            tier: Some("generous".into()),
            rate_limits: Some(vec![per_day(1)]),
            ..Default::default()
        })
        .await
        .unwrap()
        .token
        .unwrap();
    assert_eq!(answer(&app.server, &tight).await, ok());
    assert_eq!(
        answer(&app.server, &tight).await,
        refused("rate_limited"),
        "the key's own rule, not its tier's"
    );
    // A strict tier, the key's own rule allows 100.
    let loose = app
        .owner
        .create_key(&CreateKeyRequest {
            name: "loose".into(),
            tier: Some("strict".into()),
            rate_limits: Some(vec![per_day(100)]),
            ..Default::default()
        })
        .await
        .unwrap()
        .token
        .unwrap();
    for i in 0..5 {
        assert_eq!(answer(&app.server, &loose).await, ok(), "call {i}");
    }
    let (_, _, h) = whoami(&app.server, &loose).await;
    let policy = h
        .get("ratelimit-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(policy.contains("q=100"), "{policy}");

    // On a warm key: own rules set afterwards take over from the tier's, and dropping them
    // returns to the tier's.
    let created = app
        .owner
        .create_key(&CreateKeyRequest {
            name: "switching".into(),
            tier: Some("generous".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let token = created.token.unwrap();
    for _ in 0..2 {
        assert_eq!(answer(&app.server, &token).await, ok());
    }
    app.owner
        .update_key(
            created.key.id,
            &UpdateKeyRequest {
                rate_limits: Some(Some(vec![per_day(1)])),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        answer(&app.server, &token).await,
        refused("rate_limited"),
        "the key's own rule of 1 applies at once (2 used already)"
    );
    app.owner
        .update_key(
            created.key.id,
            &UpdateKeyRequest {
                rate_limits: Some(None),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        answer(&app.server, &token).await,
        ok(),
        "back to the tier's 100"
    );
    assert_same_utc_day(day);
    still_in_mode(&app, redis).await;
}

#[tokio::test]
async fn a_keys_own_rules_override_its_tiers_locally() {
    own_rules_override_the_tier(false).await;
}

#[tokio::test]
async fn a_keys_own_rules_override_its_tiers_through_redis() {
    own_rules_override_the_tier(true).await;
}

async fn tier_lowered_on_a_warm_key(redis: bool) {
    clear_of_utc_midnight(Duration::from_secs(120)).await;
    let day = chrono::Utc::now().date_naive();
    let app = spawn_limited(redis).await;
    app.owner
        .create_tier(&CreateTierRequest {
            name: "plan".into(),
            rate_limits: Some(vec![per_day(100)]),
            ..Default::default()
        })
        .await
        .unwrap();
    let token = app
        .owner
        .create_key(&CreateKeyRequest {
            name: "on a plan".into(),
            tier: Some("plan".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .token
        .unwrap();
    for _ in 0..2 {
        assert_eq!(answer(&app.server, &token).await, ok());
    }
    warm(&app.server, &token).await; // a third call, answered from the cache
    // Lowered to 4 with 3 used: exactly one more call passes, whenever the change lands.
    app.owner
        .update_tier(
            "plan",
            &UpdateTierRequest {
                rate_limits: Some(vec![per_day(4)]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(answer(&app.server, &token).await, ok(), "the 4th of 4");
    let (status, code, h) = whoami(&app.server, &token).await;
    assert_eq!((status, code.as_str()), (429, "rate_limited"));
    let policy = h
        .get("ratelimit-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(policy.contains("q=4"), "the lowered tier applies: {policy}");
    // Lowered below what is used: refused at once, not forgiven.
    app.owner
        .update_tier(
            "plan",
            &UpdateTierRequest {
                rate_limits: Some(vec![per_day(2)]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let (status, code, h) = whoami(&app.server, &token).await;
    assert_eq!((status, code.as_str()), (429, "rate_limited"));
    let policy = h
        .get("ratelimit-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(policy.contains("q=2"), "{policy}");
    assert_same_utc_day(day);
    still_in_mode(&app, redis).await;
}

#[tokio::test]
async fn a_tier_lowered_applies_to_a_warm_key_locally() {
    tier_lowered_on_a_warm_key(false).await;
}

#[tokio::test]
async fn a_tier_lowered_applies_to_a_warm_key_through_redis() {
    tier_lowered_on_a_warm_key(true).await;
}

#[tokio::test]
async fn a_quota_is_carried_across_rotation_to_another_node() {
    clear_of_utc_midnight(Duration::from_secs(120)).await;
    let day = chrono::Utc::now().date_naive();
    let app = spawn_limited(false).await;
    let other = TestServer::start(&app.db, |c| c.background_jobs = false).await;
    let created = app
        .owner
        .create_key(&CreateKeyRequest {
            name: "metered".into(),
            quota: Some(Quota {
                daily: Some(3),
                monthly: None,
                consistency: Default::default(),
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let old = created.token.unwrap();
    for _ in 0..2 {
        assert_eq!(answer(&app.server, &old).await, ok());
    }
    // The other node learns of the units through the stored count, once flushed.
    let flushed = eventually(DEADLINE, || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT used FROM quota_usage WHERE lineage_id = $1 AND period = 'day'",
        )
        .bind(created.key.id.into_uuid())
        .fetch_optional(app.pool())
        .await
        .unwrap()
            == Some(2)
    })
    .await;
    assert!(flushed, "the two units were stored");
    let rotated = app
        .owner
        .rotate_key(
            created.key.id,
            &RotateKeyRequest {
                grace_seconds: Some(600),
            },
        )
        .await
        .unwrap();
    assert_eq!(answer(&other, &rotated.token).await, ok(), "the unit left");
    assert_eq!(
        answer(&other, &rotated.token).await,
        refused("quota_exceeded")
    );
    assert_same_utc_day(day);
}

async fn tier_lowered_on_another_node(redis: bool) {
    clear_of_utc_midnight(Duration::from_secs(120)).await;
    let day = chrono::Utc::now().date_naive();
    let app = spawn_limited(redis).await;
    let other = TestServer::start(&app.db, |c| {
        c.background_jobs = false;
        if redis {
            c.redis = Some(RedisConfig {
                timeout: Duration::from_secs(2),
                ..RedisConfig::new(SecretString::from(redis_url()))
            });
        }
    })
    .await;
    if redis {
        let shared = eventually(DEADLINE, || async {
            let detail = other.client().readyz_detail().await.unwrap_or_default();
            detail["limits"]["mode"] == "redis"
        })
        .await;
        assert!(shared, "the other node uses Redis");
    }
    app.owner
        .create_tier(&CreateTierRequest {
            name: "plan".into(),
            rate_limits: Some(vec![per_day(100)]),
            ..Default::default()
        })
        .await
        .unwrap();
    let token = app
        .owner
        .create_key(&CreateKeyRequest {
            name: "on a plan".into(),
            tier: Some("plan".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .token
        .unwrap();
    for _ in 0..2 {
        assert_eq!(answer(&other, &token).await, ok());
    }
    warm(&other, &token).await;
    // Lowered on this node to 2, below the 3+ the other node let through: the other node's warm
    // record gives way once the change reaches it, and what was used is not forgiven.
    app.owner
        .update_tier(
            "plan",
            &UpdateTierRequest {
                rate_limits: Some(vec![per_day(2)]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let lowered = eventually(DEADLINE, || async {
        let (status, code, h) = whoami(&other, &token).await;
        let policy = h
            .get("ratelimit-policy")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        match status {
            200 => {
                assert!(policy.contains("q=100"), "allowed under the old tier only");
                false
            }
            429 => {
                assert_eq!(code, "rate_limited");
                assert!(policy.contains("q=2"), "{policy}");
                true
            }
            other => panic!("unexpected {other} {code}"),
        }
    })
    .await;
    assert!(lowered, "the lowered tier reached the other node");
    assert_eq!(answer(&other, &token).await, refused("rate_limited"));
    if redis {
        // Shared counters: this node sees what the other one let through. (Local rate
        // counters are each node's own.)
        assert_eq!(answer(&app.server, &token).await, refused("rate_limited"));
    }
    assert_same_utc_day(day);
    still_in_mode(&app, redis).await;
}

#[tokio::test]
async fn a_tier_lowered_reaches_a_warm_key_on_another_node_locally() {
    tier_lowered_on_another_node(false).await;
}

#[tokio::test]
async fn a_tier_lowered_reaches_a_warm_key_on_another_node_through_redis() {
    tier_lowered_on_another_node(true).await;
}
