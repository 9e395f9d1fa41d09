//! `keyward-server admin create` and `demo` against a real database.

use std::io::Write;
use std::process::{Command, Stdio};

use keyward_e2e::{TestDb, server_binary};

fn admin_create(db: &TestDb, args: &[&str], password: &str) -> (i32, String, String) {
    let mut child = Command::new(server_binary())
        .args(["admin", "create"])
        .args(args)
        .env("DATABASE_URL", &db.url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn admins(db: &TestDb) -> Vec<(String, String)> {
    sqlx::query_as("SELECT email, role FROM admins ORDER BY created_at")
        .fetch_all(&db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn admin_create_validates_and_changes_nothing_on_refusal() {
    let db = TestDb::new().await;
    let good = "a long enough password";
    let (code, out, _) = admin_create(&db, &["--org", "Acme", "--email", "Ada@Acme.test"], good);
    assert_eq!(code, 0);
    assert!(
        out.trim().parse::<uuid::Uuid>().is_ok(),
        "prints the admin id: {out}"
    );
    let (code, _, _) = admin_create(&db, &["--org", "Acme", "--email", "bob@acme.test"], good);
    assert_eq!(code, 0);
    assert_eq!(
        admins(&db).await,
        vec![
            ("ada@acme.test".into(), "owner".into()),
            ("bob@acme.test".into(), "admin".into())
        ],
        "the first admin of an org is its owner, later ones admins"
    );

    for (case, args, password, message) in [
        (
            "bad email",
            vec!["--org", "Acme", "--email", "not-an-email"],
            good,
            "email",
        ),
        (
            "short password",
            vec!["--org", "Acme", "--email", "c@acme.test"],
            "short",
            "password",
        ),
        (
            "duplicate",
            vec!["--org", "Other", "--email", "ada@acme.test"],
            good,
            "already exists",
        ),
        (
            "blank org",
            vec!["--org", "  ", "--email", "d@acme.test"],
            good,
            "org",
        ),
    ] {
        let (code, _, err) = admin_create(&db, &args, password);
        assert_ne!(code, 0, "{case}");
        assert!(err.contains(message), "{case}: {err}");
        assert!(!err.contains(password), "{case}: the password is echoed");
    }
    let (code, _, err) = admin_create(
        &db,
        &["--org", "Acme", "--email", "e@acme.test", "--role", "god"],
        good,
    );
    assert_ne!(code, 0);
    assert!(err.contains("role"), "{err}");
    assert_eq!(admins(&db).await.len(), 2, "refusals wrote nothing");
    let orgs: i64 = sqlx::query_scalar("SELECT count(*) FROM orgs")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(orgs, 1);
}

#[tokio::test]
async fn demo_is_idempotent_and_its_keys_work() {
    let db = TestDb::new().await;
    let run = || {
        let out = Command::new(server_binary())
            .args(["demo", "--json"])
            .env("DATABASE_URL", &db.url)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let first = run();
    let counts = || async {
        let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM api_keys")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        let usage: i64 = sqlx::query_scalar("SELECT count(*) FROM usage_minute")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        let audit: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        let detail: (i64, i64) = sqlx::query_as(
            "SELECT (SELECT coalesce(sum(calls), 0)::int8 FROM gateway_usage_hour),
                    (SELECT count(*) FROM key_networks)",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        (keys, usage, audit, detail)
    };
    let after_first = counts().await;
    let second = run();
    assert_eq!(first, second, "the same output twice");
    assert_eq!(counts().await.0, after_first.0, "no duplicate keys");
    assert_eq!(
        counts().await.2,
        after_first.2,
        "no duplicate audit entries"
    );
    assert!(after_first.1 > 1000, "weeks of usage");
    assert_eq!(
        counts().await.3,
        after_first.3,
        "gateway and networks seeded once"
    );
    assert!(
        after_first.3.0 > 5000 && after_first.3.1 == 6,
        "{:?}",
        after_first.3
    );

    let statuses: Vec<&str> = first["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["status"].as_str().unwrap())
        .collect();
    for s in ["active", "revoked", "expired", "disabled"] {
        assert!(statuses.contains(&s), "a key in state {s}: {statuses:?}");
    }
    let server = keyward_e2e::TestServer::start(&db, |_| {}).await;
    let client = server.client();
    for k in first["keys"].as_array().unwrap() {
        let token = k["token"].as_str().unwrap();
        let answer = client.whoami(token).await;
        assert_eq!(
            answer.is_ok(),
            k["status"] == "active",
            "{}: {answer:?}",
            k["name"]
        );
    }
    let (owner, _) = client
        .login(
            first["email"].as_str().unwrap(),
            &secrecy::SecretString::from(first["password"].as_str().unwrap().to_owned()),
        )
        .await
        .unwrap();
    assert!(owner.verify_audit().await.unwrap().ok);
    // The production key's gateway week: p50 near the demo's medians (20 to 80 ms).
    let gw = owner
        .gateway_usage(&keyward_core::api::GatewayQuery::default())
        .await
        .unwrap();
    let total = &gw.groups[0];
    let p50 = total.latency_p50_ms.unwrap();
    assert!(
        total.calls > 500 && (15.0..100.0).contains(&p50),
        "{total:?}"
    );
}
