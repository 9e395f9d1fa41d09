//! The secret check of a key whose record is in hand: the digest this node (or the fast
//! verifier) already accepted, else argon2, one run per key id at a time, with throttled
//! callers in the key id's slow lane.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use keyward_core::KeyId;
use keyward_core::hash::{digest_eq, token_digest, verify_token};

use super::{KeyRecord, Verifier, VerifyError};
use crate::store;

impl Verifier {
    pub(super) async fn secret_matches(
        &self,
        key: &KeyRecord,
        token: &str,
        client_ip: Option<IpAddr>,
    ) -> Result<bool, VerifyError> {
        let digest = token_digest(token);
        if let Some(known) = key.digest.get() {
            return Ok(digest_eq(known, &digest));
        }
        if let Some(known) = self.digests.get(&key.id) {
            let _ = key.digest.set(known);
            return Ok(digest_eq(&known, &digest));
        }
        // A stored verifier decides without argon2, either way: a token that matches it is the
        // token argon2 once accepted, one that does not cannot be (HMAC is deterministic).
        if let (Some(fast), Some(stored)) = (&self.fast, key.verifier.as_deref())
            && let Some(ok) = fast.check(stored, token)
        {
            if ok {
                let _ = key.digest.set(digest);
                self.digests.insert(key.id, digest);
            }
            return Ok(ok);
        }
        self.cold_check(key, token, digest, client_ip).await
    }

    /// The verifier to store for a token the server just minted (so even its first use needs no
    /// argon2), when the fast verifier is configured.
    pub fn seal(&self, token: &str) -> Option<[u8; keyward_core::verifier::VERIFIER_LEN]> {
        self.fast.as_ref().map(|f| f.seal(token))
    }

    /// The argon2 path: one run at a time per key id (concurrent first uses of a key wait for
    /// that run and then compare digests, taking no hashing capacity), within the organisation's
    /// share of the hashers.
    ///
    /// Failed checks are counted per key id *and* client network. The key id is public (it is in
    /// the token), so refusing a key id outright after failures would let anyone lock the right
    /// token out. A throttled caller instead goes through the key id's slow lane: at most
    /// [`SLOW_LANE_WAITERS`] wait, and one argon2 run per [`SLOW_LANE_PACE`] is granted among
    /// them; past that, 429. A token that verifies still succeeds once its turn comes, and
    /// callers from other networks never wait in the lane.
    async fn cold_check(
        &self,
        key: &KeyRecord,
        token: &str,
        digest: [u8; 32],
        client_ip: Option<IpAddr>,
    ) -> Result<bool, VerifyError> {
        let who = (key.id, client_ip.map(keyward_core::ip::client_net));
        let _lane = match self.cold_failures.blocked(&who) {
            Some(retry_after_secs) => Some(self.slow_lane(key.id, retry_after_secs).await?),
            None => None,
        };
        let lock = self.cold_locks.get_with(key.id, Default::default);
        let _guard = lock.lock().await;
        if let Some(known) = key
            .digest
            .get()
            .copied()
            .or_else(|| self.digests.get(&key.id))
        {
            let _ = key.digest.set(known);
            return Ok(digest_eq(&known, &digest));
        }
        let admission = self.hasher.admit_for(key.org_id)?;
        let (owned, hash) = (token.to_owned(), key.secret_hash.clone());
        let ok = admission
            .run(move || verify_token(&owned, &hash).unwrap_or(false))
            .await?;
        if ok {
            let _ = key.digest.set(digest);
            self.digests.insert(key.id, digest);
            self.cold_failures.reset(&who);
            self.store_verifier(key, token);
        } else {
            self.cold_failures.record_failure(who);
        }
        Ok(ok)
    }

    /// After argon2 accepted `token`: stores its fast verifier (off the request path), unless
    /// one made with the current key is there already.
    fn store_verifier(&self, key: &KeyRecord, token: &str) {
        let Some(fast) = &self.fast else { return };
        if key.verifier.as_deref().is_some_and(|v| fast.owns(v)) {
            return;
        }
        let (pool, id, sealed) = (self.pool.clone(), key.id, fast.seal(token));
        tokio::spawn(async move {
            if let Err(e) = store::keys::set_verifier(&pool, id, &sealed).await {
                tracing::warn!(key_id = %id, error = %e, "could not store a key's fast verifier");
            }
        });
    }

    /// A place in the key id's slow lane, once its turn has come; `Throttled` when the lane is
    /// full.
    async fn slow_lane(
        &self,
        id: KeyId,
        retry_after_secs: u64,
    ) -> Result<tokio::sync::OwnedSemaphorePermit, VerifyError> {
        let lane = self.slow_lanes.get_with(id, || {
            Arc::new(SlowLane {
                waiters: Arc::new(tokio::sync::Semaphore::new(SLOW_LANE_WAITERS)),
                next: tokio::sync::Mutex::new(tokio::time::Instant::now()),
            })
        });
        let place = lane
            .waiters
            .clone()
            .try_acquire_owned()
            .map_err(|_| VerifyError::Throttled { retry_after_secs })?;
        let turn = {
            let mut next = lane.next.lock().await;
            let turn = (*next).max(tokio::time::Instant::now());
            *next = turn + SLOW_LANE_PACE;
            turn
        };
        tokio::time::sleep_until(turn).await;
        Ok(place)
    }
}

/// Throttled callers of one key id that may wait for a turn at once.
const SLOW_LANE_WAITERS: usize = 4;
/// One throttled argon2 run per key id per this long.
const SLOW_LANE_PACE: Duration = Duration::from_millis(500);

pub(super) struct SlowLane {
    waiters: Arc<tokio::sync::Semaphore>,
    /// When the next turn is granted.
    next: tokio::sync::Mutex<tokio::time::Instant>,
}
