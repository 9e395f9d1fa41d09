//! What rate limiting costs, beside the `governor` crate on the same workload:
//!
//! - `limits/verify/{plain,limited}`: a cache-hit verification of a key without limits and of a
//!   key with two rules (GCRA 10^6/s and a fixed window of 10^6/s): the difference is what
//!   limiting adds to the hot path, the state being reached through the record already found;
//! - `limits/keyed/{keyward,governor}/{1,10000}keys/{1,2}threads`: the limiter step for one of
//!   N keys with the two rules — ours on the key's state (the record lookup is verification's,
//!   already paid), governor's `check_key` on two keyed limiters (one quota each, its keyed map
//!   lookups included) — per operation;
//! - `limits/direct/{keyward_gcra,governor}`: one GCRA step alone against governor's direct
//!   limiter.
//!
//! The synthetic clock advances 1 ms per check so every request is allowed (the allowed path
//! is the common one); governor uses its own clock with a quota it never reaches.

mod common;

use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use governor::{Quota, RateLimiter};
use keyward_core::Scope;
use keyward_core::api::RateLimitRule;
use keyward_core::limit::{Algorithm, Rule, SharedState};

fn rules() -> Vec<Rule> {
    vec![
        Rule::rate("second", Algorithm::Gcra, 1_000_000, 1, None),
        Rule::rate("minute", Algorithm::FixedWindow, 1_000_000, 1, None),
    ]
}

fn wire_rules() -> Vec<RateLimitRule> {
    vec![
        RateLimitRule {
            name: Some("second".into()),
            algorithm: "gcra".into(),
            limit: 1_000_000,
            window_seconds: 1,
            burst: None,
            consistency: Default::default(),
        },
        RateLimitRule {
            name: Some("window".into()),
            algorithm: "fixed_window".into(),
            limit: 1_000_000,
            window_seconds: 1,
            burst: None,
            consistency: Default::default(),
        },
    ]
}

/// Runs `op(thread, i)` `iters` times on each of `threads` threads; the wall time is the time
/// per operation as each thread sees it under contention.
fn on_threads(threads: usize, iters: u64, op: impl Fn(usize, u64) + Sync) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let op = &op;
            s.spawn(move || {
                for i in 0..iters {
                    op(t, i);
                }
            });
        }
    });
    start.elapsed()
}

fn governor_quota() -> Quota {
    Quota::per_second(NonZeroU32::new(u32::MAX).unwrap())
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let scope = Scope::parse("achievements:write").unwrap();
    let ip = Some("127.0.0.1".parse().unwrap());

    // --- the whole verification, with and without limits ---
    let mut group = c.benchmark_group("limits/verify");
    for (name, limits) in [("plain", None), ("limited", Some(wire_rules()))] {
        let f = rt.block_on(common::fixture(limits));
        let token = f.token.expose_secret().to_owned();
        let base = chrono::Utc::now();
        let tick = AtomicU64::new(0);
        let first = rt
            .block_on(f.verifier.verify(&token, Some(&scope), ip, 1, base))
            .unwrap();
        assert_eq!(first.code.as_str(), "valid");
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                let now = base
                    + chrono::Duration::milliseconds(tick.fetch_add(1, Ordering::Relaxed) as i64);
                let v = f
                    .verifier
                    .verify(black_box(&token), Some(&scope), ip, 1, now)
                    .await
                    .unwrap();
                debug_assert_eq!(v.code.as_str(), "valid");
                black_box(v)
            })
        });
        rt.block_on(f.drop_database());
    }
    group.finish();

    // --- keyed: N keys, 1 or 2 threads ---
    let mut group = c.benchmark_group("limits/keyed");
    let rules = rules();
    for keys in [1usize, 10_000] {
        let states: Vec<SharedState> = (0..keys).map(|_| SharedState::new(rules.len())).collect();
        // governor holds one quota per limiter: two rules are two keyed limiters.
        let governor = [
            RateLimiter::keyed(governor_quota()),
            RateLimiter::keyed(governor_quota()),
        ];
        for threads in [1usize, 2] {
            let clock = AtomicU64::new(1_000_000);
            group.bench_function(
                BenchmarkId::new(format!("keyward/{threads}threads"), keys),
                |b| {
                    b.iter_custom(|iters| {
                        on_threads(threads, iters, |t, i| {
                            let k = ((i as usize).wrapping_mul(7919) + t * 13) % keys;
                            let now = clock.fetch_add(1, Ordering::Relaxed);
                            black_box(states[k].check(&rules, now, 1, 0.8));
                        })
                    })
                },
            );
            group.bench_function(
                BenchmarkId::new(format!("governor/{threads}threads"), keys),
                |b| {
                    b.iter_custom(|iters| {
                        on_threads(threads, iters, |t, i| {
                            let k = ((i as usize).wrapping_mul(7919) + t * 13) % keys;
                            black_box(
                                governor[0].check_key(&k).is_ok()
                                    && governor[1].check_key(&k).is_ok(),
                            );
                        })
                    })
                },
            );
        }
    }
    group.finish();

    // --- one GCRA step against governor's direct limiter ---
    let mut group = c.benchmark_group("limits/direct");
    let gcra = [Rule::rate("g", Algorithm::Gcra, 1_000_000, 1, None)];
    let state = SharedState::new(1);
    let mut now = 1_000_000u64;
    group.bench_function("keyward_gcra", |b| {
        b.iter(|| {
            now += 1;
            black_box(state.check(&gcra, black_box(now), 1, 0.8))
        })
    });
    let direct = RateLimiter::direct(governor_quota());
    group.bench_function("governor", |b| b.iter(|| black_box(direct.check().is_ok())));
    group.finish();

    // --- memory of limiter state per active key ---
    let limits_bytes = std::mem::size_of::<keyward_server::limits::KeyLimits>();
    let rule_bytes: usize = rules
        .iter()
        .map(|r| std::mem::size_of::<Rule>() + r.name.capacity())
        .sum();
    let state_bytes =
        std::mem::size_of::<SharedState>() + SharedState::new(rules.len()).heap_bytes();
    let policy_bytes = keyward_core::limit::headers::policy(&rules).len();
    eprintln!(
        "limiter memory per active key with {} rules: KeyLimits {limits_bytes} B + rules {rule_bytes} B + \
         state {state_bytes} B + policy header {policy_bytes} B = {} B (+ one moka entry in the state cache)",
        rules.len(),
        limits_bytes + rule_bytes + state_bytes + policy_bytes
    );
    let _ = Arc::new(());
}

criterion_group!(limits, benches);
criterion_main!(limits);
