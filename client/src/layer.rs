//! A tower layer that guards a service with Keyward API keys.
//!
//! Wrap a router (or any tower service taking `http::Request<B>`) with one line:
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use axum::routing::get;
//! use axum::{Extension, Router};
//! use keyward_client::KeywardClient;
//! use keyward_client::layer::{KeywardLayer, VerifiedKey};
//!
//! async fn badges(Extension(key): Extension<VerifiedKey>) -> String {
//!     format!("badges of {}", key.org_id)
//! }
//!
//! # fn main() -> keyward_client::Result<()> {
//! let client = KeywardClient::new("https://keyward.internal")?;
//! let app: Router = Router::new().route("/badges", get(badges)).layer(
//!     KeywardLayer::new(client)
//!         .scope("achievements:write") // optional: the scope every call needs
//!         .cost(1) // optional: units per call (1 when unset)
//!         .cache_ttl(Duration::from_secs(2)) // optional: 2 s is the default, 0 disables
//!         // optional: the caller's address, for keys with an IP allow-list
//!         .client_ip(|parts| {
//!             parts
//!                 .extensions
//!                 .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
//!                 .map(|c| c.0.ip())
//!         }),
//! );
//! # Ok(())
//! # }
//! ```
//!
//! For every request the layer takes the key from `Authorization: Bearer kw_...` (or, when no
//! `Authorization` field is present, `X-API-Key: kw_...`) and asks the server's
//! `POST /v1/verify`. A handler reached through the layer finds the key in the request
//! extensions as a [`VerifiedKey`]; the answer carries the key's rate-limit fields
//! (`RateLimit-Policy`, `RateLimit`, `X-RateLimit-*`) exactly as the server computed them.
//!
//! Refusals are `application/problem+json` (RFC 9457) with the same codes as the server's own
//! key-authenticated calls (shared/API.md, "Outcomes on key-authenticated calls"):
//!
//! | verdict | answer |
//! |---|---|
//! | no key | 401 `invalid_key`, `WWW-Authenticate: Bearer realm="keyward"`; the server is not asked |
//! | malformed key (length, prefix, checksum) | 401 `invalid_key`; the server is not asked |
//! | `not_found`, `revoked`, `expired`, `disabled` | 401 `invalid_key`, `key_revoked`, `key_expired`, `key_disabled`, with `WWW-Authenticate` |
//! | `ip_not_allowed`, `insufficient_scope` | 403 with that code |
//! | `rate_limited`, `quota_exceeded` | 429 with that code, the rate-limit fields and `Retry-After` |
//! | the server throttles checks (429 from `/v1/verify`) | 429 with its code (`too_many_attempts`) and `Retry-After` |
//! | the server is unreachable, fails (5xx), times out or answers nonsense | 503 `verifier_unavailable`, `Retry-After: 1` |
//!
//! The layer fails closed: no request reaches the inner service unless the server said
//! `valid` (now, or within the cache's time to live, see below). The key never appears in an
//! answer or a log. The time to wait for the server is the [`KeywardClient`]'s own timeout
//! (30 s for [`KeywardClient::new`]); give the layer a client built with
//! [`KeywardClient::with_http`] and a shorter timeout to fail faster.
//!
//! # Caching
//!
//! Positive answers are remembered for a short time (2 s by default, [`KeywardLayer::cache_ttl`],
//! `Duration::ZERO` disables it), so a busy key does not cost one round trip per call. Only
//! answers for keys **without limits** are cached: when the server's answer carries a
//! `ratelimit` or a `quota`, every call asks the server again, since a call answered from the
//! cache would not be counted against the key's limits. Refusals are never cached.
//!
//! An entry is keyed by the SHA-256 of the token (the plaintext is never kept), the layer's scope
//! and the client address (so an IP allow-list still applies), holds at most 10,000 keys, and is
//! not kept past the key's expiry. The price is that a revoked key may still pass on this
//! service for up to the time to live.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::WWW_AUTHENTICATE;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{Either, Full};
use keyward_core::api::{Problem, VerifyCode, VerifyRequest, VerifyResponse};
use keyward_core::{ApiKeyToken, KeyId, OrgId, ScopeSet};
use moka::sync::Cache;
use sha2::{Digest, Sha256};
use tower::{Layer, Service};

use crate::{ClientError, KeywardClient};

/// How long a positive answer is remembered unless [`KeywardLayer::cache_ttl`] says otherwise.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(2);

/// The most keys the cache remembers at once.
pub const CACHE_CAPACITY: u64 = 10_000;

/// The largest cost the server accepts for one call.
pub use keyward_core::api::MAX_COST;

/// The body of the layer's answers: the inner service's, or a problem document of its own.
pub type LayerBody<B> = Either<B, Full<Bytes>>;

/// The key of a request that passed the layer, in the request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedKey {
    pub key_id: KeyId,
    pub org_id: OrgId,
    pub scopes: ScopeSet,
}

type ClientIpFn = Arc<dyn Fn(&http::request::Parts) -> Option<IpAddr> + Send + Sync>;

/// Guards the wrapped service with Keyward API keys; see the [module documentation](self).
#[derive(Clone)]
pub struct KeywardLayer {
    shared: Arc<Shared>,
}

#[derive(Clone)]
struct Shared {
    client: KeywardClient,
    scope: Option<Arc<str>>,
    cost: Option<u32>,
    client_ip: Option<ClientIpFn>,
    cache_ttl: Duration,
    cache: Option<Cache<CacheKey, VerifiedKey>>,
}

/// The SHA-256 of the token, never the token itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    token: [u8; 32],
    scope: Option<Arc<str>>,
    ip: Option<IpAddr>,
}

impl fmt::Debug for KeywardLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.shared.fmt(f)
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeywardLayer")
            .field("client", &self.client)
            .field("scope", &self.scope)
            .field("cost", &self.cost)
            .field("client_ip", &self.client_ip.as_ref().map(|_| "<fn>"))
            .field("cache_ttl", &self.cache_ttl)
            .finish()
    }
}

fn new_cache(ttl: Duration) -> Option<Cache<CacheKey, VerifiedKey>> {
    (!ttl.is_zero()).then(|| {
        Cache::builder()
            .max_capacity(CACHE_CAPACITY)
            .time_to_live(ttl)
            .build()
    })
}

impl KeywardLayer {
    /// A layer that asks the server behind `client` about every key (no scope, cost 1, no
    /// client address, positive answers cached for [`DEFAULT_CACHE_TTL`]).
    pub fn new(client: KeywardClient) -> KeywardLayer {
        KeywardLayer {
            shared: Arc::new(Shared {
                client,
                scope: None,
                cost: None,
                client_ip: None,
                cache_ttl: DEFAULT_CACHE_TTL,
                cache: new_cache(DEFAULT_CACHE_TTL),
            }),
        }
    }

    /// The concrete scope every call needs, e.g. `achievements:write`.
    ///
    /// # Panics
    ///
    /// When `scope` is not one concrete scope (`resource:action`, no wildcard): the server
    /// would refuse every check, so this is a programming error caught at start-up.
    pub fn scope(mut self, scope: impl Into<String>) -> KeywardLayer {
        let scope = scope.into();
        if let Err(e) = keyward_core::validate::required_scope("scope", &scope) {
            panic!("KeywardLayer::scope({scope:?}): {}", e.message);
        }
        Arc::make_mut(&mut self.shared).scope = Some(scope.into());
        self
    }

    /// The units one call consumes from the key's limits (1 when unset).
    ///
    /// # Panics
    ///
    /// When `cost` is 0 or above [`MAX_COST`], which the server would refuse.
    pub fn cost(mut self, cost: u32) -> KeywardLayer {
        assert!(
            (1..=MAX_COST).contains(&cost),
            "KeywardLayer::cost({cost}): must be between 1 and {MAX_COST}"
        );
        Arc::make_mut(&mut self.shared).cost = Some(cost);
        self
    }

    /// How long a positive answer for a key without limits is reused; `Duration::ZERO` asks
    /// the server about every call.
    pub fn cache_ttl(mut self, ttl: Duration) -> KeywardLayer {
        let shared = Arc::make_mut(&mut self.shared);
        shared.cache_ttl = ttl;
        shared.cache = new_cache(ttl);
        self
    }

    /// Where the call came from, sent to the server for keys with an IP allow-list. Without
    /// it no address is sent, and keys with an allow-list are refused (`ip_not_allowed`).
    pub fn client_ip<F>(mut self, f: F) -> KeywardLayer
    where
        F: Fn(&http::request::Parts) -> Option<IpAddr> + Send + Sync + 'static,
    {
        Arc::make_mut(&mut self.shared).client_ip = Some(Arc::new(f));
        self
    }
}

impl<S> Layer<S> for KeywardLayer {
    type Service = KeywardService<S>;

    fn layer(&self, inner: S) -> KeywardService<S> {
        KeywardService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service [`KeywardLayer`] wraps around `S`.
#[derive(Clone)]
pub struct KeywardService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: fmt::Debug> fmt::Debug for KeywardService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeywardService")
            .field("inner", &self.inner)
            .field("layer", &self.shared)
            .finish()
    }
}

impl<S, B, ResBody> Service<Request<B>> for KeywardService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<LayerBody<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // The clone may not be ready; the instance `poll_ready` was called on is.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            let verdict = match presented_key(&parts.headers) {
                None => Verdict::Refuse(Refusal::missing_key()),
                Some(token) if ApiKeyToken::parse(token).is_err() => {
                    Verdict::Refuse(Refusal::for_code(VerifyCode::NotFound))
                }
                Some(token) => {
                    let ip = shared.client_ip.as_ref().and_then(|f| f(&parts));
                    shared.check(token, ip).await
                }
            };
            match verdict {
                Verdict::Allow { key, headers } => {
                    parts.extensions.insert(key);
                    let res = inner.call(Request::from_parts(parts, body)).await?;
                    let (mut res_parts, res_body) = res.into_parts();
                    for (name, value) in headers {
                        if let Some(name) = name {
                            res_parts.headers.insert(name, value);
                        }
                    }
                    Ok(Response::from_parts(res_parts, Either::Left(res_body)))
                }
                Verdict::Refuse(refusal) => Ok(refusal.into_response()),
            }
        })
    }
}

/// What the layer does with a request.
#[derive(Debug)]
enum Verdict {
    /// Pass it on, with the key in its extensions and these fields on the answer.
    Allow {
        key: VerifiedKey,
        headers: HeaderMap,
    },
    Refuse(Refusal),
}

impl Shared {
    async fn check(&self, token: &str, ip: Option<IpAddr>) -> Verdict {
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
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    keyward_core::api::presented_key(
        headers.get(AUTHORIZATION).map(HeaderValue::as_bytes),
        headers.get("x-api-key").map(HeaderValue::as_bytes),
    )
}

/// Whether a positive answer may be reused: valid, no limits to count, not expiring within
/// the time to live.
fn cacheable(answer: &VerifyResponse, ttl: Duration, now: chrono::DateTime<chrono::Utc>) -> bool {
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
fn decide(answer: VerifyResponse) -> Verdict {
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

/// A refused request: the problem document and the fields that go with it.
#[derive(Debug, Clone)]
struct Refusal {
    status: StatusCode,
    code: Cow<'static, str>,
    detail: Cow<'static, str>,
    headers: HeaderMap,
}

impl Refusal {
    fn new(status: StatusCode, code: &'static str, detail: &'static str) -> Refusal {
        Refusal {
            status,
            code: Cow::Borrowed(code),
            detail: Cow::Borrowed(detail),
            headers: HeaderMap::new(),
        }
    }

    /// No credential at all: a bare challenge (RFC 6750 §3.1 names no error then).
    fn missing_key() -> Refusal {
        let mut r = Refusal::for_code(VerifyCode::NotFound);
        r.headers.insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"keyward\""),
        );
        r
    }

    fn unauthorized(code: &'static str, detail: &'static str) -> Refusal {
        let mut r = Refusal::new(StatusCode::UNAUTHORIZED, code, detail);
        let challenge = format!(
            "Bearer realm=\"keyward\", error=\"invalid_token\", error_description=\"{code}\""
        );
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            r.headers.insert(WWW_AUTHENTICATE, v);
        }
        r
    }

    fn too_many(code: Cow<'static, str>, detail: Cow<'static, str>, retry_after: u64) -> Refusal {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from(retry_after));
        Refusal {
            status: StatusCode::TOO_MANY_REQUESTS,
            code,
            detail,
            headers,
        }
    }

    /// The answer to a refused key, as the server's whoami and gateway give it. `Valid` has no
    /// refusal of its own and maps to `invalid_key`, like the server.
    fn for_code(code: VerifyCode) -> Refusal {
        match code {
            VerifyCode::Revoked => Refusal::unauthorized("key_revoked", "the API key was revoked"),
            VerifyCode::Expired => Refusal::unauthorized("key_expired", "the API key has expired"),
            VerifyCode::Disabled => {
                Refusal::unauthorized("key_disabled", "the API key is disabled")
            }
            VerifyCode::IpNotAllowed => Refusal::new(
                StatusCode::FORBIDDEN,
                "ip_not_allowed",
                "the API key may not be used from this address",
            ),
            VerifyCode::InsufficientScope => Refusal::new(
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                "the API key lacks the scope this call needs",
            ),
            VerifyCode::RateLimited => Refusal::too_many(
                Cow::Borrowed("rate_limited"),
                Cow::Borrowed("the API key's rate limit is exhausted"),
                1,
            ),
            VerifyCode::QuotaExceeded => Refusal::too_many(
                Cow::Borrowed("quota_exceeded"),
                Cow::Borrowed("the API key's quota is exhausted"),
                60,
            ),
            VerifyCode::NotFound | VerifyCode::Valid => Refusal::unauthorized(
                "invalid_key",
                "the API key is missing, malformed or unknown",
            ),
        }
    }

    /// Fail closed: the key could not be checked.
    fn unavailable() -> Refusal {
        let mut r = Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "verifier_unavailable",
            "API keys cannot be checked right now",
        );
        r.headers.insert(RETRY_AFTER, HeaderValue::from(1u64));
        r
    }

    /// A failed `/v1/verify` call: the server's own throttling passes through as a 429, all
    /// else is `verifier_unavailable`.
    fn from_client_error(e: &ClientError) -> Refusal {
        if let ClientError::Api {
            status,
            problem,
            retry_after,
        } = e
            && *status == StatusCode::TOO_MANY_REQUESTS
        {
            let secs = retry_after.unwrap_or(1);
            // Only a code-shaped code is repeated; anything else is not ours to pass on.
            let code = if is_code(&problem.code) {
                Cow::Owned(problem.code.clone())
            } else {
                Cow::Borrowed("too_many_attempts")
            };
            return Refusal::too_many(
                code,
                Cow::Owned(format!(
                    "too many failed checks of API keys; retry in {secs} s"
                )),
                secs,
            );
        }
        Refusal::unavailable()
    }

    fn problem(&self) -> Problem {
        Problem {
            type_uri: format!(
                "https://keyward.dev/problems/{}",
                self.code.replace('_', "-")
            ),
            title: self.status.canonical_reason().unwrap_or("Error").to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.clone().into_owned(),
            code: self.code.clone().into_owned(),
            errors: Vec::new(),
            request_id: None,
        }
    }

    fn into_response<B>(self) -> Response<LayerBody<B>> {
        let body = serde_json::to_vec(&self.problem()).unwrap_or_default();
        let mut res = Response::new(Either::Right(Full::new(Bytes::from(body))));
        *res.status_mut() = self.status;
        let headers = res.headers_mut();
        *headers = self.headers;
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        res
    }
}

/// `snake_case` ASCII, as every problem code is.
fn is_code(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::convert::Infallible;

    use http_body_util::BodyExt;
    use keyward_core::api::{LimitState, QuotaState};

    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    HeaderValue::from_str(v).unwrap(),
                )
            })
            .collect()
    }

    fn answer(code: VerifyCode) -> VerifyResponse {
        let valid = code == VerifyCode::Valid;
        VerifyResponse {
            valid,
            code,
            key_id: valid.then(KeyId::new),
            org_id: valid.then(OrgId::new),
            environment: None,
            scopes: valid.then(ScopeSet::default),
            expires_at: None,
            ratelimit: None,
            quota: None,
            retry_after_seconds: None,
            warning: None,
            headers: None,
        }
    }

    async fn body_json(res: Response<LayerBody<Full<Bytes>>>) -> serde_json::Value {
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn key_from_the_headers() {
        assert_eq!(
            presented_key(&headers(&[("authorization", "Bearer kw_abc")])),
            Some("kw_abc")
        );
        assert_eq!(
            presented_key(&headers(&[("x-api-key", " kw_xyz ")])),
            Some("kw_xyz")
        );
        assert_eq!(
            presented_key(&headers(&[("authorization", "Bearer  ")])),
            None
        );
        assert_eq!(presented_key(&HeaderMap::new()), None);
    }

    #[test]
    fn codes_map_to_the_servers_outcomes() {
        let expect = [
            (VerifyCode::NotFound, 401, "invalid_key"),
            (VerifyCode::Revoked, 401, "key_revoked"),
            (VerifyCode::Expired, 401, "key_expired"),
            (VerifyCode::Disabled, 401, "key_disabled"),
            (VerifyCode::IpNotAllowed, 403, "ip_not_allowed"),
            (VerifyCode::InsufficientScope, 403, "insufficient_scope"),
            (VerifyCode::RateLimited, 429, "rate_limited"),
            (VerifyCode::QuotaExceeded, 429, "quota_exceeded"),
        ];
        for (code, status, name) in expect {
            let r = Refusal::for_code(code);
            assert_eq!(
                (r.status.as_u16(), r.code.as_ref()),
                (status, name),
                "{code:?}"
            );
            let challenge = r.headers.get(WWW_AUTHENTICATE);
            assert_eq!(challenge.is_some(), status == 401, "{code:?}");
            if let Some(c) = challenge {
                let c = c.to_str().unwrap();
                assert!(c.starts_with("Bearer realm=\"keyward\""), "{c}");
                assert!(c.contains(&format!("error_description=\"{name}\"")), "{c}");
            }
            assert_eq!(
                r.headers.contains_key(RETRY_AFTER),
                status == 429,
                "{code:?}"
            );
        }
        assert_eq!(
            Refusal::missing_key().headers[WWW_AUTHENTICATE],
            "Bearer realm=\"keyward\""
        );
    }

    #[test]
    fn limit_refusals_carry_the_servers_fields() {
        let mut a = answer(VerifyCode::RateLimited);
        a.retry_after_seconds = Some(42);
        a.headers = Some(BTreeMap::from([
            (
                "RateLimit-Policy".to_owned(),
                "\"hour\";q=2;w=3600".to_owned(),
            ),
            ("X-RateLimit-Remaining".to_owned(), "0".to_owned()),
            ("Retry-After".to_owned(), "17".to_owned()),
        ]));
        let Verdict::Refuse(r) = decide(a.clone()) else {
            panic!("refused")
        };
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers["retry-after"], "17", "the server's field wins");
        assert_eq!(r.headers["ratelimit-policy"], "\"hour\";q=2;w=3600");
        assert_eq!(r.headers["x-ratelimit-remaining"], "0");

        // Without the field, `retry_after_seconds`; without both, the server's default.
        a.headers = None;
        let Verdict::Refuse(r) = decide(a.clone()) else {
            panic!("refused")
        };
        assert_eq!(r.headers[RETRY_AFTER], "42");
        a.retry_after_seconds = None;
        a.code = VerifyCode::QuotaExceeded;
        let Verdict::Refuse(r) = decide(a) else {
            panic!("refused")
        };
        assert_eq!(
            (r.code.as_ref(), &r.headers[RETRY_AFTER]),
            ("quota_exceeded", &HeaderValue::from(60u64))
        );
    }

    #[test]
    fn valid_answers_allow_with_their_fields() {
        let mut a = answer(VerifyCode::Valid);
        a.headers = Some(BTreeMap::from([(
            "X-RateLimit-Remaining".to_owned(),
            "9".to_owned(),
        )]));
        let (key_id, org_id) = (a.key_id.unwrap(), a.org_id.unwrap());
        let Verdict::Allow { key, headers } = decide(a.clone()) else {
            panic!("allowed")
        };
        assert_eq!((key.key_id, key.org_id), (key_id, org_id));
        assert_eq!(headers["x-ratelimit-remaining"], "9");

        // Inconsistent answers fail closed.
        a.key_id = None;
        assert!(
            matches!(decide(a), Verdict::Refuse(r) if r.status == StatusCode::SERVICE_UNAVAILABLE)
        );
        let mut b = answer(VerifyCode::Valid);
        b.valid = false;
        assert!(
            matches!(decide(b), Verdict::Refuse(r) if r.status == StatusCode::SERVICE_UNAVAILABLE)
        );
    }

    #[test]
    fn only_unlimited_valid_answers_are_cached() {
        let now = chrono::Utc::now();
        let ttl = Duration::from_secs(2);
        assert!(cacheable(&answer(VerifyCode::Valid), ttl, now));
        assert!(!cacheable(&answer(VerifyCode::Revoked), ttl, now));

        let state = LimitState {
            policy: "hour".into(),
            limit: 2,
            remaining: 1,
            reset_seconds: 3600,
        };
        let mut limited = answer(VerifyCode::Valid);
        limited.ratelimit = Some(state.clone());
        assert!(!cacheable(&limited, ttl, now));
        let mut with_quota = answer(VerifyCode::Valid);
        with_quota.quota = Some(QuotaState {
            daily: Some(state),
            monthly: None,
        });
        assert!(!cacheable(&with_quota, ttl, now));

        let mut with_fields = answer(VerifyCode::Valid);
        with_fields.headers = Some(BTreeMap::from([("X-RateLimit-Limit".into(), "2".into())]));
        assert!(!cacheable(&with_fields, ttl, now));

        let mut expiring = answer(VerifyCode::Valid);
        expiring.expires_at = Some(now + chrono::Duration::seconds(1));
        assert!(!cacheable(&expiring, ttl, now));
        expiring.expires_at = Some(now + chrono::Duration::seconds(60));
        assert!(cacheable(&expiring, ttl, now));
    }

    #[tokio::test]
    async fn problem_documents_follow_rfc_9457() {
        let res: Response<LayerBody<Full<Bytes>>> =
            Refusal::for_code(VerifyCode::InsufficientScope).into_response();
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert_eq!(res.headers()[CONTENT_TYPE], "application/problem+json");
        let body = body_json(res).await;
        assert_eq!(
            body,
            serde_json::json!({
                "type": "https://keyward.dev/problems/insufficient-scope",
                "title": "Forbidden",
                "status": 403,
                "detail": "the API key lacks the scope this call needs",
                "code": "insufficient_scope",
            })
        );

        let res: Response<LayerBody<Full<Bytes>>> = Refusal::unavailable().into_response();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()[RETRY_AFTER], "1");
        let body = body_json(res).await;
        assert_eq!(body["code"], "verifier_unavailable");
        assert_eq!(body["title"], "Service Unavailable");
        assert_eq!(
            body["type"],
            "https://keyward.dev/problems/verifier-unavailable"
        );
    }

    #[test]
    fn the_servers_throttling_passes_through() {
        let throttled = ClientError::Api {
            status: StatusCode::TOO_MANY_REQUESTS,
            problem: Box::new(Problem {
                type_uri: "https://keyward.dev/problems/too-many-attempts".into(),
                title: "Too Many Requests".into(),
                status: 429,
                detail: "too many failed checks of this key; retry in 30 s".into(),
                code: "too_many_attempts".into(),
                errors: Vec::new(),
                request_id: None,
            }),
            retry_after: Some(30),
        };
        let r = Refusal::from_client_error(&throttled);
        assert_eq!(
            (r.status.as_u16(), r.code.as_ref()),
            (429, "too_many_attempts")
        );
        assert_eq!(r.headers[RETRY_AFTER], "30");

        let failing = ClientError::Unexpected {
            status: StatusCode::BAD_GATEWAY,
            message: "upstream".into(),
        };
        let r = Refusal::from_client_error(&failing);
        assert_eq!(
            (r.status.as_u16(), r.code.as_ref()),
            (503, "verifier_unavailable")
        );
        assert!(is_code("too_many_attempts"));
        assert!(!is_code("Bad Code"));
    }

    /// The whole service where no server is needed: neither it nor the inner service is asked.
    #[tokio::test]
    async fn refuses_without_asking_when_no_valid_looking_key() {
        use tower::ServiceExt;

        // Nothing listens there: a request that reached the server would be a 503.
        let client = KeywardClient::new("http://127.0.0.1:1").unwrap();
        let inner = tower::service_fn(|_req: Request<()>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"inner"))))
        });
        let svc = KeywardLayer::new(client).layer(inner);

        let res = svc.clone().oneshot(Request::new(())).await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(res.headers()[WWW_AUTHENTICATE], "Bearer realm=\"keyward\"");
        assert_eq!(body_json(res).await["code"], "invalid_key");

        let res = svc
            .oneshot(
                Request::builder()
                    .header("authorization", "Bearer kw_live_not-a-key")
                    .body(())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        let challenge = res.headers()[WWW_AUTHENTICATE].to_str().unwrap().to_owned();
        let body = body_json(res).await;
        assert_eq!(body["code"], "invalid_key");
        assert!(challenge.contains("error=\"invalid_token\""));
        assert!(
            !body.to_string().contains("not-a-key"),
            "never echo the key"
        );
    }

    #[test]
    #[should_panic(expected = "KeywardLayer::scope")]
    fn wildcard_scopes_are_refused_at_start_up() {
        let _ = KeywardLayer::new(KeywardClient::new("http://127.0.0.1:1").unwrap())
            .scope("achievements:*");
    }
}
