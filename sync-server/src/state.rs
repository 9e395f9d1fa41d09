//! Everything a handler needs, built once per server. No globals: tests run many servers in one
//! process, each on its own database.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;

use crate::config::Config;
use crate::limits::Limiter;
use crate::metrics::Metrics;
use crate::throttle::FailureWindow;
use crate::usage::UsageRecorder;
use crate::verify::{Hasher, Verifier};

/// The server's shared state: one `Arc`, so the clone axum makes for every handler call is one
/// reference count, not one per field (a flood of refused calls pays for every clone).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] holds.
pub struct Shared {
    pub pool: PgPool,
    pub config: Arc<Config>,
    pub verifier: Arc<Verifier>,
    pub hasher: Hasher,
    pub usage: Arc<UsageRecorder>,
    /// Failed sign-ins and wrong current passwords, shared by every node.
    pub login_throttle: crate::login_throttle::LoginThrottle,
    /// `POST /v1/webhooks/{id}/test` calls per organisation and minute.
    pub webhook_tests: Arc<FailureWindow<keyward_core::OrgId>>,
    pub metrics: Arc<Metrics>,
    /// Signs audit chain heads ([`Config::audit_signer`]); `None`: the chain is unsigned.
    pub audit_signer: Option<Arc<keyward_core::audit_head::HeadSigner>>,
    /// The share of the pool usage reports may hold at once (`database.report_permits`): a
    /// report page's query takes a permit, then a connection, and gives both back before its
    /// rows are written to the client.
    pub reports: Arc<tokio::sync::Semaphore>,
}

impl AppState {
    /// The public key audit chain heads are checked against (`None`: unsigned).
    pub fn audit_key(&self) -> Option<keyward_core::audit_head::HeadKey> {
        self.audit_signer.as_ref().map(|s| s.public_key())
    }

    pub fn new(config: Config, pool: PgPool) -> AppState {
        let hasher = Hasher::with_org_share(
            config.argon2.permits,
            config.argon2.max_queue,
            config.argon2.per_org,
        );
        let metrics = Arc::new(Metrics::default());
        let usage = Arc::new(
            UsageRecorder::with_counters(
                metrics.limit_events_dropped.clone(),
                metrics.usage_dropped.clone(),
            )
            .with_network_cap(
                config.keys.max_networks,
                metrics.key_networks_evicted.clone(),
            ),
        );
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
        let login_throttle = crate::login_throttle::LoginThrottle::new(
            pool.clone(),
            config.login.per_window,
            config.login.window,
        );
        let audit_signer = config.audit_signer.clone();
        let webhook_tests = Arc::new(FailureWindow::new(
            config.webhooks.tests_per_minute,
            Duration::from_secs(60),
            100_000,
        ));
        let reports = Arc::new(tokio::sync::Semaphore::new(config.database.report_permits));
        AppState(Arc::new(Shared {
            reports,
            webhook_tests,
            metrics,
            pool,
            config: Arc::new(config),
            verifier,
            hasher,
            usage,
            login_throttle,
            audit_signer,
        }))
    }
}
