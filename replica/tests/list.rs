//! Listing keys: search, filters, sort orders and paging, also over 10,000 keys (how fast is
//! `replica/examples/replica_bench.rs`'s figure, not a test bound).

mod common;

use chrono::{Duration, Utc};
use common::*;
use keyward_core::{Environment, KeyStatus};
use keyward_replica::{KeyFilter, KeySort, Replica};

fn names(keys: &[keyward_replica::LocalKey]) -> Vec<&str> {
    keys.iter().map(|k| k.key.name.as_str()).collect()
}

async fn fixture() -> Replica {
    let now = Utc::now();
    let mut billing = server_key("Billing Export", Duration::days(30));
    billing.scopes = scopes(&["billing:read", "usage:read"]);
    billing.last_used_at = Some(now - Duration::hours(1));
    billing.expires_at = Some(now + Duration::days(10));

    let mut deploy = server_key("deploy bot", Duration::days(20));
    deploy.environment = Environment::Test;
    deploy.scopes = scopes(&["deploy:write"]);
    deploy.last_used_at = Some(now - Duration::minutes(1));

    let mut old = server_key("old billing", Duration::days(60));
    old.scopes = scopes(&["billing:read"]);
    old.revoked_at = Some(now - Duration::days(1));

    let mut grace = server_key("grace period", Duration::days(50));
    grace.revoked_at = Some(now + Duration::hours(2));
    grace.expires_at = Some(now + Duration::days(1));

    let mut lapsed = server_key("lapsed", Duration::days(40));
    lapsed.expires_at = Some(now - Duration::hours(1));

    let mut paused = server_key("Paused", Duration::days(10));
    paused.disabled = true;

    let replica = Replica::in_memory().await.unwrap();
    let changes = [billing, deploy, old, grace, lapsed, paused]
        .iter()
        .enumerate()
        .map(|(i, k)| key_change(i as i64 + 1, k))
        .collect();
    replica.apply_pull(&page(changes)).await.unwrap();
    replica
}

#[tokio::test]
async fn search_is_a_case_insensitive_substring() {
    let replica = fixture().await;
    let found = replica
        .keys(&KeyFilter {
            search: Some("BILL".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(names(&found), ["Billing Export", "old billing"]);
}

#[tokio::test]
async fn status_is_judged_by_the_clock() {
    let replica = fixture().await;
    let by = |status| {
        let replica = replica.clone();
        async move {
            let keys = replica
                .keys(&KeyFilter {
                    status: Some(status),
                    ..Default::default()
                })
                .await
                .unwrap();
            assert!(keys.iter().all(|k| k.key.status == status));
            names(&keys)
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(by(KeyStatus::Revoked).await, ["old billing"]);
    assert_eq!(by(KeyStatus::Expired).await, ["lapsed"]);
    assert_eq!(by(KeyStatus::Disabled).await, ["Paused"]);
    assert_eq!(
        by(KeyStatus::Active).await,
        ["Billing Export", "deploy bot", "grace period"],
        "a key in its grace period is still active"
    );
}

#[tokio::test]
async fn environment_and_scope_filters() {
    let replica = fixture().await;
    let test_keys = replica
        .keys(&KeyFilter {
            environment: Some(Environment::Test),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(names(&test_keys), ["deploy bot"]);
    let billing = replica
        .keys(&KeyFilter {
            scope: Some("billing:read".into()),
            environment: Some(Environment::Live),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(names(&billing), ["Billing Export", "old billing"]);
}

#[tokio::test]
async fn sort_orders_put_missing_values_last_and_page() {
    let replica = fixture().await;
    let sorted = |sort, descending| {
        let replica = replica.clone();
        async move {
            let keys = replica
                .keys(&KeyFilter {
                    sort,
                    descending,
                    ..Default::default()
                })
                .await
                .unwrap();
            names(&keys)
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        sorted(KeySort::Name, false).await,
        [
            "Billing Export",
            "deploy bot",
            "grace period",
            "lapsed",
            "old billing",
            "Paused"
        ]
    );
    assert_eq!(
        sorted(KeySort::Created, true).await,
        [
            "Paused",
            "deploy bot",
            "Billing Export",
            "lapsed",
            "grace period",
            "old billing"
        ]
    );
    let last_used = sorted(KeySort::LastUsed, true).await;
    assert_eq!(last_used[..2], ["deploy bot", "Billing Export"]);
    let expiry = sorted(KeySort::Expiry, false).await;
    assert_eq!(expiry[..3], ["lapsed", "grace period", "Billing Export"]);

    let page2 = replica
        .keys(&KeyFilter {
            limit: Some(2),
            offset: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(names(&page2), ["grace period", "lapsed"]);
}

#[tokio::test]
async fn listing_ten_thousand_keys_searches_filters_sorts_and_pages() {
    let replica = Replica::in_memory().await.unwrap();
    let now = Utc::now();
    let changes = (0..10_000)
        .map(|i| {
            let mut k = server_key(&format!("key {i:05}"), Duration::minutes(i));
            if i % 3 == 0 {
                k.scopes = scopes(&["billing:read"]);
            }
            if i % 7 == 0 {
                k.last_used_at = Some(now - Duration::seconds(i));
            }
            if i % 11 == 0 {
                k.revoked_at = Some(now - Duration::seconds(1));
            }
            key_change(i + 1, &k)
        })
        .collect();
    replica.apply_pull(&page(changes)).await.unwrap();
    let named = |range: &mut dyn Iterator<Item = i64>| -> Vec<String> {
        range.map(|i| format!("key {i:05}")).collect()
    };
    let listed = |q: KeyFilter| {
        let replica = &replica;
        async move {
            let keys = replica.keys(&q).await.unwrap();
            names(&keys)
                .into_iter()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        }
    };

    // The first page by name.
    let first = listed(KeyFilter {
        limit: Some(50),
        ..Default::default()
    })
    .await;
    assert_eq!(first, named(&mut (0..50)));
    // Search ignores case: key 09990..=09999, in name order.
    let found = listed(KeyFilter {
        search: Some("KEY 0999".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(found, named(&mut (9990..10_000)));
    // Active keys with the scope, most recently used first, third page: every 21st key
    // (billing:read and used) that is not revoked (every 11th), the most recent (smallest i)
    // first.
    let used = listed(KeyFilter {
        status: Some(KeyStatus::Active),
        scope: Some("billing:read".into()),
        sort: KeySort::LastUsed,
        descending: true,
        limit: Some(50),
        offset: 100,
        ..Default::default()
    })
    .await;
    let expected: Vec<i64> = (0..10_000)
        .filter(|i| i % 21 == 0 && i % 11 != 0)
        .skip(100)
        .take(50)
        .collect();
    assert_eq!(used, named(&mut expected.into_iter()));
    // Oldest first, deep into the list: key i was created i minutes ago.
    let deep = listed(KeyFilter {
        sort: KeySort::Created,
        limit: Some(50),
        offset: 9_000,
        ..Default::default()
    })
    .await;
    assert_eq!(deep, named(&mut (950..1000).rev()));
    // And the whole list, unpaged.
    let all = replica.keys(&KeyFilter::default()).await.unwrap();
    assert_eq!(all.len(), 10_000);
}

mod property {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

        /// Search finds exactly the names holding the needle, ignoring case, in name order.
        #[test]
        fn search_matches_a_lowercase_substring(
            names in prop::collection::vec("[a-zA-Zé ]{1,12}", 0..20),
            needle in "[a-zA-Zé]{1,3}",
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let found = rt.block_on(async {
                let replica = Replica::in_memory().await.unwrap();
                let changes = names
                    .iter()
                    .enumerate()
                    .map(|(i, n)| key_change(i as i64 + 1, &server_key(n, Duration::days(1))))
                    .collect();
                replica.apply_pull(&page(changes)).await.unwrap();
                let filter = KeyFilter { search: Some(needle.clone()), ..Default::default() };
                replica.keys(&filter).await.unwrap()
            });
            let mut expected: Vec<String> = names
                .iter()
                .filter(|n| n.to_lowercase().contains(&needle.to_lowercase()))
                .map(|n| n.to_lowercase())
                .collect();
            expected.sort();
            let got: Vec<String> = found.iter().map(|k| k.key.name.to_lowercase()).collect();
            prop_assert_eq!(got, expected);
        }
    }
}
