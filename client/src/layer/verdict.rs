//! What the layer does with a presented key: answer from the cache, or ask the server and
//! turn its answer into a [`Verdict`].

use std::net::IpAddr;
use std::time::Duration;

use http::header::{AUTHORIZATION, HeaderName, HeaderValue, RETRY_AFTER};
use http::{HeaderMap, StatusCode};
use keyward_core::api::{VerifyCode, VerifyRequest, VerifyResponse};
use sha2::{Digest, Sha256};

use super::refusal::Refusal;
use super::{CacheKey, Shared, VerifiedKey};
use crate::ClientError;

/// What the layer does with a request.
#[derive(Debug)]
pub(super) enum Verdict {
    /// Pass it on, with the key in its extensions and these fields on the answer.
    Allow {
        key: VerifiedKey,
        headers: HeaderMap,
    },
    Refuse(Refusal),
}

impl Shared {
    pub(super) async fn check(&self, token: &str, ip: Option<IpAddr>) -> Verdict {
        let cache_key = self.cache.as_ref().map(|_| CacheKey {
            token: Sha256::digest(token.as_bytes()).into(),
            scope: self.scope.clone(),
            ip: ip.map(|ip| ip.to_canonical()),
        });
        if let (Some(cache), Some(k)) = (&self.cache, &cache_key)
            && let Some(key) = cache.get(k)
        {
            return Verdict::Allow {
                key,
                headers: HeaderMap::new(),
            };
        }
        let req = VerifyRequest {
            key: token.to_owned(),
            scope: self.scope.as_deref().map(str::to_owned),
            cost: self.cost,
            client_ip: ip.map(|ip| ip.to_string()),
        };
        match self.client.verify(&req).await {
            Ok(answer) => {
                let cacheable = cacheable(&answer, self.cache_ttl, chrono::Utc::now());
                let verdict = decide(answer);
                if cacheable
                    && let (Some(cache), Some(k), Verdict::Allow { key, .. }) =
                        (&self.cache, cache_key, &verdict)
                {
                    cache.insert(k, key.clone());
                }
                verdict
            }
            Err(e) => {
                let refusal = Refusal::from_client_error(&e);
                match &e {
                    _ if refusal.status == StatusCode::TOO_MANY_REQUESTS => {
                        tracing::debug!(code = %refusal.code, "Keyward verify throttled");
                    }
                    // Its message quotes the answer's body: not for the log.
                    ClientError::Unexpected { status, .. } => tracing::warn!(
                        %status,
                        "Keyward verify answered unexpectedly; refusing the request"
                    ),
                    _ => tracing::warn!(error = %e, "Keyward verify failed; refusing the request"),
                }
                Verdict::Refuse(refusal)
            }
        }
    }
}

/// The key of a request, by the server's rule ([`keyward_core::api::presented_key`]).
pub(super) fn presented_key(headers: &HeaderMap) -> Option<&str> {
    keyward_core::api::presented_key(
        headers.get(AUTHORIZATION).map(HeaderValue::as_bytes),
        headers.get("x-api-key").map(HeaderValue::as_bytes),
    )
}

/// Whether a positive answer may be reused: valid, no limits to count, not expiring within
/// the time to live.
pub(super) fn cacheable(
    answer: &VerifyResponse,
    ttl: Duration,
    now: chrono::DateTime<chrono::Utc>,
) -> bool {
    let expires_in_time = answer.expires_at.is_none_or(|at| {
        chrono::Duration::from_std(ttl)
            .ok()
            .and_then(|ttl| now.checked_add_signed(ttl))
            .is_some_and(|end| end < at)
    });
    answer.valid
        && answer.code == VerifyCode::Valid
        && answer.ratelimit.is_none()
        && answer.quota.is_none()
        && answer.headers.as_ref().is_none_or(|h| h.is_empty())
        && expires_in_time
}

/// The layer's verdict on the server's answer.
pub(super) fn decide(answer: VerifyResponse) -> Verdict {
    let mut headers = HeaderMap::new();
    for (name, value) in answer.headers.iter().flatten() {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(name, value);
        }
    }
    if answer.valid && answer.code == VerifyCode::Valid {
        return match (answer.key_id, answer.org_id) {
            (Some(key_id), Some(org_id)) => Verdict::Allow {
                key: VerifiedKey {
                    key_id,
                    org_id,
                    scopes: answer.scopes.unwrap_or_default(),
                },
                headers,
            },
            _ => Verdict::Refuse(Refusal::unavailable()),
        };
    }
    if answer.code == VerifyCode::Valid {
        // `valid: false` with code `valid`: not an answer to trust.
        return Verdict::Refuse(Refusal::unavailable());
    }
    let mut refusal = Refusal::for_code(answer.code);
    if refusal.status == StatusCode::TOO_MANY_REQUESTS
        && !headers.contains_key(RETRY_AFTER)
        && let Some(secs) = answer.retry_after_seconds
    {
        refusal.headers.insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    // The server's fields first, ours (`WWW-Authenticate`, a default `Retry-After`) only where
    // it sent none.
    for (name, value) in std::mem::take(&mut refusal.headers) {
        if let Some(name) = name
            && !headers.contains_key(&name)
        {
            headers.insert(name, value);
        }
    }
    refusal.headers = headers;
    Verdict::Refuse(refusal)
}
