//! Everything a handler needs, built once per server. No globals: tests run many servers in one
//! process, each on its own database.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;

use crate::config::Config;
use crate::limits::Limiter;
use crate::metrics::Metrics;
use crate::throttle::FailureWindow;
use crate::usage::UsageRecorder;
use crate::verify::{Hasher, Verifier};

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub config: Arc<Config>,
    pub verifier: Arc<Verifier>,
    pub hasher: Hasher,
    pub usage: Arc<UsageRecorder>,
    pub login_failures: Arc<LoginFailures>,
    pub metrics: Arc<Metrics>,
    /// `/gw/*` forwarding, when an upstream is configured.
    pub gateway: Option<Arc<crate::gateway::Gateway>>,
}

/// Failed sign-ins, per email and per client address.
pub struct LoginFailures {
    pub by_email: FailureWindow<String>,
    pub by_ip: FailureWindow<IpAddr>,
}

impl AppState {
    pub fn new(config: Config, pool: PgPool) -> AppState {
        let hasher = Hasher::new(config.argon2_permits(), config.argon2_max_queue);
        let metrics = Arc::new(Metrics::default());
        let usage = Arc::new(UsageRecorder::with_counters(
            metrics.limit_events_dropped.clone(),
            metrics.usage_dropped.clone(),
        ));
        let limiter = Arc::new(Limiter::with_metrics(&config, &metrics));
        let verifier = Arc::new(
            Verifier::new(
                pool.clone(),
                &config,
                hasher.clone(),
                usage.clone(),
                limiter,
            )
            .with_metrics(&metrics),
        );
        let window = Duration::from_secs(config.login_failure_window_secs);
        let login_failures = Arc::new(LoginFailures {
            by_email: FailureWindow::new(config.login_failures_per_window, window, 100_000),
            by_ip: FailureWindow::new(
                config.login_failures_per_window.saturating_mul(4),
                window,
                100_000,
            ),
        });
        let gateway = crate::gateway::Gateway::from_config(&config).map(Arc::new);
        AppState {
            metrics,
            gateway,
            pool,
            config: Arc::new(config),
            verifier,
            hasher,
            usage,
            login_failures,
        }
    }
}
