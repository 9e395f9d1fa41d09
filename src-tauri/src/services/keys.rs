//! The key screens' commands: the list, a key's detail, and the local edits (create, update,
//! revoke, rotate) written to the replica and queued for sync at once.

use keyward_core::KeyFilter;
use keyward_core::api::{AuditEntry, RevokeKeyRequest};
use keyward_replica::screens::{self, MAX_PAGE};

use super::{Desktop, Result, parse_id, parse_op_id};
use crate::dto::{
    IssuedKey, KeyDetail, KeyEdit, KeyList, KeyListItem, NewKeyForm, RejectedChange, Revocation,
};
use crate::error::{CommandError, local_error, replica_error};

impl Desktop {
    pub async fn list_keys(&self, filter: KeyFilter) -> Result<KeyList> {
        let replica = self.replica().await?;
        let query = screens::key_page(filter);
        let total = replica.count(&query).await.map_err(replica_error)? as u32;
        let items = replica
            .keys(&query)
            .await
            .map_err(replica_error)?
            .into_iter()
            .map(KeyListItem::from)
            .collect();
        Ok(KeyList { items, total })
    }

    pub async fn get_key(&self, id: &str) -> Result<KeyDetail> {
        let (replica, id) = (self.replica().await?, parse_id(id)?);
        let key = replica
            .key(id)
            .await
            .map_err(replica_error)?
            .ok_or_else(|| CommandError::new("not_found", "no such key"))?;
        let audit = replica.audit_for_key(id).await.map_err(replica_error)?;
        Ok(KeyDetail {
            item: key.into(),
            audit,
        })
    }

    pub async fn create_key(&self, form: NewKeyForm) -> Result<IssuedKey> {
        let replica = self.replica().await?;
        let (key, token) = replica
            .create_key_offline(form.into())
            .await
            .map_err(local_error)?;
        self.with(Self::sync_soon).await?;
        Ok(IssuedKey {
            key,
            token: token.expose_secret().to_owned(),
        })
    }

    pub async fn update_key(&self, id: &str, edit: KeyEdit) -> Result<KeyListItem> {
        let (replica, id) = (self.replica().await?, parse_id(id)?);
        let key = replica
            .update_key(id, edit.into())
            .await
            .map_err(local_error)?;
        self.with(Self::sync_soon).await?;
        Ok(key.into())
    }

    pub async fn revoke_key(&self, id: &str, revocation: Revocation) -> Result<KeyListItem> {
        let (replica, id) = (self.replica().await?, parse_id(id)?);
        let req = RevokeKeyRequest {
            grace_seconds: Some(revocation.grace_seconds),
            reason: revocation.reason,
        };
        let key = replica.revoke_key(id, req).await.map_err(local_error)?;
        self.with(Self::sync_soon).await?;
        Ok(key.into())
    }

    pub async fn rotate_key(&self, id: &str, grace_seconds: u32) -> Result<IssuedKey> {
        let (replica, id) = (self.replica().await?, parse_id(id)?);
        let (key, token) = replica
            .rotate_key_offline(id, Some(grace_seconds))
            .await
            .map_err(local_error)?;
        self.with(Self::sync_soon).await?;
        Ok(IssuedKey {
            key,
            token: token.expose_secret().to_owned(),
        })
    }

    pub async fn rejected_changes(&self) -> Result<Vec<RejectedChange>> {
        Ok(self
            .replica()
            .await?
            .rejected_changes()
            .await
            .map_err(replica_error)?
            .into_iter()
            .map(RejectedChange::from)
            .collect())
    }

    pub async fn retry_rejected(&self, op_id: &str) -> Result<KeyListItem> {
        let (replica, op_id) = (self.replica().await?, parse_op_id(op_id)?);
        let key = replica.retry_rejected(op_id).await.map_err(local_error)?;
        self.with(Self::sync_soon).await?;
        Ok(key.into())
    }

    pub async fn discard_rejected(&self, op_id: &str) -> Result<()> {
        let (replica, op_id) = (self.replica().await?, parse_op_id(op_id)?);
        replica.discard_rejected(op_id).await.map_err(local_error)
    }

    pub async fn dismiss_key_error(&self, id: &str) -> Result<()> {
        let (replica, id) = (self.replica().await?, parse_id(id)?);
        replica.dismiss_error(id).await.map_err(replica_error)
    }

    pub async fn audit_log(&self, limit: u32, before_seq: Option<i64>) -> Result<Vec<AuditEntry>> {
        self.replica()
            .await?
            .audit(limit.clamp(1, MAX_PAGE), before_seq)
            .await
            .map_err(replica_error)
    }
}
