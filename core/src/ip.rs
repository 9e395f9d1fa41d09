//! Client IP allow lists: the networks a key may be used from.
//!
//! Entries are CIDR networks (`10.0.0.0/8`, `2001:db8::/32`) or bare addresses (a /32 or /128).
//! An empty list allows every address. IPv4-mapped IPv6 (`::ffff:1.2.3.4`) is treated as the
//! IPv4 address it carries, both in rules and in the addresses checked.

pub mod client;

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net};
use serde::{Deserialize, Deserializer, Serialize};
use thiserror::Error;

/// The network a client address stands for when counting its failures: the address itself for
/// IPv4, its /64 for IPv6 (one subscriber usually holds a whole /64, so counting /128s would give
/// it 2^64 fresh budgets). IPv4-mapped IPv6 counts as the IPv4 address.
pub fn client_net(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

/// Most entries one allow list may hold.
pub const IP_ALLOW_LIST_MAX: usize = 100;

/// Why an allow-list entry is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IpRuleError {
    #[error("IP rule is empty")]
    Empty,
    #[error("not an IP address (expected e.g. 192.0.2.7, 10.0.0.0/8 or 2001:db8::/32)")]
    InvalidAddress,
    #[error("prefix length after '/' must be a number")]
    InvalidPrefix,
    #[error("prefix length must be at most {max} for an IPv{version} network")]
    PrefixOutOfRange { max: u8, version: u8 },
    #[error("{given} has host bits set; did you mean {suggestion}?")]
    HostBitsSet { given: String, suggestion: String },
    #[error("too many IP rules (at most {IP_ALLOW_LIST_MAX})")]
    TooMany,
}

/// Networks a key may be used from: deduplicated, sorted, at most [`IP_ALLOW_LIST_MAX`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = Vec<String>, example = json!(["10.0.0.0/8", "2001:db8::/32"])))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(type = "string[]"))]
pub struct IpAllowList(Vec<IpNet>);

impl IpAllowList {
    /// Parses a list of rules. On error, returns the index of the first bad item (for too many
    /// items, the index of the first one past the limit).
    pub fn parse(items: &[String]) -> Result<IpAllowList, (usize, IpRuleError)> {
        if items.len() > IP_ALLOW_LIST_MAX {
            return Err((IP_ALLOW_LIST_MAX, IpRuleError::TooMany));
        }
        let mut nets = items
            .iter()
            .enumerate()
            .map(|(i, item)| parse_rule(item).map_err(|e| (i, e)))
            .collect::<Result<Vec<_>, _>>()?;
        nets.sort();
        nets.dedup();
        Ok(IpAllowList(nets))
    }

    /// Whether `ip` may use the key. An empty list allows every address.
    pub fn allows(&self, ip: IpAddr) -> bool {
        if self.0.is_empty() {
            return true;
        }
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// True if there is no rule (every address is allowed).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The rules as networks.
    pub fn nets(&self) -> &[IpNet] {
        &self.0
    }

    /// The rules as CIDR strings (`10.0.0.0/8`, `192.0.2.7/32`), in order.
    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(IpNet::to_string).collect()
    }
}

impl<'de> Deserialize<'de> for IpAllowList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let items = Vec::<String>::deserialize(deserializer)?;
        IpAllowList::parse(&items)
            .map_err(|(i, e)| serde::de::Error::custom(format!("IP rule {i}: {e}")))
    }
}

/// Parses one rule: a CIDR network without host bits, or a bare address.
fn parse_rule(raw: &str) -> Result<IpNet, IpRuleError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(IpRuleError::Empty);
    }
    let net = match raw.split_once('/') {
        None => {
            let addr: IpAddr = raw.parse().map_err(|_| IpRuleError::InvalidAddress)?;
            IpNet::from(addr)
        }
        Some((addr, prefix)) => {
            let addr: IpAddr = addr.parse().map_err(|_| IpRuleError::InvalidAddress)?;
            let (max, version) = if addr.is_ipv4() { (32, 4) } else { (128, 6) };
            if prefix.is_empty() || prefix.len() > 3 || !prefix.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(IpRuleError::InvalidPrefix);
            }
            let prefix: u8 = prefix
                .parse()
                .map_err(|_| IpRuleError::PrefixOutOfRange { max, version })?;
            let net = IpNet::new(addr, prefix)
                .map_err(|_| IpRuleError::PrefixOutOfRange { max, version })?;
            if net.trunc() != net {
                return Err(IpRuleError::HostBitsSet {
                    given: net.to_string(),
                    suggestion: net.trunc().to_string(),
                });
            }
            net
        }
    };
    Ok(canonical(net))
}

/// Rewrites an IPv4-mapped IPv6 network (`::ffff:a.b.c.d/96+n`) as the IPv4 network it covers,
/// so it matches the canonicalised addresses [`IpAllowList::allows`] checks.
fn canonical(net: IpNet) -> IpNet {
    let IpNet::V6(v6) = net else {
        return net;
    };
    match v6.addr().to_ipv4_mapped() {
        Some(v4) if v6.prefix_len() >= 96 => {
            IpNet::V4(Ipv4Net::new(v4, v6.prefix_len() - 96).expect("prefix is 0..=32"))
        }
        _ => net,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "openapi")]
    #[test]
    fn openapi_schema_is_a_list_of_strings() {
        use utoipa::PartialSchema;
        let schema = serde_json::to_value(IpAllowList::schema()).unwrap();
        assert_eq!(schema["type"], "array");
        assert_eq!(schema["items"]["type"], "string");
    }

    fn list(items: &[&str]) -> IpAllowList {
        IpAllowList::parse(&items.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn err(item: &str) -> IpRuleError {
        IpAllowList::parse(&[item.to_owned()]).unwrap_err().1
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn empty_list_allows_everything() {
        let l = IpAllowList::default();
        assert!(l.is_empty());
        assert!(l.allows(ip("203.0.113.9")));
        assert!(l.allows(ip("2001:db8::1")));
    }

    #[test]
    fn ipv4_networks_and_hosts() {
        let l = list(&["10.0.0.0/8", "192.0.2.7"]);
        assert!(l.allows(ip("10.1.2.3")));
        assert!(l.allows(ip("192.0.2.7")));
        assert!(!l.allows(ip("192.0.2.8")));
        assert!(!l.allows(ip("11.0.0.1")));
        assert_eq!(l.to_strings(), ["10.0.0.0/8", "192.0.2.7/32"]);
    }

    #[test]
    fn ipv6_networks_and_hosts() {
        let l = list(&["2001:db8::/32", "::1"]);
        assert!(l.allows(ip("2001:db8:1::5")));
        assert!(l.allows(ip("::1")));
        assert!(!l.allows(ip("2001:db9::1")));
        assert!(!l.allows(ip("10.0.0.1")));
    }

    #[test]
    fn ipv4_mapped_addresses_match_ipv4_rules() {
        let l = list(&["10.0.0.0/8"]);
        assert!(l.allows(ip("::ffff:10.9.8.7")));
        assert!(!l.allows(ip("::ffff:11.9.8.7")));
        // A mapped rule is stored as IPv4, so plain IPv4 clients match it too.
        let mapped = list(&["::ffff:192.0.2.0/120", "::ffff:198.51.100.1"]);
        assert_eq!(mapped.to_strings(), ["192.0.2.0/24", "198.51.100.1/32"]);
        assert!(mapped.allows(ip("192.0.2.44")));
        assert!(mapped.allows(ip("::ffff:198.51.100.1")));
    }

    #[test]
    fn host_bits_are_rejected_with_a_suggestion() {
        let e = err("10.0.0.1/8");
        assert_eq!(
            e.to_string(),
            "10.0.0.1/8 has host bits set; did you mean 10.0.0.0/8?"
        );
        assert_eq!(
            err("2001:db8::1/32").to_string(),
            "2001:db8::1/32 has host bits set; did you mean 2001:db8::/32?"
        );
    }

    #[test]
    fn garbage_is_rejected() {
        assert_eq!(err(""), IpRuleError::Empty);
        assert_eq!(err("  "), IpRuleError::Empty);
        assert_eq!(err("example.com"), IpRuleError::InvalidAddress);
        assert_eq!(err("10.0.0/8"), IpRuleError::InvalidAddress);
        assert_eq!(err("10.0.0.0/"), IpRuleError::InvalidPrefix);
        assert_eq!(err("10.0.0.0/+8"), IpRuleError::InvalidPrefix);
        assert_eq!(err("10.0.0.0/8/8"), IpRuleError::InvalidPrefix);
        assert_eq!(
            err("10.0.0.0/33"),
            IpRuleError::PrefixOutOfRange {
                max: 32,
                version: 4
            }
        );
        assert_eq!(
            err("::/129"),
            IpRuleError::PrefixOutOfRange {
                max: 128,
                version: 6
            }
        );
        assert_eq!(
            err("::/999"),
            IpRuleError::PrefixOutOfRange {
                max: 128,
                version: 6
            }
        );
    }

    #[test]
    fn dedups_limits_and_reports_index() {
        let l = list(&["10.0.0.0/8", " 10.0.0.0/8 ", "::ffff:10.0.0.0/104"]);
        assert_eq!(l.len(), 1);
        let items = vec!["10.0.0.0/8".to_owned(), "nope".to_owned()];
        assert_eq!(
            IpAllowList::parse(&items).unwrap_err(),
            (1, IpRuleError::InvalidAddress)
        );
        let many: Vec<String> = (0..101).map(|i| format!("10.0.{i}.0/24")).collect();
        assert_eq!(
            IpAllowList::parse(&many).unwrap_err(),
            (100, IpRuleError::TooMany)
        );
        assert_eq!(IpAllowList::parse(&many[..100]).unwrap().len(), 100);
    }

    #[test]
    fn serde_uses_strings() {
        let l = list(&["2001:db8::/32", "10.0.0.0/8"]);
        let json = serde_json::to_string(&l).unwrap();
        assert_eq!(json, r#"["10.0.0.0/8","2001:db8::/32"]"#);
        assert_eq!(serde_json::from_str::<IpAllowList>(&json).unwrap(), l);
        let e = serde_json::from_str::<IpAllowList>(r#"["10.0.0.1/8"]"#).unwrap_err();
        assert!(e.to_string().contains("did you mean 10.0.0.0/8"), "{e}");
    }

    #[test]
    fn client_nets_group_ipv6_by_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_net(a), client_net(b));
        assert_ne!(client_net(a), client_net(c));
        assert_eq!(client_net(a), "2001:db8:1:2::".parse::<IpAddr>().unwrap());
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(client_net(v4), v4);
        assert_eq!(client_net("::ffff:192.0.2.7".parse().unwrap()), v4);
    }
}
