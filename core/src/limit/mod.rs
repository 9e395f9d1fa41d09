//! Rate-limit algorithms (issue 4 groundwork): pure state machines over an injected clock, so
//! tests advance time instead of sleeping. The store (moka or Redis) and the HTTP headers live in
//! the server; here is only "may this request of `cost` units pass at `now`, and what then".
//!
//! Several rules can apply to one key: [`check_all`] lets a request through only when every rule
//! allows it, and a refused request consumes nothing from any rule.

pub mod fixed_window;
pub mod gcra;
pub mod sliding_window;

use std::num::NonZeroU32;

/// Milliseconds on a monotonic clock chosen by the caller.
pub type Millis = u64;

/// What a rule says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// The rule's limit per window.
    pub limit: u32,
    /// Units left in the current window after this request (0 when refused).
    pub remaining: u32,
    /// Milliseconds until the window resets (or, for GCRA, until the bucket is full again).
    pub reset_ms: u64,
    /// When refused: milliseconds until a request of the same cost could pass.
    pub retry_after_ms: u64,
}

/// One rule's algorithm with its state; `peek` answers without changing anything, `commit`
/// records a request that every rule allowed.
pub trait Limiter {
    fn peek(&self, now: Millis, cost: NonZeroU32) -> Decision;
    fn commit(&mut self, now: Millis, cost: NonZeroU32);
}

/// Checks every rule; consumes from all of them only when all allow. Returns the tightest
/// decision (the refusing rule with the longest wait, else the allowing rule with the fewest
/// units left).
pub fn check_all(
    rules: &mut [&mut dyn Limiter],
    now: Millis,
    cost: NonZeroU32,
) -> Option<Decision> {
    let decisions: Vec<Decision> = rules.iter().map(|r| r.peek(now, cost)).collect();
    let refused = decisions
        .iter()
        .filter(|d| !d.allowed)
        .max_by_key(|d| d.retry_after_ms)
        .copied();
    if let Some(d) = refused {
        return Some(d);
    }
    for r in rules.iter_mut() {
        r.commit(now, cost);
    }
    decisions.into_iter().min_by_key(|d| d.remaining)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one() -> NonZeroU32 {
        NonZeroU32::MIN
    }

    #[test]
    fn a_refused_request_consumes_from_no_rule() {
        let mut burst = fixed_window::FixedWindow::new(NonZeroU32::new(2).unwrap(), 1000);
        let mut hourly = fixed_window::FixedWindow::new(NonZeroU32::new(100).unwrap(), 3_600_000);
        for _ in 0..2 {
            assert!(
                check_all(&mut [&mut burst, &mut hourly], 0, one())
                    .unwrap()
                    .allowed
            );
        }
        let refused = check_all(&mut [&mut burst, &mut hourly], 10, one()).unwrap();
        assert!(!refused.allowed);
        assert_eq!(refused.limit, 2);
        assert_eq!(
            hourly.peek(10, one()).remaining,
            97,
            "the hourly rule lost nothing to the refusal"
        );
        assert!(
            check_all(&mut [&mut burst, &mut hourly], 1000, one())
                .unwrap()
                .allowed
        );
    }
}
