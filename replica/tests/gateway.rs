//! A key's gateway traffic and networks: kept per key (and period) as last fetched, replaced by
//! the next fetch, read back with their fetch time; "never fetched" differs from "none".

use chrono::{DateTime, Duration, Utc};
use keyward_core::KeyId;
use keyward_core::api::{GatewayGroup, GatewayUsage, KeyNetwork, StatusCounts};
use keyward_replica::Replica;

fn group(key: KeyId, route: Option<&str>, calls: i64, server_error: i64) -> GatewayGroup {
    GatewayGroup {
        key_id: Some(key),
        key_name: Some("alpha".into()),
        route: route.map(str::to_owned),
        calls,
        status: StatusCounts {
            success: calls - server_error,
            server_error,
            ..StatusCounts::default()
        },
        // Exact in binary, so a JSON round trip keeps it bit for bit.
        error_share: if server_error > 0 { 0.125 } else { 0.0 },
        latency_mean_ms: Some(12.5),
        latency_p50_ms: Some(10.0),
        latency_p95_ms: Some(40.25),
    }
}

fn usage(key: KeyId, to: DateTime<Utc>, span: Duration, calls: i64) -> GatewayUsage {
    GatewayUsage {
        from: to - span,
        to,
        groups: vec![
            group(key, None, calls, 1),
            group(key, Some("orders/:id"), calls - 1, 1),
            group(key, Some("users"), 1, 0),
        ],
    }
}

fn network(name: &str, last_seen: DateTime<Utc>, calls: i64) -> KeyNetwork {
    KeyNetwork {
        network: name.into(),
        first_seen: last_seen - Duration::days(3),
        last_seen,
        calls,
    }
}

/// Times at the replica's precision (microseconds), so what is read back equals what was kept.
fn now() -> DateTime<Utc> {
    DateTime::from_timestamp_micros(Utc::now().timestamp_micros()).unwrap()
}

#[tokio::test]
async fn gateway_traffic_is_kept_per_key_and_period() {
    let replica = Replica::in_memory().await.unwrap();
    let (alpha, beta) = (KeyId::new(), KeyId::new());
    let at = now();
    assert_eq!(replica.key_gateway(alpha, "24h").await.unwrap(), None);

    let day = usage(alpha, at, Duration::hours(24), 10);
    let week = usage(alpha, at, Duration::days(7), 70);
    replica
        .store_key_gateway(alpha, "24h", &day, at)
        .await
        .unwrap();
    replica
        .store_key_gateway(alpha, "7d", &week, at)
        .await
        .unwrap();
    assert_eq!(
        replica.key_gateway(alpha, "24h").await.unwrap(),
        Some((day.clone(), at))
    );
    let (kept, fetched) = replica.key_gateway(alpha, "7d").await.unwrap().unwrap();
    assert_eq!(kept, week);
    assert_eq!(fetched, at);
    assert_eq!(kept.groups[0].route, None, "the key's total first");
    assert_eq!(replica.key_gateway(beta, "24h").await.unwrap(), None);

    // A later fetch replaces the period's copy only.
    let later = at + Duration::minutes(5);
    let empty = GatewayUsage {
        from: later - Duration::hours(24),
        to: later,
        groups: vec![GatewayGroup {
            route: None,
            calls: 0,
            status: StatusCounts::default(),
            error_share: 0.0,
            latency_mean_ms: None,
            latency_p50_ms: None,
            latency_p95_ms: None,
            ..group(alpha, None, 1, 0)
        }],
    };
    replica
        .store_key_gateway(alpha, "24h", &empty, later)
        .await
        .unwrap();
    assert_eq!(
        replica.key_gateway(alpha, "24h").await.unwrap(),
        Some((empty, later))
    );
    assert_eq!(
        replica.key_gateway(alpha, "7d").await.unwrap().unwrap().0,
        week
    );

    // Only the two periods are kept.
    assert!(
        replica
            .store_key_gateway(alpha, "30d", &week, at)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn networks_are_kept_most_recent_first_and_replaced() {
    let replica = Replica::in_memory().await.unwrap();
    let (alpha, beta) = (KeyId::new(), KeyId::new());
    let at = now();
    assert_eq!(replica.key_networks(alpha).await.unwrap(), None);

    let old = network("10.1.2.0/24", at - Duration::days(2), 5);
    let recent = network("2001:db8:1::/48", at - Duration::minutes(3), 40);
    let middle = network("192.0.2.0/24", at - Duration::hours(6), 1);
    replica
        .store_key_networks(alpha, &[old.clone(), recent.clone(), middle.clone()], at)
        .await
        .unwrap();
    replica
        .store_key_networks(beta, std::slice::from_ref(&old), at)
        .await
        .unwrap();
    let (kept, fetched) = replica.key_networks(alpha).await.unwrap().unwrap();
    assert_eq!(kept, vec![recent.clone(), middle, old.clone()]);
    assert_eq!(fetched, at);

    // The next fetch replaces the list; a key fetched with none is "none", not "never".
    let later = at + Duration::minutes(1);
    replica
        .store_key_networks(alpha, std::slice::from_ref(&recent), later)
        .await
        .unwrap();
    assert_eq!(
        replica.key_networks(alpha).await.unwrap(),
        Some((vec![recent], later))
    );
    replica.store_key_networks(alpha, &[], later).await.unwrap();
    assert_eq!(
        replica.key_networks(alpha).await.unwrap(),
        Some((vec![], later))
    );
    assert_eq!(
        replica.key_networks(beta).await.unwrap(),
        Some((vec![old], at)),
        "other keys untouched"
    );
}
