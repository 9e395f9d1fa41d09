//! Audit tamper evidence that survives a database writer: with `KEYWARD_AUDIT_SIGNING_KEY` the
//! server signs each organisation's chain head, so truncating the log, deleting its tail or
//! resetting or forging the head is reported by `/v1/audit/verify` and `verify-audit`; and the
//! desktop replica, a witness of the heads it pulled, raises an alarm when the server's chain
//! goes back, even to an older head the server really signed.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use keyward_core::api::{AuditVerifyReport, CreateKeyRequest};
use keyward_core::audit_head::HeadSigner;
use keyward_e2e::{TestApp, TestDb, server_binary};
use keyward_replica::{AuditAlarmKind, NoticeKind, Replica, SyncEngine};

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn seed() -> String {
    B64.encode([0x5a; 32])
}

fn public_key() -> String {
    HeadSigner::from_base64(&seed())
        .unwrap()
        .public_key()
        .to_base64()
}

async fn signed_app() -> TestApp {
    TestApp::spawn_with(|c| {
        c.audit_signer = Some(Arc::new(HeadSigner::from_base64(&seed()).unwrap()));
    })
    .await
}

async fn create_keys(app: &TestApp, n: usize) {
    for i in 0..n {
        app.owner
            .create_key(&CreateKeyRequest {
                name: format!("k{i}"),
                ..Default::default()
            })
            .await
            .unwrap();
    }
}

/// Runs `sql` as a database writer would: with the append-only trigger out of the way.
async fn as_db_writer(app: &TestApp, sql: &str) {
    let mut tx = app.pool().begin().await.unwrap();
    sqlx::query("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::raw_sql(sql).execute(&mut *tx).await.unwrap();
    sqlx::query("ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_update")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

fn reason(report: &AuditVerifyReport) -> String {
    assert!(!report.ok, "tampering went unnoticed: {report:?}");
    report.first_broken.as_ref().unwrap().reason.clone()
}

fn verify_audit_cli(db: &TestDb, key: Option<&str>) -> (bool, String) {
    let mut cmd = std::process::Command::new(server_binary());
    cmd.arg("verify-audit").env("DATABASE_URL", &db.url);
    if let Some(key) = key {
        cmd.env("KEYWARD_AUDIT_SIGNING_KEY", key);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[tokio::test]
async fn a_signed_head_survives_truncation_and_a_reset_head_is_refused() {
    let app = signed_app().await;
    create_keys(&app, 3).await;

    let report = app.owner.verify_audit().await.unwrap();
    assert!(report.ok, "{report:?}");
    assert!(report.signed);
    assert_eq!(report.public_key.as_deref(), Some(public_key().as_str()));
    let head = report.head.clone().unwrap();
    assert_eq!(head.seq, 5, "admin.create, auth.login, 3 x key.create");
    assert_eq!(u64::try_from(head.seq).unwrap(), report.checked);
    assert!(head.signature.is_some());
    let detail = app.server.client().readyz_detail().await.unwrap();
    assert_eq!(detail["audit"]["mode"], "signed");
    assert_eq!(detail["audit"]["public_key"], public_key());
    assert!(verify_audit_cli(&app.db, Some(&seed())).0);

    // TRUNCATE skips the row trigger: the log is gone, the signed head says 5.
    as_db_writer(&app, "TRUNCATE audit_log").await;
    let report = app.owner.verify_audit().await.unwrap();
    let why = reason(&report);
    assert!(why.contains("entries were deleted"), "{why}");
    assert!(report.signed, "the head itself is genuine");
    assert_eq!(report.checked, 0);

    // The head reset to match the empty log, its old signature left in place.
    as_db_writer(
        &app,
        &format!("UPDATE audit_heads SET seq = 0, hash = '{GENESIS}'"),
    )
    .await;
    let report = app.owner.verify_audit().await.unwrap();
    let why = reason(&report);
    assert!(why.contains("does not verify"), "{why}");
    assert!(!report.signed);
    let (ok, out) = verify_audit_cli(&app.db, Some(&seed()));
    assert!(!ok);
    assert!(out.contains("does not verify"), "{out}");
    // Without the key the command cannot tell, and says it did not check.
    let (ok, out) = verify_audit_cli(&app.db, None);
    assert!(ok, "{out}");
    assert!(out.contains("not checked for a signature"), "{out}");

    // ... its signature removed.
    as_db_writer(&app, "UPDATE audit_heads SET signature = NULL").await;
    let why = reason(&app.owner.verify_audit().await.unwrap());
    assert!(why.contains("is not signed"), "{why}");

    // ... or the head deleted with the log.
    as_db_writer(&app, "DELETE FROM audit_heads").await;
    let why = reason(&app.owner.verify_audit().await.unwrap());
    assert!(why.contains("no signed chain head"), "{why}");
}

#[tokio::test]
async fn a_deleted_tail_or_a_forged_head_is_refused() {
    let app = signed_app().await;
    create_keys(&app, 3).await;

    // The last entry deleted: the signed head still names it.
    as_db_writer(&app, "DELETE FROM audit_log WHERE seq = 5").await;
    let why = reason(&app.owner.verify_audit().await.unwrap());
    assert!(why.contains("entries were deleted"), "{why}");

    // The head moved back to the new last entry to match, with the old signature.
    as_db_writer(
        &app,
        "UPDATE audit_heads h SET seq = l.seq, hash = l.hash FROM audit_log l
          WHERE l.org_id = h.org_id AND l.seq = 4",
    )
    .await;
    let report = app.owner.verify_audit().await.unwrap();
    let why = reason(&report);
    assert!(why.contains("does not verify"), "{why}");
    assert_eq!(report.first_broken.unwrap().seq, 4);

    // ... signed with a key of the writer's own.
    let head = report.head.unwrap();
    let forged = HeadSigner::from_seed(&[1; 32]).sign(head.org_id, head.seq, &head.hash);
    as_db_writer(
        &app,
        &format!("UPDATE audit_heads SET signature = '{forged}'"),
    )
    .await;
    let why = reason(&app.owner.verify_audit().await.unwrap());
    assert!(why.contains("does not verify"), "{why}");
}

#[tokio::test]
async fn without_a_key_the_server_says_the_log_is_unsigned_and_production_refuses_to_start() {
    let app = TestApp::spawn().await;
    let report = app.owner.verify_audit().await.unwrap();
    assert!(report.ok);
    assert!(!report.signed);
    assert_eq!(report.public_key, None);
    assert!(report.head.unwrap().signature.is_none());
    let detail = app.server.client().readyz_detail().await.unwrap();
    assert_eq!(detail["audit"]["mode"], "unsigned");

    // Production: refused before it touches anything, with the reason.
    let out = std::process::Command::new(server_binary())
        .arg("serve")
        .env("DATABASE_URL", &app.db.url)
        .env("KEYWARD_BIND", "127.0.0.1:0")
        .env("KEYWARD_PRODUCTION", "true")
        .env_remove("KEYWARD_AUDIT_SIGNING_KEY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("KEYWARD_AUDIT_SIGNING_KEY is required in production"),
        "{stderr}"
    );
    // A key that is not a key is refused too.
    let out = std::process::Command::new(server_binary())
        .arg("serve")
        .env("DATABASE_URL", &app.db.url)
        .env("KEYWARD_AUDIT_SIGNING_KEY", "dG9vIHNob3J0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is 9 bytes, not 32"), "{stderr}");

    // And a configuration built in code is checked the same way.
    let mut config = keyward_server::Config::for_database(app.db.url.clone());
    config.production = true;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = keyward_server::serve(config, listener, Default::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("required in production"), "{err}");
}

#[tokio::test]
async fn the_desktop_raises_an_alarm_when_the_servers_chain_goes_back() {
    let app = signed_app().await;
    create_keys(&app, 2).await;
    let replica = Replica::in_memory().await.unwrap();
    let engine = SyncEngine::new(replica.clone(), app.owner.clone());
    engine.sync_once().await.unwrap();
    let org = app.owner.verify_audit().await.unwrap().head.unwrap().org_id;
    let first = replica.audit_witness(org).await.unwrap().unwrap();
    assert_eq!(first.seq, 4);
    assert_eq!(first.public_key.as_deref(), Some(public_key().as_str()));

    // Honest growth moves the witness on and raises nothing.
    create_keys(&app, 1).await;
    engine.sync_once().await.unwrap();
    let seen = replica.audit_witness(org).await.unwrap().unwrap();
    assert_eq!(seen.seq, 5);
    assert!(replica.audit_alarms().await.unwrap().is_empty());

    // A database writer truncates the log and resets the head.
    as_db_writer(
        &app,
        &format!(
            "TRUNCATE audit_log; UPDATE audit_heads SET seq = 0, hash = '{GENESIS}', signature = NULL"
        ),
    )
    .await;
    engine.sync_once().await.unwrap();
    let alarms = replica.audit_alarms().await.unwrap();
    assert_eq!(alarms.len(), 1, "{alarms:?}");
    assert_eq!(alarms[0].kind, AuditAlarmKind::ChainRegressed);
    assert_eq!(alarms[0].kind.as_str(), "audit.chain_regressed");
    assert_eq!(
        (alarms[0].witnessed_seq, alarms[0].reported_seq),
        (Some(5), 0)
    );
    assert!(alarms[0].detail.contains("entry 5"), "{}", alarms[0].detail);
    assert_eq!(
        replica.audit_witness(org).await.unwrap().unwrap(),
        seen,
        "a shorter chain never replaces the witness"
    );

    // Notified first, and once.
    let notices = replica.notices_to_show(chrono::Utc::now()).await.unwrap();
    assert_eq!(notices[0].kind, NoticeKind::Audit);
    assert_eq!(notices[0].title, "Audit log shortened on the server");
    replica
        .mark_notified(&notices, chrono::Utc::now())
        .await
        .unwrap();
    engine.sync_once().await.unwrap();
    assert_eq!(replica.audit_alarms().await.unwrap().len(), 1);
    assert!(
        replica
            .notices_to_show(chrono::Utc::now())
            .await
            .unwrap()
            .iter()
            .all(|n| n.kind != NoticeKind::Audit)
    );

    // The server writes the chain anew past the witnessed length: it does not continue from
    // the head the desktop saw.
    create_keys(&app, 6).await;
    engine.sync_once().await.unwrap();
    let alarms = replica.audit_alarms().await.unwrap();
    assert!(
        alarms.iter().any(|a| a.kind == AuditAlarmKind::ChainForked),
        "{alarms:?}"
    );
    assert_eq!(replica.audit_witness(org).await.unwrap().unwrap(), seen);
}

#[tokio::test]
async fn an_older_signed_head_put_back_passes_the_server_but_not_the_witness() {
    let app = signed_app().await;
    create_keys(&app, 1).await;
    let old = app.owner.verify_audit().await.unwrap().head.unwrap();
    create_keys(&app, 2).await;
    let replica = Replica::in_memory().await.unwrap();
    let engine = SyncEngine::new(replica.clone(), app.owner.clone());
    engine.sync_once().await.unwrap();
    assert_eq!(
        replica
            .audit_witness(old.org_id)
            .await
            .unwrap()
            .unwrap()
            .seq,
        old.seq + 2
    );

    // The writer kept an old signed head: entries after it deleted, the head put back.
    as_db_writer(
        &app,
        &format!(
            "DELETE FROM audit_log WHERE seq > {seq};
             UPDATE audit_heads SET seq = {seq}, hash = '{hash}', signature = '{sig}'",
            seq = old.seq,
            hash = old.hash,
            sig = old.signature.as_deref().unwrap(),
        ),
    )
    .await;
    let report = app.owner.verify_audit().await.unwrap();
    assert!(
        report.ok && report.signed,
        "the server alone cannot tell: {report:?}"
    );

    engine.sync_once().await.unwrap();
    let alarms = replica.audit_alarms().await.unwrap();
    assert_eq!(alarms.len(), 1, "{alarms:?}");
    assert_eq!(alarms[0].kind, AuditAlarmKind::ChainRegressed);
    assert_eq!(alarms[0].reported_seq, old.seq);
}
