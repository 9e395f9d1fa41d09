//! The whole life of a key, through the real client against a real server and database.

use keyward_client::ClientError;
use keyward_core::api::{
    CreateKeyRequest, KeyStatusFilter, ListKeysQuery, RevokeKeyRequest, RotateKeyRequest,
    UpdateKeyRequest, VerifyCode, VerifyRequest,
};
use keyward_core::{Environment, KeyStatus};
use keyward_e2e::TestApp;

fn code(e: ClientError) -> String {
    e.code().unwrap_or("none").to_owned()
}

fn new_key(name: &str) -> CreateKeyRequest {
    CreateKeyRequest {
        name: name.into(),
        scopes: Some(vec!["achievements:*".into(), "badges:read".into()]),
        ..Default::default()
    }
}

#[tokio::test]
async fn create_use_update_rotate_revoke() {
    let app = TestApp::spawn().await;

    // Create: the token is shown once and works at once.
    let created = app.owner.create_key(&new_key("ci deploy")).await.unwrap();
    let token = created
        .token
        .clone()
        .expect("a server-made key comes with its token");
    assert!(token.starts_with("kw_live_"));
    assert!(token.starts_with(&created.key.prefix));
    assert_eq!(created.key.status, KeyStatus::Active);
    let me = app.anon.whoami(&token).await.unwrap();
    assert_eq!(me.key_id, created.key.id);
    assert_eq!(me.name, "ci deploy");
    assert_eq!(me.environment, Environment::Live);

    // Scope and IP checks through /v1/verify.
    let verify = |scope: &str, ip: Option<&str>| VerifyRequest {
        key: token.clone(),
        scope: Some(scope.into()),
        cost: None,
        client_ip: ip.map(Into::into),
    };
    let v = app
        .anon
        .verify(&verify("achievements:write", None))
        .await
        .unwrap();
    assert!(v.valid);
    assert_eq!(v.key_id, Some(created.key.id));
    assert_eq!(
        app.anon
            .verify(&verify("billing:write", None))
            .await
            .unwrap()
            .code,
        VerifyCode::InsufficientScope
    );

    // Restrict to a network: other addresses are refused, whoami from 127.0.0.1 too.
    let patched = app
        .owner
        .update_key(
            created.key.id,
            &UpdateKeyRequest {
                allowed_ips: Some(vec!["203.0.113.0/24".into()]),
                name: Some("ci".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(patched.name, "ci");
    assert_eq!(
        patched.allowed_ips.to_strings(),
        vec!["203.0.113.0/24".to_owned()]
    );
    assert_eq!(
        app.anon
            .verify(&verify("badges:read", Some("203.0.113.7")))
            .await
            .unwrap()
            .code,
        VerifyCode::Valid
    );
    assert_eq!(
        app.anon
            .verify(&verify("badges:read", Some("198.51.100.1")))
            .await
            .unwrap()
            .code,
        VerifyCode::IpNotAllowed
    );
    let e = app.anon.whoami(&token).await.unwrap_err();
    assert_eq!(
        (e.status().unwrap().as_u16(), code(e).as_str()),
        (403, "ip_not_allowed")
    );
    app.owner
        .update_key(
            created.key.id,
            &UpdateKeyRequest {
                allowed_ips: Some(vec![]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    app.anon.whoami(&token).await.unwrap();

    // Disable is reversible.
    app.owner
        .update_key(
            created.key.id,
            &UpdateKeyRequest {
                disabled: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        code(app.anon.whoami(&token).await.unwrap_err()),
        "key_disabled"
    );
    app.owner
        .update_key(
            created.key.id,
            &UpdateKeyRequest {
                disabled: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    app.anon.whoami(&token).await.unwrap();

    // Rotate with a grace period: both keys work, they share a lineage, settings carry over.
    let rotated = app
        .owner
        .rotate_key(
            created.key.id,
            &RotateKeyRequest {
                grace_seconds: Some(3600),
            },
        )
        .await
        .unwrap();
    assert_ne!(rotated.key.id, created.key.id);
    assert_eq!(rotated.key.lineage_id, created.key.lineage_id);
    assert_eq!(rotated.key.rotated_from, Some(created.key.id));
    assert_eq!(rotated.key.scopes, created.key.scopes);
    assert_eq!(rotated.key.name, "ci");
    assert_eq!(rotated.previous.replaced_by, Some(rotated.key.id));
    let deadline = rotated.previous.revoked_at.expect("grace deadline shown");
    assert!(deadline > chrono::Utc::now() + chrono::Duration::minutes(59));
    app.anon.whoami(&token).await.unwrap();
    app.anon.whoami(&rotated.token).await.unwrap();
    let again = app
        .owner
        .rotate_key(created.key.id, &RotateKeyRequest::default())
        .await
        .unwrap_err();
    assert_eq!(code(again), "already_rotated");

    // Immediate rotation of a leaked key: the old one stops at once.
    let leaked = app
        .owner
        .rotate_key(
            rotated.key.id,
            &RotateKeyRequest {
                grace_seconds: Some(0),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        code(app.anon.whoami(&rotated.token).await.unwrap_err()),
        "key_revoked"
    );
    app.anon.whoami(&leaked.token).await.unwrap();

    // Revoke: immediate, final, and audited.
    let revoked = app
        .owner
        .revoke_key(
            leaked.key.id,
            &RevokeKeyRequest {
                grace_seconds: None,
                reason: Some("laptop stolen".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(revoked.status, KeyStatus::Revoked);
    assert_eq!(revoked.revoke_reason.as_deref(), Some("laptop stolen"));
    let e = app.anon.whoami(&leaked.token).await.unwrap_err();
    assert_eq!(
        (e.status().unwrap().as_u16(), code(e).as_str()),
        (401, "key_revoked")
    );
    let e = app
        .owner
        .update_key(
            leaked.key.id,
            &UpdateKeyRequest {
                disabled: Some(false),
                ..Default::default()
            },
        )
        .await;
    assert_eq!(code(e.unwrap_err()), "key_revoked");
    assert_eq!(
        code(
            app.owner
                .revoke_key(leaked.key.id, &RevokeKeyRequest::default())
                .await
                .unwrap_err()
        ),
        "already_revoked"
    );

    let audit = app.owner.audit(&Default::default()).await.unwrap();
    let actions: Vec<&str> = audit.items.iter().map(|e| e.action.as_str()).collect();
    for action in [
        "key.create",
        "key.update",
        "key.rotate",
        "key.revoke",
        "auth.login",
    ] {
        assert!(
            actions.contains(&action),
            "{action} missing from {actions:?}"
        );
    }
    assert!(app.owner.verify_audit().await.unwrap().ok);
}

#[tokio::test]
async fn revocation_with_grace_takes_effect_later_and_only_shortens() {
    let app = TestApp::spawn().await;
    let created = app.owner.create_key(&new_key("grace")).await.unwrap();
    let token = created.token.unwrap();
    let k = app
        .owner
        .revoke_key(
            created.key.id,
            &RevokeKeyRequest {
                grace_seconds: Some(600),
                reason: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(k.status, KeyStatus::Active, "still in its grace period");
    app.anon.whoami(&token).await.unwrap();
    // A second revocation may bring the deadline forward, never push it back.
    let later = app
        .owner
        .revoke_key(
            created.key.id,
            &RevokeKeyRequest {
                grace_seconds: Some(6000),
                reason: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(later.revoked_at, k.revoked_at);
    // A shorter grace brings it forward: still working when revoked, refused once the new
    // deadline passes, with no further change made.
    let sooner = app
        .owner
        .revoke_key(
            created.key.id,
            &RevokeKeyRequest {
                grace_seconds: Some(3),
                reason: None,
            },
        )
        .await
        .unwrap();
    let deadline = sooner.revoked_at.expect("a deadline");
    assert!(
        deadline < k.revoked_at.expect("a deadline"),
        "brought forward"
    );
    assert_eq!(
        sooner.status,
        KeyStatus::Active,
        "still in its grace period"
    );
    // The deadline is a few seconds ahead; the wait's bound is for a broken run only.
    let last = std::sync::Mutex::new(None);
    let lapsed = keyward_e2e::eventually(std::time::Duration::from_secs(60), || async {
        match app.anon.whoami(&token).await {
            Ok(_) => false,
            Err(e) => {
                *last.lock().unwrap() = Some(code(e));
                true
            }
        }
    })
    .await;
    let last = last.into_inner().unwrap();
    assert!(lapsed, "the key still works after its grace period");
    assert_eq!(last.as_deref(), Some("key_revoked"));
    assert!(
        chrono::Utc::now() >= deadline,
        "refused only once the deadline passed"
    );
    let revoked = app.owner.get_key(created.key.id).await.unwrap();
    assert_eq!(revoked.status, KeyStatus::Revoked);
    assert_eq!(
        revoked.revoked_at,
        Some(deadline),
        "the deadline did not move"
    );
}

#[tokio::test]
async fn expiry_is_enforced_and_rotation_keeps_the_lifetime() {
    let app = TestApp::spawn().await;
    let in_90_days = chrono::Utc::now() + chrono::Duration::days(90);
    let created = app
        .owner
        .create_key(&CreateKeyRequest {
            expires_at: Some(in_90_days),
            ..new_key("quarterly")
        })
        .await
        .unwrap();
    let rotated = app
        .owner
        .rotate_key(created.key.id, &RotateKeyRequest::default())
        .await
        .unwrap();
    let lifetime = rotated.key.expires_at.unwrap() - rotated.key.created_at;
    assert!(
        (lifetime - chrono::Duration::days(90)).num_seconds().abs() < 5,
        "lifetime {lifetime}"
    );

    // Move the expiry into the past behind the API's back, announce it, and the key is refused.
    sqlx::query("UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = $1")
        .bind(rotated.key.id.as_uuid())
        .execute(app.pool())
        .await
        .unwrap();
    sqlx::query("SELECT pg_notify('keyward_key_changes', $1)")
        .bind(rotated.key.id.to_string())
        .execute(app.pool())
        .await
        .unwrap();
    let token = rotated.token.clone();
    let refused = keyward_e2e::eventually(std::time::Duration::from_secs(1), || async {
        app.anon
            .whoami(&token)
            .await
            .err()
            .and_then(|e| e.code().map(str::to_owned))
            .as_deref()
            == Some("key_expired")
    })
    .await;
    assert!(refused);
    let expired = app
        .owner
        .list_keys(&ListKeysQuery {
            status: Some(KeyStatusFilter::Expired),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        expired.items.iter().map(|k| k.id).collect::<Vec<_>>(),
        vec![rotated.key.id]
    );
}

#[tokio::test]
async fn lists_filter_by_status_and_paginate() {
    let app = TestApp::spawn().await;
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(
            app.owner
                .create_key(&new_key(&format!("k{i}")))
                .await
                .unwrap()
                .key
                .id,
        );
    }
    app.owner
        .revoke_key(ids[2], &RevokeKeyRequest::default())
        .await
        .unwrap();
    app.owner
        .update_key(
            ids[3],
            &UpdateKeyRequest {
                disabled: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();

    let page = app
        .owner
        .list_keys(&ListKeysQuery {
            limit: Some(3),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.items.len(), 3);
    assert_eq!(page.items[0].id, ids[6], "newest first");
    assert!(page.next_cursor.is_some());
    let all = app
        .owner
        .list_all_keys(&ListKeysQuery {
            limit: Some(3),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut seen: Vec<_> = all.iter().map(|k| k.id).collect();
    seen.reverse();
    assert_eq!(seen, ids, "every key exactly once across pages");

    let by = |status| ListKeysQuery {
        status: Some(status),
        ..Default::default()
    };
    let revoked = app
        .owner
        .list_keys(&by(KeyStatusFilter::Revoked))
        .await
        .unwrap();
    assert_eq!(
        revoked.items.iter().map(|k| k.id).collect::<Vec<_>>(),
        vec![ids[2]]
    );
    let disabled = app
        .owner
        .list_keys(&by(KeyStatusFilter::Disabled))
        .await
        .unwrap();
    assert_eq!(
        disabled.items.iter().map(|k| k.id).collect::<Vec<_>>(),
        vec![ids[3]]
    );
    assert_eq!(
        app.owner
            .list_keys(&by(KeyStatusFilter::Active))
            .await
            .unwrap()
            .items
            .len(),
        5
    );
}

#[tokio::test]
async fn offline_created_keys_work_once_pushed() {
    let app = TestApp::spawn().await;
    let id = keyward_core::KeyId::new();
    let token = keyward_core::ApiKeyToken::generate(Environment::Test, id);
    let hash = keyward_core::hash::hash_token(&token);
    let created = app
        .owner
        .create_key(&CreateKeyRequest {
            id: Some(id),
            secret_hash: Some(hash.clone()),
            environment: Some(Environment::Test),
            ..new_key("made on a plane")
        })
        .await
        .unwrap();
    assert!(created.token.is_none(), "the server never saw this token");
    assert_eq!(created.key.id, id);
    assert_eq!(
        app.anon.whoami(token.expose_secret()).await.unwrap().key_id,
        id
    );
    // The same id twice is a conflict, and nothing changes.
    let again = app
        .owner
        .create_key(&CreateKeyRequest {
            id: Some(id),
            secret_hash: Some(hash),
            ..new_key("dup")
        })
        .await
        .unwrap_err();
    assert_eq!(code(again), "key_exists");
    assert_eq!(app.owner.get_key(id).await.unwrap().name, "made on a plane");
}

#[tokio::test]
async fn usage_and_last_use_are_recorded_without_a_write_per_request() {
    let app = TestApp::spawn().await;
    let created = app.owner.create_key(&new_key("counted")).await.unwrap();
    let token = created.token.unwrap();
    for _ in 0..5 {
        app.anon.whoami(&token).await.unwrap();
    }
    let mut wrong = token.clone();
    wrong.replace_range(30..31, if &token[30..31] == "a" { "b" } else { "a" });
    let _ = app.anon.whoami(&wrong).await;
    let counted = keyward_e2e::eventually(std::time::Duration::from_secs(3), || async {
        let n: Option<i64> = sqlx::query_scalar(
            "SELECT sum(count)::int8 FROM usage_minute WHERE key_id = $1 AND outcome = 'valid'",
        )
        .bind(created.key.id.as_uuid())
        .fetch_one(app.pool())
        .await
        .unwrap();
        n == Some(5)
    })
    .await;
    assert!(counted, "five valid uses flushed");
    let key = app.owner.get_key(created.key.id).await.unwrap();
    assert!(key.last_used_at.is_some());
    assert_eq!(key.last_used_ip.as_deref(), Some("127.0.0.1"));
}
