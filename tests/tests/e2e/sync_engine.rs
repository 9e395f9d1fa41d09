//! The desktop sync engine against a real server and PostgreSQL: pulls catch the replica up,
//! offline work reaches the server exactly once, refusals show on the affected key, and after a
//! full sync the replica holds what the server holds.

use std::time::Duration;

use keyward_client::KeywardClient;
use keyward_core::api::{
    ApiKey, CreateKeyRequest, ListKeysQuery, OpStatus, PushOp, RevokeKeyRequest, UpdateKeyRequest,
};
use keyward_core::hash::hash_token;
use keyward_core::{ApiKeyToken, Environment, KeyId, KeyStatus};
use keyward_e2e::{TestApp, TestServer};
use keyward_replica::{KeyFilter, LocalKey, Replica, SyncEngine, SyncError};
use proptest::prelude::*;
use uuid::Uuid;

async fn create(client: &KeywardClient, name: &str, scopes: &[&str]) -> ApiKey {
    client
        .create_key(&CreateKeyRequest {
            name: name.into(),
            scopes: Some(scopes.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        })
        .await
        .unwrap()
        .key
}

fn rename(name: &str) -> UpdateKeyRequest {
    UpdateKeyRequest {
        name: Some(name.into()),
        ..Default::default()
    }
}

async fn engine(app: &TestApp) -> SyncEngine {
    SyncEngine::new(Replica::in_memory().await.unwrap(), app.owner.clone())
}

async fn all_local(replica: &Replica) -> Vec<LocalKey> {
    replica.keys(&KeyFilter::default()).await.unwrap()
}

async fn all_server(client: &KeywardClient) -> Vec<ApiKey> {
    client
        .list_all_keys(&ListKeysQuery::default())
        .await
        .unwrap()
}

/// The same session on another server of the same database.
fn signed_in(server: &TestServer, as_: &KeywardClient) -> KeywardClient {
    server.client().with_session(as_.session().unwrap().clone())
}

/// What must agree between replica and server: id, name, status, scopes.
type Summary = Vec<(KeyId, String, KeyStatus, Vec<String>)>;

fn summary<'a>(keys: impl Iterator<Item = &'a ApiKey>) -> Summary {
    let mut s: Summary = keys
        .map(|k| (k.id, k.name.clone(), k.status, k.scopes.to_strings()))
        .collect();
    s.sort_by_key(|k| k.0);
    s
}

#[tokio::test]
async fn a_first_sync_pulls_every_key_and_its_audit_trail() {
    let app = TestApp::spawn().await;
    let ci = create(&app.owner, "ci deploy", &["deploy:write"]).await;
    let billing = create(&app.owner, "billing export", &["billing:read"]).await;
    let old = create(&app.owner, "old integration", &[]).await;
    app.owner
        .revoke_key(old.id, &RevokeKeyRequest::default())
        .await
        .unwrap();
    let engine = engine(&app).await;

    let report = engine.sync_once().await.unwrap();

    let replica = engine.replica();
    assert_eq!(report.applied, 0);
    assert!(report.pulled >= 4, "{report:?}");
    let local = all_local(replica).await;
    assert_eq!(
        summary(local.iter().map(|k| &k.key)),
        summary(all_server(&app.owner).await.iter())
    );
    assert!(local.iter().all(|k| k.on_server && !k.pending && k.seq > 0));
    let revoked = replica.key(old.id).await.unwrap().unwrap();
    assert_eq!(revoked.key.status, KeyStatus::Revoked);
    let trail: Vec<String> = replica
        .audit_for_key(old.id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(trail, ["key.revoke", "key.create"]);
    assert!(replica.key(ci.id).await.unwrap().is_some());
    assert!(replica.key(billing.id).await.unwrap().is_some());
    let status = replica.status().await.unwrap();
    assert!(status.cursor > 0 && status.last_pull_at.is_some() && status.last_error.is_none());
}

#[tokio::test]
async fn later_syncs_pull_only_what_changed() {
    let app = TestApp::spawn().await;
    let ci = create(&app.owner, "ci", &[]).await;
    let engine = engine(&app).await;
    engine.sync_once().await.unwrap();
    let cursor = engine.replica().status().await.unwrap().cursor;

    app.owner
        .update_key(ci.id, &rename("ci (renamed)"))
        .await
        .unwrap();
    let added = create(&app.owner, "added later", &[]).await;
    let report = engine.sync_once().await.unwrap();

    // Two key changes and their two audit entries; nothing from before the cursor.
    assert_eq!(report.pulled, 4, "{report:?}");
    assert!(engine.replica().status().await.unwrap().cursor > cursor);
    let shown = engine.replica().key(ci.id).await.unwrap().unwrap();
    assert_eq!(shown.key.name, "ci (renamed)");
    assert!(engine.replica().key(added.id).await.unwrap().is_some());
    assert_eq!(engine.sync_once().await.unwrap().pulled, 0);
}

#[tokio::test]
async fn pushing_the_same_batch_twice_returns_the_same_answers_and_applies_once() {
    let app = TestApp::spawn().await;
    let existing = create(&app.owner, "existing", &[]).await;
    let id = KeyId::new();
    let token = ApiKeyToken::generate(Environment::Live, id);
    let ops = vec![
        PushOp::CreateKey {
            op_id: Uuid::now_v7(),
            data: CreateKeyRequest {
                name: "offline".into(),
                id: Some(id),
                secret_hash: Some(hash_token(&token)),
                ..Default::default()
            },
        },
        PushOp::UpdateKey {
            op_id: Uuid::now_v7(),
            key_id: existing.id,
            base_seq: None,
            data: rename("renamed"),
        },
        PushOp::RevokeKey {
            op_id: Uuid::now_v7(),
            key_id: existing.id,
            data: RevokeKeyRequest::default(),
        },
    ];

    let first = app.owner.push(&ops).await.unwrap();
    let keys_after_first = all_server(&app.owner).await;
    let audit_after_first = app
        .owner
        .audit(&Default::default())
        .await
        .unwrap()
        .items
        .len();
    let second = app.owner.push(&ops).await.unwrap();

    assert!(
        first.results.iter().all(|r| r.status == OpStatus::Applied),
        "{first:?}"
    );
    assert_eq!(first, second);
    assert_eq!(all_server(&app.owner).await, keys_after_first);
    assert_eq!(keys_after_first.len(), 2);
    assert_eq!(
        app.owner
            .audit(&Default::default())
            .await
            .unwrap()
            .items
            .len(),
        audit_after_first
    );
}

#[tokio::test]
async fn a_key_made_offline_works_once_synced() {
    let app = TestApp::spawn().await;
    let engine = engine(&app).await;
    let replica = engine.replica();
    let (local, token) = replica
        .create_key_offline(CreateKeyRequest {
            name: "made offline".into(),
            scopes: Some(vec!["usage:read".into()]),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        app.owner.whoami(token.expose_secret()).await.is_err(),
        "not yet on the server"
    );

    let report = engine.sync_once().await.unwrap();

    assert_eq!((report.applied, report.rejected), (1, 0));
    assert_eq!(replica.outbox_len().await.unwrap(), 0);
    let who = app.owner.whoami(token.expose_secret()).await.unwrap();
    assert_eq!(who.key_id, local.id);
    let server = app.owner.get_key(local.id).await.unwrap();
    assert_eq!(server.name, "made offline");
    let shown = replica.key(local.id).await.unwrap().unwrap();
    assert!(shown.on_server && !shown.pending && shown.rejection.is_none());
    assert!(shown.seq > 0, "pulled after the push");
    assert_eq!(shown.key.created_by, server.created_by);
}

/// Every byte SQLite keeps for a replica file: the database and its journals.
fn replica_bytes(db: &std::path::Path) -> Vec<u8> {
    ["", "-wal", "-shm", "-journal"]
        .iter()
        .filter_map(|suffix| std::fs::read(format!("{}{suffix}", db.display())).ok())
        .flatten()
        .collect()
}

fn holds(bytes: &[u8], needle: &str) -> bool {
    bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn once_pushed_neither_token_nor_hash_is_left_in_the_replica_file() {
    let app = TestApp::spawn().await;
    let dir = std::env::temp_dir().join(format!("kw-sync-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("replica.db");
    let replica = Replica::open(&path).await.unwrap();
    let engine = SyncEngine::new(replica.clone(), app.owner.clone());
    let (key, token) = replica
        .create_key_offline(CreateKeyRequest {
            name: "offline".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        holds(&replica_bytes(&path), "$argon2id$"),
        "queued until pushed"
    );

    engine.sync_once().await.unwrap();
    replica.close().await;

    let bytes = replica_bytes(&path);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(holds(&bytes, &key.id.to_string()));
    assert!(
        !holds(&bytes, "$argon2id$"),
        "the hash left with its outbox row"
    );
    assert!(!holds(&bytes, token.expose_secret()));
    assert!(!holds(&bytes, &token.expose_secret()[31..53]));
}

#[tokio::test]
async fn a_server_outage_keeps_the_outbox_and_the_retry_applies_everything_once() {
    let TestApp {
        db, server, owner, ..
    } = TestApp::spawn().await;
    let existing = create(&owner, "existing", &[]).await;
    let replica = Replica::in_memory().await.unwrap();
    let engine = SyncEngine::new(replica.clone(), owner.clone()).with_batch_size(2);
    engine.sync_once().await.unwrap();

    // Work done while connected...
    let (first, _) = replica
        .create_key_offline(CreateKeyRequest {
            name: "before the outage".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    engine.sync_once().await.unwrap();
    // ... and queued when the server goes away.
    let mut made = Vec::new();
    for name in ["during 1", "during 2", "during 3"] {
        let (key, token) = replica
            .create_key_offline(CreateKeyRequest {
                name: name.into(),
                ..Default::default()
            })
            .await
            .unwrap();
        made.push((key, token));
    }
    replica
        .update_key(existing.id, rename("renamed offline"))
        .await
        .unwrap();
    replica
        .update_key(existing.id, rename("renamed twice"))
        .await
        .unwrap();
    replica
        .revoke_key(made[0].0.id, RevokeKeyRequest::default())
        .await
        .unwrap();
    server.stop().await;

    let err = engine.sync_once().await.unwrap_err();
    assert!(matches!(err, SyncError::Offline(_)), "{err:?}");
    assert_eq!(replica.outbox_len().await.unwrap(), 6);
    assert!(replica.status().await.unwrap().last_error.is_some());

    // The server comes back elsewhere; the same replica syncs through a new client.
    let server = TestServer::start(&db, |_| {}).await;
    let client = signed_in(&server, &owner);
    let engine = SyncEngine::new(replica.clone(), client.clone()).with_batch_size(2);
    let report = engine.sync_once().await.unwrap();

    assert_eq!((report.applied, report.rejected), (6, 0), "{report:?}");
    assert_eq!(replica.outbox_len().await.unwrap(), 0);
    assert!(replica.status().await.unwrap().last_error.is_none());
    let on_server = all_server(&client).await;
    let mut names: Vec<&str> = on_server.iter().map(|k| k.name.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "before the outage",
            "during 1",
            "during 2",
            "during 3",
            "renamed twice"
        ]
    );
    assert_eq!(
        summary(on_server.iter()),
        summary(all_local(&replica).await.iter().map(|k| &k.key))
    );
    assert!(
        client.whoami(made[0].1.expose_secret()).await.is_err(),
        "revoked"
    );
    assert!(client.whoami(made[1].1.expose_secret()).await.is_ok());
    assert!(replica.key(first.id).await.unwrap().unwrap().on_server);
    // Each change happened once: one create per new key, two renames, one revoke.
    let audit = client.audit(&Default::default()).await.unwrap().items;
    let count = |action: &str| audit.iter().filter(|e| e.action == action).count();
    assert_eq!(
        (
            count("key.create"),
            count("key.update"),
            count("key.revoke")
        ),
        (5, 2, 1)
    );
}

#[tokio::test]
async fn a_revocation_on_the_server_beats_an_offline_edit() {
    let app = TestApp::spawn().await;
    let key = create(&app.owner, "leaked", &["a:read"]).await;
    let engine = engine(&app).await;
    let replica = engine.replica();
    engine.sync_once().await.unwrap();

    replica
        .update_key(key.id, rename("edited offline"))
        .await
        .unwrap();
    app.owner
        .revoke_key(
            key.id,
            &RevokeKeyRequest {
                grace_seconds: None,
                reason: Some("leaked".into()),
            },
        )
        .await
        .unwrap();
    let report = engine.sync_once().await.unwrap();

    assert_eq!((report.applied, report.rejected), (0, 1));
    let shown = replica.key(key.id).await.unwrap().unwrap();
    let rejection = shown.rejection.expect("the refusal shows on the key");
    assert_eq!(rejection.code, "key_revoked");
    assert!(!rejection.detail.is_empty());
    assert_eq!(shown.key.status, KeyStatus::Revoked);
    assert_eq!(shown.key.name, "leaked", "the server's version wins");
    assert!(!shown.pending);
    assert_eq!(app.owner.get_key(key.id).await.unwrap().name, "leaked");

    replica.dismiss_error(key.id).await.unwrap();
    assert!(
        replica
            .key(key.id)
            .await
            .unwrap()
            .unwrap()
            .rejection
            .is_none()
    );
}

#[tokio::test]
async fn an_expired_session_is_unauthorized_and_keeps_the_outbox() {
    let app = TestApp::spawn().await;
    let engine = engine(&app).await;
    engine
        .replica()
        .create_key_offline(CreateKeyRequest {
            name: "queued".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    app.owner.logout().await.unwrap();

    let err = engine.sync_once().await.unwrap_err();

    assert!(matches!(err, SyncError::Unauthorized), "{err:?}");
    assert_eq!(engine.replica().outbox_len().await.unwrap(), 1);
}

// --- property: after random work on both sides and a full sync, both sides agree ---

const NAMES: [&str; 4] = ["alpha", "Beta", "gamma ray", "delta"];
const SCOPES: [&str; 3] = ["a:read", "b:write", "c:*"];

#[derive(Debug, Clone)]
enum Action {
    LocalCreate(usize, usize),
    LocalRename(usize, usize),
    LocalScopes(usize, Vec<usize>),
    LocalDisable(usize, bool),
    LocalRevoke(usize),
    LocalRotate(usize),
    ServerCreate(usize),
    ServerRename(usize, usize),
    ServerRevoke(usize),
}

fn action() -> impl Strategy<Value = Action> {
    let i = 0..16usize;
    prop_oneof![
        (0..4usize, 0..3usize).prop_map(|(n, s)| Action::LocalCreate(n, s)),
        (i.clone(), 0..4usize).prop_map(|(k, n)| Action::LocalRename(k, n)),
        (i.clone(), prop::collection::vec(0..3usize, 0..3))
            .prop_map(|(k, s)| Action::LocalScopes(k, s)),
        (i.clone(), any::<bool>()).prop_map(|(k, d)| Action::LocalDisable(k, d)),
        i.clone().prop_map(Action::LocalRevoke),
        i.clone().prop_map(Action::LocalRotate),
        (0..4usize).prop_map(Action::ServerCreate),
        (i.clone(), 0..4usize).prop_map(|(k, n)| Action::ServerRename(k, n)),
        i.prop_map(Action::ServerRevoke),
    ]
}

/// The `k`-th key (by id) of `ids`, if any.
fn pick(ids: &[KeyId], k: usize) -> Option<KeyId> {
    (!ids.is_empty()).then(|| ids[k % ids.len()])
}

async fn run_actions(actions: Vec<Action>) {
    let app = TestApp::spawn().await;
    for n in 0..3 {
        create(&app.owner, NAMES[n], &[SCOPES[n]]).await;
    }
    let engine = engine(&app).await;
    let replica = engine.replica();
    engine.sync_once().await.unwrap();

    for action in actions {
        let mut local: Vec<KeyId> = all_local(replica).await.iter().map(|k| k.key.id).collect();
        local.sort();
        let mut remote: Vec<KeyId> = all_server(&app.owner).await.iter().map(|k| k.id).collect();
        remote.sort();
        // Refusals (a revoked key, a rotated one) are part of the game: both sides decide.
        match action {
            Action::LocalCreate(n, s) => {
                replica
                    .create_key_offline(CreateKeyRequest {
                        name: NAMES[n].into(),
                        scopes: Some(vec![SCOPES[s].into()]),
                        ..Default::default()
                    })
                    .await
                    .unwrap();
            }
            Action::LocalRename(k, n) => {
                if let Some(id) = pick(&local, k) {
                    let _ = replica.update_key(id, rename(NAMES[n])).await;
                }
            }
            Action::LocalScopes(k, s) => {
                if let Some(id) = pick(&local, k) {
                    let scopes = s.iter().map(|i| SCOPES[*i].to_string()).collect();
                    let patch = UpdateKeyRequest {
                        scopes: Some(scopes),
                        ..Default::default()
                    };
                    let _ = replica.update_key(id, patch).await;
                }
            }
            Action::LocalDisable(k, disabled) => {
                if let Some(id) = pick(&local, k) {
                    let patch = UpdateKeyRequest {
                        disabled: Some(disabled),
                        ..Default::default()
                    };
                    let _ = replica.update_key(id, patch).await;
                }
            }
            Action::LocalRevoke(k) => {
                if let Some(id) = pick(&local, k) {
                    let _ = replica.revoke_key(id, RevokeKeyRequest::default()).await;
                }
            }
            Action::LocalRotate(k) => {
                if let Some(id) = pick(&local, k) {
                    let _ = replica.rotate_key_offline(id, None).await;
                }
            }
            Action::ServerCreate(n) => {
                create(&app.owner, NAMES[n], &[]).await;
            }
            Action::ServerRename(k, n) => {
                if let Some(id) = pick(&remote, k) {
                    let _ = app.owner.update_key(id, &rename(NAMES[n])).await;
                }
            }
            Action::ServerRevoke(k) => {
                if let Some(id) = pick(&remote, k) {
                    let _ = app.owner.revoke_key(id, &RevokeKeyRequest::default()).await;
                }
            }
        }
    }

    engine.sync_once().await.unwrap();

    assert_eq!(replica.outbox_len().await.unwrap(), 0);
    let local = all_local(replica).await;
    for k in local.iter().filter(|k| !k.on_server) {
        assert!(
            k.rejection.is_some(),
            "a key only in the replica was refused: {k:?}"
        );
    }
    assert_eq!(
        summary(local.iter().filter(|k| k.on_server).map(|k| &k.key)),
        summary(all_server(&app.owner).await.iter())
    );
}

proptest! {
    // Each case runs a real server on its own database: few cases, little shrinking.
    #![proptest_config(ProptestConfig {
        cases: 8,
        max_shrink_iters: 8,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn after_a_full_sync_the_replica_matches_the_server(
        actions in prop::collection::vec(action(), 1..24)
    ) {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                tokio::time::timeout(Duration::from_secs(120), run_actions(actions)).await
            })
            .expect("case finished in time");
    }
}
