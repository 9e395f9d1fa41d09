//! Synthetic, seeded traffic for the detector tests.

use chrono::{DateTime, Duration, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::WindowCounts;

/// Five-minute windows in a day.
pub const DAY_WINDOWS: usize = 288;

/// Monday 2024-01-01 00:00 UTC.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap()
}

pub fn mins(n: usize) -> Duration {
    Duration::minutes(n as i64)
}

/// Start of the `i`th five-minute window from [`t0`].
pub fn window(i: usize) -> DateTime<Utc> {
    t0() + mins(5 * i)
}

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// A standard normal draw (Box–Muller).
pub fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = 1.0 - rng.gen_range(0.0..1.0);
    let u2: f64 = rng.gen_range(0.0..1.0);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A count with Poisson-like noise: mean `lambda`, standard deviation `sqrt(lambda)`.
pub fn poisson_like(rng: &mut StdRng, lambda: f64) -> u64 {
    (lambda + lambda.sqrt() * normal(rng)).round().max(0.0) as u64
}

/// The daily rhythm: 20 per window at midnight, 400 at noon (UTC), a sine in between.
pub fn seasonal(i: usize) -> f64 {
    let hour = (i % DAY_WINDOWS) as f64 / 12.0 + 2.5 / 60.0;
    210.0 - 190.0 * (std::f64::consts::TAU * hour / 24.0).cos()
}

/// A window with `volume` valid calls and `invalid_secret` refusals.
pub fn counts(volume: u64, invalid_secret: u64) -> WindowCounts {
    WindowCounts {
        valid: volume,
        invalid_secret,
        ..WindowCounts::default()
    }
}
