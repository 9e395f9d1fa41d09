//! Every JSON request body the server accepts, from the same bytes: each request type is
//! deserialised from the input, and what deserialises goes through the checks core gives the
//! server and the desktop for it (`requests::parse_*`, `validate::*`, the offline-secret and
//! password policies, webhook URLs and event patterns, alert thresholds). Sync pushes are taken
//! apart as the server does: each operation read on its own (`PushOp::parse`), then its `data`
//! as its kind's request.
//!
//! Invariants:
//! - nothing panics, whatever deserialises;
//! - a deserialised request serialises back to itself;
//! - a rejection names at least one field, and every field it names is non-empty;
//! - what a check accepts, it accepts again in the form the server stores (`to_request`) and
//!   gives the same result: validation is idempotent;
//! - a tier's checked rules all survive into the rules the limiter runs (`effective`).

use std::fmt::Debug;

use chrono::{DateTime, Utc};
use keyward_core::anomaly::Thresholds;
use keyward_core::api::{
    ChangePasswordRequest, CreateKeyRequest, CreateTierRequest, CreateWebhookRequest, FieldError,
    LoginRequest, OpParseError, PushOp, PushRequest, Quota, RateLimitRule, ReceivedPush,
    RevokeKeyRequest, RotateKeyRequest, RotateOfflineRequest, UpdateKeyRequest, UpdateTierRequest,
    VerifyRequest,
};
use keyward_core::hash::check_password_policy;
use keyward_core::limit::rules::effective;
use keyward_core::requests::{
    DEFAULT_ROTATION_GRACE_SECS, TierSpec, offline_secret, parse_create, parse_revoke,
    parse_tier_create, parse_tier_update, parse_update,
};
use keyward_core::validate::{self, GRACE_MAX_SECONDS};
use keyward_core::{ApiKeyToken, webhook_url};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A fixed clock (2026-01-01T00:00:00Z), so a run is reproducible.
fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_225_600, 0).expect("a valid timestamp")
}

pub fn run(data: &[u8]) {
    let now = now();
    if let Some(req) = body::<CreateKeyRequest>(data) {
        create_key(&req, now);
    }
    if let Some(req) = body::<UpdateKeyRequest>(data) {
        update_key(&req, now);
    }
    if let Some(req) = body::<RevokeKeyRequest>(data) {
        revoke_key(&req);
    }
    if let Some(req) = body::<RotateKeyRequest>(data) {
        grace(req.grace_seconds.unwrap_or(DEFAULT_ROTATION_GRACE_SECS));
    }
    if let Some(req) = body::<RotateOfflineRequest>(data) {
        rotate_offline(&req);
    }
    if let Some(req) = body::<PushRequest>(data) {
        for op in req.ops {
            push_op(op, now);
        }
    }
    if let Ok(req) = serde_json::from_slice::<ReceivedPush>(data) {
        push(req, now);
    }
    if let Some(req) = body::<CreateTierRequest>(data) {
        create_tier(&req);
    }
    if let Some(req) = body::<UpdateTierRequest>(data) {
        update_tier(&req);
    }
    if let Some(req) = body::<CreateWebhookRequest>(data) {
        create_webhook(&req);
    }
    if let Some(req) = body::<Thresholds>(data) {
        thresholds(&req);
    }
    if let Some(req) = body::<VerifyRequest>(data) {
        verify(&req);
    }
    if let Some(req) = body::<LoginRequest>(data) {
        login(&req);
    }
    if let Some(req) = body::<ChangePasswordRequest>(data) {
        let _ = check_password_policy(&req.current_password);
        let _ = check_password_policy(&req.new_password);
    }
}

/// The input as a `T`, if it is one; a deserialised request serialises back to itself.
fn body<T>(data: &[u8]) -> Option<T>
where
    T: DeserializeOwned + Serialize + PartialEq + Debug,
{
    let req: T = serde_json::from_slice(data).ok()?;
    round_trips(&req);
    Some(req)
}

fn round_trips<T>(value: &T)
where
    T: DeserializeOwned + Serialize + PartialEq + Debug,
{
    let json = serde_json::to_vec(value).expect("a request serialises");
    let back: T = serde_json::from_slice(&json)
        .unwrap_or_else(|e| panic!("{} does not read back: {e}", String::from_utf8_lossy(&json)));
    assert_eq!(&back, value, "{}", String::from_utf8_lossy(&json));
}

/// A rejection names what is wrong.
fn rejected(errors: &[FieldError]) {
    assert!(!errors.is_empty(), "rejected without a reason");
    for e in errors {
        assert!(!e.field.is_empty() && !e.code.is_empty(), "{e:?}");
    }
}

fn create_key(req: &CreateKeyRequest, now: DateTime<Utc>) {
    match parse_create(req, now) {
        Ok(new) => {
            let stored = new.to_request();
            round_trips(&stored);
            let again = parse_create(&stored, now).expect("the stored form is valid");
            assert_eq!(again.to_request(), stored);
            assert_eq!(new.scopes.len(), stored.scopes.as_ref().map_or(0, Vec::len));
            if let Some(rules) = &new.rate_limits {
                assert_eq!(
                    effective(rules, new.quota.as_ref()).len(),
                    rules.len() + quota_rules(new.quota.as_ref())
                );
            }
        }
        Err(errors) => rejected(&errors),
    }
}

fn update_key(req: &UpdateKeyRequest, now: DateTime<Utc>) {
    match parse_update(req, now) {
        Ok(patch) => {
            let stored = patch.to_request();
            round_trips(&stored);
            let again = parse_update(&stored, now).expect("the stored form is valid");
            assert_eq!(again.to_request(), stored);
        }
        Err(errors) => rejected(&errors),
    }
}

fn revoke_key(req: &RevokeKeyRequest) {
    match parse_revoke(req) {
        Ok((grace, reason)) => {
            assert!(grace <= GRACE_MAX_SECONDS);
            let stored = RevokeKeyRequest {
                grace_seconds: Some(grace),
                reason: reason.clone(),
            };
            assert_eq!(parse_revoke(&stored), Ok((grace, reason)));
        }
        Err(errors) => rejected(&errors),
    }
}

fn grace(secs: u32) {
    match validate::grace_seconds("grace_seconds", secs) {
        Ok(s) => assert!(s == secs && s <= GRACE_MAX_SECONDS),
        Err(e) => rejected(&[e]),
    }
}

fn rotate_offline(req: &RotateOfflineRequest) {
    if let Err(e) = offline_secret(
        "data.new_id",
        req.new_id,
        "data.secret_hash",
        &req.secret_hash,
    ) {
        rejected(&[e]);
    }
    grace(req.grace_seconds.unwrap_or(DEFAULT_ROTATION_GRACE_SECS));
}

/// The server's reading of a push: each operation read on its own (`PushOp::parse`, refused
/// alone with a code and a detail naming the field when unknown or malformed), then its data
/// checked as its kind's request.
fn push(req: ReceivedPush, now: DateTime<Utc>) {
    for value in req.ops {
        match PushOp::parse(value) {
            Ok(op) => {
                round_trips(&op);
                push_op(op, now);
            }
            Err(OpParseError::Refused { code, detail, .. }) => {
                assert!(!code.as_str().is_empty() && !detail.is_empty(), "{detail}");
            }
            Err(OpParseError::NoOpId(why)) => assert!(!why.is_empty()),
        }
    }
}

fn push_op(op: PushOp, now: DateTime<Utc>) {
    match op {
        PushOp::CreateKey { data, .. } => create_key(&data, now),
        PushOp::UpdateKey { data, .. } => update_key(&data, now),
        PushOp::RevokeKey { data, .. } => revoke_key(&data),
        PushOp::RotateKey { data, .. } => rotate_offline(&data),
    }
}

fn quota_rules(quota: Option<&Quota>) -> usize {
    quota.map_or(0, |q| {
        usize::from(q.daily.is_some()) + usize::from(q.monthly.is_some())
    })
}

fn tier_request(spec: &TierSpec) -> CreateTierRequest {
    CreateTierRequest {
        name: spec.name.clone(),
        rate_limits: Some(spec.rate_limits.clone()),
        quota: spec.quota.clone(),
        soft_threshold: Some(spec.soft_threshold),
    }
}

fn check_spec(spec: &TierSpec) {
    assert!(spec.soft_threshold > 0.0 && spec.soft_threshold <= 1.0);
    assert!(spec.rate_limits.iter().all(|r| r.name.is_some()));
    assert_eq!(
        effective(&spec.rate_limits, spec.quota.as_ref()).len(),
        spec.rate_limits.len() + quota_rules(spec.quota.as_ref()),
        "checked rules were dropped"
    );
    let stored = tier_request(spec);
    round_trips(&stored);
    assert_eq!(
        parse_tier_create(&stored).as_ref(),
        Ok(spec),
        "the stored form of a tier checks differently"
    );
}

fn create_tier(req: &CreateTierRequest) {
    match parse_tier_create(req) {
        Ok(spec) => check_spec(&spec),
        Err(errors) => rejected(&errors),
    }
}

fn update_tier(req: &UpdateTierRequest) {
    let current = parse_tier_create(&CreateTierRequest {
        name: "pro".to_owned(),
        rate_limits: Some(vec![RateLimitRule {
            name: None,
            algorithm: "gcra".to_owned(),
            limit: 10,
            window_seconds: 1,
            burst: Some(20),
            consistency: Default::default(),
        }]),
        quota: Some(Quota {
            daily: Some(1000),
            monthly: None,
            consistency: Default::default(),
        }),
        soft_threshold: None,
    })
    .expect("the base tier is valid");
    match parse_tier_update(req, &current) {
        Ok(spec) => {
            assert_eq!(spec.name, current.name);
            check_spec(&spec);
        }
        Err(errors) => rejected(&errors),
    }
}

fn create_webhook(req: &CreateWebhookRequest) {
    match webhook_url::validate("url", &req.url, &[]) {
        Ok(url) => assert_eq!(webhook_url::validate("url", &url, &[]), Ok(url.clone())),
        Err(e) => rejected(&[e]),
    }
    for pattern in req.events.iter().flatten() {
        let _ = keyward_core::api::webhooks::is_valid_pattern(pattern);
    }
}

fn thresholds(t: &Thresholds) {
    match t.validate() {
        Ok(()) => {
            let back: Thresholds =
                serde_json::from_value(serde_json::to_value(t).expect("serialise"))
                    .expect("deserialise");
            assert_eq!(back.validate(), Ok(()));
        }
        Err(errors) => rejected(&errors),
    }
}

fn verify(req: &VerifyRequest) {
    let _ = ApiKeyToken::parse(&req.key);
    if let Some(scope) = &req.scope
        && let Ok(s) = validate::required_scope("scope", scope)
    {
        assert!(s.is_concrete());
    }
    if let Some(ip) = &req.client_ip {
        let _ = ip
            .trim()
            .parse::<std::net::IpAddr>()
            .map(|ip| ip.to_canonical());
    }
}

fn login(req: &LoginRequest) {
    match validate::email("email", &req.email) {
        Ok(email) => assert_eq!(
            validate::email("email", &email).as_ref(),
            Ok(&email),
            "a normalised email checks differently"
        ),
        Err(e) => rejected(&[e]),
    }
    let _ = check_password_policy(&req.password);
}
