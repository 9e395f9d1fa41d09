//! Keyward's sync server as a library: [`router`] for in-process tests, [`serve`] for a real
//! listener with background tasks and graceful shutdown. `main.rs` only parses the command line.
//!
//! # Layout
//!
//! - [`http`]: the API's edge: the router and one handler module per area, the extractors
//!   ([`http::extract`]), the OpenAPI document ([`http::openapi`]) and the `/gw` forwarding
//!   gateway ([`http::gateway`]).
//! - [`jobs`]: what runs beside the requests, on the loop [`jobs::every`]: alert detection
//!   ([`jobs::alerts`]), key notices ([`jobs::notices`]), usage retention ([`jobs::retention`]),
//!   webhook delivery ([`jobs::webhooks`]) and cache invalidation ([`jobs::invalidate`]).
//! - The domain services both use: [`verify`] (the verification pipeline), [`limits`] (rate
//!   limits and quotas), [`usage`] (usage counting and its flusher), [`webhooks`] (the event
//!   outbox, signing and secrets), [`keys`], [`session`], [`audit`], [`login_throttle`] and
//!   [`throttle`].
//! - The plumbing: [`store`] (the SQL, one module per table family), [`config`], [`state`],
//!   [`error`], [`metrics`], [`connections`] and [`telemetry`]; the command line: [`cli`],
//!   [`admin`] and [`demo`].

pub mod admin;
pub(crate) mod audit;
pub mod cli;
pub mod config;
pub(crate) mod connections;
pub(crate) mod demo;
pub(crate) mod error;
pub(crate) mod http;
pub mod jobs;
pub(crate) mod keys;
pub mod limits;
pub(crate) mod login_throttle;
pub mod metrics;
pub mod session;
pub(crate) mod state;
pub mod store;
pub mod telemetry;
pub(crate) mod throttle;
pub mod usage;
pub mod verify;
pub mod webhooks;

use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use config::Config;
pub use http::router;
pub use state::AppState;

/// Checks `config` ([`Config::check`]), connects, migrates, starts the background tasks and
/// serves on `listener` until `shutdown` is cancelled; then stops accepting, lets in-flight
/// requests finish for at most the shutdown grace (closing the connections still open after
/// that), flushes usage and returns. Connection limits and timeouts: [`connections`].
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    config.check()?;
    match &config.audit_signer {
        Some(signer) => {
            tracing::info!(public_key = %signer.public_key(), "audit chain heads are signed");
        }
        None => tracing::warn!(
            "audit log is UNSIGNED: whoever can write the database can truncate or rewrite it \
             unnoticed; set KEYWARD_AUDIT_SIGNING_KEY (a 32-byte ed25519 seed in base64, kept \
             outside the database) and KEYWARD_PRODUCTION=true in production"
        ),
    }
    let pool = store::connect(&config)
        .await
        .context("connecting to PostgreSQL")?;
    store::migrate(&pool).await.context("applying migrations")?;
    let state = AppState::new(config, pool.clone());
    let webhook_worker = jobs::webhooks::WorkerConfig {
        attempts: state.metrics.webhook_attempts.clone(),
        ..jobs::webhooks::WorkerConfig::from_config(&state.config.webhooks)
    };

    let background = CancellationToken::new();
    let mut tasks = JoinSet::new();
    tasks.spawn(usage::run_flusher(
        state.usage.clone(),
        pool.clone(),
        state.config.usage.flush_interval,
        background.clone(),
    ));
    tasks.spawn(jobs::invalidate::run_listener(
        pool.clone(),
        state.verifier.clone(),
        background.clone(),
    ));
    tasks.spawn(sweep_sessions(
        pool.clone(),
        state.config.sessions.idle,
        state.login_throttle.clone(),
        background.clone(),
    ));
    if state.config.background_jobs {
        tasks.spawn(jobs::alerts::run(
            pool.clone(),
            Duration::from_secs(60),
            background.clone(),
        ));
        tasks.spawn(jobs::notices::run(
            pool.clone(),
            Duration::from_secs(3600),
            background.clone(),
        ));
        tasks.spawn(jobs::notices::run_due(
            pool.clone(),
            state.config.keys.events_interval,
            background.clone(),
        ));
        tasks.spawn(jobs::retention::run_retention(
            jobs::retention::Retention::from_config(&state.config.usage.retention),
            pool.clone(),
            state.config.usage.retention_interval,
            background.clone(),
        ));
    } else {
        tracing::warn!(
            "background jobs are off (KEYWARD_BACKGROUND_JOBS=false): no alert detection, \
             key notices, due expiries or usage retention"
        );
    }
    tasks.spawn(jobs::webhooks::run_worker(
        pool.clone(),
        webhook_worker,
        background.clone(),
    ));
    if let Some(redis) = &state.config.redis {
        tasks.spawn(limits::redis::run_probe(
            state.verifier.limiter.clone(),
            redis.probe_interval,
            background.clone(),
        ));
    }

    let addr = listener.local_addr()?;
    let limits = state.config.connections;
    tracing::info!(%addr, ?limits, "serving");
    connections::serve(listener, router(state), limits, shutdown).await;

    tracing::info!("stopping: flushing usage");
    background.cancel();
    while let Some(done) = tasks.join_next().await {
        if let Err(e) = done {
            tracing::error!(error = %e, "background task failed");
        }
    }
    pool.close().await;
    Ok(())
}

/// Deletes expired and idle sessions, and ended sign-in throttle windows, hourly.
async fn sweep_sessions(
    pool: sqlx::PgPool,
    idle: Duration,
    login_throttle: login_throttle::LoginThrottle,
    shutdown: CancellationToken,
) {
    jobs::every(Duration::from_secs(3600), shutdown, || async {
        if let Err(e) = login_throttle.sweep().await {
            tracing::warn!(error = %e, "sign-in throttle sweep failed");
        }
        let swept = match pool.acquire().await {
            Ok(mut conn) => store::sessions::delete_expired(&mut conn, idle.as_secs()).await,
            Err(e) => Err(e),
        };
        match swept {
            Ok(n) if n > 0 => tracing::info!(sessions = n, "expired sessions deleted"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "session sweep failed"),
        }
    })
    .await;
}

/// Cancels `token` on SIGTERM or SIGINT.
pub fn cancel_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => tracing::info!("SIGINT received"),
            _ = term => tracing::info!("SIGTERM received"),
        }
        token.cancel();
    });
}
