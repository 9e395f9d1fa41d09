//! `keyward-server demo`: a demo organisation with an owner and a viewer, keys in every state
//! and three weeks of usage. Idempotent: fixed ids, and the demo tokens are derived from fixed
//! seeds, so a second run finds everything in place and prints the same tokens. (Real tokens are
//! random and shown once; only demo data is reproducible.)

use std::sync::Arc;

use chrono::{DateTime, Duration, DurationRound, TimeDelta, Utc};
use keyward_core::api::{Quota, RateLimitRule, Role};
use keyward_core::audit_head::HeadSigner;
use keyward_core::hash::hash_token;
use keyward_core::{AdminId, ApiKeyToken, Environment, KeyId, KeyStatus};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use secrecy::SecretString;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::audit::{Actor, AuditEvent};
use crate::store::{self, keys::KeyRow};

pub const ORG: &str = "Demo Org";
pub const EMAIL: &str = "demo@keyward.dev";
pub const VIEWER_EMAIL: &str = "viewer@keyward.dev";
pub const PASSWORD: &str = "keyward-demo-password";

#[derive(Debug, Serialize)]
pub struct DemoKey {
    pub name: String,
    pub status: KeyStatus,
    pub environment: Environment,
    pub token: String,
}

#[derive(Debug, Serialize)]
pub struct DemoOutput {
    pub org: String,
    pub email: String,
    pub viewer_email: String,
    pub password: String,
    pub keys: Vec<DemoKey>,
}

struct Spec {
    n: u8,
    name: &'static str,
    environment: Environment,
    scopes: &'static [&'static str],
    allowed_ips: &'static [&'static str],
    state: SpecState,
    daily_calls: u32,
    /// The demo tier the key inherits its limits from.
    tier: Option<&'static str>,
}

enum SpecState {
    Active,
    Revoked,
    Expired,
    Disabled,
    /// Rotated into spec `n`, inside its grace period.
    RotatedInto(u8),
}

const SPECS: &[Spec] = &[
    Spec {
        n: 1,
        name: "Production backend",
        environment: Environment::Live,
        scopes: &["achievements:*", "badges:read"],
        allowed_ips: &[],
        state: SpecState::Active,
        daily_calls: 40_000,
        tier: None,
    },
    Spec {
        n: 2,
        name: "Staging CI",
        environment: Environment::Test,
        scopes: &["achievements:read"],
        allowed_ips: &[],
        state: SpecState::Active,
        daily_calls: 6_000,
        tier: Some("free"),
    },
    Spec {
        n: 3,
        name: "Partner integration",
        environment: Environment::Live,
        scopes: &["badges:read"],
        allowed_ips: &["203.0.113.0/24", "2001:db8::/32", "127.0.0.1"],
        state: SpecState::Active,
        daily_calls: 9_000,
        tier: Some("pro"),
    },
    Spec {
        n: 4,
        name: "Old mobile app",
        environment: Environment::Live,
        scopes: &["achievements:read"],
        allowed_ips: &[],
        state: SpecState::Revoked,
        daily_calls: 3_000,
        tier: None,
    },
    Spec {
        n: 5,
        name: "Q3 hackathon",
        environment: Environment::Test,
        scopes: &["*:*"],
        allowed_ips: &[],
        state: SpecState::Expired,
        daily_calls: 800,
        tier: None,
    },
    Spec {
        n: 6,
        name: "Paused reporting job",
        environment: Environment::Live,
        scopes: &["reports:read"],
        allowed_ips: &[],
        state: SpecState::Disabled,
        daily_calls: 1_200,
        tier: None,
    },
    Spec {
        n: 7,
        name: "Billing service",
        environment: Environment::Live,
        scopes: &["billing:write", "achievements:read"],
        allowed_ips: &[],
        state: SpecState::RotatedInto(8),
        daily_calls: 12_000,
        tier: Some("pro"),
    },
    Spec {
        n: 8,
        name: "Billing service",
        environment: Environment::Live,
        scopes: &["billing:write", "achievements:read"],
        allowed_ips: &[],
        state: SpecState::Active,
        daily_calls: 2_000,
        tier: Some("pro"),
    },
    Spec {
        n: 9,
        name: "Load test (internal tier)",
        environment: Environment::Live,
        scopes: &["achievements:*"],
        allowed_ips: &[],
        state: SpecState::Active,
        daily_calls: 500,
        tier: Some("internal"),
    },
];

/// The demo tiers: (name, rules as `(algorithm, limit, window_seconds, burst)`, daily and
/// monthly quota, soft threshold). `internal` is high enough for load runs never to hit it.
type TierSpec = (
    &'static str,
    &'static [(&'static str, i64, i64, Option<i64>)],
    Option<i64>,
    Option<i64>,
    f64,
);
const TIERS: &[TierSpec] = &[
    (
        "free",
        &[
            ("gcra", 10, 1, Some(20)),
            ("fixed_window", 1_000, 3_600, None),
        ],
        Some(10_000),
        None,
        0.8,
    ),
    (
        "pro",
        &[
            ("gcra", 100, 1, Some(200)),
            ("sliding_window", 50_000, 3_600, None),
        ],
        Some(1_000_000),
        Some(20_000_000),
        0.8,
    ),
    (
        "internal",
        &[
            ("gcra", 1_000_000, 1, None),
            ("fixed_window", 1_000_000, 10, None),
        ],
        None,
        None,
        0.9,
    ),
];

fn seed_bytes(label: &str) -> [u8; 32] {
    Sha256::digest(format!("keyward-demo:{label}").as_bytes()).into()
}

/// A fixed UUIDv7 (a fixed timestamp and fixed "random" bits) per demo key.
fn demo_id(n: u8) -> KeyId {
    let seed = seed_bytes(&format!("id-{n}"));
    let mut random = [0u8; 10];
    random.copy_from_slice(&seed[..10]);
    KeyId::from_uuid(
        uuid::Builder::from_unix_timestamp_millis(1_764_000_000_000 + u64::from(n), &random)
            .into_uuid(),
    )
}

fn demo_token(spec: &Spec) -> ApiKeyToken {
    ApiKeyToken::from_seed(
        spec.environment,
        demo_id(spec.n),
        seed_bytes(&format!("secret-{}", spec.n)),
    )
}

/// Seeds the demo; `signer` signs the audit chain heads it leaves (the server's audit key).
pub async fn seed(pool: &PgPool, signer: Option<Arc<HeadSigner>>) -> anyhow::Result<DemoOutput> {
    let password = SecretString::from(PASSWORD);
    let mut conn = pool.acquire().await?;
    let create = |email, role| {
        crate::admin::create_signed(pool, signer.clone(), ORG, email, Some(role), &password)
    };
    let owner = match store::admins::find_by_email(&mut conn, EMAIL).await? {
        Some(a) => AdminId::from_uuid(a.id),
        None => create(EMAIL, Role::Owner).await?,
    };
    if store::admins::find_by_email(&mut conn, VIEWER_EMAIL)
        .await?
        .is_none()
    {
        create(VIEWER_EMAIL, Role::Viewer).await?;
    }
    let (org_id, _) = store::orgs::get_or_create(&mut conn, ORG).await?;
    drop(conn);
    let actor = Actor {
        org_id,
        admin_id: Some(owner),
        email: Some(EMAIL.into()),
        client_ip: None,
        request_id: None,
        signer,
    };

    let now = store::now_micros();
    let mut tx = pool.begin().await?;
    for (name, rules, daily, monthly, soft) in TIERS {
        if store::tiers::exists(&mut tx, org_id, name).await? {
            continue;
        }
        let row = store::tiers::TierRow {
            id: uuid::Uuid::now_v7(),
            org_id: org_id.into_uuid(),
            name: (*name).to_owned(),
            rate_limits: sqlx::types::Json(
                rules
                    .iter()
                    .map(|(algorithm, limit, window_seconds, burst)| RateLimitRule {
                        name: None,
                        algorithm: (*algorithm).to_owned(),
                        limit: *limit,
                        window_seconds: *window_seconds,
                        burst: *burst,
                        consistency: Default::default(),
                    })
                    .collect(),
            ),
            quota: (daily.is_some() || monthly.is_some()).then_some(sqlx::types::Json(Quota {
                daily: *daily,
                monthly: *monthly,
                consistency: Default::default(),
            })),
            soft_threshold: *soft,
            created_at: now,
            updated_at: now,
            keys: 0,
        };
        // Names derived exactly as the API would: the demo goes through the same rules.
        let mut errs = keyward_core::validate::FieldErrors::new();
        let checked =
            keyward_core::limit::rules::rate_limits("rate_limits", &row.rate_limits.0, &mut errs)
                .ok_or_else(|| anyhow::anyhow!("demo tier {name} has invalid rules"))?;
        let row = store::tiers::TierRow {
            rate_limits: sqlx::types::Json(checked),
            ..row
        };
        store::tiers::insert(&mut tx, &row).await?;
        let event = AuditEvent::new("tier.create", "tier", name).after(row.to_api());
        store::audit::append(&mut tx, &actor, event).await?;
    }
    let mut keys = Vec::new();
    for spec in SPECS {
        let token = demo_token(spec);
        let id = demo_id(spec.n);
        let row = match store::keys::find_by_id(&mut *tx, id).await? {
            Some(row) => row,
            None => {
                let row = demo_row(spec, &token, org_id.into_uuid(), owner, now);
                store::keys::insert(&mut tx, &row).await?;
                let event = AuditEvent::new("key.create", "key", id).after(row.to_api(now));
                store::audit::append(&mut tx, &actor, event).await?;
                row
            }
        };
        keys.push(DemoKey {
            name: spec.name.to_owned(),
            status: row.status(Utc::now()),
            environment: spec.environment,
            token: token.expose_secret().to_owned(),
        });
    }
    tx.commit().await?;
    seed_usage(pool, org_id, now).await?;
    Ok(DemoOutput {
        org: ORG.into(),
        email: EMAIL.into(),
        viewer_email: VIEWER_EMAIL.into(),
        password: PASSWORD.into(),
        keys,
    })
}

fn demo_row(
    spec: &Spec,
    token: &ApiKeyToken,
    org: uuid::Uuid,
    owner: AdminId,
    now: DateTime<Utc>,
) -> KeyRow {
    let id = demo_id(spec.n).into_uuid();
    let created_at = now - Duration::days(30);
    let (mut revoked_at, mut revoke_reason, mut expires_at, mut disabled, mut replaced_by) =
        (None, None, None, false, None);
    let mut rotated_from = None;
    let mut lineage_id = id;
    match spec.state {
        SpecState::Active => {}
        SpecState::Revoked => {
            revoked_at = Some(now - Duration::days(10));
            revoke_reason = Some("app retired".to_owned());
        }
        SpecState::Expired => expires_at = Some(now - Duration::days(3)),
        SpecState::Disabled => disabled = true,
        SpecState::RotatedInto(n) => {
            revoked_at = Some(now + Duration::hours(12));
            revoke_reason = Some("rotated".to_owned());
            replaced_by = Some(demo_id(n).into_uuid());
        }
    }
    if let Some(old) = SPECS
        .iter()
        .find(|s| matches!(s.state, SpecState::RotatedInto(n) if n == spec.n))
    {
        rotated_from = Some(demo_id(old.n).into_uuid());
        lineage_id = demo_id(old.n).into_uuid();
    }
    KeyRow {
        id,
        org_id: org,
        name: spec.name.to_owned(),
        description: Some(format!("Demo key: {}", spec.name)),
        environment: spec.environment.as_str().to_owned(),
        secret_hash: hash_token(token),
        scopes: spec.scopes.iter().map(|s| s.to_string()).collect(),
        allowed_ips: spec.allowed_ips.iter().map(|s| s.to_string()).collect(),
        metadata: serde_json::json!({"demo": true, "team": "platform"}),
        disabled,
        expires_at,
        revoked_at,
        revoke_reason,
        rotated_from,
        replaced_by,
        lineage_id,
        created_at,
        created_by: Some(owner.into_uuid()),
        updated_at: now,
        last_used_at: None,
        last_used_ip: None,
        seq: 0,
        usage_seq: 0,
        tier: spec.tier.map(str::to_owned),
        rate_limits: None,
        quota: None,
    }
}

/// Three weeks of hourly traffic with a daily rhythm, a few rejected calls, and nothing after a
/// key stopped working. Rows already present are left alone.
async fn seed_usage(
    pool: &PgPool,
    org: keyward_core::OrgId,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let this_hour = now.duration_trunc(TimeDelta::hours(1)).unwrap_or(now);
    let mut rng = StdRng::from_seed(seed_bytes("usage"));
    let (mut keys, mut minutes, mut outcomes, mut counts) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for spec in SPECS {
        let stop = match spec.state {
            SpecState::Revoked => this_hour - Duration::days(10),
            SpecState::Expired => this_hour - Duration::days(3),
            SpecState::Disabled => this_hour - Duration::days(1),
            _ => this_hour,
        };
        let start = match spec.state {
            SpecState::Active if spec.n == 8 => this_hour - Duration::days(2),
            _ => this_hour - Duration::days(21),
        };
        let mut hour = start;
        while hour <= stop {
            let h = hour.format("%H").to_string().parse::<f64>().unwrap_or(0.0);
            let rhythm = 0.55 + 0.45 * ((h - 14.0) / 24.0 * std::f64::consts::TAU).cos();
            let hourly = f64::from(spec.daily_calls) / 24.0 * rhythm * rng.gen_range(0.8..1.2);
            let valid = hourly.round() as i64;
            let id = demo_id(spec.n).into_uuid();
            let mut push = |outcome: &'static str, count: i64| {
                if count > 0 {
                    keys.push(id);
                    minutes.push(hour);
                    outcomes.push(outcome);
                    counts.push(count);
                }
            };
            push("valid", valid);
            push("invalid_secret", i64::from(rng.gen_range(0..3u8)));
            if !spec.allowed_ips.is_empty() {
                push("ip_not_allowed", i64::from(rng.gen_range(0..5u8)));
            }
            push("insufficient_scope", i64::from(rng.gen_ratio(1, 6)));
            hour += Duration::hours(1);
        }
    }
    let orgs = vec![org.into_uuid(); keys.len()];
    sqlx::query!(
        "INSERT INTO usage_minute (key_id, org_id, minute, outcome, count)
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::timestamptz[], $4::text[], $5::int8[])
         ON CONFLICT (key_id, minute, outcome) DO NOTHING",
        &keys,
        &orgs,
        &minutes,
        &outcomes as &[&str],
        &counts,
    )
    .execute(pool)
    .await?;
    let ids: Vec<uuid::Uuid> = SPECS.iter().map(|s| demo_id(s.n).into_uuid()).collect();
    store::usage::rebuild_rollups(&mut *pool.acquire().await?, &ids).await?;
    seed_networks(pool, org, this_hour).await?;
    seed_gateway(pool, org, this_hour, &mut rng).await
}

/// The networks the active demo keys were used from (documentation address ranges).
async fn seed_networks(
    pool: &PgPool,
    org: keyward_core::OrgId,
    this_hour: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let rows: [(u8, &str, i64, i64); 6] = [
        (1, "198.51.100.0/24", 21, 700_000),
        (1, "2001:db8:10::/48", 9, 40_000),
        (2, "192.0.2.0/24", 21, 120_000),
        (3, "203.0.113.0/24", 21, 180_000),
        (8, "198.51.100.0/24", 2, 3_500),
        (9, "127.0.0.0/24", 21, 9_000),
    ];
    for (n, network, days, calls) in rows {
        sqlx::query!(
            "INSERT INTO key_networks (key_id, network, org_id, first_seen, last_seen, calls)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (key_id, network) DO NOTHING",
            demo_id(n).into_uuid(),
            network,
            org.as_uuid(),
            this_hour - Duration::days(days),
            this_hour,
            calls,
        )
        .execute(pool)
        .await?;
    }
    Ok(())
}

/// A week of gateway traffic of the production key: three route groups with their own
/// latency (log-normal around a median), a few client and server errors.
async fn seed_gateway(
    pool: &PgPool,
    org: keyward_core::OrgId,
    this_hour: DateTime<Utc>,
    rng: &mut StdRng,
) -> Result<(), sqlx::Error> {
    use keyward_core::latency::Histogram;
    let key = demo_id(1);
    let present = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM gateway_usage_hour WHERE key_id = $1) AS "present!""#,
        key.as_uuid(),
    )
    .fetch_one(pool)
    .await?;
    if present {
        return Ok(());
    }
    let mut batch = crate::usage::UsageBatch::default();
    let routes: [(&str, f64, f64); 3] = [
        ("achievements", 0.6, 35.0),
        ("badges", 0.3, 80.0),
        (":id", 0.1, 20.0),
    ];
    let mut hour = this_hour - Duration::days(7);
    while hour < this_hour {
        for (route, share, median_ms) in routes {
            let calls = (60.0 * share * rng.gen_range(0.7..1.3)).round() as i64;
            for (status, fraction) in [(2i16, 0.96), (4, 0.03), (5, 0.01)] {
                let n = ((calls as f64) * fraction).round() as i64;
                if n == 0 {
                    continue;
                }
                let mut latency = Histogram::default();
                let mut latency_sum_us = 0i64;
                for _ in 0..n {
                    // Box–Muller: a normal sample for the log of the latency.
                    let (u1, u2): (f64, f64) = (rng.gen_range(1e-9..1.0), rng.gen_range(0.0..1.0));
                    let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                    let us = (median_ms * 1000.0 * (0.5 * z).exp()) as u64;
                    latency.record(us);
                    latency_sum_us += us as i64;
                }
                batch.gateway.insert(
                    (key, hour, route.to_owned(), status),
                    crate::usage::GatewayCell {
                        org_id: org,
                        calls: n,
                        latency_sum_us,
                        latency,
                    },
                );
            }
        }
        hour += Duration::hours(1);
    }
    store::usage::write_batch(pool, &batch).await.map(|_| ())
}

/// The block `keyward-server demo` prints.
pub fn render(out: &DemoOutput) -> String {
    let mut s = String::new();
    s.push_str("Keyward demo data is ready.\n\n");
    s.push_str(&format!("  organization  {}\n", out.org));
    s.push_str(&format!(
        "  sign in       {} / {}   (owner)\n",
        out.email, out.password
    ));
    s.push_str(&format!(
        "                {} / {}   (viewer, read-only)\n\n",
        out.viewer_email, out.password
    ));
    s.push_str(
        "  demo keys (demo tokens are reproducible; real keys are shown once, at creation):\n",
    );
    for k in &out.keys {
        s.push_str(&format!(
            "    {:<9} {:<5} {:<22} {}\n",
            k.status.as_str(),
            k.environment.as_str(),
            k.name,
            k.token
        ));
    }
    s
}
