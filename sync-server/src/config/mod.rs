//! Configuration: defaults, overlaid by an optional TOML file, overlaid by the environment.
//!
//! `DATABASE_URL` and `REDIS_URL` are read as they are; every other setting is `KEYWARD_<NAME>`
//! (`KEYWARD_BIND`, `KEYWARD_SESSION_TTL_SECS`, ...) or `<name>` in the TOML file.

use std::net::SocketAddr;
use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use ipnet::IpNet;
use secrecy::SecretString;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// PostgreSQL connection string (required).
    pub database_url: Option<SecretString>,
    /// Address to listen on.
    pub bind: SocketAddr,
    /// Redis, for limits and quotas shared across nodes (local limits when unset).
    pub redis_url: Option<SecretString>,
    /// Multiplexed Redis connections per node.
    pub redis_pool_size: usize,
    /// A Redis call slower than this counts as a failure: the node falls back to local limits.
    pub redis_timeout_ms: u64,
    /// How often a node in fallback checks whether Redis is back.
    pub redis_probe_interval_ms: u64,
    /// Where `/gw/` forwards `live` keys' calls (the gateway answers 503
    /// `gateway_not_configured` to them when unset).
    pub upstream: Option<String>,
    /// Where `/gw/` forwards `test` keys' calls; when unset they are refused (403
    /// `wrong_environment`), never sent to the live upstream.
    pub upstream_test: Option<String>,
    /// How long the gateway waits for the upstream's response headers (504 after that).
    pub upstream_timeout_ms: u64,
    pub db_max_connections: u32,
    /// Pool connections usage reports may hold at once (default: a quarter of the pool, at
    /// least one). A report reads its rows page by page, holding a connection only for a page's
    /// query, never while its client reads; past the share it answers 503 `reports_busy`.
    pub report_db_connections: Option<u32>,
    /// Lifetime of an admin session.
    pub session_ttl_secs: u64,
    /// An admin session unused for this long ends (`session_expired`), whatever its lifetime.
    pub session_idle_secs: u64,
    /// Concurrent argon2 runs (default: the number of CPUs).
    pub argon2_max_concurrent: Option<usize>,
    /// Cold verifications allowed to wait for an argon2 slot before answering 503.
    pub argon2_max_queue: usize,
    /// Failed cold checks of one key id per window before further ones are throttled.
    pub cold_failures_per_window: u32,
    pub cold_failure_window_secs: u64,
    pub usage_flush_interval_ms: u64,
    /// Counting calls for analytics; off only to measure what counting costs (quotas still
    /// count).
    pub usage_recording: bool,
    /// Retention of usage rollups: minutes (hours), hours (days), days (days).
    pub usage_minute_retention_hours: u64,
    pub usage_hour_retention_days: u64,
    pub usage_day_retention_days: u64,
    /// How often the retention job runs.
    pub usage_retention_interval_secs: u64,
    pub key_cache_capacity: u64,
    /// Safety net behind LISTEN/NOTIFY invalidation.
    pub key_cache_ttl_secs: u64,
    /// How long an unknown key id is remembered as unknown.
    pub negative_cache_ttl_secs: u64,
    /// While PostgreSQL cannot be reached, a key whose record was known current within this
    /// many seconds keeps answering from memory (limits enforced, usage counted in memory).
    /// Revocations made meanwhile apply when the node reconnects. Zero: never (503 instead).
    pub fail_static_secs: u64,
    /// How often expiries and delayed revocations are looked for (`key.expired`, `key.revoked`).
    pub key_events_interval_secs: u64,
    /// Runs the periodic jobs: the alert detector, key notices (the hourly `key.expiring` /
    /// `key.unused` sweep and the due sweep of expiries and delayed revocations) and usage
    /// retention. Off only for tests that run those passes themselves
    /// (`jobs::alerts::run_once`, `jobs::notices::sweep_hourly`, `jobs::notices::sweep_due`), so
    /// no job races them; a node serving traffic needs them on.
    pub background_jobs: bool,
    /// Refuse key ids that exist nowhere from an in-memory filter of the ids that exist,
    /// without a database query.
    pub key_filter: bool,
    /// Failed logins per email (and 4x that per client address) within the window.
    pub login_failures_per_window: u32,
    pub login_failure_window_secs: u64,
    /// Keys the fast verifier (`keyward_core::verifier`): 32 bytes, base64. Unset: every node
    /// runs argon2 once per key after each start.
    pub verifier_key: Option<SecretString>,
    /// Peers whose `client_ip_header` is trusted to carry the client address.
    #[serde(deserialize_with = "cidr_list")]
    pub trusted_proxies: Vec<IpNet>,
    /// The header those proxies write the chain of addresses into: `x-forwarded-for` (default)
    /// or RFC 7239 `forwarded`. Only this one is read (see `keyward_core::ip::client`).
    pub client_ip_header: keyward_core::ip::client::ClientIpHeader,
    /// Callers of `POST /v1/verify` whose `client_ip` is believed (a platform service verifying
    /// on behalf of its own callers must be listed). From any other caller the body's address
    /// is ignored: IP rules, analytics and alerts use the connection's address.
    #[serde(deserialize_with = "cidr_list")]
    pub verify_trusted_callers: Vec<IpNet>,
    /// Networks remembered per key (`key_networks`); past it the least recently seen is
    /// forgotten (counted in `/metrics`).
    pub max_networks_per_key: u64,
    /// Networks outside the public internet that webhooks may still be delivered to (loopback,
    /// private, ...: refused by default, see `keyward_core::webhook_url`).
    #[serde(deserialize_with = "cidr_list")]
    pub webhook_allowed_networks: Vec<IpNet>,
    /// Deliveries of one organisation in flight at once on a node, so one organisation's slow
    /// endpoints cannot hold every delivery slot.
    pub webhook_max_in_flight_per_org: usize,
    /// `POST /v1/webhooks/{id}/test` calls per organisation and minute.
    pub webhook_tests_per_minute: u32,
    /// Keys (not revoked) an organisation may hold.
    pub max_keys_per_org: u64,
    /// argon2 runs one organisation may hold at once (default: half the hashers, at least one),
    /// so one tenant's cold keys or wrong secrets cannot take the hashers from the others.
    pub argon2_max_per_org: Option<usize>,
    /// `text` or `json`.
    pub log_format: String,
    /// Encrypts webhook signing secrets at rest: 32 bytes, base64. When unset, a random key kept
    /// in the database (`webhook_keys`) is used; production should set this.
    pub webhook_key: Option<SecretString>,
    /// Delay before the first webhook retry; each later one waits 6x longer.
    pub webhook_retry_base_ms: u64,
    /// Attempts per delivery (the first included) before it is marked `failed`.
    pub webhook_max_attempts: u32,
    /// How long one delivery attempt may take.
    pub webhook_timeout_ms: u64,
    /// How often the delivery worker looks for due deliveries when nothing wakes it.
    pub webhook_poll_interval_ms: u64,
    /// Settled (delivered or failed) deliveries are deleted after this many days.
    pub webhook_retention_days: u64,
    /// Signs each organisation's audit chain head, so a database writer cannot truncate or
    /// rewrite the log unnoticed: a 32-byte ed25519 seed, base64 (`openssl rand -base64 32`).
    /// Keep it out of the database. Unset: the chain is unsigned (refused in production).
    pub audit_signing_key: Option<SecretString>,
    /// A production deployment: settings that only tests and development may leave out are
    /// required (`audit_signing_key`).
    pub production: bool,
    /// A request's headers must arrive within this long of its first byte (the connection is
    /// closed otherwise).
    pub header_read_timeout_ms: u64,
    /// A request's body must arrive within this long of its headers (408 and the connection
    /// closed otherwise): a total, not a per-read timeout.
    pub body_timeout_ms: u64,
    /// A keep-alive connection waiting this long for its next request is closed.
    pub idle_timeout_secs: u64,
    /// Open HTTP connections; beyond this, new connections wait in the listen backlog until
    /// one closes.
    pub max_connections: usize,
    /// On SIGTERM, how long in-flight requests may take before the remaining connections are
    /// closed (usage is flushed after that).
    pub shutdown_grace_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            database_url: None,
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            redis_url: None,
            redis_pool_size: 2,
            redis_timeout_ms: 50,
            redis_probe_interval_ms: 250,
            upstream: None,
            upstream_test: None,
            upstream_timeout_ms: 30_000,
            db_max_connections: 16,
            report_db_connections: None,
            session_ttl_secs: 12 * 3600,
            session_idle_secs: 30 * 60,
            argon2_max_concurrent: None,
            argon2_max_queue: 64,
            cold_failures_per_window: 10,
            cold_failure_window_secs: 60,
            usage_flush_interval_ms: 1000,
            usage_recording: true,
            usage_minute_retention_hours: 48,
            usage_hour_retention_days: 90,
            usage_day_retention_days: 730,
            usage_retention_interval_secs: 3600,
            key_cache_capacity: 200_000,
            key_cache_ttl_secs: 300,
            negative_cache_ttl_secs: 10,
            fail_static_secs: 60,
            key_events_interval_secs: 30,
            background_jobs: true,
            key_filter: true,
            login_failures_per_window: 5,
            login_failure_window_secs: 900,
            verifier_key: None,
            trusted_proxies: Vec::new(),
            client_ip_header: Default::default(),
            verify_trusted_callers: Vec::new(),
            max_networks_per_key: 256,
            webhook_allowed_networks: Vec::new(),
            webhook_max_in_flight_per_org: 4,
            webhook_tests_per_minute: 10,
            max_keys_per_org: 100_000,
            argon2_max_per_org: None,
            log_format: "text".to_owned(),
            webhook_key: None,
            webhook_retry_base_ms: 5000,
            webhook_max_attempts: 6,
            webhook_timeout_ms: 10_000,
            webhook_poll_interval_ms: 500,
            webhook_retention_days: 30,
            audit_signing_key: None,
            production: false,
            header_read_timeout_ms: 10_000,
            body_timeout_ms: 30_000,
            idle_timeout_secs: 60,
            max_connections: 1024,
            shutdown_grace_ms: 10_000,
        }
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
    /// The settings read from `KEYWARD_*` variables; other `KEYWARD_*` variables (the scripts'
    /// own) are not configuration and are left alone.
    const FIELDS: &'static [&'static str] = &[
        "bind",
        "redis_pool_size",
        "redis_timeout_ms",
        "redis_probe_interval_ms",
        "upstream",
        "upstream_test",
        "upstream_timeout_ms",
        "db_max_connections",
        "report_db_connections",
        "session_ttl_secs",
        "session_idle_secs",
        "argon2_max_concurrent",
        "argon2_max_queue",
        "cold_failures_per_window",
        "cold_failure_window_secs",
        "usage_flush_interval_ms",
        "usage_recording",
        "usage_minute_retention_hours",
        "usage_hour_retention_days",
        "usage_day_retention_days",
        "usage_retention_interval_secs",
        "key_cache_capacity",
        "key_cache_ttl_secs",
        "negative_cache_ttl_secs",
        "fail_static_secs",
        "key_events_interval_secs",
        "background_jobs",
        "key_filter",
        "login_failures_per_window",
        "login_failure_window_secs",
        "verifier_key",
        "trusted_proxies",
        "client_ip_header",
        "verify_trusted_callers",
        "max_networks_per_key",
        "webhook_allowed_networks",
        "webhook_max_in_flight_per_org",
        "webhook_tests_per_minute",
        "max_keys_per_org",
        "argon2_max_per_org",
        "log_format",
        "webhook_key",
        "webhook_retry_base_ms",
        "webhook_max_attempts",
        "webhook_timeout_ms",
        "webhook_poll_interval_ms",
        "webhook_retention_days",
        "audit_signing_key",
        "production",
        "header_read_timeout_ms",
        "body_timeout_ms",
        "idle_timeout_secs",
        "max_connections",
        "shutdown_grace_ms",
    ];

    /// Loads defaults ← TOML file (if given) ← environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut figment = Figment::new();
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::MissingFile(path.display().to_string()));
            }
            figment = figment.merge(Toml::file(path));
        }
        let config: Config = figment
            .merge(Env::raw().only(&["DATABASE_URL", "REDIS_URL"]))
            .merge(Env::prefixed("KEYWARD_").only(Self::FIELDS))
            .extract()
            .map_err(Box::new)?;
        if config.database_url.is_none() {
            return Err(ConfigError::MissingDatabaseUrl);
        }
        let usable = |upstream: &str| {
            reqwest::Url::parse(upstream)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
        };
        if let Some(upstream) = &config.upstream
            && !usable(upstream)
        {
            return Err(ConfigError::BadUpstream(upstream.clone()));
        }
        if let Some(upstream) = &config.upstream_test
            && !usable(upstream)
        {
            return Err(ConfigError::BadUpstreamTest(upstream.clone()));
        }
        if let Some(key) = &config.webhook_key
            && parse_key(key).is_none()
        {
            return Err(ConfigError::BadWebhookKey);
        }
        if let Some(key) = &config.verifier_key
            && parse_key(key).is_none()
        {
            return Err(ConfigError::BadVerifierKey);
        }
        config.audit_signer()?;
        Ok(config)
    }

    /// A configuration for tests and tools that build one in code.
    pub fn for_database(database_url: impl Into<String>) -> Config {
        Config {
            database_url: Some(SecretString::from(database_url.into())),
            ..Config::default()
        }
    }

    /// The audit chain head signer from `audit_signing_key`; `None` without one, which
    /// production refuses.
    pub fn audit_signer(
        &self,
    ) -> Result<Option<keyward_core::audit_head::HeadSigner>, ConfigError> {
        use secrecy::ExposeSecret;
        match &self.audit_signing_key {
            Some(seed) => keyward_core::audit_head::HeadSigner::from_base64(seed.expose_secret())
                .map(Some)
                .map_err(ConfigError::BadAuditSigningKey),
            None if self.production => Err(ConfigError::AuditSigningKeyRequired),
            None => Ok(None),
        }
    }

    pub fn argon2_permits(&self) -> usize {
        self.argon2_max_concurrent
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
            .max(1)
    }

    /// argon2 runs one organisation may hold at once.
    pub fn argon2_per_org(&self) -> usize {
        let permits = self.argon2_permits();
        self.argon2_max_per_org
            .unwrap_or(permits / 2)
            .clamp(1, permits)
    }

    /// Pool connections usage reports may hold at once: `report_db_connections`, by default a
    /// quarter of the pool; at least one, at most the pool.
    pub fn report_db_permits(&self) -> usize {
        let pool = self.db_max_connections.max(1);
        self.report_db_connections
            .unwrap_or(pool / 4)
            .clamp(1, pool) as usize
    }
}

/// A 32-byte key in base64 (standard alphabet, padding optional): `KEYWARD_WEBHOOK_KEY` (the
/// key of the webhook secrets at rest) and `KEYWARD_VERIFIER_KEY` (the fast verifier's key).
/// `None` when it is not base64 or not 32 bytes.
pub fn parse_key(key: &SecretString) -> Option<[u8; 32]> {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
    use secrecy::ExposeSecret;
    let raw = key.expose_secret().trim();
    let bytes = STANDARD
        .decode(raw)
        .or_else(|_| STANDARD_NO_PAD.decode(raw))
        .ok()?;
    bytes.try_into().ok()
}

/// A list of CIDRs: a TOML/JSON array (`["10.0.0.0/8", "::1/128"]`) or, as an environment
/// variable is easier to write, a comma-separated string (`10.0.0.0/8,::1/128`).
fn cidr_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        List(Vec<String>),
        Text(String),
    }
    let items = match Form::deserialize(d)? {
        Form::List(items) => items,
        Form::Text(text) => text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    };
    items
        .iter()
        .map(|item| {
            item.parse::<IpNet>()
                .or_else(|_| item.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    serde::de::Error::custom(format!(
                        "{item:?} is not a CIDR (e.g. 10.0.0.0/8) or an IP address"
                    ))
                })
        })
        .collect()
}

#[cfg(test)]
// figment's Jail closures return its large error type by design.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn file_then_environment() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "keyward.toml",
                "bind = \"127.0.0.1:9000\"\nsession_ttl_secs = 60\n",
            )?;
            jail.set_env("DATABASE_URL", "postgres://x@localhost/db");
            jail.set_env("KEYWARD_SESSION_TTL_SECS", "120");
            jail.set_env("KEYWARD_SESSION_IDLE_SECS", "90");
            let c = Config::load(Some(Path::new("keyward.toml"))).expect("loads");
            assert_eq!(c.bind.port(), 9000);
            assert_eq!(c.session_ttl_secs, 120);
            assert_eq!(c.session_idle_secs, 90);
            assert!(c.webhook_allowed_networks.is_empty());
            jail.set_env("KEYWARD_WEBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8, ::1");
            let c = Config::load(None).expect("loads");
            assert_eq!(
                c.webhook_allowed_networks,
                [
                    "127.0.0.0/8".parse::<IpNet>().unwrap(),
                    "::1/128".parse().unwrap()
                ]
            );
            jail.set_env("KEYWARD_WEBHOOK_ALLOWED_NETWORKS", "[\"10.0.0.0/8\"]");
            assert_eq!(
                Config::load(None)
                    .expect("loads")
                    .webhook_allowed_networks
                    .len(),
                1
            );
            jail.set_env("KEYWARD_WEBHOOK_ALLOWED_NETWORKS", "10.0.0.0/33");
            assert!(matches!(Config::load(None), Err(ConfigError::Invalid(_))));
            Ok(())
        });
    }

    #[test]
    fn the_audit_signing_key_is_checked_and_required_in_production() {
        figment::Jail::expect_with(|jail| {
            jail.clear_env();
            jail.set_env("DATABASE_URL", "postgres://x@localhost/db");
            let c = Config::load(None).expect("loads");
            assert!(!c.production);
            assert!(c.audit_signer().unwrap().is_none());

            jail.set_env("KEYWARD_PRODUCTION", "true");
            let err = Config::load(None).unwrap_err();
            assert!(matches!(err, ConfigError::AuditSigningKeyRequired), "{err}");
            assert!(err.to_string().contains("KEYWARD_AUDIT_SIGNING_KEY"));

            jail.set_env("KEYWARD_AUDIT_SIGNING_KEY", "c2hvcnQ=");
            let err = Config::load(None).unwrap_err();
            assert!(matches!(err, ConfigError::BadAuditSigningKey(_)), "{err}");
            assert!(err.to_string().contains("is 5 bytes, not 32"), "{err}");

            jail.set_env(
                "KEYWARD_AUDIT_SIGNING_KEY",
                "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
            );
            let c = Config::load(None).expect("loads");
            assert!(c.production);
            assert!(c.audit_signer().unwrap().is_some());
            Ok(())
        });
    }

    #[test]
    fn test_upstream_and_trusted_verify_callers() {
        figment::Jail::expect_with(|jail| {
            jail.clear_env();
            jail.set_env("DATABASE_URL", "postgres://x@localhost/db");
            let c = Config::load(None).expect("loads");
            assert!(c.upstream_test.is_none());
            assert!(c.verify_trusted_callers.is_empty());
            assert_eq!(c.max_networks_per_key, 256);
            jail.set_env("KEYWARD_UPSTREAM_TEST", "http://sandbox.internal:8081/api");
            jail.set_env("KEYWARD_VERIFY_TRUSTED_CALLERS", "10.1.0.0/16, 192.0.2.7");
            jail.set_env("KEYWARD_MAX_NETWORKS_PER_KEY", "32");
            let c = Config::load(None).expect("loads");
            assert_eq!(
                c.upstream_test.as_deref(),
                Some("http://sandbox.internal:8081/api")
            );
            assert_eq!(
                c.verify_trusted_callers,
                [
                    "10.1.0.0/16".parse::<IpNet>().unwrap(),
                    "192.0.2.7/32".parse().unwrap()
                ]
            );
            assert_eq!(c.max_networks_per_key, 32);
            assert_eq!(c.report_db_permits(), 4, "a quarter of the default pool");
            jail.set_env("KEYWARD_DB_MAX_CONNECTIONS", "2");
            assert_eq!(Config::load(None).unwrap().report_db_permits(), 1);
            jail.set_env("KEYWARD_REPORT_DB_CONNECTIONS", "6");
            assert_eq!(Config::load(None).unwrap().report_db_permits(), 2);
            jail.set_env("KEYWARD_DB_MAX_CONNECTIONS", "16");
            assert_eq!(Config::load(None).unwrap().report_db_permits(), 6);
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
            jail.set_env("DATABASE_URL", "postgres://x@localhost/db");
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
        use keyward_core::ip::client::ClientIpHeader;
        figment::Jail::expect_with(|jail| {
            jail.clear_env();
            jail.set_env("DATABASE_URL", "postgres://x@localhost/db");
            let c = Config::load(None).expect("loads");
            assert_eq!(c.client_ip_header, ClientIpHeader::XForwardedFor);
            jail.set_env("KEYWARD_CLIENT_IP_HEADER", "Forwarded");
            let c = Config::load(None).expect("loads");
            assert_eq!(c.client_ip_header, ClientIpHeader::Forwarded);
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
            jail.set_env("DATABASE_URL", "postgres://x@localhost/db");
            assert!(matches!(
                Config::load(Some(Path::new("bad.toml"))),
                Err(ConfigError::Invalid(_))
            ));
            Ok(())
        });
    }

    #[test]
    fn keys_are_32_bytes_of_base64_with_or_without_padding() {
        use base64::Engine;
        use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
        let key = |k: String| parse_key(&SecretString::from(k));
        assert_eq!(key(STANDARD.encode([7u8; 32])), Some([7u8; 32]));
        assert_eq!(
            key(format!(" {} ", STANDARD_NO_PAD.encode([7u8; 32]))),
            Some([7u8; 32])
        );
        assert_eq!(key(STANDARD.encode([7u8; 31])), None);
        assert_eq!(key("not base64!".to_owned()), None);
    }
}
