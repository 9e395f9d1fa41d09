//! Hot-path costs of key verification: parsing a presented token, the cached digest check, and
//! (for reference) token generation and one full argon2 verification.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use keyward_core::hash::{digest_eq, hash_token, token_digest, verify_token};
use keyward_core::{ApiKeyToken, Environment, KeyId};

fn token_benches(c: &mut Criterion) {
    let token = ApiKeyToken::generate(Environment::Live, KeyId::new());
    let raw = token.expose_secret().to_owned();
    let cached = token_digest(&raw);

    let mut group = c.benchmark_group("token");
    group.bench_function("parse", |b| {
        b.iter(|| ApiKeyToken::parse(black_box(&raw)).is_ok())
    });
    group.bench_function("digest", |b| {
        b.iter(|| digest_eq(&token_digest(black_box(&raw)), black_box(&cached)))
    });
    group.bench_function("generate", |b| {
        b.iter(|| ApiKeyToken::generate(black_box(Environment::Live), black_box(KeyId::new())))
    });
    group.finish();
}

fn hash_benches(c: &mut Criterion) {
    let token = ApiKeyToken::generate(Environment::Live, KeyId::new());
    let phc = hash_token(&token);

    let mut group = c.benchmark_group("hash");
    group.sample_size(10);
    group.bench_function("argon2_verify", |b| {
        b.iter(|| verify_token(black_box(token.expose_secret()), black_box(&phc)))
    });
    group.finish();
}

criterion_group!(benches, token_benches, hash_benches);
criterion_main!(benches);
