//! No plaintext key, session token or password reaches the database or the logs: a full
//! `pg_dump` and the server's debug logs are scanned for every secret the test handled.

use keyward_core::api::{CreateKeyRequest, RotateKeyRequest, VerifyRequest};
use keyward_e2e::{ServerProcess, TestDb, server_binary};
use secrecy::SecretString;
use std::io::Write;

#[tokio::test]
async fn secrets_never_reach_the_database_or_the_logs() {
    let db = TestDb::new().await;
    let password = "plaintext-password-for-scan-7Qx";
    let wrong_password = "wrong-password-for-scan-9Zk";

    // The admin is made by the CLI, password on stdin.
    let mut child = std::process::Command::new(server_binary())
        .args([
            "admin",
            "create",
            "--org",
            "Acme",
            "--email",
            "owner@acme.test",
        ])
        .env("DATABASE_URL", &db.url)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut cli_output =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);

    let server = ServerProcess::start(&db, &[("RUST_LOG", "debug")]).await;
    let anon = server.client();
    let _ = anon
        .login("owner@acme.test", &SecretString::from(wrong_password))
        .await
        .unwrap_err();
    let (owner, session) = anon
        .login("owner@acme.test", &SecretString::from(password))
        .await
        .unwrap();
    let created = owner
        .create_key(&CreateKeyRequest {
            name: "scan".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let token = created.token.unwrap();
    anon.whoami(&token).await.unwrap();
    let rotated = owner
        .rotate_key(
            created.key.id,
            &RotateKeyRequest {
                grace_seconds: Some(0),
            },
        )
        .await
        .unwrap();
    let _ = anon.whoami(&token).await.unwrap_err();
    anon.whoami(&rotated.token).await.unwrap();
    // A wrong secret for a real id, and the key in a /v1/verify body.
    let wrong =
        keyward_core::ApiKeyToken::generate(keyward_core::Environment::Live, rotated.key.id);
    let _ = anon.whoami(wrong.expose_secret()).await.unwrap_err();
    anon.verify(&VerifyRequest {
        key: rotated.token.clone(),
        scope: None,
        cost: None,
        client_ip: None,
    })
    .await
    .unwrap();
    owner.logout().await.unwrap();
    let (clean, logs) = server.terminate().await;
    assert!(clean);

    let dump = std::process::Command::new("pg_dump")
        .arg("--dbname")
        .arg(&db.url)
        .output()
        .expect("pg_dump");
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let dump = String::from_utf8_lossy(&dump.stdout).into_owned();
    assert!(dump.contains("scan"), "the dump holds the data");
    assert!(logs.contains("request"), "debug logs were captured");
    cli_output.push_str(&logs);

    let secrets = [
        ("password", password.to_owned()),
        ("wrong password", wrong_password.to_owned()),
        ("session token", session.token.clone()),
        ("first token", token.clone()),
        ("rotated token", rotated.token.clone()),
        ("wrong token", wrong.expose_secret().to_owned()),
        // The secret part alone (everything after the id) must not appear either.
        ("first secret", token[31..].to_owned()),
        ("rotated secret", rotated.token[31..].to_owned()),
    ];
    for (what, secret) in &secrets {
        assert!(!dump.contains(secret.as_str()), "{what} found in pg_dump");
        assert!(
            !cli_output.contains(secret.as_str()),
            "{what} found in the logs"
        );
    }
}
