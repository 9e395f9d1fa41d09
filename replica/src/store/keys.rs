//! The `keys` table: each key's displayed view, its last server record and its sync state.

use chrono::{DateTime, Utc};
use keyward_core::api::ApiKey;
use keyward_core::{KeyId, KeyStatus};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};

use super::micros;
use crate::error::ReplicaError;
use crate::filter::KeyFilter;
use crate::view::{LocalKey, Rejection};

/// One row of `keys`, decoded.
#[derive(Debug, Clone)]
pub(crate) struct KeyRow {
    /// What the UI shows: `server` with queued operations replayed (or the provisional view of
    /// a key made offline).
    pub view: ApiKey,
    /// The server's record, if the server has sent one.
    pub server: Option<ApiKey>,
    pub seq: i64,
    pub pending: bool,
    pub rejection: Option<Rejection>,
}

impl KeyRow {
    /// The row as the UI sees it at `now`.
    pub fn into_local(self, now: DateTime<Utc>) -> LocalKey {
        let mut key = self.view;
        key.status = KeyStatus::at(now, key.disabled, key.revoked_at, key.expires_at);
        let server = self.server.as_ref();
        LocalKey {
            key,
            server_status: server
                .map(|s| KeyStatus::at(now, s.disabled, s.revoked_at, s.expires_at)),
            server_revoked_at: server.and_then(|s| s.revoked_at),
            seq: self.seq,
            pending: self.pending,
            on_server: self.server.is_some(),
            rejection: self.rejection,
        }
    }
}

const COLUMNS: &str = "data, server_data, seq, pending, last_error_code, last_error_detail";

fn decode(row: &SqliteRow) -> Result<KeyRow, ReplicaError> {
    let view: String = row.try_get("data")?;
    let server: Option<String> = row.try_get("server_data")?;
    let code: Option<String> = row.try_get("last_error_code")?;
    let detail: Option<String> = row.try_get("last_error_detail")?;
    Ok(KeyRow {
        view: serde_json::from_str(&view)?,
        server: server.map(|s| serde_json::from_str(&s)).transpose()?,
        seq: row.try_get("seq")?,
        pending: row.try_get("pending")?,
        rejection: code.map(|code| Rejection {
            code,
            detail: detail.unwrap_or_default(),
        }),
    })
}

pub(crate) async fn get(
    conn: &mut SqliteConnection,
    id: KeyId,
) -> Result<Option<KeyRow>, ReplicaError> {
    sqlx::query(&format!("SELECT {COLUMNS} FROM keys WHERE id = ?"))
        .bind(id.to_string())
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(decode)
        .transpose()
}

/// Inserts or replaces the row, deriving the list/filter/sort columns from `row.view`.
pub(crate) async fn put(conn: &mut SqliteConnection, row: &KeyRow) -> Result<(), ReplicaError> {
    let v = &row.view;
    sqlx::query(
        "INSERT INTO keys (id, name, name_fold, environment, disabled, scopes, created_at,
                expires_at, revoked_at, updated_at, last_used_at, seq, data, server_data, pending,
                last_error_code, last_error_detail)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET
            name = excluded.name, name_fold = excluded.name_fold,
            environment = excluded.environment, disabled = excluded.disabled,
            scopes = excluded.scopes, created_at = excluded.created_at,
            expires_at = excluded.expires_at, revoked_at = excluded.revoked_at,
            updated_at = excluded.updated_at, last_used_at = excluded.last_used_at,
            seq = excluded.seq, data = excluded.data, server_data = excluded.server_data,
            pending = excluded.pending, last_error_code = excluded.last_error_code,
            last_error_detail = excluded.last_error_detail",
    )
    .bind(v.id.to_string())
    .bind(&v.name)
    .bind(v.name.to_lowercase())
    .bind(v.environment.as_str())
    .bind(v.disabled)
    .bind(serde_json::to_string(&v.scopes)?)
    .bind(micros(v.created_at))
    .bind(v.expires_at.map(micros))
    .bind(v.revoked_at.map(micros))
    .bind(micros(v.updated_at))
    .bind(v.last_used_at.map(micros))
    .bind(row.seq)
    .bind(serde_json::to_string(v)?)
    .bind(row.server.as_ref().map(serde_json::to_string).transpose()?)
    .bind(row.pending)
    .bind(row.rejection.as_ref().map(|r| &r.code))
    .bind(row.rejection.as_ref().map(|r| &r.detail))
    .execute(conn)
    .await?;
    Ok(())
}

pub(crate) async fn delete(conn: &mut SqliteConnection, id: KeyId) -> Result<(), ReplicaError> {
    sqlx::query("DELETE FROM keys WHERE id = ?")
        .bind(id.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

/// The keys matching `filter` at `now`.
/// Appends `filter`'s conditions (everything but order and paging) to `q`.
fn push_conditions(q: &mut QueryBuilder<'_, Sqlite>, filter: &KeyFilter, now: i64) {
    if let Some(search) = filter.search.as_deref().filter(|s| !s.is_empty()) {
        q.push(" AND instr(name_fold, ")
            .push_bind(search.to_lowercase())
            .push(") > 0");
    }
    if let Some(env) = filter.environment {
        q.push(" AND environment = ").push_bind(env.as_str());
    }
    if let Some(scope) = &filter.scope {
        q.push(" AND EXISTS (SELECT 1 FROM json_each(keys.scopes) WHERE json_each.value = ")
            .push_bind(scope.clone())
            .push(")");
    }
    if let Some(status) = filter.status {
        // Mirrors `KeyStatus::at`: revoked outranks expired, which outranks disabled.
        let not_revoked = |q: &mut QueryBuilder<'_, Sqlite>| {
            q.push(" AND (revoked_at IS NULL OR revoked_at > ")
                .push_bind(now)
                .push(")");
        };
        let not_expired = |q: &mut QueryBuilder<'_, Sqlite>| {
            q.push(" AND (expires_at IS NULL OR expires_at > ")
                .push_bind(now)
                .push(")");
        };
        match status {
            KeyStatus::Revoked => {
                q.push(" AND revoked_at <= ").push_bind(now);
            }
            KeyStatus::Expired => {
                not_revoked(q);
                q.push(" AND expires_at <= ").push_bind(now);
            }
            KeyStatus::Disabled | KeyStatus::Active => {
                not_revoked(q);
                not_expired(q);
                q.push(" AND disabled = ")
                    .push_bind(status == KeyStatus::Disabled);
            }
        }
    }
}

/// How many keys match `filter`, ignoring its paging.
pub(crate) async fn count(
    conn: &mut SqliteConnection,
    filter: &KeyFilter,
    now: DateTime<Utc>,
) -> Result<u64, ReplicaError> {
    let now = micros(now);
    let mut q = QueryBuilder::<Sqlite>::new("SELECT count(*) FROM keys WHERE 1 = 1");
    push_conditions(&mut q, filter, now);
    let n: i64 = q.build_query_scalar().fetch_one(conn).await?;
    Ok(n.max(0) as u64)
}

pub(crate) async fn list(
    conn: &mut SqliteConnection,
    filter: &KeyFilter,
    now: DateTime<Utc>,
) -> Result<Vec<KeyRow>, ReplicaError> {
    let now = micros(now);
    let mut q = QueryBuilder::<Sqlite>::new(format!("SELECT {COLUMNS} FROM keys WHERE 1 = 1"));
    push_conditions(&mut q, filter, now);
    let dir = if filter.descending { "DESC" } else { "ASC" };
    q.push(format!(
        " ORDER BY {} {dir} NULLS LAST, id {dir} LIMIT ",
        crate::filter::sort_column(filter.sort)
    ))
    .push_bind(filter.limit.map_or(-1, i64::from))
    .push(" OFFSET ")
    .push_bind(i64::from(filter.offset));
    q.build()
        .fetch_all(conn)
        .await?
        .iter()
        .map(decode)
        .collect()
}

/// Shows (or clears) the server's refusal on key `id`.
pub(crate) async fn set_rejection(
    conn: &mut SqliteConnection,
    id: KeyId,
    rejection: Option<&Rejection>,
) -> Result<(), ReplicaError> {
    sqlx::query("UPDATE keys SET last_error_code = ?, last_error_detail = ? WHERE id = ?")
        .bind(rejection.map(|r| &r.code))
        .bind(rejection.map(|r| &r.detail))
        .bind(id.to_string())
        .execute(conn)
        .await?;
    Ok(())
}
