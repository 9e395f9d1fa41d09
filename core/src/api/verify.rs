//! Key-authenticated calls: `GET /v1/whoami` and `POST /v1/verify`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::limits::{LimitState, QuotaState};
use crate::ids::{KeyId, OrgId};
use crate::scope::ScopeSet;
use crate::token::Environment;

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
