//! `/gw/*` against a real upstream on a random port: identity headers added, the credential
//! removed, method/path/query kept, large bodies streamed both ways (beyond the API's 1 MiB
//! limit), upstream errors passed through with the rate-limit fields, 504 on a slow upstream,
//! 502 on an unreachable one, nothing forwarded for a refused key. Each environment goes to its
//! own upstream (a test key never reaches the live one), and a body sent with a
//! `Content-Length` reaches an upstream that cannot read chunked bodies.

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
use keyward_core::Environment;
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
                        "environment": h("x-keyward-environment"),
                        "scopes": h("x-keyward-scopes"),
                        "content_length": h("content-length"),
                        "transfer_encoding": h("transfer-encoding"),
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
            // Never answers: whatever reaches the caller came from the gateway's timeout.
            get(|| async {
                std::future::pending::<()>().await;
                "never"
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

/// An address where connections are refused: a socket bound to it but not listening, kept by
/// the returned value, so no other test can take the port meanwhile (as it could after a
/// listener bound for its port number and closed).
pub(crate) fn refusing_address() -> (socket2::Socket, std::net::SocketAddr) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    (socket, addr)
}

/// A key without limits.
async fn plain_token(app: &TestApp) -> String {
    let req = CreateKeyRequest {
        name: "gw".into(),
        // Every gateway route needs its scope (`echo:read`, `fail:read`, ...).
        scopes: Some(vec!["*:*".into()]),
        ..Default::default()
    };
    app.owner.create_key(&req).await.unwrap().token.unwrap()
}

async fn app_with_upstream(url: &str, timeout_ms: u64) -> TestApp {
    let url = url.to_owned();
    TestApp::spawn_with(move |c| {
        c.gateway.live = Some(url.parse().expect("upstream URL"));
        c.gateway.timeout = Duration::from_millis(timeout_ms);
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
            scopes: Some(vec!["*:*".into()]),
            rate_limits: Some(vec![RateLimitRule {
                name: None,
                algorithm: "fixed_window".into(),
                limit: 100,
                window_seconds: 3600,
                burst: None,
                consistency: Default::default(),
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
    // The upstream never answers, so any answer is the gateway's own at its timeout (the
    // client's deadline only stops a broken run from hanging).
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let res = http
        .get(format!("{}/gw/slow", app.server.base_url))
        .bearer_auth(&token)
        .send()
        .await
        .expect("the gateway answers while the upstream never does");
    assert_eq!(res.status(), 504);
    let problem: serde_json::Value = res.json().await.unwrap();
    assert_eq!(problem["code"], "upstream_timeout");

    let (_reserved, closed) = refusing_address();
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
            scopes: Some(vec!["*:*".into()]),
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
    // The gateway's measure of a call cannot exceed the round trip its caller saw: that, not a
    // fixed figure, bounds the reported latency from above.
    let mut fastest_round_trip = Duration::MAX;
    for _ in 0..2 {
        let sent = std::time::Instant::now();
        assert_eq!(call("/wait").await.unwrap().status(), 200);
        fastest_round_trip = fastest_round_trip.min(sent.elapsed());
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
    // Percentiles are bucket midpoints, within a factor sqrt(1.25) of the true value. The
    // median of two calls is the faster one: at least the upstream's 300 ms, at most the faster
    // round trip the caller measured.
    let p50 = wait.latency_p50_ms.unwrap();
    let resolution = 1.25f64.sqrt() + 1e-9;
    let ceiling = fastest_round_trip.as_secs_f64() * 1000.0 * resolution;
    assert!(
        p50 >= 300.0 / resolution && p50 <= ceiling,
        "a 300 ms upstream is reported within the histogram's resolution: {p50} ms \
         (the faster call's round trip: {fastest_round_trip:?})"
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
    let metrics = app.server.metrics().await;
    assert!(
        metrics.contains("keyward_request_duration_seconds_count{route=\"gateway\"} 17"),
        "{metrics}"
    );
}

/// A key of an environment with the given scopes.
async fn env_token(app: &TestApp, environment: Environment, scopes: &[&str]) -> String {
    let req = CreateKeyRequest {
        name: format!("gw-{environment}"),
        environment: Some(environment),
        scopes: Some(scopes.iter().map(|s| s.to_string()).collect()),
        ..Default::default()
    };
    app.owner.create_key(&req).await.unwrap().token.unwrap()
}

#[tokio::test]
async fn each_environment_goes_to_its_own_upstream_and_is_named_to_it() {
    let (live, live_hits) = upstream().await;
    let (test, test_hits) = upstream().await;
    let app = TestApp::spawn_with(move |c| {
        c.gateway.live = Some(live.parse().expect("upstream URL"));
        c.gateway.test = Some(test.parse().expect("upstream URL"));
        c.gateway.timeout = Duration::from_secs(2);
    })
    .await;
    let live_token = env_token(&app, Environment::Live, &["echo:read", "echo:write"]).await;
    let test_token = env_token(&app, Environment::Test, &["*:*"]).await;
    let http = reqwest::Client::new();
    let gw = |path: &str| format!("{}/gw{path}", app.server.base_url);

    let seen: serde_json::Value = http
        .post(gw("/echo/live"))
        .bearer_auth(&live_token)
        .header("x-keyward-environment", "test")
        .header("x-keyward-scopes", "*:*")
        .body("hello")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen["environment"], "live", "the key's, not the client's");
    assert_eq!(seen["scopes"], "echo:read echo:write");
    assert_eq!(
        (
            live_hits.load(Ordering::SeqCst),
            test_hits.load(Ordering::SeqCst)
        ),
        (1, 0)
    );

    // A test key reaches the test upstream only, whatever the method.
    for method in [
        reqwest::Method::GET,
        reqwest::Method::POST,
        reqwest::Method::DELETE,
    ] {
        let res = http
            .request(method.clone(), gw("/echo/sandbox"))
            .bearer_auth(&test_token)
            .header("x-keyward-environment", "live")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{method}");
        let seen: serde_json::Value = res.json().await.unwrap();
        assert_eq!(seen["method"], method.as_str());
        assert_eq!(seen["environment"], "test");
        assert_eq!(seen["scopes"], "*:*");
    }
    assert_eq!(
        (
            live_hits.load(Ordering::SeqCst),
            test_hits.load(Ordering::SeqCst)
        ),
        (1, 3),
        "no test call reached the live upstream"
    );
}

#[tokio::test]
async fn a_key_whose_environment_has_no_upstream_is_refused() {
    // Only a live upstream: test keys are refused, never sent to it.
    let (live, live_hits) = upstream().await;
    let app = app_with_upstream(&live, 2_000).await;
    let test_token = env_token(&app, Environment::Test, &["*:*"]).await;
    let live_token = env_token(&app, Environment::Live, &["*:*"]).await;
    let http = reqwest::Client::new();
    let gw = |path: &str| format!("{}/gw{path}", app.server.base_url);
    for method in [
        reqwest::Method::GET,
        reqwest::Method::PUT,
        reqwest::Method::PATCH,
    ] {
        let res = http
            .request(method.clone(), gw("/echo/anything"))
            .bearer_auth(&test_token)
            .body("payload")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403, "{method}");
        assert_eq!(res.headers()["content-type"], "application/problem+json");
        let problem: serde_json::Value = res.json().await.unwrap();
        assert_eq!(problem["code"], "wrong_environment");
    }
    assert_eq!(live_hits.load(Ordering::SeqCst), 0);
    let res = http
        .get(gw("/echo/ok"))
        .bearer_auth(&live_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(live_hits.load(Ordering::SeqCst), 1);

    // Only a test upstream: live keys get 503 `gateway_not_configured`, test keys get through.
    let (test, test_hits) = upstream().await;
    let app = TestApp::spawn_with(move |c| {
        c.gateway.test = Some(test.parse().expect("upstream URL"));
        c.gateway.timeout = Duration::from_secs(2);
    })
    .await;
    let test_token = env_token(&app, Environment::Test, &["*:*"]).await;
    let live_token = env_token(&app, Environment::Live, &["*:*"]).await;
    let gw = |path: &str| format!("{}/gw{path}", app.server.base_url);
    let res = http
        .get(gw("/echo/x"))
        .bearer_auth(&live_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    let problem: serde_json::Value = res.json().await.unwrap();
    assert_eq!(problem["code"], "gateway_not_configured");
    assert_eq!(test_hits.load(Ordering::SeqCst), 0);
    let res = http
        .get(gw("/echo/x"))
        .bearer_auth(&test_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(test_hits.load(Ordering::SeqCst), 1);

    // The refusal is documented.
    let doc = app.anon.openapi().await.unwrap();
    let forbidden = doc["paths"]["/gw/{path}"]["get"]["responses"]["403"]["description"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(forbidden.contains("wrong_environment"), "{forbidden}");
}

/// An upstream that only understands `Content-Length` bodies (as an HTTP/1.0 server): it reads
/// the headers, refuses a request without a length (411), reads exactly that many bytes and
/// echoes them. A chunked body would be read as its first bytes of chunk framing, or nothing.
async fn length_only_upstream() -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut byte = [0u8; 1];
                while !buf.ends_with(b"\r\n\r\n") {
                    if socket.read_exact(&mut byte).await.is_err() {
                        return;
                    }
                    buf.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
                let chunked = head.contains("transfer-encoding");
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok());
                let (status, body) = match length {
                    Some(n) => {
                        let mut body = vec![0u8; n];
                        if socket.read_exact(&mut body).await.is_err() {
                            return;
                        }
                        ("200 OK", body)
                    }
                    None => ("411 Length Required", Vec::new()),
                };
                let head = format!(
                    "HTTP/1.0 {status}\r\ncontent-length: {}\r\nx-saw-transfer-encoding: {chunked}\r\n\r\n",
                    body.len()
                );
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(&body).await;
                let _ = socket.shutdown().await;
                // Whatever was not read (a chunked body) is drained, so closing does not reset
                // the connection under the answer.
                let mut rest = [0u8; 4096];
                while let Ok(Ok(n)) =
                    tokio::time::timeout(Duration::from_millis(500), socket.read(&mut rest)).await
                {
                    if n == 0 {
                        break;
                    }
                }
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn a_body_sent_with_a_length_keeps_it_and_a_chunked_one_stays_chunked() {
    let length_only = length_only_upstream().await;
    let app = app_with_upstream(&length_only, 5_000).await;
    let token = plain_token(&app).await;
    let http = reqwest::Client::new();
    let gw = format!("{}/gw/echo", app.server.base_url);
    for size in [1usize, 5_000, 3 * 1024 * 1024] {
        let sent: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let res = http
            .post(&gw)
            .bearer_auth(&token)
            .body(sent.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{size} bytes: the upstream saw a length");
        assert_eq!(res.headers()["x-saw-transfer-encoding"], "false");
        let echoed = res.bytes().await.unwrap();
        assert_eq!(echoed.len(), size);
        assert!(echoed[..] == sent[..], "{size} bytes echoed as sent");
    }
    // An empty body declared as one is forwarded with its length of 0 (hyper would otherwise
    // send an empty body without any length).
    let res = http
        .put(&gw)
        .bearer_auth(&token)
        .header(reqwest::header::CONTENT_LENGTH, "0")
        .body(Vec::new())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.bytes().await.unwrap().is_empty());

    // A client's chunked body has no length to keep: it is forwarded chunked (this upstream
    // cannot read it, a chunked-capable one can, below).
    let chunks =
        || futures::stream::iter((0..4).map(|_| Ok::<_, std::io::Error>(vec![b'c'; 1000])));
    let res = http
        .post(&gw)
        .bearer_auth(&token)
        .body(reqwest::Body::wrap_stream(chunks()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 411);

    let (up, _) = upstream().await;
    let app = app_with_upstream(&up, 5_000).await;
    let token = plain_token(&app).await;
    let gw = |path: &str| format!("{}/gw{path}", app.server.base_url);
    let seen: serde_json::Value = http
        .post(gw("/echo/chunked"))
        .bearer_auth(&token)
        .body(reqwest::Body::wrap_stream(chunks()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen["bytes"], 4000);
    assert_eq!(seen["transfer_encoding"], "chunked");
    assert!(seen["content_length"].is_null());
    let seen: serde_json::Value = http
        .post(gw("/echo/sized"))
        .bearer_auth(&token)
        .body(vec![1u8; 4000])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen["bytes"], 4000);
    assert_eq!(seen["content_length"], "4000");
    assert!(seen["transfer_encoding"].is_null());
}
