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

/// Last use travels the change feed: the replica shows the server's `last_used_at`, and an
/// edit based on a pull that carried only use still applies (use is no conflict).
#[tokio::test]
async fn last_use_reaches_the_replica_and_is_no_conflict_for_an_offline_edit() {
    let app = TestApp::spawn().await;
    let issued = app
        .owner
        .create_key(&CreateKeyRequest {
            name: "used in production".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let engine = engine(&app).await;
    let replica = engine.replica();
    engine.sync_once().await.unwrap();
    let before = replica.key(issued.key.id).await.unwrap().unwrap();
    assert_eq!(before.key.last_used_at, None);

    app.owner
        .whoami(issued.token.as_deref().unwrap())
        .await
        .unwrap();
    let mut server = app.owner.get_key(issued.key.id).await.unwrap();
    for _ in 0..100 {
        if server.last_used_at.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        server = app.owner.get_key(issued.key.id).await.unwrap();
    }
    let used_at = server.last_used_at.expect("the flusher records the use");
    engine.sync_once().await.unwrap();
    let shown = replica.key(issued.key.id).await.unwrap().unwrap();
    assert_eq!(
        shown.key.last_used_at,
        Some(used_at),
        "the replica holds the server's last use"
    );
    assert!(
        shown.seq > before.seq,
        "the use moved the key in the change feed"
    );

    // The edit is based on the pull that carried the use: it applies.
    replica
        .update_key(issued.key.id, rename("renamed after use"))
        .await
        .unwrap();
    let report = engine.sync_once().await.unwrap();
    assert_eq!((report.applied, report.rejected), (1, 0));
    assert_eq!(
        app.owner.get_key(issued.key.id).await.unwrap().name,
        "renamed after use"
    );
    let shown = replica.key(issued.key.id).await.unwrap().unwrap();
    assert!(shown.rejection.is_none() && !shown.pending);
    assert_eq!(shown.key.last_used_at, Some(used_at));
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

/// Two desktops (0 and 1) of one organisation and the server's own admin act in turn; a
/// desktop's actions stay local until its `Sync`.
#[derive(Debug, Clone)]
enum Action {
    LocalCreate(usize, usize, usize),
    LocalRename(usize, usize, usize),
    LocalScopes(usize, usize, Vec<usize>),
    LocalDisable(usize, usize, bool),
    LocalRevoke(usize, usize),
    LocalRotate(usize, usize),
    ServerCreate(usize),
    ServerRename(usize, usize),
    ServerRevoke(usize),
    Sync(usize),
}

fn action() -> impl Strategy<Value = Action> {
    let i = 0..16usize;
    let r = 0..2usize;
    prop_oneof![
        1 => (r.clone(), 0..4usize, 0..3usize).prop_map(|(r, n, s)| Action::LocalCreate(r, n, s)),
        3 => (r.clone(), i.clone(), 0..4usize).prop_map(|(r, k, n)| Action::LocalRename(r, k, n)),
        1 => (r.clone(), i.clone(), prop::collection::vec(0..3usize, 0..3))
            .prop_map(|(r, k, s)| Action::LocalScopes(r, k, s)),
        1 => (r.clone(), i.clone(), any::<bool>()).prop_map(|(r, k, d)| Action::LocalDisable(r, k, d)),
        1 => (r.clone(), i.clone()).prop_map(|(r, k)| Action::LocalRevoke(r, k)),
        1 => (r.clone(), i.clone()).prop_map(|(r, k)| Action::LocalRotate(r, k)),
        1 => (0..4usize).prop_map(Action::ServerCreate),
        1 => (i.clone(), 0..4usize).prop_map(|(k, n)| Action::ServerRename(k, n)),
        1 => i.prop_map(Action::ServerRevoke),
        3 => r.prop_map(Action::Sync),
    ]
}

/// The `k`-th key (by id) of `ids`, if any.
fn pick(ids: &[KeyId], k: usize) -> Option<KeyId> {
    (!ids.is_empty()).then(|| ids[k % ids.len()])
}

/// What a local edit of `key` must answer, from the replica's own view of it: a key revoked
/// now refuses every edit, a rotated one a second rotation; anything else is accepted.
fn check_local<T: std::fmt::Debug>(
    what: &str,
    key: &LocalKey,
    rotating: bool,
    got: &Result<T, keyward_replica::LocalOpError>,
) {
    use keyward_replica::LocalOpError;
    let id = key.key.id;
    match got {
        Err(LocalOpError::KeyRevoked(k)) if *k == id => {
            assert_eq!(
                key.key.status,
                KeyStatus::Revoked,
                "{what}: refused as revoked"
            )
        }
        Err(LocalOpError::AlreadyRotated { id: k, .. }) if rotating && *k == id => {
            assert!(key.key.replaced_by.is_some(), "{what}: refused as rotated")
        }
        Ok(_) => {
            assert_ne!(
                key.key.status,
                KeyStatus::Revoked,
                "{what}: a revoked key edited"
            );
            if rotating {
                assert!(key.key.replaced_by.is_none(), "{what}: rotated twice");
            }
        }
        Err(e) => panic!("{what} of {key:?}: unexpected {e:?}"),
    }
}

/// The server's change sequence value of each key.
async fn server_seqs(app: &TestApp) -> std::collections::HashMap<KeyId, i64> {
    let rows: Vec<(Uuid, i64)> = sqlx::query_as("SELECT id, seq FROM api_keys")
        .fetch_all(app.pool())
        .await
        .unwrap();
    rows.into_iter()
        .map(|(id, seq)| (KeyId::from_uuid(id), seq))
        .collect()
}

/// What a desktop did to a key since its last sync.
#[derive(Default, Debug)]
struct Edits {
    /// Only edits (rename, scopes, disable): the kind of operation that names its base `seq`.
    only_updates: bool,
    /// The last name it gave the key.
    name: Option<String>,
}

/// Runs `actions`, checking every outcome; returns how many edits were refused as stale and how
/// many applied as asked (the "who wins" checks that ran).
async fn run_actions(actions: Vec<Action>) -> (usize, usize) {
    use std::collections::HashMap;
    let (mut stale, mut won) = (0, 0);
    let app = TestApp::spawn().await;
    for n in 0..3 {
        create(&app.owner, NAMES[n], &[SCOPES[n]]).await;
    }
    let engines = [engine(&app).await, engine(&app).await];
    for e in &engines {
        e.sync_once().await.unwrap();
    }
    let mut edits: [HashMap<KeyId, Edits>; 2] = Default::default();

    // Records a local edit's outcome and what it asked for.
    fn note(edits: &mut HashMap<KeyId, Edits>, id: KeyId, update: bool, name: Option<&str>) {
        let e = edits.entry(id).or_insert(Edits {
            only_updates: true,
            name: None,
        });
        e.only_updates &= update;
        if let Some(n) = name {
            e.name = Some(n.to_owned());
        }
    }

    for action in actions {
        let local = |r: usize| {
            let replica = engines[r].replica().clone();
            async move {
                let mut keys = all_local(&replica).await;
                keys.sort_by_key(|k| k.key.id);
                keys
            }
        };
        let mut remote: Vec<KeyId> = all_server(&app.owner).await.iter().map(|k| k.id).collect();
        remote.sort();
        match action {
            Action::LocalCreate(r, n, s) => {
                engines[r]
                    .replica()
                    .create_key_offline(CreateKeyRequest {
                        name: NAMES[n].into(),
                        scopes: Some(vec![SCOPES[s].into()]),
                        ..Default::default()
                    })
                    .await
                    .unwrap();
            }
            Action::LocalRename(r, k, _)
            | Action::LocalScopes(r, k, _)
            | Action::LocalDisable(r, k, _)
            | Action::LocalRevoke(r, k)
            | Action::LocalRotate(r, k) => {
                let keys = local(r).await;
                if keys.is_empty() {
                    continue;
                }
                let key = &keys[k % keys.len()];
                let id = key.key.id;
                let replica = engines[r].replica();
                let what = format!("{action:?}");
                match &action {
                    Action::LocalRename(_, _, n) => {
                        let n = *n;
                        let got = replica.update_key(id, rename(NAMES[n])).await;
                        check_local(&what, key, false, &got);
                        if got.is_ok() {
                            note(&mut edits[r], id, true, Some(NAMES[n]));
                        }
                    }
                    Action::LocalScopes(_, _, s) => {
                        let scopes = s.iter().map(|i| SCOPES[*i].to_string()).collect();
                        let patch = UpdateKeyRequest {
                            scopes: Some(scopes),
                            ..Default::default()
                        };
                        let got = replica.update_key(id, patch).await;
                        check_local(&what, key, false, &got);
                        if got.is_ok() {
                            note(&mut edits[r], id, true, None);
                        }
                    }
                    Action::LocalDisable(_, _, disabled) => {
                        let patch = UpdateKeyRequest {
                            disabled: Some(*disabled),
                            ..Default::default()
                        };
                        let got = replica.update_key(id, patch).await;
                        check_local(&what, key, false, &got);
                        if got.is_ok() {
                            note(&mut edits[r], id, true, None);
                        }
                    }
                    Action::LocalRevoke(..) => {
                        let got = replica.revoke_key(id, RevokeKeyRequest::default()).await;
                        check_local(&what, key, false, &got);
                        if got.is_ok() {
                            note(&mut edits[r], id, false, None);
                        }
                    }
                    _ => {
                        let got = replica.rotate_key_offline(id, None).await;
                        check_local(&what, key, true, &got);
                        if got.is_ok() {
                            note(&mut edits[r], id, false, None);
                        }
                    }
                }
            }
            Action::ServerCreate(n) => {
                create(&app.owner, NAMES[n], &[]).await;
            }
            Action::ServerRename(k, n) => {
                if let Some(id) = pick(&remote, k) {
                    // Refused only for a revoked key.
                    if let Err(e) = app.owner.update_key(id, &rename(NAMES[n])).await {
                        assert_eq!(e.code(), Some("key_revoked"), "{e:?}");
                    }
                }
            }
            Action::ServerRevoke(k) => {
                if let Some(id) = pick(&remote, k)
                    && let Err(e) = app.owner.revoke_key(id, &RevokeKeyRequest::default()).await
                {
                    assert_eq!(e.code(), Some("already_revoked"), "{e:?}");
                }
            }
            Action::Sync(r) => {
                let replica = engines[r].replica();
                let queued = replica.outbox_len().await.unwrap() as usize;
                let before: HashMap<KeyId, LocalKey> =
                    local(r).await.into_iter().map(|k| (k.key.id, k)).collect();
                let seqs = server_seqs(&app).await;
                let report = engines[r].sync_once().await.unwrap();
                assert_eq!(
                    report.applied + report.rejected + report.dropped,
                    queued,
                    "every queued operation answered: {report:?}"
                );
                assert_eq!(replica.outbox_len().await.unwrap(), 0);
                let after: HashMap<KeyId, LocalKey> =
                    local(r).await.into_iter().map(|k| (k.key.id, k)).collect();
                // Right after its sync, the desktop shows exactly what the server holds.
                assert_eq!(
                    summary(after.values().filter(|k| k.on_server).map(|k| &k.key)),
                    summary(all_server(&app.owner).await.iter()),
                    "desktop {r} after its sync"
                );
                let server: HashMap<KeyId, ApiKey> = all_server(&app.owner)
                    .await
                    .into_iter()
                    .map(|k| (k.id, k))
                    .collect();
                // Who wins: an edit based on the copy the server still holds applies; an edit
                // of a key the server changed since (another desktop's sync, an admin) is
                // refused and the server's version stays.
                for (id, e) in std::mem::take(&mut edits[r]) {
                    let (Some(was), Some(now)) = (before.get(&id), after.get(&id)) else {
                        continue;
                    };
                    if !e.only_updates || was.seq == 0 {
                        continue;
                    }
                    let moved_on = seqs.get(&id).is_some_and(|s| *s > was.seq);
                    if moved_on {
                        let code = now.rejection.as_ref().map(|j| j.code.as_str());
                        assert!(
                            matches!(code, Some("conflict" | "key_revoked")),
                            "desktop {r}'s stale edit of {id} is refused: {now:?}"
                        );
                        stale += 1;
                    } else {
                        assert_eq!(now.rejection, None, "desktop {r}'s edit of {id} applies");
                        if let Some(name) = e.name {
                            assert_eq!(server[&id].name, name, "desktop {r}'s rename of {id}");
                        }
                        won += 1;
                    }
                }
            }
        }
    }

    // Everyone syncs until both have seen everything.
    for r in [0, 1, 0] {
        engines[r].sync_once().await.unwrap();
    }
    let server = summary(all_server(&app.owner).await.iter());
    for (r, engine) in engines.iter().enumerate() {
        let replica = engine.replica();
        assert_eq!(replica.outbox_len().await.unwrap(), 0);
        let local = all_local(replica).await;
        for k in local.iter().filter(|k| !k.on_server) {
            assert!(
                k.rejection.is_some(),
                "a key only in desktop {r}'s replica was refused: {k:?}"
            );
        }
        assert_eq!(
            summary(local.iter().filter(|k| k.on_server).map(|k| &k.key)),
            server,
            "desktop {r}"
        );
    }
    (stale, won)
}

#[tokio::test]
async fn two_desktops_rename_one_key_offline_and_the_first_to_sync_wins() {
    use Action::*;
    // Key 0 of the three seeded: both desktops rename it; desktop 1 syncs first.
    let (stale, won) = run_actions(vec![
        LocalRename(0, 0, 1),
        LocalRename(1, 0, 3),
        Sync(1),
        Sync(0),
    ])
    .await;
    assert_eq!((stale, won), (1, 1));
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
    fn two_desktops_and_an_admin_converge_and_the_first_to_sync_wins(
        actions in prop::collection::vec(action(), 1..32)
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
