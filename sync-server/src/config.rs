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
    /// Where `/gw/` forwards (the gateway answers 503 `gateway_not_configured` when unset).
    pub upstream: Option<String>,
    /// How long the gateway waits for the upstream's response headers (504 after that).
    pub upstream_timeout_ms: u64,
    pub db_max_connections: u32,
    /// Lifetime of an admin session.
    pub session_ttl_secs: u64,
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
    /// Failed logins per email (and 4x that per client address) within the window.
    pub login_failures_per_window: u32,
    pub login_failure_window_secs: u64,
    /// Peers whose `X-Forwarded-For` is trusted to carry the client address.
    pub trusted_proxies: Vec<IpNet>,
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
            upstream_timeout_ms: 30_000,
            db_max_connections: 16,
            session_ttl_secs: 12 * 3600,
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
            login_failures_per_window: 5,
            login_failure_window_secs: 900,
            trusted_proxies: Vec::new(),
            log_format: "text".to_owned(),
            webhook_key: None,
            webhook_retry_base_ms: 5000,
            webhook_max_attempts: 6,
            webhook_timeout_ms: 10_000,
            webhook_poll_interval_ms: 500,
            webhook_retention_days: 30,
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
    #[error("config file {0} does not exist")]
    MissingFile(String),
    #[error("KEYWARD_WEBHOOK_KEY is not 32 bytes in base64")]
    BadWebhookKey,
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
        "upstream_timeout_ms",
        "db_max_connections",
        "session_ttl_secs",
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
        "login_failures_per_window",
        "login_failure_window_secs",
        "trusted_proxies",
        "log_format",
        "webhook_key",
        "webhook_retry_base_ms",
        "webhook_max_attempts",
        "webhook_timeout_ms",
        "webhook_poll_interval_ms",
        "webhook_retention_days",
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
        if let Some(upstream) = &config.upstream {
            let ok = reqwest::Url::parse(upstream)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host());
            if !ok {
                return Err(ConfigError::BadUpstream(upstream.clone()));
            }
        }
        if let Some(key) = &config.webhook_key
            && crate::webhooks::parse_key(key).is_none()
        {
            return Err(ConfigError::BadWebhookKey);
        }
        Ok(config)
    }

    /// A configuration for tests and tools that build one in code.
    pub fn for_database(database_url: impl Into<String>) -> Config {
        Config {
            database_url: Some(SecretString::from(database_url.into())),
            ..Config::default()
        }
    }

    pub fn argon2_permits(&self) -> usize {
        self.argon2_max_concurrent
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
            .max(1)
    }
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
            let c = Config::load(Some(Path::new("keyward.toml"))).expect("loads");
            assert_eq!(c.bind.port(), 9000);
            assert_eq!(c.session_ttl_secs, 120);
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
}
