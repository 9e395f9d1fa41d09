//! The rate-limit response fields (`keyward_core::limit::headers`): rules and a quota drawn from
//! the input go through the admin checks (`limit::rules`), become the limiter's rules
//! (`effective`), and a sequence of requests (clock steps and costs, also from the input) runs
//! against them; every answer's fields are written and read back.
//!
//! Invariants:
//! - `RateLimit-Policy` and `RateLimit` parse as RFC 8941 lists (so they are valid header
//!   values): one string item per rule, named as the rule, in order, names unique, with exactly
//!   the integer parameters `q`/`w` (quota, window in seconds, at least 1) and `r`/`t`
//!   (remaining, seconds to reset, rounded up);
//! - every decision's limit is its rule's quota and its remaining count is at most that;
//! - `X-RateLimit-Warning` is visible ASCII;
//! - the outcome rebuilt from the decisions (what the Redis path does) is the same outcome;
//! - checked rules all survive into `effective`.

use arbitrary::{Result, Unstructured};
use keyward_core::api::{Quota, RateLimitRule};
use keyward_core::limit::rules::{effective, quota, rate_limits, soft_threshold};
use keyward_core::limit::{
    MAX_CHECKS, MAX_QUOTA, MAX_RULE_LIMIT, MAX_RULES, MAX_WINDOW_SECONDS, Outcome, Rule,
    SharedState, headers,
};
use keyward_core::validate::FieldErrors;

/// The verify endpoint's largest cost per request.
const MAX_COST: u64 = keyward_core::api::MAX_COST as u64;
/// Clocks up to 2100-01-01 (milliseconds since the epoch).
const LATEST_NOW: u64 = 4_102_444_800_000;
const ALGORITHMS: &[&str] = &["gcra", "fixed_window", "sliding_window", "GCRA", ""];
/// Characters policy names allow, and (last) a few they must not contain.
const NAME_CHARS: &[u8] = b"abcmqxyzAZ0189_.:-";
const BAD_NAME_CHARS: &[u8] = b" \"\\,;=\t";
const NAMES: &[&str] = &["minute", "burst", "hourly", "daily", "monthly", "a:b.c-d_e"];

pub fn run(data: &[u8]) {
    let _ = fuzz(&mut Unstructured::new(data));
}

/// Whether `data` gets as far as a checked answer (for choosing seeds).
pub fn reaches_answers(data: &[u8]) -> bool {
    fuzz(&mut Unstructured::new(data)).unwrap_or(false)
}

/// Mostly values in 1..=max, sometimes the edges and anything at all.
fn number(u: &mut Unstructured<'_>, max: u64) -> Result<i64> {
    let max = i64::try_from(max).unwrap_or(i64::MAX);
    Ok(match u.int_in_range(0u8..=15)? {
        0 => u.arbitrary()?,
        1 => 0,
        2 => max,
        3 => max.saturating_add(1),
        4 => -1,
        _ => u.int_in_range(1..=max)?,
    })
}

fn name(u: &mut Unstructured<'_>) -> Result<Option<String>> {
    Ok(match u.int_in_range(0u8..=7)? {
        0 => None,
        1 => Some(u.arbitrary()?),
        2 | 3 => Some((*u.choose(NAMES)?).to_owned()),
        _ => {
            let len = u.int_in_range(0..=40)?;
            let mut s = String::with_capacity(len);
            for _ in 0..len {
                let chars = if u.ratio(1u8, 16)? {
                    BAD_NAME_CHARS
                } else {
                    NAME_CHARS
                };
                s.push(char::from(*u.choose(chars)?));
            }
            Some(s)
        }
    })
}

fn rule(u: &mut Unstructured<'_>) -> Result<RateLimitRule> {
    Ok(RateLimitRule {
        name: name(u)?,
        algorithm: (*u.choose(ALGORITHMS)?).to_owned(),
        limit: number(u, MAX_RULE_LIMIT)?,
        window_seconds: number(u, MAX_WINDOW_SECONDS)?,
        burst: if u.arbitrary()? {
            Some(number(u, MAX_RULE_LIMIT)?)
        } else {
            None
        },
        consistency: Default::default(),
    })
}

fn optional_quota(u: &mut Unstructured<'_>) -> Result<Option<i64>> {
    Ok(if u.arbitrary()? {
        Some(number(u, MAX_QUOTA)?)
    } else {
        None
    })
}

fn fuzz(u: &mut Unstructured<'_>) -> Result<bool> {
    let count = u.int_in_range(0..=MAX_RULES + 1)?;
    let raw_rules = (0..count).map(|_| rule(u)).collect::<Result<Vec<_>>>()?;
    let raw_quota = if u.arbitrary()? {
        Some(Quota {
            daily: optional_quota(u)?,
            monthly: optional_quota(u)?,
            consistency: Default::default(),
        })
    } else {
        None
    };
    let raw_threshold = if u.int_in_range(0u8..=3)? == 0 {
        u.arbitrary()?
    } else {
        f64::from(u.int_in_range(1u8..=100)?) / 100.0
    };

    let mut errs = FieldErrors::new();
    let checked = rate_limits("rate_limits", &raw_rules, &mut errs);
    let checked_quota = raw_quota.as_ref().map(|q| quota("quota", q, &mut errs));
    let threshold = soft_threshold("soft_threshold", raw_threshold).ok();
    if checked.is_none() || matches!(checked_quota, Some(None)) {
        assert!(!errs.is_empty(), "refused without a reason");
    }
    let (Some(checked), Some(threshold)) = (checked, threshold) else {
        return Ok(false);
    };
    let quota = match checked_quota {
        Some(None) => return Ok(false),
        Some(Some(q)) => Some(q),
        None => None,
    };
    assert!(errs.is_empty());
    let quota_count = quota.as_ref().map_or(0, |q| {
        usize::from(q.daily.is_some()) + usize::from(q.monthly.is_some())
    });
    let rules = effective(&checked, quota.as_ref());
    assert_eq!(
        rules.len(),
        checked.len() + quota_count,
        "checked rules dropped"
    );

    let policy = headers::policy(&rules);
    let members = parse_list(&policy);
    assert_eq!(members.len(), rules.len(), "{policy:?}");
    for (i, (rule, (name, params))) in rules.iter().zip(&members).enumerate() {
        assert_eq!(name, &rule.name, "{policy:?}");
        assert!(
            members[..i].iter().all(|(other, _)| other != name),
            "policy name {name:?} twice in {policy:?}"
        );
        let window = rule.window_ms.div_ceil(1000).max(1);
        assert_eq!(
            params,
            &[("q".to_owned(), rule.quota()), ("w".to_owned(), window)],
            "{policy:?}"
        );
    }

    let state = SharedState::new(rules.len());
    let mut now = u.int_in_range(0..=LATEST_NOW)?;
    let mut answered = false;
    for _ in 0..64 {
        if u.is_empty() {
            break;
        }
        now = now.saturating_add(u.int_in_range(0..=2 * 86_400_000)?);
        let cost = u.int_in_range(0..=MAX_COST)?;
        let outcome = state.check(&rules, now, cost, threshold);
        check_answer(&rules, &outcome, threshold, cost);
        answered = true;
        assert_eq!(state.peek(&rules, now).len(), rules.len());
        if u.int_in_range(0u8..=7)? == 0 {
            let index = u.choose_index(rules.len().max(1))?;
            let used = u.int_in_range(0..=MAX_QUOTA)?;
            state.raise_to(&rules, index, now, used);
        }
    }
    Ok(answered)
}

fn check_answer(rules: &[Rule], outcome: &Outcome, threshold: f64, cost: u64) {
    let decisions = outcome.decisions();
    assert_eq!(decisions.len(), rules.len().min(MAX_CHECKS));
    for (rule, d) in rules.iter().zip(decisions) {
        assert_eq!(d.limit, rule.quota(), "{rule:?}: {d:?}");
        assert!(d.remaining <= d.limit, "{rule:?}: {d:?}");
    }
    let field = headers::ratelimit(rules, decisions);
    let members = parse_list(&field);
    assert_eq!(members.len(), decisions.len(), "{field:?}");
    for ((rule, d), (name, params)) in rules.iter().zip(decisions).zip(&members) {
        assert_eq!(name, &rule.name, "{field:?}");
        assert_eq!(
            params,
            &[
                ("r".to_owned(), d.remaining),
                ("t".to_owned(), d.reset_ms.div_ceil(1000)),
            ],
            "{field:?}"
        );
    }
    if let Some(warning) = headers::warning(rules, decisions, threshold) {
        assert!(
            warning.bytes().all(|b| (0x20..0x7f).contains(&b)),
            "not a header value: {warning:?}"
        );
    }
    let rebuilt = Outcome::from_decisions(rules, decisions, threshold, cost);
    assert_eq!(rebuilt.allowed, outcome.allowed);
    assert_eq!(rebuilt.deciding, outcome.deciding);
    assert_eq!(rebuilt.warning, outcome.warning);
    assert_eq!(rebuilt.crossed, outcome.crossed);
}

/// An RFC 8941 list of string items with integer parameters, as (name, [(key, value)]).
fn parse_list(raw: &str) -> Vec<(String, Vec<(String, u64)>)> {
    let list: sfv::List = sfv::Parser::new(raw)
        .with_version(sfv::Version::Rfc8941)
        .parse()
        .unwrap_or_else(|e| panic!("{raw:?} is not an RFC 8941 list: {e}"));
    list.into_iter()
        .map(|entry| match entry {
            sfv::ListEntry::Item(item) => {
                let name = item
                    .bare_item
                    .as_string()
                    .unwrap_or_else(|| panic!("{raw:?}: a name that is not a string"))
                    .as_str()
                    .to_owned();
                let params = item
                    .params
                    .iter()
                    .map(|(k, v)| {
                        let v = v
                            .as_integer()
                            .unwrap_or_else(|| panic!("{raw:?}: {k:?} is not an integer"));
                        let v = u64::try_from(i64::from(v))
                            .unwrap_or_else(|_| panic!("{raw:?}: {k:?} is negative"));
                        (k.as_str().to_owned(), v)
                    })
                    .collect();
                (name, params)
            }
            sfv::ListEntry::InnerList(_) => panic!("{raw:?}: an inner list"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    fn corpus() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/ratelimit_headers")
    }

    #[test]
    fn some_seeds_reach_the_answers() {
        let reaching = std::fs::read_dir(corpus())
            .unwrap()
            .filter(|e| super::reaches_answers(&std::fs::read(e.as_ref().unwrap().path()).unwrap()))
            .count();
        assert!(
            reaching >= 3,
            "only {reaching} seeds get to the header checks"
        );
    }

    /// Writes seeds that reach the header checks: `cargo test --lib -- --ignored write_seeds`.
    #[test]
    #[ignore]
    fn write_seeds() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut written = 0;
        for attempt in 0..100_000 {
            let len = [48, 96, 160, 256][attempt % 4];
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state.to_le_bytes()[0]
                })
                .collect();
            if super::reaches_answers(&data) {
                std::fs::write(corpus().join(format!("seed{written}")), &data).unwrap();
                written += 1;
                if written == 6 {
                    return;
                }
            }
        }
        panic!("only {written} seeds found");
    }
}
