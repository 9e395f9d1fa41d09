//! One table over every route that names an organisation's object (`{id}`, `{name}`, a key id
//! in a query or a sync operation) or lists an organisation's objects: signed in to another
//! organisation, each answers 404 with its precise code, or lists nothing of the first
//! organisation's; and nothing the first organisation owns changes, row for row.

use chrono::{Duration, Utc};
use keyward_core::api::{CreateKeyRequest, CreateTierRequest, CreateWebhookRequest, Role};
use keyward_e2e::TestApp;
use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::limits::rule;

/// What the other organisation must get back.
#[derive(Debug)]
enum Expect {
    /// 404 problem+json with this code.
    NotFound(&'static str),
    /// 200 whose body names nothing of the victim's.
    Nothing,
    /// A sync push answered 200 whose only operation is rejected with this code.
    Rejected(&'static str),
}

/// Every row the victim organisation owns, table by table: rows with its `org_id`, rows of
/// tables keyed by `key_id` for its keys; sessions and sign-in attempts are left out (reading
/// touches them).
async fn fingerprint(app: &TestApp, org: uuid::Uuid) -> Vec<(String, Option<String>)> {
    let tables: Vec<(String, bool, bool)> = sqlx::query_as(
        "SELECT t.table_name,
                bool_or(c.column_name = 'org_id'), bool_or(c.column_name = 'key_id')
           FROM information_schema.tables t
           JOIN information_schema.columns c
             ON c.table_schema = t.table_schema AND c.table_name = t.table_name
          WHERE t.table_schema = 'public' AND t.table_type = 'BASE TABLE'
            AND t.table_name NOT IN ('sessions', 'login_attempts', '_sqlx_migrations')
          GROUP BY t.table_name ORDER BY t.table_name",
    )
    .fetch_all(app.pool())
    .await
    .unwrap();
    let mut out = Vec::new();
    for (table, has_org, has_key) in tables {
        let filter = if has_org {
            "WHERE t.org_id = $1"
        } else if has_key {
            "WHERE t.key_id IN (SELECT id FROM api_keys WHERE org_id = $1)"
        } else {
            "WHERE $1::uuid IS NOT NULL"
        };
        let digest: Option<String> = sqlx::query_scalar(&format!(
            "SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) FROM {table} t {filter}"
        ))
        .bind(org)
        .fetch_one(app.pool())
        .await
        .unwrap();
        out.push((table, digest));
    }
    out
}

#[tokio::test]
async fn another_organisation_reaches_nothing_on_any_route() {
    let app =
        TestApp::spawn_with(|c| c.usage.flush_interval = std::time::Duration::from_millis(100))
            .await;
    // The victim: a limited key with usage and a violation, a tier, a webhook with a delivery,
    // an alert.
    app.owner
        .create_tier(&CreateTierRequest {
            name: "victim-tier".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let key = app
        .owner
        .create_key(&CreateKeyRequest {
            name: "victim-key".into(),
            rate_limits: Some(vec![rule("fixed_window", 1, 3600)]),
            ..Default::default()
        })
        .await
        .unwrap();
    let token = key.token.clone().unwrap();
    let client = app.server.client();
    client.whoami(&token).await.unwrap();
    assert_eq!(
        client.whoami(&token).await.unwrap_err().status().unwrap(),
        429
    );
    let org = key.key.org_id.into_uuid();
    let id = key.key.id;
    let hook = app
        .owner
        .create_webhook(&CreateWebhookRequest {
            url: "https://hooks.victim.example/in".into(),
            events: None,
            enabled: Some(false),
        })
        .await
        .unwrap()
        .webhook;
    app.owner.test_webhook(hook.id).await.unwrap();
    let end = crate::alerts::align(Utc::now()) - Duration::minutes(10);
    let spike = end - Duration::minutes(15);
    crate::alerts::seed(
        &app,
        &key.key,
        end - Duration::days(4),
        spike,
        "38 + (i % 5)",
    )
    .await;
    crate::alerts::seed(&app, &key.key, spike, end, "400").await;
    keyward_server::jobs::alerts::run_once(app.pool(), end + Duration::seconds(5))
        .await
        .unwrap();
    let alert = app.owner.alerts(&Default::default()).await.unwrap()[0].id;
    // Usage and the violation are written by the flusher.
    let counted = || async {
        let n: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM usage_minute WHERE key_id = $1 AND minute > now() - interval '1 hour')
                  + (SELECT count(*) FROM ratelimit_violations WHERE key_id = $1)",
        )
        .bind(id.into_uuid())
        .fetch_one(app.pool())
        .await
        .unwrap();
        n >= 2
    };
    assert!(
        keyward_e2e::eventually(std::time::Duration::from_secs(20), counted).await,
        "usage and the violation recorded"
    );

    let other = app.admin("Globex", "owner@globex.test", Role::Owner).await;
    let session = other.session().unwrap().expose_secret().to_owned();
    let http = reqwest::Client::new();
    let base = app.anon.base_url().trim_end_matches('/').to_owned();
    let before = fingerprint(&app, org).await;

    let day = Utc::now().date_naive();
    let (from, to) = (
        (day - chrono::Days::new(30)).to_string(),
        (day + chrono::Days::new(1)).to_string(),
    );
    let op = |kind: &str, data: Value| json!({"ops": [{"op_id": uuid::Uuid::now_v7(), "kind": kind, "key_id": id, "data": data}]});
    use Expect::*;
    let cases: Vec<(Method, String, Option<Value>, Expect)> = vec![
        (
            Method::GET,
            format!("/v1/keys/{id}"),
            None,
            NotFound("key_not_found"),
        ),
        (
            Method::PATCH,
            format!("/v1/keys/{id}"),
            Some(json!({"name": "stolen"})),
            NotFound("key_not_found"),
        ),
        (
            Method::POST,
            format!("/v1/keys/{id}/revoke"),
            Some(json!({})),
            NotFound("key_not_found"),
        ),
        (
            Method::POST,
            format!("/v1/keys/{id}/rotate"),
            Some(json!({})),
            NotFound("key_not_found"),
        ),
        (
            Method::GET,
            format!("/v1/keys/{id}/usage"),
            None,
            NotFound("key_not_found"),
        ),
        (
            Method::GET,
            format!("/v1/keys/{id}/limits"),
            None,
            NotFound("key_not_found"),
        ),
        (
            Method::GET,
            format!("/v1/keys/{id}/gateway"),
            None,
            NotFound("key_not_found"),
        ),
        (
            Method::GET,
            format!("/v1/keys/{id}/networks"),
            None,
            NotFound("key_not_found"),
        ),
        (
            Method::GET,
            "/v1/tiers/victim-tier".into(),
            None,
            NotFound("tier_not_found"),
        ),
        (
            Method::PATCH,
            "/v1/tiers/victim-tier".into(),
            Some(json!({"soft_threshold": 0.5})),
            NotFound("tier_not_found"),
        ),
        (
            Method::DELETE,
            "/v1/tiers/victim-tier".into(),
            None,
            NotFound("tier_not_found"),
        ),
        (
            Method::GET,
            format!("/v1/webhooks/{}", hook.id),
            None,
            NotFound("webhook_not_found"),
        ),
        (
            Method::DELETE,
            format!("/v1/webhooks/{}", hook.id),
            None,
            NotFound("webhook_not_found"),
        ),
        (
            Method::POST,
            format!("/v1/webhooks/{}/test", hook.id),
            None,
            NotFound("webhook_not_found"),
        ),
        (
            Method::GET,
            format!("/v1/webhooks/{}/deliveries", hook.id),
            None,
            NotFound("webhook_not_found"),
        ),
        (
            Method::POST,
            format!("/v1/alerts/{alert}/ack"),
            None,
            NotFound("alert_not_found"),
        ),
        (Method::GET, "/v1/keys".into(), None, Nothing),
        (Method::GET, "/v1/keys?status=all".into(), None, Nothing),
        (Method::GET, "/v1/tiers".into(), None, Nothing),
        (Method::GET, "/v1/webhooks".into(), None, Nothing),
        (Method::GET, "/v1/alerts?status=all".into(), None, Nothing),
        (Method::GET, "/v1/alerts/settings".into(), None, Nothing),
        (
            Method::GET,
            "/v1/ratelimits/violations".into(),
            None,
            Nothing,
        ),
        (
            Method::GET,
            format!("/v1/ratelimits/violations?key_id={id}"),
            None,
            Nothing,
        ),
        (
            Method::GET,
            format!("/v1/usage?from={from}T00:00:00Z&to={to}T00:00:00Z&group_by=key"),
            None,
            Nothing,
        ),
        (Method::GET, "/v1/gateway/usage".into(), None, Nothing),
        (
            Method::GET,
            format!("/v1/reports/usage?from={from}T00:00:00Z&to={to}T00:00:00Z&format=json"),
            None,
            Nothing,
        ),
        (Method::GET, "/v1/audit".into(), None, Nothing),
        (Method::GET, "/v1/events".into(), None, Nothing),
        (
            Method::GET,
            format!("/v1/events?key_id={id}"),
            None,
            Nothing,
        ),
        (Method::GET, "/v1/sync/pull?since=0".into(), None, Nothing),
        (
            Method::POST,
            "/v1/sync/push".into(),
            Some(op("update_key", json!({"name": "stolen"}))),
            Rejected("key_not_found"),
        ),
        (
            Method::POST,
            "/v1/sync/push".into(),
            Some(op("revoke_key", json!({"reason": "stolen"}))),
            Rejected("key_not_found"),
        ),
        (
            Method::POST,
            "/v1/sync/push".into(),
            Some(op(
                "rotate_key",
                json!({"new_id": uuid::Uuid::now_v7(), "secret_hash": "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$6GEOe8F+yGKm2jBGVeDjzaJUZaXMc8yeQvKmPkK1hYI"}),
            )),
            Rejected("key_not_found"),
        ),
    ];
    // Anything that identifies the victim's objects, as it would appear in a JSON or CSV body.
    let victim_marks = [
        id.to_string(),
        org.to_string(),
        hook.id.to_string(),
        alert.to_string(),
        "victim-key".to_owned(),
        "victim-tier".to_owned(),
        "victim.example".to_owned(),
    ];
    let mut failures = Vec::new();
    for (method, path, body, expect) in &cases {
        let mut req = http
            .request(method.clone(), format!("{base}{path}"))
            .bearer_auth(&session);
        if let Some(b) = body {
            req = req.json(b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let content_type = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let text = res.text().await.unwrap();
        let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let ok = match expect {
            NotFound(code) => {
                status == 404 && content_type == "application/problem+json" && json["code"] == *code
            }
            Nothing => status == 200 && !victim_marks.iter().any(|m| text.contains(m.as_str())),
            Rejected(code) => {
                status == 200
                    && json["results"][0]["status"] == "rejected"
                    && json["results"][0]["code"] == *code
            }
        };
        // A refusal names nothing of the victim's but the id the caller sent.
        let leaks: Vec<&String> = victim_marks[1..]
            .iter()
            .filter(|m| !path.contains(m.as_str()) && text.contains(m.as_str()))
            .collect();
        if !ok || !leaks.is_empty() {
            failures.push(format!(
                "{method} {path}: expected {expect:?}, got {status} {content_type} {text} (leaks {leaks:?})"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The control: the same lists, read by the victim, do name its objects, so "names nothing"
    // above is a statement about tenancy and not about empty lists.
    let owner_session = app.owner.session().unwrap().expose_secret().to_owned();
    for (method, path, _, expect) in &cases {
        if !matches!(expect, Nothing)
            || path.starts_with("/v1/gateway")
            || path.starts_with("/v1/alerts/settings")
        {
            continue;
        }
        let text = http
            .request(method.clone(), format!("{base}{path}"))
            .bearer_auth(&owner_session)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            victim_marks.iter().any(|m| text.contains(m.as_str())),
            "{path} read by its own organisation names its objects: {text}"
        );
    }
    assert_eq!(
        fingerprint(&app, org).await,
        before,
        "the victim's rows are unchanged"
    );
    // The victim still sees all of it.
    assert_eq!(app.owner.get_key(id).await.unwrap().name, "victim-key");
    assert!(app.owner.get_tier("victim-tier").await.is_ok());
    assert_eq!(
        app.owner.get_webhook(hook.id).await.unwrap().id,
        hook.id,
        "the webhook is still there"
    );
}
