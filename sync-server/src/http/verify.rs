//! Key-authenticated calls: `GET /v1/whoami` (the key in a header) and `POST /v1/verify` (a
//! platform service asks about a key it was given).

use std::net::IpAddr;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use keyward_core::api::FieldError;
use keyward_core::api::{MAX_COST, VerifyCode, VerifyRequest, VerifyResponse, Whoami};
use keyward_core::validate::{self, FieldErrors};

use crate::error::{AppError, AppResult};
use crate::http::extract::{AppJson, ClientIp};
use crate::limits;
use crate::state::AppState;
use crate::verify::{KeyRecord, Verdict, VerifyError};

type Problem = keyward_core::api::Problem;

/// The key of a request, by the one rule ([`keyward_core::api::presented_key`]): a blank key
/// is no key.
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    keyward_core::api::presented_key(
        headers
            .get(axum::http::header::AUTHORIZATION)
            .map(|v| v.as_bytes()),
        headers.get("x-api-key").map(|v| v.as_bytes()),
    )
}

pub(crate) fn verify_error(e: VerifyError) -> AppError {
    match e {
        VerifyError::Throttled { retry_after_secs } => AppError::TooManyRequests {
            code: "too_many_attempts",
            detail: format!("too many failed checks of this key; retry in {retry_after_secs} s"),
            retry_after_secs,
        },
        VerifyError::Overloaded(_) => crate::http::auth::overloaded(),
        VerifyError::Store(e) => {
            tracing::error!(error = %e, "key store unavailable");
            AppError::Unavailable {
                code: "store_unavailable",
                detail: "keys cannot be checked right now".into(),
                retry_after_secs: Some(1),
            }
        }
        VerifyError::Corrupt(e) => AppError::Internal(e.into()),
    }
}

/// The API outcome of a refused key on a key-authenticated call.
pub(crate) fn refusal(code: VerifyCode) -> AppError {
    let unauthorized = |code, detail: &str| AppError::Unauthorized {
        code,
        detail: detail.into(),
    };
    match code {
        VerifyCode::Revoked => unauthorized("key_revoked", "the API key was revoked"),
        VerifyCode::Expired => unauthorized("key_expired", "the API key has expired"),
        VerifyCode::Disabled => unauthorized("key_disabled", "the API key is disabled"),
        VerifyCode::IpNotAllowed => AppError::Forbidden {
            code: "ip_not_allowed",
            detail: "the API key may not be used from this address".into(),
        },
        VerifyCode::InsufficientScope => AppError::Forbidden {
            code: "insufficient_scope",
            detail: "the API key lacks the scope this call needs".into(),
        },
        VerifyCode::RateLimited => AppError::TooManyRequests {
            code: "rate_limited",
            detail: "the API key's rate limit is exhausted".into(),
            retry_after_secs: 1,
        },
        VerifyCode::QuotaExceeded => AppError::TooManyRequests {
            code: "quota_exceeded",
            detail: "the API key's quota is exhausted".into(),
            retry_after_secs: 60,
        },
        VerifyCode::NotFound | VerifyCode::Valid => unauthorized(
            "invalid_key",
            "the API key is missing, malformed or unknown",
        ),
    }
}

/// A key that passed every check, with its limits' answer (when it has limits), for the
/// caller to put the rate-limit fields on its answer with [`Authenticated::write_headers`].
pub(crate) struct Authenticated {
    pub key: Arc<KeyRecord>,
    outcome: Option<keyward_core::limit::Outcome>,
}

impl Authenticated {
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        if let (Some(l), Some(o)) = (self.key.limits.as_deref(), &self.outcome) {
            limits::write_headers(headers, l, o);
        }
    }
}

/// A key-authenticated call's verdict: the key, or the whole refusal (problem+json, with the
/// rate-limit fields and `Retry-After` when a limit refused it). Shared by whoami and the
/// gateway.
pub(crate) async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    ip: Option<IpAddr>,
    scope: Option<&keyward_core::Scope>,
    cost: u64,
) -> Result<Authenticated, Response> {
    let Some(token) = presented_key(headers) else {
        state
            .verifier
            .unrecognized(crate::usage::Unrecognized::Missing, chrono::Utc::now());
        return Err(refusal(VerifyCode::NotFound).into_response());
    };
    let Verdict {
        code,
        key,
        limits: outcome,
    } = state
        .verifier
        .verify(token, scope, ip, cost, chrono::Utc::now())
        .await
        .map_err(|e| verify_error(e).into_response())?;
    match (code, key) {
        (VerifyCode::Valid, Some(key)) => Ok(Authenticated { key, outcome }),
        (code @ (VerifyCode::RateLimited | VerifyCode::QuotaExceeded), Some(key))
            if key.limits.is_some() && outcome.is_some() =>
        {
            let (Some(l), Some(o)) = (key.limits.as_deref(), outcome.as_ref()) else {
                unreachable!("checked by the guard")
            };
            let mut response = AppError::TooManyRequests {
                code: code.as_str(),
                detail: limits::refusal_detail(l, o),
                retry_after_secs: limits::retry_after_secs(o),
            }
            .into_response();
            limits::write_headers(response.headers_mut(), l, o);
            Err(response)
        }
        (code, _) => Err(refusal(code).into_response()),
    }
}

/// Who the presented key is.
#[utoipa::path(get, path = "/v1/whoami", tag = "verification", security(("api_key" = [])),
    responses((status = 200, body = Whoami), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 429, body = Problem), (status = 503, body = Problem)))]
pub async fn whoami(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
) -> Response {
    let started = std::time::Instant::now();
    let response = match authenticate(&state, &headers, ip, None, 1).await {
        Ok(auth) => {
            let key = &auth.key;
            let mut response = Json(Whoami {
                key_id: key.id,
                org_id: key.org_id,
                name: key.name.clone(),
                environment: key.environment,
                scopes: key.scopes.clone(),
                expires_at: key.expires_at,
            })
            .into_response();
            auth.write_headers(response.headers_mut());
            response
        }
        Err(refused) => refused,
    };
    state
        .metrics
        .whoami_duration
        .observe(started.elapsed().as_secs_f64());
    response
}

/// A verdict on a key for a platform service: always 200 for a well-formed request.
///
/// `client_ip` is believed only from a caller inside `verify_trusted_callers` (a platform
/// service verifying on behalf of its own callers must be listed there). From any other caller
/// it is ignored: the key's IP rules, its last-used address and networks are judged by the
/// connection's address, so an address cannot be claimed.
#[utoipa::path(post, path = "/v1/verify", tag = "verification", request_body = VerifyRequest,
    responses((status = 200, body = VerifyResponse), (status = 422, body = Problem), (status = 429, body = Problem),
              (status = 503, body = Problem)))]
pub async fn verify(
    State(state): State<AppState>,
    ClientIp(caller): ClientIp,
    AppJson(req): AppJson<VerifyRequest>,
) -> AppResult<Json<VerifyResponse>> {
    let started = std::time::Instant::now();
    let answer = verify_inner(&state, caller, req).await;
    state
        .metrics
        .verify_duration
        .observe(started.elapsed().as_secs_f64());
    answer
}

/// The address a verification is judged by: the body's `client_ip` from a trusted caller (none
/// when it sent none: the caller is not the client), the caller's own address otherwise.
fn judged_address(
    trusted_callers: &[ipnet::IpNet],
    caller: Option<IpAddr>,
    claimed: Option<IpAddr>,
) -> Option<IpAddr> {
    let trusted = caller.is_some_and(|ip| trusted_callers.iter().any(|n| n.contains(&ip)));
    if trusted {
        return claimed;
    }
    if let Some(claimed) = claimed
        && Some(claimed) != caller
    {
        tracing::debug!(
            caller = ?caller,
            "client_ip ignored: the caller is not in verify_trusted_callers"
        );
    }
    caller
}

async fn verify_inner(
    state: &AppState,
    caller: Option<IpAddr>,
    req: VerifyRequest,
) -> AppResult<Json<VerifyResponse>> {
    let mut errs = FieldErrors::new();
    if req.key.trim().is_empty() {
        errs.push(FieldError::new(
            "key",
            "required",
            "must not be empty: send the key the caller presented",
        ));
    }
    let scope = errs.check(
        req.scope
            .as_deref()
            .map(|s| validate::required_scope("scope", s))
            .transpose(),
    );
    let client_ip = errs.check(
        req.client_ip
            .as_deref()
            .map(|s| {
                s.trim()
                    .parse::<std::net::IpAddr>()
                    .map(|ip| ip.to_canonical())
            })
            .transpose()
            .map_err(|_| {
                FieldError::new("client_ip", "invalid_ip", "must be an IPv4 or IPv6 address")
            }),
    );
    if req.cost.is_some_and(|c| c == 0 || c > MAX_COST) {
        errs.push(FieldError::new(
            "cost",
            "out_of_range",
            format!("must be between 1 and {MAX_COST}"),
        ));
    }
    errs.into_result()?;
    let (Some(scope), Some(client_ip)) = (scope, client_ip) else {
        unreachable!("checked above")
    };
    let client_ip = judged_address(
        &state.config.client_ip.verify_trusted_callers,
        caller,
        client_ip,
    );
    let cost = u64::from(req.cost.unwrap_or(1));
    let Verdict {
        code,
        key,
        limits: outcome,
    } = state
        .verifier
        .verify(
            &req.key,
            scope.as_ref(),
            client_ip,
            cost,
            chrono::Utc::now(),
        )
        .await
        .map_err(verify_error)?;
    let checked = key
        .as_ref()
        .and_then(|k| k.limits.as_deref())
        .zip(outcome.as_ref());
    let (ratelimit, quota) = checked.map_or((None, None), |(l, o)| limits::verify_view(l, o));
    Ok(Json(VerifyResponse {
        ratelimit,
        quota,
        retry_after_seconds: checked
            .filter(|(_, o)| !o.allowed)
            .map(|(_, o)| limits::retry_after_secs(o)),
        headers: checked.map(|(l, o)| {
            limits::response_headers(l, o)
                .iter()
                .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
                .collect()
        }),
        warning: checked.filter(|(_, o)| o.warning).and_then(|(l, o)| {
            keyward_core::limit::headers::warning(&l.rules, o.decisions(), l.soft_threshold)
        }),
        valid: code == VerifyCode::Valid,
        code,
        key_id: key.as_ref().map(|k| k.id),
        org_id: key.as_ref().map(|k| k.org_id),
        environment: key.as_ref().map(|k| k.environment),
        scopes: key.as_ref().map(|k| k.scopes.clone()),
        expires_at: key.as_ref().and_then(|k| k.expires_at),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claimed_address_counts_only_from_a_trusted_caller() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.20.0.0/16".parse().unwrap()];
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        // A platform service inside the list speaks for its caller (or for nobody).
        assert_eq!(
            judged_address(&trusted, ip("10.20.1.1"), ip("203.0.113.9")),
            ip("203.0.113.9")
        );
        assert_eq!(judged_address(&trusted, ip("10.20.1.1"), None), None);
        // Anyone else is judged by its own address, whatever it claims.
        assert_eq!(
            judged_address(&trusted, ip("198.51.100.4"), ip("10.0.0.1")),
            ip("198.51.100.4")
        );
        assert_eq!(
            judged_address(&trusted, ip("198.51.100.4"), None),
            ip("198.51.100.4")
        );
        assert_eq!(
            judged_address(&[], ip("10.20.1.1"), ip("10.0.0.1")),
            ip("10.20.1.1")
        );
        assert_eq!(judged_address(&trusted, None, ip("10.0.0.1")), None);
    }
}
