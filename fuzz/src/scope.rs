//! Scopes (`resource:action` with `*` wildcards) and webhook event patterns (`*`, `key.*`), one
//! per input line, and the lines together as a scope set.
//!
//! Invariants:
//! - an accepted scope is its own text: parse(display(s)) == s, JSON round-trips, `resource` and
//!   `action` rebuild it, it grants itself, `*:*` grants it, and it is concrete exactly when it
//!   has no wildcard (which is what `validate::required_scope` accepts);
//! - a rejection names what is wrong: `BadCharacter` points at the character it names,
//!   `MissingColon` only without a colon, `TooLong` only past the limit;
//! - a scope set is sorted, without duplicates, within its limit, round-trips, holds every
//!   input, and `allows` is "some held scope grants it"; granting is transitive;
//! - a failed set names the first bad line (or the first one past the limit);
//! - a valid event pattern matches some event type, and every pattern an event type is matched
//!   by is valid.

use keyward_core::api::webhooks::{EVENT_TYPES, is_valid_pattern, pattern_matches};
use keyward_core::scope::{SCOPE_MAX_LEN, SCOPE_SET_MAX, ScopeError};
use keyward_core::validate;
use keyward_core::{Scope, ScopeSet};

pub fn run(data: &[u8]) {
    let text = crate::text(data);
    let items: Vec<String> = text
        .split('\n')
        .take(SCOPE_SET_MAX + 8)
        .map(str::to_owned)
        .collect();
    let all = Scope::parse("*:*").expect("*:*");
    let mut parsed = Vec::new();
    for item in &items {
        if let Some(scope) = check_scope(item, &all) {
            parsed.push(scope);
        }
        check_pattern(item);
    }
    // Granting is transitive (a few triples: the check is cubic).
    let few = &parsed[..parsed.len().min(8)];
    for a in few {
        for b in few {
            for c in few {
                if a.grants(b) && b.grants(c) {
                    assert!(a.grants(c), "{a} grants {b} grants {c}, but not {a} {c}");
                }
            }
        }
    }
    check_set(&items);
    for pair in items.windows(2).take(8) {
        let _ = pattern_matches(&pair[0], &pair[1]);
    }
}

fn check_scope(s: &str, all: &Scope) -> Option<Scope> {
    match Scope::parse(s) {
        Ok(scope) => {
            assert_eq!(scope.as_str(), s);
            assert_eq!(scope.to_string(), s);
            assert_eq!(Scope::parse(&scope.to_string()).as_ref(), Ok(&scope));
            assert_eq!(format!("{}:{}", scope.resource(), scope.action()), s);
            assert!(s.len() <= SCOPE_MAX_LEN);
            assert!(scope.grants(&scope));
            assert!(all.grants(&scope));
            let wild = scope.resource() == "*" || scope.action() == "*";
            assert_eq!(scope.is_concrete(), !wild);
            assert_eq!(
                validate::required_scope("scope", s).is_ok(),
                scope.is_concrete()
            );
            let json = serde_json::to_string(&scope).expect("serialise");
            assert_eq!(
                serde_json::from_str::<Scope>(&json).expect("deserialise"),
                scope
            );
            // Wildcard semantics against the concrete scope with each wildcard filled in.
            let fill = |part: &str| if part == "*" { "x" } else { part }.to_owned();
            let concrete = Scope::parse(&format!(
                "{}:{}",
                fill(scope.resource()),
                fill(scope.action())
            ))
            .expect("filling a wildcard keeps a scope valid");
            assert!(scope.grants(&concrete));
            assert_eq!(concrete.grants(&scope), !wild);
            Some(scope)
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            assert!(validate::required_scope("scope", s).is_err());
            match e {
                ScopeError::TooLong => assert!(s.len() > SCOPE_MAX_LEN),
                ScopeError::MissingColon => assert!(!s.contains(':')),
                ScopeError::BadCharacter {
                    found, position, ..
                } => assert_eq!(
                    s.chars().nth(position - 1),
                    Some(found),
                    "position {position} of {s:?} is not {found:?}"
                ),
                _ => {}
            }
            None
        }
    }
}

fn check_set(items: &[String]) {
    match ScopeSet::parse(items) {
        Ok(set) => {
            assert!(set.len() <= SCOPE_SET_MAX);
            assert_eq!(set.is_empty(), items.is_empty());
            let strings = set.to_strings();
            assert!(
                strings.windows(2).all(|w| w[0] < w[1]),
                "not sorted/deduped"
            );
            for item in items {
                assert!(strings.contains(item), "{item:?} lost");
            }
            assert_eq!(ScopeSet::parse(&strings).as_ref(), Ok(&set));
            assert_eq!(
                ScopeSet::from_scopes(set.iter().cloned()).as_ref(),
                Ok(&set)
            );
            let json = serde_json::to_string(&set).expect("serialise");
            assert_eq!(
                serde_json::from_str::<ScopeSet>(&json).expect("deserialise"),
                set
            );
            for required in &set {
                assert_eq!(set.allows(required), set.iter().any(|s| s.grants(required)));
                assert!(set.allows(required));
            }
            assert!(validate::scopes("scopes", items).is_ok());
        }
        Err((i, e)) => {
            if e == ScopeError::TooMany {
                assert!(items.len() > SCOPE_SET_MAX);
                assert_eq!(i, SCOPE_SET_MAX);
            } else {
                assert_eq!(Scope::parse(&items[i]), Err(e));
                assert!(items[..i].iter().all(|s| Scope::parse(s).is_ok()));
            }
            let err = validate::scopes("scopes", items).expect_err("the set is invalid");
            assert_eq!(err.field, format!("scopes[{i}]"));
        }
    }
}

fn check_pattern(p: &str) {
    if is_valid_pattern(p) {
        assert!(
            EVENT_TYPES.iter().any(|e| pattern_matches(p, e)),
            "valid pattern {p:?} matches no event type"
        );
    }
    for event in EVENT_TYPES {
        let matched = pattern_matches(p, event);
        if p == "*" || p == *event {
            assert!(matched);
        }
        if matched {
            assert!(is_valid_pattern(p), "{p:?} matches {event} but is invalid");
        }
    }
}
