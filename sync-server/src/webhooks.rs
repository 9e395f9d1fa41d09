//! Webhooks: signing (Standard Webhooks), signing secrets encrypted at rest, the event outbox the
//! rest of the server writes to, and the delivery worker.
//!
//! # Sending an event
//!
//! Code that changes something calls [`enqueue`] inside its own transaction:
//!
//! ```ignore
//! let mut tx = state.pool.begin().await?;
//! // ... the change itself ...
//! webhooks::enqueue(&mut tx, org, &WebhookEvent::KeyExpired(KeyExpiredData { .. })).await?;
//! tx.commit().await?;
//! ```
//!
//! It writes one delivery row per enabled endpoint of the organisation whose patterns select the
//! event (a transactional outbox: the event exists if and only if the change committed) and a
//! `NOTIFY` that wakes the delivery workers of every node when the transaction commits.
//!
//! # Delivery
//!
//! [`run_worker`] claims due rows with `FOR UPDATE SKIP LOCKED` plus a lease (safe with several
//! nodes), POSTs the stored body with `webhook-id` (the message id, the same on every attempt),
//! `webhook-timestamp` (this attempt, unix seconds) and `webhook-signature` (`v1,` + base64 of
//! HMAC-SHA256 over `{id}.{timestamp}.{body}`, keyed with the bytes after `whsec_`). A 2xx answer
//! delivers; anything else (other status, timeout, connection error) is retried after
//! `webhook_retry_base_ms` × 6^(n-1) (5 s, 30 s, 3 min, 18 min, 1.8 h by default) until
//! `webhook_max_attempts`, then the delivery is `failed`. Every attempt is logged
//! (`webhook_attempts`).
//!
//! # Secrets
//!
//! A secret is `whsec_` + base64 of 32 random bytes from the OS, shown once in the creation
//! answer. It must stay usable for signing, so it is encrypted, not hashed: ChaCha20-Poly1305
//! with a random nonce per secret and the endpoint id as associated data (a ciphertext copied to
//! another endpoint does not open). The key is `KEYWARD_WEBHOOK_KEY` (32 bytes, base64) when set;
//! otherwise a random key stored in the database (`webhook_keys`, made on first use), which keeps
//! secrets working across restarts and nodes but protects a database dump only when that table is
//! left out: production should set `KEYWARD_WEBHOOK_KEY`. Each endpoint records which key sealed
//! its secret, so setting the variable later leaves existing endpoints working. Secrets are never
//! logged, never returned after creation and never synced to the desktop.

use crate::metrics::ResultLabel;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use chrono::{DateTime, SecondsFormat, Utc};
use futures::StreamExt;
use hmac::{Hmac, Mac};
use keyward_core::OrgId;
use keyward_core::api::FieldError;
use keyward_core::validate::FieldErrors;
use rand::RngCore;
use rand::rngs::OsRng;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sha2::Sha256;
use sqlx::postgres::PgListener;
use sqlx::{PgConnection, PgPool};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use keyward_core::api::webhooks::{
    ALERT_ACKED, ALERT_OPENED, ALERT_RESOLVED, EVENT_TYPES, KEY_CREATED, KEY_EXPIRED, KEY_EXPIRING,
    KEY_REVOKED, KEY_ROTATED, KEY_UNUSED, LIMIT_QUOTA_EXCEEDED, LIMIT_SOFT_THRESHOLD,
    MAX_EVENT_PATTERNS, MAX_WEBHOOKS_PER_ORG, URL_MAX_CHARS, WEBHOOK_TEST, WebhookEvent,
};

use ipnet::IpNet;

use crate::config::Config;
use crate::store::now_micros;
use crate::store::webhooks::{self as store, Attempt, Claimed, NewMessage, Next, SealedSecret};

/// Prefix of a signing secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// The `NOTIFY` channel that wakes delivery workers.
pub const CHANNEL: &str = "keyward_webhooks";
/// Deliveries one node sends at once.
const CONCURRENCY: usize = 16;
/// Growth of the retry delay per attempt.
const BACKOFF_FACTOR: u64 = 6;
/// No retry waits longer than this.
const MAX_RETRY_DELAY_MS: u64 = 24 * 3600 * 1000;
/// The longest error text kept per attempt.
const ERROR_MAX_CHARS: usize = 500;

type HmacSha256 = Hmac<Sha256>;

// --- signing ---

/// A fresh signing secret: its 32 bytes and its `whsec_...` form.
pub fn new_secret() -> ([u8; 32], String) {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    let text = format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes));
    (bytes, text)
}

/// The HMAC key of a `whsec_...` secret: the base64-decoded part after the prefix.
pub fn secret_bytes(secret: &str) -> Option<Vec<u8>> {
    STANDARD.decode(secret.strip_prefix(SECRET_PREFIX)?).ok()
}

/// `v1,` + base64(HMAC-SHA256(key, "{msg_id}.{timestamp}.{body}")): the `webhook-signature`.
pub fn sign(key: &[u8], msg_id: &str, timestamp: i64, body: &str) -> String {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

// --- secrets at rest ---

/// `KEYWARD_WEBHOOK_KEY`: 32 bytes in base64 (standard alphabet, padding optional).
pub fn parse_key(key: &SecretString) -> Option<[u8; 32]> {
    let raw = key.expose_secret().trim();
    let bytes = STANDARD
        .decode(raw)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(raw))
        .ok()?;
    bytes.try_into().ok()
}

/// The keys that encrypt signing secrets: the configured one, else the database's.
#[derive(Clone)]
pub struct Keyring {
    config_key: Option<[u8; 32]>,
    /// The database key once read (it never changes).
    database_key: Arc<tokio::sync::OnceCell<[u8; 32]>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("config_key", &self.config_key.map(|_| "[redacted]"))
            .finish_non_exhaustive()
    }
}

impl Keyring {
    pub fn from_config(config: &Config) -> anyhow::Result<Keyring> {
        let config_key =
            match &config.webhook_key {
                Some(k) => Some(parse_key(k).ok_or_else(|| {
                    anyhow::anyhow!("KEYWARD_WEBHOOK_KEY is not 32 bytes in base64")
                })?),
                None => None,
            };
        Ok(Keyring {
            config_key,
            database_key: Arc::default(),
        })
    }

    async fn database_key(&self, conn: &mut PgConnection) -> anyhow::Result<[u8; 32]> {
        let key = self
            .database_key
            .get_or_try_init(|| async {
                let mut fresh = [0u8; 32];
                OsRng.fill_bytes(&mut fresh);
                let stored = store::database_key(conn, &fresh).await?;
                <[u8; 32]>::try_from(stored.as_slice())
                    .map_err(|_| anyhow::anyhow!("webhook_keys holds a key of the wrong length"))
            })
            .await?;
        Ok(*key)
    }

    /// Encrypts `secret` for endpoint `endpoint`.
    pub async fn seal(
        &self,
        conn: &mut PgConnection,
        endpoint: Uuid,
        secret: &[u8; 32],
    ) -> anyhow::Result<SealedSecret> {
        let (source, key) = match self.config_key {
            Some(k) => ("config", k),
            None => ("database", self.database_key(conn).await?),
        };
        let (nonce, ciphertext) = seal_with(&key, endpoint, secret)?;
        Ok(SealedSecret {
            key: source,
            nonce: nonce.to_vec(),
            ciphertext,
        })
    }

    /// Decrypts the secret of a claimed delivery's endpoint.
    async fn open(&self, conn: &mut PgConnection, d: &Claimed) -> Result<Vec<u8>, String> {
        let key = match d.secret_key.as_str() {
            "config" => self.config_key.ok_or_else(|| {
                "the signing secret was encrypted with KEYWARD_WEBHOOK_KEY, which is not set"
                    .to_owned()
            })?,
            _ => self
                .database_key(conn)
                .await
                .map_err(|_| "the database's webhook key could not be read".to_owned())?,
        };
        open_with(&key, d.endpoint_id, &d.secret_nonce, &d.secret_ciphertext).ok_or_else(|| {
            "the signing secret does not decrypt (was KEYWARD_WEBHOOK_KEY changed?)".to_owned()
        })
    }
}

/// ChaCha20-Poly1305 of `secret` under `key` with a random nonce and the endpoint id as
/// associated data: (nonce, ciphertext with tag).
pub fn seal_with(
    key: &[u8; 32],
    endpoint: Uuid,
    secret: &[u8],
) -> anyhow::Result<([u8; 12], Vec<u8>)> {
    let mut nonce = [0u8; 12];
    OsRng.fill_bytes(&mut nonce);
    let ciphertext = ChaCha20Poly1305::new(key.into())
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: secret,
                aad: endpoint.as_bytes(),
            },
        )
        .map_err(|_| anyhow::anyhow!("encrypting a webhook secret failed"))?;
    Ok((nonce, ciphertext))
}

/// The inverse of [`seal_with`]; `None` for a wrong key, endpoint or tampered ciphertext.
pub fn open_with(
    key: &[u8; 32],
    endpoint: Uuid,
    nonce: &[u8],
    ciphertext: &[u8],
) -> Option<Vec<u8>> {
    if nonce.len() != 12 {
        return None;
    }
    ChaCha20Poly1305::new(key.into())
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: endpoint.as_bytes(),
            },
        )
        .ok()
}

// --- validation ---

fn bad(field: &str, code: &str, message: impl Into<String>) -> FieldError {
    FieldError::new(field, code, message)
}

/// Event patterns: `*` when absent; otherwise 1–50 valid patterns, duplicates dropped.
pub fn validate_events(
    field: &str,
    events: Option<&[String]>,
) -> Result<Vec<String>, Vec<FieldError>> {
    let Some(events) = events else {
        return Ok(vec!["*".to_owned()]);
    };
    if events.is_empty() {
        return Err(vec![bad(
            field,
            "empty",
            "must name at least one event pattern (omit it for every event)",
        )]);
    }
    if events.len() > MAX_EVENT_PATTERNS {
        return Err(vec![bad(
            field,
            "too_many",
            format!("at most {MAX_EVENT_PATTERNS} patterns"),
        )]);
    }
    let mut errs = FieldErrors::new();
    let mut out: Vec<String> = Vec::new();
    for (i, e) in events.iter().enumerate() {
        if keyward_core::api::webhooks::is_valid_pattern(e) {
            if !out.contains(e) {
                out.push(e.clone());
            }
        } else {
            errs.push(bad(
                &format!("{field}[{i}]"),
                "unknown_event_type",
                format!(
                    "must be `*`, an event type or `<category>.*`; event types: {}",
                    EVENT_TYPES.join(", ")
                ),
            ));
        }
    }
    errs.into_result()?;
    Ok(out)
}

// --- the outbox ---

/// What [`enqueue`] queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueued {
    /// The `webhook-id` every delivery of this event carries (empty when no endpoint subscribes).
    pub message_id: String,
    /// Endpoints the event was queued for (0 when none subscribes).
    pub deliveries: u64,
}

#[derive(Serialize)]
struct Envelope<'a> {
    #[serde(rename = "type")]
    event_type: &'a str,
    timestamp: String,
    data: &'a serde_json::Value,
}

fn message(event_type: &str, data: &serde_json::Value, at: DateTime<Utc>) -> (String, String) {
    let message_id = format!("msg_{}", Uuid::now_v7().simple());
    let body = serde_json::to_string(&Envelope {
        event_type,
        timestamp: at.to_rfc3339_opts(SecondsFormat::Millis, true),
        data,
    })
    .expect("a JSON value serialises");
    (message_id, body)
}

async fn queue(
    conn: &mut PgConnection,
    org: OrgId,
    event_type: &str,
    data: &serde_json::Value,
    endpoints: &[Uuid],
) -> Result<Enqueued, sqlx::Error> {
    let at = now_micros();
    let (message_id, body) = message(event_type, data, at);
    let deliveries = store::insert_deliveries(
        conn,
        &NewMessage {
            org,
            message_id: &message_id,
            event_type,
            body: &body,
            created_at: at,
        },
        endpoints,
    )
    .await?;
    if deliveries > 0 {
        // Delivered on commit only, to every node's worker: the rows are visible by then.
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(CHANNEL)
            .execute(conn)
            .await?;
    }
    Ok(Enqueued {
        message_id,
        deliveries,
    })
}

/// Records `event` in the organisation's event log (`events`, read by `GET /v1/events`) and
/// queues it for every enabled endpoint of `org` subscribed to its type, inside the caller's
/// transaction: the event and its deliveries exist if and only if the caller commits. Payloads
/// are the typed structs of [`WebhookEvent`]; none carries a secret.
pub async fn enqueue(
    conn: &mut PgConnection,
    org: OrgId,
    event: &WebhookEvent,
) -> Result<Enqueued, sqlx::Error> {
    // Recorded whether or not any webhook subscribes: the log is what admins read.
    crate::store::events::record(conn, org, event, now_micros()).await?;
    let (event_type, data) = (event.event_type(), event.data());
    let patterns = keyward_core::api::webhooks::patterns_matching(event_type);
    let endpoints = store::subscribed(conn, org, &patterns).await?;
    if endpoints.is_empty() {
        return Ok(Enqueued {
            message_id: String::new(),
            deliveries: 0,
        });
    }
    queue(conn, org, event_type, &data, &endpoints).await
}

/// Queues an event for one endpoint whatever its patterns and enabled flag (`webhook.test`).
pub async fn enqueue_to(
    conn: &mut PgConnection,
    org: OrgId,
    endpoint: Uuid,
    event: &WebhookEvent,
) -> Result<Enqueued, sqlx::Error> {
    queue(conn, org, event.event_type(), &event.data(), &[endpoint]).await
}

// --- destinations ---

/// Why a delivery was not attempted: its destination is not one webhooks may reach.
#[derive(Debug, thiserror::Error)]
#[error(
    "refused: {host} {why}; webhooks are only delivered to public addresses (see KEYWARD_WEBHOOK_ALLOWED_NETWORKS)"
)]
pub struct Refused {
    host: String,
    why: String,
}

/// Resolves endpoint host names for the delivery client and drops every address the policy
/// forbids, so the connection is only ever made to an address that was checked — a name that
/// resolves (or is rebound between two lookups) to 127.0.0.1 or 169.254.169.254 gets no
/// connection at all.
#[derive(Debug, Clone)]
struct CheckedResolver {
    allowed: Arc<[IpNet]>,
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allowed = self.allowed.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<std::net::SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = Vec::new();
            let ok: Vec<std::net::SocketAddr> = found
                .into_iter()
                .filter(|a| {
                    let fine = keyward_core::webhook_url::destination_allowed(a.ip(), &allowed);
                    if !fine {
                        refused.push(a.ip());
                    }
                    fine
                })
                .collect();
            if ok.is_empty() {
                let kinds: Vec<&str> = refused
                    .iter()
                    .filter_map(|ip| keyward_core::webhook_url::forbidden_kind(*ip))
                    .collect();
                return Err(Box::new(Refused {
                    host,
                    why: format!("resolves only to {} addresses", kinds.join("/")),
                })
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(ok.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The delivery client: no redirects, no proxy (the checked address is the one connected to),
/// names resolved through [`CheckedResolver`].
fn delivery_client(config: &WorkerConfig) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(config.timeout)
        .connect_timeout(config.timeout)
        // A redirect is an answer that is not 2xx: a failed attempt, never followed.
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(Arc::new(CheckedResolver {
            allowed: config.allowed_networks.clone(),
        }))
        .user_agent(concat!("Keyward-Webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// An address literal in a stored URL is connected to without a lookup: checked here instead
/// (the allowed networks may have changed since the endpoint was created).
fn literal_refused(url: &str, allowed: &[IpNet]) -> Option<Refused> {
    let url = reqwest::Url::parse(url).ok()?;
    let ip = match url.host()? {
        url::Host::Ipv4(v4) => std::net::IpAddr::V4(v4),
        url::Host::Ipv6(v6) => std::net::IpAddr::V6(v6),
        url::Host::Domain(_) => return None,
    };
    if keyward_core::webhook_url::destination_allowed(ip, allowed) {
        return None;
    }
    Some(Refused {
        host: ip.to_string(),
        why: format!(
            "is a {} address",
            keyward_core::webhook_url::forbidden_kind(ip).unwrap_or("forbidden")
        ),
    })
}

/// The [`Refused`] somewhere in a client error's sources.
fn find_refused(e: &reqwest::Error) -> Option<String> {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(r) = s.downcast_ref::<Refused>() {
            return Some(r.to_string());
        }
        source = s.source();
    }
    None
}

// --- the worker ---

/// The worker's settings, from [`Config`].
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub keyring: Keyring,
    pub retry_base: Duration,
    pub max_attempts: u32,
    pub timeout: Duration,
    pub poll_interval: Duration,
    pub retention_days: u64,
    /// Networks outside the public internet that deliveries may still reach.
    pub allowed_networks: Arc<[IpNet]>,
    /// Deliveries of one organisation in flight at once on this node.
    pub max_in_flight_per_org: usize,
    /// Attempts by result, for `/metrics`.
    pub attempts: Family<ResultLabel, Counter>,
}

impl WorkerConfig {
    pub fn from_config(config: &Config) -> anyhow::Result<WorkerConfig> {
        Ok(WorkerConfig {
            keyring: Keyring::from_config(config)?,
            retry_base: Duration::from_millis(config.webhook_retry_base_ms.max(1)),
            max_attempts: config.webhook_max_attempts.max(1),
            timeout: Duration::from_millis(config.webhook_timeout_ms.max(1)),
            poll_interval: Duration::from_millis(config.webhook_poll_interval_ms.max(10)),
            retention_days: config.webhook_retention_days.max(1),
            allowed_networks: config.webhook_allowed_networks.clone().into(),
            max_in_flight_per_org: config.webhook_max_in_flight_per_org.clamp(1, CONCURRENCY),
            attempts: Family::default(),
        })
    }
}

/// The delay before the attempt after attempt `n` (1-based): base × 6^(n-1), at most a day, plus
/// up to 10% jitter so that retries of many deliveries spread out.
pub fn retry_delay(base: Duration, n: u32) -> Duration {
    let base_ms = u64::try_from(base.as_millis()).unwrap_or(u64::MAX);
    let factor = BACKOFF_FACTOR.saturating_pow(n.saturating_sub(1));
    let ms = base_ms.saturating_mul(factor).min(MAX_RETRY_DELAY_MS);
    let jitter = if ms >= 10 {
        OsRng.next_u64() % (ms / 10)
    } else {
        0
    };
    Duration::from_millis(ms + jitter)
}

/// What an attempt's outcome says: the HTTP status (when there was an answer) and the error.
fn describe(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("timed out after {} ms", timeout.as_millis());
    }
    let kind = if e.is_connect() {
        "connection failed"
    } else if e.is_redirect() {
        "redirect refused"
    } else {
        "request failed"
    };
    // The URL may carry a token in its path: it is left out of the text.
    let mut text = kind.to_owned();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text.chars().take(ERROR_MAX_CHARS).collect()
}

/// Why an attempt got no answer.
enum SendError {
    /// The destination is not one webhooks may reach: logged as refused, never retried.
    Refused(String),
    Failed(String),
}

struct Worker {
    pool: PgPool,
    config: WorkerConfig,
    http: reqwest::Client,
}

/// Delivers due webhooks until `shutdown`: every `poll_interval`, when this or another node
/// enqueues (LISTEN on [`CHANNEL`]), when a retry falls due and whenever a send finishes and
/// frees its slot. At most [`CONCURRENCY`] sends run at once, and at most
/// `max_in_flight_per_org` of them for one organisation, so a tenant whose endpoints hang until
/// the timeout holds a few slots, never all of them.
pub async fn run_worker(pool: PgPool, config: WorkerConfig, shutdown: CancellationToken) {
    let http = match delivery_client(&config) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "webhook worker: cannot build an HTTP client");
            return;
        }
    };
    if config.keyring.config_key.is_none() {
        tracing::info!(
            "KEYWARD_WEBHOOK_KEY is not set: webhook secrets are encrypted with a key kept in the \
             database; set it in production"
        );
    }
    let wake = Arc::new(Notify::new());
    let listener = tokio::spawn(listen(pool.clone(), wake.clone(), shutdown.clone()));
    let worker = Worker { pool, config, http };
    worker.run(&wake, &shutdown).await;
    let _ = listener.await;
}

/// Turns `NOTIFY keyward_webhooks` (sent when an enqueueing transaction commits, on any node)
/// into a wake-up of this node's worker. Polling covers the gaps while it reconnects.
async fn listen(pool: PgPool, wake: Arc<Notify>, shutdown: CancellationToken) {
    loop {
        let connected = async {
            let mut l = PgListener::connect_with(&pool).await?;
            l.listen(CHANNEL).await?;
            Ok::<_, sqlx::Error>(l)
        };
        let mut listener = tokio::select! {
            _ = shutdown.cancelled() => return,
            l = connected => match l {
                Ok(l) => l,
                Err(e) => {
                    tracing::debug!(error = %e, "webhook listener cannot connect; polling");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(5)) => continue,
                    }
                }
            },
        };
        // A reconnect may have missed notifications: look once.
        wake.notify_one();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                n = listener.try_recv() => match n {
                    Ok(Some(_)) => wake.notify_one(),
                    // The connection dropped; try_recv reconnects on the next call.
                    Ok(None) => wake.notify_one(),
                    Err(e) => {
                        tracing::debug!(error = %e, "webhook listener lost its connection");
                        break;
                    }
                },
            }
        }
    }
}

impl Worker {
    async fn run(&self, wake: &Notify, shutdown: &CancellationToken) {
        let mut sending = futures::stream::FuturesUnordered::new();
        // Claims being sent, with their organisation: the per-org counts, and what to give back
        // if the node stops mid-send.
        let mut claims: HashMap<(Uuid, i32), Uuid> = HashMap::new();
        let mut last_retention: Option<Instant> = None;
        loop {
            let free = CONCURRENCY - sending.len();
            // Claim when a quarter of the slots are free (or all), not once per finished send.
            let mut idle_wait = None;
            if free > 0 && (free >= CONCURRENCY / 4 || sending.is_empty()) {
                match self.claim(free, &claims).await {
                    Ok(batch) => {
                        let short = batch.len() < free;
                        for d in batch {
                            claims.insert((d.id, d.attempts), d.org_id);
                            sending.push(self.attempt(d));
                        }
                        if short {
                            idle_wait = Some(self.next_wait(!sending.is_empty()).await);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "claiming webhook deliveries failed");
                        idle_wait = Some(self.config.poll_interval);
                    }
                }
            }
            if shutdown.is_cancelled() {
                break;
            }
            if last_retention.is_none_or(|t| t.elapsed() >= Duration::from_secs(3600)) {
                last_retention = Some(Instant::now());
                self.retention().await;
            }
            // With every slot busy, only a finished send (or the end) matters.
            let wait = idle_wait.unwrap_or(Duration::MAX);
            tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(claim) = sending.next(), if !sending.is_empty() => {
                    claims.remove(&claim);
                }
                _ = wake.notified(), if idle_wait.is_some() => {}
                _ = tokio::time::sleep(wait), if idle_wait.is_some() => {}
            }
        }
        drop(sending);
        // Sends cut short by the stop are due again at once, for whichever node runs next.
        if !claims.is_empty() {
            let unsent: Vec<(Uuid, i32)> = claims.into_keys().collect();
            let released = match self.pool.acquire().await {
                Ok(mut conn) => store::release(&mut conn, &unsent).await,
                Err(e) => Err(e),
            };
            if let Err(e) = released {
                tracing::warn!(error = %e, "releasing unsent webhook deliveries failed");
            }
        }
    }

    /// Claims up to `free` due deliveries, at most `max_in_flight_per_org` per organisation
    /// counting the ones already being sent.
    async fn claim(
        &self,
        free: usize,
        claims: &HashMap<(Uuid, i32), Uuid>,
    ) -> Result<Vec<Claimed>, sqlx::Error> {
        let mut busy: HashMap<Uuid, i32> = HashMap::new();
        for org in claims.values() {
            *busy.entry(*org).or_default() += 1;
        }
        let busy: Vec<(Uuid, i32)> = busy.into_iter().collect();
        let lease_ms = u64::try_from(self.config.timeout.as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(30_000);
        store::claim_due(
            &mut *self.pool.acquire().await?,
            u32::try_from(free).unwrap_or(u32::MAX),
            lease_ms,
            i32::try_from(self.config.max_in_flight_per_org).unwrap_or(i32::MAX),
            &busy,
        )
        .await
    }

    /// How long to wait when nothing more could be claimed: until the next pending delivery is
    /// due, at most the poll interval; while sends run, at least 100 ms (due rows of an
    /// organisation at its cap would otherwise wake the loop at once).
    async fn next_wait(&self, sending: bool) -> Duration {
        let due = match self.pool.acquire().await {
            Ok(mut conn) => store::next_due_ms(&mut conn).await.ok().flatten(),
            Err(_) => None,
        };
        let wait = due.map_or(self.config.poll_interval, |ms| {
            self.config.poll_interval.min(Duration::from_millis(ms))
        });
        if sending {
            wait.max(Duration::from_millis(100))
        } else {
            wait
        }
    }

    /// One attempt of one delivery, recorded; returns the delivery's claim.
    async fn attempt(&self, d: Claimed) -> (Uuid, i32) {
        let claim = (d.id, d.attempts);
        let n = d.attempts + 1;
        let at = now_micros();
        let started = Instant::now();
        let mut refused = false;
        let (http_status, error) = match self.send(&d).await {
            Ok(status) if (200..300).contains(&status) => (Some(i32::from(status)), None),
            Ok(status) => (
                Some(i32::from(status)),
                Some(format!("the endpoint answered HTTP {status}")),
            ),
            Err(SendError::Refused(why)) => {
                refused = true;
                (None, Some(why))
            }
            Err(SendError::Failed(error)) => (None, Some(error)),
        };
        let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let next = if error.is_none() {
            Next::Delivered
        } else if refused || u32::try_from(n).unwrap_or(u32::MAX) >= self.config.max_attempts {
            Next::Failed
        } else {
            let delay = retry_delay(self.config.retry_base, u32::try_from(n).unwrap_or(1));
            Next::RetryInMs(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX))
        };
        let attempt = Attempt {
            delivery_id: d.id,
            attempt: n,
            at,
            http_status,
            error: error.as_deref(),
            duration_ms,
            next,
        };
        let recorded = async {
            let mut tx = self.pool.begin().await?;
            let recorded = store::record_attempt(&mut tx, &attempt).await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(recorded)
        }
        .await;
        match recorded {
            Ok(true) => {}
            Ok(false) => {
                tracing::debug!(delivery = %d.id, "webhook attempt already recorded elsewhere")
            }
            Err(e) => {
                tracing::warn!(delivery = %d.id, error = %e, "recording a webhook attempt failed")
            }
        }
        let result = match next {
            _ if refused => "refused",
            Next::Delivered => "delivered",
            Next::RetryInMs(_) => "retry",
            Next::Failed => "failed",
        };
        self.config
            .attempts
            .get_or_create(&ResultLabel { result })
            .inc();
        match next {
            Next::Delivered => tracing::debug!(
                delivery = %d.id, endpoint = %d.endpoint_id, message_id = %d.message_id,
                attempt = n, status = http_status, duration_ms, "webhook delivered"
            ),
            Next::RetryInMs(ms) => tracing::info!(
                delivery = %d.id, endpoint = %d.endpoint_id, message_id = %d.message_id,
                attempt = n, status = http_status, error = error.as_deref(), retry_in_ms = ms,
                "webhook attempt failed; will retry"
            ),
            Next::Failed => tracing::warn!(
                delivery = %d.id, endpoint = %d.endpoint_id, message_id = %d.message_id,
                attempt = n, status = http_status, error = error.as_deref(),
                "webhook delivery failed; no more retries"
            ),
        }
        claim
    }

    /// POSTs the delivery; the endpoint's status, or why there was none.
    async fn send(&self, d: &Claimed) -> Result<u16, SendError> {
        if let Some(refused) = literal_refused(&d.url, &self.config.allowed_networks) {
            return Err(SendError::Refused(refused.to_string()));
        }
        let secret = {
            let mut conn = self
                .pool
                .acquire()
                .await
                .map_err(|_| SendError::Failed("the database was unavailable".to_owned()))?;
            self.config
                .keyring
                .open(&mut conn, d)
                .await
                .map_err(SendError::Failed)?
        };
        let timestamp = Utc::now().timestamp();
        let signature = sign(&secret, &d.message_id, timestamp, &d.body);
        let res = self
            .http
            .post(&d.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", &d.message_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(d.body.clone())
            .send()
            .await
            .map_err(|e| match find_refused(&e) {
                Some(why) => SendError::Refused(why),
                None => SendError::Failed(describe(&e, self.config.timeout)),
            })?;
        Ok(res.status().as_u16())
    }

    async fn retention(&self) {
        let deleted = match self.pool.acquire().await {
            Ok(mut conn) => store::delete_settled(&mut conn, self.config.retention_days).await,
            Err(e) => Err(e),
        };
        match deleted {
            Ok(n) if n > 0 => tracing::info!(deliveries = n, "old webhook deliveries deleted"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "webhook retention failed"),
        }
        // The event log keeps the same horizon as the deliveries of its events.
        let pruned = match self.pool.acquire().await {
            Ok(mut conn) => {
                crate::store::events::prune(&mut conn, self.config.retention_days).await
            }
            Err(e) => Err(e),
        };
        match pruned {
            Ok(n) if n > 0 => tracing::info!(events = n, "old events deleted"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "event log retention failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification's reference libraries.
    #[test]
    fn signature_known_answer() {
        let key = secret_bytes("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            sign(
                &key,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                r#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn secrets_are_32_random_bytes() {
        let (bytes, text) = new_secret();
        assert!(text.starts_with("whsec_"));
        assert_eq!(secret_bytes(&text).unwrap(), bytes);
        assert_ne!(new_secret().1, text);
    }

    #[test]
    fn events() {
        assert_eq!(validate_events("events", None).unwrap(), ["*"]);
        let given = ["alert.*", "key.expiring", "alert.*"].map(String::from);
        assert_eq!(
            validate_events("events", Some(&given)).unwrap(),
            ["alert.*", "key.expiring"]
        );
        let errs =
            validate_events("events", Some(&["key.expiring".into(), "nope".into()])).unwrap_err();
        assert_eq!(errs[0].field, "events[1]");
        assert_eq!(
            validate_events("events", Some(&[])).unwrap_err()[0].code,
            "empty"
        );
    }

    #[test]
    fn backoff_grows_sixfold() {
        let base = Duration::from_millis(5000);
        let ms = |n| retry_delay(base, n).as_millis() as u64;
        assert!((5000..5500).contains(&ms(1)));
        assert!((30_000..33_000).contains(&ms(2)));
        assert!((180_000..198_000).contains(&ms(3)));
        assert!(ms(40) <= MAX_RETRY_DELAY_MS * 11 / 10);
    }

    #[test]
    fn sealed_secrets_open_only_with_their_key_and_endpoint() {
        let key = [7u8; 32];
        let (secret, _) = new_secret();
        let endpoint = Uuid::now_v7();
        let (nonce, ct) = seal_with(&key, endpoint, &secret).unwrap();
        assert!(!ct.windows(8).any(|w| secret.windows(8).any(|s| s == w)));
        assert_eq!(open_with(&key, endpoint, &nonce, &ct).unwrap(), secret);
        assert!(open_with(&key, Uuid::now_v7(), &nonce, &ct).is_none());
        assert!(open_with(&[8u8; 32], endpoint, &nonce, &ct).is_none());
        let mut tampered = ct.clone();
        tampered[0] ^= 1;
        assert!(open_with(&key, endpoint, &nonce, &tampered).is_none());
        // Two seals of one secret differ (random nonces).
        assert_ne!(seal_with(&key, endpoint, &secret).unwrap().1, ct);
    }

    #[test]
    fn configured_keys_are_32_bytes_of_base64() {
        let with = |k: &str| Config {
            webhook_key: Some(SecretString::from(k.to_owned())),
            ..Config::default()
        };
        assert!(Keyring::from_config(&with(&STANDARD.encode([7u8; 32]))).is_ok());
        assert!(Keyring::from_config(&with("c2hvcnQ=")).is_err());
        assert!(Keyring::from_config(&with("not base64!")).is_err());
        assert!(Keyring::from_config(&Config::default()).is_ok());
    }
}
