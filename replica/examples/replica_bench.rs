//! Timings for the desktop's replica (closing-note figures, not a test):
//! a first pull of 10,000 key changes into an empty replica file, then list queries over the
//! 10,000 keys (one page, with search / filter / sort) as the keys screen runs them.
//!
//! `cargo run --release -p keyward-replica --example replica_bench`

use std::time::Instant;

use chrono::Utc;
use keyward_core::api::{ApiKey, Change, ChangeOp, Entity, PullResponse};
use keyward_core::{Environment, IpAllowList, KeyId, KeyStatus, OrgId, ScopeSet};
use keyward_replica::{KeyFilter, KeySort, Replica};

fn key(i: usize, org: OrgId) -> ApiKey {
    let id = KeyId::new();
    let now = Utc::now();
    ApiKey {
        id,
        org_id: org,
        name: format!("service {i:05}"),
        description: None,
        environment: if i.is_multiple_of(3) {
            Environment::Test
        } else {
            Environment::Live
        },
        prefix: format!("kw_live_{}_", id.to_base62()),
        status: KeyStatus::Active,
        scopes: ScopeSet::parse(&[format!("res{}:read", i % 20)]).unwrap(),
        allowed_ips: IpAllowList::default(),
        metadata: serde_json::json!({}),
        disabled: i.is_multiple_of(17),
        expires_at: None,
        revoked_at: None,
        revoke_reason: None,
        rotated_from: None,
        replaced_by: None,
        lineage_id: id,
        created_at: now,
        created_by: None,
        updated_at: now,
        last_used_at: None,
        last_used_ip: None,
        tier: None,
        rate_limits: None,
        quota: None,
    }
}

#[tokio::main]
async fn main() {
    let n = 10_000;
    let org = OrgId::new();
    let changes: Vec<Change> = (0..n)
        .map(|i| {
            let k = key(i, org);
            Change {
                seq: i as i64 + 1,
                entity: Entity::Key,
                id: k.id.to_string(),
                op: ChangeOp::Upsert,
                data: Some(serde_json::to_value(k).unwrap()),
            }
        })
        .collect();
    let dir = std::env::temp_dir().join(format!("replica-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let replica = Replica::open(dir.join("replica.sqlite")).await.unwrap();

    let t = Instant::now();
    for page in changes.chunks(5000) {
        let cursor = page.last().unwrap().seq;
        replica
            .apply_pull(&PullResponse {
                changes: page.to_vec(),
                cursor,
                has_more: false,
                audit_head: None,
                audit_public_key: None,
            })
            .await
            .unwrap();
    }
    println!(
        "pull of {n} key changes into an empty replica (pages of 5000): {:?}",
        t.elapsed()
    );

    let queries = [
        (
            "first page, by created",
            KeyFilter {
                sort: KeySort::Created,
                descending: true,
                limit: Some(50),
                ..Default::default()
            },
        ),
        (
            "search 'service 09'",
            KeyFilter {
                search: Some("service 09".into()),
                limit: Some(50),
                ..Default::default()
            },
        ),
        (
            "status disabled + env test",
            KeyFilter {
                status: Some(KeyStatus::Disabled),
                environment: Some(Environment::Test),
                limit: Some(50),
                ..Default::default()
            },
        ),
        (
            "scope res7:read, by name",
            KeyFilter {
                scope: Some("res7:read".into()),
                sort: KeySort::Name,
                limit: Some(50),
                ..Default::default()
            },
        ),
        (
            "last page",
            KeyFilter {
                limit: Some(50),
                offset: 9950,
                ..Default::default()
            },
        ),
    ];
    for (what, q) in queries {
        let runs = 20;
        let t = Instant::now();
        for _ in 0..runs {
            std::hint::black_box(replica.keys(&q).await.unwrap());
            std::hint::black_box(replica.count(&q).await.unwrap());
        }
        println!(
            "list 50 + count over {n} keys, {what}: {:?} per page",
            t.elapsed() / runs
        );
    }
    replica.close().await;
    let _ = std::fs::remove_dir_all(dir);
}
