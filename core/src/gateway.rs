//! The gateway's rules for what a key may forward: which paths stay inside the upstream's base
//! path, and which scope a route needs.
//!
//! # Paths
//!
//! `/gw/<rest>` is forwarded to `<upstream base><rest>`. A `<rest>` holding a dot segment (`.`,
//! `..`, in any percent-encoding such as `%2e%2E`), a backslash (which URL parsers treat as `/`
//! for http) or an encoded slash or backslash (`%2f`, `%5c`, which some upstreams decode) could
//! leave the base path, so it is refused whole rather than normalised.
//!
//! # Scopes
//!
//! A gateway call needs the scope `<first path segment>:read` for `GET`, `HEAD` and `OPTIONS`
//! and `<first path segment>:write` for every other method: `GET /gw/orders/42` needs
//! `orders:read`, `POST /gw/orders` needs `orders:write`; `orders:*` or `*:*` grant both. A first
//! segment that is not a valid scope resource (uppercase, a digit first, empty) needs `*:read` or
//! `*:write`.

use crate::scope::Scope;

/// Why a gateway path is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path holds a dot segment (`.` or `..`, plain or percent-encoded)")]
    DotSegment,
    #[error("the path holds a backslash or an encoded slash or backslash")]
    Separator,
}

/// The value of a percent-encoded pair, if `pair` is one.
fn hex_pair(pair: &[u8]) -> Option<u8> {
    let s = std::str::from_utf8(pair).ok()?;
    u8::from_str_radix(s, 16).ok()
}

/// Checks the path forwarded to the upstream (the part after `/gw`, without the query).
pub fn check_path(path: &str) -> Result<(), PathError> {
    for segment in path.split('/') {
        let bytes = segment.as_bytes();
        let mut decoded = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%'
                && let Some(v) = bytes.get(i + 1..i + 3).and_then(hex_pair)
            {
                decoded.push(v);
                i += 3;
                continue;
            }
            decoded.push(bytes[i]);
            i += 1;
        }
        if decoded.iter().any(|b| matches!(b, b'/' | b'\\')) {
            return Err(PathError::Separator);
        }
        if decoded == b"." || decoded == b".." {
            return Err(PathError::DotSegment);
        }
    }
    Ok(())
}

/// Whether `method` only reads.
fn is_read(method: &str) -> bool {
    matches!(method, "GET" | "HEAD" | "OPTIONS")
}

/// The scope a gateway call needs (see the module documentation).
pub fn required_scope(method: &str, path: &str) -> Scope {
    let action = if is_read(method) { "read" } else { "write" };
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    Scope::parse(&format!("{first}:{action}"))
        .or_else(|_| Scope::parse(&format!("*:{action}")))
        .expect("`*:read` and `*:write` are scopes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_are_refused_in_every_spelling() {
        for bad in [
            "/..",
            "/../admin",
            "/%2e%2e/admin",
            "/%2E%2e/admin",
            "/.%2e/admin",
            "/a/./b",
            "/a/%2e/b",
            "/a/..",
        ] {
            assert_eq!(check_path(bad), Err(PathError::DotSegment), "{bad}");
        }
        for bad in ["/..\\admin", "/a%2fb", "/a%2F..", "/%5c..%5cadmin", "/a\\b"] {
            assert_eq!(check_path(bad), Err(PathError::Separator), "{bad}");
        }
        for ok in [
            "/",
            "",
            "/orders/42",
            "/a..b/c",
            "/.well-known/x",
            "/%2e%2e%2e",
            "/100%",
            "/%zz",
        ] {
            assert_eq!(check_path(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn routes_map_to_scopes() {
        let s = |m, p| required_scope(m, p).to_string();
        assert_eq!(s("GET", "/orders/42"), "orders:read");
        assert_eq!(s("HEAD", "/orders"), "orders:read");
        assert_eq!(s("POST", "/orders"), "orders:write");
        assert_eq!(s("DELETE", "/orders/42"), "orders:write");
        assert_eq!(s("GET", "/"), "*:read");
        assert_eq!(s("GET", "/Orders"), "*:read");
        assert_eq!(s("PUT", "/9lives"), "*:write");
    }
}
