//! `/metrics` in the OpenMetrics text format (prometheus-client). Counters are atomics updated
//! where things happen; gauges describing state are set when scraped. Labels stay bounded: no
//! label per key.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    pub code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModeLabel {
    pub mode: &'static str,
}

pub struct Metrics {
    registry: Registry,
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
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("keyward");
        let m = Metrics {
            limit_refusals: Family::default(),
            limiter_mode: Family::default(),
            redis_fallbacks: Counter::default(),
            redis_errors: Counter::default(),
            redis_calls: Counter::default(),
            redis_requests: Counter::default(),
            limit_events_dropped: Counter::default(),
            usage_dropped: Counter::default(),
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
        Metrics { registry, ..m }
    }
}

impl Metrics {
    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "metrics encoding failed");
        }
        out
    }
}
