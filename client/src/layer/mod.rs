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
//!
//! # Modules
//!
//! - `service`: [`KeywardService`], the wrapped service: takes the key, asks for a verdict,
//!   passes the request on or answers the refusal.
//! - `verdict`: what the layer does with a key (the cache, the server's answer).
//! - `refusal`: the problem documents of refused requests.

mod refusal;
mod service;
#[cfg(test)]
mod tests;
mod verdict;

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{Either, Full};
use keyward_core::{KeyId, OrgId, ScopeSet};
use moka::sync::Cache;
use tower::Layer;

use crate::KeywardClient;

pub use service::KeywardService;

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
