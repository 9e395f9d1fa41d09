//! The second security round: a NUL byte that jammed the desktop's outbox, pushes that must never
//! answer 500 nor lose a committed result, tier names PostgreSQL cannot compare, secrets cached by
//! intermediaries, invisible names, implausible offline ids, a refusal's `remaining`, and an
//! OpenAPI document that put query parameters in the path.

use keyward_core::api::{CreateKeyRequest, Quota, RateLimitRule};
use keyward_core::hash::hash_token;
use keyward_core::{ApiKeyToken, Environment, KeyId};
use keyward_e2e::{PASSWORD, TestApp, TestServer};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config as PropConfig, TestRunner};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use uuid::Uuid;

fn session(app: &TestApp) -> String {
    app.owner
        .session()
        .expect("signed in")
        .expose_secret()
        .to_owned()
}

async fn send(app: &TestApp, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .request(
            method.parse().unwrap(),
            format!("{}{path}", app.server.base_url),
        )
        .bearer_auth(session(app));
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn key_count(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM api_keys")
        .fetch_one(app.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn control_characters_in_metadata_are_refused_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    for (metadata, field) in [
        (json!({"k": "a\u{0}b"}), "metadata.k"),
        (json!({"a\u{0}b": "v"}), "metadata"),
        (
            json!({"k": {"nested": ["x", "y\u{1b}[31m"]}}),
            "metadata.k.nested[1]",
        ),
    ] {
        let (status, body) = send(
            &app,
            "POST",
            "/v1/keys",
            Some(json!({"name": "meta", "metadata": metadata})),
        )
        .await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["errors"][0]["field"], field, "{body}");
        assert_eq!(body["errors"][0]["code"], "invalid_characters", "{body}");
    }
    assert_eq!(key_count(&app).await, 0);
    let created = app
        .owner
        .create_key(&CreateKeyRequest {
            name: "fine".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let (status, body) = send(
        &app,
        "PATCH",
        &format!("/v1/keys/{}", created.key.id),
        Some(json!({"metadata": {"k": "a\u{0}b"}})),
    )
    .await;
    assert_eq!(
        (status, &body["errors"][0]["field"]),
        (422, &json!("metadata.k"))
    );
    assert_eq!(
        app.owner.get_key(created.key.id).await.unwrap().metadata,
        json!({})
    );
}

/// A create_key op made offline, as the desktop sends it.
fn create_op(name: &str, metadata: Value) -> Value {
    let id = KeyId::new();
    let token = ApiKeyToken::generate(Environment::Live, id);
    json!({
        "op_id": Uuid::now_v7(),
        "kind": "create_key",
        "data": {"name": name, "id": id, "secret_hash": hash_token(&token), "metadata": metadata},
    })
}

#[tokio::test]
async fn a_hostile_op_in_a_push_is_refused_alone_and_the_outbox_moves_on() {
    let app = TestApp::spawn().await;
    let ops = vec![
        create_op("before", json!({})),
        create_op("nul", json!({"k": "a\u{0}b"})),
        create_op("after", json!({"team": "infra"})),
    ];
    let (status, body) = send(&app, "POST", "/v1/sync/push", Some(json!({ "ops": ops }))).await;
    assert_eq!(status, 200, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 3, "{body}");
    assert_eq!(results[0]["status"], "applied");
    assert_eq!(results[1]["status"], "rejected");
    assert_eq!(results[1]["code"], "validation_failed");
    assert_eq!(results[2]["status"], "applied");
    assert_eq!(key_count(&app).await, 2);
    // A value the parser quotes back in its message (here with a NUL) is refused like any other.
    let quoted = json!({
        "op_id": Uuid::now_v7(),
        "kind": "revoke_key",
        "key_id": KeyId::new(),
        "data": {"grace_seconds": "a\u{0}b"},
    });
    let batch = json!({ "ops": [quoted, create_op("last", json!({}))] });
    let (status, answered) = send(&app, "POST", "/v1/sync/push", Some(batch)).await;
    assert_eq!(status, 200, "{answered}");
    assert_eq!(
        answered["results"].as_array().unwrap().len(),
        2,
        "{answered}"
    );
    assert_eq!(answered["results"][0]["status"], "rejected");
    assert_eq!(answered["results"][1]["status"], "applied");
    // Sending the same batch again (the client lost the answer) answers the same results.
    let (status, again) = send(&app, "POST", "/v1/sync/push", Some(json!({ "ops": ops }))).await;
    assert_eq!(status, 200);
    assert_eq!(again["results"], body["results"]);
    assert_eq!(
        key_count(&app).await,
        3,
        "the two earlier batches' creates, nothing doubled"
    );
}

/// Hostile values for any field of an op.
fn hostile_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!("a\u{0}b")),
        Just(json!("\u{202E}\u{200B}")),
        Just(json!("")),
        Just(json!(-1)),
        Just(json!(u64::MAX)),
        Just(json!(1e308)),
        Just(json!(null)),
        Just(json!([])),
        Just(json!({"k": "v\u{0}"})),
        Just(json!("x".repeat(5000))),
        "[ -~\u{0}-\u{1f}\u{80}-\u{10ffff}]{0,40}".prop_map(Value::String),
    ]
}

fn hostile_op() -> impl Strategy<Value = Value> {
    let kinds = prop_oneof![
        Just("create_key"),
        Just("update_key"),
        Just("revoke_key"),
        Just("rotate_key"),
        Just("no_such_kind"),
    ];
    let fields = prop_oneof![
        Just("name"),
        Just("metadata"),
        Just("scopes"),
        Just("allowed_ips"),
        Just("expires_at"),
        Just("grace_seconds"),
        Just("tier"),
        Just("secret_hash"),
        Just("id"),
        Just("new_id"),
    ];
    (
        kinds,
        prop::collection::vec((fields, hostile_value()), 0..4),
        any::<bool>(),
        prop::option::of(any::<i64>()),
    )
        .prop_map(|(kind, fields, valid_base, base_seq)| {
            let mut op = if valid_base && kind == "create_key" {
                create_op("prop", json!({}))
            } else {
                json!({"op_id": Uuid::now_v7(), "kind": kind, "key_id": KeyId::new(), "data": {}})
            };
            op["kind"] = json!(kind);
            if let Some(seq) = base_seq {
                op["base_seq"] = json!(seq);
            }
            for (field, value) in fields {
                op["data"][field] = value;
            }
            op
        })
}

#[tokio::test]
async fn hostile_pushes_never_answer_500_nor_lose_a_committed_result() {
    let app = TestApp::spawn().await;
    let mut runner = TestRunner::new(PropConfig {
        cases: 40,
        ..PropConfig::default()
    });
    let batches = prop::collection::vec(hostile_op(), 1..8);
    for case in 0..40 {
        let batch = batches.new_tree(&mut runner).unwrap().current();
        let (status, body) =
            send(&app, "POST", "/v1/sync/push", Some(json!({ "ops": batch }))).await;
        assert!(
            status == 200 || status == 422,
            "case {case}: {status} {body}\n{batch:#?}"
        );
        if status != 200 {
            continue; // the batch itself was malformed (an unknown kind): nothing applied
        }
        let results = body["results"].as_array().unwrap();
        assert_eq!(results.len(), batch.len(), "case {case}: {body}");
        // Each committed result is kept: replaying the batch answers it unchanged.
        let (status, again) =
            send(&app, "POST", "/v1/sync/push", Some(json!({ "ops": batch }))).await;
        assert_eq!(status, 200, "case {case}");
        assert_eq!(again["results"], body["results"], "case {case}");
        for (op, result) in batch.iter().zip(results) {
            assert_eq!(result["op_id"], op["op_id"]);
            if result["status"] == "applied" && op["kind"] == "create_key" {
                let id: KeyId = serde_json::from_value(op["data"]["id"].clone()).unwrap();
                app.owner
                    .get_key(id)
                    .await
                    .expect("an applied create is stored");
            }
        }
    }
}

#[tokio::test]
async fn tier_paths_with_nul_are_not_found_not_500() {
    let app = TestApp::spawn().await;
    for (method, body) in [
        ("GET", None),
        ("PATCH", Some(json!({"soft_threshold": 0.5}))),
        ("DELETE", None),
    ] {
        let (status, body) = send(&app, method, "/v1/tiers/%00", body).await;
        assert_eq!(status, 404, "{method}: {body}");
        assert_eq!(body["code"], "tier_not_found");
    }
}

#[tokio::test]
async fn answers_carrying_a_secret_are_never_cached() {
    let app = TestApp::spawn().await;
    let http = reqwest::Client::new();
    let login = http
        .post(format!("{}/v1/auth/login", app.server.base_url))
        .json(&json!({"email": "owner@acme.test", "password": keyward_e2e::PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    assert_eq!(login.headers()["cache-control"], "no-store");
    let created = http
        .post(format!("{}/v1/keys", app.server.base_url))
        .bearer_auth(session(&app))
        .json(&json!({"name": "cached?"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    assert_eq!(created.headers()["cache-control"], "no-store");
    let created: Value = created.json().await.unwrap();
    let id = created["key"]["id"]
        .as_str()
        .or(created["id"].as_str())
        .unwrap_or_else(|| panic!("{created}"))
        .to_owned();
    let rotated = http
        .post(format!("{}/v1/keys/{id}/rotate", app.server.base_url))
        .bearer_auth(session(&app))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(rotated.headers()["cache-control"], "no-store");
    let hook = http
        .post(format!("{}/v1/webhooks", app.server.base_url))
        .bearer_auth(session(&app))
        .json(&json!({"url": "https://hooks.example.com/x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(hook.status(), 201);
    assert_eq!(hook.headers()["cache-control"], "no-store");
}

#[tokio::test]
async fn invisible_names_and_implausible_offline_ids_are_refused() {
    let app = TestApp::spawn().await;
    for name in [
        "\u{200B}\u{200D}\u{FEFF}",
        "\u{2066}\u{2069}",
        "pay\u{202E}gpj.exe",
    ] {
        let (status, body) = send(&app, "POST", "/v1/keys", Some(json!({ "name": name }))).await;
        assert_eq!(status, 422, "{name:?}: {body}");
        assert_eq!(body["errors"][0]["field"], "name");
    }
    // A UUIDv7 from the year 10889 (time bits all ones), and one with zero random bits.
    let far_future = Uuid::from_u128(0xffff_ffff_ffff_7000_8000_0000_0000_0001);
    let no_random = {
        let now = KeyId::new().into_uuid().as_u128();
        Uuid::from_u128((now & !((1u128 << 80) - 1)) | (0x7u128 << 76) | (0x2u128 << 62))
    };
    for (id, code) in [
        (far_future, "implausible_id_time"),
        (no_random, "invalid_id"),
    ] {
        let token = ApiKeyToken::generate(Environment::Live, KeyId::from_uuid(id));
        let (status, body) = send(
            &app,
            "POST",
            "/v1/keys",
            Some(json!({"name": "offline", "id": id, "secret_hash": hash_token(&token)})),
        )
        .await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["errors"][0]["field"], "id", "{body}");
        assert_eq!(body["errors"][0]["code"], code, "{body}");
    }
    assert_eq!(key_count(&app).await, 0);
}

#[tokio::test]
async fn a_refused_verification_reports_what_is_really_left() {
    let app = TestApp::spawn().await;
    let token = app
        .owner
        .create_key(&CreateKeyRequest {
            name: "rate and quota".into(),
            rate_limits: Some(vec![RateLimitRule {
                name: None,
                algorithm: "fixed_window".into(),
                limit: 2,
                window_seconds: 3600,
                burst: None,
                consistency: Default::default(),
            }]),
            quota: Some(Quota {
                daily: Some(100),
                monthly: None,
                consistency: Default::default(),
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .token
        .unwrap();
    let http = reqwest::Client::new();
    let url = format!("{}/v1/verify", app.server.base_url);
    let mut answers = Vec::new();
    for _ in 0..3 {
        let v: Value = http
            .post(&url)
            .json(&json!({"key": token}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answers.push(v);
    }
    assert_eq!(
        answers[1]["quota"]["daily"]["remaining"], 98,
        "{}",
        answers[1]
    );
    let refused = &answers[2];
    assert_eq!(refused["code"], "rate_limited", "{refused}");
    assert_eq!(
        refused["quota"]["daily"]["remaining"], 98,
        "the refused call took no unit of the quota: {refused}"
    );
}

#[tokio::test]
async fn the_openapi_document_puts_query_parameters_in_the_query() {
    let app = TestApp::spawn().await;
    let doc = app.anon.openapi().await.unwrap();
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for p in op["parameters"].as_array().into_iter().flatten() {
                let name = p["name"].as_str().unwrap();
                if p["in"] == "path" {
                    assert!(
                        path.contains(&format!("{{{name}}}")),
                        "{method} {path}: `{name}` is declared in the path but is not in it"
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 20, "{checked} parameters");
    let list = &doc["paths"]["/v1/keys"]["get"]["parameters"];
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "limit" && p["in"] == "query"),
        "{list}"
    );
}

/// A sign-in through the trusted proxy on 127.0.0.1, as if from `from`.
async fn login_from(base_url: &str, from: &str, password: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("{base_url}/v1/auth/login"))
        .header("x-forwarded-for", from)
        .json(&json!({"email": "owner@acme.test", "password": password}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn the_sign_in_throttle_is_shared_by_nodes_survives_restarts_and_keeps_the_owner_in() {
    let trust = |c: &mut keyward_server::Config| {
        c.client_ip.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        c.login.per_window = 5;
    };
    let app = TestApp::spawn_with(trust).await;
    let second = TestServer::start(&app.db, trust).await;
    let attacker = "203.0.113.66";
    // Five wrong passwords spread over two nodes: the window is one.
    for base in [
        &app.server.base_url,
        &second.base_url,
        &app.server.base_url,
        &second.base_url,
        &app.server.base_url,
    ] {
        assert_eq!(
            login_from(base, attacker, "wrong password guess").await,
            401
        );
    }
    assert_eq!(
        login_from(&second.base_url, attacker, "wrong password guess").await,
        429
    );
    // A node started afterwards remembers.
    let third = TestServer::start(&app.db, trust).await;
    assert_eq!(
        login_from(&third.base_url, attacker, PASSWORD).await,
        429,
        "even the right password from the guessing address"
    );
    // The owner, from a network with no failures, signs in on any node.
    assert_eq!(
        login_from(&third.base_url, "198.51.100.7", PASSWORD).await,
        200
    );
    assert_eq!(
        login_from(&app.server.base_url, "2001:db8:5::1", PASSWORD).await,
        200
    );
}

/// `/v1/whoami` with `token`: its status.
async fn whoami_status(app: &TestApp, token: &str) -> u16 {
    match app.anon.whoami(token).await {
        Ok(_) => 200,
        Err(e) => e.status().map_or(0, |s| s.as_u16()),
    }
}

#[tokio::test]
async fn neither_a_rotation_nor_a_limit_edit_forgives_what_was_used() {
    // Flushes an hour apart: only this node's memory knows what was used.
    let app =
        TestApp::spawn_with(|c| c.usage.flush_interval = std::time::Duration::from_secs(3600))
            .await;
    let created = app
        .owner
        .create_key(&CreateKeyRequest {
            name: "quota".into(),
            quota: Some(Quota {
                daily: Some(5),
                monthly: None,
                consistency: Default::default(),
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let token = created.token.unwrap();
    for _ in 0..5 {
        assert_eq!(whoami_status(&app, &token).await, 200);
    }
    assert_eq!(whoami_status(&app, &token).await, 429);
    // An immediate rotation: the successor goes on from the same count.
    let (status, rotated) = send(
        &app,
        "POST",
        &format!("/v1/keys/{}/rotate", created.key.id),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 201, "{rotated}");
    let successor = rotated["token"].as_str().unwrap().to_owned();
    assert_eq!(
        whoami_status(&app, &successor).await,
        429,
        "the successor's quota is spent too"
    );
    let successor_id = rotated["id"].as_str().unwrap().to_owned();
    // Raising the quota to 6 allows one more call, not six.
    let (status, body) = send(
        &app,
        "PATCH",
        &format!("/v1/keys/{successor_id}"),
        Some(json!({"quota": {"daily": 6}})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(whoami_status(&app, &successor).await, 200);
    assert_eq!(whoami_status(&app, &successor).await, 429);

    // An exhausted fixed window survives an edit of its limit.
    let windowed = app
        .owner
        .create_key(&CreateKeyRequest {
            name: "window".into(),
            rate_limits: Some(vec![RateLimitRule {
                name: None,
                algorithm: "fixed_window".into(),
                limit: 3,
                window_seconds: 3600,
                burst: None,
                consistency: Default::default(),
            }]),
            ..Default::default()
        })
        .await
        .unwrap();
    let token = windowed.token.unwrap();
    for _ in 0..3 {
        assert_eq!(whoami_status(&app, &token).await, 200);
    }
    assert_eq!(whoami_status(&app, &token).await, 429);
    let (status, body) = send(
        &app,
        "PATCH",
        &format!("/v1/keys/{}", windowed.key.id),
        Some(json!({"rate_limits": [{"algorithm": "fixed_window", "limit": 4, "window_seconds": 3600}]})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(whoami_status(&app, &token).await, 200);
    assert_eq!(whoami_status(&app, &token).await, 429);
}

#[tokio::test]
async fn a_path_that_is_not_utf8_answers_problem_json() {
    let app = TestApp::spawn().await;
    for path in ["/v1/keys/%ff%fe", "/v1/tiers/%c3%28", "/v1/webhooks/%80"] {
        let res = reqwest::Client::new()
            .get(format!("{}{path}", app.server.base_url))
            .bearer_auth(session(&app))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{path}");
        assert_eq!(
            res.headers()["content-type"],
            "application/problem+json",
            "{path}"
        );
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["code"], "invalid_path", "{path}: {body}");
    }
}

#[tokio::test]
async fn key_creations_racing_tier_deletions_never_deadlock() {
    let app = TestApp::spawn().await;
    for round in 0..10 {
        let name = format!("race{round}");
        app.owner
            .create_tier(&keyward_core::api::CreateTierRequest {
                name: name.clone(),
                rate_limits: Some(vec![RateLimitRule {
                    name: None,
                    algorithm: "fixed_window".into(),
                    limit: 10,
                    window_seconds: 60,
                    burst: None,
                    consistency: Default::default(),
                }]),
                quota: None,
                soft_threshold: None,
            })
            .await
            .unwrap();
        let creates = (0..4).map(|i| {
            let owner = app.owner.clone();
            let tier = name.clone();
            async move {
                owner
                    .create_key(&CreateKeyRequest {
                        name: format!("k{i}"),
                        tier: Some(tier),
                        ..Default::default()
                    })
                    .await
                    .map(|_| ())
            }
        });
        let delete = app.owner.delete_tier(&name);
        let (created, deleted) = tokio::join!(futures::future::join_all(creates), delete);
        for e in created
            .iter()
            .filter_map(|r| r.as_ref().err())
            .chain(deleted.as_ref().err())
        {
            let status = e.status().map(|s| s.as_u16());
            assert!(
                matches!(status, Some(409 | 422)),
                "round {round}: only a clean refusal, never a 500: {e:?}"
            );
        }
    }
}
