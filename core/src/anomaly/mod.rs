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

mod idle;
mod network;
mod rate;
mod rejected;

#[cfg(test)]
mod testutil;

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::api::FieldError;
use crate::validate::FieldErrors;

pub use idle::IdleDetector;
pub use network::{NETWORKS_MAX, NetworkDetector, SeenNetwork, network_of};
pub use rate::{Baseline, LEVEL_HALF_LIFE_HOURS, MAX_GAP_FILL_DAYS, RateDetector};
pub use rejected::RejectedDetector;

/// The recommended window: five minutes.
pub const RECOMMENDED_WINDOW_SECS: u32 = 300;
/// Shortest window: the server counts per minute.
pub const MIN_WINDOW_SECS: u32 = 60;
/// Longest window: windows must nest in the hour-of-day baselines.
pub const MAX_WINDOW_SECS: u32 = 3600;
/// Most windows a warm-up may last: 90 days of one-minute windows.
pub const MAX_WARMUP_WINDOWS: u32 = 90 * 24 * 60;
/// Longest half-life of the usual rejected rate: 30 days.
pub const MAX_REJECTED_HALF_LIFE_HOURS: u32 = 30 * 24;
/// Longest idle period [`Thresholds::idle_days`] may name: ten years.
pub const MAX_IDLE_DAYS: u32 = 3650;
/// Longest network warm-up: 30 days.
pub const MAX_NETWORK_WARMUP_HOURS: u32 = 30 * 24;

/// An organisation's sensitivity settings for every detector. Absent fields take their default,
/// unknown fields are refused. Check them with [`Thresholds::validate`] before storing them;
/// a detector handed an invalid field uses that field's default instead.
///
/// Per-window figures (`min_volume`, `rejected_burst`) are per detector window; the defaults
/// assume [`RECOMMENDED_WINDOW_SECS`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    /// How many standard deviations from the baseline a window must be to be anomalous, in both
    /// directions. Default 4.0; must be in (0, 100].
    #[cfg_attr(feature = "openapi", schema(exclusive_minimum = 0.0, maximum = 100.0))]
    pub z_score: f64,
    /// A spike must also be at least this multiple of the expected value (a practical, not just
    /// statistical, difference). The rejected-burst detector uses it as "far above usual" too.
    /// Default 2.0; must be in [1, 1000]. 1 turns the check off.
    #[cfg_attr(feature = "openapi", schema(minimum = 1.0, maximum = 1000.0))]
    pub spike_ratio: f64,
    /// A drop must also fall to at most this fraction of the expected value ("a collapse to near
    /// zero"). Default 0.1; must be in [0, 1).
    #[cfg_attr(feature = "openapi", schema(minimum = 0.0, exclusive_maximum = 1.0))]
    pub drop_fraction: f64,
    /// Requests per window below which a key is too quiet for rate findings: a spike needs at
    /// least this many observed requests, a drop at least this many expected. Default 30
    /// (per five minutes).
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    #[cfg_attr(feature = "openapi", schema(maximum = 4294967295_u64))]
    pub min_volume: u64,
    /// Weight of the newest day in the exponentially weighted hour-of-day rate baselines, which
    /// learn once a day. Default 0.2, a half-life of about 3.1 days; must be in (0, 1]. 1 means
    /// "yesterday only".
    #[cfg_attr(feature = "openapi", schema(exclusive_minimum = 0.0, maximum = 1.0))]
    pub ewma_alpha: f64,
    /// No rate findings before the detector has learned this many windows (and every
    /// hour-of-day baseline involved has learned two days). Default 864, three days of
    /// five-minute windows; must be in 1..=[`MAX_WARMUP_WINDOWS`].
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 129600))]
    pub warmup_windows: u32,
    /// Rejected attempts of one kind in one window that are a burst (if also far above the key's
    /// usual). Default 20 (per five minutes); must be at least 1.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 4294967295_u64))]
    pub rejected_burst: u64,
    /// Half-life of the key's usual rejected rate, which learns every window. Default 24
    /// hours; must be in 1..=[`MAX_REJECTED_HALF_LIFE_HOURS`].
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 720))]
    pub rejected_half_life_hours: u32,
    /// Traffic on a key whose previous use is more than this many days ago is reported.
    /// Default 30; must be in 1..=[`MAX_IDLE_DAYS`].
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 3650))]
    pub idle_days: u32,
    /// New networks are not reported during this many hours after the key's first observed
    /// call (everything is new then). Default 24; must be at most [`MAX_NETWORK_WARMUP_HOURS`].
    #[cfg_attr(feature = "openapi", schema(maximum = 720))]
    pub network_warmup_hours: u32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            z_score: 4.0,
            spike_ratio: 2.0,
            drop_fraction: 0.1,
            min_volume: 30,
            ewma_alpha: 0.2,
            warmup_windows: 864,
            rejected_burst: 20,
            rejected_half_life_hours: 24,
            idle_days: 30,
            network_warmup_hours: 24,
        }
    }
}

fn out_of_range(field: &str, message: &str) -> FieldError {
    FieldError::new(field, "out_of_range", message)
}

impl Thresholds {
    /// Every out-of-range field at once, named as in the JSON (`z_score`, `ewma_alpha`, ...).
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errs = FieldErrors::new();
        let checks: [(bool, &str, &str); 10] = [
            (
                self.z_score > 0.0 && self.z_score <= 100.0,
                "z_score",
                "must be greater than 0 and at most 100",
            ),
            (
                (1.0..=1000.0).contains(&self.spike_ratio),
                "spike_ratio",
                "must be between 1 and 1000",
            ),
            (
                (0.0..1.0).contains(&self.drop_fraction),
                "drop_fraction",
                "must be at least 0 and less than 1",
            ),
            (
                self.min_volume <= u64::from(u32::MAX),
                "min_volume",
                "must be at most 4294967295",
            ),
            (
                self.ewma_alpha > 0.0 && self.ewma_alpha <= 1.0,
                "ewma_alpha",
                "must be greater than 0 and at most 1",
            ),
            (
                (1..=MAX_WARMUP_WINDOWS).contains(&self.warmup_windows),
                "warmup_windows",
                "must be between 1 and 129600",
            ),
            (
                (1..=u64::from(u32::MAX)).contains(&self.rejected_burst),
                "rejected_burst",
                "must be between 1 and 4294967295",
            ),
            (
                (1..=MAX_REJECTED_HALF_LIFE_HOURS).contains(&self.rejected_half_life_hours),
                "rejected_half_life_hours",
                "must be between 1 and 720",
            ),
            (
                (1..=MAX_IDLE_DAYS).contains(&self.idle_days),
                "idle_days",
                "must be between 1 and 3650",
            ),
            (
                self.network_warmup_hours <= MAX_NETWORK_WARMUP_HOURS,
                "network_warmup_hours",
                "must be at most 720",
            ),
        ];
        for (ok, field, message) in checks {
            if !ok {
                errs.push(out_of_range(field, message));
            }
        }
        errs.into_result()
    }

    /// A copy with every invalid field replaced by its default, so that unchecked thresholds
    /// can never poison persisted state (a NaN weight would make the baselines NaN forever).
    pub(crate) fn sanitized(&self) -> Thresholds {
        let d = Thresholds::default();
        let Err(errors) = self.validate() else {
            return self.clone();
        };
        let mut t = self.clone();
        for e in errors {
            match e.field.as_str() {
                "z_score" => t.z_score = d.z_score,
                "spike_ratio" => t.spike_ratio = d.spike_ratio,
                "drop_fraction" => t.drop_fraction = d.drop_fraction,
                "min_volume" => t.min_volume = d.min_volume,
                "ewma_alpha" => t.ewma_alpha = d.ewma_alpha,
                "warmup_windows" => t.warmup_windows = d.warmup_windows,
                "rejected_burst" => t.rejected_burst = d.rejected_burst,
                "rejected_half_life_hours" => {
                    t.rejected_half_life_hours = d.rejected_half_life_hours;
                }
                "idle_days" => t.idle_days = d.idle_days,
                _ => t.network_warmup_hours = d.network_warmup_hours,
            }
        }
        t
    }
}

/// Checks a detector window length: 60 to 3600 seconds and dividing an hour evenly.
pub fn check_window_secs(field: &str, secs: u32) -> Result<u32, FieldError> {
    if (MIN_WINDOW_SECS..=MAX_WINDOW_SECS).contains(&secs) && MAX_WINDOW_SECS.is_multiple_of(secs) {
        Ok(secs)
    } else {
        Err(out_of_range(
            field,
            "must be between 60 and 3600 seconds and divide an hour evenly",
        ))
    }
}

/// What a detector found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// Far more requests than the key's baseline for this time of day.
    RateSpike,
    /// A busy key's traffic collapsed to near zero.
    RateDrop,
    /// A burst of `invalid_secret` refusals (a known key id with a wrong secret).
    InvalidSecretBurst,
    /// A burst of `ip_not_allowed` refusals.
    IpNotAllowedBurst,
    /// A burst of `insufficient_scope` refusals.
    InsufficientScopeBurst,
    /// A successful call from a network the key was not seen using before.
    NewNetwork,
    /// Traffic on a key that had been idle for longer than `idle_days`.
    IdleKeyUsed,
}

impl FindingKind {
    pub const ALL: [FindingKind; 7] = [
        FindingKind::RateSpike,
        FindingKind::RateDrop,
        FindingKind::InvalidSecretBurst,
        FindingKind::IpNotAllowedBurst,
        FindingKind::InsufficientScopeBurst,
        FindingKind::NewNetwork,
        FindingKind::IdleKeyUsed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::RateSpike => "rate_spike",
            FindingKind::RateDrop => "rate_drop",
            FindingKind::InvalidSecretBurst => "invalid_secret_burst",
            FindingKind::IpNotAllowedBurst => "ip_not_allowed_burst",
            FindingKind::InsufficientScopeBurst => "insufficient_scope_burst",
            FindingKind::NewNetwork => "new_network",
            FindingKind::IdleKeyUsed => "idle_key_used",
        }
    }

    /// True for level-triggered kinds, reported in every window while they hold and cleared by
    /// the first window without them; false for one-off events (`new_network`,
    /// `idle_key_used`), which never clear.
    pub fn is_condition(self) -> bool {
        !matches!(self, FindingKind::NewNetwork | FindingKind::IdleKeyUsed)
    }
}

impl std::fmt::Display for FindingKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One anomaly: enough, with the caller's key id, for an alert that names the key, the
/// observed and expected values and the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub kind: FindingKind,
    /// Start of the window the finding is about; for a `new_network` event, the call's time.
    pub window_start: DateTime<Utc>,
    /// Length of that window; 0 for a `new_network` event (an instant).
    pub window_secs: u32,
    /// What was seen: requests (rate), rejected attempts (bursts), days idle (`idle_key_used`),
    /// networks known including the new one (`new_network`).
    pub observed: f64,
    /// What the baseline expected: requests for this time of day, the usual rejected attempts
    /// per window, the idle threshold in days, networks known before the new one.
    pub expected: f64,
    /// The network a `new_network` finding is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<IpNet>,
    /// A sentence for people.
    pub detail: String,
}

/// The refusals the [`RejectedDetector`] watches, named as the server's outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectedKind {
    /// A known key id presented with a wrong secret.
    InvalidSecret,
    IpNotAllowed,
    InsufficientScope,
}

impl RejectedKind {
    pub const ALL: [RejectedKind; 3] = [
        RejectedKind::InvalidSecret,
        RejectedKind::IpNotAllowed,
        RejectedKind::InsufficientScope,
    ];

    /// The server's outcome name: `invalid_secret`, `ip_not_allowed`, `insufficient_scope`.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectedKind::InvalidSecret => "invalid_secret",
            RejectedKind::IpNotAllowed => "ip_not_allowed",
            RejectedKind::InsufficientScope => "insufficient_scope",
        }
    }

    pub fn from_outcome(outcome: &str) -> Option<RejectedKind> {
        RejectedKind::ALL
            .into_iter()
            .find(|k| k.as_str() == outcome)
    }

    pub fn finding_kind(self) -> FindingKind {
        match self {
            RejectedKind::InvalidSecret => FindingKind::InvalidSecretBurst,
            RejectedKind::IpNotAllowed => FindingKind::IpNotAllowedBurst,
            RejectedKind::InsufficientScope => FindingKind::InsufficientScopeBurst,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One key's requests in one window, by outcome: the server's per-minute counts summed over
/// the window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WindowCounts {
    pub valid: u64,
    pub rate_limited: u64,
    pub quota_exceeded: u64,
    pub invalid_secret: u64,
    pub ip_not_allowed: u64,
    pub insufficient_scope: u64,
    pub revoked: u64,
    pub expired: u64,
    pub disabled: u64,
    /// Outcomes not listed above.
    pub other: u64,
}

impl WindowCounts {
    /// Adds `n` calls with the server's `outcome` name (`valid`, `rate_limited`, ...); an
    /// unknown name counts as `other`.
    pub fn add(&mut self, outcome: &str, n: u64) {
        let slot = match outcome {
            "valid" => &mut self.valid,
            "rate_limited" => &mut self.rate_limited,
            "quota_exceeded" => &mut self.quota_exceeded,
            "invalid_secret" => &mut self.invalid_secret,
            "ip_not_allowed" => &mut self.ip_not_allowed,
            "insufficient_scope" => &mut self.insufficient_scope,
            "revoked" => &mut self.revoked,
            "expired" => &mut self.expired,
            "disabled" => &mut self.disabled,
            _ => &mut self.other,
        };
        *slot = slot.saturating_add(n);
    }

    /// The key's request volume, what the [`RateDetector`] watches: calls that presented the
    /// key correctly (`valid`, `rate_limited`, `quota_exceeded`). Refusals have their own
    /// detector, so a burst of wrong secrets is not also a rate spike.
    pub fn volume(&self) -> u64 {
        self.valid
            .saturating_add(self.rate_limited)
            .saturating_add(self.quota_exceeded)
    }

    /// Every call naming the key, whatever the outcome: what the [`IdleDetector`] counts as use
    /// (someone trying a long-unused key is worth knowing about even if it is refused).
    pub fn total(&self) -> u64 {
        [
            self.valid,
            self.rate_limited,
            self.quota_exceeded,
            self.invalid_secret,
            self.ip_not_allowed,
            self.insufficient_scope,
            self.revoked,
            self.expired,
            self.disabled,
            self.other,
        ]
        .into_iter()
        .fold(0u64, u64::saturating_add)
    }

    pub fn rejected(&self, kind: RejectedKind) -> u64 {
        match kind {
            RejectedKind::InvalidSecret => self.invalid_secret,
            RejectedKind::IpNotAllowed => self.ip_not_allowed,
            RejectedKind::InsufficientScope => self.insufficient_scope,
        }
    }
}

/// What one window (and any skipped windows before it) produced.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowReport {
    /// New or continuing findings, oldest window first. Open or update alerts for them.
    pub findings: Vec<Finding>,
    /// Conditions ([`FindingKind::is_condition`]) that held in the previous window fed and no
    /// longer hold in this one: resolve their alerts (after applying `findings`).
    pub cleared: Vec<FindingKind>,
}

/// All four detectors for one key, plus the bookkeeping of which conditions are active.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyMonitor {
    window_secs: u32,
    rate: RateDetector,
    rejected: RejectedDetector,
    idle: IdleDetector,
    networks: NetworkDetector,
    /// Conditions that held in the last window fed, sorted.
    active: Vec<FindingKind>,
    /// Start of the last window fed (Unix seconds).
    last_window: Option<i64>,
}

impl KeyMonitor {
    /// A monitor for windows of `window_secs` (see [`check_window_secs`]).
    pub fn new(window_secs: u32) -> Result<KeyMonitor, FieldError> {
        let window_secs = check_window_secs("window_secs", window_secs)?;
        Ok(KeyMonitor {
            window_secs,
            rate: RateDetector::new(window_secs)?,
            rejected: RejectedDetector::new(window_secs)?,
            idle: IdleDetector::new(window_secs)?,
            networks: NetworkDetector::new(),
            active: Vec::new(),
            last_window: None,
        })
    }

    /// Seeds the idle detector with the key's recorded last use (e.g. `last_used_at`), so a
    /// monitor created for an old key can tell that it was idle.
    pub fn with_last_used(mut self, last_used: Option<DateTime<Utc>>) -> KeyMonitor {
        self.idle = self.idle.with_last_used(last_used);
        self
    }

    pub fn window_secs(&self) -> u32 {
        self.window_secs
    }

    /// Feeds one window (see the module's contract): the rate detector sees
    /// [`WindowCounts::volume`], the rejected detector the three refusal kinds, the idle
    /// detector [`WindowCounts::total`]. A replayed window returns an empty report.
    pub fn observe_window(
        &mut self,
        thresholds: &Thresholds,
        window_start: DateTime<Utc>,
        counts: &WindowCounts,
    ) -> WindowReport {
        let start = align(window_start.timestamp(), self.window_secs);
        if self.last_window.is_some_and(|last| start <= last) {
            return WindowReport::default();
        }
        self.last_window = Some(start);
        let mut findings = Vec::new();
        findings.extend(self.idle.observe(thresholds, window_start, counts.total()));
        findings.extend(self.rate.observe(thresholds, window_start, counts.volume()));
        findings.extend(self.rejected.observe(thresholds, window_start, counts));
        findings.sort_by_key(|f| (f.window_start, f.kind));

        let mut now_active: Vec<FindingKind> = findings
            .iter()
            .filter(|f| f.kind.is_condition() && f.window_start.timestamp() == start)
            .map(|f| f.kind)
            .collect();
        now_active.dedup();
        // Cleared: active before, or opened by a skipped window, and not holding now.
        let mut cleared: Vec<FindingKind> = self
            .active
            .iter()
            .copied()
            .chain(findings.iter().map(|f| f.kind).filter(|k| k.is_condition()))
            .filter(|k| !now_active.contains(k))
            .collect();
        cleared.sort();
        cleared.dedup();
        self.active = now_active;
        WindowReport { findings, cleared }
    }

    /// Feeds the client address of one successful call (see [`NetworkDetector::observe`]).
    pub fn observe_address(
        &mut self,
        thresholds: &Thresholds,
        at: DateTime<Utc>,
        ip: std::net::IpAddr,
    ) -> Option<Finding> {
        self.networks.observe(thresholds, at, ip)
    }

    /// Conditions holding in the last window fed.
    pub fn active(&self) -> &[FindingKind] {
        &self.active
    }

    pub fn rate(&self) -> &RateDetector {
        &self.rate
    }

    pub fn rejected(&self) -> &RejectedDetector {
        &self.rejected
    }

    pub fn idle(&self) -> &IdleDetector {
        &self.idle
    }

    pub fn networks(&self) -> &NetworkDetector {
        &self.networks
    }
}

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

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;

    #[test]
    fn default_thresholds_are_valid() {
        assert_eq!(Thresholds::default().validate(), Ok(()));
    }

    #[test]
    fn validation_names_every_bad_field() {
        let bad = Thresholds {
            z_score: 0.0,
            spike_ratio: 0.5,
            drop_fraction: 1.0,
            min_volume: u64::MAX,
            ewma_alpha: 1.5,
            warmup_windows: 0,
            rejected_burst: 0,
            rejected_half_life_hours: 0,
            idle_days: 0,
            network_warmup_hours: 10_000,
        };
        let errors = bad.validate().unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "z_score",
                "spike_ratio",
                "drop_fraction",
                "min_volume",
                "ewma_alpha",
                "warmup_windows",
                "rejected_burst",
                "rejected_half_life_hours",
                "idle_days",
                "network_warmup_hours"
            ]
        );
        assert!(errors.iter().all(|e| e.code == "out_of_range"));
    }

    #[test]
    fn validation_edges() {
        let with = |f: fn(&mut Thresholds)| {
            let mut t = Thresholds::default();
            f(&mut t);
            t.validate()
        };
        assert!(with(|t| t.z_score = -1.0).is_err());
        assert!(with(|t| t.z_score = f64::NAN).is_err());
        assert!(with(|t| t.z_score = f64::INFINITY).is_err());
        assert!(with(|t| t.z_score = 0.5).is_ok());
        assert!(with(|t| t.ewma_alpha = 0.0).is_err());
        assert!(with(|t| t.ewma_alpha = -0.1).is_err());
        assert!(with(|t| t.ewma_alpha = f64::NAN).is_err());
        assert!(with(|t| t.ewma_alpha = 1.0).is_ok());
        assert!(with(|t| t.drop_fraction = 0.0).is_ok());
        assert!(with(|t| t.spike_ratio = 1.0).is_ok());
        assert!(with(|t| t.warmup_windows = MAX_WARMUP_WINDOWS + 1).is_err());
        assert!(with(|t| t.min_volume = 0).is_ok());
        assert!(with(|t| t.network_warmup_hours = 0).is_ok());
    }

    #[test]
    fn window_lengths_are_checked() {
        for bad in [0, 1, 59, 7, 420, 3601, 7200] {
            assert!(check_window_secs("window_secs", bad).is_err(), "{bad}");
            assert!(KeyMonitor::new(bad).is_err(), "{bad}");
            assert!(RateDetector::new(bad).is_err(), "{bad}");
            assert!(RejectedDetector::new(bad).is_err(), "{bad}");
            assert!(IdleDetector::new(bad).is_err(), "{bad}");
        }
        for good in [60, 300, 600, 900, 3600] {
            assert_eq!(check_window_secs("window_secs", good), Ok(good));
        }
        assert_eq!(
            KeyMonitor::new(0).unwrap_err().field,
            "window_secs",
            "the error names the field"
        );
    }

    #[test]
    fn thresholds_serde_defaults_and_refusals() {
        let t: Thresholds = serde_json::from_str(r#"{"z_score": 5.0}"#).unwrap();
        assert_eq!(
            t,
            Thresholds {
                z_score: 5.0,
                ..Thresholds::default()
            }
        );
        assert!(serde_json::from_str::<Thresholds>(r#"{"z_scor": 5.0}"#).is_err());
        // Negative counts and windows cannot even be expressed.
        assert!(serde_json::from_str::<Thresholds>(r#"{"warmup_windows": -1}"#).is_err());
        assert!(serde_json::from_str::<Thresholds>(r#"{"idle_days": -30}"#).is_err());
        let back: Thresholds =
            serde_json::from_str(&serde_json::to_string(&Thresholds::default()).unwrap()).unwrap();
        assert_eq!(back, Thresholds::default());
    }

    #[test]
    fn invalid_thresholds_are_sanitized_not_trusted() {
        let bad = Thresholds {
            ewma_alpha: f64::NAN,
            z_score: -3.0,
            ..Thresholds::default()
        };
        let t = bad.sanitized();
        assert_eq!(t.ewma_alpha, 0.2);
        assert_eq!(t.z_score, 4.0);
        // A detector fed with them keeps finite, serialisable state.
        let mut m = KeyMonitor::new(300).unwrap();
        for i in 0..600 {
            m.observe_window(&bad, t0() + mins(5 * i), &counts(200, 0));
        }
        let json = serde_json::to_string(&m).unwrap();
        assert!(serde_json::from_str::<KeyMonitor>(&json).is_ok(), "{json}");
        let b = m.rate().baseline(t0() + mins(5 * 600)).unwrap();
        assert!(b.expected.is_finite() && b.std_dev.is_finite(), "{b:?}");
    }

    #[test]
    fn window_counts_sum_outcomes() {
        let mut c = WindowCounts::default();
        for (outcome, n) in [
            ("valid", 10),
            ("rate_limited", 2),
            ("quota_exceeded", 1),
            ("invalid_secret", 5),
            ("ip_not_allowed", 4),
            ("insufficient_scope", 3),
            ("revoked", 1),
            ("expired", 1),
            ("disabled", 1),
            ("something_new", 1),
            ("valid", 10),
        ] {
            c.add(outcome, n);
        }
        assert_eq!(c.volume(), 23);
        assert_eq!(c.total(), 39);
        assert_eq!(c.rejected(RejectedKind::IpNotAllowed), 4);
        assert_eq!(
            RejectedKind::from_outcome("insufficient_scope"),
            Some(RejectedKind::InsufficientScope)
        );
        assert_eq!(RejectedKind::from_outcome("valid"), None);
    }

    #[test]
    fn finding_kinds_serialise_as_their_names() {
        for k in FindingKind::ALL {
            assert_eq!(
                serde_json::to_value(k).unwrap(),
                serde_json::json!(k.as_str())
            );
        }
        assert!(FindingKind::RateDrop.is_condition());
        assert!(!FindingKind::NewNetwork.is_condition());
    }

    #[test]
    fn monitor_reports_and_clears_a_spike() {
        let th = Thresholds::default();
        let mut m = KeyMonitor::new(300).unwrap();
        let mut rng = rng(11);
        let spike_at = 10 * DAY_WINDOWS + 150;
        let mut opened = Vec::new();
        let mut cleared_at = Vec::new();
        for i in 0..12 * DAY_WINDOWS {
            let lambda = if (spike_at..spike_at + 3).contains(&i) {
                2000.0
            } else {
                200.0
            };
            let report =
                m.observe_window(&th, window(i), &counts(poisson_like(&mut rng, lambda), 0));
            opened.extend(report.findings.iter().map(|f| (i, f.kind)));
            cleared_at.extend(report.cleared.iter().map(|k| (i, *k)));
            if (spike_at..spike_at + 3).contains(&i) {
                assert_eq!(m.active(), [FindingKind::RateSpike]);
            }
        }
        let spike: Vec<_> = (spike_at..spike_at + 3)
            .map(|i| (i, FindingKind::RateSpike))
            .collect();
        assert_eq!(opened, spike);
        assert_eq!(cleared_at, [(spike_at + 3, FindingKind::RateSpike)]);
        assert!(m.active().is_empty());
    }

    #[test]
    fn monitor_ignores_replayed_windows() {
        let th = Thresholds::default();
        let mut m = KeyMonitor::new(300).unwrap();
        let burst = counts(0, 50);
        let first = m.observe_window(&th, window(0), &burst);
        assert_eq!(first.findings.len(), 1);
        let before = m.clone();
        assert_eq!(
            m.observe_window(&th, window(0), &burst),
            WindowReport::default()
        );
        assert_eq!(m, before);
        let next = m.observe_window(&th, window(1), &counts(0, 0));
        assert_eq!(next.cleared, [FindingKind::InvalidSecretBurst]);
    }

    #[test]
    fn monitor_flags_an_idle_key_and_the_refusals_together() {
        let th = Thresholds::default();
        let mut m = KeyMonitor::new(300)
            .unwrap()
            .with_last_used(Some(t0() - chrono::Duration::days(40)));
        let report = m.observe_window(&th, t0(), &counts(0, 50));
        let kinds: Vec<_> = report.findings.iter().map(|f| f.kind).collect();
        assert_eq!(
            kinds,
            [FindingKind::InvalidSecretBurst, FindingKind::IdleKeyUsed]
        );
        assert_eq!(m.active(), [FindingKind::InvalidSecretBurst]);
    }

    #[test]
    fn monitor_state_round_trips_and_stays_deterministic() {
        let th = Thresholds::default();
        let series: Vec<u64> = {
            let mut rng = rng(5);
            (0..8 * DAY_WINDOWS)
                .map(|i| poisson_like(&mut rng, seasonal(i)))
                .collect()
        };
        let run = |split: Option<usize>| {
            let mut m = KeyMonitor::new(300).unwrap();
            let mut out = Vec::new();
            for (i, &n) in series.iter().enumerate() {
                if split == Some(i) {
                    let json = serde_json::to_string(&m).unwrap();
                    m = serde_json::from_str(&json).unwrap();
                }
                let c = if i == 7 * DAY_WINDOWS + 100 {
                    counts(n * 10, 0)
                } else {
                    counts(n, 0)
                };
                out.push(m.observe_window(&th, window(i), &c));
            }
            (out, m)
        };
        let (whole, m1) = run(None);
        let (split, m2) = run(Some(5 * DAY_WINDOWS + 17));
        // Same findings; values equal up to JSON's float rounding (serde_json without
        // `float_roundtrip` may parse the last bit differently).
        assert_eq!(whole.len(), split.len());
        for (a, b) in whole.iter().zip(&split) {
            assert_eq!(a.cleared, b.cleared);
            assert_eq!(a.findings.len(), b.findings.len());
            for (fa, fb) in a.findings.iter().zip(&b.findings) {
                assert_eq!((fa.kind, fa.window_start), (fb.kind, fb.window_start));
                assert!((fa.expected - fb.expected).abs() < 1e-9 * fa.expected.max(1.0));
            }
        }
        let (b1, b2) = (
            m1.rate().baseline(window(8 * DAY_WINDOWS)).unwrap(),
            m2.rate().baseline(window(8 * DAY_WINDOWS)).unwrap(),
        );
        assert!((b1.expected - b2.expected).abs() < 1e-9 * b1.expected);
        // Without persistence in between, runs are bit-for-bit identical.
        assert_eq!(run(None).1, m1);
        assert!(whole.iter().any(|r| !r.findings.is_empty()));
    }
}
