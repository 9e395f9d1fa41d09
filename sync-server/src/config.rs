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
    /// Redis, for limits shared across nodes (used by the rate-limit issue).
    pub redis_url: Option<SecretString>,
    /// Where `/gw/` forwards (used by the gateway).
    pub upstream: Option<String>,
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
}

impl Default for Config {
    fn default() -> Self {
        Config {
            database_url: None,
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            redis_url: None,
            upstream: None,
            db_max_connections: 16,
            session_ttl_secs: 12 * 3600,
            argon2_max_concurrent: None,
            argon2_max_queue: 64,
            cold_failures_per_window: 10,
            cold_failure_window_secs: 60,
            usage_flush_interval_ms: 1000,
            key_cache_capacity: 200_000,
            key_cache_ttl_secs: 300,
            negative_cache_ttl_secs: 10,
            login_failures_per_window: 5,
            login_failure_window_secs: 900,
            trusted_proxies: Vec::new(),
            log_format: "text".to_owned(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid configuration: {0}")]
    Invalid(#[from] Box<figment::Error>),
    #[error("DATABASE_URL is not set (environment or `database_url` in the config file)")]
    MissingDatabaseUrl,
    #[error("config file {0} does not exist")]
    MissingFile(String),
}

impl Config {
    /// The settings read from `KEYWARD_*` variables; other `KEYWARD_*` variables (the scripts'
    /// own) are not configuration and are left alone.
    const FIELDS: &'static [&'static str] = &[
        "bind",
        "upstream",
        "db_max_connections",
        "session_ttl_secs",
        "argon2_max_concurrent",
        "argon2_max_queue",
        "cold_failures_per_window",
        "cold_failure_window_secs",
        "usage_flush_interval_ms",
        "key_cache_capacity",
        "key_cache_ttl_secs",
        "negative_cache_ttl_secs",
        "login_failures_per_window",
        "login_failure_window_secs",
        "trusted_proxies",
        "log_format",
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
