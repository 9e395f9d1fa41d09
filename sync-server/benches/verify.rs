//! Verification benchmarks against a real PostgreSQL (KEYWARD_TEST_PG_URL, default
//! postgres://postgres@127.0.0.1:5432): a fresh database, one key.
//!
//! - `verify/cache_hit`: parse + cache lookup + digest + state/IP/scope checks + usage count;
//! - `verify/cold_argon2`: the first check of a key on a node, for reference.

mod common;

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use keyward_core::Scope;
use keyward_core::hash::hash_token;

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let f = rt.block_on(common::fixture(None));
    let scope = Scope::parse("achievements:write").unwrap();
    let ip = Some("127.0.0.1".parse().unwrap());
    let token = f.token.expose_secret().to_owned();
    let verdict = rt
        .block_on(
            f.verifier
                .verify(&token, Some(&scope), ip, 1, chrono::Utc::now()),
        )
        .unwrap();
    assert_eq!(verdict.code.as_str(), "valid");

    c.bench_function("verify/cache_hit", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                f.verifier
                    .verify(black_box(&token), Some(&scope), ip, 1, chrono::Utc::now())
                    .await
                    .unwrap(),
            )
        })
    });

    let hash = hash_token(&f.token);
    let mut group = c.benchmark_group("verify/cold");
    group.sample_size(10);
    group.bench_function("argon2", |b| {
        b.iter(|| black_box(keyward_core::hash::verify_token(&token, &hash)))
    });
    group.finish();

    rt.block_on(f.drop_database());
}

criterion_group!(verify, benches);
criterion_main!(verify);
