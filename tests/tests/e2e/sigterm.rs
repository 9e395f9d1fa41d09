//! SIGTERM: the real binary stops accepting, finishes the request in flight when the signal
//! arrives, flushes every usage count (that request's included) and exits 0.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::routing::get;
use keyward_core::api::CreateKeyRequest;
use keyward_e2e::{PASSWORD, ServerProcess, TestDb, eventually};
use secrecy::SecretString;

/// An upstream whose requests wait until `release` is set; `arrived` counts those that reached
/// it.
struct HeldUpstream {
    url: String,
    arrived: Arc<AtomicUsize>,
    release: tokio::sync::watch::Sender<bool>,
}

impl HeldUpstream {
    async fn start() -> HeldUpstream {
        let arrived = Arc::new(AtomicUsize::new(0));
        let (release, released) = tokio::sync::watch::channel(false);
        let counter = arrived.clone();
        let app = axum::Router::new().route(
            "/held",
            get(move || {
                let (counter, mut released) = (counter.clone(), released.clone());
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let _ = released.wait_for(|r| *r).await;
                    "finished"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        HeldUpstream {
            url,
            arrived,
            release,
        }
    }
}

#[tokio::test]
async fn sigterm_finishes_the_request_in_flight_and_loses_no_usage_counts() {
    let db = TestDb::new().await;
    let password = SecretString::from(PASSWORD);
    db.add_owner().await;
    let upstream = HeldUpstream::start().await;
    let server = ServerProcess::start(
        &db,
        &[
            // No periodic flush during the test: every count must come from the flush at
            // shutdown.
            ("KEYWARD_USAGE_FLUSH_INTERVAL_MS", "3600000"),
            ("KEYWARD_UPSTREAM", &upstream.url),
            // The request in flight is released by the test, well within the grace.
            ("KEYWARD_SHUTDOWN_GRACE_MS", "120000"),
        ],
    )
    .await;
    let (owner, _) = server
        .client()
        .login("owner@acme.test", &password)
        .await
        .unwrap();
    let key = owner
        .create_key(&CreateKeyRequest {
            name: "busy".into(),
            scopes: Some(vec!["*:*".into()]),
            ..Default::default()
        })
        .await
        .unwrap();
    let token = key.token.unwrap();
    let client = server.client();
    let calls = 37;
    let mut handles = Vec::new();
    for _ in 0..calls {
        let (c, t) = (client.clone(), token.clone());
        handles.push(tokio::spawn(async move { c.whoami(&t).await.unwrap() }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let before: Option<i64> = sqlx::query_scalar("SELECT sum(count)::int8 FROM usage_minute")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(before, None, "nothing flushed before the signal");

    // A gateway call held at the upstream: in flight when the signal arrives.
    let in_flight = {
        let url = format!("{}/gw/held", server.base_url);
        let token = token.clone();
        tokio::spawn(async move {
            let res = reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .unwrap()
                .get(url)
                .bearer_auth(token)
                .send()
                .await?;
            Ok::<_, reqwest::Error>((res.status().as_u16(), res.text().await?))
        })
    };
    assert!(
        eventually(Duration::from_secs(30), || async {
            upstream.arrived.load(Ordering::SeqCst) == 1
        })
        .await,
        "the gateway call reached the upstream"
    );

    server.sigterm();
    // The server closed its listener and is draining the open connection.
    assert!(
        eventually(Duration::from_secs(30), || async {
            server.logs().contains("draining connections")
        })
        .await,
        "the server drains after SIGTERM; log:\n{}",
        server.logs()
    );
    let addr = server.base_url.trim_start_matches("http://").to_owned();
    assert!(
        tokio::net::TcpStream::connect(&addr).await.is_err(),
        "no new connection is accepted while draining"
    );
    assert!(!in_flight.is_finished(), "the call is still in flight");

    upstream.release.send_replace(true);
    let (status, body) = in_flight
        .await
        .unwrap()
        .expect("the call in flight is answered");
    assert_eq!((status, body.as_str()), (200, "finished"));

    let (clean, logs) = server.wait_exit(Duration::from_secs(60)).await;
    assert!(clean, "exit status 0; log:\n{logs}");
    let after: Option<i64> = sqlx::query_scalar(
        "SELECT sum(count)::int8 FROM usage_minute WHERE key_id = $1 AND outcome = 'valid'",
    )
    .bind(key.key.id.as_uuid())
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(after, Some(calls + 1), "37 calls and the one in flight");
    // The gateway records its call once the upstream answered, after the signal: flushed too.
    let gateway: Option<i64> = sqlx::query_scalar(
        "SELECT sum(calls)::int8 FROM gateway_usage_hour WHERE key_id = $1 AND route = 'held'",
    )
    .bind(key.key.id.as_uuid())
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        gateway,
        Some(1),
        "the call finished after the signal is counted"
    );
    let last_used: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT last_used_at FROM api_keys WHERE id = $1")
            .bind(key.key.id.as_uuid())
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert!(last_used.is_some());
}
