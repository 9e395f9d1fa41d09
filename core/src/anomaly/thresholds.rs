//! An organisation's sensitivity settings for every detector, their bounds and validation, and
//! the check on a detector window's length.

use serde::{Deserialize, Serialize};

use crate::api::FieldError;
use crate::validate::FieldErrors;

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

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::{IdleDetector, KeyMonitor, RateDetector, RejectedDetector};
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
}
