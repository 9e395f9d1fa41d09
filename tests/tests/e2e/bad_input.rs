//! The bad-input matrix: every field of every write endpoint, plus oversized, malformed and
//! hostile bodies and headers. Each case asserts the exact status and problem code (and the
//! offending field), and that nothing stored changed.

use keyward_core::api::CreateKeyRequest;
use keyward_e2e::TestApp;
use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

struct Raw {
    base: String,
    session: String,
    http: reqwest::Client,
}

struct Answer {
    status: u16,
    content_type: String,
    body: Value,
    www_authenticate: bool,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    fn fields(&self) -> Vec<(String, String)> {
        self.body["errors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| {
                        (
                            e["field"].as_str().unwrap_or("").to_owned(),
                            e["code"].as_str().unwrap_or("").to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Raw {
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&str>,
        content_type: Option<&str>,
    ) -> Answer {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.session);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        if let Some(b) = body {
            req = req.body(b.to_owned());
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let content_type = res
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let www_authenticate = res.headers().contains_key("www-authenticate");
        let text = res.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            content_type,
            body,
            www_authenticate,
        }
    }

    async fn json(&self, method: Method, path: &str, body: &str) -> Answer {
        self.send(method, path, Some(body), Some("application/json"))
            .await
    }
}

/// (case, body, status, code, expected field error)
type Case<'a> = (&'a str, &'a str, u16, &'a str, Option<(&'a str, &'a str)>);

/// Everything a refused request could have changed.
async fn snapshot(app: &TestApp) -> (Option<String>, i64, i64) {
    let keys: Option<String> =
        sqlx::query_scalar("SELECT md5(string_agg(k::text, '|' ORDER BY id)) FROM api_keys k")
            .fetch_one(app.pool())
            .await
            .unwrap();
    let audit: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log")
        .fetch_one(app.pool())
        .await
        .unwrap();
    let admins: i64 = sqlx::query_scalar("SELECT count(*) FROM admins")
        .fetch_one(app.pool())
        .await
        .unwrap();
    (keys, audit, admins)
}

fn assert_problem(case: &str, a: &Answer, status: u16, code: &str, field: Option<(&str, &str)>) {
    assert_eq!((a.status, a.code()), (status, code), "{case}: {}", a.body);
    assert_eq!(a.content_type, "application/problem+json", "{case}");
    assert_eq!(a.body["status"], json!(status), "{case}");
    assert!(
        a.body["type"].is_string() && a.body["title"].is_string() && a.body["detail"].is_string(),
        "{case}"
    );
    if let Some((f, c)) = field {
        assert!(
            a.fields().contains(&(f.to_owned(), c.to_owned())),
            "{case}: expected {f}/{c} in {:?}",
            a.fields()
        );
    }
}

#[tokio::test]
async fn every_bad_input_is_refused_precisely_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let existing = app
        .owner
        .create_key(&CreateKeyRequest {
            name: "existing".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let token = existing.token.clone().unwrap();
    let raw = Raw {
        base: app.anon.base_url().to_owned(),
        session: app.owner.session().unwrap().expose_secret().to_owned(),
        http: reqwest::Client::new(),
    };
    let before = snapshot(&app).await;
    let id = existing.key.id;
    let v7 = uuid::Uuid::now_v7();
    let v4 = uuid::Uuid::new_v4();
    let good_hash = keyward_core::hash::hash_token(&keyward_core::ApiKeyToken::generate(
        keyward_core::Environment::Live,
        keyward_core::KeyId::from_uuid(v4),
    ));
    let weak_hash = "$argon2i$v=19$m=4096,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI";
    let big_meta = format!(
        r#"{{"name":"ok","metadata":{{"blob":"{}"}}}}"#,
        "x".repeat(5000)
    );
    let many_scopes = format!(
        r#"{{"name":"ok","scopes":[{}]}}"#,
        (0..65)
            .map(|i| format!("\"r{i}:read\""))
            .collect::<Vec<_>>()
            .join(",")
    );
    let long_name = format!(r#"{{"name":"{}"}}"#, "n".repeat(101));
    let long_reason = format!(r#"{{"reason":"{}"}}"#, "r".repeat(501));
    let id_without_hash = format!(r#"{{"name":"ok","id":"{v7}"}}"#);
    let weak = format!(r#"{{"name":"ok","id":"{v7}","secret_hash":"{weak_hash}"}}"#);
    let garbage_hash = format!(r#"{{"name":"ok","id":"{v7}","secret_hash":"hunter2"}}"#);
    let long_description = format!(r#"{{"description":"{}"}}"#, "d".repeat(1001));
    let v4_id = format!(r#"{{"name":"ok","id":"{v4}","secret_hash":"{good_hash}"}}"#);

    let create: Vec<Case> = vec![
        (
            "empty object",
            "{}",
            422,
            "validation_failed",
            Some(("name", "required")),
        ),
        (
            "blank name",
            r#"{"name":"   "}"#,
            422,
            "validation_failed",
            Some(("name", "required")),
        ),
        (
            "long name",
            &long_name,
            422,
            "validation_failed",
            Some(("name", "too_long")),
        ),
        (
            "control char",
            r#"{"name":"a\u0000b"}"#,
            422,
            "validation_failed",
            Some(("name", "invalid_characters")),
        ),
        (
            "name type",
            r#"{"name":5}"#,
            422,
            "validation_failed",
            Some(("name", "invalid")),
        ),
        (
            "unknown field",
            r#"{"name":"ok","nmae":1}"#,
            422,
            "validation_failed",
            Some(("nmae", "unknown_field")),
        ),
        (
            "scope syntax",
            r#"{"name":"ok","scopes":["achievements"]}"#,
            422,
            "validation_failed",
            Some(("scopes[0]", "invalid_scope")),
        ),
        (
            "scope case",
            r#"{"name":"ok","scopes":["a:read","Badges:Read"]}"#,
            422,
            "validation_failed",
            Some(("scopes[1]", "invalid_scope")),
        ),
        (
            "too many scopes",
            &many_scopes,
            422,
            "validation_failed",
            None,
        ),
        (
            "host bits",
            r#"{"name":"ok","allowed_ips":["10.0.0.1/8"]}"#,
            422,
            "validation_failed",
            Some(("allowed_ips[0]", "invalid_cidr")),
        ),
        (
            "not an ip",
            r#"{"name":"ok","allowed_ips":["not-an-ip"]}"#,
            422,
            "validation_failed",
            Some(("allowed_ips[0]", "invalid_cidr")),
        ),
        (
            "prefix too long",
            r#"{"name":"ok","allowed_ips":["10.0.0.0/33"]}"#,
            422,
            "validation_failed",
            Some(("allowed_ips[0]", "invalid_cidr")),
        ),
        (
            "past expiry",
            r#"{"name":"ok","expires_at":"2001-01-01T00:00:00Z"}"#,
            422,
            "validation_failed",
            Some(("expires_at", "in_past")),
        ),
        (
            "far expiry",
            r#"{"name":"ok","expires_at":"2999-01-01T00:00:00Z"}"#,
            422,
            "validation_failed",
            Some(("expires_at", "too_far")),
        ),
        (
            "bad time",
            r#"{"name":"ok","expires_at":"tomorrow"}"#,
            422,
            "validation_failed",
            Some(("expires_at", "invalid")),
        ),
        (
            "environment",
            r#"{"name":"ok","environment":"prod"}"#,
            422,
            "validation_failed",
            Some(("environment", "invalid")),
        ),
        (
            "metadata type",
            r#"{"name":"ok","metadata":[1]}"#,
            422,
            "validation_failed",
            Some(("metadata", "invalid_type")),
        ),
        (
            "metadata size",
            &big_meta,
            422,
            "validation_failed",
            Some(("metadata", "too_large")),
        ),
        (
            "id without hash",
            &id_without_hash,
            422,
            "validation_failed",
            Some(("secret_hash", "required")),
        ),
        (
            "weak hash",
            &weak,
            422,
            "validation_failed",
            Some(("secret_hash", "weak_hash")),
        ),
        (
            "garbage hash",
            &garbage_hash,
            422,
            "validation_failed",
            Some(("secret_hash", "weak_hash")),
        ),
        (
            "v4 id",
            &v4_id,
            422,
            "validation_failed",
            Some(("id", "invalid_id")),
        ),
        ("top-level array", "[]", 422, "validation_failed", None),
        ("truncated json", r#"{"name":"#, 400, "malformed_body", None),
        ("not json", "name=ok", 400, "malformed_body", None),
    ];
    for (case, body, status, code, field) in &create {
        let a = raw.json(Method::POST, "/v1/keys", body).await;
        assert_problem(case, &a, *status, code, *field);
    }
    // Several bad fields are reported together.
    let a = raw
        .json(
            Method::POST,
            "/v1/keys",
            r#"{"name":"","scopes":["x"],"allowed_ips":["y"]}"#,
        )
        .await;
    assert_eq!(a.fields().len(), 3, "{}", a.body);

    // Content type, size, depth.
    let a = raw
        .send(
            Method::POST,
            "/v1/keys",
            Some(r#"{"name":"ok"}"#),
            Some("text/plain"),
        )
        .await;
    assert_problem("content type", &a, 415, "unsupported_media_type", None);
    let huge = format!(
        r#"{{"name":"ok","description":"{}"}}"#,
        "d".repeat(1024 * 1024 + 1)
    );
    let a = raw.json(Method::POST, "/v1/keys", &huge).await;
    assert_problem("over 1 MiB", &a, 413, "payload_too_large", None);
    let deep = format!(
        r#"{{"name":"ok","metadata":{}{}}}"#,
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let a = raw.json(Method::POST, "/v1/keys", &deep).await;
    assert_problem("deep nesting", &a, 400, "malformed_body", None);

    // PATCH, revoke, rotate.
    let key_path = format!("/v1/keys/{id}");
    let patch: Vec<Case> = vec![
        (
            "blank name",
            r#"{"name":""}"#,
            422,
            "validation_failed",
            Some(("name", "required")),
        ),
        (
            "scopes",
            r#"{"scopes":["nope"]}"#,
            422,
            "validation_failed",
            Some(("scopes[0]", "invalid_scope")),
        ),
        (
            "ips",
            r#"{"allowed_ips":["300.1.1.1"]}"#,
            422,
            "validation_failed",
            Some(("allowed_ips[0]", "invalid_cidr")),
        ),
        (
            "past expiry",
            r#"{"expires_at":"2001-01-01T00:00:00Z"}"#,
            422,
            "validation_failed",
            Some(("expires_at", "in_past")),
        ),
        (
            "disabled type",
            r#"{"disabled":"yes"}"#,
            422,
            "validation_failed",
            Some(("disabled", "invalid")),
        ),
        (
            "metadata",
            r#"{"metadata":"x"}"#,
            422,
            "validation_failed",
            Some(("metadata", "invalid_type")),
        ),
        (
            "unknown",
            r#"{"secret_hash":"x"}"#,
            422,
            "validation_failed",
            Some(("secret_hash", "unknown_field")),
        ),
        (
            "long description",
            &long_description,
            422,
            "validation_failed",
            Some(("description", "too_long")),
        ),
    ];
    for (case, body, status, code, field) in &patch {
        let a = raw.json(Method::PATCH, &key_path, body).await;
        assert_problem(&format!("patch {case}"), &a, *status, code, *field);
    }
    let a = raw
        .json(Method::PATCH, "/v1/keys/not-a-uuid", r#"{"name":"x"}"#)
        .await;
    assert_problem("patch bad id", &a, 404, "key_not_found", None);
    let a = raw
        .json(
            Method::PATCH,
            &format!("/v1/keys/{}", uuid::Uuid::now_v7()),
            r#"{"name":"x"}"#,
        )
        .await;
    assert_problem("patch unknown id", &a, 404, "key_not_found", None);

    let revoke_path = format!("/v1/keys/{id}/revoke");
    for (case, body, field) in [
        (
            "negative grace",
            r#"{"grace_seconds":-1}"#,
            ("grace_seconds", "invalid"),
        ),
        (
            "huge grace",
            r#"{"grace_seconds":2592001}"#,
            ("grace_seconds", "out_of_range"),
        ),
        (
            "grace type",
            r#"{"grace_seconds":"soon"}"#,
            ("grace_seconds", "invalid"),
        ),
        ("long reason", long_reason.as_str(), ("reason", "too_long")),
        (
            "unknown",
            r#"{"graceSeconds":1}"#,
            ("graceSeconds", "unknown_field"),
        ),
    ] {
        let a = raw.json(Method::POST, &revoke_path, body).await;
        assert_problem(
            &format!("revoke {case}"),
            &a,
            422,
            "validation_failed",
            Some(field),
        );
    }
    let rotate_path = format!("/v1/keys/{id}/rotate");
    let a = raw
        .json(Method::POST, &rotate_path, r#"{"grace_seconds":2592001}"#)
        .await;
    assert_problem(
        "rotate huge grace",
        &a,
        422,
        "validation_failed",
        Some(("grace_seconds", "out_of_range")),
    );
    let a = raw.json(Method::POST, &rotate_path, r#"{"grace":1}"#).await;
    assert_problem(
        "rotate unknown",
        &a,
        422,
        "validation_failed",
        Some(("grace", "unknown_field")),
    );

    // Query strings.
    for (case, query, field) in [
        ("limit 0", "limit=0", "limit"),
        ("limit 501", "limit=501", "limit"),
        ("limit text", "limit=abc", "limit"),
        ("status", "status=bogus", "status"),
        ("cursor", "cursor=!!!", "cursor"),
        ("unknown param", "colour=red", "colour"),
    ] {
        let a = raw
            .send(Method::GET, &format!("/v1/keys?{query}"), None, None)
            .await;
        assert_eq!(
            (a.status, a.code()),
            (422, "validation_failed"),
            "list {case}: {}",
            a.body
        );
        assert!(
            a.fields().iter().any(|(f, _)| f == field),
            "list {case}: {:?}",
            a.fields()
        );
    }
    let a = raw
        .send(Method::GET, "/v1/audit?cursor=-5", None, None)
        .await;
    assert_problem(
        "audit cursor",
        &a,
        422,
        "validation_failed",
        Some(("cursor", "invalid_cursor")),
    );

    // Login.
    let long_password = format!(
        r#"{{"email":"a@b.test","password":"{}"}}"#,
        "p".repeat(1025)
    );
    for (case, body, field) in [
        (
            "bad email",
            r#"{"email":"nope","password":"x"}"#,
            ("email", "invalid_email"),
        ),
        (
            "missing password",
            r#"{"email":"a@b.test"}"#,
            ("password", "required"),
        ),
        (
            "long password",
            long_password.as_str(),
            ("password", "out_of_range"),
        ),
        (
            "unknown",
            r#"{"email":"a@b.test","password":"x","remember":true}"#,
            ("remember", "unknown_field"),
        ),
    ] {
        let a = raw.json(Method::POST, "/v1/auth/login", body).await;
        assert_problem(
            &format!("login {case}"),
            &a,
            422,
            "validation_failed",
            Some(field),
        );
    }

    // Verify: bad requests are 422; a bad key in a good request is a verdict.
    for (case, body, field) in [
        (
            "wildcard scope",
            r#"{"key":"x","scope":"achievements:*"}"#,
            ("scope", "invalid_scope"),
        ),
        (
            "bad scope",
            r#"{"key":"x","scope":"nope"}"#,
            ("scope", "invalid_scope"),
        ),
        (
            "bad ip",
            r#"{"key":"x","client_ip":"999.1.1.1"}"#,
            ("client_ip", "invalid_ip"),
        ),
        (
            "zero cost",
            r#"{"key":"x","cost":0}"#,
            ("cost", "out_of_range"),
        ),
        ("missing key", r#"{}"#, ("key", "required")),
    ] {
        let a = raw.json(Method::POST, "/v1/verify", body).await;
        assert_problem(
            &format!("verify {case}"),
            &a,
            422,
            "validation_failed",
            Some(field),
        );
    }
    let a = raw
        .json(
            Method::POST,
            "/v1/verify",
            &json!({"key": "kw_live_garbage"}).to_string(),
        )
        .await;
    assert_eq!(
        (a.status, a.body["valid"].clone(), a.body["code"].clone()),
        (200, json!(false), json!("not_found"))
    );

    // Hostile headers on key-authenticated calls.
    let whoami = |auth: Option<(&'static str, String)>| {
        let http = raw.http.clone();
        let url = format!("{}/v1/whoami", raw.base);
        async move {
            let mut req = http.get(url);
            if let Some((h, v)) = auth {
                req = req.header(h, v);
            }
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            let www = res.headers().contains_key("www-authenticate");
            let body: Value = res.json().await.unwrap_or(Value::Null);
            (status, body["code"].as_str().unwrap_or("").to_owned(), www)
        }
    };
    let refused = (401, "invalid_key".to_owned(), true);
    assert_eq!(whoami(None).await, refused, "no credential");
    assert_eq!(
        whoami(Some(("authorization", format!("Basic {token}")))).await,
        refused,
        "basic"
    );
    assert_eq!(
        whoami(Some(("authorization", "Bearer".into()))).await,
        refused,
        "empty bearer"
    );
    assert_eq!(
        whoami(Some((
            "authorization",
            format!("Bearer {}", "k".repeat(8000))
        )))
        .await,
        refused,
        "huge"
    );
    let mut typo = token.clone();
    let c = if typo.ends_with('A') { "B" } else { "A" };
    typo.replace_range(typo.len() - 1.., c);
    assert_eq!(
        whoami(Some(("authorization", format!("Bearer {typo}")))).await,
        refused,
        "checksum"
    );
    assert_eq!(
        whoami(Some(("x-api-key", token.clone()))).await.0,
        200,
        "x-api-key"
    );
    let bytes = reqwest::header::HeaderValue::from_bytes(b"Bearer kw_\xff\xfe").unwrap();
    let res = raw
        .http
        .get(format!("{}/v1/whoami", raw.base))
        .header("authorization", bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "non-UTF-8 header");

    // Unknown paths and methods.
    let a = raw.send(Method::GET, "/v1/nothing-here", None, None).await;
    assert_problem("unknown path", &a, 404, "not_found", None);
    let a = raw.send(Method::DELETE, &key_path, None, None).await;
    assert_problem("wrong method", &a, 405, "method_not_allowed", None);

    assert_eq!(
        snapshot(&app).await,
        before,
        "a refused request changed stored data"
    );
    assert!(!a.www_authenticate);
}
