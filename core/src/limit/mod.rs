//! Rate limits and quotas as pure state machines over an injected clock, so tests advance time
//! instead of sleeping. The server keeps one [`SharedState`] per key next to the key's cached
//! record (local mode) or runs the same arithmetic in a Redis script (shared mode); here is only
//! "may this request of `cost` units pass at `now`, and what then".
//!
//! Every rule's state is one `u64`, so a key's limiter is a handful of atomics: a check is a
//! compare-and-swap per rule, no lock. Several rules apply at once: a request passes only when
//! every rule allows it, and a refused request consumes nothing (units taken from rules checked
//! before the refusing one are given back).

mod calendar;
pub mod forecast;
mod gcra;
pub mod headers;
pub mod rules;
mod sliding;
mod window;

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch (windows align with the wall clock).
pub type Millis = u64;

/// Rate-limit rules per key (quotas come on top). Few on purpose: every answer lists them all,
/// and a check carries one decision per rule.
pub const MAX_RULES: usize = 4;
/// Rules plus the daily and monthly quota.
pub const MAX_CHECKS: usize = MAX_RULES + 2;
/// Largest limit of a rate-limit rule (the sliding window packs counts into 22 bits).
pub const MAX_RULE_LIMIT: u64 = 1_000_000;
/// Largest quota per day or month (packed into 40 bits).
pub const MAX_QUOTA: u64 = 100_000_000_000;
/// Longest rate-limit window: longer periods are what quotas are for.
pub const MAX_WINDOW_SECONDS: u64 = 86_400;
/// A node leases at most a rule's quota divided by this at once ([`Rule::max_lease`]): the
/// term of the over-grant bound of leased rules.
pub const LEASE_DIVISOR: u64 = 32;

/// How a rule counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// Generic cell rate algorithm: a token bucket of `burst` refilled at `limit` per window.
    Gcra,
    /// Fixed windows aligned to multiples of the window length (UTC).
    FixedWindow,
    /// The weighted two-window approximation of a sliding window.
    SlidingWindow,
}

impl Algorithm {
    pub const ALL: [Algorithm; 3] = [
        Algorithm::Gcra,
        Algorithm::FixedWindow,
        Algorithm::SlidingWindow,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Gcra => "gcra",
            Algorithm::FixedWindow => "fixed_window",
            Algorithm::SlidingWindow => "sliding_window",
        }
    }

    pub fn parse(s: &str) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// What one check counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Rate(Algorithm),
    /// Requests per UTC day.
    Daily,
    /// Requests per UTC month.
    Monthly,
}

/// A validated rule (see [`rules`]): every field in range. Built by [`Rule::rate`],
/// [`Rule::daily`] and [`Rule::monthly`], which also precompute what the check needs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rule {
    /// The policy name in `RateLimit-Policy` (unique per key).
    pub name: String,
    pub kind: Kind,
    pub limit: u64,
    /// Window length (rates); for quotas the nominal day or month length.
    pub window_ms: u64,
    /// GCRA only: units that may pass at once (equal to `limit` for the others).
    pub burst: u64,
    /// Shared across nodes by leases of units (`consistency: "leased"`, the default) rather
    /// than one shared check per request (`"exact"`). Local limits ignore it.
    pub leased: bool,
    /// GCRA: nanoseconds per unit, and how far ahead of now the arrival time may run.
    emission_ns: u64,
    tolerance_ns: u64,
}

impl Rule {
    fn new(name: String, kind: Kind, limit: u64, window_ms: u64, burst: u64) -> Rule {
        let (limit, window_ms, burst) = (limit.max(1), window_ms.max(1), burst.max(1));
        let (emission_ns, tolerance_ns) = gcra::params(limit, window_ms, burst);
        Rule {
            name,
            kind,
            limit,
            window_ms,
            burst,
            leased: true,
            emission_ns,
            tolerance_ns,
        }
    }

    /// The rule checked exactly on every request when limits are shared (`consistency:
    /// "exact"`).
    pub fn exact(mut self) -> Rule {
        self.leased = false;
        self
    }

    /// The most units a node may lease of this rule at once: its quota / [`LEASE_DIVISOR`],
    /// at least one.
    pub fn max_lease(&self) -> u64 {
        (self.quota() / LEASE_DIVISOR).max(1)
    }

    /// How many units to take at once for a request of `cost` when `want` are wished for: the
    /// first of `want`, `want / 2`, `want / 4`, ... that the rule allows now, never below
    /// `cost` (the caller has checked that `cost` passes). A lease shrinks to the request
    /// itself near the limit. The Redis script halves the same way.
    pub fn lease_size(&self, state: u64, now: Millis, cost: u64, want: u64) -> u64 {
        let mut take = want.max(cost);
        while take > cost && !self.peek(state, now, take).allowed {
            take = (take / 2).max(cost);
        }
        take
    }

    pub fn rate(
        name: impl Into<String>,
        algorithm: Algorithm,
        limit: u64,
        window_secs: u64,
        burst: Option<u64>,
    ) -> Rule {
        Rule::new(
            name.into(),
            Kind::Rate(algorithm),
            limit,
            window_secs * 1000,
            burst.unwrap_or(limit),
        )
    }

    pub fn daily(limit: u64) -> Rule {
        Rule::new("daily".into(), Kind::Daily, limit, 86_400_000, limit)
    }

    pub fn monthly(limit: u64) -> Rule {
        Rule::new(
            "monthly".into(),
            Kind::Monthly,
            limit,
            30 * 86_400_000,
            limit,
        )
    }

    pub fn is_quota(&self) -> bool {
        matches!(self.kind, Kind::Daily | Kind::Monthly)
    }

    /// GCRA's parameters in nanoseconds: the emission interval (per unit) and the tolerance
    /// (how far past now the theoretical arrival time may run). The Redis script runs the same
    /// arithmetic on them; zero for other kinds.
    pub fn gcra_ns(&self) -> (u64, u64) {
        match self.kind {
            Kind::Rate(Algorithm::Gcra) => (self.emission_ns, self.tolerance_ns),
            _ => (0, 0),
        }
    }

    /// The quota (most units per window) the rule advertises.
    pub fn quota(&self) -> u64 {
        match self.kind {
            Kind::Rate(Algorithm::Gcra) => self.burst,
            _ => self.limit,
        }
    }

    /// The answer for a request of `cost` units at `now`, without changing `state`.
    pub fn peek(&self, state: u64, now: Millis, cost: u64) -> Decision {
        match self.kind {
            Kind::Rate(Algorithm::Gcra) => gcra::peek(self, state, now, cost),
            Kind::Rate(Algorithm::FixedWindow) => window::peek(self, state, now, cost),
            Kind::Rate(Algorithm::SlidingWindow) => sliding::peek(self, state, now, cost),
            Kind::Daily | Kind::Monthly => calendar::peek(self, state, now, cost),
        }
    }

    /// The state after an allowed request of `cost` units.
    pub fn commit(&self, state: u64, now: Millis, cost: u64) -> u64 {
        match self.kind {
            Kind::Rate(Algorithm::Gcra) => gcra::commit(self, state, now, cost),
            Kind::Rate(Algorithm::FixedWindow) => window::commit(self, state, now, cost),
            Kind::Rate(Algorithm::SlidingWindow) => sliding::commit(self, state, now, cost),
            Kind::Daily | Kind::Monthly => calendar::commit(self, state, now, cost),
        }
    }

    /// Gives back `cost` units a commit took (another rule refused the request).
    pub fn refund(&self, state: u64, now: Millis, cost: u64) -> u64 {
        match self.kind {
            Kind::Rate(Algorithm::Gcra) => gcra::refund(self, state, cost),
            Kind::Rate(Algorithm::FixedWindow) => window::refund(self, state, now, cost),
            Kind::Rate(Algorithm::SlidingWindow) => sliding::refund(self, state, now, cost),
            Kind::Daily | Kind::Monthly => calendar::refund(self, state, now, cost),
        }
    }

    /// Which window `now` falls in (for "first crossing per window" events).
    pub fn window_index(&self, now: Millis) -> u64 {
        match self.kind {
            Kind::Daily | Kind::Monthly => calendar::index(self.kind, now),
            _ => now / self.window_ms.max(1),
        }
    }
}

/// What a rule says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Decision {
    pub allowed: bool,
    /// The rule's quota per window.
    pub limit: u64,
    /// Units left in the current window after this request (when refused: left before it).
    pub remaining: u64,
    /// Milliseconds until the window resets (for GCRA: until the bucket is full again).
    pub reset_ms: u64,
    /// When refused: milliseconds until a request of the same cost could pass
    /// (`u64::MAX` when it never can: the cost exceeds the rule's quota).
    pub retry_after_ms: u64,
}

impl Decision {
    /// Units used in the window, this request included.
    pub fn used(&self) -> u64 {
        self.limit.saturating_sub(self.remaining)
    }
}

/// The answer for all of a key's rules.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    pub allowed: bool,
    /// The rule that decided: the refusing rule, or the allowing rule with the fewest units left.
    pub deciding: usize,
    /// Rules whose usage reached the soft threshold with this request (bit per rule).
    pub crossed: u16,
    /// Whether any rule is at or past the soft threshold.
    pub warning: bool,
    len: usize,
    decisions: [Decision; MAX_CHECKS],
}

impl Outcome {
    pub fn decisions(&self) -> &[Decision] {
        &self.decisions[..self.len]
    }

    pub fn deciding(&self) -> &Decision {
        &self.decisions[self.deciding]
    }

    fn empty(len: usize) -> Outcome {
        Outcome {
            allowed: true,
            deciding: 0,
            crossed: 0,
            warning: false,
            len: len.min(MAX_CHECKS),
            decisions: [Decision::default(); MAX_CHECKS],
        }
    }

    /// Builds an outcome from per-rule decisions (the Redis script answers these).
    pub fn from_decisions(
        rules: &[Rule],
        decisions: &[Decision],
        soft_threshold: f64,
        cost: u64,
    ) -> Outcome {
        let mut out = Outcome::empty(decisions.len());
        out.decisions[..out.len].copy_from_slice(&decisions[..out.len]);
        out.finish(rules, soft_threshold, cost);
        out
    }

    /// Sets `allowed`, `deciding` and the soft-threshold marks from the decisions.
    fn finish(&mut self, rules: &[Rule], soft_threshold: f64, cost: u64) {
        self.allowed = self.decisions[..self.len].iter().all(|d| d.allowed);
        if !self.allowed {
            // A refused request consumed nothing: the rules that would have let it through
            // report what is left now, not what would have been left after it.
            for d in self.decisions[..self.len].iter_mut().filter(|d| d.allowed) {
                d.remaining = d.remaining.saturating_add(cost).min(d.limit);
            }
        }
        let decisions = &self.decisions[..self.len];
        self.deciding = pick_deciding(decisions);
        if self.allowed {
            for (i, (rule, d)) in rules.iter().zip(decisions).enumerate() {
                let threshold = soft_threshold * rule.quota() as f64;
                let used = d.used() as f64;
                if used >= threshold {
                    self.warning = true;
                    if used - (cost as f64) < threshold {
                        self.crossed |= 1 << i;
                    }
                }
            }
        }
    }
}

fn pick_deciding(decisions: &[Decision]) -> usize {
    let refused = decisions
        .iter()
        .enumerate()
        .filter(|(_, d)| !d.allowed)
        .max_by_key(|(_, d)| d.retry_after_ms)
        .map(|(i, _)| i);
    refused.unwrap_or_else(|| {
        decisions
            .iter()
            .enumerate()
            .min_by_key(|(_, d)| d.remaining)
            .map_or(0, |(i, _)| i)
    })
}

/// Where rule `i`'s counter belongs across edits of a key's rules: its kind, its window and
/// how many earlier rules share both. A changed rule set keeps each counter in its slot (local
/// state, [`SharedState::carried`]; the Redis keys are named by it).
pub fn slot(rules: &[Rule], i: usize) -> (Kind, u64, usize) {
    let rule = &rules[i];
    let nth = rules[..i]
        .iter()
        .filter(|r| r.kind == rule.kind && r.window_ms == rule.window_ms)
        .count();
    (rule.kind, rule.window_ms, nth)
}

/// One key's limiter state: an atomic per rule, checked without a lock.
#[derive(Debug)]
pub struct SharedState {
    cells: Box<[AtomicU64]>,
}

impl SharedState {
    pub fn new(rules: usize) -> SharedState {
        SharedState {
            cells: (0..rules).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// The state for `new_rules` of a key whose rules were `old_rules` with state `old`: each new
    /// rule takes over the counter of the old rule of the same kind and window (the n-th such
    /// rule, when several share them), so changing a limit, adding a rule or rotating the key
    /// forgives nothing already used; rules with no such predecessor start empty.
    pub fn carried(old_rules: &[Rule], old: &SharedState, new_rules: &[Rule]) -> SharedState {
        let cells = (0..new_rules.len())
            .map(|i| {
                let want = slot(new_rules, i);
                let from =
                    (0..old_rules.len().min(old.cells.len())).find(|&j| slot(old_rules, j) == want);
                AtomicU64::new(from.map_or(0, |j| old.cells[j].load(Ordering::Acquire)))
            })
            .collect();
        SharedState { cells }
    }

    /// Heap bytes this state holds (for the memory figure).
    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.cells)
    }

    /// Checks every rule and, when all allow, consumes `cost` from each. Concurrent checks never
    /// let more through than a rule allows: each rule's step is a compare-and-swap, and units a
    /// request took from earlier rules are refunded when a later rule refuses it.
    pub fn check(&self, rules: &[Rule], now: Millis, cost: u64, soft_threshold: f64) -> Outcome {
        self.lease(rules, now, cost, &[], soft_threshold).0
    }

    /// [`Self::check`] that, when every rule allows `cost`, takes from rule `i` up to
    /// `wants[i]` units at once ([`Rule::lease_size`]; `cost` where `wants` has no entry) and
    /// returns how many each rule gave (all zero when refused). Decisions describe the state
    /// after what was taken. This is the arithmetic the Redis script runs for leases.
    pub fn lease(
        &self,
        rules: &[Rule],
        now: Millis,
        cost: u64,
        wants: &[u64],
        soft_threshold: f64,
    ) -> (Outcome, [u64; MAX_CHECKS]) {
        let n = rules.len().min(self.cells.len()).min(MAX_CHECKS);
        let mut out = Outcome::empty(n);
        let mut granted = [0u64; MAX_CHECKS];
        let decisions = &mut out.decisions;
        let mut refused_at = None;
        for i in 0..n {
            let (rule, cell) = (&rules[i], &self.cells[i]);
            let want = wants.get(i).copied().unwrap_or(cost);
            let mut state = cell.load(Ordering::Acquire);
            loop {
                let d = rule.peek(state, now, cost);
                decisions[i] = d;
                if !d.allowed {
                    refused_at = Some(i);
                    break;
                }
                let take = rule.lease_size(state, now, cost, want);
                if take != cost {
                    decisions[i] = rule.peek(state, now, take);
                }
                granted[i] = take;
                let next = rule.commit(state, now, take);
                match cell.compare_exchange_weak(state, next, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) => break,
                    Err(actual) => state = actual,
                }
            }
            if refused_at.is_some() {
                break;
            }
        }
        if let Some(at) = refused_at {
            for i in 0..at {
                let (rule, cell) = (&rules[i], &self.cells[i]);
                let taken = std::mem::take(&mut granted[i]);
                let _ = cell.fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                    Some(rule.refund(s, now, taken))
                });
                decisions[i] = rule.peek(cell.load(Ordering::Acquire), now, cost);
            }
            for i in at + 1..n {
                decisions[i] = rules[i].peek(self.cells[i].load(Ordering::Acquire), now, cost);
            }
        }
        out.finish(&rules[..n], soft_threshold, cost);
        (out, granted)
    }

    /// The state as a read-only answer for a request of one unit (for status pages).
    pub fn peek(&self, rules: &[Rule], now: Millis) -> Vec<Decision> {
        rules
            .iter()
            .zip(self.cells.iter())
            .map(|(r, c)| r.peek(c.load(Ordering::Acquire), now, 0))
            .collect()
    }

    /// One rule's standing for a request of no units.
    pub fn decision(&self, rules: &[Rule], index: usize, now: Millis) -> Option<Decision> {
        let (rule, cell) = (rules.get(index)?, self.cells.get(index)?);
        Some(rule.peek(cell.load(Ordering::Acquire), now, 0))
    }

    /// Raises a quota rule's count to at least `used` in the current window (seeding from the
    /// durable count, or catching up with what other nodes consumed).
    pub fn raise_to(&self, rules: &[Rule], index: usize, now: Millis, used: u64) {
        if let (Some(rule), Some(cell)) = (rules.get(index), self.cells.get(index)) {
            let _ = cell.fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                let have = rule.peek(s, now, 0).used();
                (used > have).then(|| rule.commit(s, now, used - have))
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_halves_until_it_fits_and_takes_nothing_when_refused() {
        let rules = [
            Rule::rate("w", Algorithm::FixedWindow, 100, 60, None),
            Rule::rate("g", Algorithm::Gcra, 50, 1, None),
        ];
        let state = SharedState::new(2);
        let now = 1_800_000_000_000;
        let (o, granted) = state.lease(&rules, now, 1, &[64, 64], 0.8);
        assert!(o.allowed);
        assert_eq!(
            granted[..2],
            [64, 32],
            "the bucket holds 50: 64 halves to 32"
        );
        assert_eq!(o.decisions()[0].remaining, 36);
        // 36 left in the window: 64 → 32 fits; the bucket has 18: 64 → 32 → 16.
        let (_, granted) = state.lease(&rules, now, 1, &[64, 64], 0.8);
        assert_eq!(granted[..2], [32, 16]);
        // Near the limit a lease shrinks to what is left; past it, nothing is taken.
        let (o, granted) = state.lease(&rules, now, 2, &[64, 64], 0.8);
        assert!(o.allowed);
        assert_eq!(granted[..2], [4, 2], "4 and 2 left: 64 halves down to them");
        let before = state.peek(&rules, now);
        let (o, granted) = state.lease(&rules, now, 1, &[64, 64], 0.8);
        assert!(!o.allowed);
        assert_eq!(granted[..2], [0, 0]);
        assert_eq!(state.peek(&rules, now), before, "a refusal takes nothing");
        assert_eq!(
            (Rule::daily(10).max_lease(), Rule::daily(640).max_lease()),
            (1, 20)
        );
    }

    fn fixed(limit: u64, secs: u64) -> Rule {
        Rule::rate(
            format!("f{secs}"),
            Algorithm::FixedWindow,
            limit,
            secs,
            None,
        )
    }

    #[test]
    fn a_refused_request_consumes_from_no_rule() {
        let rules = [fixed(2, 1), fixed(100, 3600)];
        let s = SharedState::new(2);
        for _ in 0..2 {
            assert!(s.check(&rules, 0, 1, 0.8).allowed);
        }
        let refused = s.check(&rules, 10, 1, 0.8);
        assert!(!refused.allowed);
        assert_eq!(refused.deciding, 0);
        assert_eq!(refused.deciding().retry_after_ms, 990);
        assert_eq!(
            s.peek(&rules, 10)[1].remaining,
            98,
            "the hourly rule lost nothing to the refusal"
        );
        assert!(s.check(&rules, 1000, 1, 0.8).allowed);
    }

    #[test]
    fn edited_rules_keep_what_was_used() {
        let before = [fixed(5, 3600), fixed(100, 60)];
        let s = SharedState::new(2);
        for _ in 0..5 {
            assert!(s.check(&before, 1_000, 1, 0.8).allowed);
        }
        assert!(!s.check(&before, 1_000, 1, 0.8).allowed);
        // The hourly limit raised to 6 and a new daily rule: one more call, not six.
        let after = [fixed(100, 60), fixed(6, 3600), fixed(1000, 86_400)];
        let carried = SharedState::carried(&before, &s, &after);
        assert!(carried.check(&after, 1_000, 1, 0.8).allowed);
        let o = carried.check(&after, 1_000, 1, 0.8);
        assert!(!o.allowed);
        assert_eq!(o.deciding, 1);
        // The new rule started empty: 999 of 1000 left after the one allowed call.
        assert_eq!(carried.peek(&after, 1_000)[2].remaining, 999);
    }

    #[test]
    fn a_refusal_reports_what_the_other_rules_still_have() {
        let rules = [fixed(100, 3600), fixed(2, 1)];
        let s = SharedState::new(2);
        for _ in 0..2 {
            assert!(s.check(&rules, 1_000, 1, 0.8).allowed);
        }
        let refused = s.check(&rules, 1_000, 1, 0.8);
        assert!(!refused.allowed);
        // 2 of 100 used: 98 left, not the 97 a consumed unit would leave.
        assert_eq!(refused.decisions()[0].remaining, 98);
        // The Redis script answers each rule as if the request went through.
        let answered = [
            Decision {
                allowed: true,
                limit: 100,
                remaining: 97,
                ..Decision::default()
            },
            Decision {
                allowed: false,
                limit: 2,
                remaining: 0,
                retry_after_ms: 1_000,
                ..Decision::default()
            },
        ];
        let from_script = Outcome::from_decisions(&rules, &answered, 0.8, 1);
        assert_eq!(from_script.decisions()[0].remaining, 98);
    }

    #[test]
    fn a_later_rule_refusing_refunds_the_earlier_ones() {
        let rules = [fixed(100, 3600), fixed(2, 1)];
        let s = SharedState::new(2);
        for _ in 0..2 {
            assert!(s.check(&rules, 0, 1, 0.8).allowed);
        }
        for _ in 0..5 {
            assert!(!s.check(&rules, 1, 1, 0.8).allowed);
        }
        assert_eq!(s.peek(&rules, 1)[0].remaining, 98);
    }

    #[test]
    fn cost_counts_in_units_and_an_impossible_cost_never_passes() {
        let rules = [fixed(10, 60)];
        let s = SharedState::new(1);
        let d = s.check(&rules, 0, 7, 0.8);
        assert!(d.allowed && d.deciding().remaining == 3);
        assert!(!s.check(&rules, 0, 4, 0.8).allowed);
        assert!(s.check(&rules, 0, 3, 0.8).allowed);
        assert_eq!(
            s.check(&rules, 0, 11, 0.8).deciding().retry_after_ms,
            u64::MAX
        );
    }

    #[test]
    fn the_soft_threshold_is_crossed_once_per_window() {
        let rules = [fixed(10, 60)];
        let s = SharedState::new(1);
        let crossings: Vec<bool> = (0..10)
            .map(|_| s.check(&rules, 0, 1, 0.8).crossed != 0)
            .collect();
        assert_eq!(crossings.iter().filter(|c| **c).count(), 1);
        assert!(crossings[7], "the 8th of 10 reaches 80 %");
        let refused = s.check(&rules, 1, 1, 0.8);
        assert!(!refused.allowed && refused.crossed == 0 && !refused.warning);
        assert!(
            s.check(&rules, 60_000, 1, 0.8).crossed == 0,
            "a new window starts below it"
        );
    }

    #[test]
    fn the_tightest_allowing_rule_decides() {
        let rules = [fixed(100, 60), fixed(5, 1)];
        let s = SharedState::new(2);
        let o = s.check(&rules, 0, 1, 0.8);
        assert_eq!(o.deciding, 1);
        assert_eq!(o.deciding().remaining, 4);
    }

    #[test]
    fn concurrent_checks_never_exceed_the_limit() {
        let rules = std::sync::Arc::new([
            fixed(1000, 3600),
            Rule::rate("g", Algorithm::Gcra, 1500, 3600, None),
        ]);
        let s = std::sync::Arc::new(SharedState::new(2));
        let allowed: u64 = (0..4)
            .map(|_| {
                let (rules, s) = (rules.clone(), s.clone());
                std::thread::spawn(move || {
                    (0..1000)
                        .filter(|_| s.check(&*rules, 5, 1, 0.8).allowed)
                        .count() as u64
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .sum();
        assert_eq!(allowed, 1000);
    }

    #[test]
    fn quotas_seeded_from_the_durable_count() {
        let rules = [Rule::daily(10)];
        let s = SharedState::new(1);
        s.raise_to(&rules, 0, 1_000, 9);
        assert!(s.check(&rules, 2_000, 1, 0.8).allowed);
        assert!(!s.check(&rules, 3_000, 1, 0.8).allowed);
        s.raise_to(&rules, 0, 3_000, 4);
        assert_eq!(
            s.peek(&rules, 3_000)[0].remaining,
            0,
            "raising never lowers"
        );
    }
}
