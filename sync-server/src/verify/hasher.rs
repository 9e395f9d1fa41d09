//! Argon2 runs on the blocking pool, a bounded number at a time, with a bounded queue: past it,
//! callers get [`Overloaded`] at once (503 with Retry-After) instead of waiting without end.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug, thiserror::Error)]
#[error("too many password hashing jobs are waiting")]
pub struct Overloaded;

#[derive(Clone)]
pub struct Hasher {
    admission: Arc<Semaphore>,
    running: Arc<Semaphore>,
}

/// A place in the queue; hashing with it waits only for a running slot.
pub struct Admission {
    _place: OwnedSemaphorePermit,
    running: Arc<Semaphore>,
}

impl Hasher {
    pub fn new(concurrent: usize, queue: usize) -> Self {
        Hasher {
            admission: Arc::new(Semaphore::new(concurrent + queue)),
            running: Arc::new(Semaphore::new(concurrent)),
        }
    }

    pub fn admit(&self) -> Result<Admission, Overloaded> {
        let place = self
            .admission
            .clone()
            .try_acquire_owned()
            .map_err(|_| Overloaded)?;
        Ok(Admission {
            _place: place,
            running: self.running.clone(),
        })
    }

    /// Admits and runs in one step.
    pub async fn run<T, F>(&self, f: F) -> Result<T, Overloaded>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.admit()?.run(f).await
    }
}

impl Admission {
    pub async fn run<T, F>(self, f: F) -> Result<T, Overloaded>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
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
}
