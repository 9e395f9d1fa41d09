//! Admin input for limits: every field checked and reported at once, names filled in, and the
//! conversion of checked input into [`Rule`]s.

use crate::api::FieldError;
use crate::api::limits::{Consistency, Quota, RateLimitRule};
use crate::validate::FieldErrors;

use super::{Algorithm, MAX_QUOTA, MAX_RULE_LIMIT, MAX_RULES, MAX_WINDOW_SECONDS, Rule};

/// Default share of a limit past which answers carry a warning.
pub const DEFAULT_SOFT_THRESHOLD: f64 = 0.8;
const NAME_MAX: usize = 32;
const TIER_NAME_MAX: usize = 32;

fn bad(field: String, code: &str, message: impl Into<String>) -> FieldError {
    FieldError::new(field, code, message)
}

fn default_name(window_seconds: i64) -> String {
    match window_seconds {
        1 => "second".into(),
        60 => "minute".into(),
        3600 => "hour".into(),
        86_400 => "day".into(),
        n => format!("{n}s"),
    }
}

fn policy_name_ok(name: &str) -> bool {
    (1..=NAME_MAX).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

/// Checks a list of rules; returns them with names filled in, or records every bad field.
pub fn rate_limits(
    field: &str,
    rules: &[RateLimitRule],
    errs: &mut FieldErrors,
) -> Option<Vec<RateLimitRule>> {
    let before = errs.len();
    if rules.len() > MAX_RULES {
        errs.push(bad(
            field.into(),
            "too_many",
            format!(
                "at most {MAX_RULES} rules per key or tier, got {}",
                rules.len()
            ),
        ));
        return None;
    }
    let mut out = Vec::with_capacity(rules.len());
    for (i, r) in rules.iter().enumerate() {
        let at = |f: &str| format!("{field}[{i}].{f}");
        let algorithm = Algorithm::parse(&r.algorithm);
        if algorithm.is_none() {
            errs.push(bad(
                at("algorithm"),
                "unknown_algorithm",
                format!(
                    "must be one of gcra, fixed_window, sliding_window; got {:?}",
                    r.algorithm.chars().take(32).collect::<String>()
                ),
            ));
        }
        if !(1..=MAX_RULE_LIMIT as i64).contains(&r.limit) {
            errs.push(bad(
                at("limit"),
                "out_of_range",
                format!("must be between 1 and {MAX_RULE_LIMIT}, got {}", r.limit),
            ));
        }
        if !(1..=MAX_WINDOW_SECONDS as i64).contains(&r.window_seconds) {
            errs.push(bad(at("window_seconds"), "out_of_range", format!("must be between 1 and {MAX_WINDOW_SECONDS} (a day; longer periods are quotas), got {}", r.window_seconds)));
        }
        if let Some(burst) = r.burst {
            if algorithm.is_some_and(|a| a != Algorithm::Gcra) {
                errs.push(bad(
                    at("burst"),
                    "not_applicable",
                    "only gcra rules take a burst",
                ));
            } else if !(1..=MAX_RULE_LIMIT as i64).contains(&burst) {
                errs.push(bad(
                    at("burst"),
                    "out_of_range",
                    format!("must be between 1 and {MAX_RULE_LIMIT}, got {burst}"),
                ));
            }
        }
        let name = match r.name.as_deref().map(str::trim) {
            Some(n) if !policy_name_ok(n) => {
                errs.push(bad(
                    at("name"),
                    "invalid_name",
                    format!("must be 1–{NAME_MAX} characters of A–Z, a–z, 0–9, _ . : -"),
                ));
                String::new()
            }
            Some(n) => n.to_owned(),
            None => default_name(r.window_seconds),
        };
        if !name.is_empty()
            && out
                .iter()
                .any(|o: &RateLimitRule| o.name.as_deref() == Some(&name))
        {
            errs.push(bad(
                at("name"),
                "duplicate",
                format!("another rule is already named {name:?}; give each rule its own name"),
            ));
        }
        if matches!(name.as_str(), "daily" | "monthly") {
            errs.push(bad(
                at("name"),
                "reserved",
                "\"daily\" and \"monthly\" name the quotas",
            ));
        }
        out.push(RateLimitRule {
            name: Some(name),
            algorithm: r.algorithm.clone(),
            limit: r.limit,
            window_seconds: r.window_seconds,
            burst: r.burst,
            consistency: r.consistency,
        });
    }
    (errs.len() == before).then_some(out)
}

/// Checks a quota: at least one of `daily` and `monthly`, each 1–10^11.
pub fn quota(field: &str, q: &Quota, errs: &mut FieldErrors) -> Option<Quota> {
    let before = errs.len();
    if q.daily.is_none() && q.monthly.is_none() {
        errs.push(bad(
            field.into(),
            "required",
            "give `daily`, `monthly` or both (or null for no quota)",
        ));
    }
    for (name, v) in [("daily", q.daily), ("monthly", q.monthly)] {
        if let Some(v) = v
            && !(1..=MAX_QUOTA as i64).contains(&v)
        {
            errs.push(bad(
                format!("{field}.{name}"),
                "out_of_range",
                format!("must be between 1 and {MAX_QUOTA}, got {v}"),
            ));
        }
    }
    (errs.len() == before).then(|| q.clone())
}

/// A soft threshold: a share above 0 and at most 1.
pub fn soft_threshold(field: &str, v: f64) -> Result<f64, FieldError> {
    if v > 0.0 && v <= 1.0 {
        Ok(v)
    } else {
        Err(bad(
            field.into(),
            "out_of_range",
            format!("must be above 0 and at most 1, got {v}"),
        ))
    }
}

/// A tier name: a lower-case slug.
pub fn tier_name(field: &str, raw: &str) -> Result<String, FieldError> {
    let ok = (1..=TIER_NAME_MAX).contains(&raw.len())
        && raw
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(bad(
            field.into(),
            "invalid_name",
            format!(
                "must be 1–{TIER_NAME_MAX} characters of a–z, 0–9, _ and -, starting with a letter or digit"
            ),
        ))
    }
}

/// The rules a key is held to: its rate rules, then its quotas. Input must have passed
/// [`rate_limits`] and [`quota`]; anything else is skipped rather than trusted.
pub fn effective(rules: &[RateLimitRule], quota: Option<&Quota>) -> Vec<Rule> {
    let mut out: Vec<Rule> = rules
        .iter()
        .filter_map(|r| {
            let algorithm = Algorithm::parse(&r.algorithm)?;
            let limit = u64::try_from(r.limit)
                .ok()
                .filter(|l| (1..=MAX_RULE_LIMIT).contains(l))?;
            let window = u64::try_from(r.window_seconds)
                .ok()
                .filter(|w| (1..=MAX_WINDOW_SECONDS).contains(w))?;
            let burst = r
                .burst
                .and_then(|b| u64::try_from(b).ok())
                .filter(|b| (1..=MAX_RULE_LIMIT).contains(b));
            let name = r
                .name
                .clone()
                .unwrap_or_else(|| default_name(r.window_seconds));
            let rule = Rule::rate(name, algorithm, limit, window, burst);
            Some(match r.consistency {
                Consistency::Leased => rule,
                Consistency::Exact => rule.exact(),
            })
        })
        .take(MAX_RULES)
        .collect();
    if let Some(q) = quota {
        let ok = |v: Option<i64>| {
            v.and_then(|v| u64::try_from(v).ok())
                .filter(|v| (1..=MAX_QUOTA).contains(v))
        };
        let kept = |rule: Rule| match q.consistency {
            Consistency::Leased => rule,
            Consistency::Exact => rule.exact(),
        };
        if let Some(d) = ok(q.daily) {
            out.push(kept(Rule::daily(d)));
        }
        if let Some(m) = ok(q.monthly) {
            out.push(kept(Rule::monthly(m)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(algorithm: &str, limit: i64, window_seconds: i64, burst: Option<i64>) -> RateLimitRule {
        RateLimitRule {
            name: None,
            algorithm: algorithm.into(),
            limit,
            window_seconds,
            burst,
            consistency: Default::default(),
        }
    }

    #[test]
    fn every_bad_field_is_reported_with_its_path() {
        let mut errs = FieldErrors::new();
        let got = rate_limits(
            "rate_limits",
            &[
                rule("leaky", 0, 0, None),
                rule("fixed_window", -5, 100_000, Some(3)),
                rule("gcra", 10, 1, Some(0)),
            ],
            &mut errs,
        );
        assert!(got.is_none());
        let fields: Vec<(String, String)> = errs
            .into_result()
            .unwrap_err()
            .into_iter()
            .map(|e| (e.field, e.code))
            .collect();
        assert_eq!(
            fields,
            [
                ("rate_limits[0].algorithm", "unknown_algorithm"),
                ("rate_limits[0].limit", "out_of_range"),
                ("rate_limits[0].window_seconds", "out_of_range"),
                ("rate_limits[1].limit", "out_of_range"),
                ("rate_limits[1].window_seconds", "out_of_range"),
                ("rate_limits[1].burst", "not_applicable"),
                ("rate_limits[2].burst", "out_of_range"),
            ]
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
        );
    }

    #[test]
    fn names_are_derived_and_must_be_unique() {
        let mut errs = FieldErrors::new();
        let ok = rate_limits(
            "r",
            &[
                rule("gcra", 10, 1, Some(20)),
                rule("fixed_window", 1000, 3600, None),
            ],
            &mut errs,
        )
        .unwrap();
        assert_eq!(ok[0].name.as_deref(), Some("second"));
        assert_eq!(ok[1].name.as_deref(), Some("hour"));
        assert!(
            rate_limits(
                "r",
                &[
                    rule("gcra", 10, 60, None),
                    rule("sliding_window", 20, 60, None)
                ],
                &mut errs
            )
            .is_none()
        );
        assert_eq!(errs.into_result().unwrap_err()[0].code, "duplicate");
        let rules = effective(
            &ok,
            Some(&Quota {
                daily: Some(100),
                monthly: None,
                consistency: Default::default(),
            }),
        );
        assert_eq!(
            rules.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
            ["second", "hour", "daily"]
        );
        assert_eq!(rules[0].quota(), 20);
    }

    #[test]
    fn quotas_thresholds_and_tier_names() {
        let mut errs = FieldErrors::new();
        assert!(quota("quota", &Quota::default(), &mut errs).is_none());
        assert!(
            quota(
                "quota",
                &Quota {
                    daily: Some(0),
                    monthly: Some(MAX_QUOTA as i64 + 1),
                    consistency: Default::default(),
                },
                &mut errs
            )
            .is_none()
        );
        assert_eq!(errs.len(), 3);
        assert!(
            soft_threshold("s", 0.0).is_err()
                && soft_threshold("s", 1.5).is_err()
                && soft_threshold("s", 1.0).is_ok()
        );
        assert!(tier_name("n", "pro").is_ok() && tier_name("n", "free-2").is_ok());
        for bad in ["", "Pro", "-x", "a b", &"x".repeat(33)] {
            assert!(tier_name("n", bad).is_err(), "{bad:?}");
        }
    }
}
