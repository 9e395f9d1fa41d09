//! The external format: the flat settings operators write, with their defaults.
//!
//! `DATABASE_URL` and `REDIS_URL` are read as they are; every other setting is `KEYWARD_<NAME>`
//! (`KEYWARD_BIND`, `KEYWARD_SESSION_TTL_SECS`, ...) or `<name>` in the TOML file. These names
//! are the interface users depend on: they do not follow the shape of [`super::Config`], which
//! is built from this once, by [`super::Config::from_raw`].

use std::net::SocketAddr;
use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use ipnet::IpNet;
use secrecy::SecretString;
use serde::Deserialize;

use super::ConfigError;

/// The settings as read from the file and the environment: the names and units operators use.
/// No `Debug`: `upstream` may carry a password.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawConfig {
    /// PostgreSQL connection string (required).
    pub(crate) database_url: Option<SecretString>,
    /// Address to listen on.
    pub(crate) bind: SocketAddr,
    /// Redis, for limits and quotas shared across nodes (local limits when unset).
    pub(crate) redis_url: Option<SecretString>,
    /// Multiplexed Redis connections per node.
    pub(crate) redis_pool_size: usize,
    /// A Redis call slower than this counts as a failure: the node falls back to local limits.
    pub(crate) redis_timeout_ms: u64,
    /// How often a node in fallback checks whether Redis is back.
    pub(crate) redis_probe_interval_ms: u64,
    /// Where `/gw/` forwards `live` keys' calls (the gateway answers 503
    /// `gateway_not_configured` to them when unset).
    pub(crate) upstream: Option<String>,
    /// Where `/gw/` forwards `test` keys' calls; when unset they are refused (403
    /// `wrong_environment`), never sent to the live upstream.
    pub(crate) upstream_test: Option<String>,
    /// How long the gateway waits for the upstream's response headers (504 after that).
    pub(crate) upstream_timeout_ms: u64,
    pub(crate) db_max_connections: u32,
    /// Pool connections usage reports may hold at once (default: a quarter of the pool, at
    /// least one). A report reads its rows page by page, holding a connection only for a page's
    /// query, never while its client reads; past the share it answers 503 `reports_busy`.
    pub(crate) report_db_connections: Option<u32>,
    /// Lifetime of an admin session.
    pub(crate) session_ttl_secs: u64,
    /// An admin session unused for this long ends (`session_expired`), whatever its lifetime.
    pub(crate) session_idle_secs: u64,
    /// Concurrent argon2 runs (default: the number of CPUs).
    pub(crate) argon2_max_concurrent: Option<usize>,
    /// Cold verifications allowed to wait for an argon2 slot before answering 503.
    pub(crate) argon2_max_queue: usize,
    /// Failed cold checks of one key id per window before further ones are throttled.
    pub(crate) cold_failures_per_window: u32,
    pub(crate) cold_failure_window_secs: u64,
    pub(crate) usage_flush_interval_ms: u64,
    /// Counting calls for analytics; off only to measure what counting costs (quotas still
    /// count).
    pub(crate) usage_recording: bool,
    /// Retention of usage rollups: minutes (hours), hours (days), days (days).
    pub(crate) usage_minute_retention_hours: u64,
    pub(crate) usage_hour_retention_days: u64,
    pub(crate) usage_day_retention_days: u64,
    /// How often the retention job runs.
    pub(crate) usage_retention_interval_secs: u64,
    pub(crate) key_cache_capacity: u64,
    /// Safety net behind LISTEN/NOTIFY invalidation.
    pub(crate) key_cache_ttl_secs: u64,
    /// How long an unknown key id is remembered as unknown.
    pub(crate) negative_cache_ttl_secs: u64,
    /// While PostgreSQL cannot be reached, a key whose record was known current within this
    /// many seconds keeps answering from memory (limits enforced, usage counted in memory).
    /// Revocations made meanwhile apply when the node reconnects. Zero: never (503 instead).
    pub(crate) fail_static_secs: u64,
    /// How often expiries and delayed revocations are looked for (`key.expired`, `key.revoked`).
    pub(crate) key_events_interval_secs: u64,
    /// Runs the periodic jobs: the alert detector, key notices (the hourly `key.expiring` /
    /// `key.unused` sweep and the due sweep of expiries and delayed revocations) and usage
    /// retention. Off only for tests that run those passes themselves
    /// (`jobs::alerts::run_once`, `jobs::notices::sweep_hourly`, `jobs::notices::sweep_due`), so
    /// no job races them; a node serving traffic needs them on.
    pub(crate) background_jobs: bool,
    /// Refuse key ids that exist nowhere from an in-memory filter of the ids that exist,
    /// without a database query.
    pub(crate) key_filter: bool,
    /// Failed logins per email (and 4x that per client address) within the window.
    pub(crate) login_failures_per_window: u32,
    pub(crate) login_failure_window_secs: u64,
    /// Keys the fast verifier (`keyward_core::verifier`): 32 bytes, base64. Unset: every node
    /// runs argon2 once per key after each start.
    pub(crate) verifier_key: Option<SecretString>,
    /// Peers whose `client_ip_header` is trusted to carry the client address.
    #[serde(deserialize_with = "cidr_list")]
    pub(crate) trusted_proxies: Vec<IpNet>,
    /// The header those proxies write the chain of addresses into: `x-forwarded-for` (default)
    /// or RFC 7239 `forwarded`. Only this one is read (see `keyward_core::ip::client`).
    pub(crate) client_ip_header: keyward_core::ip::client::ClientIpHeader,
    /// Callers of `POST /v1/verify` whose `client_ip` is believed (a platform service verifying
    /// on behalf of its own callers must be listed). From any other caller the body's address
    /// is ignored: IP rules, analytics and alerts use the connection's address.
    #[serde(deserialize_with = "cidr_list")]
    pub(crate) verify_trusted_callers: Vec<IpNet>,
    /// Networks remembered per key (`key_networks`); past it the least recently seen is
    /// forgotten (counted in `/metrics`).
    pub(crate) max_networks_per_key: u64,
    /// Networks outside the public internet that webhooks may still be delivered to (loopback,
    /// private, ...: refused by default, see `keyward_core::webhook_url`).
    #[serde(deserialize_with = "cidr_list")]
    pub(crate) webhook_allowed_networks: Vec<IpNet>,
    /// Deliveries of one organisation in flight at once on a node, so one organisation's slow
    /// endpoints cannot hold every delivery slot.
    pub(crate) webhook_max_in_flight_per_org: usize,
    /// `POST /v1/webhooks/{id}/test` calls per organisation and minute.
    pub(crate) webhook_tests_per_minute: u32,
    /// Keys (not revoked) an organisation may hold.
    pub(crate) max_keys_per_org: u64,
    /// argon2 runs one organisation may hold at once (default: half the hashers, at least one),
    /// so one tenant's cold keys or wrong secrets cannot take the hashers from the others.
    pub(crate) argon2_max_per_org: Option<usize>,
    /// `text` or `json`.
    pub(crate) log_format: String,
    /// Encrypts webhook signing secrets at rest: 32 bytes, base64. When unset, a random key kept
    /// in the database (`webhook_keys`) is used; production should set this.
    pub(crate) webhook_key: Option<SecretString>,
    /// Delay before the first webhook retry; each later one waits 6x longer.
    pub(crate) webhook_retry_base_ms: u64,
    /// Attempts per delivery (the first included) before it is marked `failed`.
    pub(crate) webhook_max_attempts: u32,
    /// How long one delivery attempt may take.
    pub(crate) webhook_timeout_ms: u64,
    /// How often the delivery worker looks for due deliveries when nothing wakes it.
    pub(crate) webhook_poll_interval_ms: u64,
    /// Settled (delivered or failed) deliveries are deleted after this many days.
    pub(crate) webhook_retention_days: u64,
    /// Signs each organisation's audit chain head, so a database writer cannot truncate or
    /// rewrite the log unnoticed: a 32-byte ed25519 seed, base64 (`openssl rand -base64 32`).
    /// Keep it out of the database. Unset: the chain is unsigned (refused in production).
    pub(crate) audit_signing_key: Option<SecretString>,
    /// A production deployment: settings that only tests and development may leave out are
    /// required (`audit_signing_key`).
    pub(crate) production: bool,
    /// A request's headers must arrive within this long of its first byte (the connection is
    /// closed otherwise).
    pub(crate) header_read_timeout_ms: u64,
    /// A request's body must arrive within this long of its headers (408 and the connection
    /// closed otherwise): a total, not a per-read timeout.
    pub(crate) body_timeout_ms: u64,
    /// A keep-alive connection waiting this long for its next request is closed.
    pub(crate) idle_timeout_secs: u64,
    /// Open HTTP connections; beyond this, new connections wait in the listen backlog until
    /// one closes.
    pub(crate) max_connections: usize,
    /// On SIGTERM, how long in-flight requests may take before the remaining connections are
    /// closed (usage is flushed after that).
    pub(crate) shutdown_grace_ms: u64,
}

impl Default for RawConfig {
    fn default() -> Self {
        RawConfig {
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

impl RawConfig {
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

    /// Reads defaults ← TOML file (if given) ← environment. Only the format is checked here
    /// (types, names, CIDRs); the values are checked by [`super::Config::from_raw`].
    pub(crate) fn load(file: Option<&Path>) -> Result<RawConfig, ConfigError> {
        let mut figment = Figment::new();
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::MissingFile(path.display().to_string()));
            }
            figment = figment.merge(Toml::file(path));
        }
        Ok(figment
            .merge(Env::raw().only(&["DATABASE_URL", "REDIS_URL"]))
            .merge(Env::prefixed("KEYWARD_").only(Self::FIELDS))
            .extract()
            .map_err(Box::new)?)
    }
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
