//! Admin sessions: changing the password ends the admin's other sessions, signing out
//! everywhere ends all of them, a session unused past the idle timeout is refused, and bad
//! password changes are refused field by field with nothing changed.

use std::time::{Duration, Instant};

use keyward_client::{ClientError, KeywardClient};
use keyward_core::api::{ListKeysQuery, PageQuery};
use keyward_e2e::{PASSWORD, TestApp};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

const EMAIL: &str = "owner@acme.test";
const NEW_PASSWORD: &str = "a brand new password";

fn status_code(e: ClientError) -> (u16, String) {
    (
        e.status().map(|s| s.as_u16()).unwrap_or(0),
        e.code().unwrap_or("none").to_owned(),
    )
}

/// What an admin session can do: read the keys (`Err` with its status and code when refused).
async fn works(c: &KeywardClient) -> Result<(), (u16, String)> {
    c.list_keys(&ListKeysQuery::default())
        .await
        .map(|_| ())
        .map_err(status_code)
}

async fn sign_in(app: &TestApp, password: &str) -> Result<KeywardClient, (u16, String)> {
    app.anon
        .login(EMAIL, &SecretString::from(password))
        .await
        .map(|(c, _)| c)
        .map_err(status_code)
}

async fn password_hash(app: &TestApp) -> String {
    sqlx::query_scalar("SELECT password_hash FROM admins WHERE email = $1")
        .bind(EMAIL)
        .fetch_one(app.pool())
        .await
        .unwrap()
}

async fn session_count(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM sessions")
        .fetch_one(app.pool())
        .await
        .unwrap()
}

/// The organisation's audit entries with `action`, read with `c`.
async fn audited(c: &KeywardClient, action: &str) -> Vec<keyward_core::api::AuditEntry> {
    c.audit(&PageQuery {
        limit: Some(500),
        cursor: None,
    })
    .await
    .unwrap()
    .items
    .into_iter()
    .filter(|e| e.action == action)
    .collect()
}

#[tokio::test]
async fn a_password_change_ends_every_other_session() {
    let app = TestApp::spawn().await;
    let other = app.owner.clone();
    let caller = sign_in(&app, PASSWORD).await.unwrap();
    let third = sign_in(&app, PASSWORD).await.unwrap();

    caller
        .change_password(
            &SecretString::from(PASSWORD),
            &SecretString::from(NEW_PASSWORD),
        )
        .await
        .expect("changed");

    assert_eq!(works(&other).await, Err((401, "invalid_session".into())));
    assert_eq!(works(&third).await, Err((401, "invalid_session".into())));
    assert_eq!(works(&caller).await, Ok(()), "the caller's session stays");
    assert_eq!(session_count(&app).await, 1);
    assert_eq!(
        sign_in(&app, PASSWORD).await.unwrap_err(),
        (401, "invalid_credentials".into())
    );
    let fresh = sign_in(&app, NEW_PASSWORD)
        .await
        .expect("the new password signs in");
    assert_eq!(works(&fresh).await, Ok(()));

    let entries = audited(&caller, "auth.password_changed").await;
    assert_eq!(entries.len(), 1);
    assert_eq!(
        entries[0].after,
        Some(json!({"other_sessions_ended": 2})),
        "the entry counts what ended, and holds no secret"
    );
    let all = serde_json::to_string(&audited(&caller, "auth.password_changed").await).unwrap();
    assert!(!all.contains(NEW_PASSWORD) && !all.contains(PASSWORD));
    assert!(caller.verify_audit().await.unwrap().ok);
}

#[tokio::test]
async fn a_wrong_current_password_is_refused_and_throttled_like_sign_ins() {
    let app = TestApp::spawn_with(|c| c.login.per_window = 3).await;
    let before = password_hash(&app).await;
    let other = sign_in(&app, PASSWORD).await.unwrap();
    let (wrong, new) = (
        SecretString::from("not the password"),
        SecretString::from(NEW_PASSWORD),
    );
    let change = || app.owner.change_password(&wrong, &new);
    for _ in 0..3 {
        assert_eq!(
            status_code(change().await.unwrap_err()),
            (403, "wrong_password".into())
        );
    }
    let e = change().await.unwrap_err();
    assert!(
        matches!(&e, ClientError::Api { retry_after: Some(s), .. } if *s > 0),
        "{e:?}"
    );
    assert_eq!(status_code(e), (429, "too_many_attempts".into()));
    // The same window as sign-ins: the email is throttled there too.
    assert_eq!(
        sign_in(&app, PASSWORD).await.unwrap_err(),
        (429, "too_many_attempts".into())
    );
    assert_eq!(password_hash(&app).await, before, "nothing changed");
    assert_eq!(works(&other).await, Ok(()), "no session ended");
    assert_eq!(works(&app.owner).await, Ok(()));
    assert_eq!(
        audited(&app.owner, "auth.password_change_failed")
            .await
            .len(),
        3
    );
}

#[tokio::test]
async fn bad_password_changes_are_422_field_by_field_and_change_nothing() {
    let app = TestApp::spawn().await;
    let before = password_hash(&app).await;
    let other = sign_in(&app, PASSWORD).await.unwrap();
    let token = app.owner.session().unwrap().expose_secret().to_owned();
    let http = reqwest::Client::new();
    let url = format!("{}/v1/auth/password", app.server.base_url);
    let send = |body: Value, auth: bool| {
        let mut req = http.post(&url).json(&body);
        if auth {
            req = req.bearer_auth(&token);
        }
        async move {
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            let ct = res
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            let body: Value = res.json().await.unwrap_or(Value::Null);
            (status, ct, body)
        }
    };
    let fields = |body: &Value| -> Vec<(String, String)> {
        body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["field"].as_str().unwrap().to_owned(),
                    e["code"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let one = |f: &str, c: &str| vec![(f.to_owned(), c.to_owned())];
    let cases = [
        (
            json!({"current_password": "", "new_password": NEW_PASSWORD}),
            one("current_password", "out_of_range"),
        ),
        (
            json!({"current_password": PASSWORD, "new_password": "short"}),
            one("new_password", "weak_password"),
        ),
        (
            json!({"current_password": PASSWORD, "new_password": "              "}),
            one("new_password", "weak_password"),
        ),
        (
            json!({"current_password": PASSWORD, "new_password": "x".repeat(1025)}),
            one("new_password", "weak_password"),
        ),
        (
            json!({"current_password": PASSWORD, "new_password": PASSWORD}),
            one("new_password", "unchanged"),
        ),
        (
            json!({"current_password": PASSWORD}),
            one("new_password", "required"),
        ),
        (
            json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD, "confirm": "x"}),
            one("confirm", "unknown_field"),
        ),
        (
            json!({"current_password": 5, "new_password": NEW_PASSWORD}),
            one("current_password", "invalid"),
        ),
    ];
    for (body, want) in cases {
        let (status, ct, answer) = send(body.clone(), true).await;
        assert_eq!(status, 422, "{body} → {answer}");
        assert_eq!(ct, "application/problem+json", "{body}");
        assert_eq!(answer["code"], "validation_failed");
        assert_eq!(fields(&answer), want, "{body} → {answer}");
    }
    let (status, _, answer) = send(
        json!({"current_password": "", "new_password": "short"}),
        true,
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(
        fields(&answer),
        [
            ("current_password".to_owned(), "out_of_range".to_owned()),
            ("new_password".to_owned(), "weak_password".to_owned())
        ]
    );
    let (status, _, answer) = send(
        json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
        false,
    )
    .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (401, Some("unauthenticated"))
    );

    assert_eq!(password_hash(&app).await, before, "nothing changed");
    assert_eq!(works(&other).await, Ok(()), "no session ended");
    assert!(
        audited(&app.owner, "auth.password_changed")
            .await
            .is_empty()
    );
    assert_eq!(
        sign_in(&app, PASSWORD).await.map(|_| ()),
        Ok(()),
        "the old password still signs in"
    );
}

#[tokio::test]
async fn signing_out_everywhere_ends_every_session() {
    let app = TestApp::spawn().await;
    let second = sign_in(&app, PASSWORD).await.unwrap();
    let third = sign_in(&app, PASSWORD).await.unwrap();
    // Another admin's session is not touched.
    let colleague = app
        .admin(
            "Acme",
            "colleague@acme.test",
            keyward_core::api::Role::Admin,
        )
        .await;

    second.logout_all().await.expect("signed out everywhere");
    for c in [&app.owner, &second, &third] {
        assert_eq!(works(c).await, Err((401, "invalid_session".into())));
    }
    assert_eq!(works(&colleague).await, Ok(()));
    assert_eq!(session_count(&app).await, 1);
    assert_eq!(
        status_code(second.logout_all().await.unwrap_err()),
        (401, "invalid_session".into())
    );

    let fresh = sign_in(&app, PASSWORD)
        .await
        .expect("signing in again works");
    let entries = audited(&fresh, "auth.logout_all").await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].after, Some(json!({"sessions_ended": 3})));
    assert_eq!(entries[0].actor_email.as_deref(), Some(EMAIL));
}

#[tokio::test]
async fn a_session_unused_past_the_idle_timeout_is_refused() {
    const IDLE: f64 = 2.0;
    let app = TestApp::spawn_with(|c| c.sessions.idle = Duration::from_secs(IDLE as u64)).await;
    let idle = app.owner.clone();
    let mut busy = sign_in(&app, PASSWORD).await.unwrap();
    let idle_hash =
        keyward_server::session::token_hash(idle.session().unwrap().expose_secret()).to_vec();
    assert_eq!(works(&idle).await, Ok(()));

    // Waits on the condition itself, read from the database (a request would count as use),
    // while the other session keeps being used: each use is recorded, so it stays.
    let unused_for = || async {
        sqlx::query_scalar::<_, f64>(
            "SELECT extract(epoch FROM now() - last_seen_at)::float8 FROM sessions
              WHERE token_hash = $1",
        )
        .bind(&idle_hash)
        .fetch_one(app.pool())
        .await
        .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last_use = Instant::now();
    let mut passed = false;
    while Instant::now() < deadline {
        let gap = last_use.elapsed();
        let answer = works(&busy).await;
        // Only a session used again well within the timeout must have stayed.
        if gap < Duration::from_secs_f64(IDLE / 2.0) {
            assert_eq!(
                answer,
                Ok(()),
                "a session in use stays (unused for {gap:?})"
            );
        } else if answer.is_err() {
            // This machine stalled past the timeout: the session rightly ended.
            busy = sign_in(&app, PASSWORD).await.unwrap();
        }
        last_use = Instant::now();
        if unused_for().await > IDLE + 0.1 {
            passed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(passed, "the idle session's last use ages");

    assert_eq!(works(&idle).await, Err((401, "session_expired".into())));
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM sessions WHERE token_hash = $1")
        .bind(&idle_hash)
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(left, 0, "an idle session is deleted when found");
    assert_eq!(
        works(&idle).await,
        Err((401, "invalid_session".into())),
        "and stays ended"
    );
    assert_eq!(sign_in(&app, PASSWORD).await.map(|_| ()), Ok(()));
}
