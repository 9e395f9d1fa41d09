//! The sync API: pulls see every change once, in order, without secrets; pushes apply in order,
//! idempotently, and reject stale or forbidden edits with a code the app can show.

use keyward_core::api::{
    CreateKeyRequest, Entity, OpKind, OpStatus, PushOp, RevokeKeyRequest, Role,
    RotateOfflineRequest, UpdateKeyRequest,
};
use keyward_core::hash::hash_token;
use keyward_core::{ApiKeyToken, Environment, KeyId};
use keyward_e2e::TestApp;
use serde_json::json;
use uuid::Uuid;

fn op(
    kind: OpKind,
    key_id: Option<KeyId>,
    base_seq: Option<i64>,
    data: serde_json::Value,
) -> PushOp {
    PushOp {
        op_id: Uuid::now_v7(),
        kind,
        key_id,
        base_seq,
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
    (
        op(
            OpKind::CreateKey,
            None,
            None,
            serde_json::to_value(req).unwrap(),
        ),
        token,
    )
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
    let id = serde_json::from_value::<CreateKeyRequest>(create.data.clone())
        .unwrap()
        .id
        .unwrap();
    let rename = op(
        OpKind::UpdateKey,
        Some(id),
        None,
        json!({"name": "renamed on the plane"}),
    );
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
    let stale = op(
        OpKind::UpdateKey,
        Some(key.key.id),
        Some(seq),
        json!({"name": "desktop"}),
    );
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
    let edit = op(
        OpKind::UpdateKey,
        Some(key.key.id),
        None,
        json!({"disabled": false, "name": "undo?"}),
    );
    let revoke_again = op(
        OpKind::RevokeKey,
        Some(key.key.id),
        None,
        json!({"reason": "again"}),
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
        .push(&[op(
            OpKind::RotateKey,
            Some(key.key.id),
            None,
            serde_json::to_value(&rotate).unwrap(),
        )])
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
    let weak = json!({"name": "x", "id": KeyId::new(), "secret_hash": "$argon2i$v=19$m=4096,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI"});
    let cases = [
        (
            "create without hash",
            op(OpKind::CreateKey, None, None, json!({"name": "x"})),
            "validation_failed",
        ),
        (
            "weak hash",
            op(OpKind::CreateKey, None, None, weak),
            "validation_failed",
        ),
        (
            "bad data",
            op(OpKind::CreateKey, None, None, json!({"name": 5})),
            "validation_failed",
        ),
        (
            "unknown field",
            op(
                OpKind::UpdateKey,
                Some(key.key.id),
                None,
                json!({"colour": "red"}),
            ),
            "validation_failed",
        ),
        (
            "no key id",
            op(OpKind::RevokeKey, None, None, json!({})),
            "validation_failed",
        ),
        (
            "unknown key",
            op(OpKind::RevokeKey, Some(KeyId::new()), None, json!({})),
            "key_not_found",
        ),
        (
            "v4 op id",
            PushOp {
                op_id: Uuid::new_v4(),
                ..op(OpKind::RevokeKey, Some(key.key.id), None, json!({}))
            },
            "validation_failed",
        ),
    ];
    let results = app
        .owner
        .push(&cases.iter().map(|(_, o, _)| o.clone()).collect::<Vec<_>>())
        .await
        .unwrap()
        .results;
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
        .push(&[op(OpKind::RevokeKey, Some(key.key.id), None, json!({}))])
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
        .map(|_| op(OpKind::RevokeKey, Some(key.key.id), None, json!({})))
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
