//! The batch protocol between the Redis limiter and `check.lua`, declared once.
//!
//! A batch is `ARGV[1]` = number of requests, then per request [`REQUEST_ARGS`] values
//! ([`Request`]: the node's clock, the cost, the rule count) followed by [`RULE_ARGS`] values
//! per rule ([`RuleArgs`]), and one base key per rule in `KEYS`. The script answers
//! [`ANSWER_VALUES`] integers per rule. The field lists are arrays of those lengths, so the
//! encoder cannot drift from the constants; the script states the same numbers (a test here
//! holds them equal) and refuses a batch of any other shape with an error, before it touches a
//! counter.
//!
//! Time is the node's: every request carries its `now` (milliseconds), and for windows and
//! quotas the window index and the milliseconds to its end, computed here by
//! `keyward_core::limit` from that same `now`. The script reads no clock, so a shared check
//! is the same function of (counters, now, cost) as a local one.

use std::fmt::Display;

use keyward_core::limit::{Algorithm, Decision, Kind, Millis, Rule, slot};
use redis::{RedisWrite, ToRedisArgs};

use super::KeyLimits;

/// The script (loaded by its SHA; every node runs the copy built into it).
pub static SCRIPT: &str = include_str!("check.lua");

/// Values before the first request: the request count.
pub const HEAD_ARGS: usize = 1;
/// Values per request: now_ms, cost, rule count.
pub const REQUEST_ARGS: usize = 3;
/// Values per rule: kind, quota, window_ms, period, reset_ms, seed, emission_ns, tolerance_ns,
/// want.
pub const RULE_ARGS: usize = 9;
/// Integers answered per rule: allowed (0/1), limit, remaining, reset_ms, retry_after_ms
/// (-1: never), granted.
pub const ANSWER_VALUES: usize = 6;

/// The production key namespace.
pub const NAMESPACE: &str = "kw";

/// One argument: a kind name or a number (sent as its decimal digits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arg<'a> {
    Str(&'a str),
    Int(u64),
}

impl ToRedisArgs for Arg<'_> {
    fn write_redis_args<W>(&self, out: &mut W)
    where
        W: ?Sized + RedisWrite,
    {
        match self {
            Arg::Str(s) => out.write_arg(s.as_bytes()),
            Arg::Int(n) => n.write_redis_args(out),
        }
    }
}

/// One rule of one request, as the script reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleArgs {
    /// The rule's base key (its counters are `key:period`, GCRA's TAT `key:tat`).
    pub key: String,
    /// gcra | fixed_window | sliding_window | daily | monthly.
    pub kind: &'static str,
    /// What the rule answers as its limit ([`Rule::quota`]: the burst for GCRA).
    pub quota: u64,
    pub window_ms: u64,
    /// Windows and quotas: the index of the window `now` is in ([`Rule::window_index`]).
    pub period: u64,
    /// Windows and quotas: milliseconds from `now` to the end of that window.
    pub reset_ms: u64,
    /// Quotas: units already counted (durable count plus what this node allowed), used while
    /// Redis has no counter for the period.
    pub seed: u64,
    /// GCRA: nanoseconds per unit, and how far past now the TAT may run ([`Rule::gcra_ns`]).
    pub emission_ns: u64,
    pub tolerance_ns: u64,
    /// Units to take at once if the request passes (a lease), at least its cost.
    pub want: u64,
}

impl RuleArgs {
    pub fn new(rule: &Rule, key: String, now: Millis, seed: u64, want: u64) -> RuleArgs {
        let kind = match rule.kind {
            Kind::Rate(a) => a.as_str(),
            Kind::Daily => "daily",
            Kind::Monthly => "monthly",
        };
        let (emission_ns, tolerance_ns) = rule.gcra_ns();
        let windowed = rule.kind != Kind::Rate(Algorithm::Gcra);
        RuleArgs {
            key,
            kind,
            quota: rule.quota(),
            window_ms: rule.window_ms,
            period: if windowed { rule.window_index(now) } else { 0 },
            reset_ms: if windowed {
                rule.peek(0, now, 0).reset_ms
            } else {
                0
            },
            seed: if rule.is_quota() { seed } else { 0 },
            emission_ns,
            tolerance_ns,
            want,
        }
    }

    /// The rule's values, in the script's order.
    fn values(&self) -> [Arg<'_>; RULE_ARGS] {
        [
            Arg::Str(self.kind),
            Arg::Int(self.quota),
            Arg::Int(self.window_ms),
            Arg::Int(self.period),
            Arg::Int(self.reset_ms),
            Arg::Int(self.seed),
            Arg::Int(self.emission_ns),
            Arg::Int(self.tolerance_ns),
            Arg::Int(self.want),
        ]
    }
}

/// One request: a check of `cost` units at `now_ms` against every rule of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub now_ms: Millis,
    pub cost: u64,
    pub rules: Vec<RuleArgs>,
}

impl Request {
    /// The request for the rules of a key whose `wants` entry is set, each wishing for that
    /// many units at once (at least `cost`; exactly `cost`: an exact check). Counters are
    /// named by `namespace`, the key's rotation lineage and each rule's slot; quotas are seeded
    /// from the key's local state.
    pub fn for_rules(
        namespace: &str,
        lineage: impl Display,
        limits: &KeyLimits,
        cost: u64,
        now: Millis,
        wants: &[Option<u64>],
    ) -> Request {
        let rules = &limits.rules;
        Request {
            now_ms: now,
            cost,
            rules: (0..rules.len())
                .filter_map(|i| Some((i, wants.get(i).copied().flatten()?)))
                .map(|(i, want)| {
                    let seed = if rules[i].is_quota() {
                        limits.quota_used(i, now)
                    } else {
                        0
                    };
                    RuleArgs::new(
                        &rules[i],
                        base_key(namespace, &lineage, rules, i),
                        now,
                        seed,
                        want.max(cost),
                    )
                })
                .collect(),
        }
    }

    fn values(&self) -> [Arg<'_>; REQUEST_ARGS] {
        [
            Arg::Int(self.now_ms),
            Arg::Int(self.cost),
            Arg::Int(self.rules.len() as u64),
        ]
    }

    /// Integers the script answers for this request.
    pub fn answer_len(&self) -> usize {
        self.rules.len() * ANSWER_VALUES
    }
}

/// Rule `i`'s base key: counters belong to the rotation lineage and the rule's slot, as in
/// local mode, so rotating the key or changing a limit goes on from what was used.
pub fn base_key(namespace: &str, lineage: impl Display, rules: &[Rule], i: usize) -> String {
    let (kind, window_ms, nth) = slot(rules, i);
    match kind {
        Kind::Rate(a) => format!("{namespace}:rl:{lineage}:{}:{window_ms}:{nth}", a.as_str()),
        Kind::Daily => format!("{namespace}:q:{lineage}:d"),
        Kind::Monthly => format!("{namespace}:q:{lineage}:m"),
    }
}

/// Values a batch of `requests` takes in `ARGV` and `KEYS`.
pub fn layout_len<'a>(requests: impl IntoIterator<Item = &'a Request>) -> (usize, usize) {
    requests
        .into_iter()
        .fold((HEAD_ARGS, 0), |(args, keys), r| {
            (
                args + REQUEST_ARGS + RULE_ARGS * r.rules.len(),
                keys + r.rules.len(),
            )
        })
}

/// A batch as `KEYS` and `ARGV`.
pub fn encode<'a>(requests: &[&'a Request]) -> (Vec<&'a str>, Vec<Arg<'a>>) {
    let (nargs, nkeys) = layout_len(requests.iter().copied());
    let (mut keys, mut args) = (Vec::with_capacity(nkeys), Vec::with_capacity(nargs));
    args.push(Arg::Int(requests.len() as u64));
    for r in requests {
        args.extend(r.values());
        for rule in &r.rules {
            keys.push(rule.key.as_str());
            args.extend(rule.values());
        }
    }
    debug_assert_eq!((args.len(), keys.len()), (nargs, nkeys));
    (keys, args)
}

/// The script call for a batch.
pub fn invocation<'s>(
    script: &'s redis::Script,
    requests: &[&Request],
) -> redis::ScriptInvocation<'s> {
    let (keys, args) = encode(requests);
    let mut call = script.prepare_invoke();
    for k in keys {
        call.key(k);
    }
    for a in args {
        call.arg(a);
    }
    call
}

/// What the script answered for one rule of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleAnswer {
    pub decision: Decision,
    /// Units taken (the cost, or a lease of more); 0 when the request was refused.
    pub granted: u64,
}

/// Splits the script's answer to a batch into each request's answers; `None` when its length
/// is not what the layout says.
pub fn decode(values: &[i64], requests: &[&Request]) -> Option<Vec<Vec<RuleAnswer>>> {
    let want: usize = requests.iter().map(|r| r.answer_len()).sum();
    if values.len() != want {
        return None;
    }
    let mut at = 0;
    Some(
        requests
            .iter()
            .map(|r| {
                let part = &values[at..at + r.answer_len()];
                at += r.answer_len();
                part.chunks_exact(ANSWER_VALUES).map(decision).collect()
            })
            .collect(),
    )
}

fn decision(c: &[i64]) -> RuleAnswer {
    RuleAnswer {
        decision: Decision {
            allowed: c[0] == 1,
            limit: c[1].max(0) as u64,
            remaining: c[2].max(0) as u64,
            reset_ms: c[3].max(0) as u64,
            retry_after_ms: if c[4] < 0 { u64::MAX } else { c[4] as u64 },
        },
        granted: c[5].max(0) as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The numbers the script states on its layout line.
    fn script_layout() -> [usize; 4] {
        let line = SCRIPT
            .lines()
            .find(|l| l.starts_with("local HEAD, PER_REQUEST, PER_RULE, PER_ANSWER = "))
            .expect("check.lua states its layout");
        let numbers: Vec<usize> = line
            .split('=')
            .nth(1)
            .unwrap()
            .split(',')
            .map(|n| n.trim().parse().unwrap())
            .collect();
        numbers.try_into().unwrap()
    }

    #[test]
    fn the_script_states_the_same_layout() {
        assert_eq!(
            script_layout(),
            [HEAD_ARGS, REQUEST_ARGS, RULE_ARGS, ANSWER_VALUES]
        );
    }

    #[test]
    fn a_batch_encodes_to_the_layout_length() {
        let rules = [
            Rule::rate("g", Algorithm::Gcra, 10, 1, Some(5)),
            Rule::rate("s", Algorithm::SlidingWindow, 10, 60, None),
            Rule::daily(100),
        ];
        let now = 1_800_000_000_123;
        let one = Request {
            now_ms: now,
            cost: 3,
            rules: (0..3)
                .map(|i| {
                    RuleArgs::new(
                        &rules[i],
                        base_key("t", "k", &rules, i),
                        now,
                        7,
                        3 + i as u64,
                    )
                })
                .collect(),
        };
        let two = Request {
            rules: one.rules[..1].to_vec(),
            ..one.clone()
        };
        let (keys, args) = encode(&[&one, &two]);
        assert_eq!(
            args.len(),
            HEAD_ARGS + 2 * REQUEST_ARGS + 4 * RULE_ARGS,
            "1 + 3 per request + 9 per rule"
        );
        assert_eq!(
            keys,
            [
                "t:rl:k:gcra:1000:0",
                "t:rl:k:sliding_window:60000:0",
                "t:q:k:d",
                "t:rl:k:gcra:1000:0"
            ]
        );
        assert_eq!(
            &args[..HEAD_ARGS + REQUEST_ARGS + RULE_ARGS],
            [
                Arg::Int(2),
                Arg::Int(now),
                Arg::Int(3),
                Arg::Int(3),
                Arg::Str("gcra"),
                Arg::Int(5),
                Arg::Int(1000),
                Arg::Int(0),
                Arg::Int(0),
                Arg::Int(0),
                Arg::Int(100_000_000),
                Arg::Int(500_000_000),
                Arg::Int(3),
            ]
        );
        // The sliding window: its index and the time to its end, from the same clock.
        let sliding = &args[HEAD_ARGS + REQUEST_ARGS + RULE_ARGS..][..RULE_ARGS];
        assert_eq!(sliding[3], Arg::Int(now / 60_000));
        assert_eq!(sliding[4], Arg::Int(60_000 - now % 60_000));
        // The quota carries its seed; the rate rules none.
        assert_eq!(
            args[HEAD_ARGS + REQUEST_ARGS + 2 * RULE_ARGS + 5],
            Arg::Int(7)
        );
        let answer: Vec<i64> = (0..(4 * ANSWER_VALUES) as i64).collect();
        let decoded = decode(&answer, &[&one, &two]).unwrap();
        assert_eq!((decoded[0].len(), decoded[1].len()), (3, 1));
        assert!(decode(&answer[1..], &[&one, &two]).is_none());
    }
}
