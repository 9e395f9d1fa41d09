//! The background jobs [`crate::serve`] runs beside the requests: alert detection
//! ([`alerts`]), key notices ([`notices`]), usage retention ([`retention`]), webhook delivery
//! ([`webhooks`]) and cache invalidation from the change feed ([`invalidate`]).
//!
//! Periodic jobs share one loop, [`every`]: a pass at start and then every interval (missed
//! ticks are not made up), until shutdown.

pub mod alerts;
pub(crate) mod invalidate;
pub mod notices;
pub mod retention;
pub(crate) mod webhooks;

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Runs `pass` at start and every `interval` until `shutdown` is cancelled.
pub async fn every<F, Fut>(interval: Duration, shutdown: CancellationToken, mut pass: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        pass().await;
    }
}
