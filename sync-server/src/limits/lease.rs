//! Leased limits: how a node decides most requests of a shared (`leased`) rule without Redis.
//!
//! A node takes a block of a rule's units from the shared counter in one script call (the same
//! atomic check as an exact request, taking `want` units instead of the cost; the script halves
//! the block until the rule allows it, down to the request itself), then grants requests from
//! that block locally until it is spent or its window ends (GCRA: one window of the rule after
//! it was taken). Every unit a node grants was taken from the shared counter first, so:
//!
//! - fixed and sliding windows and quotas never allow more than an exact check would: a block
//!   is spent only in the window it was taken in;
//! - GCRA may allow up to `N × max_lease` beyond what the bucket allows in any interval with
//!   `N` nodes: units leave the bucket when leased and are granted up to a window later, and a
//!   node holds one block per rule;
//! - units leased by a node whose demand stops are not granted by anyone (at most `max_lease`
//!   per node and window): the only way a leased rule falls short of its limit, and a crashed
//!   node's units are the same: never granted, never granted twice.
//!
//! Block sizes follow the node's rate: doubled when the previous block lasted less than
//! [`HORIZON_MS`], halved otherwise, within 1..=[`Rule::max_lease`]. A block is topped up
//! before it runs dry: the request that leaves it at a quarter or less asks Redis for more
//! (cost 0, [`Leases::take_and_top_up`]) while the others go on granting what is left, so in steady state
//! no request waits for Redis; a top-up never brings a node above `max_lease` units of a rule.
//! A refusal is remembered until its `retry_after`, so an exhausted key does not cost a Redis
//! call per request.

use std::sync::Mutex;

use keyward_core::limit::{Algorithm, Decision, Kind, MAX_CHECKS, Millis, Rule};

use super::wire::RuleAnswer;

/// A block that lasted less than this was too small: the next one is twice as large.
pub const HORIZON_MS: u64 = 100;
/// The first block of a rule on a node.
const FIRST_LEASE: u64 = 8;
/// A block is topped up once what is left of it is at most this fraction of it.
const LOW_WATER_DIVISOR: u64 = 4;
/// A block asked for longer ago than this is taken as lost (its request was dropped).
const LEASING_TIMEOUT_MS: u64 = 2_000;

/// One rule's block on this node.
#[derive(Debug, Default, Clone, Copy)]
struct Lease {
    /// The window the units belong to (windows and quotas); 0 for GCRA.
    period: u64,
    /// Units left to grant here.
    left: u64,
    /// The block is void from this instant on (node clock, ms).
    until: Millis,
    /// What the shared counter had left once the block was taken (for `remaining`).
    shared_remaining: u64,
    /// When the rule's window (GCRA: its bucket) resets, as the script said.
    reset_at: Millis,
    /// The last block's size and when it was taken: the next size follows the rate.
    last_size: u64,
    last_at: Millis,
    /// When this node last asked for a block that has not come back yet: meanwhile its other
    /// requests ask for their own cost only, so a node never holds several blocks of a rule.
    leasing_since: Option<Millis>,
    /// A refusal of requests of `refused_cost` units or more in force until then: answered
    /// here without asking Redis.
    refused_until: Millis,
    refused_cost: u64,
    refused: Decision,
}

/// A key lineage's blocks on this node, one per rule.
#[derive(Debug)]
pub struct Leases {
    rules: Box<[Mutex<Lease>]>,
}

fn windowed(rule: &Rule) -> bool {
    rule.kind != Kind::Rate(Algorithm::Gcra)
}

fn period(rule: &Rule, now: Millis) -> u64 {
    if windowed(rule) {
        rule.window_index(now)
    } else {
        0
    }
}

fn take(l: &mut Lease, rule: &Rule, now: Millis, cost: u64) -> Option<Decision> {
    if l.left >= cost && l.period == period(rule, now) && now < l.until {
        l.left -= cost;
        return Some(Decision {
            allowed: true,
            limit: rule.quota(),
            remaining: l.shared_remaining.saturating_add(l.left).min(rule.quota()),
            reset_ms: l.reset_at.saturating_sub(now),
            retry_after_ms: 0,
        });
    }
    if now < l.refused_until && cost >= l.refused_cost {
        let mut d = l.refused;
        d.reset_ms = l.reset_at.saturating_sub(now);
        d.retry_after_ms = l.refused_until - now;
        return Some(d);
    }
    None
}

fn top_up(l: &mut Lease, rule: &Rule, now: Millis) -> Option<u64> {
    // Before it runs dry, not after: a spent block is replaced by the next request that needs
    // units (blocks under LOW_WATER_DIVISOR units are never topped up), so a slow key does not
    // take units it may never use.
    if l.last_size == 0
        || l.left == 0
        || l.left.saturating_mul(LOW_WATER_DIVISOR) > l.last_size
        || l.period != period(rule, now)
        || now >= l.until
        || l.leasing_since
            .is_some_and(|t| now.saturating_sub(t) < LEASING_TIMEOUT_MS)
    {
        return None;
    }
    let size = if now.saturating_sub(l.last_at) < HORIZON_MS {
        l.last_size.saturating_mul(2)
    } else {
        l.last_size / 2
    };
    let want = size
        .clamp(1, rule.max_lease())
        .min(rule.max_lease().saturating_sub(l.left));
    if want == 0 {
        return None;
    }
    l.leasing_since = Some(now);
    Some(want)
}

impl Leases {
    pub fn new(rules: usize) -> Leases {
        Leases {
            rules: (0..rules).map(|_| Mutex::new(Lease::default())).collect(),
        }
    }

    fn lease(&self, i: usize) -> Option<std::sync::MutexGuard<'_, Lease>> {
        self.rules
            .get(i)
            .map(|m| m.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Rule `i`'s answer from this node alone, when it has one: `cost` units taken from its
    /// block, or the refusal still in force. `None`: ask Redis.
    #[cfg(test)]
    pub fn take(&self, i: usize, rule: &Rule, now: Millis, cost: u64) -> Option<Decision> {
        take(&mut *self.lease(i)?, rule, now, cost)
    }

    /// Gives back `cost` units the block gave (another rule refused the request).
    pub fn give_back(&self, i: usize, cost: u64) {
        if let Some(mut l) = self.lease(i) {
            l.left = l.left.saturating_add(cost);
        }
    }

    /// How many units to ask for at once for rule `i`: a block, or only `cost` while this
    /// node's request for a block is in flight (see [`Self::done`]).
    pub fn want(&self, i: usize, rule: &Rule, now: Millis, cost: u64) -> u64 {
        let Some(mut l) = self.lease(i) else {
            return cost;
        };
        if l.leasing_since
            .is_some_and(|t| now.saturating_sub(t) < LEASING_TIMEOUT_MS)
        {
            return cost;
        }
        let size = match l.last_size {
            0 => FIRST_LEASE,
            n if now.saturating_sub(l.last_at) < HORIZON_MS => n.saturating_mul(2),
            n => n / 2,
        };
        let want = size.clamp(1, rule.max_lease()).max(cost);
        if want > cost {
            l.leasing_since = Some(now);
        }
        want
    }

    /// After a request was granted from rule `i`'s block: how many units to take now so the
    /// block does not run dry (`None`: not low yet, or a block is already coming). The node
    /// keeps at most `max_lease` units of the rule; the caller asks Redis with cost 0, records
    /// the answer and calls [`Self::done`].
    #[cfg(test)]
    pub fn top_up(&self, i: usize, rule: &Rule, now: Millis) -> Option<u64> {
        top_up(&mut *self.lease(i)?, rule, now)
    }

    /// Rule `i`'s answer from this node alone (`cost` units from its block, or the refusal in
    /// force; `None`: ask Redis), and how many units to top the block up with now if a
    /// granted request left it low (see `top_up`), under one lock.
    pub fn take_and_top_up(
        &self,
        i: usize,
        rule: &Rule,
        now: Millis,
        cost: u64,
    ) -> Option<(Decision, Option<u64>)> {
        let mut l = self.lease(i)?;
        let d = take(&mut l, rule, now, cost)?;
        let more = if d.allowed {
            top_up(&mut l, rule, now)
        } else {
            None
        };
        Some((d, more))
    }

    /// The block asked for by rule `i` came back (or never will): another may be asked for.
    pub fn done(&self, i: usize) {
        if let Some(mut l) = self.lease(i) {
            l.leasing_since = None;
        }
    }

    /// Records what the script answered for rule `i` of a request of `cost` at `now`, and
    /// returns the rule's decision as this node now stands: a granted block (what is left of it
    /// after this request counts as remaining), or a refusal remembered until its retry time.
    pub fn record(
        &self,
        i: usize,
        rule: &Rule,
        now: Millis,
        cost: u64,
        answer: &RuleAnswer,
        request_allowed: bool,
    ) -> Decision {
        let mut d = answer.decision;
        let Some(mut l) = self.lease(i) else { return d };
        l.reset_at = now.saturating_add(d.reset_ms);
        if !d.allowed {
            // This rule refused: no node can free units of it before retry_after (a cost that
            // can never pass says nothing about smaller ones). A sliding window's retry time is
            // its window's end, later than the weighted count may allow: not remembered.
            if d.retry_after_ms != u64::MAX && rule.kind != Kind::Rate(Algorithm::SlidingWindow) {
                l.refused = d;
                l.refused_cost = cost;
                l.refused_until = now.saturating_add(d.retry_after_ms);
            }
            return d;
        }
        if !request_allowed || answer.granted == 0 {
            return d;
        }
        let p = period(rule, now);
        let kept = if l.period == p && now < l.until {
            l.left
        } else {
            0
        };
        // Every unit here was taken from the shared counter: none is dropped.
        l.left = kept.saturating_add(answer.granted.saturating_sub(cost));
        l.period = p;
        // A window's block dies with the window; a GCRA block lives one window of the rule
        // (its units left the bucket when taken, so however late they are granted, at most one
        // block per node comes on top of what the bucket allows).
        l.until = if windowed(rule) {
            now.saturating_add(d.reset_ms.max(1))
        } else {
            now.saturating_add(rule.window_ms.max(1))
        };
        l.shared_remaining = d.remaining;
        if answer.granted > cost {
            // A block (not a request checked alone while one was in flight): the next one's
            // size follows from how long this one lasts.
            l.last_size = answer.granted;
            l.last_at = now;
        }
        l.refused_until = 0;
        d.remaining = d.remaining.saturating_add(l.left).min(rule.quota());
        d
    }
}

/// Which rules of a check go to Redis and with how many units each: `wants[i]` (`None`:
/// decided here, in `local[i]`). [`Plan::finish`] must end every plan.
pub struct Plan {
    pub wants: [Option<u64>; MAX_CHECKS],
    pub local: [Option<Decision>; MAX_CHECKS],
    /// Rules whose units were taken here (given back if the request is refused).
    pub taken: [bool; MAX_CHECKS],
    /// Blocks running low, and how many units to top each up with ([`Leases::take_and_top_up`]).
    pub top_ups: [Option<u64>; MAX_CHECKS],
}

impl Plan {
    /// Takes `cost` from the blocks of the leased rules that have one; the other rules (exact
    /// ones, and leased ones out of units) go to Redis. A status read (`cost` 0) asks Redis
    /// for every rule and takes nothing.
    pub fn new(leases: &Leases, rules: &[Rule], now: Millis, cost: u64) -> Plan {
        let mut plan = Plan {
            wants: [None; MAX_CHECKS],
            local: [None; MAX_CHECKS],
            taken: [false; MAX_CHECKS],
            top_ups: [None; MAX_CHECKS],
        };
        for (i, rule) in rules.iter().enumerate().take(MAX_CHECKS) {
            if !rule.leased || cost == 0 {
                plan.wants[i] = Some(cost);
                continue;
            }
            match leases.take_and_top_up(i, rule, now, cost) {
                Some((d, more)) => {
                    plan.taken[i] = d.allowed;
                    plan.local[i] = Some(d);
                    plan.top_ups[i] = more;
                }
                None => plan.wants[i] = Some(leases.want(i, rule, now, cost)),
            }
        }
        plan
    }

    /// Whether a rule refused here already (the request is refused without Redis).
    pub fn refused_here(&self) -> bool {
        self.local.iter().flatten().any(|d| !d.allowed)
    }

    /// Whether every rule was decided here.
    pub fn complete(&self) -> bool {
        self.wants.iter().all(Option::is_none)
    }

    /// Gives back the units taken here (the request was refused, or Redis failed).
    pub fn undo(&self, leases: &Leases, cost: u64) {
        for (i, _) in self.taken.iter().enumerate().filter(|(_, t)| **t) {
            leases.give_back(i, cost);
        }
    }

    /// Ends the plan: the blocks it asked for are no longer in flight.
    pub fn finish(&self, leases: &Leases, cost: u64) {
        for (i, w) in self.wants.iter().enumerate() {
            if w.is_some_and(|w| w > cost) {
                leases.done(i);
            }
        }
    }

    /// Whether a block is to be topped up (see [`Leases::take_and_top_up`]).
    pub fn tops_up(&self) -> bool {
        self.top_ups.iter().any(Option::is_some)
    }

    /// Ends the top-ups: recorded from `answers` (in rule order) when Redis answered, and no
    /// longer in flight either way.
    pub fn finish_top_ups(
        &self,
        leases: &Leases,
        rules: &[Rule],
        now: Millis,
        answers: Option<&[RuleAnswer]>,
    ) {
        let mut answers = answers.unwrap_or_default().iter();
        for (i, w) in self.top_ups.iter().enumerate() {
            if w.is_none() {
                continue;
            }
            // Only units granted count; a top-up's refusal says nothing a request's would not.
            if let (Some(a), Some(rule)) = (answers.next(), rules.get(i))
                && a.decision.allowed
            {
                leases.record(i, rule, now, 0, a, true);
            }
            leases.done(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn granted(decision: Decision, granted: u64) -> RuleAnswer {
        RuleAnswer { decision, granted }
    }

    #[test]
    fn a_block_is_spent_here_and_only_in_its_window() {
        let rule = Rule::rate("m", Algorithm::FixedWindow, 1000, 60, None);
        let leases = Leases::new(1);
        let now = 1_800_000_001_000; // a second into a minute
        assert_eq!(leases.take(0, &rule, now, 1), None, "no block yet");
        assert_eq!(leases.want(0, &rule, now, 1), FIRST_LEASE);
        assert_eq!(
            leases.want(0, &rule, now, 1),
            1,
            "one block in flight at a time"
        );
        leases.done(0);
        let d = Decision {
            allowed: true,
            limit: 1000,
            remaining: 900,
            reset_ms: 59_000,
            retry_after_ms: 0,
        };
        let mine = leases.record(0, &rule, now, 1, &granted(d, 8), true);
        assert_eq!(mine.remaining, 907, "the unspent block counts as remaining");
        for n in 0..7 {
            let d = leases.take(0, &rule, now + 10, 1).expect("from the block");
            assert_eq!(d.remaining, 906 - n);
        }
        assert_eq!(leases.take(0, &rule, now + 10, 1), None, "spent");
        // A block left over at the window's end is void.
        leases.record(0, &rule, now, 1, &granted(d, 8), true);
        assert_eq!(leases.take(0, &rule, now + 59_000, 1), None);
    }

    #[test]
    fn a_low_block_is_topped_up_once_and_never_past_the_cap() {
        let rule = Rule::rate("s", Algorithm::FixedWindow, 3200, 1, None);
        assert_eq!(rule.max_lease(), 100);
        let leases = Leases::new(1);
        let d = Decision {
            allowed: true,
            limit: 3200,
            remaining: 3000,
            reset_ms: 1000,
            retry_after_ms: 0,
        };
        // A block of 64 (63 left after the request that took it).
        leases.record(0, &rule, 5, 1, &granted(d, 64), true);
        for _ in 0..46 {
            assert!(leases.take(0, &rule, 6, 1).is_some());
        }
        assert_eq!(
            leases.top_up(0, &rule, 6),
            None,
            "17 left of 64: not low yet"
        );
        assert!(leases.take(0, &rule, 6, 1).is_some());
        // 16 left: a quarter. Doubling would give 128; the node keeps at most 100.
        assert_eq!(leases.top_up(0, &rule, 6), Some(84));
        assert_eq!(leases.top_up(0, &rule, 7), None, "one top-up at a time");
        assert!(
            leases.take(0, &rule, 7, 1).is_some(),
            "the rest is still granted"
        );
        leases.record(0, &rule, 8, 0, &granted(d, 84), true);
        leases.done(0);
        let mut n = 0;
        while leases.take(0, &rule, 9, 1).is_some() {
            n += 1;
        }
        assert_eq!(n, 15 + 84, "what was left and the top-up, nothing more");
    }

    #[test]
    fn blocks_grow_with_the_rate_and_stay_under_the_cap() {
        let rule = Rule::rate("s", Algorithm::FixedWindow, 320, 1, None);
        assert_eq!(rule.max_lease(), 10);
        let leases = Leases::new(1);
        let d = Decision {
            allowed: true,
            limit: 320,
            remaining: 300,
            reset_ms: 1000,
            retry_after_ms: 0,
        };
        leases.record(0, &rule, 5, 1, &granted(d, 8), true);
        assert_eq!(leases.want(0, &rule, 10, 1), 10, "doubled, capped");
        leases.done(0);
        assert_eq!(leases.want(0, &rule, 500, 1), 4, "slow: halved");
        leases.done(0);
        assert_eq!(leases.want(0, &rule, 500, 30), 30, "never below the cost");
        assert_eq!(
            leases.want(0, &rule, 500, 1),
            4,
            "a cost-sized ask is no block"
        );
    }

    #[test]
    fn a_request_checked_alone_does_not_shrink_the_next_block() {
        let rule = Rule::rate("s", Algorithm::FixedWindow, 320_000, 10, None);
        let leases = Leases::new(1);
        let d = Decision {
            allowed: true,
            limit: 320_000,
            remaining: 300_000,
            reset_ms: 9_000,
            retry_after_ms: 0,
        };
        leases.record(0, &rule, 5, 1, &granted(d, 64), true);
        // While the next block is in flight, requests go alone (granted = their cost).
        leases.record(0, &rule, 6, 1, &granted(d, 1), true);
        assert_eq!(
            leases.want(0, &rule, 7, 1),
            128,
            "doubled from the last block"
        );
    }

    #[test]
    fn a_refusal_is_remembered_until_its_retry_time() {
        let rule = Rule::rate("s", Algorithm::FixedWindow, 10, 1, None);
        let leases = Leases::new(1);
        let refused = Decision {
            allowed: false,
            limit: 10,
            remaining: 0,
            reset_ms: 400,
            retry_after_ms: 400,
        };
        leases.record(0, &rule, 1_000, 1, &granted(refused, 0), false);
        let d = leases.take(0, &rule, 1_100, 1).expect("refused here");
        assert!(!d.allowed);
        assert_eq!(d.retry_after_ms, 300);
        assert_eq!(leases.take(0, &rule, 1_400, 1), None, "then Redis again");
    }

    #[test]
    fn exact_rules_always_go_to_redis() {
        let rules = [
            Rule::rate("a", Algorithm::SlidingWindow, 100, 1, None).exact(),
            Rule::daily(1000),
        ];
        let leases = Leases::new(2);
        let plan = Plan::new(&leases, &rules, 1_000, 2);
        assert_eq!(plan.wants[0], Some(2), "exact: the cost itself");
        assert_eq!(plan.wants[1], Some(FIRST_LEASE), "leased: a block");
        let status = Plan::new(&leases, &rules, 1_000, 0);
        assert_eq!(
            status.wants[..2],
            [Some(0), Some(0)],
            "a status read leases nothing"
        );
        assert!(!plan.complete());
    }
}
