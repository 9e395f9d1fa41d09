//! Enforcing rate limits and quotas on the verification path.
//!
//! Local mode: a key's limiter state ([`SharedState`], one atomic per rule) hangs off its cached
//! record, so the cache lookup that verifies a key also finds its counters; checking is a
//! compare-and-swap per rule. The state itself is kept in a second cache, consulted only when a
//! record is (re)loaded, so a settings change or a cache expiry does not reset a key's counters.
//!
//! Redis mode (`REDIS_URL`): one script call per request checks every rule of the key against
//! shared counters (requests that queue up meanwhile share a call; [`wire`] is the batch
//! layout), at the node's clock, with core's arithmetic; if Redis fails or is slower than
//! `redis_timeout_ms`, the node uses its local state at once and probes Redis in the
//! background until it answers again.
//!
//! Quotas are durable: allowed units are added to `quota_usage` by the usage flusher, which
//! feeds the totals (every node's) back into the local state; a loaded record starts from the
//! stored count.

#[cfg(test)]
mod differential;
pub(crate) mod lease;
pub(crate) mod redis;
pub(crate) mod wire;

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderValue;
use chrono::{DateTime, Utc};
use keyward_core::KeyId;
use keyward_core::api::{LimitState, Quota, QuotaState, RateLimitRule, VerifyCode};
use keyward_core::limit::rules::{DEFAULT_SOFT_THRESHOLD, effective};
use keyward_core::limit::{Kind, Outcome, Rule, SharedState, headers};
use moka::sync::Cache;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use crate::config::Config;
use crate::metrics::{CodeLabel, Metrics};

/// A key's rules with their state, built when its record is loaded.
#[derive(Debug)]
pub struct KeyLimits {
    pub rules: Box<[Rule]>,
    pub soft_threshold: f64,
    /// `RateLimit-Policy`, built once.
    pub policy: HeaderValue,
    pub state: Arc<SharedState>,
    /// This node's blocks of the leased rules' units (shared mode).
    pub leases: Arc<lease::Leases>,
    /// Identifies the rule set (Redis keys include it, so changed rules start fresh).
    pub fingerprint: u64,
    /// The daily and monthly quota's positions in `rules`.
    pub daily: Option<usize>,
    pub monthly: Option<usize>,
}

impl KeyLimits {
    /// Units used of each quota period as seen by this node (the durable count it was seeded
    /// with, plus what it allowed since), for seeding the shared counter. A count past the
    /// quota (a stored count above a lowered quota) is given as the quota + 1: the decisions
    /// depend on nothing more, and even a status read (cost 0) is refused as it is here.
    pub fn quota_used(&self, index: usize, now: u64) -> u64 {
        self.state
            .decision(&self.rules, index, now)
            .map_or(0, |d| d.used() + u64::from(!d.allowed))
    }
}

/// A load-time input: the key's own and its tier's settings, and the stored quota counts.
#[derive(Debug, Default)]
pub struct LimitSource {
    pub key_rules: Option<Vec<RateLimitRule>>,
    pub key_quota: Option<Quota>,
    pub tier_rules: Option<Vec<RateLimitRule>>,
    pub tier_quota: Option<Quota>,
    pub tier_soft_threshold: Option<f64>,
    pub used_today: i64,
    pub used_this_month: i64,
}

/// Which mode answered, for `/readyz` and `GET /v1/keys/{id}/limits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Local,
    Redis,
    /// Redis is configured but not answering: local limits apply.
    Fallback,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Local => "local",
            Mode::Redis => "redis",
            Mode::Fallback => "fallback",
        }
    }
}

/// A rotation lineage's limiter state, its leases and the rules they were made for.
type StateEntry = (u64, Arc<[Rule]>, Arc<SharedState>, Arc<lease::Leases>);

pub struct Limiter {
    /// By rotation lineage: a key's successor goes on from its predecessor's counters.
    states: Cache<KeyId, StateEntry>,
    redis: Option<redis::RedisLimiter>,
    refusals: Family<CodeLabel, Counter>,
}

pub fn now_ms(now: DateTime<Utc>) -> u64 {
    now.timestamp_millis().max(0) as u64
}

impl Limiter {
    /// A limiter with counters of its own (tests, benchmarks).
    pub fn new(config: &Config) -> Limiter {
        Limiter::with_metrics(config, &Metrics::default())
    }

    /// A limiter counting into the server's `/metrics`.
    pub fn with_metrics(config: &Config, metrics: &Metrics) -> Limiter {
        let counters = redis::RedisCounters {
            fallbacks: metrics.redis_fallbacks.clone(),
            errors: metrics.redis_errors.clone(),
            calls: metrics.redis_calls.clone(),
            requests: metrics.redis_requests.clone(),
        };
        Limiter {
            states: Cache::builder()
                .max_capacity(config.cache.capacity)
                .time_to_idle(Duration::from_secs(25 * 3600))
                .build(),
            redis: config
                .redis
                .as_ref()
                .and_then(|redis| redis::RedisLimiter::from_config(redis, counters)),
            refusals: metrics.limit_refusals.clone(),
        }
    }

    /// Counts a refusal by its code (`rate_limited`, `quota_exceeded`).
    pub fn count_refusal(&self, code: VerifyCode) {
        self.refusals
            .get_or_create(&CodeLabel {
                code: code.as_str(),
            })
            .inc();
    }

    pub fn redis(&self) -> Option<&redis::RedisLimiter> {
        self.redis.as_ref()
    }

    pub fn mode(&self) -> Mode {
        match &self.redis {
            None => Mode::Local,
            Some(r) if r.healthy() => Mode::Redis,
            Some(_) => Mode::Fallback,
        }
    }

    /// The effective limits of a key being loaded, with its state seeded from the stored quota
    /// counts. The state belongs to the key's rotation lineage and outlives edits: unchanged
    /// rules keep it as it is, changed ones carry each counter over to the rule of the same kind
    /// and window ([`SharedState::carried`]), so neither a rotation nor a limit edit forgives
    /// units already used on this node (even those not yet flushed).
    pub fn build(
        &self,
        lineage: KeyId,
        src: LimitSource,
        now: DateTime<Utc>,
    ) -> Option<Arc<KeyLimits>> {
        let rate = src.key_rules.or(src.tier_rules).unwrap_or_default();
        let quota = src.key_quota.or(src.tier_quota);
        let rules = effective(&rate, quota.as_ref());
        if rules.is_empty() {
            return None;
        }
        let mut h = std::hash::DefaultHasher::new();
        rules.hash(&mut h);
        let fingerprint = h.finish();
        let (state, leases) = match self.states.get(&lineage) {
            Some((f, _, state, leases)) if f == fingerprint => (state, leases),
            previous => {
                let state = Arc::new(match &previous {
                    Some((_, old_rules, old, _)) => SharedState::carried(old_rules, old, &rules),
                    None => SharedState::new(rules.len()),
                });
                // Changed rules start without blocks: what the old ones held is never granted.
                let leases = Arc::new(lease::Leases::new(rules.len()));
                let shared: Arc<[Rule]> = rules.clone().into();
                self.states.insert(
                    lineage,
                    (fingerprint, shared, state.clone(), leases.clone()),
                );
                (state, leases)
            }
        };
        let position = |kind| rules.iter().position(|r| r.kind == kind);
        let (daily, monthly) = (position(Kind::Daily), position(Kind::Monthly));
        let t = now_ms(now);
        if let Some(i) = daily {
            state.raise_to(&rules, i, t, src.used_today.max(0) as u64);
        }
        if let Some(i) = monthly {
            state.raise_to(&rules, i, t, src.used_this_month.max(0) as u64);
        }
        let policy =
            HeaderValue::from_str(&headers::policy(&rules)).unwrap_or(HeaderValue::from_static(""));
        Some(Arc::new(KeyLimits {
            rules: rules.into_boxed_slice(),
            soft_threshold: src.tier_soft_threshold.unwrap_or(DEFAULT_SOFT_THRESHOLD),
            policy,
            state,
            leases,
            fingerprint,
            daily,
            monthly,
        }))
    }

    /// Whether checks go to Redis (so [`Self::check`] must be awaited); otherwise
    /// [`Self::check_local`] answers without a future.
    pub fn shared(&self) -> bool {
        self.redis.as_ref().is_some_and(|r| r.healthy())
    }

    /// The local check: the key's own atomics.
    pub fn check_local(limits: &KeyLimits, cost: u64, now: DateTime<Utc>) -> Outcome {
        limits
            .state
            .check(&limits.rules, now_ms(now), cost, limits.soft_threshold)
    }

    /// Checks and consumes `cost` from every rule of the key (its counters are its rotation
    /// lineage's). Shared mode: leased rules answer from this node's blocks while they last
    /// ([`lease`]); the rest, and a leased rule out of units, go to Redis in one script call.
    pub async fn check(
        &self,
        lineage: KeyId,
        limits: &KeyLimits,
        cost: u64,
        now: DateTime<Utc>,
    ) -> Outcome {
        let t = now_ms(now);
        if let Some(redis) = &self.redis
            && redis.healthy()
        {
            let rules = &limits.rules;
            let plan = lease::Plan::new(&limits.leases, rules, t, cost);
            if plan.complete() || plan.refused_here() {
                plan.finish(&limits.leases, cost);
                let outcome = self.finish_planned(limits, &plan, None, cost, t);
                if plan.tops_up() {
                    // This request left a block low: it asks for more (cost 0) while the
                    // node's other requests go on granting what is left.
                    let answers = if plan.refused_here() {
                        None
                    } else {
                        redis.check(lineage, limits, 0, t, &plan.top_ups).await
                    };
                    plan.finish_top_ups(&limits.leases, rules, t, answers.as_deref());
                }
                return outcome;
            }
            // Going to Redis anyway: the rules that need it take their blocks there.
            plan.finish_top_ups(&limits.leases, rules, t, None);
            let answers = redis.check(lineage, limits, cost, t, &plan.wants).await;
            plan.finish(&limits.leases, cost);
            if let Some(answers) = answers {
                return self.finish_planned(limits, &plan, Some(&answers), cost, t);
            }
            plan.undo(&limits.leases, cost);
        }
        limits
            .state
            .check(&limits.rules, t, cost, limits.soft_threshold)
    }

    /// The outcome of a planned check: the rules decided here and, for the others, what Redis
    /// answered (in rule order). Blocks granted are recorded; a refused request gives back
    /// the units it took here.
    fn finish_planned(
        &self,
        limits: &KeyLimits,
        plan: &lease::Plan,
        answers: Option<&[wire::RuleAnswer]>,
        cost: u64,
        now: u64,
    ) -> Outcome {
        let rules = &limits.rules;
        let n = rules.len().min(keyward_core::limit::MAX_CHECKS);
        let remote_allowed = answers.is_none_or(|a| a.iter().all(|a| a.decision.allowed));
        let allowed = remote_allowed && !plan.refused_here();
        let mut decisions =
            [keyward_core::limit::Decision::default(); keyward_core::limit::MAX_CHECKS];
        let mut answers = answers.unwrap_or_default().iter();
        for i in 0..n {
            decisions[i] = match plan.local[i] {
                Some(d) => d,
                None => {
                    let Some(a) = answers.next() else { continue };
                    if rules[i].leased {
                        limits.leases.record(i, &rules[i], now, cost, a, allowed)
                    } else {
                        a.decision
                    }
                }
            };
        }
        if !allowed {
            plan.undo(&limits.leases, cost);
        }
        redis::shared_outcome(limits, &decisions[..n], cost, now)
    }
}

/// What a refused check means for the caller.
pub fn refusal_code(limits: &KeyLimits, outcome: &Outcome) -> VerifyCode {
    match limits.rules.get(outcome.deciding).map(|r| r.kind) {
        Some(Kind::Daily | Kind::Monthly) => VerifyCode::QuotaExceeded,
        _ => VerifyCode::RateLimited,
    }
}

/// Seconds for `Retry-After` (at least 1; a cost that can never pass says "a day").
pub fn retry_after_secs(outcome: &Outcome) -> u64 {
    match outcome.deciding().retry_after_ms {
        u64::MAX => 86_400,
        ms => headers::seconds(ms).max(1),
    }
}

fn state_of(rule: &Rule, d: &keyward_core::limit::Decision) -> LimitState {
    LimitState {
        policy: rule.name.clone(),
        limit: d.limit,
        remaining: d.remaining,
        reset_seconds: headers::seconds(d.reset_ms),
    }
}

/// The `/v1/verify` view: the tightest rate rule, and each quota.
pub fn verify_view(
    limits: &KeyLimits,
    outcome: &Outcome,
) -> (Option<LimitState>, Option<QuotaState>) {
    let decisions = outcome.decisions();
    let rate = limits
        .rules
        .iter()
        .zip(decisions)
        .filter(|(r, _)| !r.is_quota())
        .min_by_key(|(_, d)| if d.allowed { d.remaining } else { 0 })
        .map(|(r, d)| state_of(r, d));
    let quota_at =
        |i: Option<usize>| i.and_then(|i| Some(state_of(limits.rules.get(i)?, decisions.get(i)?)));
    let quota = (limits.daily.is_some() || limits.monthly.is_some()).then(|| QuotaState {
        daily: quota_at(limits.daily),
        monthly: quota_at(limits.monthly),
    });
    (rate, quota)
}

/// Writes the rate-limit fields for an answer to a key whose limits were checked:
/// `RateLimit-Policy`, `RateLimit`, `X-RateLimit-Limit/Remaining/Reset` (the deciding rule),
/// `X-RateLimit-Warning` past the soft threshold, and `Retry-After` on a refusal. Straight into
/// the answer's headers: this runs on every limited request.
pub fn write_headers(h: &mut axum::http::HeaderMap, limits: &KeyLimits, outcome: &Outcome) {
    use axum::http::HeaderName;
    let d = outcome.deciding();
    h.reserve(7);
    h.insert(
        HeaderName::from_static("ratelimit-policy"),
        limits.policy.clone(),
    );
    if let Ok(v) = HeaderValue::try_from(headers::ratelimit(&limits.rules, outcome.decisions())) {
        h.insert(HeaderName::from_static("ratelimit"), v);
    }
    h.insert(
        HeaderName::from_static("x-ratelimit-limit"),
        HeaderValue::from(d.limit),
    );
    h.insert(
        HeaderName::from_static("x-ratelimit-remaining"),
        HeaderValue::from(d.remaining),
    );
    h.insert(
        HeaderName::from_static("x-ratelimit-reset"),
        HeaderValue::from(headers::seconds(d.reset_ms)),
    );
    if outcome.warning
        && let Some(w) = headers::warning(&limits.rules, outcome.decisions(), limits.soft_threshold)
        && let Ok(v) = HeaderValue::try_from(w)
    {
        h.insert(HeaderName::from_static("x-ratelimit-warning"), v);
    }
    if !outcome.allowed {
        h.insert(
            axum::http::header::RETRY_AFTER,
            HeaderValue::from(retry_after_secs(outcome)),
        );
    }
}

/// The same fields as a map of their own (for `/v1/verify`'s JSON).
pub fn response_headers(limits: &KeyLimits, outcome: &Outcome) -> axum::http::HeaderMap {
    let mut h = axum::http::HeaderMap::new();
    write_headers(&mut h, limits, outcome);
    h
}

/// The problem detail of a refusal, naming the rule.
pub fn refusal_detail(limits: &KeyLimits, outcome: &Outcome) -> String {
    let retry = retry_after_secs(outcome);
    match limits.rules.get(outcome.deciding) {
        Some(r) if r.is_quota() => format!(
            "the API key's {} quota of {} is spent; it resets in {retry} s",
            r.name, r.limit
        ),
        Some(r) if outcome.deciding().retry_after_ms == u64::MAX => format!(
            "the call costs more than rule {:?} allows at once ({})",
            r.name,
            r.quota()
        ),
        Some(r) => format!(
            "rate limit {:?} of the API key is exhausted ({} per {} s); retry in {retry} s",
            r.name,
            r.quota(),
            r.window_ms / 1000
        ),
        None => "the API key's limit is exhausted".to_owned(),
    }
}
