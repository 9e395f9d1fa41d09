//! `/gw/*` against a real upstream on a random port: identity headers added, the credential
//! removed, method/path/query kept, large bodies streamed both ways (beyond the API's 1 MiB
//! limit), upstream errors passed through with the rate-limit fields, 504 on a slow upstream,
//! 502 on an unreachable one, nothing forwarded for a refused key.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{any, get};
use futures::StreamExt;
use keyward_core::api::{CreateKeyRequest, RateLimitRule};
use keyward_e2e::TestApp;

/// An upstream that reports what it received, fails, stalls or streams on request.
async fn upstream() -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let app = Router::new()
        .route(
            "/echo/{*rest}",
            any(move |req: Request| {
                let hits = counted.clone();
                async move {
                    hits.fetch_add(1, Ordering::SeqCst);
                    let (parts, body) = req.into_parts();
                    let mut stream = body.into_data_stream();
                    let mut bytes = 0usize;
                    while let Some(chunk) = stream.next().await {
                        bytes += chunk.map(|c| c.len()).unwrap_or(0);
                    }
                    let h = |n: &str| {
                        parts
                            .headers
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned)
                    };
                    axum::Json(serde_json::json!({
                        "method": parts.method.as_str(),
                        "uri": parts.uri.to_string(),
                        "key_id": h("x-keyward-key-id"),
                        "org_id": h("x-keyward-org-id"),
                        "authorization": h("authorization"),
                        "x_api_key": h("x-api-key"),
                        "custom": h("x-custom"),
                        "bytes": bytes,
                    }))
                }
            }),
        )
        .route(
            "/fail",
            get(|| async {
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    [("x-upstream", "yes")],
                    "boom",
                )
                    .into_response()
            }),
        )
        .route(
            "/wait",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                "waited"
            }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                "late"
            }),
        )
        .route(
            "/big",
            get(|| async {
                let chunks = futures::stream::iter(
                    (0..128).map(|_| Ok::<_, std::io::Error>(vec![b'x'; 64 * 1024])),
                );
                Body::from_stream(chunks)
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), hits)
}

/// A key without limits.
async fn plain_token(app: &TestApp) -> String {
    let req = CreateKeyRequest {
        name: "gw".into(),
        ..Default::default()
    };
    app.owner.create_key(&req).await.unwrap().token.unwrap()
}

async fn app_with_upstream(url: &str, timeout_ms: u64) -> TestApp {
    let url = url.to_owned();
    TestApp::spawn_with(move |c| {
        c.upstream = Some(url);
        c.upstream_timeout_ms = timeout_ms;
    })
    .await
}

#[tokio::test]
async fn forwards_with_identity_strips_the_credential_and_streams_bodies() {
    let (up, hits) = upstream().await;
    let app = app_with_upstream(&up, 2_000).await;
    let created = app
        .owner
        .create_key(&CreateKeyRequest {
            name: "gw".into(),
            rate_limits: Some(vec![RateLimitRule {
                name: None,
                algorithm: "fixed_window".into(),
                limit: 100,
                window_seconds: 3600,
                burst: None,
            }]),
            ..Default::default()
        })
        .await
        .unwrap();
    let token = created.token.unwrap();
    let http = reqwest::Client::new();
    let gw = |path: &str| format!("{}/gw{path}", app.server.base_url);

    // 5 MiB up: far beyond the API's 1 MiB body limit, streamed to the upstream.
    let res = http
        .post(gw("/echo/a/b?x=1&y=two"))
        .bearer_auth(&token)
        .header("x-custom", "kept")
        .header("x-keyward-key-id", "spoofed")
        .body(vec![7u8; 5 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-ratelimit-remaining"], "99");
    assert!(res.headers().contains_key("ratelimit-policy"));
    let seen: serde_json::Value = res.json().await.unwrap();
    assert_eq!(seen["method"], "POST");
    assert_eq!(seen["uri"], "/echo/a/b?x=1&y=two");
    assert_eq!(
        seen["key_id"],
        created.key.id.to_string(),
        "the key id, not the spoofed header"
    );
    assert_eq!(seen["org_id"], created.key.org_id.to_string());
    assert_eq!(
        (seen["authorization"].is_null(), seen["x_api_key"].is_null()),
        (true, true),
        "the credential never reaches the upstream"
    );
    assert_eq!(seen["custom"], "kept");
    assert_eq!(seen["bytes"], 5 * 1024 * 1024);

    // X-API-Key works too and is stripped as well.
    let seen: serde_json::Value = http
        .get(gw("/echo/x"))
        .header("x-api-key", &token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(seen["x_api_key"].is_null());

    // 8 MiB down, streamed.
    let res = http
        .get(gw("/big"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap().len(), 8 * 1024 * 1024);

    // Upstream errors pass through as they are, with the rate-limit fields.
    let res = http
        .get(gw("/fail"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 500);
    assert_eq!(res.headers()["x-upstream"], "yes");
    assert!(res.headers().contains_key("x-ratelimit-limit"));
    assert_eq!(res.text().await.unwrap(), "boom");

    // A refused key is never forwarded.
    let before = hits.load(Ordering::SeqCst);
    let res = http
        .get(gw("/echo/nope"))
        .bearer_auth("kw_live_bogus")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = http.get(gw("/echo/nope")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    assert_eq!(hits.load(Ordering::SeqCst), before);
}

#[tokio::test]
async fn a_slow_upstream_is_a_504_and_an_unreachable_one_a_502() {
    let (up, _) = upstream().await;
    let app = app_with_upstream(&up, 300).await;
    let token = plain_token(&app).await;
    let http = reqwest::Client::new();
    let started = std::time::Instant::now();
    let res = http
        .get(format!("{}/gw/slow", app.server.base_url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 504);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "answered at the timeout, not when the upstream did"
    );
    let problem: serde_json::Value = res.json().await.unwrap();
    assert_eq!(problem["code"], "upstream_timeout");

    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let app = app_with_upstream(&format!("http://{closed}"), 1_000).await;
    let token = plain_token(&app).await;
    let res = http
        .get(format!("{}/gw/anything", app.server.base_url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 502);
    let problem: serde_json::Value = res.json().await.unwrap();
    assert_eq!(problem["code"], "upstream_unavailable");
}

#[tokio::test]
async fn without_an_upstream_the_gateway_says_so() {
    let app = TestApp::spawn().await;
    let token = plain_token(&app).await;
    let res = reqwest::Client::new()
        .get(format!("{}/gw/x", app.server.base_url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    let problem: serde_json::Value = res.json().await.unwrap();
    assert_eq!(problem["code"], "gateway_not_configured");
}

#[tokio::test]
async fn gateway_traffic_is_reported_by_route_status_and_latency() {
    let (up, _) = upstream().await;
    let app = app_with_upstream(&up, 2_000).await;
    let created = app
        .owner
        .create_key(&CreateKeyRequest {
            name: "routes".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let (token, key) = (created.token.unwrap(), created.key);
    let http = reqwest::Client::new();
    let call = |path: &str| {
        http.get(format!("{}/gw{path}", app.server.base_url))
            .bearer_auth(&token)
            .send()
    };
    for i in 0..10 {
        assert_eq!(call(&format!("/echo/{i}")).await.unwrap().status(), 200);
    }
    for _ in 0..4 {
        assert_eq!(call("/fail").await.unwrap().status(), 500);
    }
    for _ in 0..2 {
        assert_eq!(call("/wait").await.unwrap().status(), 200);
    }
    // An id-like first segment is grouped as `:id` (the upstream answers 404).
    assert_eq!(call("/12345/x").await.unwrap().status(), 404);

    let q = keyward_core::api::GatewayQuery::default();
    let mut stats = None;
    for _ in 0..100 {
        stats = app.owner.key_gateway(key.id, &q).await.ok();
        if stats.as_ref().is_some_and(|s| s.groups[0].calls == 17) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stats = stats.unwrap();
    assert_eq!(
        stats.groups[0].calls, 17,
        "all 17 calls reported: {stats:?}"
    );
    let total = &stats.groups[0];
    assert_eq!(total.route, None);
    assert_eq!(total.key_id, Some(key.id));
    assert_eq!(
        (
            total.status.success,
            total.status.client_error,
            total.status.server_error
        ),
        (12, 1, 4)
    );
    assert!((total.error_share - 4.0 / 17.0).abs() < 1e-9);
    let route = |name: &str| {
        stats
            .groups
            .iter()
            .find(|g| g.route.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("no route {name} in {:?}", stats.groups))
    };
    assert_eq!(route("echo").calls, 10);
    assert_eq!(route("fail").status.server_error, 4);
    assert_eq!(route(":id").status.client_error, 1);
    let wait = route("wait");
    assert_eq!(wait.calls, 2);
    let p50 = wait.latency_p50_ms.unwrap();
    assert!(
        (265.0..=400.0).contains(&p50),
        "a 300 ms upstream is reported within the histogram's resolution: {p50}"
    );
    assert!(wait.latency_mean_ms.unwrap() >= 300.0);
    assert!(total.latency_p95_ms.unwrap() >= total.latency_p50_ms.unwrap());
    assert_eq!(stats.groups.len(), 5, "total + four route groups");

    // The organisation's view: its total, then the key.
    let org = app.owner.gateway_usage(&q).await.unwrap();
    assert_eq!(org.groups[0].calls, 17);
    assert_eq!(org.groups[0].key_id, None);
    assert_eq!(org.groups[1].key_id, Some(key.id));
    assert_eq!(org.groups[1].key_name.as_deref(), Some("routes"));

    // Bad periods and foreign ids are refused.
    let err = app
        .owner
        .key_gateway(
            key.id,
            &keyward_core::api::GatewayQuery {
                from: Some(chrono::Utc::now()),
                to: Some(chrono::Utc::now() - chrono::Duration::hours(1)),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(422));
    let long = keyward_core::api::GatewayQuery {
        from: Some(chrono::Utc::now() - chrono::Duration::days(91)),
        to: None,
    };
    assert_eq!(
        app.owner
            .gateway_usage(&long)
            .await
            .unwrap_err()
            .status()
            .map(|s| s.as_u16()),
        Some(422)
    );
    let other = app
        .owner
        .key_gateway(keyward_core::KeyId::new(), &q)
        .await
        .unwrap_err();
    assert_eq!(other.status().map(|s| s.as_u16()), Some(404));

    // Latency is in /metrics too.
    let metrics = http
        .get(format!("{}/metrics", app.server.base_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("keyward_request_duration_seconds_count{route=\"gateway\"} 17"),
        "{metrics}"
    );
}
