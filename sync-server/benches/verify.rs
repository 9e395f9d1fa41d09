//! Verification benchmarks against a real PostgreSQL (KEYWARD_TEST_PG_URL, default
//! postgres://postgres@127.0.0.1:5432): a fresh database, one key.
//!
//! - `verify/cache_hit`: parse + cache lookup + digest + state/IP/scope checks + usage count;
//! - `verify/unknown_id`: a well-formed token whose id does not exist (the filter refuses it);
//! - `verify/cold_argon2`: the first check of a key on a node, for reference;
//! - `http/whoami/valid` and `http/whoami/unknown_id`: the same two through the whole router
//!   (every middleware layer, the answer's JSON or problem+json), without sockets. Their ratio
//!   is what a flood of unknown ids costs per request beside a valid call (scripts/flood-bench.sh
//!   measures the same over real connections).

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

    // Distinct unknown ids, cycled: each call misses the cache as a flood's would.
    let unknown: Vec<String> = (0..10_000)
        .map(|_| {
            keyward_core::ApiKeyToken::generate(
                keyward_core::Environment::Live,
                keyward_core::KeyId::new(),
            )
            .expose_secret()
            .to_owned()
        })
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let pick = || &unknown[next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % unknown.len()];
    c.bench_function("verify/unknown_id", |b| {
        b.to_async(&rt).iter(|| async {
            let verdict = f
                .verifier
                .verify(black_box(pick()), Some(&scope), ip, 1, chrono::Utc::now())
                .await
                .unwrap();
            assert_eq!(verdict.code.as_str(), "not_found");
        })
    });

    let app = rt.block_on(async {
        let state = keyward_server::AppState::new(f.config.clone(), f.pool.clone());
        state.verifier.feed_connected().await.unwrap();
        keyward_server::router(state)
    });
    let peer: std::net::SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let call = |token: &str| {
        let req = axum::http::Request::get("/v1/whoami")
            .header("authorization", format!("Bearer {token}"))
            .extension(axum::extract::ConnectInfo(peer))
            .body(axum::body::Body::empty())
            .unwrap();
        let app = app.clone();
        async move {
            use tower::ServiceExt;
            let res = app.oneshot(req).await.unwrap();
            let status = res.status().as_u16();
            let body = axum::body::to_bytes(res.into_body(), 64 * 1024)
                .await
                .unwrap();
            (status, body)
        }
    };
    assert_eq!(rt.block_on(call(&token)).0, 200);
    assert_eq!(rt.block_on(call(pick())).0, 401);
    let mut group = c.benchmark_group("http/whoami");
    group.bench_function("valid", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(call(&token).await) })
    });
    group.bench_function("unknown_id", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(call(pick()).await) })
    });
    group.finish();

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
