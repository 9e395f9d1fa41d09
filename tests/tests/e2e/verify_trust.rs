//! `POST /v1/verify`'s `client_ip` is believed only from a caller in `verify_trusted_callers`:
//! from anyone else invented addresses neither fill a key's networks, nor replace its last-used
//! address, nor unlock an IP-restricted key. And a key keeps at most `max_networks_per_key`
//! networks, forgetting the least recently seen (counted in `/metrics`).

use std::time::Duration;

use keyward_core::KeyId;
use keyward_core::api::{CreateKeyRequest, KeyNetwork, VerifyCode, VerifyRequest};
use keyward_e2e::{TestApp, TestServer, eventually};
use keyward_server::Config;

/// This node believes loopback callers' `client_ip` (the tests call from 127.0.0.1).
fn trust_loopback(c: &mut Config) {
    c.client_ip.verify_trusted_callers =
        vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
}

async fn key(app: &TestApp, allowed_ips: Option<&[&str]>) -> (KeyId, String) {
    let created = app
        .owner
        .create_key(&CreateKeyRequest {
            name: "trust".into(),
            allowed_ips: allowed_ips.map(|ips| ips.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        })
        .await
        .unwrap();
    (created.key.id, created.token.unwrap())
}

fn claiming(token: &str, ip: Option<&str>) -> VerifyRequest {
    VerifyRequest {
        key: token.to_owned(),
        scope: None,
        cost: None,
        client_ip: ip.map(Into::into),
    }
}

/// The key's networks once `done` holds for them (the usage flusher writes every 100 ms).
async fn networks_when(
    app: &TestApp,
    id: KeyId,
    done: impl Fn(&[KeyNetwork]) -> bool,
) -> Vec<KeyNetwork> {
    let mut networks = Vec::new();
    for _ in 0..100 {
        networks = app.owner.key_networks(id).await.unwrap();
        if done(&networks) {
            return networks;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("networks never settled: {networks:?}");
}

#[tokio::test]
async fn an_untrusted_caller_cannot_invent_addresses() {
    let app = TestApp::spawn_with(|c| c.client_ip.verify_trusted_callers.clear()).await;
    let (id, token) = key(&app, None).await;
    for i in 0..50 {
        let v = app
            .anon
            .verify(&claiming(&token, Some(&format!("198.18.{i}.7"))))
            .await
            .unwrap();
        assert!(v.valid, "{v:?}");
    }
    let networks = networks_when(&app, id, |n| n.iter().map(|x| x.calls).sum::<i64>() >= 50).await;
    assert_eq!(
        networks.len(),
        1,
        "only the connection's network: {networks:?}"
    );
    assert_eq!(networks[0].network, "127.0.0.0/24");
    assert_eq!(networks[0].calls, 50);
    let stored = app.owner.get_key(id).await.unwrap();
    assert_eq!(
        stored.last_used_ip.as_deref(),
        Some("127.0.0.1"),
        "the connection's address, not an invented one"
    );
}

#[tokio::test]
async fn a_trusted_caller_speaks_for_its_client() {
    let app = TestApp::spawn_with(trust_loopback).await;
    let (id, token) = key(&app, None).await;
    let v = app
        .anon
        .verify(&claiming(&token, Some("203.0.113.77")))
        .await
        .unwrap();
    assert!(v.valid);
    let networks = networks_when(&app, id, |n| !n.is_empty()).await;
    assert_eq!(
        networks
            .iter()
            .map(|n| n.network.as_str())
            .collect::<Vec<_>>(),
        ["203.0.113.0/24"],
        "the client's network, not the platform service's"
    );
    assert!(
        eventually(Duration::from_secs(10), || async {
            app.owner.get_key(id).await.unwrap().last_used_ip.as_deref() == Some("203.0.113.77")
        })
        .await
    );
}

#[tokio::test]
async fn an_ip_restricted_key_is_not_unlocked_by_a_claimed_address() {
    let app = TestApp::spawn_with(|c| c.client_ip.verify_trusted_callers.clear()).await;
    let (_, private) = key(&app, Some(&["10.0.0.0/8"])).await;
    let (_, local) = key(&app, Some(&["127.0.0.0/8"])).await;
    let code = |server: &keyward_client::KeywardClient, token: &str, ip: Option<&str>| {
        let (server, req) = (server.clone(), claiming(token, ip));
        async move { server.verify(&req).await.unwrap().code }
    };
    // From an untrusted caller (127.0.0.1) the key is judged by 127.0.0.1, whatever it claims.
    assert_eq!(
        code(&app.anon, &private, Some("10.0.0.1")).await,
        VerifyCode::IpNotAllowed
    );
    assert_eq!(
        code(&app.anon, &private, None).await,
        VerifyCode::IpNotAllowed
    );
    assert_eq!(
        code(&app.anon, &local, Some("10.0.0.1")).await,
        VerifyCode::Valid
    );

    // The same keys through a node that trusts loopback: the claimed address decides.
    let node = TestServer::start(&app.db, trust_loopback).await;
    let trusting = node.client();
    assert_eq!(
        code(&trusting, &private, Some("10.0.0.1")).await,
        VerifyCode::Valid
    );
    assert_eq!(
        code(&trusting, &private, Some("192.0.2.1")).await,
        VerifyCode::IpNotAllowed
    );
    assert_eq!(
        code(&trusting, &local, Some("10.0.0.1")).await,
        VerifyCode::IpNotAllowed
    );
}

#[tokio::test]
async fn past_the_cap_the_least_recently_seen_network_is_forgotten_and_counted() {
    let app = TestApp::spawn_with(|c| {
        trust_loopback(c);
        c.keys.max_networks = 3;
    })
    .await;
    let (id, token) = key(&app, None).await;
    let verify = |ip: &'static str| {
        let (client, req) = (app.anon.clone(), claiming(&token, Some(ip)));
        async move { assert!(client.verify(&req).await.unwrap().valid) }
    };
    for ip in ["198.51.100.1", "203.0.113.1", "192.0.2.1"] {
        verify(ip).await;
    }
    networks_when(&app, id, |n| n.len() == 3).await;
    // The first network is used again: the most recently seen now, it stays.
    verify("198.51.100.2").await;
    networks_when(&app, id, |n| {
        n.iter()
            .any(|x| x.network == "198.51.100.0/24" && x.calls == 2)
    })
    .await;
    verify("198.18.0.1").await;
    verify("198.18.1.1").await;
    let networks = networks_when(&app, id, |n| {
        n.iter().any(|x| x.network == "198.18.1.0/24") && n.len() == 3
    })
    .await;
    let mut kept: Vec<&str> = networks.iter().map(|n| n.network.as_str()).collect();
    kept.sort_unstable();
    assert_eq!(
        kept,
        ["198.18.0.0/24", "198.18.1.0/24", "198.51.100.0/24"],
        "the two least recently seen were forgotten"
    );
    let metrics = app.server.metrics().await;
    assert!(
        metrics.contains("keyward_key_networks_evicted_total 2\n"),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("networks_evicted"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
