//! Two servers on one database: a change made through one node takes effect on the other
//! through LISTEN/NOTIFY, not the key cache's TTL, also after the other node lost its listener
//! connection.

use std::time::Duration;

use keyward_core::api::{CreateKeyRequest, RevokeKeyRequest, RotateKeyRequest, UpdateKeyRequest};
use keyward_e2e::{TestApp, TestServer, eventually};

/// How long a change may take to reach the other node before the test fails. LISTEN/NOTIFY
/// carries it in milliseconds; this only bounds a broken run, and stays far below the key
/// cache's TTL (300 s), which would bring the change without any notification.
const PROPAGATION: Duration = Duration::from_secs(30);

async fn refused_with(client: &keyward_client::KeywardClient, token: &str, code: &str) -> bool {
    client
        .whoami(token)
        .await
        .err()
        .and_then(|e| e.code().map(str::to_owned))
        .as_deref()
        == Some(code)
}

#[tokio::test]
async fn revocation_and_settings_reach_every_node() {
    let app = TestApp::spawn().await;
    let node_b = TestServer::start(&app.db, |_| {}).await;
    let b = node_b.client();
    let created = app
        .owner
        .create_key(&CreateKeyRequest {
            name: "shared".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let token = created.token.unwrap();
    // Warm both caches.
    app.anon.whoami(&token).await.unwrap();
    b.whoami(&token).await.unwrap();

    app.owner
        .revoke_key(created.key.id, &RevokeKeyRequest::default())
        .await
        .unwrap();
    assert!(eventually(PROPAGATION, || refused_with(&b, &token, "key_revoked")).await);

    // Settings changes travel the same way.
    let other = app
        .owner
        .create_key(&CreateKeyRequest {
            name: "other".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let other_token = other.token.unwrap();
    b.whoami(&other_token).await.unwrap();
    app.owner
        .update_key(
            other.key.id,
            &UpdateKeyRequest {
                allowed_ips: Some(vec!["192.0.2.0/24".into()]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(
        eventually(PROPAGATION, || refused_with(
            &b,
            &other_token,
            "ip_not_allowed"
        ))
        .await
    );

    // Immediate rotation of a leaked key.
    app.owner
        .update_key(
            other.key.id,
            &UpdateKeyRequest {
                allowed_ips: Some(vec![]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(
        eventually(PROPAGATION, || async {
            b.whoami(&other_token).await.is_ok()
        })
        .await
    );
    let rotated = app
        .owner
        .rotate_key(
            other.key.id,
            &RotateKeyRequest {
                grace_seconds: Some(0),
            },
        )
        .await
        .unwrap();
    assert!(
        eventually(PROPAGATION, || refused_with(
            &b,
            &other_token,
            "key_revoked"
        ))
        .await
    );
    b.whoami(&rotated.token).await.unwrap();
    node_b.stop().await;
}

#[tokio::test]
async fn a_node_that_lost_its_listener_does_not_serve_stale_keys() {
    let app = TestApp::spawn().await;
    let node_b = TestServer::start(&app.db, |_| {}).await;
    let b = node_b.client();
    let created = app
        .owner
        .create_key(&CreateKeyRequest {
            name: "k".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let token = created.token.unwrap();
    b.whoami(&token).await.unwrap();

    // Cut every LISTEN connection (both nodes'), then revoke at once.
    let cut: Vec<i32> = sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query ILIKE 'LISTEN%' AND pid <> pg_backend_pid()",
    )
    .fetch_all(app.pool())
    .await
    .unwrap();
    assert!(!cut.is_empty(), "the nodes listen for key changes");
    for pid in &cut {
        sqlx::query("SELECT pg_terminate_backend($1)")
            .bind(pid)
            .execute(app.pool())
            .await
            .unwrap();
    }
    app.owner
        .revoke_key(created.key.id, &RevokeKeyRequest::default())
        .await
        .unwrap();
    assert!(eventually(PROPAGATION, || refused_with(&b, &token, "key_revoked")).await);

    // And it listens again: a later change still arrives.
    let relistening = eventually(PROPAGATION, || async {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query ILIKE 'LISTEN%'",
        )
        .fetch_one(app.pool())
        .await
        .unwrap();
        n >= 2
    })
    .await;
    assert!(relistening);
    let second = app
        .owner
        .create_key(&CreateKeyRequest {
            name: "k2".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let second_token = second.token.unwrap();
    b.whoami(&second_token).await.unwrap();
    app.owner
        .revoke_key(second.key.id, &RevokeKeyRequest::default())
        .await
        .unwrap();
    assert!(
        eventually(PROPAGATION, || refused_with(
            &b,
            &second_token,
            "key_revoked"
        ))
        .await
    );
    node_b.stop().await;
}
