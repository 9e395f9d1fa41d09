//! Argon2 runs on the blocking pool, a bounded number at a time, with a bounded queue: past it,
//! callers get [`Overloaded`] at once (503 with Retry-After) instead of waiting without end.
//!
//! Work done for an organisation (its keys' cold checks, its admins' sign-ins, its new keys) also
//! holds a place of that organisation's own: at most `per_org` runs at once and a small queue
//! behind them. One tenant flooding wrong secrets or cold keys fills its own share and gets 503;
//! the other tenants keep the remaining hashers.

use std::sync::Arc;
use std::time::Duration;

use keyward_core::OrgId;
use moka::sync::Cache;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug, thiserror::Error)]
#[error("too many password hashing jobs are waiting")]
pub struct Overloaded;

#[derive(Clone)]
pub struct Hasher {
    admission: Arc<Semaphore>,
    running: Arc<Semaphore>,
    orgs: Arc<OrgShares>,
}

/// Each organisation's share: `running` runs at once, `running + queue` admitted.
struct OrgShares {
    slots: Cache<OrgId, Arc<OrgSlots>>,
    running: usize,
    queue: usize,
}

struct OrgSlots {
    admission: Arc<Semaphore>,
    running: Arc<Semaphore>,
}

/// A place in the queue; hashing with it waits only for a running slot.
pub struct Admission {
    _place: OwnedSemaphorePermit,
    _org_place: Option<OwnedSemaphorePermit>,
    org_running: Option<Arc<Semaphore>>,
    running: Arc<Semaphore>,
}

impl Hasher {
    /// `concurrent` runs at once, `queue` more waiting; each organisation at most half of the
    /// runs (at least one) and a quarter of the queue. See [`Hasher::with_org_share`].
    pub fn new(concurrent: usize, queue: usize) -> Self {
        Self::with_org_share(concurrent, queue, (concurrent / 2).max(1))
    }

    /// Like [`Hasher::new`] with `per_org` runs at once for one organisation.
    pub fn with_org_share(concurrent: usize, queue: usize, per_org: usize) -> Self {
        let concurrent = concurrent.max(1);
        Hasher {
            admission: Arc::new(Semaphore::new(concurrent + queue)),
            running: Arc::new(Semaphore::new(concurrent)),
            orgs: Arc::new(OrgShares {
                slots: Cache::builder()
                    .max_capacity(100_000)
                    .time_to_idle(Duration::from_secs(600))
                    .build(),
                running: per_org.clamp(1, concurrent),
                queue: (queue / 4).max(1),
            }),
        }
    }

    /// A place for work no organisation is known for yet (a sign-in with an unknown email).
    pub fn admit(&self) -> Result<Admission, Overloaded> {
        let place = self
            .admission
            .clone()
            .try_acquire_owned()
            .map_err(|_| Overloaded)?;
        Ok(Admission {
            _place: place,
            _org_place: None,
            org_running: None,
            running: self.running.clone(),
        })
    }

    /// A place for work done for `org`: refused at once when the organisation's own share of the
    /// queue is full, even if the hashers are free for others.
    pub fn admit_for(&self, org: OrgId) -> Result<Admission, Overloaded> {
        let shares = &self.orgs;
        let slots = shares.slots.get_with(org, || {
            Arc::new(OrgSlots {
                admission: Arc::new(Semaphore::new(shares.running + shares.queue)),
                running: Arc::new(Semaphore::new(shares.running)),
            })
        });
        let org_place = slots
            .admission
            .clone()
            .try_acquire_owned()
            .map_err(|_| Overloaded)?;
        let mut admission = self.admit()?;
        admission._org_place = Some(org_place);
        admission.org_running = Some(slots.running.clone());
        Ok(admission)
    }

    /// Admits and runs in one step.
    pub async fn run<T, F>(&self, f: F) -> Result<T, Overloaded>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.admit()?.run(f).await
    }

    /// Admits for `org` and runs in one step.
    pub async fn run_for<T, F>(&self, org: OrgId, f: F) -> Result<T, Overloaded>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.admit_for(org)?.run(f).await
    }
}

impl Admission {
    pub async fn run<T, F>(self, f: F) -> Result<T, Overloaded>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        // The organisation's slot first: waiting for it holds no global hasher.
        let _org_slot = match &self.org_running {
            Some(s) => Some(s.clone().acquire_owned().await.map_err(|_| Overloaded)?),
            None => None,
        };
        let _slot = self.running.acquire_owned().await.map_err(|_| Overloaded)?;
        match tokio::task::spawn_blocking(f).await {
            Ok(v) => Ok(v),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_refuses_at_once() {
        let h = Hasher::new(1, 1);
        let a = h.admit().expect("first");
        let b = h.admit().expect("second waits");
        assert!(h.admit().is_err());
        drop(b);
        assert_eq!(a.run(|| 7).await.unwrap(), 7);
        assert!(h.admit().is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_organisation_cannot_take_every_hasher() {
        // 4 hashers, a queue of 8: an organisation runs 2 at once and queues 2 more.
        let h = Hasher::with_org_share(4, 8, 2);
        let (greedy, other) = (OrgId::new(), OrgId::new());
        let held: Vec<Admission> = (0..4)
            .map(|_| h.admit_for(greedy).expect("share"))
            .collect();
        assert!(
            h.admit_for(greedy).is_err(),
            "its share of the queue is full"
        );
        // The greedy organisation's runs hang until released; the other tenant is still served.
        let release = Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
        let mut running = Vec::new();
        for a in held {
            let release = release.clone();
            running.push(tokio::spawn(a.run(move || {
                let (lock, cvar) = &*release;
                let mut go = lock.lock().unwrap();
                while !*go {
                    go = cvar.wait(go).unwrap();
                }
            })));
        }
        // (Without the share the greedy runs would hold all four hashers and this would wait
        // for ever: the deadline turns that into a failure.)
        let answer = tokio::time::timeout(Duration::from_secs(30), h.run_for(other, || 42))
            .await
            .expect("another tenant is served while the greedy one's runs hang")
            .expect("admitted");
        assert_eq!(answer, 42);
        {
            let (lock, cvar) = &*release;
            *lock.lock().unwrap() = true;
            cvar.notify_all();
        }
        for r in running {
            r.await.unwrap().unwrap();
        }
    }
}
