//! `GET /v1/sync/pull` and `POST /v1/sync/push`: the desktop's replica and outbox.

use axum::Json;
use axum::extract::State;
use keyward_core::KeyId;
use keyward_core::api::ApiKey;
use keyward_core::api::sync::{DEFAULT_PULL_LIMIT, MAX_PULL_LIMIT, MAX_PUSH_OPS};
use keyward_core::api::{
    Change, ChangeOp, Entity, FieldError, OpParseError, OpResult, OpStatus, PullQuery,
    PullResponse, PushOp, PushResponse, ReceivedPush, RefusalCode,
};
use keyward_core::validate::FieldErrors;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::{AppError, AppResult};
use crate::http::extract::{AppJson, AppQuery};
use crate::keys::{self, DEFAULT_ROTATION_GRACE_SECS};
use crate::session::AdminSession;
use crate::state::AppState;
use crate::store::{self, now_micros};

type Problem = keyward_core::api::Problem;

/// Changes after `since` (keys and audit entries; key records never carry a secret or a hash),
/// read from one snapshot, in change order, with the organisation's signed audit chain head
/// of that snapshot for the desktop to witness.
#[utoipa::path(get, path = "/v1/sync/pull", tag = "sync", security(("session" = [])), params(PullQuery),
    responses((status = 200, body = PullResponse), (status = 401, body = Problem), (status = 422, body = Problem)))]
pub async fn pull(
    State(state): State<AppState>,
    session: AdminSession,
    AppQuery(q): AppQuery<PullQuery>,
) -> AppResult<Json<PullResponse>> {
    let mut errs = FieldErrors::new();
    let since = q.since.unwrap_or(0);
    if since < 0 {
        errs.push(FieldError::new(
            "since",
            "out_of_range",
            "must be 0 or a cursor from a previous pull",
        ));
    }
    let limit = q.limit.unwrap_or(DEFAULT_PULL_LIMIT);
    if !(1..=MAX_PULL_LIMIT).contains(&limit) {
        errs.push(FieldError::new(
            "limit",
            "out_of_range",
            format!("must be between 1 and {MAX_PULL_LIMIT}"),
        ));
    }
    errs.into_result()?;

    let mut tx = store::begin_snapshot(&state.pool).await?;
    let now = chrono::Utc::now();
    let keys = store::keys::changed_since(&mut tx, session.org_id, since, limit + 1).await?;
    let audit = store::audit::changed_since(&mut tx, session.org_id, since, limit + 1).await?;
    let audit_head = store::audit::head(&mut tx, session.org_id).await?;
    tx.commit().await?;

    let mut changes: Vec<Change> = keys
        .iter()
        .map(|k| {
            change(
                k.change_seq(),
                Entity::Key,
                k.id.to_string(),
                serde_json::to_value(k.to_api(now)),
            )
        })
        .chain(audit.into_iter().map(|(seq, e)| {
            change(
                seq,
                Entity::Audit,
                e.id.to_string(),
                serde_json::to_value(e),
            )
        }))
        .collect();
    changes.sort_by_key(|c| c.seq);
    let has_more = changes.len() > limit as usize;
    changes.truncate(limit as usize);
    let cursor = changes.last().map_or(since, |c| c.seq);
    Ok(Json(PullResponse {
        changes,
        cursor,
        has_more,
        audit_head,
        audit_public_key: state.audit_key().map(|k| k.to_base64()),
    }))
}

fn change(
    seq: i64,
    entity: Entity,
    id: String,
    data: Result<serde_json::Value, serde_json::Error>,
) -> Change {
    Change {
        seq,
        entity,
        id,
        op: ChangeOp::Upsert,
        data: data.ok(),
    }
}

/// Applies queued operations in order, each in its own transaction with its result, so a
/// replay (or a retry after a cut connection) returns the first result and changes nothing.
/// Each operation is read on its own ([`PushOp::parse`]): an unknown kind is rejected
/// `unknown_operation`, a malformed one `malformed_operation`, and the others still apply. Only
/// an operation without a UUID `op_id` (nothing to answer it by) refuses the whole push (422).
#[utoipa::path(post, path = "/v1/sync/push", tag = "sync", security(("session" = [])), request_body = ReceivedPush,
    responses((status = 200, body = PushResponse), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 422, body = Problem)))]
pub async fn push(
    State(state): State<AppState>,
    session: AdminSession,
    AppJson(req): AppJson<ReceivedPush>,
) -> AppResult<Json<PushResponse>> {
    session.require_write()?;
    if req.ops.len() > MAX_PUSH_OPS {
        return Err(AppError::field(
            "ops",
            "too_many",
            format!("at most {MAX_PUSH_OPS} operations per push"),
        ));
    }
    let ops = receive(req)?;
    let mut results = Vec::with_capacity(ops.len());
    for op in ops {
        match apply(&state, &session, op).await {
            Ok(result) => results.push(result),
            // The ops before this one are committed: their results must reach the client. It
            // answers with them; the ops without an answer stay in the client's outbox and are
            // sent again.
            Err(e) if !results.is_empty() => {
                tracing::warn!(error = %e, answered = results.len(), "push stopped early; the rest is retried");
                break;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(Json(PushResponse { results }))
}

/// One operation of a push, read: typed, or refused before anything of it applies.
enum Received {
    Op(Box<PushOp>),
    Refused {
        op_id: Uuid,
        /// Its `kind` as sent (for the record of the op id), when it was a string.
        kind: Option<String>,
        code: RefusalCode,
        detail: String,
    },
}

impl Received {
    fn op_id(&self) -> Uuid {
        match self {
            Received::Op(op) => op.op_id(),
            Received::Refused { op_id, .. } => *op_id,
        }
    }
}

/// Reads every operation of the push (the one place the wire form becomes [`PushOp`]). An
/// operation without a usable `op_id` cannot be answered: the push is refused, naming it,
/// before anything applies.
fn receive(req: ReceivedPush) -> AppResult<Vec<Received>> {
    req.ops
        .into_iter()
        .enumerate()
        .map(|(i, value)| match PushOp::parse(value) {
            Ok(op) => Ok(Received::Op(Box::new(op))),
            Err(OpParseError::Refused {
                op_id,
                kind,
                code,
                detail,
            }) => Ok(Received::Refused {
                op_id,
                kind,
                code,
                detail,
            }),
            Err(OpParseError::NoOpId(why)) => Err(AppError::field(
                &format!("ops[{i}].op_id"),
                "invalid",
                format!("{why}: every operation needs its UUIDv7 op_id"),
            )),
        })
        .collect()
}

/// Whether a database error is about the server's state (connection, resources, a lost race)
/// rather than about the operation's data: such an operation is worth sending again.
fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => db.code().is_some_and(|c| {
            // connection exception, transaction rollback (serialization, deadlock),
            // insufficient resources, operator intervention, system error
            ["08", "40", "53", "57", "58"]
                .iter()
                .any(|class| c.starts_with(class))
        }),
        _ => true,
    }
}

fn rejected(op_id: Uuid, e: &AppError) -> OpResult {
    let problem = e.to_problem();
    let detail = match problem.errors.as_slice() {
        [] => problem.detail,
        errors => errors
            .iter()
            .map(|f| format!("{}: {}", f.field, f.message))
            .collect::<Vec<_>>()
            .join("; "),
    };
    refusal(op_id, problem.code, &detail)
}

/// A rejected result with `code` and `detail`. The result is stored (replays answer it) and a
/// parser's message may quote the hostile input: no control characters (PostgreSQL cannot
/// store NUL), and a bounded length.
fn refusal(op_id: Uuid, code: String, detail: &str) -> OpResult {
    OpResult {
        op_id,
        status: OpStatus::Rejected,
        code: Some(code),
        detail: Some(printable(detail, REJECTION_DETAIL_MAX_CHARS)),
        record: None,
    }
}

/// `text` without control characters, at most `max` characters.
fn printable(text: &str, max: usize) -> String {
    text.chars().filter(|c| !c.is_control()).take(max).collect()
}

/// The longest rejection detail kept with an operation's result.
const REJECTION_DETAIL_MAX_CHARS: usize = 1000;
/// The longest `kind` kept with a refused operation's id.
const KIND_MAX_CHARS: usize = 64;

async fn apply(state: &AppState, session: &AdminSession, op: Received) -> AppResult<OpResult> {
    let op_id = op.op_id();
    if op_id.get_version_num() != 7 {
        let e = AppError::field("op_id", "invalid_id", "must be a UUIDv7");
        return Ok(rejected(op_id, &e));
    }
    let kind = match &op {
        Received::Op(op) => op.kind().as_str().to_owned(),
        Received::Refused { kind, .. } => kind
            .as_deref()
            .map_or_else(String::new, |k| printable(k, KIND_MAX_CHARS)),
    };
    let mut tx = state.pool.begin().await?;
    match store::sync::claim(&mut tx, op_id, session.org_id, session.admin_id, &kind).await? {
        store::sync::Claim::New => {}
        store::sync::Claim::Done { org_id, result } => {
            let e = AppError::Conflict {
                code: "op_id_conflict",
                detail: "this operation id was used before".into(),
            };
            return Ok(result
                .filter(|_| org_id == session.org_id)
                .unwrap_or_else(|| rejected(op_id, &e)));
        }
    }
    let op = match op {
        Received::Op(op) => *op,
        Received::Refused { code, detail, .. } => {
            // Nothing of it applies; its refusal is its result, answered again on a replay.
            tracing::info!(%op_id, %code, "sync operation refused unread");
            let result = refusal(op_id, code.as_str().to_owned(), &detail);
            store::sync::record(&mut tx, &result).await?;
            tx.commit().await?;
            return Ok(result);
        }
    };
    let mut savepoint = sqlx::Acquire::begin(&mut *tx).await?;
    let outcome = run(&mut savepoint, state, session, &op).await;
    let (result, touched) = match outcome {
        Ok((key, touched)) => {
            savepoint.commit().await?;
            let record = serde_json::to_value(key).ok();
            (
                OpResult {
                    op_id,
                    status: OpStatus::Applied,
                    code: None,
                    detail: None,
                    record,
                },
                touched,
            )
        }
        Err(AppError::Database(db)) if !is_transient(&db) => {
            // The database refused this operation's data (a value it cannot store, a
            // constraint): the operation is refused, the batch goes on.
            tracing::warn!(%op_id, error = %db, "sync operation refused by the database");
            savepoint.rollback().await?;
            let e = AppError::Conflict {
                code: "unprocessable_operation",
                detail: "the operation holds data the server cannot store".into(),
            };
            (rejected(op_id, &e), Vec::new())
        }
        Err(e @ (AppError::Database(_) | AppError::Internal(_))) => return Err(e),
        Err(e) => {
            savepoint.rollback().await?;
            (rejected(op_id, &e), Vec::new())
        }
    };
    store::sync::record(&mut tx, &result).await?;
    tx.commit().await?;
    for id in touched {
        state.verifier.invalidate(id);
    }
    Ok(result)
}

/// One operation, read and typed already: here only the server's rules judge its values.
/// Returns the resulting key and the ids whose cached records it changed.
async fn run(
    conn: &mut PgConnection,
    state: &AppState,
    session: &AdminSession,
    op: &PushOp,
) -> AppResult<(ApiKey, Vec<KeyId>)> {
    let actor = &session.actor;
    let now = now_micros();
    match op {
        PushOp::CreateKey { data, .. } => {
            let new = keys::parse_create(data, now)?;
            let Some((id, hash)) = new.offline.clone() else {
                return Err(AppError::field(
                    "data.secret_hash",
                    "required",
                    "create_key carries the key's id and argon2id hash, never a token",
                ));
            };
            Ok((
                keys::create(
                    conn,
                    actor,
                    new,
                    id,
                    hash,
                    now,
                    state.config.keys.max_per_org,
                )
                .await?,
                vec![id],
            ))
        }
        PushOp::UpdateKey {
            key_id,
            base_seq,
            data,
            ..
        } => {
            let patch = keys::parse_update(data, now)?;
            Ok((
                keys::update(conn, actor, *key_id, patch, *base_seq, now).await?,
                vec![*key_id],
            ))
        }
        PushOp::RevokeKey { key_id, data, .. } => {
            let (grace, reason) = keys::parse_revoke(data)?;
            Ok((
                keys::revoke(conn, actor, *key_id, grace, reason, now).await?,
                vec![*key_id],
            ))
        }
        PushOp::RotateKey { key_id, data, .. } => {
            keys::offline_secret(
                "data.new_id",
                data.new_id,
                "data.secret_hash",
                &data.secret_hash,
            )?;
            keyward_core::requests::offline_id_time("data.new_id", data.new_id, now)?;
            let grace = keyward_core::validate::grace_seconds(
                "data.grace_seconds",
                data.grace_seconds.unwrap_or(DEFAULT_ROTATION_GRACE_SECS),
            )?;
            let (key, _previous) = keys::rotate(
                conn,
                actor,
                *key_id,
                grace,
                data.new_id,
                data.secret_hash.clone(),
                now,
            )
            .await?;
            Ok((key, vec![*key_id, data.new_id]))
        }
    }
}
