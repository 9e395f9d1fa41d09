//! Key-authenticated calls: `GET /v1/whoami` and `POST /v1/verify`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::limits::{LimitState, QuotaState};
use crate::ids::{KeyId, OrgId};
use crate::scope::ScopeSet;
use crate::token::Environment;

/// The largest cost one call may claim from a key's limits (`VerifyRequest::cost`).
pub const MAX_COST: u32 = 10_000;

/// The key a key-authenticated request presents, from its `Authorization` and `X-API-Key`
/// header values: `Authorization: Bearer kw_...`, or `X-API-Key: kw_...` when there is no
/// `Authorization` field (an `Authorization` of another scheme presents no key). White space
/// around the key is trimmed; a blank key, or a value that is not visible ASCII, is no key.
/// The server and the tower layer both read keys with this.
pub fn presented_key<'a>(
    authorization: Option<&'a [u8]>,
    x_api_key: Option<&'a [u8]>,
) -> Option<&'a str> {
    // What `http::HeaderValue::to_str` accepts.
    let text = |v: &'a [u8]| {
        v.iter()
            .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
            .then(|| std::str::from_utf8(v).ok())
            .flatten()
    };
    let token = match authorization {
        Some(v) => {
            let (scheme, token) = text(v)?.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim())?
        }
        None => text(x_api_key?)?.trim(),
    };
    (!token.is_empty()).then_some(token)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Whoami {
    pub key_id: KeyId,
    pub org_id: OrgId,
    pub name: String,
    pub environment: Environment,
    pub scopes: ScopeSet,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// The API key presented to the platform service; an empty one is refused (422): there is
    /// nothing to verify.
    #[cfg_attr(feature = "openapi", schema(min_length = 1))]
    pub key: String,
    /// A concrete scope the call needs, e.g. `achievements:write`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^[a-z][a-z0-9_.-]{0,62}:[a-z][a-z0-9_.-]{0,62}$")
    )]
    pub scope: Option<String>,
    /// Units this call consumes from the key's limits (1 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 10_000))]
    pub cost: Option<u32>,
    /// The address the platform service saw the call come from. Believed only from a caller in
    /// the server's `verify_trusted_callers`; from any other caller it is ignored and the
    /// connection's own address is used (IP rules, last-used address, networks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = ip_address_or_null))]
    pub client_ip: Option<String>,
}

impl std::fmt::Debug for VerifyRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyRequest")
            .field("key", &"[redacted]")
            .field("scope", &self.scope)
            .field("cost", &self.cost)
            .field("client_ip", &self.client_ip)
            .finish()
    }
}

/// The verdict on a key; `valid` only for [`VerifyCode::Valid`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum VerifyCode {
    Valid,
    NotFound,
    Revoked,
    Expired,
    Disabled,
    IpNotAllowed,
    InsufficientScope,
    RateLimited,
    QuotaExceeded,
}

impl VerifyCode {
    pub fn as_str(self) -> &'static str {
        match self {
            VerifyCode::Valid => "valid",
            VerifyCode::NotFound => "not_found",
            VerifyCode::Revoked => "revoked",
            VerifyCode::Expired => "expired",
            VerifyCode::Disabled => "disabled",
            VerifyCode::IpNotAllowed => "ip_not_allowed",
            VerifyCode::InsufficientScope => "insufficient_scope",
            VerifyCode::RateLimited => "rate_limited",
            VerifyCode::QuotaExceeded => "quota_exceeded",
        }
    }

    pub const ALL: [VerifyCode; 9] = [
        VerifyCode::Valid,
        VerifyCode::NotFound,
        VerifyCode::Revoked,
        VerifyCode::Expired,
        VerifyCode::Disabled,
        VerifyCode::IpNotAllowed,
        VerifyCode::InsufficientScope,
        VerifyCode::RateLimited,
        VerifyCode::QuotaExceeded,
    ];
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VerifyResponse {
    pub valid: bool,
    pub code: VerifyCode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<KeyId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<OrgId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<Environment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<ScopeSet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// The tightest rate-limit rule after this call (present when the key has rules).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratelimit: Option<LimitState>,
    /// The key's quotas after this call (present when it has any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<QuotaState>,
    /// Seconds until a refused call could pass (`rate_limited`, `quota_exceeded`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u64>,
    /// Set when a rule is past its soft threshold: the `X-RateLimit-Warning` text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    /// The rate-limit fields a service should put on its answer to this call, exactly as
    /// `/v1/whoami` would (`RateLimit-Policy`, `RateLimit`, `X-RateLimit-*`, `Retry-After`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<std::collections::BTreeMap<String, String>>,
}

/// `client_ip`: an IPv4 or IPv6 address (as `std::net::IpAddr` parses it), or null.
#[cfg(feature = "openapi")]
fn ip_address_or_null() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{AnyOfBuilder, KnownFormat, ObjectBuilder, SchemaFormat, Type};
    let ip = |format| {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(format)))
    };
    AnyOfBuilder::new()
        .item(ip(KnownFormat::Ipv4))
        .item(ip(KnownFormat::Ipv6))
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .build()
        .into()
}

#[cfg(test)]
mod tests {
    use super::presented_key;

    fn key<'a>(authorization: Option<&'a str>, x_api_key: Option<&'a str>) -> Option<&'a str> {
        presented_key(
            authorization.map(str::as_bytes),
            x_api_key.map(str::as_bytes),
        )
    }

    #[test]
    fn key_from_bearer_or_x_api_key() {
        assert_eq!(key(Some("Bearer kw_abc"), None), Some("kw_abc"));
        assert_eq!(key(Some("bearer   kw_abc  "), None), Some("kw_abc"));
        assert_eq!(key(None, Some(" kw_xyz ")), Some("kw_xyz"));
        // `Authorization` wins, even when it is not a bearer credential.
        assert_eq!(key(Some("Bearer kw_a"), Some("kw_b")), Some("kw_a"));
        assert_eq!(key(Some("Basic dXNlcg=="), Some("kw_b")), None);
        assert_eq!(key(Some("Bearer"), None), None);
        assert_eq!(key(None, None), None);
        assert_eq!(key(Some("Bearer kw_\u{e9}"), None), None);
    }

    #[test]
    fn a_blank_key_is_no_key() {
        assert_eq!(key(Some("Bearer  "), None), None);
        assert_eq!(key(Some("Bearer \t "), Some("kw_b")), None);
        assert_eq!(key(None, Some("")), None);
        assert_eq!(key(None, Some("   ")), None);
    }
}
