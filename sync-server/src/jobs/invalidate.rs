//! Cross-node cache invalidation: every key change is announced with `pg_notify` inside its
//! transaction; each node listens and drops its cached copy. A node that loses the listener
//! connection stops trusting its cache until it is listening again, then drops it whole, so it
//! never serves a key that changed while it was not listening, except, while the database itself
//! cannot be reached, records known current within the fail-static window
//! ([`Verifier`]'s `fail_static`). The same notifications keep the filter of known key ids
//! current; it is reloaded on every (re)connection.

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
                match verifier.feed_connected().await {
                    Ok(ids) => tracing::info!(known_ids = ids, "listening for key changes"),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot load the known key ids; retrying");
                        verifier.feed_lost();
                        continue_after(&shutdown, &mut backoff).await;
                        continue;
                    }
                }
                backoff = Duration::from_millis(100);
                loop {
                    let next = tokio::select! {
                        _ = shutdown.cancelled() => return,
                        next = listener.try_recv() => next,
                    };
                    if verifier.known_ids_outgrown() {
                        match verifier.reload_known_ids().await {
                            Ok(ids) => {
                                tracing::info!(known_ids = ids, "known key ids reloaded (outgrown)")
                            }
                            Err(e) => tracing::warn!(error = %e, "cannot reload the known key ids"),
                        }
                    }
                    match next {
                        Ok(Some(n)) => match n.payload().parse::<KeyId>() {
                            Ok(id) => verifier.invalidate(id),
                            Err(_) => verifier.invalidate_all(),
                        },
                        Ok(None) | Err(_) => break,
                    }
                }
                verifier.feed_lost();
                tracing::warn!(
                    "lost the key-change listener; cache bypassed (fail-static while the database is away) until it is back"
                );
            }
            Err(e) => {
                verifier.feed_lost();
                tracing::warn!(error = %e, "cannot listen for key changes; retrying");
            }
        }
        continue_after(&shutdown, &mut backoff).await;
    }
}

async fn continue_after(shutdown: &CancellationToken, backoff: &mut Duration) {
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = tokio::time::sleep(*backoff) => {}
    }
    *backoff = (*backoff * 2).min(MAX_BACKOFF);
}

/// The longest wait between attempts to listen again. Until the listener is back every lookup
/// goes to the database, so after an outage the node must notice the database's return soon:
/// one connection attempt a second is cheap, a storm of uncached lookups is not (the soak saw
/// 5–10 s of it with a 5 s cap).
const MAX_BACKOFF: Duration = Duration::from_secs(1);

async fn listen(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANGES_CHANNEL).await?;
    Ok(listener)
}
