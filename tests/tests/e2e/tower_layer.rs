//! `keyward_client::layer`: an axum service wrapped by the layer, asking a real server.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::routing::get;
use axum::{Extension, Router};
use keyward_client::KeywardClient;
use keyward_client::layer::{KeywardLayer, VerifiedKey};
use keyward_core::api::{CreateKeyRequest, RateLimitRule, RevokeKeyRequest};
use keyward_core::{ApiKeyToken, Environment, KeyId};
use keyward_e2e::{TestApp, eventually};
use reqwest::Response;
use serde_json::Value;

/// The handler tells which key it was given.
async fn badges(Extension(key): Extension<VerifiedKey>) -> String {
    format!("{} {}", key.key_id, key.org_id)
}

/// Serves `/badges` behind `layer` on 127.0.0.1:random; returns the route's URL.
async fn serve(layer: KeywardLayer) -> String {
    let app = Router::new().route("/badges", get(badges)).layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    format!("http://{addr}/badges")
}

enum Cred<'a> {
    None,
    Bearer(&'a str),
    ApiKey(&'a str),
}

async fn call(url: &str, cred: Cred<'_>) -> Response {
    let req = reqwest::Client::new().get(url);
    let req = match cred {
        Cred::None => req,
        Cred::Bearer(k) => req.bearer_auth(k),
        Cred::ApiKey(k) => req.header("x-api-key", k),
    };
    req.send().await.unwrap()
}

fn header<'a>(res: &'a Response, name: &str) -> &'a str {
    res.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} field"))
        .to_str()
        .unwrap()
}

/// Status, problem code and body of a refusal; checks it is problem+json.
async fn problem(res: Response) -> (u16, String, Value) {
    let status = res.status().as_u16();
    assert_eq!(header(&res, "content-type"), "application/problem+json");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], status);
    let code = body["code"].as_str().unwrap().to_owned();
    assert_eq!(
        body["type"],
        format!("https://keyward.dev/problems/{}", code.replace('_', "-"))
    );
    (status, code, body)
}

async fn new_key(app: &TestApp, req: CreateKeyRequest) -> (KeyId, String) {
    let created = app.owner.create_key(&req).await.unwrap();
    (created.key.id, created.token.expect("a server-made key"))
}

#[tokio::test]
async fn valid_missing_malformed_scoped_and_revoked_keys() {
    let app = TestApp::spawn().await;
    let (id, token) = new_key(
        &app,
        CreateKeyRequest {
            name: "badges service".into(),
            scopes: Some(vec!["achievements:*".into()]),
            ..Default::default()
        },
    )
    .await;
    let me = app.anon.whoami(&token).await.unwrap();
    let url = serve(
        KeywardLayer::new(app.server.client())
            .scope("achievements:write")
            .cost(1)
            .cache_ttl(Duration::ZERO),
    )
    .await;

    // A valid key reaches the handler, which finds it in the extensions.
    for cred in [Cred::Bearer(&token), Cred::ApiKey(&token)] {
        let res = call(&url, cred).await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.text().await.unwrap(), format!("{id} {}", me.org_id));
    }

    // No key: a bare challenge.
    let res = call(&url, Cred::None).await;
    assert_eq!(header(&res, "www-authenticate"), "Bearer realm=\"keyward\"");
    let (status, code, _) = problem(res).await;
    assert_eq!((status, code.as_str()), (401, "invalid_key"));

    // Malformed or unknown keys.
    let unknown = ApiKeyToken::generate(Environment::Live, KeyId::new());
    for bad in ["kw_live_nope", unknown.expose_secret()] {
        let res = call(&url, Cred::Bearer(bad)).await;
        assert!(header(&res, "www-authenticate").starts_with("Bearer realm=\"keyward\""));
        let (status, code, body) = problem(res).await;
        assert_eq!((status, code.as_str()), (401, "invalid_key"));
        assert!(!body.to_string().contains(bad), "the key is never echoed");
    }

    // A scope the key does not hold.
    let billing = serve(KeywardLayer::new(app.server.client()).scope("billing:write")).await;
    let (status, code, _) = problem(call(&billing, Cred::Bearer(&token)).await).await;
    assert_eq!((status, code.as_str()), (403, "insufficient_scope"));

    // Revoked: refused at once (no cache on this layer).
    app.owner
        .revoke_key(id, &RevokeKeyRequest::default())
        .await
        .unwrap();
    let res = call(&url, Cred::Bearer(&token)).await;
    assert!(header(&res, "www-authenticate").starts_with("Bearer realm=\"keyward\""));
    let (status, code, body) = problem(res).await;
    assert_eq!((status, code.as_str()), (401, "key_revoked"));
    assert_eq!(body["title"], "Unauthorized");
    assert!(!body.to_string().contains(&token));
}

#[tokio::test]
async fn unlimited_answers_are_cached_per_address_and_briefly() {
    let app = TestApp::spawn().await;
    let (id, token) = new_key(
        &app,
        CreateKeyRequest {
            name: "from the office".into(),
            allowed_ips: Some(vec!["203.0.113.0/24".into()]),
            ..Default::default()
        },
    )
    .await;
    // The address comes from a header here, so one test can play several callers. The TTL is
    // long enough that the revocation below lands well inside it even on a busy machine.
    let ttl = Duration::from_secs(5);
    let url = serve(
        KeywardLayer::new(app.server.client())
            .cache_ttl(ttl)
            .client_ip(|parts| parts.headers.get("x-test-ip")?.to_str().ok()?.parse().ok()),
    )
    .await;
    let from = |ip: &'static str| {
        let (url, token) = (url.clone(), token.clone());
        async move {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(token)
                .header("x-test-ip", ip)
                .send()
                .await
                .unwrap()
        }
    };

    assert_eq!(from("203.0.113.7").await.status(), 200);
    // A cached "valid" for one address says nothing about another.
    let (status, code, _) = problem(from("198.51.100.1").await).await;
    assert_eq!((status, code.as_str()), (403, "ip_not_allowed"));

    // Revoked on the server, still valid here until the cached answer ages out.
    app.owner
        .revoke_key(id, &RevokeKeyRequest::default())
        .await
        .unwrap();
    assert_eq!(from("203.0.113.7").await.status(), 200);
    // Then it does age out: the layer asks again and hears of the revocation. (No bound on
    // when: the deadline is for a broken run, not a timing claim.)
    let aged_out = eventually(ttl + Duration::from_secs(30), || async {
        from("203.0.113.7").await.status() == 401
    })
    .await;
    assert!(aged_out, "the cached answer aged out");
    let (status, code, _) = problem(from("203.0.113.7").await).await;
    assert_eq!((status, code.as_str()), (401, "key_revoked"));
}

#[tokio::test]
async fn peer_address_from_connect_info() {
    let app = TestApp::spawn().await;
    let (_, token) = new_key(
        &app,
        CreateKeyRequest {
            name: "loopback only".into(),
            allowed_ips: Some(vec!["127.0.0.1/32".into()]),
            ..Default::default()
        },
    )
    .await;
    let with_peer = serve(KeywardLayer::new(app.server.client()).client_ip(|parts| {
        parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
    }))
    .await;
    assert_eq!(call(&with_peer, Cred::Bearer(&token)).await.status(), 200);

    // Without an address, a key with an allow-list cannot pass.
    let without = serve(KeywardLayer::new(app.server.client())).await;
    let (status, code, _) = problem(call(&without, Cred::Bearer(&token)).await).await;
    assert_eq!((status, code.as_str()), (403, "ip_not_allowed"));
}

#[tokio::test]
async fn limited_keys_are_counted_on_every_call() {
    let app = TestApp::spawn().await;
    let (_, token) = new_key(
        &app,
        CreateKeyRequest {
            name: "two an hour".into(),
            rate_limits: Some(vec![RateLimitRule {
                name: None,
                algorithm: "fixed_window".into(),
                limit: 2,
                window_seconds: 3600,
                burst: None,
                consistency: Default::default(),
            }]),
            ..Default::default()
        },
    )
    .await;
    // The default cache is on: answers for limited keys must bypass it.
    let url = serve(KeywardLayer::new(app.server.client())).await;

    for remaining in ["1", "0"] {
        let res = call(&url, Cred::Bearer(&token)).await;
        assert_eq!(res.status(), 200);
        assert_eq!(header(&res, "x-ratelimit-remaining"), remaining);
        assert_eq!(header(&res, "x-ratelimit-limit"), "2");
        assert!(header(&res, "ratelimit-policy").contains("q=2;w=3600"));
        assert!(!header(&res, "ratelimit").is_empty());
    }

    let res = call(&url, Cred::Bearer(&token)).await;
    let retry: u64 = header(&res, "retry-after").parse().unwrap();
    assert!(retry > 0 && retry <= 3600, "retry-after {retry}");
    assert_eq!(header(&res, "x-ratelimit-remaining"), "0");
    assert!(header(&res, "ratelimit-policy").contains("q=2;w=3600"));
    let (status, code, body) = problem(res).await;
    assert_eq!((status, code.as_str()), (429, "rate_limited"));
    assert_eq!(body["title"], "Too Many Requests");
}

#[tokio::test]
async fn unreachable_verifier_fails_closed() {
    // Nothing listens on port 1.
    let url = serve(KeywardLayer::new(
        KeywardClient::new("http://127.0.0.1:1").unwrap(),
    ))
    .await;
    let key = ApiKeyToken::generate(Environment::Live, KeyId::new());

    let res = call(&url, Cred::Bearer(key.expose_secret())).await;
    assert_eq!(header(&res, "retry-after"), "1");
    let (status, code, body) = problem(res).await;
    assert_eq!((status, code.as_str()), (503, "verifier_unavailable"));
    assert!(!body.to_string().contains(key.expose_secret()));

    // A request without a key is refused before any call: a call would have been a 503.
    let (status, code, _) = problem(call(&url, Cred::None).await).await;
    assert_eq!((status, code.as_str()), (401, "invalid_key"));
}
