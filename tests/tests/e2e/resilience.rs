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

/// A TCP proxy to PostgreSQL that the test can cut (every connection closed, new ones closed at
/// once) and restore.
struct CutProxy {
    addr: std::net::SocketAddr,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    links: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl CutProxy {
    async fn start(target: String) -> CutProxy {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let proxy = CutProxy {
            addr,
            cut: Default::default(),
            links: Default::default(),
        };
        let (cut, links) = (proxy.cut.clone(), proxy.links.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if cut.load(Ordering::SeqCst) {
                    continue; // dropped: the connection closes at once
                }
                let target = target.clone();
                let link = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                links.lock().unwrap().push(link.abort_handle());
            }
        });
        proxy
    }

    fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    fn restore(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_database_outage_answers_503_database_unavailable_not_500() {
    let app = TestApp::spawn().await;
    let mut url = reqwest::Url::parse(&app.db.url).unwrap();
    let target = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432));
    let proxy = CutProxy::start(target).await;
    url.set_port(Some(proxy.addr.port())).unwrap();
    url.set_host(Some("127.0.0.1")).unwrap();
    let proxied = url.to_string();
    let node = TestServer::start(&app.db, move |c| {
        c.database_url = Some(SecretString::from(proxied));
    })
    .await;
    let session = app.owner.session().unwrap().clone();
    let owner = node.client().with_session(session);
    owner.list_keys(&Default::default()).await.unwrap();

    proxy.cut();
    assert!(
        keyward_e2e::eventually(std::time::Duration::from_secs(20), || async {
            owner
                .list_keys(&Default::default())
                .await
                .is_err_and(|e| e.code() == Some("database_unavailable"))
        })
        .await,
        "an admin read during the outage answers database_unavailable: {:?}",
        owner.list_keys(&Default::default()).await
    );
    let e = owner.list_keys(&Default::default()).await.unwrap_err();
    assert_eq!(e.status().unwrap().as_u16(), 503, "{e:?}");
    match &e {
        keyward_client::ClientError::Api { retry_after, .. } => assert!(retry_after.is_some()),
        other => panic!("{other:?}"),
    }
    assert!(
        node.client().readyz().await.is_err(),
        "not ready while the database is away"
    );

    proxy.restore();
    assert!(
        keyward_e2e::eventually(std::time::Duration::from_secs(30), || async {
            owner.list_keys(&Default::default()).await.is_ok()
        })
        .await,
        "admin reads work again once the database is back"
    );
}
