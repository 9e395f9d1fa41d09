//! Applying pulled pages: idempotent, ordered by seq, and respectful of queued local edits.

mod common;

use chrono::Duration;
use common::*;
use keyward_core::api::UpdateKeyRequest;
use keyward_replica::{KeyFilter, Replica};

#[tokio::test]
async fn applying_a_page_twice_changes_nothing() {
    let replica = Replica::in_memory().await.unwrap();
    let a = server_key("alpha", Duration::days(3));
    let b = server_key("beta", Duration::days(2));
    let create_a = audit_entry(1, "key.create", a.id, a.created_at);
    let create_b = audit_entry(2, "key.create", b.id, b.created_at);
    let first = page(vec![
        key_change(10, &a),
        audit_change(11, &create_a),
        key_change(12, &b),
        audit_change(13, &create_b),
    ]);

    replica.apply_pull(&first).await.unwrap();
    let keys_once = replica.keys(&KeyFilter::default()).await.unwrap();
    let audit_once = replica.audit(100, None).await.unwrap();
    replica.apply_pull(&first).await.unwrap();

    assert_eq!(
        replica.keys(&KeyFilter::default()).await.unwrap(),
        keys_once
    );
    assert_eq!(replica.audit(100, None).await.unwrap(), audit_once);
    assert_eq!(keys_once.len(), 2);
    assert_eq!(keys_once[0].key.name, "alpha");
    assert_eq!(keys_once[0].seq, 10);
    assert!(keys_once.iter().all(|k| k.on_server && !k.pending));
    assert_eq!(audit_once.len(), 2);
    assert_eq!(audit_once[0].seq, 2, "newest first");
    assert_eq!(replica.audit_for_key(a.id).await.unwrap(), vec![create_a]);
    assert_eq!(
        replica.audit(10, Some(2)).await.unwrap(),
        vec![audit_once[1].clone()]
    );
    let status = replica.status().await.unwrap();
    assert_eq!(status.cursor, 13);
    assert!(status.last_pull_at.is_some());
}

#[tokio::test]
async fn a_newer_record_replaces_an_older_one_and_never_the_reverse() {
    let replica = Replica::in_memory().await.unwrap();
    let old = server_key("before", Duration::days(1));
    let mut new = old.clone();
    new.name = "after".into();

    replica
        .apply_pull(&page(vec![key_change(5, &old)]))
        .await
        .unwrap();
    replica
        .apply_pull(&page(vec![key_change(9, &new)]))
        .await
        .unwrap();
    // A replayed older page (cursor behind) neither regresses the key nor the cursor.
    replica
        .apply_pull(&page(vec![key_change(5, &old)]))
        .await
        .unwrap();

    let key = replica.key(old.id).await.unwrap().unwrap();
    assert_eq!(key.key.name, "after");
    assert_eq!(key.seq, 9);
    assert_eq!(replica.status().await.unwrap().cursor, 9);
}

#[tokio::test]
async fn a_pending_edit_survives_a_pull_and_is_replayed_on_the_new_record() {
    let replica = Replica::in_memory().await.unwrap();
    let key = server_key("ci", Duration::days(1));
    replica
        .apply_pull(&page(vec![key_change(3, &key)]))
        .await
        .unwrap();
    replica
        .update_key(
            key.id,
            UpdateKeyRequest {
                name: Some("ci (local)".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();

    // Someone else changed the description on the server meanwhile.
    let mut theirs = key.clone();
    theirs.description = Some("from the server".into());
    replica
        .apply_pull(&page(vec![key_change(8, &theirs)]))
        .await
        .unwrap();

    let shown = replica.key(key.id).await.unwrap().unwrap();
    assert!(shown.pending);
    assert_eq!(shown.seq, 8, "server seq updated");
    assert_eq!(shown.key.name, "ci (local)", "local edit kept");
    assert_eq!(shown.key.description.as_deref(), Some("from the server"));
    assert_eq!(replica.outbox_len().await.unwrap(), 1);
}
