//! Slow and idle clients: headers trickled a byte at a time, a kept-alive connection left idle, a
//! body trickled a byte at a time, more connections than the cap, and half-sent requests at
//! SIGTERM. Each is spoken in raw HTTP/1.1 over TCP, since a real client would not misbehave.
//!
//! Timeouts are configured small and waited for with generous deadlines: the tests wait on the
//! server closing the connection, never on a clock of their own.

use std::time::Duration;

use keyward_core::api::CreateKeyRequest;
use keyward_e2e::{PASSWORD, ServerProcess, TestDb, TestServer};
use secrecy::SecretString;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::task::JoinHandle;

/// How long a test waits for something the server must do within a second or so.
const GENEROUS: Duration = Duration::from_secs(30);

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: keyward\r\n\r\n";

async fn connect(server: &TestServer) -> TcpStream {
    connect_to(&server.base_url).await
}

async fn connect_to(base_url: &str) -> TcpStream {
    TcpStream::connect(base_url.trim_start_matches("http://"))
        .await
        .expect("connect")
}

struct Answer {
    status: u16,
    /// The status line and headers, lower-cased.
    head: String,
}

/// A response head (status line and headers), lower-cased; `None` if the connection ends first.
/// Reads byte by byte so that nothing after the head is consumed.
pub(crate) async fn read_head(r: &mut (impl AsyncRead + Unpin)) -> Option<String> {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        match r.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    Some(String::from_utf8_lossy(&head).to_ascii_lowercase())
}

/// Reads one response (its head, then a `Content-Length` body); `None` if the connection ends
/// first.
async fn read_answer(r: &mut (impl AsyncRead + Unpin)) -> Option<Answer> {
    let head = read_head(r).await?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse::<usize>().expect("content-length"));
    let mut body = vec![0; length];
    r.read_exact(&mut body).await.ok()?;
    Some(Answer { status, head })
}

/// Sends `/healthz` and expects a 200: the connection is accepted and served.
async fn served(stream: &mut TcpStream) {
    stream.write_all(HEALTHZ).await.expect("write");
    let answer = tokio::time::timeout(GENEROUS, read_answer(stream))
        .await
        .expect("an answer in time")
        .expect("an answer before the connection closed");
    assert_eq!(answer.status, 200, "{}", answer.head);
}

/// Reads until the server closes the connection (end of stream or reset); returns what it sent
/// meanwhile, or `None` if the connection is still open after `within`.
async fn until_closed(r: &mut (impl AsyncRead + Unpin), within: Duration) -> Option<Vec<u8>> {
    let mut seen = Vec::new();
    let closed = tokio::time::timeout(within, async {
        let mut buf = [0u8; 1024];
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    closed.ok().map(|()| seen)
}

/// Writes `byte` every quarter of a second until the connection refuses it.
fn trickle(mut w: OwnedWriteHalf, byte: u8) -> JoinHandle<()> {
    tokio::spawn(async move {
        while w.write_all(&[byte]).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
}

#[tokio::test]
async fn headers_sent_a_byte_at_a_time_are_cut_off() {
    let db = TestDb::new().await;
    // The idle clock is left long: only the header clock can close the connection in time.
    let server = TestServer::start(&db, |c| {
        c.connections.header_read_timeout = Duration::from_secs(1)
    })
    .await;
    // A well-behaved connection, kept alive; the header clock must not run while it is idle.
    let mut patient = connect(&server).await;
    served(&mut patient).await;

    let (mut rd, mut wr) = connect(&server).await.into_split();
    wr.write_all(b"GET /healthz HTTP/1.1\r\nHost: keyward\r\nX-Slow: ")
        .await
        .unwrap();
    let writer = trickle(wr, b'a');
    let seen = until_closed(&mut rd, GENEROUS)
        .await
        .expect("the server closes a connection whose headers never end");
    writer.abort();
    assert!(
        seen.is_empty(),
        "no answer, just the close: {}",
        String::from_utf8_lossy(&seen)
    );

    // Twice the header timeout has passed, idle: the kept-alive connection still serves.
    served(&mut patient).await;
    server.stop().await;
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed() {
    let db = TestDb::new().await;
    // The header clock is left long: only the idle clock can close the connections in time.
    let server = TestServer::start(&db, |c| {
        c.connections.idle_timeout = Duration::from_secs(1);
        c.connections.header_read_timeout = Duration::from_secs(3600);
    })
    .await;
    let mut kept_alive = connect(&server).await;
    served(&mut kept_alive).await;
    let mut silent = connect(&server).await;

    let seen = until_closed(&mut kept_alive, GENEROUS)
        .await
        .expect("the server closes a kept-alive connection left idle");
    assert!(seen.is_empty(), "{}", String::from_utf8_lossy(&seen));
    let seen = until_closed(&mut silent, GENEROUS)
        .await
        .expect("the server closes a connection that never sends a request");
    assert!(seen.is_empty(), "{}", String::from_utf8_lossy(&seen));

    // Still serving.
    let mut fresh = connect(&server).await;
    served(&mut fresh).await;
    server.stop().await;
}

#[tokio::test]
async fn a_body_sent_a_byte_at_a_time_is_a_408() {
    let db = TestDb::new().await;
    let server =
        TestServer::start(&db, |c| c.connections.body_timeout = Duration::from_secs(1)).await;
    let (mut rd, mut wr) = connect(&server).await.into_split();
    wr.write_all(
        b"POST /v1/auth/login HTTP/1.1\r\nHost: keyward\r\nContent-Type: application/json\r\n\
          Content-Length: 1000\r\n\r\n{",
    )
    .await
    .unwrap();
    // JSON whitespace, forever: every byte arrives in time for a per-read timeout.
    let writer = trickle(wr, b' ');
    let seen = until_closed(&mut rd, GENEROUS)
        .await
        .expect("the server answers and closes");
    writer.abort();
    let seen = String::from_utf8_lossy(&seen).to_ascii_lowercase();
    assert!(seen.starts_with("http/1.1 408 "), "{seen}");
    assert!(seen.contains("\"code\":\"body_timeout\""), "{seen}");
    assert!(seen.contains("connection: close"), "{seen}");
    // Answered from within the router: the request id layer still saw it.
    assert!(seen.contains("x-request-id: "), "{seen}");

    let mut fresh = connect(&server).await;
    served(&mut fresh).await;
    server.stop().await;
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_for_a_free_slot() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db, |c| c.connections.max_connections = 2).await;
    // Both slots taken, by connections that stay open (kept alive).
    let mut first = connect(&server).await;
    served(&mut first).await;
    let mut second = connect(&server).await;
    served(&mut second).await;

    // The kernel completes the handshake, but the server does not take the connection.
    let mut third = connect(&server).await;
    third.write_all(HEALTHZ).await.unwrap();
    let early = tokio::time::timeout(Duration::from_secs(1), read_answer(&mut third)).await;
    assert!(
        early.is_err(),
        "a third connection is not served while two are open"
    );

    drop(first);
    let answer = tokio::time::timeout(GENEROUS, read_answer(&mut third))
        .await
        .expect("served once a slot is free")
        .expect("an answer");
    assert_eq!(answer.status, 200, "{}", answer.head);
    // The second connection kept its slot and is still served.
    served(&mut second).await;
    drop((second, third));
    server.stop().await;
}

#[tokio::test]
async fn sigterm_ends_half_sent_requests_after_the_grace_and_keeps_usage() {
    let db = TestDb::new().await;
    let password = SecretString::from(PASSWORD);
    db.add_owner().await;
    let server = ServerProcess::start(
        &db,
        &[
            // Every count must come from the flush at shutdown.
            ("KEYWARD_USAGE_FLUSH_INTERVAL_MS", "3600000"),
            ("KEYWARD_SHUTDOWN_GRACE_MS", "500"),
            // No clock of the client's would end these requests: only the grace can.
            ("KEYWARD_HEADER_READ_TIMEOUT_MS", "3600000"),
            ("KEYWARD_BODY_TIMEOUT_MS", "3600000"),
            ("KEYWARD_IDLE_TIMEOUT_SECS", "3600"),
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
            ..Default::default()
        })
        .await
        .unwrap();
    let token = key.token.unwrap();
    let client = server.client();
    let calls = 5;
    for _ in 0..calls {
        client.whoami(&token).await.unwrap();
    }

    // Half-sent headers, on a connection already served (so surely accepted).
    let mut half_head = connect_to(&server.base_url).await;
    served(&mut half_head).await;
    half_head
        .write_all(b"GET /v1/whoami HTTP/1.1\r\nHost: keyward\r\nAuthorization: Bearer ")
        .await
        .unwrap();
    // Half a body, which the handler is waiting for: the 100 Continue says it started reading.
    let mut half_body = connect_to(&server.base_url).await;
    half_body
        .write_all(
            b"POST /v1/auth/login HTTP/1.1\r\nHost: keyward\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\nExpect: 100-continue\r\n\r\n",
        )
        .await
        .unwrap();
    let interim = tokio::time::timeout(GENEROUS, read_answer(&mut half_body))
        .await
        .expect("100 Continue in time")
        .expect("100 Continue");
    assert_eq!(interim.status, 100, "{}", interim.head);
    half_body.write_all(b"{\"email\":").await.unwrap();

    // The sockets stay open on this side until the end of the test.
    let (clean, logs) = server.terminate_within(Duration::from_secs(60)).await;
    assert!(clean, "exit status 0; log:\n{logs}");
    assert!(
        logs.contains("shutdown grace over"),
        "the request in flight was cut off by the grace; log:\n{logs}"
    );
    let after: Option<i64> = sqlx::query_scalar(
        "SELECT sum(count)::int8 FROM usage_minute WHERE key_id = $1 AND outcome = 'valid'",
    )
    .bind(key.key.id.as_uuid())
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(after, Some(calls));
    drop((half_head, half_body));
}
