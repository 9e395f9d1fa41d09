//! Rate limits and quotas against real servers: tiers and their validation, exact allowance on
//! one node, headers checked with an RFC 8941 parser, `/v1/verify` with costs, quotas across a
//! restart, tier changes reaching another node, violations and soft-threshold events.

use std::time::Duration;

use keyward_client::KeywardClient;
use keyward_core::api::{
    CreateKeyRequest, CreateTierRequest, Quota, RateLimitRule, UpdateKeyRequest, UpdateTierRequest,
    VerifyCode, VerifyRequest, ViolationsQuery,
};
use keyward_e2e::{TestApp, TestServer, assert_same_utc_day, clear_of_utc_midnight, eventually};

pub fn rule(algorithm: &str, limit: i64, window_seconds: i64) -> RateLimitRule {
    RateLimitRule {
        name: None,
        algorithm: algorithm.into(),
        limit,
        window_seconds,
        burst: None,
        consistency: Default::default(),
    }
}

async fn key_with(owner: &KeywardClient, req: CreateKeyRequest) -> (keyward_core::KeyId, String) {
    let created = owner.create_key(&req).await.expect("create key");
    (created.key.id, created.token.expect("token"))
}

/// `GET /v1/whoami` returning (status, headers, body).
async fn whoami(base: &str, token: &str) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
    let res = reqwest::Client::new()
        .get(format!("{base}/v1/whoami"))
        .bearer_auth(token)
        .send()
        .await
        .expect("whoami");
    let (status, headers) = (res.status().as_u16(), res.headers().clone());
    (status, headers, res.json().await.unwrap_or_default())
}

fn header<'a>(h: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// Parses a RateLimit(-Policy) field as an RFC 8941 list of strings with integer parameters.
fn parse_fields(raw: &str) -> Vec<(String, Vec<(String, i64)>)> {
    let list: sfv::List = sfv::Parser::new(raw)
        .parse()
        .unwrap_or_else(|e| panic!("{raw:?} is not an sf-list: {e}"));
    list.into_iter()
        .map(|entry| match entry {
            sfv::ListEntry::Item(item) => {
                let name = item
                    .bare_item
                    .as_string()
                    .expect("policy names are sf-strings")
                    .as_str()
                    .to_owned();
                let params = item
                    .params
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.as_str().to_owned(),
                            i64::from(v.as_integer().expect("integer parameter")),
                        )
                    })
                    .collect();
                (name, params)
            }
            sfv::ListEntry::InnerList(_) => panic!("no inner lists expected in {raw:?}"),
        })
        .collect()
}

#[tokio::test]
async fn tiers_are_managed_validated_and_audited() {
    let app = TestApp::spawn().await;
    let pro = app
        .owner
        .create_tier(&CreateTierRequest {
            name: "pro".into(),
            rate_limits: Some(vec![
                RateLimitRule {
                    burst: Some(20),
                    ..rule("gcra", 10, 1)
                },
                rule("fixed_window", 1000, 3600),
            ]),
            quota: Some(Quota {
                daily: Some(10_000),
                monthly: None,
                consistency: Default::default(),
            }),
            soft_threshold: None,
        })
        .await
        .unwrap();
    assert_eq!(pro.soft_threshold, 0.8);
    assert_eq!(
        pro.rate_limits[0].name.as_deref(),
        Some("second"),
        "names are derived from the window"
    );
    assert_eq!(app.owner.list_tiers().await.unwrap().len(), 1);

    let bad = [
        (
            serde_json::json!({"name": "x", "rate_limits": [{"algorithm": "gcra", "limit": 0, "window_seconds": 1}]}),
            "rate_limits[0].limit",
        ),
        (
            serde_json::json!({"name": "x", "rate_limits": [{"algorithm": "gcra", "limit": -3, "window_seconds": 1}]}),
            "rate_limits[0].limit",
        ),
        (
            serde_json::json!({"name": "x", "rate_limits": [{"algorithm": "gcra", "limit": 5, "window_seconds": 31_536_000}]}),
            "rate_limits[0].window_seconds",
        ),
        (
            serde_json::json!({"name": "x", "rate_limits": [{"algorithm": "leaky_bucket", "limit": 5, "window_seconds": 1}]}),
            "rate_limits[0].algorithm",
        ),
        (
            serde_json::json!({"name": "x", "rate_limits": [{"algorithm": "fixed_window", "limit": 5, "window_seconds": 1, "burst": 9}]}),
            "rate_limits[0].burst",
        ),
        (
            serde_json::json!({"name": "x", "rate_limits": [{"algorithm": "gcra", "limit": 5, "window_seconds": 60}, {"algorithm": "fixed_window", "limit": 9, "window_seconds": 60}]}),
            "rate_limits[1].name",
        ),
        (
            serde_json::json!({"name": "x", "soft_threshold": 1.5}),
            "soft_threshold",
        ),
        (
            serde_json::json!({"name": "x", "quota": {"daily": 0}}),
            "quota.daily",
        ),
        (serde_json::json!({"name": "x", "quota": {}}), "quota"),
        (serde_json::json!({"name": "Not A Slug"}), "name"),
        (
            serde_json::json!({"name": "x", "rate_limits": [{"algorithm": "gcra", "limit": 5, "window_seconds": 1, "extra": 1}]}),
            "rate_limits[0]",
        ),
    ];
    let http = reqwest::Client::new();
    let session = app
        .owner
        .session()
        .map(|s| secrecy::ExposeSecret::expose_secret(s).to_owned())
        .unwrap();
    for (body, field) in bad {
        let res = http
            .post(format!("{}/v1/tiers", app.server.base_url))
            .bearer_auth(&session)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 422, "{body}");
        assert_eq!(
            header(res.headers(), "content-type"),
            "application/problem+json"
        );
        let problem: serde_json::Value = res.json().await.unwrap();
        let fields: Vec<&str> = problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert!(
            fields.iter().any(|f| f.starts_with(field)),
            "{body}: expected {field} in {fields:?}"
        );
    }
    assert_eq!(
        app.owner.list_tiers().await.unwrap().len(),
        1,
        "no refused tier was stored"
    );

    // Keys: unknown tier and bad rules are refused per field; a good key names the tier.
    let e = app
        .owner
        .create_key(&CreateKeyRequest {
            name: "k".into(),
            tier: Some("gold".into()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.problem().unwrap().errors[0].field.as_str()),
        (Some("validation_failed"), "tier")
    );
    let e = app
        .owner
        .create_key(&CreateKeyRequest {
            name: "k".into(),
            rate_limits: Some(vec![rule("sliding_window", 2_000_000, 1)]),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.problem().unwrap().errors[0].field, "rate_limits[0].limit");
    assert!(
        app.owner
            .list_all_keys(&Default::default())
            .await
            .unwrap()
            .is_empty()
    );
    let (id, _) = key_with(
        &app.owner,
        CreateKeyRequest {
            name: "k".into(),
            tier: Some("pro".into()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        app.owner.get_key(id).await.unwrap().tier.as_deref(),
        Some("pro")
    );

    let updated = app
        .owner
        .update_tier(
            "pro",
            &UpdateTierRequest {
                soft_threshold: Some(0.5),
                quota: Some(None),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (updated.soft_threshold, updated.quota.clone(), updated.keys),
        (0.5, None, 1)
    );
    let e = app.owner.delete_tier("pro").await.unwrap_err();
    assert_eq!(e.code(), Some("tier_in_use"));
    app.owner
        .update_key(
            id,
            &UpdateKeyRequest {
                tier: Some(None),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    app.owner.delete_tier("pro").await.unwrap();
    assert_eq!(
        app.owner.get_tier("pro").await.unwrap_err().code(),
        Some("tier_not_found")
    );

    let actions: Vec<String> = app
        .owner
        .audit(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| e.action)
        .collect();
    for action in ["tier.create", "tier.update", "tier.delete"] {
        assert!(
            actions.iter().any(|a| a == action),
            "{action} audited: {actions:?}"
        );
    }
}

#[tokio::test]
async fn one_node_allows_exactly_the_limit_with_standard_headers() {
    let app = TestApp::spawn().await;
    let (_, token) = key_with(
        &app.owner,
        CreateKeyRequest {
            name: "hammered".into(),
            rate_limits: Some(vec![
                rule("fixed_window", 50, 86_400),
                RateLimitRule {
                    burst: Some(1000),
                    ..rule("gcra", 1000, 1)
                },
            ]),
            ..Default::default()
        },
    )
    .await;
    // The day's window must not turn over mid-run: wait out UTC midnight if it is close.
    clear_of_utc_midnight(Duration::from_secs(120)).await;
    let day = chrono::Utc::now().date_naive();
    let base = app.server.base_url.clone();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (base, token) = (base.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for _ in 0..10 {
                got.push(whoami(&base, &token).await);
            }
            got
        }));
    }
    let mut answers = Vec::new();
    for t in tasks {
        answers.extend(t.await.unwrap());
    }
    assert_same_utc_day(day);
    let allowed = answers.iter().filter(|(s, _, _)| *s == 200).count();
    assert_eq!(
        allowed, 50,
        "exactly the limit passes under 16 concurrent clients"
    );
    assert!(answers.iter().all(|(s, _, _)| *s == 200 || *s == 429));

    let (_, ok, _) = answers.iter().find(|(s, _, _)| *s == 200).unwrap();
    let policy = parse_fields(header(ok, "ratelimit-policy"));
    assert_eq!(policy[0].0, "day");
    assert_eq!(
        policy[0].1,
        vec![("q".to_owned(), 50), ("w".to_owned(), 86_400)]
    );
    assert_eq!(policy[1].0, "second");
    let state = parse_fields(header(ok, "ratelimit"));
    assert_eq!(
        state
            .iter()
            .map(|(n, p)| (
                n.as_str(),
                p.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>()
            ))
            .collect::<Vec<_>>(),
        vec![("day", vec!["r", "t"]), ("second", vec!["r", "t"])]
    );
    assert_eq!(header(ok, "x-ratelimit-limit"), "50");

    let (_, refused, body) = answers.iter().find(|(s, _, _)| *s == 429).unwrap();
    assert_eq!(body["code"], "rate_limited");
    assert_eq!(header(refused, "content-type"), "application/problem+json");
    assert_eq!(header(refused, "x-ratelimit-remaining"), "0");
    let retry: u64 = header(refused, "retry-after").parse().unwrap();
    assert!((1..=86_400).contains(&retry));
    assert!(
        body["detail"].as_str().unwrap().contains("\"day\""),
        "the detail names the rule: {body}"
    );
    let remaining: Vec<u64> = answers
        .iter()
        .filter(|(s, _, _)| *s == 200)
        .map(|(_, h, _)| header(h, "x-ratelimit-remaining").parse().unwrap())
        .collect();
    let mut sorted = remaining.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        (0..50).collect::<Vec<u64>>(),
        "each allowed call saw a distinct remaining count"
    );
}

#[tokio::test]
async fn verify_reports_limits_and_counts_costs() {
    // Counts against daily windows: not across UTC midnight.
    clear_of_utc_midnight(Duration::from_secs(120)).await;
    let app = TestApp::spawn().await;
    let (_, token) = key_with(
        &app.owner,
        CreateKeyRequest {
            name: "metered".into(),
            rate_limits: Some(vec![RateLimitRule {
                burst: Some(10),
                ..rule("gcra", 10, 3600)
            }]),
            quota: Some(Quota {
                daily: Some(1000),
                monthly: Some(20_000),
                consistency: Default::default(),
            }),
            ..Default::default()
        },
    )
    .await;
    let ask = |cost: u32| VerifyRequest {
        key: token.clone(),
        scope: None,
        cost: Some(cost),
        client_ip: None,
    };
    let v = app.anon.verify(&ask(4)).await.unwrap();
    assert_eq!(v.code, VerifyCode::Valid);
    let rl = v.ratelimit.clone().unwrap();
    assert_eq!(
        (rl.policy.as_str(), rl.limit, rl.remaining),
        ("hour", 10, 6)
    );
    let quota = v.quota.clone().unwrap();
    assert_eq!(quota.daily.unwrap().remaining, 996);
    assert_eq!(quota.monthly.unwrap().remaining, 19_996);
    let headers = v.headers.unwrap();
    assert_eq!(headers["x-ratelimit-remaining"], "6");
    assert!(headers.contains_key("ratelimit-policy"));

    let v = app.anon.verify(&ask(7)).await.unwrap();
    assert_eq!((v.valid, v.code), (false, VerifyCode::RateLimited));
    assert!(v.retry_after_seconds.unwrap() >= 1);
    assert_eq!(
        v.ratelimit.unwrap().remaining,
        6,
        "a refused call consumed nothing"
    );
    let v = app.anon.verify(&ask(6)).await.unwrap();
    assert_eq!(
        (v.code, v.ratelimit.unwrap().remaining),
        (VerifyCode::Valid, 0)
    );
    assert!(v.warning.unwrap().contains("\"hour\""));
    let e = app.anon.verify(&ask(0)).await.unwrap_err();
    assert_eq!(e.problem().unwrap().errors[0].field, "cost");
}

#[tokio::test]
async fn a_quota_survives_a_restart() {
    // Counts against daily windows: not across UTC midnight.
    clear_of_utc_midnight(Duration::from_secs(120)).await;
    let app = TestApp::spawn().await;
    let (id, token) = key_with(
        &app.owner,
        CreateKeyRequest {
            name: "daily".into(),
            quota: Some(Quota {
                daily: Some(5),
                monthly: None,
                consistency: Default::default(),
            }),
            ..Default::default()
        },
    )
    .await;
    for _ in 0..5 {
        assert_eq!(whoami(&app.server.base_url, &token).await.0, 200);
    }
    let (status, headers, body) = whoami(&app.server.base_url, &token).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (429, Some("quota_exceeded"))
    );
    let retry: u64 = header(&headers, "retry-after").parse().unwrap();
    assert!(
        (1..=86_400).contains(&retry),
        "resets at the next UTC midnight: {retry}"
    );

    let TestApp {
        db, server, owner, ..
    } = app;
    server.stop().await;
    let used: i64 =
        sqlx::query_scalar("SELECT used FROM quota_usage WHERE lineage_id = $1 AND period = 'day'")
            .bind(id.into_uuid())
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(used, 5, "the flush at shutdown stored every unit");
    let again = TestServer::start(&db, |_| {}).await;
    let (status, _, body) = whoami(&again.base_url, &token).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (429, Some("quota_exceeded")),
        "a new process remembers"
    );
    drop(owner);
}

#[tokio::test]
async fn a_tier_change_reaches_another_node() {
    // Counts against daily windows: not across UTC midnight.
    clear_of_utc_midnight(Duration::from_secs(120)).await;
    let app = TestApp::spawn().await;
    let other = TestServer::start(&app.db, |_| {}).await;
    app.owner
        .create_tier(&CreateTierRequest {
            name: "free".into(),
            rate_limits: Some(vec![rule("fixed_window", 2, 86_400)]),
            ..Default::default()
        })
        .await
        .unwrap();
    let (_, token) = key_with(
        &app.owner,
        CreateKeyRequest {
            name: "t".into(),
            tier: Some("free".into()),
            ..Default::default()
        },
    )
    .await;
    for _ in 0..2 {
        assert_eq!(whoami(&other.base_url, &token).await.0, 200);
    }
    assert_eq!(whoami(&other.base_url, &token).await.0, 429);
    app.owner
        .update_tier(
            "free",
            &UpdateTierRequest {
                rate_limits: Some(vec![rule("fixed_window", 100, 86_400)]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    // LISTEN/NOTIFY carries it in milliseconds; the deadline only bounds a broken run (the
    // key cache's TTL, 300 s, would bring it much later).
    let reached = eventually(Duration::from_secs(30), || async {
        whoami(&other.base_url, &token).await.0 == 200
    })
    .await;
    assert!(reached, "the other node applied the new tier");
    let (_, h, _) = whoami(&other.base_url, &token).await;
    assert!(header(&h, "ratelimit-policy").contains("q=100"));
}

#[tokio::test]
async fn violations_soft_thresholds_and_current_standing_are_reported() {
    // Counts against daily windows: not across UTC midnight.
    clear_of_utc_midnight(Duration::from_secs(120)).await;
    let app = TestApp::spawn().await;
    app.owner
        .create_tier(&CreateTierRequest {
            name: "small".into(),
            rate_limits: Some(vec![RateLimitRule {
                name: Some("tiny".into()),
                ..rule("fixed_window", 4, 86_400)
            }]),
            soft_threshold: Some(0.5),
            ..Default::default()
        })
        .await
        .unwrap();
    let receiver = crate::webhooks::Receiver::start(0).await;
    let created = app
        .owner
        .create_webhook(&keyward_core::api::CreateWebhookRequest {
            url: format!("{}/limits", receiver.url),
            events: Some(vec!["limit.*".into()]),
            enabled: None,
        })
        .await
        .unwrap();
    let (hook, secret) = (created.webhook, created.secret);
    let (id, token) = key_with(
        &app.owner,
        CreateKeyRequest {
            name: "v".into(),
            tier: Some("small".into()),
            ..Default::default()
        },
    )
    .await;
    let mut warnings = Vec::new();
    for _ in 0..4 {
        let (s, h, _) = whoami(&app.server.base_url, &token).await;
        assert_eq!(s, 200);
        warnings.push(h.get("x-ratelimit-warning").is_some());
    }
    assert_eq!(
        warnings,
        [false, true, true, true],
        "warned from half of the limit on"
    );
    for _ in 0..3 {
        assert_eq!(whoami(&app.server.base_url, &token).await.0, 429);
    }
    let listed = eventually(Duration::from_secs(5), || async {
        let v = app
            .owner
            .violations(&ViolationsQuery::default())
            .await
            .unwrap();
        v.items
            .iter()
            .any(|i| i.key_id == id && i.rule == "tiny" && i.count == 3)
    })
    .await;
    assert!(listed, "three violations of rule tiny are listed");
    let events: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM limit_events WHERE key_id = $1 AND kind = 'soft_threshold'",
    )
    .bind(id.into_uuid())
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert_eq!(
        events, 1,
        "the first crossing in the window raised one event"
    );
    let deliveries = app
        .owner
        .webhook_deliveries(hook.id, &Default::default())
        .await
        .unwrap()
        .items;
    assert_eq!(
        deliveries
            .iter()
            .map(|d| d.event_type.as_str())
            .collect::<Vec<_>>(),
        ["limit.soft_threshold"],
        "the event became one notification"
    );
    // What the endpoint receives: signed, naming the key and rule, the use that crossed the
    // threshold (2 of 4, the soft threshold being half) and the window.
    let got = receiver.wait_for(1).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(crate::webhooks::signature_verifies(&secret, &got[0]));
    let body: serde_json::Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(body["type"], "limit.soft_threshold");
    let data = &body["data"];
    assert_eq!(data["key_id"], serde_json::json!(id));
    assert_eq!(data["rule"], "tiny");
    assert_eq!(
        (data["used"].as_i64(), data["limit"].as_i64()),
        (Some(2), Some(4))
    );
    assert_eq!(
        data["window_index"].as_i64(),
        Some(chrono::Utc::now().timestamp().div_euclid(86_400)),
        "today's daily window"
    );
    let standing = app.owner.key_limits(id).await.unwrap();
    assert_eq!(standing.tier.as_deref(), Some("small"));
    assert_eq!(standing.mode, "local");
    assert_eq!(
        (
            standing.rules[0].used,
            standing.rules[0].remaining,
            standing.rules[0].limit
        ),
        (4, 0, 4)
    );
    assert_eq!(standing.violations.len(), 1);
    let metrics = app.server.metrics().await;
    assert!(
        metrics.contains("keyward_limit_refusals_total{code=\"rate_limited\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("keyward_limiter_mode{mode=\"local\"} 1"),
        "{metrics}"
    );

    let e = app
        .owner
        .violations(&ViolationsQuery {
            from: Some(chrono::Utc::now()),
            to: Some(chrono::Utc::now() - chrono::Duration::hours(1)),
            key_id: None,
        })
        .await
        .unwrap_err();
    assert_eq!(e.problem().unwrap().errors[0].field, "from");
}

/// `GET /v1/keys/{id}/limits` projects each quota's exhaustion from its period-to-date rate.
#[tokio::test]
async fn the_standing_forecasts_each_quota() {
    clear_of_utc_midnight(Duration::from_secs(120)).await;
    let app = TestApp::spawn().await;
    let (id, token) = key_with(
        &app.owner,
        CreateKeyRequest {
            name: "metered".into(),
            quota: Some(Quota {
                daily: Some(3),
                monthly: Some(1_000_000),
                consistency: Default::default(),
            }),
            ..Default::default()
        },
    )
    .await;
    let before = app.owner.key_limits(id).await.unwrap();
    let quotas: Vec<_> = before.forecast.iter().map(|f| f.quota.as_str()).collect();
    assert_eq!(quotas, ["daily", "monthly"]);
    assert!(
        before.forecast.iter().all(|f| f.exhausts_at.is_none()),
        "unused quotas last: {:?}",
        before.forecast
    );
    for _ in 0..3 {
        assert_eq!(whoami(&app.server.base_url, &token).await.0, 200);
    }
    let now = chrono::Utc::now();
    let after = app.owner.key_limits(id).await.unwrap();
    let daily = &after.forecast[0];
    let at = daily.exhausts_at.expect("the daily quota is used up");
    assert!(
        at <= chrono::Utc::now() && at >= now - chrono::Duration::seconds(5),
        "{at}"
    );
    let monthly = &after.forecast[1];
    assert_eq!(monthly.exhausts_at, None, "3 of a million lasts the month");
    assert_eq!(
        monthly.confidence,
        keyward_core::limit::forecast::Confidence::Low
    );
    // A key without quotas has no forecast.
    let (plain, _) = key_with(
        &app.owner,
        CreateKeyRequest {
            name: "unmetered".into(),
            ..Default::default()
        },
    )
    .await;
    assert!(
        app.owner
            .key_limits(plain)
            .await
            .unwrap()
            .forecast
            .is_empty()
    );
}
