//! [`Replica`]: opening the SQLite database and reading from it.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use chrono::Utc;
use keyward_core::KeyId;
use keyward_core::api::AuditEntry;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqliteConnection, SqlitePool, Transaction};

use crate::error::ReplicaError;
use crate::filter::KeyFilter;
use crate::project;
use crate::store::{self, keys::KeyRow};
use crate::view::LocalKey;
use keyward_core::SyncState;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The desktop's local copy of the organisation's keys and audit log, with the outbox of local
/// operations. Cheap to clone (a pool handle).
#[derive(Debug, Clone)]
pub struct Replica {
    pool: SqlitePool,
}

impl Replica {
    /// Opens (creating if needed) the replica stored in the file at `path`.
    pub async fn open(path: impl AsRef<Path>) -> Result<Replica, ReplicaError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal);
        Self::with_options(options, 4).await
    }

    /// Opens a replica from a SQLite URL: `sqlite::memory:` (one connection, so every query
    /// sees the same in-memory database) or `sqlite://path/to/file`.
    pub async fn connect(url: &str) -> Result<Replica, ReplicaError> {
        let options = SqliteConnectOptions::from_str(url)?.create_if_missing(true);
        let memory = url.contains(":memory:") || url.contains("mode=memory");
        Self::with_options(options, if memory { 1 } else { 4 }).await
    }

    /// A fresh replica in memory (tests, previews).
    pub async fn in_memory() -> Result<Replica, ReplicaError> {
        Self::connect("sqlite::memory:").await
    }

    async fn with_options(
        options: SqliteConnectOptions,
        max_connections: u32,
    ) -> Result<Replica, ReplicaError> {
        let options = options
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5))
            // Deleted rows (a pushed operation's hash) are overwritten, not left in free pages.
            .pragma("secure_delete", "ON");
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections)
            // An in-memory database lives as long as its connection: never recycle it.
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Replica { pool })
    }

    /// Closes every connection; later calls fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A write transaction that takes the write lock up front, so two writers queue on the
    /// busy timeout instead of failing to upgrade a read lock.
    pub(crate) async fn write(&self) -> Result<Transaction<'static, Sqlite>, ReplicaError> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    pub(crate) async fn conn(&self) -> Result<PoolConnection<Sqlite>, ReplicaError> {
        Ok(self.pool.acquire().await?)
    }

    /// Folds the write-ahead log back into the database file and empties it, so bytes of
    /// deleted rows do not linger in the log. Best effort: a busy reader only delays it.
    pub(crate) async fn checkpoint(&self) {
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.pool)
            .await
        {
            tracing::debug!(error = %e, "wal checkpoint skipped");
        }
    }

    /// Keys matching `filter`, with their status as of now.
    pub async fn keys(&self, filter: &KeyFilter) -> Result<Vec<LocalKey>, ReplicaError> {
        let now = Utc::now();
        let mut conn = self.pool.acquire().await?;
        let rows = store::keys::list(&mut conn, filter, now).await?;
        Ok(rows.into_iter().map(|r| r.into_local(now)).collect())
    }

    /// How many keys match `filter` (its limit and offset aside), for paging.
    pub async fn count(&self, filter: &KeyFilter) -> Result<u64, ReplicaError> {
        let mut conn = self.pool.acquire().await?;
        store::keys::count(&mut conn, filter, Utc::now()).await
    }

    pub async fn key(&self, id: KeyId) -> Result<Option<LocalKey>, ReplicaError> {
        let mut conn = self.pool.acquire().await?;
        let row = store::keys::get(&mut conn, id).await?;
        Ok(row.map(|r| r.into_local(Utc::now())))
    }

    /// The audit entries about key `id`, newest first.
    pub async fn audit_for_key(&self, id: KeyId) -> Result<Vec<AuditEntry>, ReplicaError> {
        let mut conn = self.pool.acquire().await?;
        store::audit::for_target(&mut conn, &id.to_string()).await
    }

    /// Up to `limit` audit entries before chain position `before` (from the newest when
    /// `None`), newest first.
    pub async fn audit(
        &self,
        limit: u32,
        before: Option<i64>,
    ) -> Result<Vec<AuditEntry>, ReplicaError> {
        let mut conn = self.pool.acquire().await?;
        store::audit::page(&mut conn, limit, before).await
    }

    /// How many local operations wait to be pushed.
    pub async fn outbox_len(&self) -> Result<u64, ReplicaError> {
        let mut conn = self.pool.acquire().await?;
        store::outbox::len(&mut conn).await
    }

    pub async fn status(&self) -> Result<SyncState, ReplicaError> {
        let mut conn = self.pool.acquire().await?;
        store::state::status(&mut conn).await
    }

    /// Clears the server's refusal shown on key `id`. A key the server never accepted (made
    /// offline, then refused) has nothing left to show and is removed.
    pub async fn dismiss_error(&self, id: KeyId) -> Result<(), ReplicaError> {
        let mut tx = self.write().await?;
        if let Some(mut row) = store::keys::get(&mut tx, id).await? {
            if row.server.is_none() && !row.pending {
                store::keys::delete(&mut tx, id).await?;
            } else {
                row.rejection = None;
                store::keys::put(&mut tx, &row).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records the outcome of a sync round for [`Replica::status`].
    pub(crate) async fn record_sync_error(&self, error: Option<&str>) -> Result<(), ReplicaError> {
        let mut conn = self.pool.acquire().await?;
        store::state::set_error(&mut conn, error).await
    }

    pub(crate) async fn cursor(&self) -> Result<i64, ReplicaError> {
        let mut conn = self.pool.acquire().await?;
        store::state::cursor(&mut conn).await
    }
}

/// Re-derives key `id`'s view and `pending` flag from its server record and the operations
/// still queued on it. A key the server never sent keeps its provisional view.
pub(crate) async fn refresh(conn: &mut SqliteConnection, id: KeyId) -> Result<(), ReplicaError> {
    let Some(mut row) = store::keys::get(conn, id).await? else {
        return Ok(());
    };
    let ops = store::outbox::for_key(conn, id).await?;
    row.pending = !ops.is_empty();
    if let Some(server) = &row.server {
        row.view = project::replay(server.clone(), &ops);
    }
    store::keys::put(conn, &row).await
}

/// Stores `record` as key `record.id`'s server record, at change sequence `seq` (unchanged
/// when `None`: push results carry no sequence value), and re-derives its view from it and the
/// operations still queued on the key.
pub(crate) async fn put_server_record(
    conn: &mut SqliteConnection,
    record: keyward_core::api::ApiKey,
    seq: Option<i64>,
) -> Result<(), ReplicaError> {
    let id = record.id;
    let existing = store::keys::get(conn, id).await?;
    let (old_seq, rejection) = match &existing {
        // Older than what the replica has: a replayed page.
        Some(row) if seq.is_some_and(|s| s < row.seq) => return Ok(()),
        Some(row) => (row.seq, row.rejection.clone()),
        None => (0, None),
    };
    let ops = store::outbox::for_key(conn, id).await?;
    let row = KeyRow {
        view: project::replay(record.clone(), &ops),
        server: Some(record),
        seq: seq.unwrap_or(old_seq),
        pending: !ops.is_empty(),
        rejection,
    };
    store::keys::put(conn, &row).await
}
