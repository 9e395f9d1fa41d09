//! Tenancy and roles on every admin endpoint: another organisation's key is a 404 (never a 403),
//! a viewer reads but cannot write, no session is a 401.

use keyward_client::{ClientError, KeywardClient};
use keyward_core::KeyId;
use keyward_core::api::{
    CreateKeyRequest, RevokeKeyRequest, Role, RotateKeyRequest, UpdateKeyRequest,
};
use keyward_e2e::TestApp;
use secrecy::SecretString;

fn status_code(e: ClientError) -> (u16, String) {
    (
        e.status().map(|s| s.as_u16()).unwrap_or(0),
        e.code().unwrap_or("none").to_owned(),
    )
}

async fn key_count(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM api_keys")
        .fetch_one(app.pool())
        .await
        .unwrap()
}

/// Every write on key `id`; with `create`, key creation too.
async fn writes(c: &KeywardClient, id: KeyId, create: bool) -> Vec<(&'static str, (u16, String))> {
    let mut out = Vec::new();
    if create {
        let req = CreateKeyRequest {
            name: "x".into(),
            ..Default::default()
        };
        out.push(("create", status_code(c.create_key(&req).await.unwrap_err())));
    }
    out.extend([
        (
            "update",
            status_code(
                c.update_key(
                    id,
                    &UpdateKeyRequest {
                        name: Some("y".into()),
                        ..Default::default()
                    },
                )
                .await
                .unwrap_err(),
            ),
        ),
        (
            "revoke",
            status_code(
                c.revoke_key(id, &RevokeKeyRequest::default())
                    .await
                    .unwrap_err(),
            ),
        ),
        (
            "rotate",
            status_code(
                c.rotate_key(id, &RotateKeyRequest::default())
                    .await
                    .unwrap_err(),
            ),
        ),
    ]);
    out
}

#[tokio::test]
async fn another_organisations_key_is_not_found() {
    let app = TestApp::spawn().await;
    let key = app
        .owner
        .create_key(&CreateKeyRequest {
            name: "acme".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let other = app.admin("Globex", "owner@globex.test", Role::Owner).await;
    let before = key_count(&app).await;

    let e = other.get_key(key.key.id).await.unwrap_err();
    assert_eq!(status_code(e), (404, "key_not_found".into()));
    for (op, outcome) in writes(&other, key.key.id, false).await {
        assert_eq!(outcome, (404, "key_not_found".into()), "{op}");
    }
    assert!(
        other
            .list_all_keys(&Default::default())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        other
            .audit(&Default::default())
            .await
            .unwrap()
            .items
            .iter()
            .all(|e| e.org_id != key.key.org_id)
    );
    assert_eq!(key_count(&app).await, before);
    let unchanged = app.owner.get_key(key.key.id).await.unwrap();
    assert_eq!(unchanged, app.owner.get_key(key.key.id).await.unwrap());
    assert_eq!(unchanged.name, "acme");
}

#[tokio::test]
async fn viewers_read_but_cannot_write() {
    let app = TestApp::spawn().await;
    let key = app
        .owner
        .create_key(&CreateKeyRequest {
            name: "acme".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let viewer = app.admin("Acme", "viewer@acme.test", Role::Viewer).await;
    let before = key_count(&app).await;

    assert_eq!(viewer.get_key(key.key.id).await.unwrap().id, key.key.id);
    assert_eq!(
        viewer
            .list_keys(&Default::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    assert!(
        !viewer
            .audit(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(viewer.verify_audit().await.unwrap().ok);
    for (op, outcome) in writes(&viewer, key.key.id, true).await {
        assert_eq!(outcome, (403, "forbidden".into()), "{op}");
    }
    assert_eq!(key_count(&app).await, before);
    assert_eq!(
        app.owner.get_key(key.key.id).await.unwrap().status,
        keyward_core::KeyStatus::Active
    );

    // An admin (not only the owner) may write.
    let admin = app.admin("Acme", "admin@acme.test", Role::Admin).await;
    admin
        .create_key(&CreateKeyRequest {
            name: "by admin".into(),
            ..Default::default()
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn no_session_no_access_and_logout_ends_the_session() {
    let app = TestApp::spawn().await;
    let key = app
        .owner
        .create_key(&CreateKeyRequest {
            name: "acme".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let id = key.key.id;

    let forged = app.anon.with_session(SecretString::from(
        "kws_notarealsessiontokenatallxxxxxxxxxxxxxxxxx",
    ));
    let garbage = app
        .anon
        .with_session(SecretString::from("not-a-session-token"));
    for (who, client) in [("forged", &forged), ("garbage", &garbage)] {
        let e = client.list_keys(&Default::default()).await.unwrap_err();
        assert_eq!(e.status().unwrap().as_u16(), 401, "{who}");
        assert_eq!(
            client
                .get_key(id)
                .await
                .unwrap_err()
                .status()
                .unwrap()
                .as_u16(),
            401
        );
        for (op, (status, _)) in writes(client, id, true).await {
            assert_eq!(status, 401, "{who} {op}");
        }
        assert_eq!(
            client
                .audit(&Default::default())
                .await
                .unwrap_err()
                .status()
                .unwrap()
                .as_u16(),
            401
        );
    }
    let raw = reqwest::get(format!("{}/v1/keys", app.anon.base_url()))
        .await
        .unwrap();
    assert_eq!(raw.status(), 401);
    assert!(raw.headers().get("www-authenticate").is_some());

    app.owner.logout().await.unwrap();
    let e = app.owner.list_keys(&Default::default()).await.unwrap_err();
    assert_eq!(status_code(e), (401, "invalid_session".into()));
}

#[tokio::test]
async fn sessions_are_stored_only_as_hashes() {
    let app = TestApp::spawn().await;
    let token = app
        .owner
        .session()
        .map(|s| secrecy::ExposeSecret::expose_secret(s).to_owned())
        .unwrap();
    let stored: Vec<Vec<u8>> = sqlx::query_scalar("SELECT token_hash FROM sessions")
        .fetch_all(app.pool())
        .await
        .unwrap();
    assert!(!stored.is_empty());
    for h in stored {
        assert_eq!(h.len(), 32);
        assert!(!String::from_utf8_lossy(&h).contains(&token));
    }
}
