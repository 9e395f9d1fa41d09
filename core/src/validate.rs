//! Field rules for admin input, shared by the server (which enforces them) and the desktop
//! (which shows them inline before sending anything). Each rule returns the parsed value or a
//! [`FieldError`] naming the field, so a request reports every bad field at once.

use chrono::{DateTime, Duration, Utc};

use crate::api::FieldError;
use crate::api::page::{DEFAULT_LIMIT, MAX_LIMIT};
use crate::ip::IpAllowList;
use crate::scope::{Scope, ScopeSet};

pub const NAME_MAX_CHARS: usize = 100;
pub const DESCRIPTION_MAX_CHARS: usize = 1000;
pub const REASON_MAX_CHARS: usize = 500;
pub const METADATA_MAX_BYTES: usize = 4096;
pub const METADATA_MAX_KEYS: usize = 50;
pub const GRACE_MAX_SECONDS: u32 = 30 * 24 * 3600;
pub const EXPIRY_MAX_YEARS: i64 = 10;
pub const EMAIL_MAX_CHARS: usize = 254;

/// Collects field errors across a whole request.
#[derive(Debug, Default)]
pub struct FieldErrors(Vec<FieldError>);

impl FieldErrors {
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps the value, or records the error and returns `None`.
    pub fn check<T>(&mut self, result: Result<T, FieldError>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.0.push(e);
                None
            }
        }
    }

    pub fn push(&mut self, error: FieldError) {
        self.0.push(error);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn into_result(self) -> Result<(), Vec<FieldError>> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.0)
        }
    }
}

fn bad(field: &str, code: &str, message: impl Into<String>) -> FieldError {
    FieldError::new(field, code, message)
}

fn has_control(s: &str, allow_newlines: bool) -> bool {
    s.chars()
        .any(|c| c.is_control() && !(allow_newlines && (c == '\n' || c == '\t')))
}

/// Bidirectional embedding, override and isolate controls: they reorder what a reader sees
/// ("Trojan Source"), so a name never holds them.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Characters that show nothing: zero-width spaces and joiners, marks, the BOM, bidi controls.
fn is_invisible(c: char) -> bool {
    c.is_whitespace()
        || is_bidi_control(c)
        || matches!(
            c,
            '\u{200B}'..='\u{200F}'
                | '\u{2060}'..='\u{2064}'
                | '\u{FEFF}'
                | '\u{061C}'
                | '\u{180E}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{3164}'
                | '\u{FFA0}'
        )
}

/// A key's (or tier's) display name: trimmed, 1–100 characters, no control characters.
pub fn name(field: &str, raw: &str) -> Result<String, FieldError> {
    let s = raw.trim();
    let len = s.chars().count();
    if len == 0 {
        return Err(bad(field, "required", "must not be empty"));
    }
    if len > NAME_MAX_CHARS {
        return Err(bad(
            field,
            "too_long",
            format!("must be at most {NAME_MAX_CHARS} characters, got {len}"),
        ));
    }
    if has_control(s, false) {
        return Err(bad(
            field,
            "invalid_characters",
            "must not contain control characters",
        ));
    }
    if s.chars().any(is_bidi_control) {
        return Err(bad(
            field,
            "invalid_characters",
            "must not contain bidirectional override or isolate characters",
        ));
    }
    if s.chars().all(is_invisible) {
        return Err(bad(
            field,
            "invisible",
            "must contain at least one visible character",
        ));
    }
    Ok(s.to_owned())
}

/// Optional free text; blank becomes `None`.
pub fn free_text(field: &str, raw: Option<&str>, max: usize) -> Result<Option<String>, FieldError> {
    let Some(s) = raw.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let len = s.chars().count();
    if len > max {
        return Err(bad(
            field,
            "too_long",
            format!("must be at most {max} characters, got {len}"),
        ));
    }
    if has_control(s, true) {
        return Err(bad(
            field,
            "invalid_characters",
            "must not contain control characters",
        ));
    }
    Ok(Some(s.to_owned()))
}

/// Metadata: a JSON object of at most 50 keys and 4 KiB serialised.
pub fn metadata(field: &str, value: &serde_json::Value) -> Result<serde_json::Value, FieldError> {
    let Some(map) = value.as_object() else {
        return Err(bad(field, "invalid_type", "must be a JSON object"));
    };
    if map.len() > METADATA_MAX_KEYS {
        return Err(bad(
            field,
            "too_many",
            format!("must have at most {METADATA_MAX_KEYS} keys"),
        ));
    }
    if let Some(k) = map.keys().find(|k| k.is_empty() || k.chars().count() > 64) {
        let shown: String = k.chars().take(16).collect();
        return Err(bad(
            field,
            "invalid_key",
            format!("key {shown:?} must be 1–64 characters"),
        ));
    }
    // No control characters anywhere (keys, or string values at any depth; values may hold
    // newlines and tabs): PostgreSQL cannot store NUL in jsonb, and the rest has no business in
    // labels.
    if let Some(k) = map.keys().find(|k| has_control(k, false)) {
        let shown: String = k.chars().filter(|c| !c.is_control()).take(16).collect();
        return Err(bad(
            field,
            "invalid_characters",
            format!("key {shown:?} must not contain control characters"),
        ));
    }
    for (k, v) in map {
        if let Some(path) = control_in(v, &format!("{field}.{k}")) {
            return Err(bad(
                &path,
                "invalid_characters",
                "must not contain control characters other than newline and tab",
            ));
        }
    }
    let size = value.to_string().len();
    if size > METADATA_MAX_BYTES {
        return Err(bad(
            field,
            "too_large",
            format!("must be at most {METADATA_MAX_BYTES} bytes serialised, got {size}"),
        ));
    }
    Ok(value.clone())
}

/// The path of the first string (or object key) under `value` holding a control character.
fn control_in(value: &serde_json::Value, path: &str) -> Option<String> {
    match value {
        serde_json::Value::String(s) => has_control(s, true).then(|| path.to_owned()),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| control_in(v, &format!("{path}[{i}]"))),
        serde_json::Value::Object(map) => map.iter().find_map(|(k, v)| {
            let inner = format!("{path}.{k}");
            if has_control(k, false) {
                Some(inner)
            } else {
                control_in(v, &inner)
            }
        }),
        _ => None,
    }
}

/// An expiry must lie in the future and at most ten years ahead.
pub fn expires_at(
    field: &str,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, FieldError> {
    if at <= now {
        return Err(bad(field, "in_past", "must be in the future"));
    }
    if at > now + Duration::days(365 * EXPIRY_MAX_YEARS) {
        return Err(bad(
            field,
            "too_far",
            format!("must be at most {EXPIRY_MAX_YEARS} years ahead"),
        ));
    }
    Ok(at)
}

/// Grace periods for revocation and rotation: 0 up to 30 days.
pub fn grace_seconds(field: &str, secs: u32) -> Result<u32, FieldError> {
    if secs > GRACE_MAX_SECONDS {
        return Err(bad(
            field,
            "out_of_range",
            format!("must be between 0 and {GRACE_MAX_SECONDS} (30 days)"),
        ));
    }
    Ok(secs)
}

/// Page size: 1–500, default 50.
pub fn page_limit(field: &str, limit: Option<u32>) -> Result<u32, FieldError> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(bad(
            field,
            "out_of_range",
            format!("must be between 1 and {MAX_LIMIT}"),
        )),
    }
}

/// An admin's email, trimmed and lower-cased.
pub fn email(field: &str, raw: &str) -> Result<String, FieldError> {
    let s = raw.trim().to_lowercase();
    if s.chars().count() > EMAIL_MAX_CHARS {
        return Err(bad(
            field,
            "too_long",
            format!("must be at most {EMAIL_MAX_CHARS} characters"),
        ));
    }
    if !email_address::EmailAddress::is_valid(&s) || !s.contains('@') {
        return Err(bad(field, "invalid_email", "is not a valid email address"));
    }
    Ok(s)
}

/// A list of `resource:action` scopes; the error names the offending entry (`scopes[2]`).
pub fn scopes(field: &str, items: &[String]) -> Result<ScopeSet, FieldError> {
    ScopeSet::parse(items)
        .map_err(|(i, e)| bad(&format!("{field}[{i}]"), "invalid_scope", e.to_string()))
}

/// One concrete scope, as a request for access names it (no wildcards).
pub fn required_scope(field: &str, raw: &str) -> Result<Scope, FieldError> {
    let scope = Scope::parse(raw).map_err(|e| bad(field, "invalid_scope", e.to_string()))?;
    if !scope.is_concrete() {
        return Err(bad(
            field,
            "invalid_scope",
            "must name one resource and action, without wildcards",
        ));
    }
    Ok(scope)
}

/// A client-address allow-list of CIDR networks or single addresses.
pub fn allowed_ips(field: &str, items: &[String]) -> Result<IpAllowList, FieldError> {
    IpAllowList::parse(items)
        .map_err(|(i, e)| bad(&format!("{field}[{i}]"), "invalid_cidr", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(name("name", "  ci deploy ").unwrap(), "ci deploy");
        assert_eq!(name("name", "   ").unwrap_err().code, "required");
        assert_eq!(name("name", &"x".repeat(101)).unwrap_err().code, "too_long");
        assert!(name("name", &"é".repeat(100)).is_ok());
        assert_eq!(
            name("name", "a\u{0}b").unwrap_err().code,
            "invalid_characters"
        );
    }

    #[test]
    fn metadata_refuses_control_characters_anywhere() {
        let code = |v: serde_json::Value| metadata("metadata", &v).map_err(|e| (e.field, e.code));
        assert_eq!(
            code(json!({"k": "a\u{0}b"})),
            Err(("metadata.k".into(), "invalid_characters".into()))
        );
        assert_eq!(
            code(json!({"a\u{0}b": "x"})),
            Err(("metadata".into(), "invalid_characters".into()))
        );
        assert_eq!(
            code(json!({"k": {"deep": ["ok", "bell\u{7}"]}})),
            Err(("metadata.k.deep[1]".into(), "invalid_characters".into()))
        );
        assert!(code(json!({"note": "two\nlines\tand a tab"})).is_ok());
    }

    #[test]
    fn names_must_show_something_and_hold_no_bidi_controls() {
        assert_eq!(
            name("name", "\u{200B}\u{200D}").unwrap_err().code,
            "invisible"
        );
        assert_eq!(
            name("name", "\u{2066}\u{2069}").unwrap_err().code,
            "invalid_characters"
        );
        assert_eq!(
            name("name", "invoice\u{202E}fdp.exe").unwrap_err().code,
            "invalid_characters"
        );
        assert_eq!(
            name("name", "\u{FEFF}\u{3164}").unwrap_err().code,
            "invisible"
        );
        assert_eq!(name("name", "ok\u{200D}name").unwrap(), "ok\u{200D}name");
    }

    #[test]
    fn metadata_must_be_a_small_object() {
        assert!(metadata("metadata", &json!({"team": "infra"})).is_ok());
        assert_eq!(
            metadata("metadata", &json!([1])).unwrap_err().code,
            "invalid_type"
        );
        let big = json!({"blob": "x".repeat(5000)});
        assert_eq!(metadata("metadata", &big).unwrap_err().code, "too_large");
    }

    #[test]
    fn expiry_must_be_ahead_but_not_too_far() {
        let now = Utc::now();
        assert!(expires_at("expires_at", now + Duration::hours(1), now).is_ok());
        assert_eq!(
            expires_at("expires_at", now, now).unwrap_err().code,
            "in_past"
        );
        assert_eq!(
            expires_at("expires_at", now + Duration::days(365 * 11), now)
                .unwrap_err()
                .code,
            "too_far"
        );
    }

    #[test]
    fn limits_and_grace() {
        assert_eq!(page_limit("limit", None).unwrap(), 50);
        assert_eq!(page_limit("limit", Some(500)).unwrap(), 500);
        assert!(page_limit("limit", Some(0)).is_err());
        assert!(page_limit("limit", Some(501)).is_err());
        assert!(grace_seconds("grace_seconds", GRACE_MAX_SECONDS).is_ok());
        assert!(grace_seconds("grace_seconds", GRACE_MAX_SECONDS + 1).is_err());
    }

    #[test]
    fn emails() {
        assert_eq!(
            email("email", " Ada@Example.COM ").unwrap(),
            "ada@example.com"
        );
        assert!(email("email", "not-an-email").is_err());
        assert!(email("email", "a@").is_err());
    }
}
