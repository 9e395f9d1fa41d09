//! Webhook endpoint URLs (`keyward_core::webhook_url::validate`) against one of a few operator
//! allow lists (chosen by the first byte; the rest is the URL), and the address rules the
//! delivery worker applies after DNS, for an address made of the input's bytes.
//!
//! Invariants:
//! - an accepted URL is normalised: validating it again gives it back unchanged;
//! - it is http(s), has a host, no credentials, fits the length limit, and an IP-literal host is
//!   a destination the worker would connect to; plain http only inside an allowed network;
//! - allowing networks never refuses what no allowed network accepted: an URL valid with no
//!   allowed network is valid, the same, with any;
//! - rejections name the field;
//! - an IPv6 address that embeds an IPv4 address is judged as that IPv4 address, and with no
//!   allowed network exactly the non-forbidden addresses are allowed.

use std::net::IpAddr;

use ipnet::IpNet;
use keyward_core::api::webhooks::URL_MAX_CHARS;
use keyward_core::webhook_url::{destination_allowed, embedded_ipv4, forbidden_kind, validate};
use url::{Host, Url};

const FIELD: &str = "url";

/// The operator allow lists an input can pick.
fn allowed_lists() -> [Vec<IpNet>; 4] {
    let nets = |list: &[&str]| -> Vec<IpNet> {
        list.iter()
            .map(|n| n.parse().expect("a valid network"))
            .collect()
    };
    [
        Vec::new(),
        nets(&["127.0.0.0/8"]),
        nets(&["10.0.0.0/8", "::1/128", "fd00::/8"]),
        nets(&["0.0.0.0/0", "::/0"]),
    ]
}

pub fn run(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let lists = allowed_lists();
    let allowed = &lists[usize::from(selector) % lists.len()];
    let raw = crate::text(rest);
    let result = check(&raw, allowed);
    if allowed.is_empty()
        && let Ok(url) = &result
    {
        for other in &lists {
            assert_eq!(
                validate(FIELD, &raw, other).as_ref(),
                Ok(url),
                "allowing {other:?} refused or changed {raw:?}"
            );
        }
    }
    if let Some(ip) = crate::address(rest) {
        check_address(ip, allowed);
    }
}

fn check(raw: &str, allowed: &[IpNet]) -> Result<String, ()> {
    match validate(FIELD, raw, allowed) {
        Ok(normalised) => {
            assert!(normalised.chars().count() <= URL_MAX_CHARS);
            assert_eq!(
                validate(FIELD, &normalised, allowed).as_ref(),
                Ok(&normalised),
                "{raw:?} normalised to {normalised:?}, which checks differently"
            );
            let url = Url::parse(&normalised).expect("a normalised URL parses");
            assert!(matches!(url.scheme(), "http" | "https"));
            assert!(url.username().is_empty() && url.password().is_none());
            let ip = match url.host().expect("a host") {
                Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
                Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
                Host::Domain(name) => {
                    assert!(!name.is_empty());
                    None
                }
            };
            if let Some(ip) = ip {
                assert!(
                    destination_allowed(ip, allowed),
                    "{raw:?} accepted, but the worker would refuse {ip}"
                );
            }
            if url.scheme() == "http" {
                assert!(
                    !allowed.is_empty(),
                    "plain http accepted with no allowed network"
                );
            }
            Ok(normalised)
        }
        Err(e) => {
            assert_eq!(e.field, FIELD);
            assert!(!e.code.is_empty() && !e.message.is_empty());
            Err(())
        }
    }
}

fn check_address(ip: IpAddr, allowed: &[IpNet]) {
    let kind = forbidden_kind(ip);
    assert_eq!(destination_allowed(ip, &[]), kind.is_none());
    if kind.is_none() {
        assert!(destination_allowed(ip, allowed));
    }
    if let IpAddr::V6(v6) = ip
        && let Some(v4) = embedded_ipv4(v6)
    {
        assert_eq!(kind, forbidden_kind(IpAddr::V4(v4)), "{v6} embeds {v4}");
        if destination_allowed(IpAddr::V4(v4), allowed) {
            assert!(destination_allowed(ip, allowed), "{v4} allowed, {v6} not");
        }
    }
    // The canonical form of an address is judged as the address.
    assert_eq!(
        forbidden_kind(ip.to_canonical()).is_none(),
        kind.is_none(),
        "{ip} and {} are judged differently",
        ip.to_canonical()
    );
}
