//! The benchmarks' fixture: a fresh database on the real PostgreSQL (KEYWARD_TEST_PG_URL,
//! default postgres://postgres@127.0.0.1:5432) with one key, and a verifier over it.

use std::sync::Arc;

use keyward_core::api::RateLimitRule;
use keyward_core::hash::hash_token;
use keyward_core::{ApiKeyToken, Environment, KeyId, OrgId};
use keyward_server::limits::Limiter;
use keyward_server::store::keys::KeyRow;
use keyward_server::usage::UsageRecorder;
use keyward_server::verify::{Hasher, Verifier};
use keyward_server::{Config, store};
use sqlx::types::Json;

pub struct Fixture {
    pub verifier: Verifier,
    pub token: ApiKeyToken,
    /// The fixture database (for a whole server's state over it; the verify bench's).
    #[allow(dead_code)]
    pub config: Config,
    pub pool: sqlx::PgPool,
    db: String,
    admin_url: String,
}

/// A fresh database with one key (with `rate_limits` when given) and a verifier over it.
pub async fn fixture(rate_limits: Option<Vec<RateLimitRule>>) -> Fixture {
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
        usage_seq: 0,
        tier: None,
        rate_limits: rate_limits.map(Json),
        quota: None,
    };
    let mut conn = pool.acquire().await.unwrap();
    store::keys::insert(&mut conn, &row).await.unwrap();
    let verifier = Verifier::new(
        pool.clone(),
        &config,
        Hasher::new(2, 64),
        Arc::new(UsageRecorder::default()),
        Arc::new(Limiter::new(&config)),
    )
    // As served: outcome and cache counters for /metrics bumped on every call.
    .with_metrics(&keyward_server::metrics::Metrics::default());
    verifier.feed_connected().await.unwrap();
    Fixture {
        verifier,
        token,
        config,
        pool,
        db,
        admin_url,
    }
}

impl Fixture {
    pub async fn drop_database(self) {
        let admin = sqlx::PgPool::connect(&format!("{}/postgres", self.admin_url))
            .await
            .unwrap();
        drop(self.verifier);
        self.pool.close().await;
        let _ = sqlx::query(&format!("DROP DATABASE {} WITH (FORCE)", self.db))
            .execute(&admin)
            .await;
    }
}
