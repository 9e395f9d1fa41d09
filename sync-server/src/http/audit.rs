//! `GET /v1/audit` and `GET /v1/audit/verify`.

use axum::Json;
use axum::extract::State;
use keyward_core::api::{AuditEntry, AuditVerifyReport, FieldError, Page, PageQuery};
use keyward_core::validate::{self, FieldErrors};

use crate::error::AppResult;
use crate::http::extract::AppQuery;
use crate::session::AdminSession;
use crate::state::AppState;
use crate::store;

type Problem = keyward_core::api::Problem;

/// The organisation's audit log, newest first.
#[utoipa::path(get, path = "/v1/audit", tag = "audit", security(("session" = [])), params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "1..=500, default 50"),
        ("cursor" = Option<String>, Query, pattern = r"^[1-9][0-9]{0,17}$",
         description = "`next_cursor` of the previous page (a sequence number)")),
    responses((status = 200, body = Page<AuditEntry>), (status = 401, body = Problem), (status = 422, body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    session: AdminSession,
    AppQuery(q): AppQuery<PageQuery>,
) -> AppResult<Json<Page<AuditEntry>>> {
    let mut errs = FieldErrors::new();
    let limit = errs.check(validate::page_limit("limit", q.limit));
    let before = errs.check(
        q.cursor
            .as_deref()
            .map(|c| {
                // Exactly what the document's pattern allows: no sign, no leading zero.
                let plain = (1..=18).contains(&c.len())
                    && !c.starts_with('0')
                    && c.bytes().all(|b| b.is_ascii_digit());
                plain.then(|| c.parse::<i64>().ok()).flatten()
            })
            .map(|c| {
                c.ok_or_else(|| {
                    FieldError::new(
                        "cursor",
                        "invalid_cursor",
                        "is not a cursor this server issued",
                    )
                })
            })
            .transpose(),
    );
    errs.into_result()?;
    let (Some(limit), Some(before)) = (limit, before) else {
        unreachable!("checked above")
    };
    let mut items = store::audit::list(
        &mut *state.pool.acquire().await?,
        session.org_id,
        before,
        limit + 1,
    )
    .await?;
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let next_cursor = more
        .then(|| items.last().map(|e| e.seq.to_string()))
        .flatten();
    Ok(Json(Page { items, next_cursor }))
}

/// Re-computes the organisation's hash chain and reports the first broken link. With the
/// server's audit signing key, the recorded head must also carry a valid signature (a head a
/// database writer truncated, reset or forged does not) and the chain must reach it; the answer
/// names the head and the public key it was checked against.
#[utoipa::path(get, path = "/v1/audit/verify", tag = "audit", security(("session" = [])),
    responses((status = 200, body = AuditVerifyReport), (status = 401, body = Problem)))]
pub async fn verify_chain(
    State(state): State<AppState>,
    session: AdminSession,
) -> AppResult<Json<AuditVerifyReport>> {
    let key = state.audit_key();
    // The head and the entries from one snapshot: an append in between is no broken link.
    let mut tx = crate::store::begin_snapshot(&state.pool).await?;
    let report = store::audit::check_chain(&mut tx, session.org_id, key.as_ref()).await?;
    tx.commit().await?;
    Ok(Json(AuditVerifyReport {
        ok: report.first_broken.is_none(),
        checked: report.checked,
        first_broken: report.first_broken,
        signed: report.signed,
        head: report.head,
        public_key: key.map(|k| k.to_base64()),
    }))
}
