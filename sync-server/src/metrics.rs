//! `/metrics` in the OpenMetrics text format (prometheus-client). Counters are atomics updated
//! where things happen; gauges describing state are set when scraped. Labels stay bounded: no
//! label per key.

use std::sync::atomic::AtomicU64;

use keyward_core::api::VerifyCode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    pub code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModeLabel {
    pub mode: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

/// Latency buckets in seconds: 50 µs to about 52 s, doubling.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 21))
}

/// Counters the verification path bumps: one atomic add each, resolved once up front so the
/// hot path never touches a label map.
#[derive(Clone, Debug, Default)]
pub struct VerifyCounters {
    /// Per outcome, in the order of `VerifyCode::ALL`.
    pub outcomes: Vec<Counter>,
    pub cache_hits: Counter,
    pub cache_misses: Counter,
    pub lookups: LookupCounters,
}

/// Key record lookups by result (`keyward_key_lookups_total{result}`), resolved once.
#[derive(Clone, Debug, Default)]
pub struct LookupCounters {
    /// Answered from the cache.
    pub cache: Counter,
    /// Refused by the filter of known ids: no query.
    pub filtered: Counter,
    /// A just-minted-looking id the filter does not know, past the global lookup budget.
    pub deferred: Counter,
    pub database_found: Counter,
    pub database_absent: Counter,
    /// Answered from memory while the database could not be reached (fail static).
    pub stale: Counter,
    /// The database could not be reached and no fail-static record was at hand.
    pub unavailable: Counter,
}

impl VerifyCounters {
    pub fn outcome(&self, code: VerifyCode) -> Option<&Counter> {
        let i = VerifyCode::ALL.iter().position(|c| *c == code)?;
        self.outcomes.get(i)
    }
}

pub struct Metrics {
    registry: Registry,
    /// Verifications by outcome (whoami, verify, gateway).
    pub verifications: Family<CodeLabel, Counter>,
    /// Handler latency of the key-authenticated routes (gateway: to the upstream's headers).
    pub request_duration: Family<RouteLabel, Histogram, fn() -> Histogram>,
    pub key_cache_hits: Counter,
    pub key_cache_misses: Counter,
    /// Calls whose key named no organisation, by reason.
    pub unrecognized_keys: Family<ReasonLabel, Counter>,
    /// Key record lookups by result.
    pub key_lookups: Family<ResultLabel, Counter>,
    /// Ids in the filter of known key ids (set when scraped; 0 while it is not loaded).
    pub known_key_ids: Gauge,
    /// Webhook delivery attempts by result (delivered, retry, failed, refused).
    pub webhook_attempts: Family<ResultLabel, Counter>,
    /// Seconds since usage was last written (set when scraped).
    pub usage_flush_lag: Gauge<f64, AtomicU64>,
    /// Usage rows waiting for the next flush (set when scraped).
    pub usage_pending: Gauge,
    /// `request_duration` of each key-authenticated route, resolved once.
    pub whoami_duration: Histogram,
    pub verify_duration: Histogram,
    pub gateway_duration: Histogram,
    /// Calls refused by a rate limit or quota, by code.
    pub limit_refusals: Family<CodeLabel, Counter>,
    /// 1 for the mode limits are enforced in right now (local, redis, fallback).
    pub limiter_mode: Family<ModeLabel, Gauge>,
    pub redis_fallbacks: Counter,
    pub redis_errors: Counter,
    pub redis_calls: Counter,
    pub redis_requests: Counter,
    pub limit_events_dropped: Counter,
    pub usage_dropped: Counter,
    /// Networks forgotten because their key reached `max_networks_per_key`.
    pub key_networks_evicted: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("keyward");
        let m = Metrics {
            verifications: Family::default(),
            request_duration: Family::new_with_constructor(latency_histogram),
            key_cache_hits: Counter::default(),
            key_cache_misses: Counter::default(),
            unrecognized_keys: Family::default(),
            key_lookups: Family::default(),
            known_key_ids: Gauge::default(),
            webhook_attempts: Family::default(),
            usage_flush_lag: Gauge::default(),
            usage_pending: Gauge::default(),
            whoami_duration: latency_histogram(),
            verify_duration: latency_histogram(),
            gateway_duration: latency_histogram(),
            limit_refusals: Family::default(),
            limiter_mode: Family::default(),
            redis_fallbacks: Counter::default(),
            redis_errors: Counter::default(),
            redis_calls: Counter::default(),
            redis_requests: Counter::default(),
            limit_events_dropped: Counter::default(),
            usage_dropped: Counter::default(),
            key_networks_evicted: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "limit_refusals",
            "Calls refused by a rate limit or quota",
            m.limit_refusals.clone(),
        );
        registry.register(
            "limiter_mode",
            "1 for the mode limits are enforced in (local, redis, fallback)",
            m.limiter_mode.clone(),
        );
        registry.register(
            "redis_fallbacks",
            "Switches from Redis to local limits",
            m.redis_fallbacks.clone(),
        );
        registry.register(
            "redis_errors",
            "Redis limit calls that failed or timed out",
            m.redis_errors.clone(),
        );
        registry.register(
            "redis_calls",
            "Redis limit script calls (each carries a batch)",
            m.redis_calls.clone(),
        );
        registry.register(
            "redis_requests",
            "Requests checked through Redis",
            m.redis_requests.clone(),
        );
        registry.register(
            "limit_events_dropped",
            "Soft-threshold events dropped because too many were pending",
            m.limit_events_dropped.clone(),
        );
        registry.register(
            "usage_dropped",
            "Calls not counted because the pending usage reached its bound (database away too long)",
            m.usage_dropped.clone(),
        );
        registry.register(
            "key_networks_evicted",
            "Networks forgotten (least recently seen first) because their key reached max_networks_per_key",
            m.key_networks_evicted.clone(),
        );
        registry.register(
            "verifications",
            "Key verifications by outcome (whoami, verify, gateway)",
            m.verifications.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Latency of key-authenticated calls by route (gateway: to the upstream's response headers)",
            m.request_duration.clone(),
        );
        registry.register(
            "key_cache_hits",
            "Key records answered from the in-memory cache",
            m.key_cache_hits.clone(),
        );
        registry.register(
            "key_cache_misses",
            "Key records loaded from PostgreSQL",
            m.key_cache_misses.clone(),
        );
        registry.register(
            "unrecognized_keys",
            "Calls whose key was missing, malformed or unknown (no organisation known)",
            m.unrecognized_keys.clone(),
        );
        registry.register(
            "key_lookups",
            "Key record lookups by result: cache, filtered (unknown to the filter of known ids, no query), deferred (past the budget for just-minted ids), database_found, database_absent, stale (answered from memory while the database is away), unavailable",
            m.key_lookups.clone(),
        );
        registry.register(
            "known_key_ids",
            "Key ids in the filter of known ids (0 while it is not loaded)",
            m.known_key_ids.clone(),
        );
        registry.register(
            "webhook_attempts",
            "Webhook delivery attempts by result (delivered, retry, failed, refused)",
            m.webhook_attempts.clone(),
        );
        registry.register(
            "usage_flush_lag_seconds",
            "Seconds since usage counts were last written to PostgreSQL",
            m.usage_flush_lag.clone(),
        );
        registry.register(
            "usage_pending_rows",
            "Usage rows counted in memory and not yet written",
            m.usage_pending.clone(),
        );
        let route = |route| {
            m.request_duration
                .get_or_create(&RouteLabel { route })
                .clone()
        };
        let (whoami_duration, verify_duration, gateway_duration) =
            (route("whoami"), route("verify"), route("gateway"));
        Metrics {
            registry,
            whoami_duration,
            verify_duration,
            gateway_duration,
            ..m
        }
    }
}

impl Metrics {
    /// The verification path's counters, resolved once.
    pub fn verify_counters(&self) -> VerifyCounters {
        VerifyCounters {
            outcomes: VerifyCode::ALL
                .iter()
                .map(|c| {
                    self.verifications
                        .get_or_create(&CodeLabel { code: c.as_str() })
                        .clone()
                })
                .collect(),
            cache_hits: self.key_cache_hits.clone(),
            cache_misses: self.key_cache_misses.clone(),
            lookups: {
                let c = |result| {
                    self.key_lookups
                        .get_or_create(&ResultLabel { result })
                        .clone()
                };
                LookupCounters {
                    cache: c("cache"),
                    filtered: c("filtered"),
                    deferred: c("deferred"),
                    database_found: c("database_found"),
                    database_absent: c("database_absent"),
                    stale: c("stale"),
                    unavailable: c("unavailable"),
                }
            },
        }
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "metrics encoding failed");
        }
        out
    }
}
