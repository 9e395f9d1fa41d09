//! Cross-node cache invalidation: every key change is announced with `pg_notify` inside its
//! transaction; each node listens and drops its cached copy. A node that loses the listener
//! connection stops trusting its cache until it is listening again, then drops it whole, so it
//! never serves a key that changed while it was not listening.

use std::sync::Arc;
use std::time::Duration;

use keyward_core::KeyId;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;

use crate::store::keys::CHANGES_CHANNEL;
use crate::verify::Verifier;

pub async fn run_listener(pool: PgPool, verifier: Arc<Verifier>, shutdown: CancellationToken) {
    let mut backoff = Duration::from_millis(100);
    while !shutdown.is_cancelled() {
        match listen(&pool).await {
            Ok(mut listener) => {
                verifier.set_feed_live(true);
                verifier.invalidate_all();
                tracing::info!("listening for key changes");
                backoff = Duration::from_millis(100);
                loop {
                    let next = tokio::select! {
                        _ = shutdown.cancelled() => return,
                        next = listener.try_recv() => next,
                    };
                    match next {
                        Ok(Some(n)) => match n.payload().parse::<KeyId>() {
                            Ok(id) => verifier.invalidate(id),
                            Err(_) => verifier.invalidate_all(),
                        },
                        Ok(None) | Err(_) => break,
                    }
                }
                verifier.set_feed_live(false);
                verifier.invalidate_all();
                tracing::warn!("lost the key-change listener; cache bypassed until it is back");
            }
            Err(e) => tracing::warn!(error = %e, "cannot listen for key changes; retrying"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

async fn listen(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANGES_CHANNEL).await?;
    Ok(listener)
}
