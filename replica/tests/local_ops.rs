//! Local operations: optimistic, queued, and refused without a trace when the input is bad.

mod common;

use chrono::{Duration, Utc};
use common::*;
use keyward_core::api::{CreateKeyRequest, RevokeKeyRequest, UpdateKeyRequest};
use keyward_core::{Environment, KeyId, KeyStatus};
use keyward_replica::{KeyFilter, LocalOpError, Replica};

async fn snapshot(replica: &Replica) -> (Vec<keyward_replica::LocalKey>, u64) {
    (
        replica.keys(&KeyFilter::default()).await.unwrap(),
        replica.outbox_len().await.unwrap(),
    )
}

async fn with_one_key() -> (Replica, keyward_core::api::ApiKey) {
    let replica = Replica::in_memory().await.unwrap();
    let key = server_key("ci", Duration::days(1));
    replica
        .apply_pull(&page(vec![key_change(4, &key)]))
        .await
        .unwrap();
    (replica, key)
}

#[tokio::test]
async fn bad_input_is_refused_with_field_errors_and_writes_nothing() {
    let (replica, key) = with_one_key().await;
    let before = snapshot(&replica).await;

    let err = replica
        .create_key_offline(CreateKeyRequest {
            name: " ".into(),
            scopes: Some(vec!["nope".into()]),
            ..Default::default()
        })
        .await
        .unwrap_err();
    let fields: Vec<_> = err
        .field_errors()
        .iter()
        .map(|e| e.field.as_str())
        .collect();
    assert_eq!(fields, ["name", "scopes[0]"], "{err}");

    let err = replica
        .update_key(
            key.id,
            UpdateKeyRequest {
                allowed_ips: Some(vec!["10.0.0.0/33".into()]),
                metadata: Some(serde_json::json!("not an object")),
                expires_at: Some(Some(Utc::now() - Duration::days(1))),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.field_errors().len(), 3, "{err}");

    let err = replica
        .revoke_key(
            key.id,
            RevokeKeyRequest {
                grace_seconds: Some(40 * 24 * 3600),
                reason: Some("x".repeat(501)),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.field_errors().len(), 2, "{err}");

    let err = replica
        .rotate_key_offline(key.id, Some(31 * 24 * 3600))
        .await
        .unwrap_err();
    assert!(matches!(err, LocalOpError::Invalid(_)), "{err}");

    let missing = KeyId::new();
    assert!(matches!(
        replica.update_key(missing, UpdateKeyRequest::default()).await,
        Err(LocalOpError::KeyNotFound(id)) if id == missing
    ));

    assert_eq!(snapshot(&replica).await, before);
}

#[tokio::test]
async fn a_revoked_key_cannot_change_locally() {
    let (replica, key) = with_one_key().await;
    replica
        .revoke_key(key.id, RevokeKeyRequest::default())
        .await
        .unwrap();
    let before = snapshot(&replica).await;
    let rename = UpdateKeyRequest {
        name: Some("again".into()),
        ..Default::default()
    };
    assert!(matches!(
        replica.update_key(key.id, rename).await,
        Err(LocalOpError::KeyRevoked(_))
    ));
    assert!(matches!(
        replica
            .revoke_key(key.id, RevokeKeyRequest::default())
            .await,
        Err(LocalOpError::KeyRevoked(_))
    ));
    assert!(matches!(
        replica.rotate_key_offline(key.id, None).await,
        Err(LocalOpError::KeyRevoked(_))
    ));
    assert_eq!(snapshot(&replica).await, before);
}

#[tokio::test]
async fn local_edits_show_at_once_and_queue_in_order() {
    let (replica, key) = with_one_key().await;

    let (created, token) = replica
        .create_key_offline(CreateKeyRequest {
            name: "  offline key ".into(),
            environment: Some(Environment::Test),
            scopes: Some(vec!["usage:read".into()]),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(created.name, "offline key");
    assert_eq!(created.org_id, org(), "org learned from the pull");
    assert!(token.expose_secret().starts_with(&created.prefix));
    assert_eq!(token.key_id(), created.id);

    let edited = replica
        .update_key(
            key.id,
            UpdateKeyRequest {
                disabled: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(edited.key.status, KeyStatus::Disabled);
    assert!(edited.pending);

    let (successor, new_token) = replica.rotate_key_offline(key.id, Some(0)).await.unwrap();
    assert_eq!(successor.rotated_from, Some(key.id));
    assert_eq!(new_token.key_id(), successor.id);
    let old = replica.key(key.id).await.unwrap().unwrap();
    assert_eq!(old.key.status, KeyStatus::Revoked);
    assert_eq!(old.key.replaced_by, Some(successor.id));
    // A successor not pushed yet can itself be rotated.
    replica
        .rotate_key_offline(successor.id, None)
        .await
        .unwrap();

    let shown = replica.key(created.id).await.unwrap().unwrap();
    assert!(shown.pending && !shown.on_server);
    assert_eq!(replica.outbox_len().await.unwrap(), 4);
    assert_eq!(replica.status().await.unwrap().queued, 4);
}
