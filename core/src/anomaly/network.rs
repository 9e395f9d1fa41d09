//! Successful calls from networks a key was not seen using before.

use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

use super::{Finding, FindingKind, Thresholds};

/// Most networks remembered per key; the least recently seen is forgotten first.
pub const NETWORKS_MAX: usize = 64;

/// The network an address is judged by: its IPv4 /24 or IPv6 /48 (an IPv4-mapped IPv6 address
/// counts as the IPv4 address it carries).
pub fn network_of(ip: IpAddr) -> IpNet {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpNet::V4(Ipv4Net::new_assert(v4, 24).trunc()),
        IpAddr::V6(v6) => IpNet::V6(Ipv6Net::new_assert(v6, 48).trunc()),
    }
}

/// A network a key was used from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeenNetwork {
    pub network: IpNet,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

/// The first successful call from a network (IPv4 /24, IPv6 /48, see [`network_of`]) the key
/// was not seen using before.
///
/// # Rule
///
/// Feed the client address of successful (`valid`) calls with their time, in roughly
/// chronological order (the server's `last_used` samples are enough). The detector remembers
/// at most [`NETWORKS_MAX`] networks, forgetting the least recently seen one when full, so its
/// state is bounded (about 6 KB of JSON when full). A call from a network not remembered is a
/// [`FindingKind::NewNetwork`] event (`observed`: networks remembered including the new one,
/// `expected`: before it; `network` names it), reported once: the next call from it is a known
/// network. During the first [`Thresholds::network_warmup_hours`] after the key's first
/// observed call new networks are learned silently (everything is new then).
///
/// A forgotten network that comes back is new again, so a key used from more than
/// [`NETWORKS_MAX`] networks (a key in a browser or mobile app) keeps reporting; mute this kind
/// for such keys.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NetworkDetector {
    first_call: Option<DateTime<Utc>>,
    networks: Vec<SeenNetwork>,
}

impl NetworkDetector {
    pub fn new() -> NetworkDetector {
        NetworkDetector::default()
    }

    /// The networks remembered, in the order first seen.
    pub fn networks(&self) -> &[SeenNetwork] {
        &self.networks
    }

    /// The first call observed (the start of the warm-up).
    pub fn first_call(&self) -> Option<DateTime<Utc>> {
        self.first_call
    }

    /// Feeds one successful call from `ip` at `at`.
    pub fn observe(
        &mut self,
        thresholds: &Thresholds,
        at: DateTime<Utc>,
        ip: IpAddr,
    ) -> Option<Finding> {
        let th = thresholds.sanitized();
        let network = network_of(ip);
        let first = self.first_call.map_or(at, |f| f.min(at));
        self.first_call = Some(first);
        if let Some(seen) = self.networks.iter_mut().find(|s| s.network == network) {
            seen.last_seen = seen.last_seen.max(at);
            return None;
        }
        let known = self.networks.len();
        while self.networks.len() >= NETWORKS_MAX {
            let stalest = self
                .networks
                .iter()
                .enumerate()
                .min_by_key(|(_, s)| s.last_seen)
                .map_or(0, |(i, _)| i);
            self.networks.remove(stalest);
        }
        self.networks.push(SeenNetwork {
            network,
            first_seen: at,
            last_seen: at,
        });
        if at < first + Duration::hours(i64::from(th.network_warmup_hours)) {
            return None;
        }
        Some(Finding {
            kind: FindingKind::NewNetwork,
            window_start: at,
            window_secs: 0,
            observed: (known + 1) as f64,
            expected: known as f64,
            network: Some(network),
            detail: format!(
                "first successful call from network {network} (address {}) at {}; the key was \
                 known from {known} other network{}",
                ip.to_canonical(),
                at.format("%Y-%m-%d %H:%M:%S UTC"),
                if known == 1 { "" } else { "s" },
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// A key used for three days from two offices, every five minutes.
    fn settled() -> NetworkDetector {
        let th = Thresholds::default();
        let mut det = NetworkDetector::new();
        for i in 0..3 * DAY_WINDOWS {
            let from = if i % 2 == 0 {
                "198.51.100.7"
            } else {
                "2001:db8:aa:1::20"
            };
            assert_eq!(det.observe(&th, window(i), ip(from)), None, "window {i}");
        }
        det
    }

    #[test]
    fn warm_up_learns_silently() {
        let th = Thresholds::default();
        let mut det = NetworkDetector::new();
        // The first day: many networks, no finding.
        for i in 0..DAY_WINDOWS {
            let from = format!("203.0.{}.9", i % 40);
            assert_eq!(det.observe(&th, window(i), ip(&from)), None);
        }
        assert_eq!(det.networks().len(), 40);
        assert_eq!(det.first_call(), Some(t0()));
        // After it, a new one is reported.
        let f = det
            .observe(&th, window(DAY_WINDOWS), ip("192.0.2.1"))
            .unwrap();
        assert_eq!(f.expected, 40.0);
    }

    #[test]
    fn a_new_network_is_reported_once() {
        let th = Thresholds::default();
        let mut det = settled();
        let later = window(3 * DAY_WINDOWS + 10);
        let f = det.observe(&th, later, ip("203.0.113.45")).unwrap();
        assert_eq!(f.kind, FindingKind::NewNetwork);
        assert_eq!(f.network, Some("203.0.113.0/24".parse().unwrap()));
        assert_eq!(f.window_start, later);
        assert_eq!(f.window_secs, 0);
        assert_eq!((f.observed, f.expected), (3.0, 2.0));
        assert!(
            f.detail.starts_with(
                "first successful call from network 203.0.113.0/24 (address 203.0.113.45)"
            ),
            "{}",
            f.detail
        );
        // The second call from it, and another address in it: known.
        assert_eq!(det.observe(&th, later, ip("203.0.113.45")), None);
        assert_eq!(det.observe(&th, later, ip("203.0.113.200")), None);
    }

    #[test]
    fn addresses_in_known_networks_are_not_new() {
        let th = Thresholds::default();
        let mut det = settled();
        let later = window(4 * DAY_WINDOWS);
        assert_eq!(det.observe(&th, later, ip("198.51.100.250")), None);
        assert_eq!(det.observe(&th, later, ip("::ffff:198.51.100.3")), None);
        assert_eq!(det.observe(&th, later, ip("2001:db8:aa:ffff::1")), None);
        // Another /48 is another network.
        assert!(det.observe(&th, later, ip("2001:db8:ab::1")).is_some());
        assert_eq!(det.networks().len(), 3);
    }

    #[test]
    fn memory_is_bounded_and_forgets_the_stalest() {
        let th = Thresholds::default();
        let mut det = settled();
        // 198.51.100.0/24 keeps being used; 100 other networks come and go.
        for n in 0..100usize {
            let t = window(3 * DAY_WINDOWS + n);
            det.observe(&th, t, ip("198.51.100.7"));
            let found = det.observe(&th, t, ip(&format!("10.{n}.0.1")));
            assert!(found.is_some(), "network {n}");
            assert!(det.networks().len() <= NETWORKS_MAX);
        }
        let kept: Vec<String> = det
            .networks()
            .iter()
            .map(|s| s.network.to_string())
            .collect();
        assert_eq!(kept.len(), NETWORKS_MAX);
        assert!(kept.contains(&"198.51.100.0/24".to_owned()));
        assert!(
            !kept.contains(&"2001:db8:aa::/48".to_owned()),
            "stalest forgotten"
        );
        assert!(kept.contains(&"10.99.0.0/24".to_owned()));
        assert!(!kept.contains(&"10.0.0.0/24".to_owned()));
        // State survives JSON.
        let json = serde_json::to_string(&det).unwrap();
        assert_eq!(serde_json::from_str::<NetworkDetector>(&json).unwrap(), det);
    }

    #[test]
    fn networks_are_slash_24_and_slash_48() {
        assert_eq!(network_of(ip("192.0.2.77")).to_string(), "192.0.2.0/24");
        assert_eq!(
            network_of(ip("::ffff:192.0.2.77")).to_string(),
            "192.0.2.0/24"
        );
        assert_eq!(
            network_of(ip("2001:db8:1234:5678::9")).to_string(),
            "2001:db8:1234::/48"
        );
    }
}
