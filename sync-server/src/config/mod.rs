//! Configuration: defaults, overlaid by an optional TOML file, overlaid by the environment, read
//! once into a typed [`Config`].
//!
//! Two layers. `raw::RawConfig` is the external format: flat settings with the names, units
//! and defaults operators write (`KEYWARD_REDIS_TIMEOUT_MS`, `webhook_key = "..."`; listed in
//! the README). [`Config`] is what the server reads: settings grouped by responsibility, already
//! parsed (durations, URLs, keys), checked and clamped, built by one conversion
//! (`Config::from_raw`) that refuses what is wrong with a message naming the variable. Nothing
//! downstream parses or clamps a setting again.
//!
//! Secrets stay behind `secrecy` ([`SecretString`], [`SecretKey`]) or types whose `Debug` shows
//! no secret ([`HeadSigner`]): `{:?}` of a [`Config`] never prints one.

mod raw;

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use keyward_core::audit_head::HeadSigner;
use keyward_core::ip::client::ClientIpHeader;
use reqwest::Url;
use secrecy::{ExposeSecret, SecretBox, SecretString};

use raw::RawConfig;

/// The server's settings, parsed and checked. Built by [`Config::load`] (file and environment)
/// or [`Config::for_database`] (defaults, for code and tests, which may then change fields).
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on.
    pub bind: SocketAddr,
    /// A production deployment: settings that only tests and development may leave out are
    /// required (the audit signing key). See [`Config::check`].
    pub production: bool,
    /// `text` or `json` log lines.
    pub log_format: String,
    /// Runs the periodic jobs: alert detection, key notices and usage retention.
    pub background_jobs: bool,
    pub database: DatabaseConfig,
    /// Shared limits; `None`: every node limits locally.
    pub redis: Option<RedisConfig>,
    /// Where `/gw/*` forwards calls.
    pub gateway: GatewayConfig,
    /// Admin sessions.
    pub sessions: SessionConfig,
    /// Failed sign-ins per email and client network (4x that per network).
    pub login: FailureLimit,
    /// The argon2 hashers.
    pub argon2: Argon2Config,
    /// Failed cold checks of one key id per window before further ones are throttled.
    pub cold_failures: FailureLimit,
    /// Per-key and per-organisation key settings.
    pub keys: KeysConfig,
    /// The verified-key cache.
    pub cache: KeyCacheConfig,
    /// Keys the fast verifier; `None`: argon2 once per key per node after each start.
    pub verifier_key: Option<SecretKey>,
    /// Usage counting, flushing and retention.
    pub usage: UsageConfig,
    /// Webhook delivery and the encryption of signing secrets.
    pub webhooks: WebhooksConfig,
    /// Signs each organisation's audit chain head; `None`: unsigned (refused in production).
    pub audit_signer: Option<Arc<HeadSigner>>,
    /// Whose word on a client's address is believed.
    pub client_ip: ClientIpConfig,
    /// HTTP connection limits and timeouts.
    pub connections: ConnectionLimits,
}

#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// PostgreSQL connection string (`DATABASE_URL`).
    pub url: SecretString,
    /// Pool size.
    pub max_connections: u32,
    /// Pool connections usage reports may hold at once (at least one, at most the pool).
    pub report_permits: usize,
}

#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `REDIS_URL`.
    pub url: SecretString,
    /// Multiplexed connections per node (at least one).
    pub pool_size: usize,
    /// A slower call counts as a failure: the node falls back to local limits.
    pub timeout: Duration,
    /// How often a node in fallback checks whether Redis is back.
    pub probe_interval: Duration,
}

impl RedisConfig {
    /// Redis at `url` with the default pool, timeout and probe interval.
    pub fn new(url: SecretString) -> RedisConfig {
        redis(&RawConfig {
            redis_url: Some(url),
            ..RawConfig::default()
        })
        .expect("a URL is set")
    }
}

#[derive(Clone)]
pub struct GatewayConfig {
    /// Where `live` keys' calls go (an http(s) URL with a host).
    pub live: Option<Url>,
    /// Where `test` keys' calls go; `None`: refused, never sent to `live`.
    pub test: Option<Url>,
    /// Time to the upstream's response headers.
    pub timeout: Duration,
}

/// Shows the upstreams without a password they may carry (`https://user:pass@host`).
impl fmt::Debug for GatewayConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = |url: &Option<Url>| {
            url.as_ref().map(|url| {
                let mut url = url.clone();
                if url.password().is_some() {
                    let _ = url.set_password(Some("REDACTED"));
                }
                url.to_string()
            })
        };
        f.debug_struct("GatewayConfig")
            .field("live", &shown(&self.live))
            .field("test", &shown(&self.test))
            .field("timeout", &self.timeout)
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Lifetime of an admin session.
    pub ttl: Duration,
    /// A session unused this long ends, whatever its lifetime (at least a second).
    pub idle: Duration,
}

/// At most `per_window` failures per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureLimit {
    pub per_window: u32,
    pub window: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Config {
    /// Concurrent runs (at least one; by default the number of CPUs).
    pub permits: usize,
    /// Cold verifications that may wait for a run before answering 503.
    pub max_queue: usize,
    /// Runs one organisation may hold at once (between one and `permits`).
    pub per_org: usize,
}

#[derive(Debug, Clone)]
pub struct KeysConfig {
    /// Keys (not revoked) an organisation may hold.
    pub max_per_org: u64,
    /// Networks remembered per key; past it the least recently seen is forgotten.
    pub max_networks: u64,
    /// Refuse key ids that exist nowhere from an in-memory filter, without a query.
    pub filter: bool,
    /// How often passed expiries and delayed revocations are looked for (at least a second).
    pub events_interval: Duration,
}

#[derive(Debug, Clone)]
pub struct KeyCacheConfig {
    /// Records (and each side cache) held at most.
    pub capacity: u64,
    /// A found key's record is current this long (a safety net behind LISTEN/NOTIFY).
    pub ttl: Duration,
    /// How long an unknown key id is remembered as unknown.
    pub negative_ttl: Duration,
    /// While PostgreSQL cannot be reached, a record known current within this long keeps
    /// answering from memory. Zero: never (503 instead).
    pub fail_static: Duration,
}

#[derive(Debug, Clone)]
pub struct UsageConfig {
    /// Counting calls for analytics (quotas count either way).
    pub recording: bool,
    /// How often counted usage is written (at least 10 ms).
    pub flush_interval: Duration,
    pub retention: UsageRetention,
    /// How often the retention job runs (at least a second).
    pub retention_interval: Duration,
}

/// How long each usage rollup is kept (each at least one of its units: an hour, a day, a day).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageRetention {
    pub minute: Duration,
    pub hour: Duration,
    pub day: Duration,
}

#[derive(Debug, Clone)]
pub struct WebhooksConfig {
    /// Encrypts signing secrets at rest; `None`: a random key kept in the database.
    pub key: Option<SecretKey>,
    /// Delay before the first retry; each later one waits 6x longer (at least 1 ms).
    pub retry_base: Duration,
    /// Attempts per delivery, the first included (at least one).
    pub max_attempts: u32,
    /// How long one attempt may take (at least 1 ms).
    pub timeout: Duration,
    /// How often the worker looks for due deliveries when nothing wakes it (at least 10 ms).
    pub poll_interval: Duration,
    /// Settled deliveries (and the event log) are deleted after this long (whole days, at
    /// least one).
    pub retention: Duration,
    /// Networks outside the public internet that deliveries may still reach.
    pub allowed_networks: Vec<IpNet>,
    /// Deliveries of one organisation in flight at once on a node (at least one).
    pub max_in_flight_per_org: usize,
    /// `POST /v1/webhooks/{id}/test` calls per organisation and minute.
    pub tests_per_minute: u32,
}

#[derive(Debug, Clone)]
pub struct ClientIpConfig {
    /// Peers whose `header` is believed to carry the client address.
    pub trusted_proxies: Vec<IpNet>,
    /// The one header those proxies write the chain of addresses into.
    pub header: ClientIpHeader,
    /// Callers of `POST /v1/verify` whose `client_ip` is believed.
    pub verify_trusted_callers: Vec<IpNet>,
}

/// The connection limits of [`crate::connections::serve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// A request's headers must arrive within this long of its first byte (at least 1 ms).
    pub header_read_timeout: Duration,
    /// A request's body must arrive within this long of its headers, in total (at least 1 ms).
    pub body_timeout: Duration,
    /// A connection with no request under way is closed after this long (at least a second).
    pub idle_timeout: Duration,
    /// Open connections (at least one, at most a semaphore's permits).
    pub max_connections: usize,
    /// On shutdown, how long in-flight requests may take (zero: close at once).
    pub shutdown_grace: Duration,
}

/// A 32-byte key (`KEYWARD_WEBHOOK_KEY`, `KEYWARD_VERIFIER_KEY`), decoded once: wiped when its
/// last copy is dropped, `[REDACTED]` in `Debug`.
#[derive(Clone)]
pub struct SecretKey(Arc<SecretBox<[u8; 32]>>);

impl SecretKey {
    pub fn new(bytes: [u8; 32]) -> SecretKey {
        SecretKey::from_slice(&bytes).expect("32 bytes")
    }

    fn from_slice(bytes: &[u8]) -> Option<SecretKey> {
        let bytes: &[u8; 32] = bytes.try_into().ok()?;
        Some(SecretKey(Arc::new(SecretBox::init_with_mut(
            |key: &mut [u8; 32]| key.copy_from_slice(bytes),
        ))))
    }
}

impl ExposeSecret<[u8; 32]> for SecretKey {
    fn expose_secret(&self) -> &[u8; 32] {
        self.0.expose_secret()
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey([REDACTED])")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid configuration: {0}")]
    Invalid(#[from] Box<figment::Error>),
    #[error("DATABASE_URL is not set (environment or `database_url` in the config file)")]
    MissingDatabaseUrl,
    #[error("KEYWARD_UPSTREAM {0:?} is not an http(s) URL with a host")]
    BadUpstream(String),
    #[error("KEYWARD_UPSTREAM_TEST {0:?} is not an http(s) URL with a host")]
    BadUpstreamTest(String),
    #[error("config file {0} does not exist")]
    MissingFile(String),
    #[error("KEYWARD_WEBHOOK_KEY is not 32 bytes in base64")]
    BadWebhookKey,
    #[error("KEYWARD_VERIFIER_KEY is not 32 bytes in base64")]
    BadVerifierKey,
    #[error(
        "KEYWARD_AUDIT_SIGNING_KEY {0}: it must be a 32-byte ed25519 seed in base64 (`openssl rand -base64 32`)"
    )]
    BadAuditSigningKey(keyward_core::audit_head::HeadKeyError),
    #[error(
        "KEYWARD_AUDIT_SIGNING_KEY is required in production (KEYWARD_PRODUCTION=true): without it a database writer can truncate the audit log unnoticed; set it to a 32-byte ed25519 seed in base64 (`openssl rand -base64 32`), kept outside the database"
    )]
    AuditSigningKeyRequired,
}

impl Config {
    /// Loads defaults ← TOML file (if given) ← environment, and checks the result.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        Config::from_raw(RawConfig::load(file)?)
    }

    /// The defaults with `database_url`: for tests and tools that build a configuration in
    /// code (and may then change its fields).
    pub fn for_database(database_url: impl Into<String>) -> Config {
        Config::from_raw(RawConfig {
            database_url: Some(SecretString::from(database_url.into())),
            ..RawConfig::default()
        })
        .expect("the defaults are a valid configuration")
    }

    /// The one conversion from the external format: parses, checks and clamps every setting.
    pub(crate) fn from_raw(raw: RawConfig) -> Result<Config, ConfigError> {
        let redis = redis(&raw);
        let Some(database_url) = raw.database_url else {
            return Err(ConfigError::MissingDatabaseUrl);
        };
        let live = upstream(&raw.upstream).map_err(ConfigError::BadUpstream)?;
        let test = upstream(&raw.upstream_test).map_err(ConfigError::BadUpstreamTest)?;
        let webhook_key = match &raw.webhook_key {
            Some(key) => Some(parse_key(key).ok_or(ConfigError::BadWebhookKey)?),
            None => None,
        };
        let verifier_key = match &raw.verifier_key {
            Some(key) => Some(parse_key(key).ok_or(ConfigError::BadVerifierKey)?),
            None => None,
        };
        let audit_signer = match &raw.audit_signing_key {
            Some(seed) => Some(Arc::new(
                HeadSigner::from_base64(seed.expose_secret())
                    .map_err(ConfigError::BadAuditSigningKey)?,
            )),
            None => None,
        };

        let pool = raw.db_max_connections.max(1);
        let permits = raw
            .argon2_max_concurrent
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
            .max(1);
        let ms = Duration::from_millis;
        let secs = Duration::from_secs;
        let hours = |n: u64| secs(n.max(1).saturating_mul(3600));
        let days = |n: u64| secs(n.max(1).saturating_mul(86_400));
        let config = Config {
            bind: raw.bind,
            production: raw.production,
            log_format: raw.log_format,
            background_jobs: raw.background_jobs,
            database: DatabaseConfig {
                url: database_url,
                max_connections: raw.db_max_connections,
                report_permits: raw.report_db_connections.unwrap_or(pool / 4).clamp(1, pool)
                    as usize,
            },
            redis,
            gateway: GatewayConfig {
                live,
                test,
                timeout: ms(raw.upstream_timeout_ms.max(1)),
            },
            sessions: SessionConfig {
                ttl: secs(raw.session_ttl_secs),
                idle: secs(raw.session_idle_secs.max(1)),
            },
            login: FailureLimit {
                per_window: raw.login_failures_per_window,
                window: secs(raw.login_failure_window_secs),
            },
            argon2: Argon2Config {
                permits,
                max_queue: raw.argon2_max_queue,
                per_org: raw
                    .argon2_max_per_org
                    .unwrap_or(permits / 2)
                    .clamp(1, permits),
            },
            cold_failures: FailureLimit {
                per_window: raw.cold_failures_per_window,
                window: secs(raw.cold_failure_window_secs),
            },
            keys: KeysConfig {
                max_per_org: raw.max_keys_per_org,
                max_networks: raw.max_networks_per_key,
                filter: raw.key_filter,
                events_interval: secs(raw.key_events_interval_secs.max(1)),
            },
            cache: KeyCacheConfig {
                capacity: raw.key_cache_capacity,
                ttl: secs(raw.key_cache_ttl_secs),
                negative_ttl: secs(raw.negative_cache_ttl_secs),
                fail_static: secs(raw.fail_static_secs),
            },
            verifier_key,
            usage: UsageConfig {
                recording: raw.usage_recording,
                flush_interval: ms(raw.usage_flush_interval_ms.max(10)),
                retention: UsageRetention {
                    minute: hours(raw.usage_minute_retention_hours),
                    hour: days(raw.usage_hour_retention_days),
                    day: days(raw.usage_day_retention_days),
                },
                retention_interval: secs(raw.usage_retention_interval_secs.max(1)),
            },
            webhooks: WebhooksConfig {
                key: webhook_key,
                retry_base: ms(raw.webhook_retry_base_ms.max(1)),
                max_attempts: raw.webhook_max_attempts.max(1),
                timeout: ms(raw.webhook_timeout_ms.max(1)),
                poll_interval: ms(raw.webhook_poll_interval_ms.max(10)),
                retention: days(raw.webhook_retention_days),
                allowed_networks: raw.webhook_allowed_networks,
                max_in_flight_per_org: raw.webhook_max_in_flight_per_org.max(1),
                tests_per_minute: raw.webhook_tests_per_minute,
            },
            audit_signer,
            client_ip: ClientIpConfig {
                trusted_proxies: raw.trusted_proxies,
                header: raw.client_ip_header,
                verify_trusted_callers: raw.verify_trusted_callers,
            },
            connections: ConnectionLimits {
                header_read_timeout: ms(raw.header_read_timeout_ms.max(1)),
                body_timeout: ms(raw.body_timeout_ms.max(1)),
                idle_timeout: secs(raw.idle_timeout_secs.max(1)),
                max_connections: raw
                    .max_connections
                    .clamp(1, tokio::sync::Semaphore::MAX_PERMITS),
                shutdown_grace: ms(raw.shutdown_grace_ms),
            },
        };
        config.check()?;
        Ok(config)
    }

    /// The rules that bind settings together, which a configuration changed in code can still
    /// break: `Config::from_raw` checks them, and so does [`crate::serve`] before it starts.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.production && self.audit_signer.is_none() {
            return Err(ConfigError::AuditSigningKeyRequired);
        }
        Ok(())
    }
}

/// Redis from `redis_url` and its settings; `None` without a URL.
fn redis(raw: &RawConfig) -> Option<RedisConfig> {
    Some(RedisConfig {
        url: raw.redis_url.clone()?,
        pool_size: raw.redis_pool_size.max(1),
        timeout: Duration::from_millis(raw.redis_timeout_ms.max(1)),
        probe_interval: Duration::from_millis(raw.redis_probe_interval_ms.max(10)),
    })
}

/// An upstream URL: http(s) with a host. The text as given when it is not one.
fn upstream(text: &Option<String>) -> Result<Option<Url>, String> {
    let Some(text) = text else { return Ok(None) };
    match Url::parse(text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => Ok(Some(url)),
        _ => Err(text.clone()),
    }
}

/// A 32-byte key in base64 (standard alphabet, padding optional, surrounding spaces ignored).
/// `None` when it is not base64 or not 32 bytes.
fn parse_key(key: &SecretString) -> Option<SecretKey> {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
    use secrecy::zeroize::Zeroize;
    let text = key.expose_secret().trim();
    let mut bytes = STANDARD
        .decode(text)
        .or_else(|_| STANDARD_NO_PAD.decode(text))
        .ok()?;
    let key = SecretKey::from_slice(&bytes);
    bytes.zeroize();
    key
}

#[cfg(test)]
// figment's Jail closures return its large error type by design.
#[allow(clippy::result_large_err)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};

    use super::*;

    const DB: &str = "postgres://x@localhost/db";
    const SEED: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    fn raw() -> RawConfig {
        RawConfig {
            database_url: Some(SecretString::from(DB)),
            ..RawConfig::default()
        }
    }

    fn refused(raw: RawConfig) -> ConfigError {
        Config::from_raw(raw).expect_err("refused")
    }

    #[test]
    fn the_defaults_convert() {
        let c = Config::from_raw(raw()).expect("converts");
        assert_eq!(c.bind, SocketAddr::from(([127, 0, 0, 1], 8080)));
        assert!(!c.production && c.background_jobs);
        assert_eq!(c.log_format, "text");
        assert_eq!(c.database.url.expose_secret(), DB);
        assert_eq!(c.database.max_connections, 16);
        assert_eq!(c.database.report_permits, 4, "a quarter of the pool");
        assert!(c.redis.is_none());
        assert!(c.gateway.live.is_none() && c.gateway.test.is_none());
        assert_eq!(c.gateway.timeout, Duration::from_secs(30));
        assert_eq!(c.sessions.ttl, Duration::from_secs(12 * 3600));
        assert_eq!(c.sessions.idle, Duration::from_secs(30 * 60));
        assert_eq!(
            c.login,
            FailureLimit {
                per_window: 5,
                window: Duration::from_secs(900)
            }
        );
        assert_eq!(
            c.cold_failures,
            FailureLimit {
                per_window: 10,
                window: Duration::from_secs(60)
            }
        );
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        assert_eq!(
            c.argon2,
            Argon2Config {
                permits: cpus,
                max_queue: 64,
                per_org: (cpus / 2).max(1),
            }
        );
        assert_eq!(c.keys.max_per_org, 100_000);
        assert_eq!(c.keys.max_networks, 256);
        assert!(c.keys.filter);
        assert_eq!(c.keys.events_interval, Duration::from_secs(30));
        assert_eq!(c.cache.capacity, 200_000);
        assert_eq!(c.cache.ttl, Duration::from_secs(300));
        assert_eq!(c.cache.negative_ttl, Duration::from_secs(10));
        assert_eq!(c.cache.fail_static, Duration::from_secs(60));
        assert!(c.verifier_key.is_none());
        assert!(c.usage.recording);
        assert_eq!(c.usage.flush_interval, Duration::from_secs(1));
        assert_eq!(
            c.usage.retention,
            UsageRetention {
                minute: Duration::from_secs(48 * 3600),
                hour: Duration::from_secs(90 * 86_400),
                day: Duration::from_secs(730 * 86_400),
            }
        );
        assert_eq!(c.usage.retention_interval, Duration::from_secs(3600));
        let w = &c.webhooks;
        assert!(w.key.is_none());
        assert_eq!(w.retry_base, Duration::from_secs(5));
        assert_eq!(w.max_attempts, 6);
        assert_eq!(w.timeout, Duration::from_secs(10));
        assert_eq!(w.poll_interval, Duration::from_millis(500));
        assert_eq!(w.retention, Duration::from_secs(30 * 86_400));
        assert!(w.allowed_networks.is_empty());
        assert_eq!((w.max_in_flight_per_org, w.tests_per_minute), (4, 10));
        assert!(c.audit_signer.is_none());
        assert!(c.client_ip.trusted_proxies.is_empty());
        assert!(c.client_ip.verify_trusted_callers.is_empty());
        assert_eq!(c.client_ip.header, ClientIpHeader::XForwardedFor);
        assert_eq!(
            c.connections,
            ConnectionLimits {
                header_read_timeout: Duration::from_secs(10),
                body_timeout: Duration::from_secs(30),
                idle_timeout: Duration::from_secs(60),
                max_connections: 1024,
                shutdown_grace: Duration::from_secs(10),
            }
        );
        // `for_database` is the same conversion.
        let d = Config::for_database(DB);
        assert_eq!(d.connections, c.connections);
        assert_eq!(d.database.url.expose_secret(), DB);
    }

    #[test]
    fn values_that_would_stop_the_server_are_raised_once_here() {
        let c = Config::from_raw(RawConfig {
            redis_url: Some(SecretString::from("redis://localhost")),
            redis_pool_size: 0,
            redis_timeout_ms: 0,
            redis_probe_interval_ms: 0,
            upstream_timeout_ms: 0,
            db_max_connections: 0,
            session_idle_secs: 0,
            argon2_max_concurrent: Some(0),
            argon2_max_per_org: Some(7),
            usage_flush_interval_ms: 0,
            usage_minute_retention_hours: 0,
            usage_hour_retention_days: 0,
            usage_day_retention_days: 0,
            usage_retention_interval_secs: 0,
            key_events_interval_secs: 0,
            webhook_retry_base_ms: 0,
            webhook_max_attempts: 0,
            webhook_timeout_ms: 0,
            webhook_poll_interval_ms: 0,
            webhook_retention_days: 0,
            webhook_max_in_flight_per_org: 0,
            header_read_timeout_ms: 0,
            body_timeout_ms: 0,
            idle_timeout_secs: 0,
            max_connections: 0,
            shutdown_grace_ms: 0,
            ..raw()
        })
        .expect("converts");
        let redis = c.redis.expect("configured");
        assert_eq!(redis.pool_size, 1);
        assert_eq!(redis.timeout, Duration::from_millis(1));
        assert_eq!(redis.probe_interval, Duration::from_millis(10));
        assert_eq!(c.gateway.timeout, Duration::from_millis(1));
        assert_eq!(c.database.report_permits, 1);
        assert_eq!(c.sessions.idle, Duration::from_secs(1));
        assert_eq!((c.argon2.permits, c.argon2.per_org), (1, 1));
        assert_eq!(c.usage.flush_interval, Duration::from_millis(10));
        assert_eq!(
            c.usage.retention,
            UsageRetention {
                minute: Duration::from_secs(3600),
                hour: Duration::from_secs(86_400),
                day: Duration::from_secs(86_400),
            }
        );
        assert_eq!(c.usage.retention_interval, Duration::from_secs(1));
        assert_eq!(c.keys.events_interval, Duration::from_secs(1));
        let w = &c.webhooks;
        assert_eq!(w.retry_base, Duration::from_millis(1));
        assert_eq!(w.max_attempts, 1);
        assert_eq!(w.timeout, Duration::from_millis(1));
        assert_eq!(w.poll_interval, Duration::from_millis(10));
        assert_eq!(w.retention, Duration::from_secs(86_400));
        assert_eq!(w.max_in_flight_per_org, 1);
        assert_eq!(
            c.connections,
            ConnectionLimits {
                header_read_timeout: Duration::from_millis(1),
                body_timeout: Duration::from_millis(1),
                idle_timeout: Duration::from_secs(1),
                max_connections: 1,
                shutdown_grace: Duration::ZERO,
            }
        );

        let huge = Config::from_raw(RawConfig {
            max_connections: usize::MAX,
            usage_day_retention_days: u64::MAX,
            ..raw()
        })
        .expect("converts");
        assert_eq!(
            huge.connections.max_connections,
            tokio::sync::Semaphore::MAX_PERMITS
        );
        assert_eq!(huge.usage.retention.day, Duration::from_secs(u64::MAX));
    }

    #[test]
    fn report_permits_are_a_share_of_the_pool() {
        let permits = |pool: u32, share: Option<u32>| {
            Config::from_raw(RawConfig {
                db_max_connections: pool,
                report_db_connections: share,
                ..raw()
            })
            .expect("converts")
            .database
            .report_permits
        };
        assert_eq!(permits(16, None), 4);
        assert_eq!(permits(2, None), 1);
        assert_eq!(permits(2, Some(6)), 2);
        assert_eq!(permits(16, Some(6)), 6);
    }

    #[test]
    fn argon2_per_org_is_half_the_hashers_within_one_and_all() {
        let argon2 = |permits: usize, per_org: Option<usize>| {
            Config::from_raw(RawConfig {
                argon2_max_concurrent: Some(permits),
                argon2_max_per_org: per_org,
                ..raw()
            })
            .expect("converts")
            .argon2
        };
        assert_eq!(argon2(8, None).per_org, 4);
        assert_eq!(argon2(1, None).per_org, 1);
        assert_eq!(argon2(8, Some(20)).per_org, 8);
        assert_eq!(argon2(8, Some(0)).per_org, 1);
        assert_eq!(argon2(8, Some(3)).permits, 8);
    }

    #[test]
    fn each_setting_that_cannot_be_used_is_refused_by_name() {
        let err = refused(RawConfig {
            database_url: None,
            ..raw()
        });
        assert!(matches!(err, ConfigError::MissingDatabaseUrl), "{err}");
        assert!(err.to_string().contains("DATABASE_URL"), "{err}");

        for bad in ["not a url", "ftp://upstream.internal", "unix:/run/up.sock"] {
            let err = refused(RawConfig {
                upstream: Some(bad.to_owned()),
                ..raw()
            });
            assert!(
                matches!(err, ConfigError::BadUpstream(ref u) if u == bad),
                "{err}"
            );
            assert!(err.to_string().starts_with("KEYWARD_UPSTREAM "), "{err}");
            let err = refused(RawConfig {
                upstream_test: Some(bad.to_owned()),
                ..raw()
            });
            assert!(
                matches!(err, ConfigError::BadUpstreamTest(ref u) if u == bad),
                "{err}"
            );
            assert!(
                err.to_string().starts_with("KEYWARD_UPSTREAM_TEST "),
                "{err}"
            );
        }

        for bad in ["c2hvcnQ=", "not base64!", ""] {
            let err = refused(RawConfig {
                webhook_key: Some(SecretString::from(bad)),
                ..raw()
            });
            assert!(matches!(err, ConfigError::BadWebhookKey), "{err}");
            assert_eq!(
                err.to_string(),
                "KEYWARD_WEBHOOK_KEY is not 32 bytes in base64"
            );
            let err = refused(RawConfig {
                verifier_key: Some(SecretString::from(bad)),
                ..raw()
            });
            assert!(matches!(err, ConfigError::BadVerifierKey), "{err}");
            assert_eq!(
                err.to_string(),
                "KEYWARD_VERIFIER_KEY is not 32 bytes in base64"
            );
        }

        let err = refused(RawConfig {
            audit_signing_key: Some(SecretString::from("c2hvcnQ=")),
            ..raw()
        });
        assert!(matches!(err, ConfigError::BadAuditSigningKey(_)), "{err}");
        assert!(err.to_string().contains("is 5 bytes, not 32"), "{err}");

        let err = refused(RawConfig {
            production: true,
            ..raw()
        });
        assert!(matches!(err, ConfigError::AuditSigningKeyRequired), "{err}");
        assert!(
            err.to_string()
                .contains("KEYWARD_AUDIT_SIGNING_KEY is required in production"),
            "{err}"
        );
    }

    #[test]
    fn urls_and_keys_are_parsed_once_into_their_types() {
        let key = [7u8; 32];
        let c = Config::from_raw(RawConfig {
            upstream: Some("https://api.internal/v1".to_owned()),
            upstream_test: Some("http://sandbox.internal:8081".to_owned()),
            webhook_key: Some(SecretString::from(STANDARD.encode(key))),
            verifier_key: Some(SecretString::from(STANDARD_NO_PAD.encode([9u8; 32]))),
            audit_signing_key: Some(SecretString::from(SEED)),
            production: true,
            ..raw()
        })
        .expect("converts");
        let live = c.gateway.live.as_ref().expect("live");
        assert_eq!(
            (live.host_str(), live.path()),
            (Some("api.internal"), "/v1")
        );
        assert_eq!(c.gateway.test.as_ref().and_then(Url::port), Some(8081));
        assert_eq!(
            c.webhooks.key.as_ref().map(|k| *k.expose_secret()),
            Some(key)
        );
        assert_eq!(
            c.verifier_key.as_ref().map(|k| *k.expose_secret()),
            Some([9u8; 32])
        );
        assert_eq!(
            c.audit_signer.as_ref().map(|s| s.public_key()),
            Some(HeadSigner::from_base64(SEED).unwrap().public_key())
        );
    }

    #[test]
    fn a_configuration_changed_in_code_is_checked_before_serving() {
        let mut c = Config::for_database(DB);
        assert!(c.check().is_ok());
        c.production = true;
        assert!(matches!(
            c.check(),
            Err(ConfigError::AuditSigningKeyRequired)
        ));
        c.audit_signer = Some(Arc::new(HeadSigner::from_seed(&[1; 32])));
        assert!(c.check().is_ok());
    }

    #[test]
    fn debug_shows_no_secret() {
        let webhook_key = STANDARD.encode([0x11u8; 32]);
        let verifier_key = STANDARD.encode([0x22u8; 32]);
        let c = Config::from_raw(RawConfig {
            database_url: Some(SecretString::from("postgres://kw:db-password@db/kw")),
            redis_url: Some(SecretString::from("redis://:redis-password@redis:6379")),
            upstream: Some("https://gw:upstream-password@api.internal/v1".to_owned()),
            upstream_test: Some("https://gw:test-password@sandbox.internal".to_owned()),
            webhook_key: Some(SecretString::from(webhook_key.clone())),
            verifier_key: Some(SecretString::from(verifier_key.clone())),
            audit_signing_key: Some(SecretString::from(SEED)),
            ..raw()
        })
        .expect("converts");
        let shown = format!("{c:?} {c:#?}");
        for secret in [
            "db-password",
            "redis-password",
            "upstream-password",
            "test-password",
            webhook_key.as_str(),
            verifier_key.as_str(),
            SEED,
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        // The byte values do not show either (`[17, 17, ...]`).
        assert!(
            !shown.contains("17, 17") && !shown.contains("34, 34"),
            "{shown}"
        );
        // What is not secret still shows.
        assert!(shown.contains("api.internal"), "{shown}");
        assert!(shown.contains("SecretKey([REDACTED])"), "{shown}");
    }

    #[test]
    fn redis_config_new_has_the_defaults() {
        let r = RedisConfig::new(SecretString::from("redis://localhost"));
        assert_eq!(r.url.expose_secret(), "redis://localhost");
        assert_eq!(r.pool_size, 2);
        assert_eq!(r.timeout, Duration::from_millis(50));
        assert_eq!(r.probe_interval, Duration::from_millis(250));
    }

    #[test]
    fn file_then_environment() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "keyward.toml",
                "bind = \"127.0.0.1:9000\"\nsession_ttl_secs = 60\n\
                 upstream = \"http://file.internal\"\n",
            )?;
            jail.set_env("DATABASE_URL", DB);
            jail.set_env("KEYWARD_SESSION_TTL_SECS", "120");
            jail.set_env("KEYWARD_SESSION_IDLE_SECS", "90");
            jail.set_env("KEYWARD_WEBHOOK_RETRY_BASE_MS", "250");
            jail.set_env("REDIS_URL", "redis://localhost:6380");
            jail.set_env("KEYWARD_REDIS_TIMEOUT_MS", "75");
            let c = Config::load(Some(Path::new("keyward.toml"))).expect("loads");
            assert_eq!(c.bind.port(), 9000);
            assert_eq!(c.sessions.ttl, Duration::from_secs(120));
            assert_eq!(c.sessions.idle, Duration::from_secs(90));
            assert_eq!(c.webhooks.retry_base, Duration::from_millis(250));
            assert_eq!(
                c.gateway.live.as_ref().and_then(Url::host_str),
                Some("file.internal")
            );
            let redis = c.redis.expect("REDIS_URL is set");
            assert_eq!(redis.url.expose_secret(), "redis://localhost:6380");
            assert_eq!(redis.timeout, Duration::from_millis(75));
            assert!(c.webhooks.allowed_networks.is_empty());
            jail.set_env("KEYWARD_WEBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8, ::1");
            let c = Config::load(None).expect("loads");
            assert_eq!(
                c.webhooks.allowed_networks,
                [
                    "127.0.0.0/8".parse::<IpNet>().unwrap(),
                    "::1/128".parse().unwrap()
                ]
            );
            jail.set_env("KEYWARD_WEBHOOK_ALLOWED_NETWORKS", "[\"10.0.0.0/8\"]");
            assert_eq!(
                Config::load(None)
                    .expect("loads")
                    .webhooks
                    .allowed_networks
                    .len(),
                1
            );
            jail.set_env("KEYWARD_WEBHOOK_ALLOWED_NETWORKS", "10.0.0.0/33");
            assert!(matches!(Config::load(None), Err(ConfigError::Invalid(_))));
            jail.set_env("KEYWARD_WEBHOOK_ALLOWED_NETWORKS", "");
            jail.set_env("KEYWARD_UPSTREAM", "file.internal");
            assert!(matches!(
                Config::load(Some(Path::new("keyward.toml"))),
                Err(ConfigError::BadUpstream(_))
            ));
            Ok(())
        });
    }

    #[test]
    fn the_audit_signing_key_is_checked_and_required_in_production() {
        figment::Jail::expect_with(|jail| {
            jail.clear_env();
            jail.set_env("DATABASE_URL", DB);
            let c = Config::load(None).expect("loads");
            assert!(!c.production);
            assert!(c.audit_signer.is_none());

            jail.set_env("KEYWARD_PRODUCTION", "true");
            let err = Config::load(None).unwrap_err();
            assert!(matches!(err, ConfigError::AuditSigningKeyRequired), "{err}");
            assert!(err.to_string().contains("KEYWARD_AUDIT_SIGNING_KEY"));

            jail.set_env("KEYWARD_AUDIT_SIGNING_KEY", "c2hvcnQ=");
            let err = Config::load(None).unwrap_err();
            assert!(matches!(err, ConfigError::BadAuditSigningKey(_)), "{err}");
            assert!(err.to_string().contains("is 5 bytes, not 32"), "{err}");

            jail.set_env("KEYWARD_AUDIT_SIGNING_KEY", SEED);
            let c = Config::load(None).expect("loads");
            assert!(c.production);
            assert!(c.audit_signer.is_some());
            Ok(())
        });
    }

    #[test]
    fn test_upstream_and_trusted_verify_callers() {
        figment::Jail::expect_with(|jail| {
            jail.clear_env();
            jail.set_env("DATABASE_URL", DB);
            let c = Config::load(None).expect("loads");
            assert!(c.gateway.test.is_none());
            assert!(c.client_ip.verify_trusted_callers.is_empty());
            assert_eq!(c.keys.max_networks, 256);
            jail.set_env("KEYWARD_UPSTREAM_TEST", "http://sandbox.internal:8081/api");
            jail.set_env("KEYWARD_VERIFY_TRUSTED_CALLERS", "10.1.0.0/16, 192.0.2.7");
            jail.set_env("KEYWARD_MAX_NETWORKS_PER_KEY", "32");
            let c = Config::load(None).expect("loads");
            assert_eq!(
                c.gateway.test.as_ref().map(Url::as_str),
                Some("http://sandbox.internal:8081/api")
            );
            assert_eq!(
                c.client_ip.verify_trusted_callers,
                [
                    "10.1.0.0/16".parse::<IpNet>().unwrap(),
                    "192.0.2.7/32".parse().unwrap()
                ]
            );
            assert_eq!(c.keys.max_networks, 32);
            assert_eq!(
                c.database.report_permits, 4,
                "a quarter of the default pool"
            );
            jail.set_env("KEYWARD_DB_MAX_CONNECTIONS", "2");
            assert_eq!(Config::load(None).unwrap().database.report_permits, 1);
            jail.set_env("KEYWARD_REPORT_DB_CONNECTIONS", "6");
            assert_eq!(Config::load(None).unwrap().database.report_permits, 2);
            jail.set_env("KEYWARD_DB_MAX_CONNECTIONS", "16");
            assert_eq!(Config::load(None).unwrap().database.report_permits, 6);
            jail.set_env("KEYWARD_UPSTREAM_TEST", "ftp://sandbox.internal");
            let err = Config::load(None).unwrap_err();
            assert!(matches!(err, ConfigError::BadUpstreamTest(_)), "{err}");
            assert!(err.to_string().contains("KEYWARD_UPSTREAM_TEST"));
            jail.set_env("KEYWARD_UPSTREAM_TEST", "http://sandbox.internal");
            jail.set_env("KEYWARD_VERIFY_TRUSTED_CALLERS", "10.1.0.0/99");
            assert!(matches!(Config::load(None), Err(ConfigError::Invalid(_))));
            Ok(())
        });
    }

    #[test]
    fn background_jobs_are_on_unless_turned_off() {
        figment::Jail::expect_with(|jail| {
            jail.clear_env();
            jail.set_env("DATABASE_URL", DB);
            assert!(Config::load(None).expect("loads").background_jobs);
            jail.set_env("KEYWARD_BACKGROUND_JOBS", "false");
            assert!(!Config::load(None).expect("loads").background_jobs);
            jail.set_env("KEYWARD_BACKGROUND_JOBS", "sometimes");
            assert!(matches!(Config::load(None), Err(ConfigError::Invalid(_))));
            Ok(())
        });
    }

    #[test]
    fn client_ip_header_is_one_of_two_names() {
        figment::Jail::expect_with(|jail| {
            jail.clear_env();
            jail.set_env("DATABASE_URL", DB);
            let c = Config::load(None).expect("loads");
            assert_eq!(c.client_ip.header, ClientIpHeader::XForwardedFor);
            jail.set_env("KEYWARD_CLIENT_IP_HEADER", "Forwarded");
            let c = Config::load(None).expect("loads");
            assert_eq!(c.client_ip.header, ClientIpHeader::Forwarded);
            jail.set_env("KEYWARD_CLIENT_IP_HEADER", "x-real-ip");
            assert!(matches!(Config::load(None), Err(ConfigError::Invalid(_))));
            Ok(())
        });
    }

    #[test]
    fn database_url_is_required_and_typos_are_refused() {
        figment::Jail::expect_with(|jail| {
            jail.clear_env();
            assert!(matches!(
                Config::load(None),
                Err(ConfigError::MissingDatabaseUrl)
            ));
            jail.create_file("bad.toml", "bnid = \"127.0.0.1:1\"\n")?;
            jail.set_env("DATABASE_URL", DB);
            assert!(matches!(
                Config::load(Some(Path::new("bad.toml"))),
                Err(ConfigError::Invalid(_))
            ));
            assert!(matches!(
                Config::load(Some(Path::new("missing.toml"))),
                Err(ConfigError::MissingFile(_))
            ));
            Ok(())
        });
    }

    #[test]
    fn keys_are_32_bytes_of_base64_with_or_without_padding() {
        let key = |k: String| parse_key(&SecretString::from(k)).map(|k| *k.expose_secret());
        assert_eq!(key(STANDARD.encode([7u8; 32])), Some([7u8; 32]));
        assert_eq!(
            key(format!(" {} ", STANDARD_NO_PAD.encode([7u8; 32]))),
            Some([7u8; 32])
        );
        assert_eq!(key(STANDARD.encode([7u8; 31])), None);
        assert_eq!(key("not base64!".to_owned()), None);
        assert_eq!(*SecretKey::new([3; 32]).expose_secret(), [3; 32]);
    }
}
