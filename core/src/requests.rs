//! Whole admin requests checked against every rule at once, shared by the server (which
//! enforces them) and the desktop replica (which refuses bad edits before queuing them).

use chrono::{DateTime, Utc};

use crate::api::{
    CreateKeyRequest, CreateTierRequest, FieldError, Quota, RateLimitRule, RevokeKeyRequest,
    UpdateKeyRequest, UpdateTierRequest,
};
use crate::hash::{PhcPolicyError, check_phc_policy};
use crate::limit::rules as limit_rules;
use crate::validate::{self, FieldErrors};
use crate::{Environment, IpAllowList, KeyId, ScopeSet};

type Rejected = Vec<FieldError>;

/// Default grace for rotation: the old key keeps working for a day.
pub const DEFAULT_ROTATION_GRACE_SECS: u32 = 24 * 3600;

/// A create request that passed every rule.
#[derive(Debug)]
pub struct NewKey {
    pub name: String,
    pub description: Option<String>,
    pub environment: Environment,
    pub scopes: ScopeSet,
    pub allowed_ips: IpAllowList,
    pub metadata: serde_json::Value,
    pub expires_at: Option<DateTime<Utc>>,
    pub tier: Option<String>,
    pub rate_limits: Option<Vec<RateLimitRule>>,
    pub quota: Option<Quota>,
    /// Offline-created: the client's id and argon2id hash.
    pub offline: Option<(KeyId, String)>,
}

fn missing<T>(v: Option<T>) -> T {
    v.unwrap_or_else(|| unreachable!("every field was checked before"))
}

/// Applies every rule of a create request and reports every bad field at once.
pub fn parse_create(req: &CreateKeyRequest, now: DateTime<Utc>) -> Result<NewKey, Rejected> {
    let mut errs = FieldErrors::new();
    let name = errs.check(validate::name("name", &req.name));
    let description = errs.check(validate::free_text(
        "description",
        req.description.as_deref(),
        validate::DESCRIPTION_MAX_CHARS,
    ));
    let scopes = errs.check(validate::scopes(
        "scopes",
        req.scopes.as_deref().unwrap_or_default(),
    ));
    let allowed_ips = errs.check(validate::allowed_ips(
        "allowed_ips",
        req.allowed_ips.as_deref().unwrap_or_default(),
    ));
    let metadata = errs.check(
        req.metadata
            .as_ref()
            .map(|m| validate::metadata("metadata", m))
            .transpose(),
    );
    let expires_at = errs.check(
        req.expires_at
            .map(|t| validate::expires_at("expires_at", t, now))
            .transpose(),
    );
    let tier = errs.check(
        req.tier
            .as_deref()
            .map(|t| limit_rules::tier_name("tier", t))
            .transpose(),
    );
    let rate_limits = req
        .rate_limits
        .as_deref()
        .map(|r| limit_rules::rate_limits("rate_limits", r, &mut errs));
    let quota = req
        .quota
        .as_ref()
        .map(|q| limit_rules::quota("quota", q, &mut errs));
    let offline = match (req.id, req.secret_hash.as_deref()) {
        (None, None) => None,
        (Some(id), Some(hash)) => {
            errs.check(offline_secret("id", id, "secret_hash", hash));
            errs.check(offline_id_time("id", id, now));
            Some((id, hash.to_owned()))
        }
        (Some(_), None) => {
            errs.push(FieldError::new(
                "secret_hash",
                "required",
                "is required when `id` is given",
            ));
            None
        }
        (None, Some(_)) => {
            errs.push(FieldError::new(
                "id",
                "required",
                "is required when `secret_hash` is given",
            ));
            None
        }
    };
    errs.into_result()?;
    Ok(NewKey {
        name: missing(name),
        description: missing(description),
        environment: req.environment.unwrap_or_default(),
        scopes: missing(scopes),
        allowed_ips: missing(allowed_ips),
        metadata: missing(metadata).unwrap_or_else(|| serde_json::json!({})),
        expires_at: missing(expires_at),
        tier: missing(tier),
        rate_limits: rate_limits.map(missing),
        quota: quota.map(missing),
        offline,
    })
}

/// An id and hash made by a client: a UUIDv7 and an argon2id hash at or above our minimum.
pub fn offline_secret(
    id_field: &str,
    id: KeyId,
    hash_field: &str,
    hash: &str,
) -> Result<(), FieldError> {
    if id.as_uuid().get_version_num() != 7 {
        return Err(FieldError::new(id_field, "invalid_id", "must be a UUIDv7"));
    }
    check_phc_policy(hash).map_err(|e| {
        let code = match e {
            PhcPolicyError::MemoryTooHigh { .. }
            | PhcPolicyError::TimeTooHigh { .. }
            | PhcPolicyError::ParallelismTooHigh { .. } => "hash_cost_too_high",
            _ => "weak_hash",
        };
        FieldError::new(hash_field, code, e.to_string())
    })
}

/// Earliest creation time an offline-made key id may carry.
const OFFLINE_ID_EARLIEST_UNIX_SECS: u64 = 1_577_836_800; // 2020-01-01T00:00:00Z
/// How far ahead of the server's clock an offline-made key id may be (device clock skew).
const OFFLINE_ID_MAX_AHEAD_SECS: u64 = 24 * 3600;

/// An offline-made key id (a UUIDv7) must carry a plausible creation time and random bits: a
/// far-future time would pin the key to the top of every list sorted by id, and all-zero random
/// bits are no random id at all.
pub fn offline_id_time(id_field: &str, id: KeyId, now: DateTime<Utc>) -> Result<(), FieldError> {
    let uuid = id.as_uuid();
    let Some(ts) = uuid.get_timestamp() else {
        return Err(FieldError::new(id_field, "invalid_id", "must be a UUIDv7"));
    };
    let (secs, _) = ts.to_unix();
    let latest = u64::try_from(now.timestamp()).unwrap_or(0) + OFFLINE_ID_MAX_AHEAD_SECS;
    if !(OFFLINE_ID_EARLIEST_UNIX_SECS..=latest).contains(&secs) {
        return Err(FieldError::new(
            id_field,
            "implausible_id_time",
            "the UUIDv7's time must lie between 2020 and one day after the server's clock",
        ));
    }
    let bits = uuid.as_u128();
    let rand_a = (bits >> 64) & 0xfff;
    let rand_b = bits & ((1u128 << 62) - 1);
    if rand_a == 0 && rand_b == 0 {
        return Err(FieldError::new(
            id_field,
            "invalid_id",
            "the UUIDv7's random bits are all zero",
        ));
    }
    Ok(())
}

/// A patch that passed every rule; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct KeyPatch {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub scopes: Option<ScopeSet>,
    pub allowed_ips: Option<IpAllowList>,
    pub metadata: Option<serde_json::Value>,
    pub expires_at: Option<Option<DateTime<Utc>>>,
    pub disabled: Option<bool>,
    pub tier: Option<Option<String>>,
    pub rate_limits: Option<Option<Vec<RateLimitRule>>>,
    pub quota: Option<Option<Quota>>,
}

pub fn parse_update(req: &UpdateKeyRequest, now: DateTime<Utc>) -> Result<KeyPatch, Rejected> {
    let mut errs = FieldErrors::new();
    let name = errs.check(
        req.name
            .as_deref()
            .map(|n| validate::name("name", n))
            .transpose(),
    );
    let description = errs.check(
        req.description
            .as_ref()
            .map(|d| {
                validate::free_text("description", d.as_deref(), validate::DESCRIPTION_MAX_CHARS)
            })
            .transpose(),
    );
    let scopes = errs.check(
        req.scopes
            .as_deref()
            .map(|s| validate::scopes("scopes", s))
            .transpose(),
    );
    let allowed_ips = errs.check(
        req.allowed_ips
            .as_deref()
            .map(|s| validate::allowed_ips("allowed_ips", s))
            .transpose(),
    );
    let metadata = errs.check(
        req.metadata
            .as_ref()
            .map(|m| validate::metadata("metadata", m))
            .transpose(),
    );
    let expires_at = errs.check(
        req.expires_at
            .map(|e| {
                e.map(|t| validate::expires_at("expires_at", t, now))
                    .transpose()
            })
            .transpose(),
    );
    let tier = errs.check(
        req.tier
            .as_ref()
            .map(|t| {
                t.as_deref()
                    .map(|t| limit_rules::tier_name("tier", t))
                    .transpose()
            })
            .transpose(),
    );
    let rate_limits = req.rate_limits.as_ref().map(|r| {
        r.as_deref()
            .map(|r| limit_rules::rate_limits("rate_limits", r, &mut errs))
    });
    let quota = req.quota.as_ref().map(|q| {
        q.as_ref()
            .map(|q| limit_rules::quota("quota", q, &mut errs))
    });
    errs.into_result()?;
    Ok(KeyPatch {
        tier: missing(tier),
        rate_limits: rate_limits.map(|r| r.map(missing)),
        quota: quota.map(|q| q.map(missing)),
        name: missing(name),
        description: missing(description),
        scopes: missing(scopes),
        allowed_ips: missing(allowed_ips),
        metadata: missing(metadata),
        expires_at: missing(expires_at),
        disabled: req.disabled,
    })
}

pub fn parse_revoke(req: &RevokeKeyRequest) -> Result<(u32, Option<String>), Rejected> {
    let mut errs = FieldErrors::new();
    let grace = errs.check(validate::grace_seconds(
        "grace_seconds",
        req.grace_seconds.unwrap_or(0),
    ));
    let reason = errs.check(validate::free_text(
        "reason",
        req.reason.as_deref(),
        validate::REASON_MAX_CHARS,
    ));
    errs.into_result()?;
    Ok((missing(grace), missing(reason)))
}

impl NewKey {
    /// The request as the server stores it: trimmed, parsed and sorted.
    pub fn to_request(&self) -> CreateKeyRequest {
        CreateKeyRequest {
            name: self.name.clone(),
            description: self.description.clone(),
            environment: Some(self.environment),
            scopes: Some(self.scopes.to_strings()),
            expires_at: self.expires_at,
            allowed_ips: Some(self.allowed_ips.to_strings()),
            metadata: Some(self.metadata.clone()),
            tier: self.tier.clone(),
            rate_limits: self.rate_limits.clone(),
            quota: self.quota.clone(),
            id: self.offline.as_ref().map(|(id, _)| *id),
            secret_hash: self.offline.as_ref().map(|(_, h)| h.clone()),
        }
    }
}

impl KeyPatch {
    /// The patch as the server applies it.
    pub fn to_request(&self) -> UpdateKeyRequest {
        UpdateKeyRequest {
            name: self.name.clone(),
            description: self.description.clone(),
            scopes: self.scopes.as_ref().map(ScopeSet::to_strings),
            allowed_ips: self.allowed_ips.as_ref().map(IpAllowList::to_strings),
            expires_at: self.expires_at,
            metadata: self.metadata.clone(),
            disabled: self.disabled,
            tier: self.tier.clone(),
            rate_limits: self.rate_limits.clone(),
            quota: self.quota.clone(),
        }
    }
}

/// A tier request that passed every rule: name, rules (names filled in), quota, threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct TierSpec {
    pub name: String,
    pub rate_limits: Vec<RateLimitRule>,
    pub quota: Option<Quota>,
    pub soft_threshold: f64,
}

pub fn parse_tier_create(req: &CreateTierRequest) -> Result<TierSpec, Rejected> {
    let mut errs = FieldErrors::new();
    let name = errs.check(limit_rules::tier_name("name", &req.name));
    let rate_limits = limit_rules::rate_limits(
        "rate_limits",
        req.rate_limits.as_deref().unwrap_or_default(),
        &mut errs,
    );
    let quota = req
        .quota
        .as_ref()
        .map(|q| limit_rules::quota("quota", q, &mut errs));
    let soft_threshold = errs.check(limit_rules::soft_threshold(
        "soft_threshold",
        req.soft_threshold
            .unwrap_or(limit_rules::DEFAULT_SOFT_THRESHOLD),
    ));
    errs.into_result()?;
    Ok(TierSpec {
        name: missing(name),
        rate_limits: missing(rate_limits),
        quota: quota.map(missing),
        soft_threshold: missing(soft_threshold),
    })
}

/// Applies a tier patch to `current`, checking every given field.
pub fn parse_tier_update(
    req: &UpdateTierRequest,
    current: &TierSpec,
) -> Result<TierSpec, Rejected> {
    let mut errs = FieldErrors::new();
    let rate_limits = req
        .rate_limits
        .as_deref()
        .map(|r| limit_rules::rate_limits("rate_limits", r, &mut errs));
    let quota = req.quota.as_ref().map(|q| {
        q.as_ref()
            .map(|q| limit_rules::quota("quota", q, &mut errs))
    });
    let soft_threshold = errs.check(
        req.soft_threshold
            .map(|t| limit_rules::soft_threshold("soft_threshold", t))
            .transpose(),
    );
    errs.into_result()?;
    Ok(TierSpec {
        name: current.name.clone(),
        rate_limits: rate_limits.map_or_else(|| current.rate_limits.clone(), missing),
        quota: quota.map_or_else(|| current.quota.clone(), |q| q.map(missing)),
        soft_threshold: missing(soft_threshold).unwrap_or(current.soft_threshold),
    })
}
