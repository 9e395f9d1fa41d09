//! Verification benchmarks against a real PostgreSQL (KEYWARD_TEST_PG_URL, default
//! postgres://postgres@127.0.0.1:5432): a fresh database, one key.
//!
//! - `verify/cache_hit`: parse + cache lookup + digest + state/IP/scope checks + usage count;
//! - `verify/cold_argon2`: the first check of a key on a node, for reference.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use keyward_core::hash::hash_token;
use keyward_core::{ApiKeyToken, Environment, KeyId, OrgId, Scope};
use keyward_server::store::keys::KeyRow;
use keyward_server::usage::UsageRecorder;
use keyward_server::verify::{Hasher, Verifier};
use keyward_server::{Config, store};

struct Fixture {
    verifier: Verifier,
    token: ApiKeyToken,
    db: String,
    admin_url: String,
}

async fn fixture() -> Fixture {
    let admin_url = std::env::var("KEYWARD_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let db = format!("kw_bench_{}", uuid::Uuid::new_v4().simple());
    let admin = sqlx::PgPool::connect(&format!("{admin_url}/postgres"))
        .await
        .expect("postgres is running");
    sqlx::query(&format!("CREATE DATABASE {db}"))
        .execute(&admin)
        .await
        .expect("create database");
    let config = Config::for_database(format!("{admin_url}/{db}"));
    let pool = store::connect(&config).await.expect("connect");
    store::migrate(&pool).await.expect("migrate");
    let org = OrgId::new();
    sqlx::query("INSERT INTO orgs (id, name) VALUES ($1, 'bench')")
        .bind(org.as_uuid())
        .execute(&pool)
        .await
        .unwrap();
    let id = KeyId::new();
    let token = ApiKeyToken::generate(Environment::Live, id);
    let now = store::now_micros();
    let row = KeyRow {
        id: id.into_uuid(),
        org_id: org.into_uuid(),
        name: "bench".into(),
        description: None,
        environment: "live".into(),
        secret_hash: hash_token(&token),
        scopes: vec!["achievements:*".into()],
        allowed_ips: vec!["127.0.0.0/8".into()],
        metadata: serde_json::json!({}),
        disabled: false,
        expires_at: None,
        revoked_at: None,
        revoke_reason: None,
        rotated_from: None,
        replaced_by: None,
        lineage_id: id.into_uuid(),
        created_at: now,
        created_by: None,
        updated_at: now,
        last_used_at: None,
        last_used_ip: None,
        seq: 0,
    };
    let mut conn = pool.acquire().await.unwrap();
    store::keys::insert(&mut conn, &row).await.unwrap();
    let verifier = Verifier::new(
        pool,
        &config,
        Hasher::new(2, 64),
        Arc::new(UsageRecorder::default()),
    );
    verifier.set_feed_live(true);
    Fixture {
        verifier,
        token,
        db,
        admin_url,
    }
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let f = rt.block_on(fixture());
    let scope = Scope::parse("achievements:write").unwrap();
    let ip = Some("127.0.0.1".parse().unwrap());
    let token = f.token.expose_secret().to_owned();
    let verdict = rt
        .block_on(
            f.verifier
                .verify(&token, Some(&scope), ip, chrono::Utc::now()),
        )
        .unwrap();
    assert_eq!(verdict.code.as_str(), "valid");

    c.bench_function("verify/cache_hit", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                f.verifier
                    .verify(black_box(&token), Some(&scope), ip, chrono::Utc::now())
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

    rt.block_on(async {
        let admin = sqlx::PgPool::connect(&format!("{}/postgres", f.admin_url))
            .await
            .unwrap();
        drop(f.verifier);
        let _ = sqlx::query(&format!("DROP DATABASE {} WITH (FORCE)", f.db))
            .execute(&admin)
            .await;
    });
}

criterion_group!(verify, benches);
criterion_main!(verify);
