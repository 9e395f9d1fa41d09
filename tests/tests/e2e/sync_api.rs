//! The sync API: pulls see every change once, in order, without secrets; pushes apply in order,
//! idempotently, and reject stale or forbidden edits with a code the app can show. Each pushed
//! operation is read on its own: an unknown or malformed one is refused alone, with its code,
//! and nothing of it is stored.

use keyward_core::api::{
    CreateKeyRequest, Entity, OpResult, OpStatus, PushOp, PushResponse, RevokeKeyRequest, Role,
    RotateOfflineRequest, UpdateKeyRequest,
};
use keyward_core::hash::hash_token;
use keyward_core::{ApiKeyToken, Environment, KeyId};
use keyward_e2e::TestApp;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use uuid::Uuid;

fn update(key_id: KeyId, base_seq: Option<i64>, data: UpdateKeyRequest) -> PushOp {
    PushOp::UpdateKey {
        op_id: Uuid::now_v7(),
        key_id,
        base_seq,
        data,
    }
}

fn rename(key_id: KeyId, base_seq: Option<i64>, name: &str) -> PushOp {
    update(
        key_id,
        base_seq,
        UpdateKeyRequest {
            name: Some(name.into()),
            ..Default::default()
        },
    )
}

fn revoke(key_id: KeyId, data: RevokeKeyRequest) -> PushOp {
    PushOp::RevokeKey {
        op_id: Uuid::now_v7(),
        key_id,
        data,
    }
}

fn create(data: CreateKeyRequest) -> PushOp {
    PushOp::CreateKey {
        op_id: Uuid::now_v7(),
        data,
    }
}

fn offline_create(name: &str) -> (PushOp, ApiKeyToken) {
    let id = KeyId::new();
    let token = ApiKeyToken::generate(Environment::Live, id);
    let req = CreateKeyRequest {
        name: name.into(),
        id: Some(id),
        secret_hash: Some(hash_token(&token)),
        ..Default::default()
    };
    (create(req), token)
}

/// An operation as JSON, for shapes the typed [`PushOp`] cannot hold.
fn raw(op: &PushOp) -> Value {
    serde_json::to_value(op).unwrap()
}

/// `POST /v1/sync/push` with `ops` as they are: the status and the body.
async fn push_raw(app: &TestApp, ops: &[Value]) -> (u16, Value) {
    let res = reqwest::Client::new()
        .post(format!("{}/v1/sync/push", app.server.base_url))
        .bearer_auth(app.owner.session().unwrap().expose_secret())
        .json(&json!({ "ops": ops }))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

async fn push_results(app: &TestApp, ops: &[Value]) -> Vec<OpResult> {
    let (status, body) = push_raw(app, ops).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_value::<PushResponse>(body)
        .unwrap()
        .results
}

#[tokio::test]
async fn pull_returns_every_change_once_in_order_without_secrets() {
    let app = TestApp::spawn().await;
    let a = app
        .owner
        .create_key(&CreateKeyRequest {
            name: "a".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let b = app
        .owner
        .create_key(&CreateKeyRequest {
            name: "b".into(),
            ..Default::default()
        })
        .await
        .unwrap();

    let full = app.owner.pull(0, None).await.unwrap();
    assert!(!full.has_more);
    let seqs: Vec<i64> = full.changes.iter().map(|c| c.seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "in change order: {seqs:?}"
    );
    let keys: Vec<&str> = full
        .changes
        .iter()
        .filter(|c| c.entity == Entity::Key)
        .map(|c| c.id.as_str())
        .collect();
    assert_eq!(keys, vec![a.key.id.to_string(), b.key.id.to_string()]);
    assert!(full.changes.iter().any(|c| c.entity == Entity::Audit));
    let text = serde_json::to_string(&full).unwrap();
    for secret in [
        a.token.as_deref().unwrap(),
        b.token.as_deref().unwrap(),
        "$argon2id$",
    ] {
        assert!(!text.contains(secret), "a pull carries no token or hash");
    }

    // Incremental: only what changed after the cursor, including the audit entry of the change.
    let cursor = full.cursor;
    assert!(
        app.owner
            .pull(cursor, None)
            .await
            .unwrap()
            .changes
            .is_empty()
    );
    app.owner
        .revoke_key(a.key.id, &RevokeKeyRequest::default())
        .await
        .unwrap();
    let next = app.owner.pull(cursor, None).await.unwrap();
    let key_changes: Vec<_> = next
        .changes
        .iter()
        .filter(|c| c.entity == Entity::Key)
        .collect();
    assert_eq!(key_changes.len(), 1);
    assert_eq!(key_changes[0].data.as_ref().unwrap()["status"], "revoked");
    assert!(
        next.changes.iter().any(
            |c| c.entity == Entity::Audit && c.data.as_ref().unwrap()["action"] == "key.revoke"
        )
    );

    // Paging: small pages add up to the full snapshot.
    let (mut since, mut paged) = (0, Vec::new());
    loop {
        let page = app.owner.pull(since, Some(2)).await.unwrap();
        assert!(page.changes.len() <= 2);
        paged.extend(page.changes.iter().map(|c| (c.seq, c.id.clone())));
        since = page.cursor;
        if !page.has_more {
            break;
        }
    }
    let all = app.owner.pull(0, None).await.unwrap();
    assert_eq!(
        paged,
        all.changes
            .iter()
            .map(|c| (c.seq, c.id.clone()))
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn push_applies_in_order_and_replays_change_nothing() {
    let app = TestApp::spawn().await;
    let (create, token) = offline_create("from the plane");
    let id = create.key_id().unwrap();
    let rename = rename(id, None, "renamed on the plane");
    let batch = vec![create, rename];

    let first = app.owner.push(&batch).await.unwrap();
    assert_eq!(
        first.results.iter().map(|r| r.status).collect::<Vec<_>>(),
        vec![OpStatus::Applied; 2]
    );
    assert_eq!(
        first.results[1].record.as_ref().unwrap()["name"],
        "renamed on the plane"
    );
    app.anon.whoami(token.expose_secret()).await.unwrap();

    let count = || async {
        let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM api_keys")
            .fetch_one(app.pool())
            .await
            .unwrap();
        let audit: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log")
            .fetch_one(app.pool())
            .await
            .unwrap();
        (keys, audit)
    };
    let before = count().await;
    let again = app.owner.push(&batch).await.unwrap();
    assert_eq!(again, first, "a replay returns the first results");
    assert_eq!(count().await, before, "and changes nothing");
}

#[tokio::test]
async fn stale_edits_and_edits_of_revoked_keys_are_rejected() {
    let app = TestApp::spawn().await;
    let key = app
        .owner
        .create_key(&CreateKeyRequest {
            name: "k".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let pulled = app.owner.pull(0, None).await.unwrap();
    let seq = pulled
        .changes
        .iter()
        .find(|c| c.id == key.key.id.to_string())
        .unwrap()
        .seq;

    // The server changes the key after the desktop's copy: the offline edit is a conflict.
    app.owner
        .update_key(
            key.key.id,
            &UpdateKeyRequest {
                description: Some(Some("server".into())),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let stale = rename(key.key.id, Some(seq), "desktop");
    let r = &app.owner.push(&[stale]).await.unwrap().results[0];
    assert_eq!(
        (r.status, r.code.as_deref()),
        (OpStatus::Rejected, Some("conflict"))
    );
    assert_eq!(app.owner.get_key(key.key.id).await.unwrap().name, "k");

    // A revoke on the server beats an offline edit made before it: revocation is monotonic.
    app.owner
        .revoke_key(key.key.id, &RevokeKeyRequest::default())
        .await
        .unwrap();
    let edit = update(
        key.key.id,
        None,
        UpdateKeyRequest {
            disabled: Some(false),
            name: Some("undo?".into()),
            ..Default::default()
        },
    );
    let revoke_again = revoke(
        key.key.id,
        RevokeKeyRequest {
            reason: Some("again".into()),
            ..Default::default()
        },
    );
    let results = app.owner.push(&[edit, revoke_again]).await.unwrap().results;
    assert_eq!(results[0].code.as_deref(), Some("key_revoked"));
    assert_eq!(results[1].code.as_deref(), Some("already_revoked"));
    assert_eq!(
        app.owner.get_key(key.key.id).await.unwrap().status,
        keyward_core::KeyStatus::Revoked
    );
}

#[tokio::test]
async fn offline_rotation_and_every_bad_operation() {
    let app = TestApp::spawn().await;
    let key = app
        .owner
        .create_key(&CreateKeyRequest {
            name: "k".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let new_id = KeyId::new();
    let new_token = ApiKeyToken::generate(Environment::Live, new_id);
    let rotate = RotateOfflineRequest {
        new_id,
        secret_hash: hash_token(&new_token),
        grace_seconds: Some(0),
    };
    let r = &app
        .owner
        .push(&[PushOp::RotateKey {
            op_id: Uuid::now_v7(),
            key_id: key.key.id,
            data: rotate,
        }])
        .await
        .unwrap()
        .results[0];
    assert_eq!(r.status, OpStatus::Applied, "{r:?}");
    app.anon.whoami(new_token.expose_secret()).await.unwrap();
    assert_eq!(
        app.anon
            .whoami(key.token.as_deref().unwrap())
            .await
            .unwrap_err()
            .code(),
        Some("key_revoked")
    );

    let before: i64 = sqlx::query_scalar("SELECT count(*) FROM api_keys")
        .fetch_one(app.pool())
        .await
        .unwrap();
    let weak = CreateKeyRequest {
        name: "x".into(),
        id: Some(KeyId::new()),
        secret_hash: Some("$argon2i$v=19$m=4096,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI".into()),
        ..Default::default()
    };
    let op_id = || json!(Uuid::now_v7());
    let cases = [
        (
            "create without hash",
            raw(&create(CreateKeyRequest {
                name: "x".into(),
                ..Default::default()
            })),
            "validation_failed",
        ),
        ("weak hash", raw(&create(weak)), "validation_failed"),
        (
            "bad data",
            json!({"op_id": op_id(), "kind": "create_key", "data": {"name": 5}}),
            "malformed_operation",
        ),
        (
            "unknown field",
            json!({"op_id": op_id(), "kind": "update_key", "key_id": key.key.id,
                   "data": {"colour": "red"}}),
            "malformed_operation",
        ),
        (
            "no key id",
            json!({"op_id": op_id(), "kind": "revoke_key", "data": {}}),
            "malformed_operation",
        ),
        (
            "unknown kind",
            json!({"op_id": op_id(), "kind": "delete_key", "key_id": key.key.id}),
            "unknown_operation",
        ),
        (
            "unknown key",
            raw(&revoke(KeyId::new(), RevokeKeyRequest::default())),
            "key_not_found",
        ),
        (
            "v4 op id",
            raw(&PushOp::RevokeKey {
                op_id: Uuid::new_v4(),
                key_id: key.key.id,
                data: RevokeKeyRequest::default(),
            }),
            "validation_failed",
        ),
    ];
    let results = push_results(
        &app,
        &cases.iter().map(|(_, o, _)| o.clone()).collect::<Vec<_>>(),
    )
    .await;
    assert_eq!(results.len(), cases.len());
    for ((case, _, code), r) in cases.iter().zip(&results) {
        assert_eq!(
            (r.status, r.code.as_deref()),
            (OpStatus::Rejected, Some(*code)),
            "{case}: {r:?}"
        );
        assert!(r.detail.is_some(), "{case}");
    }
    let after: i64 = sqlx::query_scalar("SELECT count(*) FROM api_keys")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(after, before);

    // Another organisation cannot read a result by replaying an op id, nor touch the key.
    let other = app.admin("Globex", "o@globex.test", Role::Owner).await;
    let (create, _) = offline_create("mine");
    let mine = app
        .owner
        .push(std::slice::from_ref(&create))
        .await
        .unwrap()
        .results;
    let theirs = other.push(&[create]).await.unwrap().results;
    assert_eq!(mine[0].status, OpStatus::Applied);
    assert_eq!(theirs[0].code.as_deref(), Some("op_id_conflict"));
    assert!(theirs[0].record.is_none());
    let r = &other
        .push(&[revoke(key.key.id, RevokeKeyRequest::default())])
        .await
        .unwrap()
        .results[0];
    assert_eq!(r.code.as_deref(), Some("key_not_found"));
    assert!(
        other
            .pull(0, None)
            .await
            .unwrap()
            .changes
            .iter()
            .all(|c| c.entity != Entity::Key)
    );

    // Viewers cannot push; oversized batches and bad cursors are refused.
    let viewer = app.admin("Acme", "v@acme.test", Role::Viewer).await;
    assert_eq!(
        viewer.push(&[]).await.unwrap_err().code(),
        Some("forbidden")
    );
    let many: Vec<PushOp> = (0..501)
        .map(|_| revoke(key.key.id, RevokeKeyRequest::default()))
        .collect();
    assert_eq!(
        app.owner.push(&many).await.unwrap_err().code(),
        Some("validation_failed")
    );
    assert_eq!(
        app.owner.pull(-1, None).await.unwrap_err().code(),
        Some("validation_failed")
    );
    assert_eq!(
        app.owner.pull(0, Some(0)).await.unwrap_err().code(),
        Some("validation_failed")
    );
}

#[tokio::test]
async fn a_malformed_and_an_unknown_operation_are_refused_alone_and_leave_nothing_behind() {
    let app = TestApp::spawn().await;
    let key = app
        .owner
        .create_key(&CreateKeyRequest {
            name: "existing".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let doomed = app
        .owner
        .create_key(&CreateKeyRequest {
            name: "to revoke".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let cursor = app.owner.pull(0, None).await.unwrap().cursor;
    let counts = || async {
        let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM api_keys")
            .fetch_one(app.pool())
            .await
            .unwrap();
        let audit: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log")
            .fetch_one(app.pool())
            .await
            .unwrap();
        (keys, audit)
    };
    let before = counts().await;

    // A create whose data is malformed (scopes must be a list), with a hash and an id that
    // would otherwise be a perfectly good offline key; and an operation this server does not
    // know, aimed at an existing key. Valid operations before, between and after them.
    let (good_create, token) = offline_create("made offline");
    let malformed_id = KeyId::new();
    let malformed_token = ApiKeyToken::generate(Environment::Live, malformed_id);
    let malformed = json!({
        "op_id": Uuid::now_v7(),
        "kind": "create_key",
        "data": {
            "name": "malformed",
            "id": malformed_id,
            "secret_hash": hash_token(&malformed_token),
            "scopes": "keys:read",
        },
    });
    let unknown = json!({
        "op_id": Uuid::now_v7(),
        "kind": "delete_key",
        "key_id": key.key.id,
        "data": {"reason": "unknown to this server"},
    });
    let batch = [
        raw(&good_create),
        malformed.clone(),
        raw(&rename(key.key.id, None, "renamed")),
        unknown.clone(),
        raw(&revoke(doomed.key.id, RevokeKeyRequest::default())),
    ];
    let results = push_results(&app, &batch).await;
    let seen: Vec<_> = results
        .iter()
        .map(|r| (r.op_id, r.status, r.code.as_deref()))
        .collect();
    let id = |v: &Value| serde_json::from_value::<Uuid>(v["op_id"].clone()).unwrap();
    assert_eq!(
        seen,
        [
            (id(&batch[0]), OpStatus::Applied, None),
            (
                id(&malformed),
                OpStatus::Rejected,
                Some("malformed_operation")
            ),
            (id(&batch[2]), OpStatus::Applied, None),
            (id(&unknown), OpStatus::Rejected, Some("unknown_operation")),
            (id(&batch[4]), OpStatus::Applied, None),
        ],
        "{results:#?}"
    );
    let detail = |i: usize| results[i].detail.clone().unwrap();
    assert!(
        detail(1).starts_with("data:"),
        "names the field: {}",
        detail(1)
    );
    assert!(detail(3).contains("delete_key"), "{}", detail(3));
    assert!(results[1].record.is_none() && results[3].record.is_none());

    // The valid ones applied...
    app.anon.whoami(token.expose_secret()).await.unwrap();
    assert_eq!(app.owner.get_key(key.key.id).await.unwrap().name, "renamed");
    assert_eq!(
        app.owner.get_key(doomed.key.id).await.unwrap().status,
        keyward_core::KeyStatus::Revoked
    );
    // ... and nothing of the refused ones is stored: no key, no audit entry, no change to pull.
    assert_eq!(
        counts().await,
        (before.0 + 1, before.1 + 3),
        "one key made, three audited changes"
    );
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM api_keys WHERE id = $1")
        .bind(malformed_id.into_uuid())
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(stored, 0, "the malformed create made no key");
    assert!(
        app.anon
            .whoami(malformed_token.expose_secret())
            .await
            .is_err()
    );
    let pulled = app.owner.pull(cursor, None).await.unwrap();
    let text = serde_json::to_string(&pulled).unwrap();
    assert!(!text.contains(&malformed_id.to_string()), "{text}");
    assert!(!text.contains("delete_key") && !text.contains("unknown to this server"));
    let mut changed: Vec<String> = pulled
        .changes
        .iter()
        .filter(|c| c.entity == Entity::Key)
        .map(|c| c.id.clone())
        .collect();
    changed.sort();
    let mut expected = vec![
        good_create.key_id().unwrap().to_string(),
        key.key.id.to_string(),
        doomed.key.id.to_string(),
    ];
    expected.sort();
    assert_eq!(changed, expected);

    // A refusal is the operation's result: a replay answers it again and changes nothing.
    let again = push_results(&app, &batch).await;
    assert_eq!(again, results);
    assert_eq!(counts().await, (before.0 + 1, before.1 + 3));
    let (kind, code): (String, String) =
        sqlx::query_as("SELECT kind, result->>'code' FROM sync_ops WHERE op_id = $1")
            .bind(id(&unknown))
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!(
        (kind.as_str(), code.as_str()),
        ("delete_key", "unknown_operation")
    );

    // Only an operation without an op_id (nothing to answer it by) refuses the whole push,
    // naming it, before anything applies.
    let (later, _) = offline_create("never sent alone");
    let (status, body) = push_raw(
        &app,
        &[
            raw(&later),
            json!({"kind": "revoke_key", "key_id": key.key.id}),
        ],
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], "validation_failed");
    assert_eq!(body["errors"][0]["field"], "ops[1].op_id", "{body}");
    assert!(
        app.owner.get_key(later.key_id().unwrap()).await.is_err(),
        "nothing of that push applied"
    );
}
