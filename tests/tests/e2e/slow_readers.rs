//! Slow readers of usage reports cannot pin the database pool: twenty raw connections ask for a
//! year-long report (several megabytes) and then read it at a byte a second through a tiny
//! receive window, more readers than the pool has connections. Meanwhile the admin API answers
//! as usual (`GET /v1/keys`, p99 under 200 ms, every call a success) and a further report is
//! still read to its end at full speed.
//!
//! Before reports were read page by page, each of these readers held a pooled connection for as
//! long as it took to read (days, at this pace): the sixteenth emptied the pool and every other
//! request waited for the pool's timeout, then failed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use keyward_core::api::{CreateKeyRequest, ListKeysQuery, ReportFormat, ReportQuery};
use keyward_e2e::TestApp;
use secrecy::ExposeSecret;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::slow_clients::read_head;

/// More readers than the pool's 16 connections.
const READERS: usize = 20;
/// Keys with a year of daily usage each: ~73,000 report rows, ~4 MB of CSV per report (more than
/// lies between a stalled report and its reader, so the old code would pin a connection).
const KEYS: usize = 200;
/// `GET /v1/keys` calls timed while the readers hold their reports open.
const SAMPLES: usize = 200;
/// The figure.
const P99_LIMIT: Duration = Duration::from_millis(200);

const GENEROUS: Duration = Duration::from_secs(30);

/// What a reader saw before it settled into reading slowly.
struct Admitted {
    stream: TcpStream,
    /// 503 `reports_busy` answers on the way in (each with `Retry-After`, honoured).
    refusals: u32,
}

/// A connection that takes little off the server's hands: a 4 KiB receive buffer, and a 536-byte
/// MSS so that the server's send buffer is sized as over a network (some 150 KB) rather than
/// for loopback's 64 KiB segments (megabytes).
fn narrow_connection(addr: SocketAddr) -> TcpStream {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    socket.set_tcp_mss(536).expect("TCP_MAXSEG");
    socket.connect(&addr.into()).expect("connect");
    socket.set_nonblocking(true).expect("non-blocking");
    TcpStream::from_std(socket.into()).expect("a tokio stream")
}

/// Asks for the report on a [`narrow_connection`] until it is answered 200, retrying after a
/// 503's `Retry-After` as a client should. Returns with only the head read.
async fn admitted_reader(addr: SocketAddr, request: Arc<String>) -> Admitted {
    let mut refusals = 0;
    loop {
        let mut stream = narrow_connection(addr);
        stream.write_all(request.as_bytes()).await.expect("write");
        let head = tokio::time::timeout(GENEROUS, read_head(&mut stream))
            .await
            .expect("an answer in time")
            .expect("an answer before the connection closed");
        if head.starts_with("http/1.1 503 ") {
            assert!(head.contains("application/problem+json"), "{head}");
            let wait: u64 = head
                .lines()
                .find_map(|l| l.strip_prefix("retry-after:"))
                .unwrap_or_else(|| panic!("a 503 says when to retry: {head}"))
                .trim()
                .parse()
                .expect("Retry-After in seconds");
            refusals += 1;
            tokio::time::sleep(Duration::from_secs(wait)).await;
            continue;
        }
        assert!(head.starts_with("http/1.1 200 "), "{head}");
        assert!(head.contains("text/csv"), "{head}");
        return Admitted { stream, refusals };
    }
}

/// Reads one byte a second until stopped; returns how many it read.
async fn trickle(mut stream: TcpStream, stop: CancellationToken) -> usize {
    let mut read = 0;
    loop {
        let mut byte = [0u8; 1];
        tokio::select! {
            () = stop.cancelled() => return read,
            r = stream.read(&mut byte) => match r {
                Ok(1) => read += 1,
                // The server ended the response: nothing more to hold open.
                _ => return read,
            },
        }
        tokio::select! {
            () = stop.cancelled() => return read,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// The value below which `q` of the samples fall (nearest rank).
fn percentile(sorted: &[Duration], q: f64) -> Duration {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `n` timed `GET /v1/keys`, each a success listing `expect` keys; sorted.
async fn list_keys_latencies(app: &TestApp, n: usize, expect: usize) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let page = tokio::time::timeout(GENEROUS, app.owner.list_keys(&ListKeysQuery::default()))
            .await
            .expect("GET /v1/keys answers in time")
            .expect("GET /v1/keys succeeds while slow readers hold reports open");
        samples.push(started.elapsed());
        assert_eq!(page.items.len(), expect);
    }
    samples.sort();
    samples
}

/// CPU time this process has used (the server runs in it, beside its clients), from
/// `/proc/self/stat` (utime + stime, in clock ticks).
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // The fields after the command's closing parenthesis start at the third, `state`.
    let fields: Vec<&str> = stat[stat.rfind(')').expect("comm") + 2..]
        .split(' ')
        .collect();
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

/// Waits until the process is nearly idle (under a fifth of a CPU over a quarter second), at
/// most `within`; returns how long that took. The readers' reports first fill what lies between
/// them and their readers (hyper's buffer, and a loopback socket's send buffer sized for a 64 KiB
/// MSS: over a megabyte each), which a debug build formats at some length; the steady state, the
/// reports stalled on their readers, is what is measured.
async fn until_quiet(within: Duration) -> Duration {
    let started = Instant::now();
    let window = Duration::from_millis(250);
    // Clock ticks are 1/100 s on Linux: a fifth of a CPU over 250 ms is 5 ticks.
    let quiet = 5;
    while started.elapsed() < within {
        let before = cpu_ticks();
        tokio::time::sleep(window).await;
        if cpu_ticks() - before < quiet {
            break;
        }
    }
    started.elapsed()
}

// The server on worker threads, as in production, rather than on the test's one thread beside
// its own clients.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_report_readers_do_not_pin_the_pool() {
    // The default pool (16) and reports' share (a quarter); a short grace, as the readers are
    // gone by then anyway.
    let app = TestApp::spawn_with(|c| c.connections.shutdown_grace = Duration::from_secs(1)).await;
    let mut keys = Vec::new();
    for name in ["billing", "search", "exports"] {
        let created = app
            .owner
            .create_key(&CreateKeyRequest {
                name: name.into(),
                ..Default::default()
            })
            .await
            .unwrap();
        keys.push(created.key);
    }
    let org = keys[0].org_id.into_uuid();
    // A year of days for the three keys and for keys since deleted (rows with no key record are
    // reported with an empty name), straight into the day rollup.
    let mut ids: Vec<uuid::Uuid> = keys.iter().map(|k| k.id.into_uuid()).collect();
    ids.extend((ids.len()..KEYS).map(|_| uuid::Uuid::new_v4()));
    sqlx::query(
        "INSERT INTO usage_day (key_id, org_id, day, outcome, count)
         SELECT k, $1, d, 'valid', 3
           FROM unnest($2::uuid[]) AS k,
                generate_series(date_trunc('day', now() - interval '365 days', 'UTC'),
                                date_trunc('day', now(), 'UTC'), interval '1 day') AS d",
    )
    .bind(org)
    .bind(&ids)
    .execute(app.pool())
    .await
    .unwrap();
    let expected_rows: i64 = sqlx::query_scalar("SELECT count(*) FROM usage_day WHERE org_id = $1")
        .bind(org)
        .fetch_one(app.pool())
        .await
        .unwrap();
    let baseline = list_keys_latencies(&app, 50, keys.len()).await;

    let now = Utc::now();
    let (from, to) = (now - chrono::Duration::days(366), now);
    let token = app.owner.session().expect("signed in").expose_secret();
    let request = Arc::new(format!(
        "GET /v1/reports/usage?from={}&to={}&format=csv HTTP/1.1\r\nHost: keyward\r\n\
         Authorization: Bearer {token}\r\n\r\n",
        from.to_rfc3339_opts(SecondsFormat::Secs, true),
        to.to_rfc3339_opts(SecondsFormat::Secs, true),
    ));
    let addr: SocketAddr = app
        .server
        .base_url
        .trim_start_matches("http://")
        .parse()
        .unwrap();

    // Every reader admitted (200, its report under way), then reading a byte a second.
    let started = Instant::now();
    let admitted = futures::future::join_all(
        (0..READERS).map(|_| tokio::spawn(admitted_reader(addr, request.clone()))),
    )
    .await;
    let admission = started.elapsed();
    let stop = CancellationToken::new();
    let mut refusals = 0;
    let mut readers = Vec::new();
    for reader in admitted {
        let reader = reader.expect("reader task");
        refusals += reader.refusals;
        readers.push(tokio::spawn(trickle(reader.stream, stop.clone())));
    }
    let stalled = until_quiet(Duration::from_secs(15)).await;

    // The admin API, while the readers hold their reports open.
    let samples = list_keys_latencies(&app, SAMPLES, keys.len()).await;
    let (p50, p99, max) = (
        percentile(&samples, 0.50),
        percentile(&samples, 0.99),
        samples[SAMPLES - 1],
    );
    eprintln!(
        "{READERS} slow report readers admitted in {:.0} ms ({refusals} busy refusals on the way), \
         stalled after {:.0} ms more; GET /v1/keys x{SAMPLES}: p50 {:.1} ms, p99 {:.1} ms, \
         max {:.1} ms (before the readers: p50 {:.1} ms, p99 {:.1} ms)",
        ms(admission),
        ms(stalled),
        ms(p50),
        ms(p99),
        ms(max),
        ms(percentile(&baseline, 0.50)),
        ms(percentile(&baseline, 0.99)),
    );
    assert!(
        p99 < P99_LIMIT,
        "GET /v1/keys p99 {:.1} ms with {READERS} slow report readers (p50 {:.1} ms, max {:.1} ms)",
        ms(p99),
        ms(p50),
        ms(max)
    );

    // Nor do they hold the reports' share: one more report, read at full speed, runs to its end
    // while they are still there, every row once, in order, with the right total.
    let started = Instant::now();
    let csv = tokio::time::timeout(
        GENEROUS,
        app.owner.usage_report(&ReportQuery {
            from: Some(from),
            to: Some(to),
            format: Some(ReportFormat::Csv),
        }),
    )
    .await
    .expect("a full report in time")
    .expect("a full report while slow readers hold theirs open");
    eprintln!(
        "a {} KiB report read in full in {:.0} ms beside them",
        csv.len() / 1024,
        ms(started.elapsed())
    );
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines.first().copied(),
        Some("day,key_id,key_name,allowed,rate_limited,rejected")
    );
    assert_eq!(
        lines.last().copied(),
        Some(format!("total,,,{},0,0", 3 * expected_rows).as_str())
    );
    let rows = &lines[1..lines.len() - 1];
    assert_eq!(rows.len() as i64, expected_rows);
    let day_and_key = |line: &str| -> (String, String) {
        let mut cells = line.split(',');
        (
            cells.next().unwrap().to_owned(),
            cells.next().unwrap().to_owned(),
        )
    };
    for pair in rows.windows(2) {
        assert!(
            day_and_key(pair[0]) < day_and_key(pair[1]),
            "rows in day and key order, each once: {} then {}",
            pair[0],
            pair[1]
        );
    }

    // The readers were still being served (slowly) all along.
    stop.cancel();
    for reader in readers {
        let read = reader.await.expect("reader task");
        assert!(read > 0, "each reader got some of its report");
    }
    app.server.stop().await;
}
