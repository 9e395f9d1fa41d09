//! Gateway traffic for admins: `GET /v1/gateway/usage` (the organisation's total and each
//! key's) and `GET /v1/keys/{id}/gateway` (one key's routes), with status classes and latency
//! percentiles merged from the hourly histograms; `GET /v1/keys/{id}/networks`.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Duration, Utc};
use keyward_core::KeyId;
use keyward_core::api::{
    GatewayGroup, GatewayQuery, GatewayUsage, KeyNetwork, KeyNetworkList, StatusCounts,
};
use keyward_core::latency::Histogram;

use crate::error::{AppError, AppResult};
use crate::http::extract::{AppPath, AppQuery};
use crate::http::usage::period;
use crate::session::AdminSession;
use crate::state::AppState;
use crate::store;
use crate::store::usage::GatewayRow;

type Problem = keyward_core::api::Problem;

/// Keys listed at most by `GET /v1/gateway/usage` (the busiest).
const MAX_KEYS: usize = 100;

#[derive(Default)]
struct Acc {
    key: Option<(KeyId, String)>,
    route: Option<String>,
    calls: i64,
    latency_sum_us: i64,
    status: StatusCounts,
    latency: Histogram,
}

impl Acc {
    fn add(&mut self, row: &GatewayRow) {
        self.calls += row.calls;
        self.latency_sum_us = self.latency_sum_us.saturating_add(row.latency_sum_us);
        self.status.add(row.status, row.calls);
        self.latency.merge(&Histogram::from_counts(&row.latency));
    }

    fn group(self) -> GatewayGroup {
        let (key_id, key_name) = self.key.map_or((None, None), |(k, n)| (Some(k), Some(n)));
        GatewayGroup {
            key_id,
            key_name,
            route: self.route,
            calls: self.calls,
            error_share: if self.calls == 0 {
                0.0
            } else {
                self.status.server_error as f64 / self.calls as f64
            },
            status: self.status,
            latency_mean_ms: (self.calls > 0)
                .then(|| self.latency_sum_us as f64 / self.calls as f64 / 1000.0),
            latency_p50_ms: self.latency.quantile_ms(0.5),
            latency_p95_ms: self.latency.quantile_ms(0.95),
        }
    }
}

fn gateway_period(q: &GatewayQuery) -> AppResult<(DateTime<Utc>, DateTime<Utc>)> {
    period(
        q.from,
        q.to,
        Duration::hours(24),
        Duration::days(90),
        "gateway",
    )
}

/// The organisation's gateway calls over a period: the total first, then each key (the 100
/// busiest) with its status classes, server-error share and latency mean, p50 and p95.
#[utoipa::path(get, path = "/v1/gateway/usage", tag = "usage", security(("session" = [])), params(GatewayQuery),
    responses((status = 200, body = GatewayUsage), (status = 401, body = Problem), (status = 422, body = Problem)))]
pub async fn org_gateway(
    State(state): State<AppState>,
    session: AdminSession,
    AppQuery(q): AppQuery<GatewayQuery>,
) -> AppResult<Json<GatewayUsage>> {
    let (from, to) = gateway_period(&q)?;
    let rows =
        store::usage::gateway_rows(&state.pool, session.org_id.into_uuid(), None, from, to).await?;
    let mut total = Acc::default();
    let mut keys: HashMap<uuid::Uuid, Acc> = HashMap::new();
    for row in &rows {
        total.add(row);
        keys.entry(row.key_id)
            .or_insert_with(|| Acc {
                key: Some((KeyId::from_uuid(row.key_id), row.key_name.clone())),
                ..Acc::default()
            })
            .add(row);
    }
    let mut keys: Vec<Acc> = keys.into_values().collect();
    keys.sort_by(|a, b| b.calls.cmp(&a.calls).then(a.key.cmp(&b.key)));
    keys.truncate(MAX_KEYS);
    let groups = std::iter::once(total).chain(keys).map(Acc::group).collect();
    Ok(Json(GatewayUsage { from, to, groups }))
}

/// One key's gateway calls over a period: the key's total first, then each route group.
#[utoipa::path(get, path = "/v1/keys/{id}/gateway", tag = "keys", security(("session" = [])),
    params(("id" = String, Path, description = "key id"), GatewayQuery),
    responses((status = 200, body = GatewayUsage), (status = 401, body = Problem), (status = 404, body = Problem),
              (status = 422, body = Problem)))]
pub async fn key_gateway(
    State(state): State<AppState>,
    session: AdminSession,
    AppPath(id): AppPath<String>,
    AppQuery(q): AppQuery<GatewayQuery>,
) -> AppResult<Json<GatewayUsage>> {
    let id: KeyId = id.parse().map_err(|_| AppError::key_not_found())?;
    let (from, to) = gateway_period(&q)?;
    let mut conn = state.pool.acquire().await?;
    let key = store::keys::find_in_org(&mut conn, session.org_id, id, false)
        .await?
        .ok_or_else(AppError::key_not_found)?;
    drop(conn);
    let rows = store::usage::gateway_rows(
        &state.pool,
        session.org_id.into_uuid(),
        Some(id.into_uuid()),
        from,
        to,
    )
    .await?;
    let mut total = Acc {
        key: Some((id, key.name.clone())),
        ..Acc::default()
    };
    let mut routes: HashMap<String, Acc> = HashMap::new();
    for row in &rows {
        total.add(row);
        routes
            .entry(row.route.clone())
            .or_insert_with(|| Acc {
                key: Some((id, key.name.clone())),
                route: Some(row.route.clone()),
                ..Acc::default()
            })
            .add(row);
    }
    let mut routes: Vec<Acc> = routes.into_values().collect();
    routes.sort_by(|a, b| b.calls.cmp(&a.calls).then(a.route.cmp(&b.route)));
    let groups = std::iter::once(total)
        .chain(routes)
        .map(Acc::group)
        .collect();
    Ok(Json(GatewayUsage { from, to, groups }))
}

/// The networks (IPv4 /24, IPv6 /48) the key and its rotation lineage were used from.
#[utoipa::path(get, path = "/v1/keys/{id}/networks", tag = "keys", security(("session" = [])),
    params(("id" = String, Path, description = "key id")),
    responses((status = 200, body = KeyNetworkList), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn key_networks(
    State(state): State<AppState>,
    session: AdminSession,
    AppPath(id): AppPath<String>,
) -> AppResult<Json<KeyNetworkList>> {
    let id: KeyId = id.parse().map_err(|_| AppError::key_not_found())?;
    let mut conn = state.pool.acquire().await?;
    store::keys::find_in_org(&mut conn, session.org_id, id, false)
        .await?
        .ok_or_else(AppError::key_not_found)?;
    drop(conn);
    let rows =
        store::usage::networks_of_key(&state.pool, id.into_uuid(), session.org_id.into_uuid())
            .await?;
    Ok(Json(KeyNetworkList {
        items: rows
            .into_iter()
            .map(|r| KeyNetwork {
                network: r.network,
                first_seen: r.first_seen,
                last_seen: r.last_seen,
                calls: r.calls,
            })
            .collect(),
    }))
}
