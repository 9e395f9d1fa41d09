//! IP allow lists: CIDR networks and bare addresses, one per input line, alone and together;
//! and `allows` for an address made of the input's last bytes.
//!
//! Invariants:
//! - an accepted rule is a network without host bits, IPv4-mapped IPv6 stored as IPv4, and its
//!   text parses back to the same list (parse(display(x)) == x);
//! - the address a rule was written with is allowed by it, and so are its network's first and
//!   last addresses (unless IPv4-mapped inside an IPv6 rule: those are IPv4 clients);
//! - a bare address is a single-host network;
//! - "host bits set" suggests a rule that is accepted;
//! - a list is sorted, without duplicates, within its limit, round-trips through its strings and
//!   JSON, and allows every address its rules were written with;
//! - a failed list names the first bad line (or the first one past the limit);
//! - `allows` treats an IPv4-mapped address as the IPv4 address it carries.

use std::net::IpAddr;

use ipnet::IpNet;
use keyward_core::IpAllowList;
use keyward_core::ip::{IP_ALLOW_LIST_MAX, IpRuleError};
use keyward_core::validate;

pub fn run(data: &[u8]) {
    let text = crate::text(data);
    let items: Vec<String> = text
        .split('\n')
        .take(IP_ALLOW_LIST_MAX + 8)
        .map(str::to_owned)
        .collect();
    for item in items.iter().take(32) {
        check_rule(item);
    }
    let list = check_list(&items);
    if let Some(ip) = crate::address(data) {
        let list = list.unwrap_or_default();
        assert_eq!(list.allows(ip), list.allows(ip.to_canonical()));
        if list.is_empty() {
            assert!(list.allows(ip));
        }
    }
}

/// The address a rule was written with, if its address part is one.
fn written_address(rule: &str) -> Option<IpAddr> {
    let rule = rule.trim();
    rule.split_once('/')
        .map_or(rule, |(addr, _)| addr)
        .parse()
        .ok()
}

fn check_rule(item: &str) {
    match IpAllowList::parse(&[item.to_owned()]) {
        Ok(list) => {
            assert_eq!(list.len(), 1);
            let net = list.nets()[0];
            assert_eq!(net, net.trunc(), "{item:?} kept host bits");
            if let IpNet::V6(v6) = net {
                assert!(
                    v6.prefix_len() < 96 || v6.addr().to_ipv4_mapped().is_none(),
                    "{item:?}: an IPv4-mapped network stayed IPv6"
                );
            }
            let again = IpAllowList::parse(&list.to_strings()).expect("its own text parses");
            assert_eq!(again, list);
            let addr = written_address(item).expect("an accepted rule has an address");
            assert!(list.allows(addr), "{item:?} does not allow its own address");
            for edge in [net.network(), net.broadcast()] {
                // Except an IPv4-mapped address inside an IPv6 rule (`::/80` holds
                // `::ffff:255.255.255.255`): such an address is IPv4 and IPv6 rules do not
                // apply to IPv4 clients.
                if edge.to_canonical().is_ipv4() && net.addr().is_ipv6() {
                    continue;
                }
                assert!(list.allows(edge), "{item:?} does not allow {edge}");
            }
            if !item.contains('/') {
                assert_eq!(net.prefix_len(), net.max_prefix_len(), "{item:?}");
            }
            assert!(validate::allowed_ips("allowed_ips", &[item.to_owned()]).is_ok());
        }
        Err((i, e)) => {
            assert_eq!(i, 0);
            assert!(!e.to_string().is_empty());
            match e {
                IpRuleError::Empty => assert!(item.trim().is_empty()),
                IpRuleError::HostBitsSet { suggestion, .. } => {
                    let fixed = IpAllowList::parse(std::slice::from_ref(&suggestion));
                    assert!(fixed.is_ok(), "suggestion {suggestion:?} is refused");
                }
                _ => {}
            }
            let err = validate::allowed_ips("allowed_ips", &[item.to_owned()])
                .expect_err("the rule is invalid");
            assert_eq!(err.field, "allowed_ips[0]");
        }
    }
}

fn check_list(items: &[String]) -> Option<IpAllowList> {
    match IpAllowList::parse(items) {
        Ok(list) => {
            assert!(list.len() <= IP_ALLOW_LIST_MAX);
            assert!(list.len() <= items.len());
            assert!(
                list.nets().windows(2).all(|w| w[0] < w[1]),
                "not sorted/deduped"
            );
            let again = IpAllowList::parse(&list.to_strings()).expect("its own text parses");
            assert_eq!(again, list);
            let json = serde_json::to_string(&list).expect("serialise");
            assert_eq!(
                serde_json::from_str::<IpAllowList>(&json).expect("deserialise"),
                list
            );
            for item in items {
                let addr = written_address(item).expect("an accepted rule has an address");
                assert!(list.allows(addr), "{item:?} lost");
            }
            Some(list)
        }
        Err((i, e)) => {
            if e == IpRuleError::TooMany {
                assert!(items.len() > IP_ALLOW_LIST_MAX);
                assert_eq!(i, IP_ALLOW_LIST_MAX);
            } else {
                assert_eq!(
                    IpAllowList::parse(std::slice::from_ref(&items[i])),
                    Err((0, e))
                );
                assert!(
                    items[..i]
                        .iter()
                        .all(|s| IpAllowList::parse(std::slice::from_ref(s)).is_ok())
                );
            }
            None
        }
    }
}
