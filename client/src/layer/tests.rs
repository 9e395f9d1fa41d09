//! The layer's unit tests: key extraction, verdicts, caching rules, refusals, and the whole
//! service where no server is needed.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use keyward_core::api::{LimitState, Problem, QuotaState, VerifyCode, VerifyResponse};
use keyward_core::{KeyId, OrgId, ScopeSet};
use tower::Layer;

use super::refusal::{Refusal, is_code};
use super::verdict::{Verdict, cacheable, decide, presented_key};
use super::{KeywardLayer, LayerBody};
use crate::{ClientError, KeywardClient};

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    pairs
        .iter()
        .map(|(k, v)| {
            (
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            )
        })
        .collect()
}

fn answer(code: VerifyCode) -> VerifyResponse {
    let valid = code == VerifyCode::Valid;
    VerifyResponse {
        valid,
        code,
        key_id: valid.then(KeyId::new),
        org_id: valid.then(OrgId::new),
        environment: None,
        scopes: valid.then(ScopeSet::default),
        expires_at: None,
        ratelimit: None,
        quota: None,
        retry_after_seconds: None,
        warning: None,
        headers: None,
    }
}

async fn body_json(res: Response<LayerBody<Full<Bytes>>>) -> serde_json::Value {
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

#[test]
fn key_from_the_headers() {
    assert_eq!(
        presented_key(&headers(&[("authorization", "Bearer kw_abc")])),
        Some("kw_abc")
    );
    assert_eq!(
        presented_key(&headers(&[("x-api-key", " kw_xyz ")])),
        Some("kw_xyz")
    );
    assert_eq!(
        presented_key(&headers(&[("authorization", "Bearer  ")])),
        None
    );
    assert_eq!(presented_key(&HeaderMap::new()), None);
}

#[test]
fn codes_map_to_the_servers_outcomes() {
    let expect = [
        (VerifyCode::NotFound, 401, "invalid_key"),
        (VerifyCode::Revoked, 401, "key_revoked"),
        (VerifyCode::Expired, 401, "key_expired"),
        (VerifyCode::Disabled, 401, "key_disabled"),
        (VerifyCode::IpNotAllowed, 403, "ip_not_allowed"),
        (VerifyCode::InsufficientScope, 403, "insufficient_scope"),
        (VerifyCode::RateLimited, 429, "rate_limited"),
        (VerifyCode::QuotaExceeded, 429, "quota_exceeded"),
    ];
    for (code, status, name) in expect {
        let r = Refusal::for_code(code);
        assert_eq!(
            (r.status.as_u16(), r.code.as_ref()),
            (status, name),
            "{code:?}"
        );
        let challenge = r.headers.get(WWW_AUTHENTICATE);
        assert_eq!(challenge.is_some(), status == 401, "{code:?}");
        if let Some(c) = challenge {
            let c = c.to_str().unwrap();
            assert!(c.starts_with("Bearer realm=\"keyward\""), "{c}");
            assert!(c.contains(&format!("error_description=\"{name}\"")), "{c}");
        }
        assert_eq!(
            r.headers.contains_key(RETRY_AFTER),
            status == 429,
            "{code:?}"
        );
    }
    assert_eq!(
        Refusal::missing_key().headers[WWW_AUTHENTICATE],
        "Bearer realm=\"keyward\""
    );
}

#[test]
fn limit_refusals_carry_the_servers_fields() {
    let mut a = answer(VerifyCode::RateLimited);
    a.retry_after_seconds = Some(42);
    a.headers = Some(BTreeMap::from([
        (
            "RateLimit-Policy".to_owned(),
            "\"hour\";q=2;w=3600".to_owned(),
        ),
        ("X-RateLimit-Remaining".to_owned(), "0".to_owned()),
        ("Retry-After".to_owned(), "17".to_owned()),
    ]));
    let Verdict::Refuse(r) = decide(a.clone()) else {
        panic!("refused")
    };
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers["retry-after"], "17", "the server's field wins");
    assert_eq!(r.headers["ratelimit-policy"], "\"hour\";q=2;w=3600");
    assert_eq!(r.headers["x-ratelimit-remaining"], "0");

    // Without the field, `retry_after_seconds`; without both, the server's default.
    a.headers = None;
    let Verdict::Refuse(r) = decide(a.clone()) else {
        panic!("refused")
    };
    assert_eq!(r.headers[RETRY_AFTER], "42");
    a.retry_after_seconds = None;
    a.code = VerifyCode::QuotaExceeded;
    let Verdict::Refuse(r) = decide(a) else {
        panic!("refused")
    };
    assert_eq!(
        (r.code.as_ref(), &r.headers[RETRY_AFTER]),
        ("quota_exceeded", &HeaderValue::from(60u64))
    );
}

#[test]
fn valid_answers_allow_with_their_fields() {
    let mut a = answer(VerifyCode::Valid);
    a.headers = Some(BTreeMap::from([(
        "X-RateLimit-Remaining".to_owned(),
        "9".to_owned(),
    )]));
    let (key_id, org_id) = (a.key_id.unwrap(), a.org_id.unwrap());
    let Verdict::Allow { key, headers } = decide(a.clone()) else {
        panic!("allowed")
    };
    assert_eq!((key.key_id, key.org_id), (key_id, org_id));
    assert_eq!(headers["x-ratelimit-remaining"], "9");

    // Inconsistent answers fail closed.
    a.key_id = None;
    assert!(matches!(decide(a), Verdict::Refuse(r) if r.status == StatusCode::SERVICE_UNAVAILABLE));
    let mut b = answer(VerifyCode::Valid);
    b.valid = false;
    assert!(matches!(decide(b), Verdict::Refuse(r) if r.status == StatusCode::SERVICE_UNAVAILABLE));
}

#[test]
fn only_unlimited_valid_answers_are_cached() {
    let now = chrono::Utc::now();
    let ttl = Duration::from_secs(2);
    assert!(cacheable(&answer(VerifyCode::Valid), ttl, now));
    assert!(!cacheable(&answer(VerifyCode::Revoked), ttl, now));

    let state = LimitState {
        policy: "hour".into(),
        limit: 2,
        remaining: 1,
        reset_seconds: 3600,
    };
    let mut limited = answer(VerifyCode::Valid);
    limited.ratelimit = Some(state.clone());
    assert!(!cacheable(&limited, ttl, now));
    let mut with_quota = answer(VerifyCode::Valid);
    with_quota.quota = Some(QuotaState {
        daily: Some(state),
        monthly: None,
    });
    assert!(!cacheable(&with_quota, ttl, now));

    let mut with_fields = answer(VerifyCode::Valid);
    with_fields.headers = Some(BTreeMap::from([("X-RateLimit-Limit".into(), "2".into())]));
    assert!(!cacheable(&with_fields, ttl, now));

    let mut expiring = answer(VerifyCode::Valid);
    expiring.expires_at = Some(now + chrono::Duration::seconds(1));
    assert!(!cacheable(&expiring, ttl, now));
    expiring.expires_at = Some(now + chrono::Duration::seconds(60));
    assert!(cacheable(&expiring, ttl, now));
}

#[tokio::test]
async fn problem_documents_follow_rfc_9457() {
    let res: Response<LayerBody<Full<Bytes>>> =
        Refusal::for_code(VerifyCode::InsufficientScope).into_response();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(res.headers()[CONTENT_TYPE], "application/problem+json");
    let body = body_json(res).await;
    assert_eq!(
        body,
        serde_json::json!({
            "type": "https://keyward.dev/problems/insufficient-scope",
            "title": "Forbidden",
            "status": 403,
            "detail": "the API key lacks the scope this call needs",
            "code": "insufficient_scope",
        })
    );

    let res: Response<LayerBody<Full<Bytes>>> = Refusal::unavailable().into_response();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()[RETRY_AFTER], "1");
    let body = body_json(res).await;
    assert_eq!(body["code"], "verifier_unavailable");
    assert_eq!(body["title"], "Service Unavailable");
    assert_eq!(
        body["type"],
        "https://keyward.dev/problems/verifier-unavailable"
    );
}

#[test]
fn the_servers_throttling_passes_through() {
    let throttled = ClientError::Api {
        status: StatusCode::TOO_MANY_REQUESTS,
        problem: Box::new(Problem {
            type_uri: "https://keyward.dev/problems/too-many-attempts".into(),
            title: "Too Many Requests".into(),
            status: 429,
            detail: "too many failed checks of this key; retry in 30 s".into(),
            code: "too_many_attempts".into(),
            errors: Vec::new(),
            request_id: None,
        }),
        retry_after: Some(30),
    };
    let r = Refusal::from_client_error(&throttled);
    assert_eq!(
        (r.status.as_u16(), r.code.as_ref()),
        (429, "too_many_attempts")
    );
    assert_eq!(r.headers[RETRY_AFTER], "30");

    let failing = ClientError::Unexpected {
        status: StatusCode::BAD_GATEWAY,
        message: "upstream".into(),
    };
    let r = Refusal::from_client_error(&failing);
    assert_eq!(
        (r.status.as_u16(), r.code.as_ref()),
        (503, "verifier_unavailable")
    );
    assert!(is_code("too_many_attempts"));
    assert!(!is_code("Bad Code"));
}

/// The whole service where no server is needed: neither it nor the inner service is asked.
#[tokio::test]
async fn refuses_without_asking_when_no_valid_looking_key() {
    use tower::ServiceExt;

    // Nothing listens there: a request that reached the server would be a 503.
    let client = KeywardClient::new("http://127.0.0.1:1").unwrap();
    let inner = tower::service_fn(|_req: Request<()>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"inner"))))
    });
    let svc = KeywardLayer::new(client).layer(inner);

    let res = svc.clone().oneshot(Request::new(())).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()[WWW_AUTHENTICATE], "Bearer realm=\"keyward\"");
    assert_eq!(body_json(res).await["code"], "invalid_key");

    let res = svc
        .oneshot(
            Request::builder()
                .header("authorization", "Bearer kw_live_not-a-key")
                .body(())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let challenge = res.headers()[WWW_AUTHENTICATE].to_str().unwrap().to_owned();
    let body = body_json(res).await;
    assert_eq!(body["code"], "invalid_key");
    assert!(challenge.contains("error=\"invalid_token\""));
    assert!(
        !body.to_string().contains("not-a-key"),
        "never echo the key"
    );
}

#[test]
#[should_panic(expected = "KeywardLayer::scope")]
fn wildcard_scopes_are_refused_at_start_up() {
    let _ = KeywardLayer::new(KeywardClient::new("http://127.0.0.1:1").unwrap())
        .scope("achievements:*");
}
