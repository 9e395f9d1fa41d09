//! Applying a pulled page of changes.

use chrono::Utc;
use keyward_core::KeyId;
use keyward_core::api::{ApiKey, AuditEntry, ChangeOp, Entity, PullResponse};

use crate::error::ReplicaError;
use crate::replica::{Replica, put_server_record};
use crate::store;

impl Replica {
    /// Applies every change of `page` and moves the cursor to `page.cursor`, in one
    /// transaction: a crash leaves either all of it or none.
    ///
    /// A key's server record replaces the old one (older sequence values are ignored, so
    /// applying a page twice changes nothing). A key with queued local operations keeps them
    /// and its refusal, if any: its view becomes the new record with those operations replayed.
    ///
    /// The page's audit chain head is witnessed ([`crate::witness`]): a shorter, forked or
    /// badly signed chain records an alarm and leaves the witnessed head as it was.
    #[tracing::instrument(skip_all, fields(changes = page.changes.len(), cursor = page.cursor))]
    pub async fn apply_pull(&self, page: &PullResponse) -> Result<(), ReplicaError> {
        let mut tx = self.write().await?;
        let mut org = None;
        for change in &page.changes {
            match (change.entity, change.op, &change.data) {
                (Entity::Key, ChangeOp::Upsert, Some(data)) => {
                    let key: ApiKey = serde_json::from_value(data.clone())?;
                    org = Some(key.org_id);
                    put_server_record(&mut tx, key, Some(change.seq)).await?;
                }
                (Entity::Key, ChangeOp::Delete, _) => {
                    let id: KeyId = change
                        .id
                        .parse()
                        .map_err(|_| ReplicaError::BadId(change.id.clone()))?;
                    store::keys::delete(&mut tx, id).await?;
                }
                (Entity::Audit, ChangeOp::Upsert, Some(data)) => {
                    let entry: AuditEntry = serde_json::from_value(data.clone())?;
                    org = Some(entry.org_id);
                    store::audit::upsert(&mut tx, &entry).await?;
                }
                (Entity::Audit, ChangeOp::Delete, _) => {
                    store::audit::delete(&mut tx, &change.id).await?;
                }
                (_, ChangeOp::Upsert, None) => {
                    tracing::warn!(seq = change.seq, id = %change.id, "upsert without data ignored");
                }
            }
        }
        if let Some(org) = org {
            store::state::remember_org(&mut tx, org).await?;
        }
        if let Some(head) = &page.audit_head {
            crate::witness::witness_head(
                &mut tx,
                head,
                page.audit_public_key.as_deref(),
                Utc::now(),
            )
            .await?;
        }
        store::state::pulled(&mut tx, page.cursor, Utc::now()).await?;
        tx.commit().await?;
        Ok(())
    }
}
