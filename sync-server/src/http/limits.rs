//! Where keys stand against their limits: `GET /v1/keys/{id}/limits` and
//! `GET /v1/ratelimits/violations`.

use axum::Json;
use axum::extract::State;
use chrono::{Duration, Utc};
use keyward_core::KeyId;
use keyward_core::api::{
    Consistency, FieldError, KeyLimits, LimitUsage, QuotaForecast, ViolationList, ViolationsQuery,
};
use keyward_core::limit::{Kind, headers};

use crate::error::{AppError, AppResult};
use crate::http::extract::{AppPath, AppQuery};
use crate::http::verify::verify_error;
use crate::session::AdminSession;
use crate::state::AppState;
use crate::store;

type Problem = keyward_core::api::Problem;

/// The longest period one violations query may cover.
const MAX_RANGE_DAYS: i64 = 93;

/// Refusals per key and rule in a period (default: the last 24 hours), most first.
#[utoipa::path(get, path = "/v1/ratelimits/violations", tag = "limits", security(("session" = [])), params(ViolationsQuery),
    responses((status = 200, body = ViolationList), (status = 401, body = Problem), (status = 422, body = Problem)))]
pub async fn violations(
    State(state): State<AppState>,
    session: AdminSession,
    AppQuery(q): AppQuery<ViolationsQuery>,
) -> AppResult<Json<ViolationList>> {
    let to = q.to.unwrap_or_else(Utc::now);
    let from = q.from.unwrap_or(to - Duration::hours(24));
    if from >= to {
        return Err(FieldError::new("from", "out_of_range", "must be before `to`").into());
    }
    if to - from > Duration::days(MAX_RANGE_DAYS) {
        return Err(FieldError::new(
            "from",
            "out_of_range",
            format!("the period may cover at most {MAX_RANGE_DAYS} days"),
        )
        .into());
    }
    let items = store::limits::violations(
        &mut *state.pool.acquire().await?,
        session.org_id,
        q.key_id,
        from,
        to,
    )
    .await?;
    Ok(Json(ViolationList { items }))
}

/// A key's effective rules, where it stands against each right now, and its violations of the
/// last 24 hours.
#[utoipa::path(get, path = "/v1/keys/{id}/limits", tag = "limits", security(("session" = [])),
    params(("id" = String, Path, description = "key id")),
    responses((status = 200, body = KeyLimits), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn key_limits(
    State(state): State<AppState>,
    session: AdminSession,
    AppPath(id): AppPath<String>,
) -> AppResult<Json<KeyLimits>> {
    let id: KeyId = id.parse().map_err(|_| AppError::key_not_found())?;
    let mut conn = state.pool.acquire().await?;
    let row = store::keys::find_in_org(&mut conn, session.org_id, id, false)
        .await?
        .ok_or_else(AppError::key_not_found)?;
    let key = state.verifier.key(id).await.map_err(verify_error)?;
    let now = Utc::now();
    let mut rules = Vec::new();
    let mut forecast = Vec::new();
    let mut soft_threshold = keyward_core::limit::rules::DEFAULT_SOFT_THRESHOLD;
    if let Some(limits) = key.as_ref().and_then(|k| k.limits.clone()) {
        soft_threshold = limits.soft_threshold;
        // A check of no units reads the counters without consuming (shared ones in Redis mode).
        let outcome = state
            .verifier
            .limiter
            .check(KeyId::from_uuid(row.lineage_id), &limits, 0, now)
            .await;
        for (rule, d) in limits.rules.iter().zip(outcome.decisions()) {
            if let Some((start, end)) = keyward_core::limit::forecast::period(rule.kind, now) {
                let f = keyward_core::limit::forecast::forecast(
                    rule.quota(),
                    d.used(),
                    start,
                    end,
                    now,
                );
                forecast.push(QuotaForecast {
                    quota: rule.name.clone(),
                    exhausts_at: f.exhausts_at,
                    confidence: f.confidence,
                });
            }
            rules.push(LimitUsage {
                policy: rule.name.clone(),
                kind: match rule.kind {
                    Kind::Rate(a) => a.as_str(),
                    Kind::Daily => "daily",
                    Kind::Monthly => "monthly",
                }
                .to_owned(),
                limit: rule.quota(),
                window_seconds: rule.window_ms / 1000,
                used: d.used(),
                remaining: d.remaining,
                reset_seconds: headers::seconds(d.reset_ms),
                consistency: if rule.leased {
                    Consistency::Leased
                } else {
                    Consistency::Exact
                },
            });
        }
    }
    let violations = store::limits::violations(
        &mut conn,
        session.org_id,
        Some(id),
        now - Duration::hours(24),
        now,
    )
    .await?;
    Ok(Json(KeyLimits {
        key_id: id,
        tier: row.tier,
        soft_threshold,
        rules,
        violations,
        mode: state.verifier.limiter.mode().as_str().to_owned(),
        forecast,
    }))
}
