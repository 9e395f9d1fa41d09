//! Taking a batch from the outbox and recording the server's answers to it.

use std::collections::{BTreeSet, HashSet};

use chrono::Utc;
use keyward_core::KeyId;
use keyward_core::api::{ApiKey, OpKind, OpResult, OpStatus, PushOp};

use sqlx::SqliteConnection;

use crate::error::ReplicaError;
use crate::replica::{Replica, put_server_record, refresh};
use crate::store::{self, outbox::QueuedOp};
use crate::view::Rejection;

/// Operations to push together, in outbox order.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    pub ops: Vec<QueuedOp>,
    /// Some edit's `base_seq` was taken from the replica now (it was chained to operations
    /// pushed before): the replica must have pulled since, or the edit would be stale.
    pub resolves_chained: bool,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub fn op_ids(&self) -> Vec<uuid::Uuid> {
        self.ops.iter().map(QueuedOp::op_id).collect()
    }

    /// The operations as the server takes them.
    pub fn to_push(&self) -> Vec<PushOp> {
        self.ops.iter().map(|op| op.op.clone()).collect()
    }

    fn carries_hash(&self) -> bool {
        self.ops.iter().any(|op| op.op.carries_hash())
    }
}

/// What the server's answers to one batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PushOutcome {
    pub applied: usize,
    pub rejected: usize,
    /// Later operations dropped because they depended on a refused one.
    pub dropped: usize,
}

impl Replica {
    /// Up to `max` operations from the head of the outbox. The batch stops before an edit
    /// chained to an operation in the same batch: its base is only known once that one has
    /// been applied and pulled.
    pub(crate) async fn next_batch(&self, max: usize) -> Result<Batch, ReplicaError> {
        let mut conn = self.conn().await?;
        let mut batch = Batch::default();
        let mut touched: HashSet<KeyId> = HashSet::new();
        for mut op in store::outbox::head(&mut conn, max).await? {
            if op.kind() == OpKind::UpdateKey && op.chained {
                if touched.contains(&op.key_id) {
                    break;
                }
                // Every operation it was chained to is done: it is based on the key as it is.
                let row = store::keys::get(&mut conn, op.key_id).await?;
                op.set_base_seq(row.map(|r| r.seq));
                batch.resolves_chained = true;
            }
            touched.insert(op.key_id);
            touched.extend(op.new_key_id());
            batch.ops.push(op);
        }
        Ok(batch)
    }

    /// Records the server's answers to `batch`, in one transaction: an applied operation leaves
    /// the outbox and its record becomes the key's server record; a refused one leaves the
    /// outbox and its refusal shows on the key (a key made offline and refused stays, flagged,
    /// rather than vanishing). Operations without an answer stay queued.
    #[tracing::instrument(skip_all, fields(ops = batch.ops.len()))]
    pub(crate) async fn apply_push_results(
        &self,
        batch: &Batch,
        results: &[OpResult],
    ) -> Result<PushOutcome, ReplicaError> {
        let mut tx = self.write().await?;
        let mut outcome = PushOutcome::default();
        let mut flagged: HashSet<KeyId> = HashSet::new();
        let mut stale: BTreeSet<KeyId> = BTreeSet::new();
        for result in results {
            let Some(op) = batch.ops.iter().find(|op| op.op_id() == result.op_id) else {
                tracing::warn!(op_id = %result.op_id, "answer to an operation not sent");
                continue;
            };
            if !store::outbox::remove(&mut tx, op.op_id()).await? {
                continue; // dropped with an earlier refused operation
            }
            stale.insert(op.key_id);
            stale.extend(op.new_key_id());
            match result.status {
                OpStatus::Applied => {
                    outcome.applied += 1;
                    if let Some(record) = &result.record {
                        let key: ApiKey = serde_json::from_value(record.clone())?;
                        stale.insert(key.id);
                        put_server_record(&mut tx, key, None).await?;
                    }
                }
                OpStatus::Rejected => {
                    outcome.rejected += 1;
                    tracing::info!(op_id = %op.op_id(), kind = %op.kind(), code = ?result.code, "operation refused");
                    let rejection = Rejection {
                        code: result.code.clone().unwrap_or_else(|| "rejected".into()),
                        detail: result.detail.clone().unwrap_or_default(),
                    };
                    for id in std::iter::once(op.key_id).chain(op.new_key_id()) {
                        // The first refusal of a batch on a key is the one that explains it.
                        if flagged.insert(id) {
                            store::keys::set_rejection(&mut tx, id, Some(&rejection)).await?;
                        }
                    }
                    keep_rejected(&mut tx, op, &rejection).await?;
                    let dropped = drop_dependents(&mut tx, op, &rejection, &mut flagged).await?;
                    outcome.dropped += dropped.len();
                    for d in dropped {
                        stale.insert(d.key_id);
                        stale.extend(d.new_key_id());
                    }
                }
            }
        }
        for id in stale {
            refresh(&mut tx, id).await?;
        }
        store::state::pushed(&mut tx, Utc::now()).await?;
        tx.commit().await?;
        if batch.carries_hash() {
            self.checkpoint().await;
        }
        Ok(outcome)
    }

    /// Notes a failed delivery of `batch`; the operations themselves stay as they are.
    pub(crate) async fn note_push_failure(
        &self,
        batch: &Batch,
        error: &str,
    ) -> Result<(), ReplicaError> {
        let mut tx = self.write().await?;
        store::outbox::note_failure(&mut tx, &batch.op_ids(), error).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Takes out the queued operations that depended on the refused `op`: everything on a key
/// whose creation (offline create, or the rotation that made it) was refused, transitively;
/// and the edits chained to a refused edit. A key that will now never exist shows why.
async fn drop_dependents(
    conn: &mut SqliteConnection,
    op: &QueuedOp,
    rejection: &Rejection,
    flagged: &mut HashSet<KeyId>,
) -> Result<Vec<QueuedOp>, ReplicaError> {
    let because = Rejection {
        code: "dependency_rejected".into(),
        detail: format!(
            "an earlier change this one depended on was refused ({}): {}",
            rejection.code, rejection.detail
        ),
    };
    let mut never_made: Vec<KeyId> = match (op.kind(), op.new_key_id()) {
        (OpKind::CreateKey, _) => vec![op.key_id],
        (OpKind::RotateKey, Some(new_id)) => vec![new_id],
        (OpKind::UpdateKey, _) => {
            let dropped = store::outbox::take_chained_after(conn, op.key_id, op.position).await?;
            for d in &dropped {
                keep_rejected(conn, d, &because).await?;
            }
            return Ok(dropped);
        }
        _ => Vec::new(),
    };
    let mut dropped = Vec::new();
    while let Some(id) = never_made.pop() {
        for d in store::outbox::take_touching(conn, id).await? {
            let made = match d.kind() {
                OpKind::CreateKey => Some(d.key_id),
                OpKind::RotateKey => d.new_key_id(),
                _ => None,
            };
            if let Some(made) = made.filter(|m| *m != id) {
                if flagged.insert(made) {
                    store::keys::set_rejection(conn, made, Some(&because)).await?;
                }
                never_made.push(made);
            }
            keep_rejected(conn, &d, &because).await?;
            dropped.push(d);
        }
    }
    Ok(dropped)
}

/// Keeps refused operation `op` with what it was, for the admin to retry or discard.
async fn keep_rejected(
    conn: &mut SqliteConnection,
    op: &QueuedOp,
    rejection: &Rejection,
) -> Result<(), ReplicaError> {
    // The name the server knows the key by (a refused rename must not name it).
    let name = store::keys::get(conn, op.key_id)
        .await?
        .map(|row| row.server.map_or(row.view.name, |s| s.name))
        .unwrap_or_default();
    store::rejected::insert(
        conn,
        &op.op,
        op.key_id,
        &name,
        op.created_at,
        rejection,
        Utc::now(),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::LocalOpError;
    use keyward_core::api::{CreateKeyRequest, UpdateKeyRequest};

    fn applied(op: &QueuedOp, record: Option<&ApiKey>) -> OpResult {
        OpResult {
            op_id: op.op_id(),
            status: OpStatus::Applied,
            code: None,
            detail: None,
            record: record.map(|r| serde_json::to_value(r).unwrap()),
        }
    }

    fn rejected(op: &QueuedOp, code: &str) -> OpResult {
        OpResult {
            op_id: op.op_id(),
            status: OpStatus::Rejected,
            code: Some(code.into()),
            detail: Some(format!("{code} detail")),
            record: None,
        }
    }

    fn rename(name: &str) -> UpdateKeyRequest {
        UpdateKeyRequest {
            name: Some(name.into()),
            ..Default::default()
        }
    }

    /// A key made offline and accepted by the server (its record pulled back).
    async fn accepted_key(replica: &Replica, name: &str) -> ApiKey {
        let mut server = offline_key(replica, name).await;
        let batch = replica.next_batch(100).await.unwrap();
        server.created_by = None;
        replica
            .apply_push_results(&batch, &[applied(&batch.ops[0], Some(&server))])
            .await
            .unwrap();
        server
    }

    async fn offline_key(replica: &Replica, name: &str) -> ApiKey {
        replica
            .create_key_offline(CreateKeyRequest {
                name: name.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .0
    }

    #[tokio::test]
    async fn a_batch_stops_before_an_edit_chained_to_an_operation_in_it() {
        let replica = Replica::in_memory().await.unwrap();
        let a = offline_key(&replica, "a").await;
        let b = offline_key(&replica, "b").await;
        replica.update_key(a.id, rename("a2")).await.unwrap();
        replica.revoke_key(b.id, Default::default()).await.unwrap();

        let batch = replica.next_batch(100).await.unwrap();
        let kinds: Vec<_> = batch.ops.iter().map(QueuedOp::kind).collect();
        assert_eq!(
            kinds,
            [OpKind::CreateKey, OpKind::CreateKey],
            "cut before a's rename"
        );
        assert!(!batch.resolves_chained);
        let push = batch.to_push();
        let ids: Vec<_> = push
            .iter()
            .map(|op| match op {
                PushOp::CreateKey { data, .. } => {
                    let hash = data.secret_hash.as_deref().unwrap_or_default();
                    assert!(hash.starts_with("$argon2id$"), "the hash, never a token");
                    data.id
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            ids,
            [Some(a.id), Some(b.id)],
            "create_key names its id in data"
        );
        // What goes on the wire: no key_id on a create.
        let wire = serde_json::to_value(&push[0]).unwrap();
        assert_eq!(wire["kind"], "create_key");
        assert!(wire.get("key_id").is_none());

        // The server applies both creates; the rename is now first and based on the key as is.
        let results: Vec<_> = batch
            .ops
            .iter()
            .zip([&a, &b])
            .map(|(op, key)| applied(op, Some(key)))
            .collect();
        let outcome = replica.apply_push_results(&batch, &results).await.unwrap();
        assert_eq!(outcome.applied, 2);
        let next = replica.next_batch(100).await.unwrap();
        assert_eq!(next.ops.len(), 2);
        assert!(next.resolves_chained);
        assert_eq!(next.ops[0].kind(), OpKind::UpdateKey);
        assert_eq!(
            next.ops[0].base_seq(),
            Some(0),
            "the seq the replica has now"
        );
        assert!(matches!(
            next.to_push()[0],
            PushOp::UpdateKey { key_id, base_seq: Some(0), .. } if key_id == a.id
        ));
    }

    #[tokio::test]
    async fn a_refused_create_keeps_the_key_flagged_and_drops_what_depended_on_it() {
        let replica = Replica::in_memory().await.unwrap();
        let a = offline_key(&replica, "a").await;
        replica.revoke_key(a.id, Default::default()).await.unwrap();
        let batch = replica.next_batch(100).await.unwrap();
        assert_eq!(batch.ops.len(), 2);

        let results = [
            rejected(&batch.ops[0], "validation_failed"),
            rejected(&batch.ops[1], "key_not_found"),
        ];
        let outcome = replica.apply_push_results(&batch, &results).await.unwrap();
        assert_eq!(
            outcome,
            PushOutcome {
                applied: 0,
                rejected: 1,
                dropped: 1
            }
        );
        assert_eq!(replica.outbox_len().await.unwrap(), 0);
        let shown = replica.key(a.id).await.unwrap().unwrap();
        assert!(!shown.on_server && !shown.pending);
        let rejection = shown.rejection.unwrap();
        assert_eq!(
            rejection.code, "validation_failed",
            "the first refusal explains it"
        );
        assert_eq!(rejection.detail, "validation_failed detail");

        replica.dismiss_error(a.id).await.unwrap();
        assert!(replica.key(a.id).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_refused_edit_is_undone_on_the_view_and_takes_its_chained_edits_along() {
        let replica = Replica::in_memory().await.unwrap();
        let server = accepted_key(&replica, "server").await;

        replica
            .update_key(server.id, rename("first"))
            .await
            .unwrap();
        replica
            .revoke_key(
                server.id,
                keyward_core::api::RevokeKeyRequest {
                    grace_seconds: Some(3600),
                    reason: None,
                },
            )
            .await
            .unwrap();
        replica
            .update_key(server.id, rename("second"))
            .await
            .unwrap();
        let batch = replica.next_batch(100).await.unwrap();
        assert_eq!(
            batch.ops.len(),
            2,
            "rename and revoke; the chained rename waits"
        );
        assert!(!batch.ops[0].chained);

        let mut revoked = server.clone();
        revoked.revoked_at = Some(chrono::Utc::now() + chrono::Duration::hours(1));
        let results = [
            rejected(&batch.ops[0], "conflict"),
            applied(&batch.ops[1], Some(&revoked)),
        ];
        let outcome = replica.apply_push_results(&batch, &results).await.unwrap();
        assert_eq!(
            (outcome.applied, outcome.rejected, outcome.dropped),
            (1, 1, 1)
        );
        let shown = replica.key(server.id).await.unwrap().unwrap();
        assert_eq!(shown.key.name, "server", "the refused rename is undone");
        assert_eq!(shown.key.revoked_at, revoked.revoked_at);
        assert!(!shown.pending);
        assert_eq!(shown.rejection.unwrap().code, "conflict");
        assert_eq!(replica.outbox_len().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_refused_change_is_kept_with_what_it_was_and_can_be_retried_or_discarded() {
        let replica = Replica::in_memory().await.unwrap();
        let server = accepted_key(&replica, "billing").await;
        replica
            .update_key(
                server.id,
                UpdateKeyRequest {
                    name: Some("billing v2".into()),
                    scopes: Some(vec!["billing:read".into()]),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        replica
            .update_key(server.id, rename("billing v3"))
            .await
            .unwrap();
        let batch = replica.next_batch(100).await.unwrap();
        assert_eq!(batch.ops.len(), 1, "the chained rename waits");
        replica
            .apply_push_results(&batch, &[rejected(&batch.ops[0], "conflict")])
            .await
            .unwrap();

        // Both edits are kept, with what they set and why they were refused.
        let kept = replica.rejected_changes().await.unwrap();
        assert_eq!(kept.len(), 2);
        let first = kept
            .iter()
            .find(|c| c.rejection.code == "conflict")
            .unwrap();
        assert_eq!(first.summary, "Edit");
        assert_eq!(
            first.key_name, "billing",
            "the server's name, not the refused one"
        );
        assert!(first.retryable);
        let fields: Vec<_> = first
            .fields
            .iter()
            .map(|f| (f.field.as_str(), f.value.as_str()))
            .collect();
        assert_eq!(fields, [("Name", "billing v2"), ("Scopes", "billing:read")]);
        let chained = kept
            .iter()
            .find(|c| c.rejection.code == "dependency_rejected")
            .unwrap();
        assert!(chained.rejection.detail.contains("conflict detail"));
        assert_eq!(replica.status().await.unwrap().rejected, 2);
        let notices = replica.notices_to_show(Utc::now()).await.unwrap();
        assert_eq!(
            notices
                .iter()
                .filter(|n| n.kind == crate::NoticeKind::Rejected)
                .count(),
            2,
            "each refusal is notified"
        );
        replica.mark_notified(&notices, Utc::now()).await.unwrap();
        assert!(
            replica
                .notices_to_show(Utc::now())
                .await
                .unwrap()
                .iter()
                .all(|n| n.kind != crate::NoticeKind::Rejected),
            "once"
        );

        // Retry queues the edit again, based on the key as the replica has it now.
        let shown = replica.retry_rejected(first.op_id).await.unwrap();
        assert_eq!(shown.key.name, "billing v2");
        assert!(shown.pending && shown.rejection.is_none());
        let batch = replica.next_batch(100).await.unwrap();
        assert_eq!(batch.ops.len(), 1);
        assert_ne!(batch.ops[0].op_id(), first.op_id, "a new operation");
        assert_eq!(batch.ops[0].base_seq(), Some(shown.seq));
        assert!(matches!(
            replica.retry_rejected(first.op_id).await,
            Err(LocalOpError::NoSuchRejection(_))
        ));

        // Discard forgets the other and clears the key's marker.
        replica.discard_rejected(chained.op_id).await.unwrap();
        assert!(replica.rejected_changes().await.unwrap().is_empty());
        assert_eq!(replica.status().await.unwrap().rejected, 0);
    }

    #[tokio::test]
    async fn a_refused_create_is_kept_without_its_hash_and_cannot_be_retried() {
        let replica = Replica::in_memory().await.unwrap();
        let a = offline_key(&replica, "made offline").await;
        let batch = replica.next_batch(100).await.unwrap();
        replica
            .apply_push_results(&batch, &[rejected(&batch.ops[0], "validation_failed")])
            .await
            .unwrap();
        let kept = replica.rejected_changes().await.unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].summary, "Create key");
        assert!(!kept[0].retryable);
        let stored: String = sqlx::query_scalar("SELECT op FROM rejected")
            .fetch_one(&mut *replica.conn().await.unwrap())
            .await
            .unwrap();
        assert!(!stored.contains("argon2"), "no hash kept: {stored}");
        assert!(matches!(
            replica.retry_rejected(kept[0].op_id).await,
            Err(LocalOpError::NotRetryable(_))
        ));
        replica.discard_rejected(kept[0].op_id).await.unwrap();
        assert!(
            replica.key(a.id).await.unwrap().is_none(),
            "the key that never was goes too"
        );
    }

    #[tokio::test]
    async fn a_refusal_drops_the_keys_that_would_have_come_from_it_transitively() {
        let replica = Replica::in_memory().await.unwrap();
        let a = offline_key(&replica, "a").await;
        let (s1, _) = replica.rotate_key_offline(a.id, None).await.unwrap();
        let (s2, _) = replica.rotate_key_offline(s1.id, None).await.unwrap();
        replica
            .update_key(s2.id, rename("s2 renamed"))
            .await
            .unwrap();
        let batch = replica.next_batch(100).await.unwrap();
        assert_eq!(batch.ops.len(), 3, "the chained rename waits");

        let outcome = replica
            .apply_push_results(&batch, &[rejected(&batch.ops[0], "weak_hash")])
            .await
            .unwrap();

        assert_eq!((outcome.rejected, outcome.dropped), (1, 3));
        assert_eq!(replica.outbox_len().await.unwrap(), 0);
        for (id, code) in [
            (a.id, "weak_hash"),
            (s1.id, "dependency_rejected"),
            (s2.id, "dependency_rejected"),
        ] {
            let shown = replica.key(id).await.unwrap().unwrap();
            assert!(!shown.pending && !shown.on_server);
            assert_eq!(shown.rejection.unwrap().code, code);
        }
    }

    #[tokio::test]
    async fn unanswered_operations_stay_queued() {
        let replica = Replica::in_memory().await.unwrap();
        let a = offline_key(&replica, "a").await;
        let _b = offline_key(&replica, "b").await;
        let batch = replica.next_batch(100).await.unwrap();
        replica
            .apply_push_results(&batch, &[applied(&batch.ops[0], Some(&a))])
            .await
            .unwrap();
        replica
            .note_push_failure(&batch, "connection reset")
            .await
            .unwrap();
        assert_eq!(replica.outbox_len().await.unwrap(), 1);
        let left = replica.next_batch(100).await.unwrap();
        assert_eq!(
            left.ops[0].op_id(),
            batch.ops[1].op_id(),
            "same operation id on retry"
        );
    }
}
