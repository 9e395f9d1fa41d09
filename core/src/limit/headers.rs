//! The IETF rate-limit fields (draft-ietf-httpapi-ratelimit-headers: RFC 8941 lists of policy
//! names with parameters) and the widely used `X-RateLimit-*` trio.
//!
//! `RateLimit-Policy: "minute";q=100;w=60, "daily";q=10000;w=86400` describes the rules;
//! `RateLimit: "minute";r=42;t=17` says where the request stands. Policy names are validated
//! to `[A-Za-z0-9_.:-]`, so they never need escaping inside the quoted strings.

use std::fmt::Write;

use super::{Decision, Rule};

/// `RateLimit-Policy`: every rule's quota and window (a key's rules change rarely, so the server
/// builds this once per cached record).
pub fn policy(rules: &[Rule]) -> String {
    let mut out = String::new();
    for (i, rule) in rules.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(
            out,
            "\"{}\";q={};w={}",
            rule.name,
            rule.quota(),
            rule.window_ms.div_ceil(1000).max(1)
        );
    }
    out
}

/// Seconds, rounded up, for `t` and `Retry-After` (a wait of 1 ms is still a wait).
pub fn seconds(ms: u64) -> u64 {
    ms.div_ceil(1000)
}

/// `RateLimit`: each rule's remaining units and seconds until its window resets.
pub fn ratelimit(rules: &[Rule], decisions: &[Decision]) -> String {
    let mut out = String::with_capacity(24 * rules.len());
    for (i, (rule, d)) in rules.iter().zip(decisions).enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(
            out,
            "\"{}\";r={};t={}",
            rule.name,
            d.remaining,
            seconds(d.reset_ms)
        );
    }
    out
}

/// `X-RateLimit-Warning` for the rules at or past the soft threshold, e.g.
/// `"minute" 85 of 100 used`.
pub fn warning(rules: &[Rule], decisions: &[Decision], soft_threshold: f64) -> Option<String> {
    let mut out = String::new();
    for (rule, d) in rules.iter().zip(decisions) {
        if d.allowed && d.used() as f64 >= soft_threshold * rule.quota() as f64 {
            if !out.is_empty() {
                out.push_str(", ");
            }
            let _ = write!(
                out,
                "\"{}\" {} of {} used",
                rule.name,
                d.used(),
                rule.quota()
            );
        }
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::super::{Algorithm, SharedState};
    use super::*;

    #[test]
    fn fields_follow_the_draft_syntax() {
        let rules = [
            Rule::rate("burst", Algorithm::Gcra, 10, 1, Some(20)),
            Rule::rate("hourly", Algorithm::FixedWindow, 1000, 3600, None),
            Rule::daily(5000),
        ];
        assert_eq!(
            policy(&rules),
            "\"burst\";q=20;w=1, \"hourly\";q=1000;w=3600, \"daily\";q=5000;w=86400"
        );
        let s = SharedState::new(3);
        let o = s.check(&rules, 3_600_000 + 500, 1, 0.8);
        assert_eq!(
            ratelimit(&rules, o.decisions()),
            "\"burst\";r=19;t=1, \"hourly\";r=999;t=3600, \"daily\";r=4999;t=82800"
        );
        assert_eq!(warning(&rules, o.decisions(), 0.8), None);
        assert_eq!(
            warning(&rules, o.decisions(), 0.0001).as_deref(),
            Some("\"burst\" 1 of 20 used, \"hourly\" 1 of 1000 used, \"daily\" 1 of 5000 used")
        );
    }
}
