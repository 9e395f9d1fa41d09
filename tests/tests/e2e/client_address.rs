//! The client address behind trusted proxies is exact (`X-Forwarded-For` or RFC 7239
//! `Forwarded`, whichever `client_ip_header` names), and `X-Request-Id` is safe: a hostile one
//! is replaced, and every problem+json body carries the id the response's header carries.

use std::time::Duration;

use keyward_core::api::CreateKeyRequest;
use keyward_core::ip::client::ClientIpHeader;
use keyward_e2e::{TestApp, TestServer, eventually};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn behind_loopback_proxy(c: &mut keyward_server::Config) {
    c.client_ip.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
}

/// A key usable only from `allowed`; its token.
async fn key_for(app: &TestApp, name: &str, allowed: &[&str]) -> (keyward_core::KeyId, String) {
    let created = app
        .owner
        .create_key(&CreateKeyRequest {
            name: name.into(),
            allowed_ips: Some(allowed.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        })
        .await
        .unwrap();
    (created.key.id, created.token.unwrap())
}

/// `GET /v1/whoami` with `token` and the given header lines (in order): the status and the
/// problem's code ("" on success).
async fn whoami(base: &str, token: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut req = reqwest::Client::new()
        .get(format!("{base}/v1/whoami"))
        .bearer_auth(token);
    for (name, value) in headers {
        // `header` appends: repeated names are separate field lines.
        req = req.header(*name, *value);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    let code = body["code"].as_str().unwrap_or_default().to_owned();
    (status, code)
}

fn xff(value: &str) -> [(&str, &str); 1] {
    [("x-forwarded-for", value)]
}

fn fwd(value: &str) -> [(&str, &str); 1] {
    [("forwarded", value)]
}

const ALLOWED: (u16, &str) = (200, "");
const REFUSED: (u16, &str) = (403, "ip_not_allowed");

fn pair(r: &(u16, String)) -> (u16, &str) {
    (r.0, r.1.as_str())
}

#[tokio::test]
async fn a_spoofed_address_left_of_garbage_is_not_believed() {
    let app = TestApp::spawn_with(behind_loopback_proxy).await;
    let base = &app.server.base_url;
    let (_, token) = key_for(&app, "partner", &["203.0.113.7"]).await;
    let (loopback_id, loopback_token) = key_for(&app, "internal", &["127.0.0.0/8"]).await;

    // The proxy (127.0.0.1) says nothing: the connection's address.
    assert_eq!(pair(&whoami(base, &token, &[]).await), REFUSED);
    // A valid chain: the proxy says the client is 203.0.113.7.
    assert_eq!(
        pair(&whoami(base, &token, &xff("203.0.113.7")).await),
        ALLOWED
    );
    assert_eq!(
        pair(&whoami(base, &token, &xff("198.51.100.1, 203.0.113.7, 127.0.0.5")).await),
        ALLOWED,
        "through two trusted proxies"
    );

    // The client writes 203.0.113.7 and something that is not an address after it: the walk
    // stops at that entry and takes the last trusted hop (the proxy), never the value left of it.
    for garbage in [
        "unknown",
        "1.2.3.4:5678",
        "garbage",
        "",
        "[203.0.113.7]",
        "_hidden",
    ] {
        let value = format!("203.0.113.7, {garbage}");
        assert_eq!(
            pair(&whoami(base, &token, &xff(&value)).await),
            REFUSED,
            "{value:?}"
        );
    }
    assert_eq!(
        pair(
            &whoami(
                base,
                &token,
                &[
                    ("x-forwarded-for", "203.0.113.7"),
                    ("x-forwarded-for", "unknown")
                ]
            )
            .await
        ),
        REFUSED,
        "garbage on a field line of its own"
    );
    // Left of an untrusted address: that address is the client.
    assert_eq!(
        pair(&whoami(base, &token, &xff("203.0.113.7, 198.51.100.1")).await),
        REFUSED
    );
    // This server reads X-Forwarded-For only: Forwarded is ignored.
    assert_eq!(
        pair(&whoami(base, &token, &[("forwarded", "for=203.0.113.7")]).await),
        REFUSED
    );

    // The address used for the spoofed chain is the trusted hop: a key for loopback passes, and
    // its last-used address is the proxy's.
    assert_eq!(
        pair(&whoami(base, &loopback_token, &xff("203.0.113.7, unknown")).await),
        ALLOWED
    );
    assert!(
        eventually(Duration::from_secs(10), || async {
            app.owner
                .get_key(loopback_id)
                .await
                .unwrap()
                .last_used_ip
                .as_deref()
                == Some("127.0.0.1")
        })
        .await,
        "the last-used address is the proxy's"
    );
}

#[tokio::test]
async fn forwarded_is_read_when_configured() {
    let app = TestApp::spawn_with(behind_loopback_proxy).await;
    let (_, token) = key_for(&app, "partner", &["203.0.113.7"]).await;
    let (_, v6_token) = key_for(&app, "partner v6", &["2001:db8::/32"]).await;
    let node = TestServer::start(&app.db, |c| {
        behind_loopback_proxy(c);
        c.client_ip.header = ClientIpHeader::Forwarded;
    })
    .await;
    let base = &node.base_url;

    for allowed in [
        "for=203.0.113.7",
        "For=203.0.113.7;proto=https;by=_edge",
        r#"for="203.0.113.7:4711""#,
        r#"for=198.51.100.1, for=203.0.113.7;host="api.example, ;", for="127.0.0.5:80""#,
    ] {
        assert_eq!(
            pair(&whoami(base, &token, &fwd(allowed)).await),
            ALLOWED,
            "{allowed}"
        );
    }
    // IPv6 is quoted and bracketed.
    assert_eq!(
        pair(&whoami(base, &v6_token, &fwd(r#"for="[2001:db8::1]:4711""#)).await),
        ALLOWED
    );
    assert_eq!(
        pair(&whoami(base, &v6_token, &fwd("for=[2001:db8::1]")).await),
        REFUSED,
        "unquoted brackets are not RFC 7239"
    );

    for refused in [
        "for=203.0.113.7, for=unknown",
        "for=203.0.113.7, for=_hidden",
        "for=203.0.113.7, proto=https",
        r#"for=203.0.113.7, for="1.2.3.4"#,
        "for=203.0.113.7;for=203.0.113.7",
        "for=203.0.113.7, for=198.51.100.1",
    ] {
        assert_eq!(
            pair(&whoami(base, &token, &fwd(refused)).await),
            REFUSED,
            "{refused}"
        );
    }
    assert_eq!(
        pair(
            &whoami(
                base,
                &token,
                &[
                    ("forwarded", "for=203.0.113.7"),
                    ("forwarded", "for=unknown")
                ]
            )
            .await
        ),
        REFUSED
    );
    // Only the configured header is read.
    assert_eq!(
        pair(&whoami(base, &token, &[("x-forwarded-for", "203.0.113.7")]).await),
        REFUSED
    );
}

fn is_safe_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
}

/// The answer's `X-Request-Id` to `GET /healthz` sent with the given ids.
async fn echoed(base: &str, ids: &[reqwest::header::HeaderValue]) -> String {
    let mut req = reqwest::Client::new().get(format!("{base}/healthz"));
    for id in ids {
        req = req.header("x-request-id", id.clone());
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), 200);
    let ids: Vec<_> = res.headers().get_all("x-request-id").iter().collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    ids[0].to_str().unwrap().to_owned()
}

/// Sends `request` as it is and reads the answer until the server closes.
async fn raw(base: &str, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(base.trim_start_matches("http://"))
        .await
        .unwrap();
    stream.write_all(request).await.unwrap();
    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut seen))
        .await
        .expect("the server answers and closes")
        .unwrap();
    String::from_utf8_lossy(&seen).into_owned()
}

#[tokio::test]
async fn hostile_request_ids_are_not_echoed() {
    let app = TestApp::spawn().await;
    let base = &app.server.base_url;
    let value = |bytes: &[u8]| reqwest::header::HeaderValue::from_bytes(bytes).unwrap();

    // A safe id is kept.
    for ok in ["trace-42.a_b:c", &"a".repeat(128)] {
        assert_eq!(echoed(base, &[value(ok.as_bytes())]).await, ok);
    }
    // Anything else is replaced with a fresh one.
    let hostile: Vec<Vec<u8>> = vec![
        "a".repeat(129).into_bytes(),
        "x".repeat(4000).into_bytes(),
        b"hello world".to_vec(),
        b"<script>alert(1)</script>".to_vec(),
        b"a\"b".to_vec(),
        b"a\tb".to_vec(),
        b"id%0d%0aSet-Cookie:%20x=1".to_vec(),
        b"id\xff\xfe".to_vec(),
    ];
    for id in &hostile {
        let got = echoed(base, &[value(id)]).await;
        assert_ne!(got.as_bytes(), id.as_slice());
        assert!(is_safe_id(&got), "{got:?}");
        assert_eq!(got.len(), 36, "a UUID: {got}");
    }
    // Two ids: neither is chosen.
    let got = echoed(base, &[value(b"first"), value(b"second")]).await;
    assert!(
        got != "first" && got != "second" && is_safe_id(&got),
        "{got}"
    );

    // Raw bytes no HTTP client would send: a control character, a bare CR, CRLF injection. The
    // HTTP parser refuses the request or ends the field at the line break (then the part before
    // it is the id, and what follows a request header, never a response one); either way no
    // response field is written from the rest.
    for (id, injected) in [
        (&b"evil\x01id"[..], None),
        (&b"evil\x7fid"[..], None),
        (&b"evil\rSet-Cookie: session=stolen"[..], Some("set-cookie")),
        (&b"evil\r\nX-Injected: yes"[..], Some("x-injected")),
        (&b"evil\nX-Injected: yes"[..], Some("x-injected")),
    ] {
        let mut request =
            b"GET /v1/no-such-thing HTTP/1.1\r\nHost: keyward\r\nX-Request-Id: ".to_vec();
        request.extend_from_slice(id);
        request.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
        let answer = raw(base, &request).await;
        assert!(answer.starts_with("HTTP/1.1 "), "{answer:?}");
        assert!(
            !answer.contains(&*String::from_utf8_lossy(id)),
            "{answer:?}"
        );
        let head = answer
            .split("\r\n\r\n")
            .next()
            .unwrap()
            .to_ascii_lowercase();
        if let Some(name) = injected {
            assert!(!head.contains(&format!("\n{name}:")), "{answer:?}");
        }
        let ids: Vec<&str> = head
            .lines()
            .filter_map(|l| l.strip_prefix("x-request-id:"))
            .map(str::trim)
            .collect();
        assert!(ids.len() <= 1, "{answer:?}");
        assert!(ids.iter().all(|id| is_safe_id(id)), "{answer:?}");
    }
}

/// The answer's status, `X-Request-Id` and problem body.
async fn problem(res: reqwest::Response) -> (u16, String, Value) {
    let status = res.status().as_u16();
    assert_eq!(
        res.headers()["content-type"],
        "application/problem+json",
        "{status}"
    );
    let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    (status, id, res.json().await.unwrap())
}

#[tokio::test]
async fn problem_bodies_carry_the_request_id() {
    let app = TestApp::spawn().await;
    let base = &app.server.base_url;
    let (_, token) = key_for(&app, "elsewhere", &["192.0.2.0/24"]).await;
    let http = reqwest::Client::new();

    let answers = [
        // 404 from the fallback, no id sent: a fresh one.
        http.get(format!("{base}/v1/no-such-thing")).send(),
        // 401 from the key check, the client's own id.
        http.get(format!("{base}/v1/whoami"))
            .header("x-request-id", "client-chosen-7")
            .send(),
        // 403 from the allow-list, a hostile id replaced.
        http.get(format!("{base}/v1/whoami"))
            .bearer_auth(&token)
            .header("x-request-id", "no spaces allowed")
            .send(),
        // 400 and 422 from the body extractor.
        http.post(format!("{base}/v1/auth/login"))
            .header("content-type", "application/json")
            .body("{")
            .send(),
        http.post(format!("{base}/v1/auth/login"))
            .json(&serde_json::json!({"email": 1}))
            .send(),
        // 405.
        http.delete(format!("{base}/v1/whoami")).send(),
    ];
    let mut seen = Vec::new();
    for answer in answers {
        let (status, id, body) = problem(answer.await.unwrap()).await;
        assert!(is_safe_id(&id), "{id}");
        assert_eq!(body["request_id"], id.as_str(), "{status}: {body}");
        assert_eq!(body["status"], status);
        seen.push((status, id));
    }
    let statuses: Vec<u16> = seen.iter().map(|s| s.0).collect();
    assert_eq!(statuses, [404, 401, 403, 400, 422, 405]);
    assert_eq!(seen[1].1, "client-chosen-7");
    assert_ne!(seen[2].1, "no spaces allowed");
    assert_ne!(seen[0].1, seen[2].1, "each request its own id");

    // A successful answer is not touched.
    let ok = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    assert!(ok.headers().contains_key("x-request-id"));
}
