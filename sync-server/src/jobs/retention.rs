//! How long each granularity of usage is kept, and the job that deletes what is older.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::store;

/// How long each granularity is kept.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub minutes: chrono::Duration,
    pub hours: chrono::Duration,
    pub days: chrono::Duration,
}

impl Retention {
    /// The configured retention, as the date arithmetic of [`Retention::enforce`] needs it.
    pub fn from_config(r: &crate::config::UsageRetention) -> Retention {
        let signed = |d: Duration| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
        Retention {
            minutes: signed(r.minute),
            hours: signed(r.hour),
            days: signed(r.day),
        }
    }

    /// Deletes what is older than each granularity's retention, as of `now`; returns the rows
    /// removed per granularity (minute, hour, day).
    pub async fn enforce(
        &self,
        pool: &PgPool,
        now: DateTime<Utc>,
    ) -> Result<[u64; 3], sqlx::Error> {
        use keyward_core::api::Granularity as G;
        Ok([
            store::usage::delete_before(pool, G::Minute, now - self.minutes, 10_000).await?,
            store::usage::delete_before(pool, G::Hour, now - self.hours, 10_000).await?,
            store::usage::delete_before(pool, G::Day, now - self.days, 10_000).await?,
        ])
    }
}

/// The retention job: at start and every `interval`.
pub async fn run_retention(
    retention: Retention,
    pool: PgPool,
    interval: Duration,
    shutdown: CancellationToken,
) {
    crate::jobs::every(interval, shutdown, || async {
        let pass = retention
            .enforce(&pool, Utc::now())
            .instrument(tracing::info_span!("usage_retention"));
        match pass.await {
            Ok([0, 0, 0]) => {}
            Ok([minutes, hours, days]) => {
                tracing::info!(minutes, hours, days, "old usage rows deleted")
            }
            Err(e) => tracing::warn!(error = %e, "usage retention failed; retrying next interval"),
        }
    })
    .await;
}
