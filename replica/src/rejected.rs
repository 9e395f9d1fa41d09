//! Changes the server refused: kept with what they were, listed, sent again or discarded. A
//! refusal never loses an edit silently.

use keyward_core::api::PushOp;
use uuid::Uuid;

use crate::error::{LocalOpError, ReplicaError};
use crate::replica::Replica;
use crate::store;
use crate::view::{LocalKey, RejectedChange};

impl Replica {
    async fn kept_rejection(&self, op_id: Uuid) -> Result<store::rejected::Kept, LocalOpError> {
        let mut conn = self.conn().await?;
        store::rejected::get(&mut conn, op_id)
            .await?
            .ok_or(LocalOpError::NoSuchRejection(op_id))
    }

    /// Every change the server refused and the admin has not retried or discarded, newest first.
    pub async fn rejected_changes(&self) -> Result<Vec<RejectedChange>, ReplicaError> {
        let mut conn = self.conn().await?;
        Ok(store::rejected::list(&mut conn)
            .await?
            .into_iter()
            .map(|k| k.change)
            .collect())
    }

    /// Sends refused change `op_id` again, as a new local change on the key as it is now (so an
    /// edit refused as stale is based on the server's newer record). Validated and queued like
    /// any edit; the kept refusal goes once the change is queued.
    pub async fn retry_rejected(&self, op_id: Uuid) -> Result<LocalKey, LocalOpError> {
        let kept = self.kept_rejection(op_id).await?;
        let key = match kept.op {
            PushOp::UpdateKey { key_id, data, .. } => self.update_key(key_id, data).await?,
            PushOp::RevokeKey { key_id, data, .. } => self.revoke_key(key_id, data).await?,
            PushOp::CreateKey { .. } | PushOp::RotateKey { .. } => {
                return Err(LocalOpError::NotRetryable(kept.change.summary));
            }
        };
        let mut tx = self.write().await?;
        store::rejected::delete(&mut tx, op_id).await?;
        tx.commit().await?;
        Ok(key)
    }

    /// Forgets refused change `op_id` and clears the refusal shown on its key (a key made
    /// offline that the server never accepted goes with it).
    pub async fn discard_rejected(&self, op_id: Uuid) -> Result<(), LocalOpError> {
        let kept = self.kept_rejection(op_id).await?;
        {
            let mut tx = self.write().await?;
            store::rejected::delete(&mut tx, op_id).await?;
            tx.commit().await?;
        }
        self.dismiss_error(kept.change.key_id).await?;
        Ok(())
    }
}
