//! SIGTERM: the real binary stops accepting, finishes, flushes every usage count and exits 0.

use keyward_core::api::{CreateKeyRequest, Role};
use keyward_e2e::{PASSWORD, ServerProcess, TestDb};
use secrecy::SecretString;

#[tokio::test]
async fn sigterm_loses_no_usage_counts() {
    let db = TestDb::new().await;
    let password = SecretString::from(PASSWORD);
    keyward_server::admin::create(
        &db.pool,
        "Acme",
        "owner@acme.test",
        Some(Role::Owner),
        &password,
    )
    .await
    .unwrap();
    // No periodic flush during the test: every count must come from the flush at shutdown.
    let server = ServerProcess::start(&db, &[("KEYWARD_USAGE_FLUSH_INTERVAL_MS", "3600000")]).await;
    let (owner, _) = server
        .client()
        .login("owner@acme.test", &password)
        .await
        .unwrap();
    let key = owner
        .create_key(&CreateKeyRequest {
            name: "busy".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let token = key.token.unwrap();
    let client = server.client();
    let calls = 37;
    let mut handles = Vec::new();
    for _ in 0..calls {
        let (c, t) = (client.clone(), token.clone());
        handles.push(tokio::spawn(async move { c.whoami(&t).await.unwrap() }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let before: Option<i64> = sqlx::query_scalar("SELECT sum(count)::int8 FROM usage_minute")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(before, None, "nothing flushed before the signal");

    let (clean, logs) = server.terminate().await;
    assert!(clean, "exit status 0; log:\n{logs}");
    let after: Option<i64> = sqlx::query_scalar(
        "SELECT sum(count)::int8 FROM usage_minute WHERE key_id = $1 AND outcome = 'valid'",
    )
    .bind(key.key.id.as_uuid())
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(after, Some(calls));
    let last_used: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT last_used_at FROM api_keys WHERE id = $1")
            .bind(key.key.id.as_uuid())
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert!(last_used.is_some());
}
