//! The audit log is append-only and hash-chained: edits and deletions are refused by the
//! database, and when someone gets past that (a superuser disabling the trigger), the chain
//! check names the first broken entry — through the API and the `verify-audit` command.

use keyward_core::api::CreateKeyRequest;
use keyward_e2e::{TestApp, server_binary};

async fn tamper(app: &TestApp, sql: &str) {
    let mut tx = app.pool().begin().await.unwrap();
    sqlx::query("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query(sql).execute(&mut *tx).await.unwrap();
    sqlx::query("ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_update")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

fn verify_audit_cli(app: &TestApp) -> (bool, String) {
    let out = std::process::Command::new(server_binary())
        .arg("verify-audit")
        .env("DATABASE_URL", &app.db.url)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test]
async fn tampering_is_refused_or_detected() {
    let app = TestApp::spawn().await;
    for i in 0..3 {
        app.owner
            .create_key(&CreateKeyRequest {
                name: format!("k{i}"),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let report = app.owner.verify_audit().await.unwrap();
    assert!(report.ok);
    assert!(
        report.checked >= 5,
        "admin.create, auth.login, 3 x key.create: {report:?}"
    );
    assert!(verify_audit_cli(&app).0);

    // The database itself refuses edits and deletions: the append-only trigger raises (not a
    // permission, syntax or connection error), and nothing changed.
    async fn entries(pool: &sqlx::PgPool) -> Vec<(i64, String)> {
        sqlx::query_as("SELECT seq, action FROM audit_log ORDER BY seq")
            .fetch_all(pool)
            .await
            .unwrap()
    }
    let before = entries(app.pool()).await;
    for sql in ["UPDATE audit_log SET action = 'x'", "DELETE FROM audit_log"] {
        let err = sqlx::query(sql).execute(app.pool()).await.unwrap_err();
        let db = err
            .as_database_error()
            .unwrap_or_else(|| panic!("{sql}: not a database error: {err}"));
        assert_eq!(
            db.code().as_deref(),
            Some("P0001"),
            "{sql}: raised by the trigger: {db}"
        );
        assert_eq!(db.message(), "audit_log is append-only", "{sql}");
    }
    assert_eq!(entries(app.pool()).await, before, "no entry changed");

    // An edit past the trigger is found at its entry.
    tamper(
        &app,
        "UPDATE audit_log SET after = jsonb_set(after, '{name}', '\"renamed\"') WHERE seq = 4",
    )
    .await;
    let report = app.owner.verify_audit().await.unwrap();
    assert!(!report.ok);
    let broken = report.first_broken.unwrap();
    assert_eq!(broken.seq, 4);
    assert!(broken.reason.contains("edited"), "{}", broken.reason);
    let (ok, out) = verify_audit_cli(&app);
    assert!(!ok);
    assert!(out.contains("at entry 4"), "{out}");
}

#[tokio::test]
async fn deleted_entries_are_detected() {
    let app = TestApp::spawn().await;
    for i in 0..3 {
        app.owner
            .create_key(&CreateKeyRequest {
                name: format!("k{i}"),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    tamper(&app, "DELETE FROM audit_log WHERE seq = 3").await;
    let broken = app
        .owner
        .verify_audit()
        .await
        .unwrap()
        .first_broken
        .unwrap();
    assert_eq!(broken.seq, 3);

    let app = TestApp::spawn().await;
    app.owner
        .create_key(&CreateKeyRequest {
            name: "k".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let last: i64 = sqlx::query_scalar("SELECT max(seq) FROM audit_log")
        .fetch_one(app.pool())
        .await
        .unwrap();
    tamper(&app, &format!("DELETE FROM audit_log WHERE seq = {last}")).await;
    let report = app.owner.verify_audit().await.unwrap();
    assert!(!report.ok, "a deleted tail is found through the chain head");
}

#[tokio::test]
async fn entries_say_who_what_when_and_from_where() {
    let app = TestApp::spawn().await;
    let created = app
        .owner
        .create_key(&CreateKeyRequest {
            name: "traced".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let entries = app.owner.audit(&Default::default()).await.unwrap().items;
    let e = entries.iter().find(|e| e.action == "key.create").unwrap();
    assert_eq!(e.actor_email.as_deref(), Some("owner@acme.test"));
    assert_eq!(
        e.target_id.as_deref(),
        Some(created.key.id.to_string().as_str())
    );
    assert_eq!(e.client_ip.as_deref(), Some("127.0.0.1"));
    assert!(e.request_id.is_some());
    assert_eq!(e.after.as_ref().unwrap()["name"], "traced");
    let text = serde_json::to_string(&entries).unwrap();
    assert!(
        !text.contains(created.token.as_deref().unwrap()),
        "no token in the audit log"
    );

    // Paging follows the cursor to the end.
    let first = app
        .owner
        .audit(&keyward_core::api::PageQuery {
            limit: Some(1),
            cursor: None,
        })
        .await
        .unwrap();
    let second = app
        .owner
        .audit(&keyward_core::api::PageQuery {
            limit: Some(1),
            cursor: first.next_cursor.clone(),
        })
        .await
        .unwrap();
    assert_eq!(first.items.len(), 1);
    assert_eq!(second.items[0].seq, first.items[0].seq - 1);
}
