//! Brute force and overload: throttled sign-ins, throttled cold key checks, a bounded argon2
//! queue that answers 503, warm keys unaffected by floods, honest readiness.

use std::time::Duration;

use keyward_core::api::{CreateKeyRequest, Role};
use keyward_core::{ApiKeyToken, Environment, KeyId};
use keyward_e2e::{PASSWORD, TestApp, eventually};
use secrecy::SecretString;

#[tokio::test]
async fn sign_in_failures_look_alike_and_are_throttled() {
    let app = TestApp::spawn().await;
    let wrong = SecretString::from("not the password at all");
    let unknown = app
        .anon
        .login("nobody@acme.test", &wrong)
        .await
        .unwrap_err();
    let bad_password = app.anon.login("owner@acme.test", &wrong).await.unwrap_err();
    assert_eq!(unknown.code(), Some("invalid_credentials"));
    // Alike but for the request id every problem carries.
    let without_id = |e: &keyward_client::ClientError| {
        e.problem().cloned().map(|mut p| {
            assert!(p.request_id.is_some(), "{p:?}");
            p.request_id = None;
            p
        })
    };
    assert_eq!(
        without_id(&unknown),
        without_id(&bad_password),
        "unknown email and wrong password answer alike"
    );

    for _ in 0..4 {
        let _ = app.anon.login("owner@acme.test", &wrong).await.unwrap_err();
    }
    let throttled = app
        .anon
        .login("owner@acme.test", &SecretString::from(PASSWORD))
        .await
        .unwrap_err();
    assert_eq!(throttled.code(), Some("too_many_attempts"));
    assert_eq!(throttled.status().unwrap().as_u16(), 429);
    match throttled {
        keyward_client::ClientError::Api { retry_after, .. } => assert!(retry_after.unwrap() >= 1),
        other => panic!("{other:?}"),
    }
    // Another account from the same address is not locked out by this one's failures.
    let other = app.admin("Acme", "second@acme.test", Role::Admin).await;
    other.list_keys(&Default::default()).await.unwrap();
    // Failed sign-ins of a known account are audited: the wrong password above and the four
    // after it (not the unknown email, and not the refusal while throttled).
    let failed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'auth.login_failed'")
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!(
        failed, 5,
        "one audit entry per failed sign-in of owner@acme.test"
    );
}

#[tokio::test]
async fn wrong_secrets_cannot_reach_argon2_at_request_rate() {
    let app = TestApp::spawn_with(|c| c.cold_failures.per_window = 3).await;
    let cold = app
        .owner
        .create_key(&CreateKeyRequest {
            name: "cold".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let warm = app
        .owner
        .create_key(&CreateKeyRequest {
            name: "warm".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let warm_token = warm.token.unwrap();
    app.anon.whoami(&warm_token).await.unwrap();

    // A cold key: after 3 failed argon2 checks from this address, further checks only go through
    // the key's slow lane (a few waiting, one run per pace); a burst past that is refused
    // without argon2.
    for _ in 0..3 {
        let guess = ApiKeyToken::generate(Environment::Live, cold.key.id);
        assert_eq!(
            app.anon
                .whoami(guess.expose_secret())
                .await
                .unwrap_err()
                .code(),
            Some("invalid_key")
        );
    }
    let burst = (0..12).map(|_| {
        let guess = ApiKeyToken::generate(Environment::Live, cold.key.id);
        let anon = app.anon.clone();
        async move { anon.whoami(guess.expose_secret()).await.unwrap_err() }
    });
    let answers = futures::future::join_all(burst).await;
    let throttled = answers
        .iter()
        .filter(|e| e.status().map(|s| s.as_u16()) == Some(429))
        .inspect(|e| assert_eq!(e.code(), Some("too_many_attempts")))
        .count();
    let checked = answers
        .iter()
        .filter(|e| e.code() == Some("invalid_key"))
        .count();
    assert_eq!(throttled + checked, 12, "{answers:?}");
    assert!(
        checked <= 4,
        "at most the slow lane's 4 waiters are checked: {checked}"
    );

    // A warm key: wrong secrets are refused at digest cost, never throttled, and the real
    // secret keeps working throughout.
    for i in 0..50 {
        let guess = ApiKeyToken::generate(Environment::Live, warm.key.id);
        assert_eq!(
            app.anon
                .whoami(guess.expose_secret())
                .await
                .unwrap_err()
                .code(),
            Some("invalid_key"),
            "guess {i}"
        );
    }
    app.anon.whoami(&warm_token).await.unwrap();
}

#[tokio::test]
async fn a_full_argon2_queue_answers_503_with_retry_after() {
    let app = TestApp::spawn_with(|c| {
        c.argon2.permits = 1;
        c.argon2.per_org = 1;
        c.argon2.max_queue = 0;
        // Every wave below guesses each key again: no key may reach its slow lane.
        c.cold_failures.per_window = 10_000;
    })
    .await;
    let mut ids = Vec::new();
    for i in 0..8 {
        ids.push(
            app.owner
                .create_key(&CreateKeyRequest {
                    name: format!("k{i}"),
                    ..Default::default()
                })
                .await
                .unwrap()
                .key
                .id,
        );
    }
    // Eight cold checks at once against one hasher and no queue: those that find it busy are
    // refused. Whether two overlap depends on scheduling, so waves are sent until one does (a
    // generous deadline, not a bet on the first wave); every answer of every wave is checked.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut waves = 0;
    loop {
        waves += 1;
        let mut tasks = Vec::new();
        for &id in &ids {
            let client = app.anon.clone();
            tasks.push(tokio::spawn(async move {
                let guess = ApiKeyToken::generate(Environment::Live, id);
                client.whoami(guess.expose_secret()).await.unwrap_err()
            }));
        }
        let mut codes = Vec::new();
        for t in tasks {
            let e = t.await.unwrap();
            if e.code() == Some("overloaded") {
                match &e {
                    keyward_client::ClientError::Api {
                        retry_after,
                        status,
                        ..
                    } => {
                        assert_eq!(status.as_u16(), 503);
                        assert!(retry_after.is_some_and(|s| s >= 1), "{e:?}");
                    }
                    other => panic!("{other:?}"),
                }
            }
            codes.push(e.code().unwrap().to_owned());
        }
        assert!(
            codes
                .iter()
                .all(|c| c == "overloaded" || c == "invalid_key"),
            "{codes:?}"
        );
        assert!(
            codes.iter().any(|c| c == "invalid_key"),
            "the hasher still answers someone: {codes:?}"
        );
        if codes.iter().any(|c| c == "overloaded") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no cold check was refused in {waves} waves of 8 against one hasher and no queue"
        );
    }
}

#[tokio::test]
async fn unknown_and_malformed_keys_are_refused_alike() {
    let app = TestApp::spawn().await;
    let unknown = ApiKeyToken::generate(Environment::Live, KeyId::new());
    for token in [unknown.expose_secret(), "kw_live_short", "", "Bearer"] {
        let e = app.anon.whoami(token).await.unwrap_err();
        assert_eq!(
            (e.status().unwrap().as_u16(), e.code()),
            (401, Some("invalid_key")),
            "{token:?}"
        );
    }
}

#[tokio::test]
async fn readiness_follows_the_database() {
    let app = TestApp::spawn().await;
    app.anon.readyz().await.unwrap();
    let admin = sqlx::PgPool::connect(&format!("{}/postgres", keyward_e2e::pg_url()))
        .await
        .unwrap();
    let name = app.db.name.clone();
    sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
        .execute(&admin)
        .await
        .unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(&name)
        .execute(&admin)
        .await
        .unwrap();
    let down = eventually(Duration::from_secs(10), || async {
        app.anon
            .readyz()
            .await
            .err()
            .and_then(|e| e.status())
            .map(|s| s.as_u16())
            == Some(503)
    })
    .await;
    assert!(down, "readyz reports the database down");
    app.anon.healthz().await.unwrap();
    sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .execute(&admin)
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(10), || async {
            app.anon.readyz().await.is_ok()
        })
        .await
    );
}

#[tokio::test]
async fn openapi_is_generated_from_the_code() {
    let app = TestApp::spawn().await;
    let doc = app.anon.openapi().await.unwrap();
    // Every route of the router, with every method it serves, is documented: read from the
    // router's own source, so a new endpoint without its annotation fails here.
    let source = include_str!("../../../sync-server/src/http/mod.rs");
    let routes: Vec<&str> = source.split(".route(").skip(1).collect();
    assert!(routes.len() > 30, "the router's routes were found");
    let mut checked = 0;
    for chunk in routes {
        let chunk = chunk.split(';').next().unwrap();
        let path = chunk.split('"').nth(1).expect("a route's path");
        if path == "/openapi.json" || path == "/gw" {
            continue; // the document itself; `/gw` is `/gw/{path}` with an empty path
        }
        let path = path.replace("{*path}", "{path}");
        let entry = &doc["paths"][path.as_str()];
        assert!(entry.is_object(), "{path} is not documented");
        for method in ["get", "post", "put", "patch", "delete"] {
            if chunk.contains(&format!("{method}(")) {
                assert!(
                    entry[method].is_object(),
                    "{method} {path} is not documented"
                );
                checked += 1;
            }
        }
        if chunk.contains("any(") {
            assert!(
                entry.as_object().is_some_and(|ops| !ops.is_empty()),
                "{path} has no documented method"
            );
            checked += 1;
        }
    }
    assert!(checked > 35, "{checked} operations checked");
    for schema in [
        "ApiKey",
        "Problem",
        "CreateKeyRequest",
        "VerifyResponse",
        "Tier",
        "RateLimitRule",
        "KeyLimits",
    ] {
        assert!(
            doc["components"]["schemas"][schema].is_object(),
            "{schema} missing"
        );
    }
}

#[tokio::test]
async fn concurrent_first_uses_of_a_key_share_one_argon2_run() {
    // Room for exactly one argon2 job: if the first uses did not share it, most would get 503.
    let app = TestApp::spawn_with(|c| {
        c.argon2.permits = 1;
        c.argon2.per_org = 1;
        c.argon2.max_queue = 0;
    })
    .await;
    let key = app
        .owner
        .create_key(&CreateKeyRequest {
            name: "cold".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let token = key.token.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (client, token) = (app.anon.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            client.whoami(&token).await.map(|w| w.key_id)
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), key.key.id);
    }
}
