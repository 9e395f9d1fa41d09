//! Per-key anomaly detection: pure, deterministic detectors that a background job feeds with a
//! key's traffic in time order and whose [`Finding`]s it turns into alerts.
//!
//! Nothing here does I/O or reads a clock: every time is passed in, every detector is plain
//! serde-serialisable state (persist it as JSON between runs), and the same input always gives
//! the same findings.
//!
//! # The detectors
//!
//! | detector | fed with | reports |
//! |---|---|---|
//! | [`RateDetector`] | requests per window | [`FindingKind::RateSpike`], [`FindingKind::RateDrop`] |
//! | [`RejectedDetector`] | rejected attempts per window, by kind | `*_burst` kinds |
//! | [`NetworkDetector`] | client address of each successful call | [`FindingKind::NewNetwork`] |
//! | [`IdleDetector`] | requests per window | [`FindingKind::IdleKeyUsed`] |
//!
//! [`KeyMonitor`] bundles the four for one key, takes a window's [`WindowCounts`] (the server's
//! per-minute outcome counts summed over the window) and also reports which conditions
//! **cleared**. Each detector's rule and parameters are documented on the detector; the
//! parameters are the per-organisation [`Thresholds`], passed on every call so that a change
//! applies from the next window on (they steer learning only through `ewma_alpha`,
//! `rejected_half_life_hours` and the robust clamping at `z_score` described on
//! [`RateDetector`]).
//!
//! # Contract for the caller
//!
//! * **One monitor per key.** The key id is the caller's; a [`Finding`] names the kind, the
//!   window, the observed and the expected value, which with the key id is an alert.
//! * **Windows in order, every window.** Windows are `window_secs` long (300, five minutes, is
//!   recommended; 60 to 3600 seconds, dividing an hour) and aligned to the Unix epoch; a start
//!   that is not aligned is rounded down. Feed every window of every monitored key, including
//!   windows without traffic (count 0): a busy key that goes silent is only noticed when its
//!   empty windows are fed. A skipped window is taken for a window without traffic (the server
//!   writes no row for a minute without calls, so that is what a gap means) and its findings are
//!   reported with the next window fed; after more than [`MAX_GAP_FILL_DAYS`] without any
//!   window the rate baseline starts learning afresh.
//! * **Replays are no-ops.** A window at or before the last window fed is ignored (no findings,
//!   no learning), so after a crash the job can re-feed from its last checkpoint. Persist the
//!   detector state together with the alerts it produced. A JSON round trip keeps the state to
//!   within the last bit of a float (serde_json parses some floats to the nearest neighbour),
//!   which could only matter for a value exactly on a threshold.
//! * **Level-triggered conditions clear.** `rate_spike`, `rate_drop` and the `*_burst` kinds are
//!   reported in *every* window in which the condition holds ([`FindingKind::is_condition`]).
//!   The condition has cleared at the first later window fed that has no finding of that kind:
//!   open (or update) an alert on a finding, resolve it on the first window without one.
//!   [`KeyMonitor::observe_window`] does this bookkeeping and lists the cleared kinds in
//!   [`WindowReport::cleared`]. Debounce there if flapping alerts are a concern.
//! * **Events do not clear.** `new_network` and `idle_key_used` are reported once, when they
//!   happen; there is no condition to clear, so such an alert is informational (resolve it on
//!   acknowledgement or at once).
//!
//! # Cost (perf sanity note)
//!
//! Everything is O(1) per window apart from two bounded cases: filling a gap costs one O(1)
//! step per skipped window (at most [`MAX_GAP_FILL_DAYS`] of them) and a call to
//! [`NetworkDetector::observe`] scans at most [`NETWORKS_MAX`] entries. Measured once with a
//! throwaway release-mode harness on a 2-vCPU AMD EPYC VM: a [`KeyMonitor`] takes about
//! 110 ns per window (0.45 ms for a 14-day series of 4032 five-minute windows); an address
//! observation about 30 ns for a known network and 0.5 µs for a new one with eviction; a
//! filled 7-day gap 0.45 ms. A monitor's JSON state is about 2 KB plus about 100 bytes per
//! remembered network (8.3 KB when full), parsed in about 3 µs (2 KB) and written in about
//! 20 µs (8 KB). So a
//! 5-minute tick over 100,000 keys, state load and save included, is in the order of a few
//! CPU-seconds, dominated by JSON and the database, not by the detectors. These are notes, not
//! guarantees: no test asserts timings.
//!
//! # Where things are
//!
//! The sensitivity settings and window lengths are in `thresholds`, what a detector reports
//! in `finding`, a window's traffic by outcome in `counts`, the four-detector bundle in
//! `monitor`, and each detector in its own module.

mod counts;
mod finding;
mod idle;
mod monitor;
mod network;
mod rate;
mod rejected;
mod thresholds;

#[cfg(test)]
mod testutil;

use chrono::{DateTime, Utc};

pub use counts::{RejectedKind, WindowCounts};
pub use finding::{Finding, FindingKind};
pub use idle::IdleDetector;
pub use monitor::{KeyMonitor, WindowReport};
pub use network::{NETWORKS_MAX, NetworkDetector, SeenNetwork, network_of};
pub use rate::{Baseline, LEVEL_HALF_LIFE_HOURS, MAX_GAP_FILL_DAYS, RateDetector};
pub use rejected::RejectedDetector;
pub use thresholds::{
    MAX_IDLE_DAYS, MAX_NETWORK_WARMUP_HOURS, MAX_REJECTED_HALF_LIFE_HOURS, MAX_WARMUP_WINDOWS,
    MAX_WINDOW_SECS, MIN_WINDOW_SECS, RECOMMENDED_WINDOW_SECS, Thresholds, check_window_secs,
};

/// Rounds a Unix time down to a multiple of `window_secs`.
fn align(ts: i64, window_secs: u32) -> i64 {
    let w = i64::from(window_secs);
    ts - ts.rem_euclid(w)
}

/// The Unix time `ts` as a `DateTime` (always representable for times built from one).
fn at(ts: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(ts, 0).unwrap_or_default()
}

/// "5-minute", "1-hour", "90-second": a window length for people.
fn window_label(window_secs: u32) -> String {
    if window_secs.is_multiple_of(3600) {
        format!("{}-hour", window_secs / 3600)
    } else if window_secs.is_multiple_of(60) {
        format!("{}-minute", window_secs / 60)
    } else {
        format!("{window_secs}-second")
    }
}
