//! Permission scopes: `resource:action`, where either part may be the wildcard `*`.
//!
//! A part is `*` or a lowercase letter followed by up to 62 of `a-z 0-9 _ . -`. A key holds a
//! [`ScopeSet`]; a request needs one concrete [`Scope`], which the set [`allows`](ScopeSet::allows)
//! if any held scope [`grants`](Scope::grants) it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

/// Longest scope, in characters.
pub const SCOPE_MAX_LEN: usize = 128;
/// Longest resource or action, in characters.
pub const SCOPE_PART_MAX_LEN: usize = 63;
/// Most scopes one key may hold.
pub const SCOPE_SET_MAX: usize = 64;

const WILDCARD: &str = "*";

/// Which half of a scope an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopePart {
    Resource,
    Action,
}

impl fmt::Display for ScopePart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ScopePart::Resource => "resource",
            ScopePart::Action => "action",
        })
    }
}

/// Why a string is not a scope (or a list is not a scope set). Positions count characters from 1.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ScopeError {
    #[error("scope is longer than {SCOPE_MAX_LEN} characters")]
    TooLong,
    #[error("scope must look like `resource:action` but has no ':'")]
    MissingColon,
    #[error("the {part} part of the scope is empty (expected `resource:action`)")]
    EmptyPart { part: ScopePart },
    #[error("the {part} part of the scope is longer than {SCOPE_PART_MAX_LEN} characters")]
    PartTooLong { part: ScopePart },
    #[error(
        "bad character {found:?} at position {position}: the {part} must be `*` or start with \
         a lowercase letter followed by lowercase letters, digits, '_', '.' or '-'"
    )]
    BadCharacter {
        part: ScopePart,
        found: char,
        position: usize,
    },
    #[error("too many scopes (at most {SCOPE_SET_MAX})")]
    TooMany,
}

/// One `resource:action` scope, validated at construction.
///
/// Ordered by its text, so a [`ScopeSet`] lists scopes alphabetically.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = String, example = "keys:read"))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(type = "string"))]
pub struct Scope(String);

impl Scope {
    /// Parses `resource:action`.
    pub fn parse(s: &str) -> Result<Scope, ScopeError> {
        if s.len() > SCOPE_MAX_LEN {
            return Err(ScopeError::TooLong);
        }
        let (resource, action) = s.split_once(':').ok_or(ScopeError::MissingColon)?;
        check_part(resource, ScopePart::Resource, 1)?;
        check_part(action, ScopePart::Action, resource.chars().count() + 2)?;
        Ok(Scope(s.to_owned()))
    }

    /// The part before the colon.
    pub fn resource(&self) -> &str {
        self.split().0
    }

    /// The part after the colon.
    pub fn action(&self) -> &str {
        self.split().1
    }

    /// The scope as text, `resource:action`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True if neither part is a wildcard: what a request may require.
    pub fn is_concrete(&self) -> bool {
        let (resource, action) = self.split();
        resource != WILDCARD && action != WILDCARD
    }

    /// Whether holding `self` grants `required`.
    ///
    /// Per part: a wildcard grants any value (including a wildcard); a literal grants only the
    /// same literal. So a required wildcard is granted only by a wildcard in that part.
    pub fn grants(&self, required: &Scope) -> bool {
        let (have_res, have_act) = self.split();
        let (need_res, need_act) = required.split();
        (have_res == WILDCARD || have_res == need_res)
            && (have_act == WILDCARD || have_act == need_act)
    }

    fn split(&self) -> (&str, &str) {
        self.0
            .split_once(':')
            .expect("a parsed scope always contains ':'")
    }
}

/// Checks one part; `offset` is the 1-based character position of its first character.
fn check_part(part: &str, which: ScopePart, offset: usize) -> Result<(), ScopeError> {
    if part.is_empty() {
        return Err(ScopeError::EmptyPart { part: which });
    }
    if part == WILDCARD {
        return Ok(());
    }
    for (i, c) in part.chars().enumerate() {
        let ok = if i == 0 {
            c.is_ascii_lowercase()
        } else {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-')
        };
        if !ok {
            return Err(ScopeError::BadCharacter {
                part: which,
                found: c,
                position: offset + i,
            });
        }
    }
    // All ASCII by now, so bytes == characters.
    if part.len() > SCOPE_PART_MAX_LEN {
        return Err(ScopeError::PartTooLong { part: which });
    }
    Ok(())
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Scope {
    type Err = ScopeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::parse(s)
    }
}

impl Serialize for Scope {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Scope::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// The scopes a key holds: sorted, without duplicates, at most [`SCOPE_SET_MAX`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = Vec<String>, example = json!(["keys:read", "usage:*"])))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(type = "string[]"))]
pub struct ScopeSet(Vec<Scope>);

impl ScopeSet {
    /// Parses a list of scope strings. On error, returns the index of the first bad item (for
    /// too many items, the index of the first one past the limit).
    pub fn parse(items: &[String]) -> Result<ScopeSet, (usize, ScopeError)> {
        if items.len() > SCOPE_SET_MAX {
            return Err((SCOPE_SET_MAX, ScopeError::TooMany));
        }
        let mut scopes = items
            .iter()
            .enumerate()
            .map(|(i, item)| Scope::parse(item).map_err(|e| (i, e)))
            .collect::<Result<Vec<_>, _>>()?;
        scopes.sort();
        scopes.dedup();
        Ok(ScopeSet(scopes))
    }

    /// Builds a set from already parsed scopes (sorted and deduplicated here).
    pub fn from_scopes(scopes: impl IntoIterator<Item = Scope>) -> Result<ScopeSet, ScopeError> {
        let mut scopes: Vec<Scope> = scopes.into_iter().collect();
        scopes.sort();
        scopes.dedup();
        if scopes.len() > SCOPE_SET_MAX {
            return Err(ScopeError::TooMany);
        }
        Ok(ScopeSet(scopes))
    }

    /// True if any held scope grants `required`.
    pub fn allows(&self, required: &Scope) -> bool {
        self.0.iter().any(|s| s.grants(required))
    }

    /// The scopes, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Scope> {
        self.0.iter()
    }

    /// True if the set holds no scope (and so allows nothing).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Number of scopes held.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The scopes as strings, in order.
    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(|s| s.0.clone()).collect()
    }
}

impl<'a> IntoIterator for &'a ScopeSet {
    type Item = &'a Scope;
    type IntoIter = std::slice::Iter<'a, Scope>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl<'de> Deserialize<'de> for ScopeSet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let items = Vec::<String>::deserialize(deserializer)?;
        ScopeSet::parse(&items)
            .map_err(|(i, e)| serde::de::Error::custom(format!("scope {i}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[cfg(feature = "openapi")]
    #[test]
    fn openapi_schemas_are_strings() {
        use utoipa::PartialSchema;
        let scope = serde_json::to_value(Scope::schema()).unwrap();
        assert_eq!(scope["type"], "string");
        let set = serde_json::to_value(ScopeSet::schema()).unwrap();
        assert_eq!(set["type"], "array");
        assert_eq!(set["items"]["type"], "string");
    }

    fn scope(s: &str) -> Scope {
        Scope::parse(s).unwrap()
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_valid_scopes() {
        for s in [
            "keys:read",
            "*:*",
            "usage:*",
            "*:read",
            "a.b-c_d:x9",
            &format!("{}:{}", "a".repeat(63), "b".repeat(63)),
        ] {
            assert_eq!(Scope::parse(s).unwrap().as_str(), s);
        }
        let s = scope("keys:read");
        assert_eq!((s.resource(), s.action()), ("keys", "read"));
    }

    #[test]
    fn errors_are_precise() {
        use ScopePart::*;
        let cases = [
            ("keys", ScopeError::MissingColon),
            ("", ScopeError::MissingColon),
            (":read", ScopeError::EmptyPart { part: Resource }),
            ("keys:", ScopeError::EmptyPart { part: Action }),
            (
                "Keys:read",
                ScopeError::BadCharacter {
                    part: Resource,
                    found: 'K',
                    position: 1,
                },
            ),
            (
                "1keys:read",
                ScopeError::BadCharacter {
                    part: Resource,
                    found: '1',
                    position: 1,
                },
            ),
            (
                "keys:re ad",
                ScopeError::BadCharacter {
                    part: Action,
                    found: ' ',
                    position: 8,
                },
            ),
            (
                "keys:read:all",
                ScopeError::BadCharacter {
                    part: Action,
                    found: ':',
                    position: 10,
                },
            ),
            (
                "ké:read",
                ScopeError::BadCharacter {
                    part: Resource,
                    found: 'é',
                    position: 2,
                },
            ),
            (
                "é:ré",
                ScopeError::BadCharacter {
                    part: Resource,
                    found: 'é',
                    position: 1,
                },
            ),
            (
                "a:bé",
                ScopeError::BadCharacter {
                    part: Action,
                    found: 'é',
                    position: 4,
                },
            ),
            (
                "keys*:read",
                ScopeError::BadCharacter {
                    part: Resource,
                    found: '*',
                    position: 5,
                },
            ),
            (
                "keys:**",
                ScopeError::BadCharacter {
                    part: Action,
                    found: '*',
                    position: 6,
                },
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(Scope::parse(input), Err(expected), "{input:?}");
        }
        let long_part = format!("{}:read", "a".repeat(64));
        assert_eq!(
            Scope::parse(&long_part),
            Err(ScopeError::PartTooLong { part: Resource })
        );
        assert_eq!(Scope::parse(&"a".repeat(129)), Err(ScopeError::TooLong));
        let message = Scope::parse("keys:Read").unwrap_err().to_string();
        assert!(message.contains("position 6"), "{message}");
    }

    #[test]
    fn grants_follow_wildcards() {
        assert!(scope("keys:*").grants(&scope("keys:read")));
        assert!(scope("keys:*").grants(&scope("keys:*")));
        assert!(!scope("keys:read").grants(&scope("keys:*")));
        assert!(!scope("keys:*").grants(&scope("*:read")));
        assert!(scope("*:read").grants(&scope("usage:read")));
        assert!(!scope("*:read").grants(&scope("usage:write")));
        assert!(scope("*:*").grants(&scope("*:*")));
    }

    #[test]
    fn concreteness() {
        assert!(scope("keys:read").is_concrete());
        assert!(!scope("keys:*").is_concrete());
        assert!(!scope("*:read").is_concrete());
    }

    #[test]
    fn set_sorts_dedups_and_reports_index() {
        let set = ScopeSet::parse(&strings(&["usage:read", "keys:read", "usage:read"])).unwrap();
        assert_eq!(set.to_strings(), ["keys:read", "usage:read"]);
        assert_eq!(set.len(), 2);
        assert!(set.allows(&scope("keys:read")));
        assert!(!set.allows(&scope("keys:write")));
        assert!(!ScopeSet::default().allows(&scope("keys:read")));

        let err = ScopeSet::parse(&strings(&["keys:read", "nope"])).unwrap_err();
        assert_eq!(err, (1, ScopeError::MissingColon));

        let many: Vec<String> = (0..65).map(|i| format!("r{i}:read")).collect();
        assert_eq!(
            ScopeSet::parse(&many).unwrap_err(),
            (64, ScopeError::TooMany)
        );
        assert!(ScopeSet::parse(&many[..64]).is_ok());
    }

    #[test]
    fn serde_uses_strings() {
        let set = ScopeSet::parse(&strings(&["b:*", "a:read"])).unwrap();
        let json = serde_json::to_string(&set).unwrap();
        assert_eq!(json, r#"["a:read","b:*"]"#);
        assert_eq!(serde_json::from_str::<ScopeSet>(&json).unwrap(), set);
        let err = serde_json::from_str::<ScopeSet>(r#"["a:read","B:x"]"#).unwrap_err();
        assert!(err.to_string().contains("scope 1"), "{err}");
        assert_eq!(serde_json::to_string(&scope("a:b")).unwrap(), r#""a:b""#);
        assert!(serde_json::from_str::<Scope>(r#""a""#).is_err());
    }

    fn part() -> impl Strategy<Value = String> {
        "[a-z][a-z0-9_.-]{0,20}"
    }

    fn any_scope() -> impl Strategy<Value = Scope> {
        let p = prop_oneof![3 => part(), 1 => Just("*".to_string())];
        (p.clone(), p).prop_map(|(r, a)| scope(&format!("{r}:{a}")))
    }

    fn concrete_scope() -> impl Strategy<Value = Scope> {
        (part(), part()).prop_map(|(r, a)| scope(&format!("{r}:{a}")))
    }

    proptest! {
        #[test]
        fn a_scope_grants_itself(s in any_scope()) {
            prop_assert!(s.grants(&s));
        }

        #[test]
        fn resource_wildcard_grants_every_action(r in part(), a in part()) {
            let (granted, required) = (scope(&format!("{r}:*")), scope(&format!("{r}:{a}")));
            prop_assert!(granted.grants(&required));
        }

        #[test]
        fn star_star_grants_everything_concrete(s in concrete_scope()) {
            prop_assert!(scope("*:*").grants(&s));
        }

        #[test]
        fn a_literal_never_grants_a_different_literal(a in concrete_scope(), b in concrete_scope()) {
            prop_assume!(a != b);
            prop_assert!(!a.grants(&b));
        }

        #[test]
        fn parse_display_round_trips(s in any_scope()) {
            prop_assert_eq!(Scope::parse(&s.to_string()).unwrap(), s);
        }
    }
}
