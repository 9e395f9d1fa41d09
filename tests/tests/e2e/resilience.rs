//! Resilience: a restarted node answers warm keys without argon2 (the fast verifier), and what
//! the verifier does not allow.

use keyward_core::api::CreateKeyRequest;
use keyward_core::{ApiKeyToken, Environment};
use keyward_e2e::{TestApp, TestServer};
use secrecy::SecretString;

const VERIFIER_KEY: &str = "B1lTcGnd5J6iXzP1xR1F0m9Rz3gq0w1Yb0x9Hk0t9lA=";
const OTHER_VERIFIER_KEY: &str = "q0w1Yb0x9Hk0t9lAB1lTcGnd5J6iXzP1xR1F0m9Rz3g=";

fn with_key(key: &'static str) -> impl FnOnce(&mut keyward_server::Config) {
    move |c| c.verifier_key = Some(SecretString::from(key))
}

#[tokio::test]
async fn a_restarted_node_verifies_known_keys_without_argon2() {
    let app = TestApp::spawn_with(with_key(VERIFIER_KEY)).await;
    let minted = app
        .owner
        .create_key(&CreateKeyRequest {
            name: "minted".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let token = minted.token.unwrap();
    let id = minted.key.id;
    // An offline-made key (the server never saw its token) gets its verifier at first use.
    let offline_id = keyward_core::KeyId::new();
    let offline = ApiKeyToken::generate(Environment::Live, offline_id);
    app.owner
        .create_key(&CreateKeyRequest {
            name: "offline".into(),
            id: Some(offline_id),
            secret_hash: Some(keyward_core::hash::hash_token(&offline)),
            ..Default::default()
        })
        .await
        .unwrap();
    app.anon.whoami(offline.expose_secret()).await.unwrap();
    let stored = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM api_keys WHERE verifier IS NOT NULL")
            .fetch_one(app.pool())
            .await
            .unwrap()
    };
    assert!(
        keyward_e2e::eventually(std::time::Duration::from_secs(10), || async {
            stored().await == 2
        })
        .await,
        "both keys have a verifier"
    );
    // From now on argon2 could not accept these tokens at all: the hashes are destroyed. Only
    // the verifier can.
    sqlx::query("UPDATE api_keys SET secret_hash = '$argon2id$v=19$m=19456,t=2,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'")
        .execute(app.pool())
        .await
        .unwrap();
    let restarted = TestServer::start(&app.db, with_key(VERIFIER_KEY)).await;
    let client = restarted.client();
    assert_eq!(client.whoami(&token).await.unwrap().key_id, id);
    client.whoami(offline.expose_secret()).await.unwrap();
    // A wrong secret is refused by the verifier too (no argon2, no throttling).
    for _ in 0..20 {
        let forged = ApiKeyToken::generate(Environment::Live, id);
        assert_eq!(
            client
                .whoami(forged.expose_secret())
                .await
                .unwrap_err()
                .code(),
            Some("invalid_key")
        );
    }
    // Without the key (or with another one: the server secret was rotated) the stored verifiers
    // are useless and argon2 decides, here against the destroyed hash.
    for config in [None, Some(OTHER_VERIFIER_KEY)] {
        let node = TestServer::start(&app.db, move |c| {
            c.verifier_key = config.map(SecretString::from);
        })
        .await;
        assert_eq!(
            node.client().whoami(&token).await.unwrap_err().code(),
            Some("invalid_key"),
            "{config:?}"
        );
    }
    // The verifier is never shown: not in the key, not in a sync pull.
    let pulled = app.owner.pull(0, None).await.unwrap();
    let text = serde_json::to_string(&pulled).unwrap();
    assert!(!text.contains("verifier"), "{text}");
}
