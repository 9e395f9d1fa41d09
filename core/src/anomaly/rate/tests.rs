//! Tests of the rate detector on synthetic, seeded traffic.

use super::super::testutil::*;
use super::*;

const SPIKE_DAY: usize = 10;

/// Feeds `days` of five-minute windows with Poisson-like noise around `lambda(i)`;
/// returns the findings with their window index.
fn run(
    det: &mut RateDetector,
    th: &Thresholds,
    days: usize,
    seed: u64,
    lambda: impl Fn(usize) -> f64,
) -> Vec<(usize, Finding)> {
    let mut rng = rng(seed);
    let mut out = Vec::new();
    for i in 0..days * DAY_WINDOWS {
        let count = poisson_like(&mut rng, lambda(i));
        for f in det.observe(th, window(i), count) {
            out.push((i, f));
        }
    }
    out
}

fn detector() -> RateDetector {
    RateDetector::new(300).unwrap()
}

fn indices(findings: &[(usize, Finding)]) -> Vec<usize> {
    findings.iter().map(|(i, _)| *i).collect()
}

fn near(value: f64, target: f64, tolerance: f64) -> bool {
    (value - target).abs() <= tolerance * target
}

#[test]
fn steady_traffic_gives_no_finding() {
    let th = Thresholds::default();
    for seed in [1, 2, 3] {
        let mut det = detector();
        let found = run(&mut det, &th, 14, seed, |_| 200.0);
        assert!(found.is_empty(), "seed {seed}: {found:?}");
        let b = det.baseline(window(14 * DAY_WINDOWS)).unwrap();
        assert!(near(b.expected, 200.0, 0.03), "{b:?}");
        assert!((12.0..20.0).contains(&b.std_dev), "{b:?}");
    }
}

#[test]
fn daily_rhythm_gives_no_finding() {
    let th = Thresholds::default();
    for seed in [1, 2, 3] {
        let mut det = detector();
        let found = run(&mut det, &th, 14, seed, seasonal);
        assert!(found.is_empty(), "seed {seed}: {found:?}");
        let noon = det.baseline(window(14 * DAY_WINDOWS + 144)).unwrap();
        let night = det.baseline(window(14 * DAY_WINDOWS)).unwrap();
        assert!(near(noon.expected, 400.0, 0.05), "{noon:?}");
        assert!(near(night.expected, 20.0, 0.25), "{night:?}");
    }
}

#[test]
fn a_spike_is_reported_exactly_while_it_lasts() {
    let th = Thresholds::default();
    // Day 10, 14:00–14:15: ten times the usual 200.
    let spike = SPIKE_DAY * DAY_WINDOWS + 14 * 12;
    let mut det = detector();
    let found = run(&mut det, &th, 14, 7, |i| {
        if (spike..spike + 3).contains(&i) {
            2000.0
        } else {
            200.0
        }
    });
    assert_eq!(indices(&found), [spike, spike + 1, spike + 2]);
    for (i, f) in &found {
        assert_eq!(f.kind, FindingKind::RateSpike);
        assert_eq!(f.window_start, window(*i));
        assert_eq!(f.window_secs, 300);
        assert!(near(f.observed, 2000.0, 0.1), "{f:?}");
        assert!(near(f.expected, 200.0, 0.05), "{f:?}");
        assert!(f.detail.contains("5-minute window"), "{}", f.detail);
    }
    assert!(
        found[0]
            .1
            .detail
            .contains("from 2024-01-11 14:00 UTC, expected about 2"),
        "{}",
        found[0].1.detail
    );
}

#[test]
fn a_night_spike_is_reported_on_a_daily_rhythm() {
    // 10× the night-time level at 02:00 is still about the noon level: only a seasonal
    // baseline sees it.
    let th = Thresholds::default();
    let spike = SPIKE_DAY * DAY_WINDOWS + 2 * 12;
    let mut det = detector();
    let found = run(&mut det, &th, 14, 8, |i| {
        let base = seasonal(i);
        if (spike..spike + 3).contains(&i) {
            10.0 * base
        } else {
            base
        }
    });
    assert_eq!(indices(&found), [spike, spike + 1, spike + 2]);
    assert!(found.iter().all(|(_, f)| f.kind == FindingKind::RateSpike));
    assert!(found[0].1.expected < 60.0, "{:?}", found[0].1);
    assert!(found[0].1.observed > 350.0, "{:?}", found[0].1);
}

#[test]
fn a_slow_ramp_is_not_an_anomaly() {
    // Four days flat, then doubling over seven days, then three days at the new level.
    let growth = |i: usize| {
        let days = i as f64 / DAY_WINDOWS as f64;
        2f64.powf(((days - 4.0) / 7.0).clamp(0.0, 1.0))
    };
    let th = Thresholds::default();
    let mut det = detector();
    let found = run(&mut det, &th, 14, 9, |i| 200.0 * growth(i));
    assert!(found.is_empty(), "{found:?}");
    // The hour-of-day baselines lag; the recent level makes up for it.
    let b = det.baseline(window(14 * DAY_WINDOWS)).unwrap();
    assert!(near(b.expected, 400.0, 0.05), "{b:?}");
    assert!(b.level > 1.1, "{b:?}");

    let mut det = detector();
    let found = run(&mut det, &th, 14, 10, |i| seasonal(i) * growth(i));
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn a_quiet_weekend_is_no_spike_on_monday() {
    // Weekends (2024-01-06/07 and 13/14) at 30 % of the weekday rhythm.
    let th = Thresholds::default();
    let mut det = detector();
    let found = run(&mut det, &th, 14, 22, |i| {
        let weekend = (i / DAY_WINDOWS) % 7 >= 5;
        seasonal(i) * if weekend { 0.3 } else { 1.0 }
    });
    assert!(
        found.iter().all(|(_, f)| f.kind == FindingKind::RateDrop),
        "{found:?}"
    );
}

#[test]
fn a_lasting_jump_is_reported_then_learned() {
    let th = Thresholds::default();
    let jump = 7 * DAY_WINDOWS;
    let mut det = detector();
    let found = run(
        &mut det,
        &th,
        14,
        12,
        |i| if i < jump { 200.0 } else { 500.0 },
    );
    assert_eq!(found.first().map(|(i, _)| *i), Some(jump));
    let last = found.last().unwrap().0;
    assert!(last < jump + DAY_WINDOWS / 2, "still reported at {last}");
    let b = det.baseline(window(14 * DAY_WINDOWS)).unwrap();
    assert!(near(b.expected, 500.0, 0.05), "{b:?}");
}

#[test]
fn a_quiet_key_gives_no_rate_finding() {
    let th = Thresholds::default();
    let burst = SPIKE_DAY * DAY_WINDOWS + 100;
    let mut det = detector();
    let mut rng = rng(13);
    for i in 0..14 * DAY_WINDOWS {
        let count = if i == burst {
            12
        } else {
            rand::Rng::gen_range(&mut rng, 0..=3)
        };
        assert_eq!(det.observe(&th, window(i), count), [], "window {i}");
    }
}

#[test]
fn a_quiet_key_turning_busy_is_reported() {
    let th = Thresholds::default();
    let burst = SPIKE_DAY * DAY_WINDOWS + 100;
    let mut det = detector();
    let found = run(
        &mut det,
        &th,
        12,
        14,
        |i| if i == burst { 300.0 } else { 2.0 },
    );
    assert_eq!(indices(&found), [burst]);
}

#[test]
fn a_busy_key_dropping_to_zero_is_reported() {
    let th = Thresholds::default();
    let stop = SPIKE_DAY * DAY_WINDOWS + 9 * 12;
    let resume = stop + 6 * 12;
    let mut det = detector();
    let found = run(&mut det, &th, 12, 15, |i| {
        if (stop..resume).contains(&i) {
            0.0
        } else {
            200.0
        }
    });
    assert_eq!(indices(&found), (stop..resume).collect::<Vec<_>>());
    let (_, first) = &found[0];
    assert_eq!(first.kind, FindingKind::RateDrop);
    assert_eq!(first.observed, 0.0);
    assert!(near(first.expected, 200.0, 0.05), "{first:?}");
    assert!(found.iter().all(|(_, f)| f.kind == FindingKind::RateDrop));
}

#[test]
fn a_retired_key_becomes_quiet_normal() {
    let th = Thresholds::default();
    let stop = 7 * DAY_WINDOWS;
    let mut det = detector();
    let found = run(
        &mut det,
        &th,
        14,
        23,
        |i| if i < stop { 200.0 } else { 0.0 },
    );
    assert_eq!(found.first().map(|(i, _)| *i), Some(stop));
    assert!(found.iter().all(|(_, f)| f.kind == FindingKind::RateDrop));
    let last = found.last().unwrap().0;
    assert!(last < stop + 3 * DAY_WINDOWS, "still reported at {last}");
}

#[test]
fn skipped_windows_count_as_silence() {
    let th = Thresholds::default();
    let mut det = detector();
    let mut rng = rng(16);
    let end = SPIKE_DAY * DAY_WINDOWS;
    for i in 0..end {
        assert_eq!(
            det.observe(&th, window(i), poisson_like(&mut rng, 200.0)),
            []
        );
    }
    // Two hours without any row, then traffic again.
    let found = det.observe(&th, window(end + 24), 200);
    assert_eq!(found.len(), 24);
    assert_eq!(found[0].window_start, window(end));
    assert_eq!(found[23].window_start, window(end + 23));
    assert!(found.iter().all(|f| f.kind == FindingKind::RateDrop));
}

#[test]
fn warm_up_is_silent() {
    let th = Thresholds::default();
    let mut det = detector();
    // Spikes on the key's first and second day: nothing to compare with yet.
    let found = run(&mut det, &th, 3, 17, |i| {
        if i % DAY_WINDOWS == 150 {
            5000.0
        } else {
            200.0
        }
    });
    assert!(found.is_empty(), "{found:?}");
    assert_eq!(det.windows_seen(), 3 * DAY_WINDOWS as u64);
    assert!(RateDetector::new(300).unwrap().baseline(t0()).is_none());
}

#[test]
fn replays_are_ignored_and_long_gaps_restart_learning() {
    let th = Thresholds::default();
    let mut det = detector();
    run(&mut det, &th, 5, 18, |_| 200.0);
    let before = det.clone();
    assert_eq!(det.observe(&th, window(10), 10_000), []);
    assert_eq!(det.observe(&th, window(5 * DAY_WINDOWS - 1), 0), []);
    assert_eq!(det, before);

    let later = window(5 * DAY_WINDOWS) + chrono::Duration::days(MAX_GAP_FILL_DAYS + 1);
    assert_eq!(det.observe(&th, later, 10_000), []);
    assert_eq!(det.windows_seen(), 1);
}

#[test]
fn unaligned_starts_are_rounded_down() {
    let th = Thresholds::default();
    let mut det = detector();
    det.observe(&th, t0() + chrono::Duration::seconds(299), 5);
    // Same window again, once aligned: a replay.
    let before = det.clone();
    det.observe(&th, t0(), 5);
    assert_eq!(det, before);
}

#[test]
fn hourly_windows_work_too() {
    let th = Thresholds {
        min_volume: 360,
        warmup_windows: 72,
        ..Thresholds::default()
    };
    let mut det = RateDetector::new(3600).unwrap();
    let mut rng = rng(19);
    let mut found = Vec::new();
    for h in 0..14 * 24 {
        let lambda = 12.0 * seasonal(h * 12) * if h == 10 * 24 + 15 { 10.0 } else { 1.0 };
        let start = t0() + chrono::Duration::hours(h as i64);
        for f in det.observe(&th, start, poisson_like(&mut rng, lambda)) {
            found.push((h, f));
        }
    }
    assert_eq!(
        found.iter().map(|(h, _)| *h).collect::<Vec<_>>(),
        [10 * 24 + 15]
    );
    assert!(found[0].1.detail.contains("1-hour window"));
}
