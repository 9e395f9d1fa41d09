//! Local operations: validated with the server's rules, written to the replica optimistically
//! and queued in the outbox, in one transaction. A refused operation writes nothing.

use chrono::{DateTime, Utc};
use keyward_core::api::{
    ApiKey, CreateKeyRequest, PushOp, RevokeKeyRequest, RotateOfflineRequest, UpdateKeyRequest,
};
use keyward_core::hash::hash_token;
use keyward_core::{ApiKeyToken, Environment, KeyId, KeyStatus, OrgId};
use sqlx::SqliteConnection;
use uuid::Uuid;

use crate::error::LocalOpError;
use crate::replica::Replica;
use crate::rules;
use crate::store::{self, keys::KeyRow, outbox::QueuedOp};
use crate::{project, view::LocalKey};

/// Default grace of an offline rotation: the old key keeps working for a day (as the server's
/// own default).
pub use keyward_core::requests::DEFAULT_ROTATION_GRACE_SECS;

/// A token for a new key and its argon2id hash, hashed off the async runtime.
async fn mint(environment: Environment, id: KeyId) -> Result<(ApiKeyToken, String), LocalOpError> {
    let token = ApiKeyToken::generate(environment, id);
    let for_hash = token.clone();
    let hash = tokio::task::spawn_blocking(move || hash_token(&for_hash)).await?;
    Ok((token, hash))
}

/// Key `id`'s row, refusing keys the replica does not have or that are revoked now.
async fn editable(
    conn: &mut SqliteConnection,
    id: KeyId,
    now: DateTime<Utc>,
) -> Result<KeyRow, LocalOpError> {
    let row = store::keys::get(conn, id)
        .await?
        .ok_or(LocalOpError::KeyNotFound(id))?;
    let v = &row.view;
    if KeyStatus::at(now, v.disabled, v.revoked_at, v.expires_at) == KeyStatus::Revoked {
        return Err(LocalOpError::KeyRevoked(id));
    }
    Ok(row)
}

impl Replica {
    /// Makes a key offline: a new id and token, the token's argon2id hash queued in a
    /// `create_key` operation, and a provisional key shown at once.
    ///
    /// The token is returned here and nowhere else: the replica never stores it. Show it once.
    /// `req.id` and `req.secret_hash` must be empty (the replica makes them).
    #[tracing::instrument(skip_all, fields(key_id))]
    pub async fn create_key_offline(
        &self,
        req: CreateKeyRequest,
    ) -> Result<(ApiKey, ApiKeyToken), LocalOpError> {
        let now = Utc::now();
        let mut req = rules::create(&req, now).map_err(LocalOpError::Invalid)?;
        let id = KeyId::new();
        tracing::Span::current().record("key_id", tracing::field::display(id));
        let (token, hash) = mint(req.environment.unwrap_or_default(), id).await?;

        let mut tx = self.write().await?;
        let org = store::state::org_id(&mut tx)
            .await?
            .unwrap_or(OrgId::from_uuid(Uuid::nil()));
        let view = project::created(org, id, &req, now);
        store::keys::put(
            &mut tx,
            &KeyRow {
                view: view.clone(),
                server: None,
                seq: 0,
                pending: true,
                rejection: None,
            },
        )
        .await?;
        req.id = Some(id);
        req.secret_hash = Some(hash);
        let op = PushOp::CreateKey {
            op_id: Uuid::now_v7(),
            data: req,
        };
        store::outbox::push(&mut tx, &QueuedOp::new(op, id, now)).await?;
        tx.commit().await?;
        Ok((view, token))
    }

    /// Edits a key. The edit is based on the key's current server record (`base_seq`), so the
    /// server refuses it (`conflict`) if someone changed the key meanwhile; an edit made while
    /// earlier ones on the key still wait is based on their result instead.
    #[tracing::instrument(skip_all, fields(key_id = %id))]
    pub async fn update_key(
        &self,
        id: KeyId,
        req: UpdateKeyRequest,
    ) -> Result<LocalKey, LocalOpError> {
        let now = Utc::now();
        let patch = rules::update(&req, now).map_err(LocalOpError::Invalid)?;
        let mut tx = self.write().await?;
        let mut row = editable(&mut tx, id, now).await?;
        let chained = !store::outbox::for_key(&mut tx, id).await?.is_empty();
        let op = PushOp::UpdateKey {
            op_id: Uuid::now_v7(),
            key_id: id,
            base_seq: (!chained).then_some(row.seq),
            data: patch,
        };
        let mut op = QueuedOp::new(op, id, now);
        op.chained = chained;
        queue(&mut tx, &mut row, op).await?;
        tx.commit().await?;
        Ok(row.into_local(now))
    }

    /// Revokes a key now or after `grace_seconds`. Revocation only moves earlier.
    #[tracing::instrument(skip_all, fields(key_id = %id))]
    pub async fn revoke_key(
        &self,
        id: KeyId,
        req: RevokeKeyRequest,
    ) -> Result<LocalKey, LocalOpError> {
        let now = Utc::now();
        let req = rules::revoke(&req).map_err(LocalOpError::Invalid)?;
        let mut tx = self.write().await?;
        let mut row = editable(&mut tx, id, now).await?;
        let op = PushOp::RevokeKey {
            op_id: Uuid::now_v7(),
            key_id: id,
            data: req,
        };
        queue(&mut tx, &mut row, QueuedOp::new(op, id, now)).await?;
        tx.commit().await?;
        Ok(row.into_local(now))
    }

    /// Rotates a key offline: a successor with every setting of the old key, a new token (whose
    /// hash is queued, never the token), and the old key retired after `grace_seconds`
    /// (default [`DEFAULT_ROTATION_GRACE_SECS`]). Returns the successor and its token; show
    /// the token once.
    #[tracing::instrument(skip_all, fields(key_id = %id))]
    pub async fn rotate_key_offline(
        &self,
        id: KeyId,
        grace_seconds: Option<u32>,
    ) -> Result<(ApiKey, ApiKeyToken), LocalOpError> {
        let now = Utc::now();
        let grace = rules::grace(
            "grace_seconds",
            grace_seconds.unwrap_or(DEFAULT_ROTATION_GRACE_SECS),
        )
        .map_err(LocalOpError::Invalid)?;
        // Checked before hashing (cheap refusal), and again under the write lock.
        let environment = editable(&mut *self.conn().await?, id, now)
            .await?
            .view
            .environment;
        let new_id = KeyId::new();
        let (token, hash) = mint(environment, new_id).await?;

        let mut tx = self.write().await?;
        let mut row = editable(&mut tx, id, now).await?;
        if let Some(successor) = row.view.replaced_by {
            return Err(LocalOpError::AlreadyRotated { id, successor });
        }
        let successor = project::successor(&row.view, new_id, now);
        store::keys::put(
            &mut tx,
            &KeyRow {
                view: successor.clone(),
                server: None,
                seq: 0,
                pending: true,
                rejection: None,
            },
        )
        .await?;
        let op = PushOp::RotateKey {
            op_id: Uuid::now_v7(),
            key_id: id,
            data: RotateOfflineRequest {
                new_id,
                secret_hash: hash,
                grace_seconds: Some(grace),
            },
        };
        queue(&mut tx, &mut row, QueuedOp::new(op, id, now)).await?;
        tx.commit().await?;
        Ok((successor, token))
    }
}

/// Queues `op` and shows its effect on `row` (a new local edit clears an old refusal).
async fn queue(
    conn: &mut SqliteConnection,
    row: &mut KeyRow,
    op: QueuedOp,
) -> Result<(), LocalOpError> {
    project::apply(&mut row.view, &op);
    row.pending = true;
    row.rejection = None;
    store::outbox::push(conn, &op).await?;
    store::keys::put(conn, row).await?;
    Ok(())
}
