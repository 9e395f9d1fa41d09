//! The desktop side of the chaos soak (`scripts/soak.sh`): a real replica (SQLite file) whose
//! [`SyncEngine`] pushes key operations to one node, round after round, while the soak kills
//! that node (also in the middle of a push request), cuts PostgreSQL and so on.
//!
//! Each round makes operations locally, as the desktop does (keys made offline with their
//! argon2id hash, renames, revocations), notes every operation's id, then syncs until the outbox
//! is empty, retrying after every failure with the same operation ids. The soak then compares
//! the noted ids with what the server applied (`sync_ops`, and one audit entry per change).
//!
//! ```text
//! SOAK_PUSHER_PASSWORD=... cargo run --release -p keyward-replica --example soak_pusher -- \
//!     http://127.0.0.1:18183 desk@soak.test OUT_DIR
//! ```
//!
//! Stops (after draining its outbox, at most `SOAK_PUSH_DRAIN_SECS`, default 120 s) when
//! `OUT_DIR/stop` exists. Writes into OUT_DIR:
//! - `replica.sqlite`: the replica;
//! - `pushed.tsv`: `round  op_id  kind  key_id` for every operation made, before it is pushed;
//! - `status`: `pushing ROUND START_UNIX_MS OPS MEDIAN_ROUND_MS` while a round syncs, `idle
//!   ROUND` between rounds (the soak reads it to kill the node inside a push);
//! - `rounds.log`: one line per sync attempt (round, ok or the error, duration);
//! - `summary.json`: totals at the end.
//!
//! Tunables (environment): `SOAK_PUSH_CREATES` (10), `SOAK_PUSH_UPDATES` (88),
//! `SOAK_PUSH_REVOKES` (2) per round, `SOAK_PUSH_PAUSE_MS` (300) between rounds.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use keyward_client::KeywardClient;
use keyward_core::KeyId;
use keyward_core::api::{CreateKeyRequest, RevokeKeyRequest, UpdateKeyRequest};
use keyward_replica::{KeyFilter, Replica, SyncEngine, SyncError};
use sqlx::Row;

type Error = Box<dyn std::error::Error + Send + Sync>;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

/// Builds the password type `KeywardClient::login` takes (`secrecy::SecretString`) without
/// naming it: this crate does not depend on `secrecy`, and an example needs no new dependency.
fn secret<T: From<String>>(s: String) -> T {
    T::from(s)
}

fn write_status(dir: &Path, line: &str) -> std::io::Result<()> {
    let tmp = dir.join("status.tmp");
    std::fs::write(&tmp, format!("{line}\n"))?;
    std::fs::rename(tmp, dir.join("status"))
}

struct Pusher {
    dir: PathBuf,
    base: String,
    email: String,
    password: String,
    engine: SyncEngine,
    /// A second, read-only look at the replica file: the outbox's operation ids.
    peek: sqlx::SqlitePool,
    pushed: std::fs::File,
    rounds_log: std::fs::File,
    round_ms: Vec<u64>,
    totals: Totals,
}

#[derive(Default, Debug)]
struct Totals {
    rounds: u64,
    ops_made: u64,
    applied: u64,
    rejected: u64,
    dropped: u64,
    failed_syncs: u64,
    failed_push_rounds: u64,
    relogins: u64,
    rejected_codes: std::collections::BTreeMap<String, u64>,
}

async fn login(base: &str, email: &str, password: &str) -> Result<KeywardClient, Error> {
    let (client, _) = KeywardClient::new(base)?
        .login(email, &secret(password.to_owned()))
        .await?;
    Ok(client)
}

impl Pusher {
    fn median_round_ms(&self) -> u64 {
        if self.round_ms.is_empty() {
            return 0;
        }
        let mut v = self.round_ms.clone();
        v.sort_unstable();
        v[v.len() / 2]
    }

    /// Notes every operation now in the outbox that was not noted before.
    async fn note_outbox(&mut self, round: u64, noted: &mut HashSet<String>) -> Result<(), Error> {
        let rows = sqlx::query("SELECT op_id, kind, key_id FROM outbox ORDER BY position")
            .fetch_all(&self.peek)
            .await?;
        for row in rows {
            let op_id: String = row.get(0);
            if noted.insert(op_id.clone()) {
                let kind: String = row.get(1);
                let key_id: String = row.get(2);
                writeln!(self.pushed, "{round}\t{op_id}\t{kind}\t{key_id}")?;
                self.totals.ops_made += 1;
            }
        }
        self.pushed.flush()?;
        Ok(())
    }

    /// Syncs until the outbox is empty (or `deadline`); every failure is logged and retried.
    async fn drain(&mut self, round: u64, deadline: Option<Instant>) -> Result<bool, Error> {
        let mut failed_push = false;
        loop {
            let left = self.engine.replica().outbox_len().await?;
            if left == 0 {
                if failed_push {
                    self.totals.failed_push_rounds += 1;
                }
                return Ok(true);
            }
            if deadline.is_some_and(|d| Instant::now() > d) {
                return Ok(false);
            }
            let started = Instant::now();
            write_status(
                &self.dir,
                &format!(
                    "pushing {round} {} {left} {}",
                    unix_ms(),
                    self.median_round_ms()
                ),
            )?;
            let result = self.engine.sync_once().await;
            let ms = started.elapsed().as_millis() as u64;
            write_status(&self.dir, &format!("idle {round}"))?;
            match result {
                Ok(report) => {
                    self.totals.applied += report.applied as u64;
                    self.totals.rejected += report.rejected as u64;
                    self.totals.dropped += report.dropped as u64;
                    if !failed_push {
                        self.round_ms.push(ms);
                    }
                    writeln!(
                        self.rounds_log,
                        "{} round={round} ok ms={ms} ops={left} applied={} rejected={} dropped={} pulled={}",
                        unix_ms(),
                        report.applied,
                        report.rejected,
                        report.dropped,
                        report.pulled
                    )?;
                }
                Err(e) => {
                    self.totals.failed_syncs += 1;
                    // Whether the push itself failed: nothing of the batch was answered.
                    let still = self.engine.replica().outbox_len().await?;
                    if still == left {
                        failed_push = true;
                    }
                    writeln!(
                        self.rounds_log,
                        "{} round={round} error ms={ms} ops={left} unanswered={still} error={e}",
                        unix_ms()
                    )?;
                    if matches!(e, SyncError::Unauthorized)
                        && let Ok(client) = login(&self.base, &self.email, &self.password).await
                    {
                        self.engine = SyncEngine::new(self.engine.replica().clone(), client);
                        self.totals.relogins += 1;
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
            self.rounds_log.flush()?;
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let (Some(base), Some(email), Some(dir)) = (args.next(), args.next(), args.next()) else {
        eprintln!("usage: soak_pusher BASE_URL EMAIL OUT_DIR (password in SOAK_PUSHER_PASSWORD)");
        std::process::exit(2);
    };
    let password = std::env::var("SOAK_PUSHER_PASSWORD")?;
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir)?;
    let creates = env_num("SOAK_PUSH_CREATES", 10);
    let updates = env_num("SOAK_PUSH_UPDATES", 88) as usize;
    let revokes = env_num("SOAK_PUSH_REVOKES", 2) as usize;
    let pause = Duration::from_millis(env_num("SOAK_PUSH_PAUSE_MS", 300));
    let drain_secs = env_num("SOAK_PUSH_DRAIN_SECS", 120);

    let file = dir.join("replica.sqlite");
    let replica = Replica::open(&file).await?;
    let peek = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(
            sqlx::sqlite::SqliteConnectOptions::new()
                .filename(&file)
                .read_only(true),
        )
        .await?;
    let mut client = None;
    for _ in 0..120 {
        match login(&base, &email, &password).await {
            Ok(c) => {
                client = Some(c);
                break;
            }
            Err(e) => {
                eprintln!("soak_pusher: login failed ({e}); retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    let client = client.ok_or("could not sign in")?;
    let open = |name: &str| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(name))
    };
    let mut p = Pusher {
        base,
        email,
        password,
        engine: SyncEngine::new(replica.clone(), client),
        peek,
        pushed: open("pushed.tsv")?,
        rounds_log: open("rounds.log")?,
        round_ms: Vec::new(),
        totals: Totals::default(),
        dir: dir.clone(),
    };
    // A first pull: the replica learns its organisation.
    p.drain(0, None).await?;
    while p.engine.sync_once().await.is_err() {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let stop = dir.join("stop");
    let mut live: Vec<KeyId> = Vec::new();
    let mut noted = HashSet::new();
    let mut round = 0u64;
    let mut drained = true;
    while !stop.exists() {
        round += 1;
        p.totals.rounds += 1;
        let mut touched = HashSet::new();
        let mut made = Vec::new();
        for i in 0..creates {
            let req = CreateKeyRequest {
                name: format!("desk r{round} k{i}"),
                scopes: Some(vec!["achievements:read".into()]),
                ..Default::default()
            };
            let (key, _token) = replica.create_key_offline(req).await?;
            made.push(key.id);
        }
        // Renames and revocations of keys the server has: each key at most once per round, so
        // no edit waits on another (an unchained batch is one push).
        let mut i = 0;
        let mut idx = (round as usize * 7919) % live.len().max(1);
        while i < updates.min(live.len()) {
            let id = live[idx % live.len()];
            idx += 1;
            if !touched.insert(id) {
                break;
            }
            let req = UpdateKeyRequest {
                name: Some(format!("desk r{round} u{i}")),
                ..Default::default()
            };
            replica.update_key(id, req).await?;
            i += 1;
        }
        let mut revoked = 0;
        while revoked < revokes && live.len() > touched.len() + 10 {
            let id = live[idx % live.len()];
            idx += 1;
            if !touched.insert(id) {
                continue;
            }
            replica.revoke_key(id, RevokeKeyRequest::default()).await?;
            live.retain(|k| *k != id);
            revoked += 1;
        }
        p.note_outbox(round, &mut noted).await?;
        drained = p.drain(round, None).await?;
        // A refused create leaves the key off the server: only keys the server has are edited.
        for id in made {
            if let Some(k) = replica.key(id).await?
                && k.on_server
            {
                live.push(id);
            }
        }
        tokio::time::sleep(pause).await;
    }
    if !drained || replica.outbox_len().await? > 0 {
        drained = p
            .drain(
                round,
                Some(Instant::now() + Duration::from_secs(drain_secs)),
            )
            .await?;
    }
    let left = replica.outbox_len().await?;
    for k in replica.keys(&KeyFilter::default()).await? {
        if let Some(r) = k.rejection {
            *p.totals.rejected_codes.entry(r.code).or_default() += 1;
        }
    }
    let t = &p.totals;
    let summary = serde_json::json!({
        "rounds": t.rounds,
        "ops_made": t.ops_made,
        "applied": t.applied,
        "rejected": t.rejected,
        "dropped": t.dropped,
        "failed_syncs": t.failed_syncs,
        "failed_push_rounds": t.failed_push_rounds,
        "relogins": t.relogins,
        "outbox_left": left,
        "drained": drained,
        "median_round_ms": p.median_round_ms(),
        "rejected_codes": t.rejected_codes,
    });
    std::fs::write(
        dir.join("summary.json"),
        serde_json::to_string_pretty(&summary)?,
    )?;
    println!("{summary}");
    replica.close().await;
    Ok(())
}
