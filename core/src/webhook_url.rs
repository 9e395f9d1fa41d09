//! Where a webhook may be delivered: the URL rules checked when an endpoint is created, and the
//! address rule the delivery worker applies again after DNS resolution, right before it connects.
//!
//! By default no webhook reaches an address that is not on the public internet: loopback,
//! RFC 1918 private networks, CGNAT (100.64.0.0/10), link-local (which holds the cloud metadata
//! service at 169.254.169.254), IPv6 unique-local and link-local, multicast, unspecified and
//! reserved ranges, and every IPv6 form that embeds one of those IPv4 addresses (IPv4-mapped,
//! IPv4-compatible, NAT64 64:ff9b::/96, 6to4 2002::/16). An operator who delivers to its own
//! network lists it in `KEYWARD_WEBHOOK_ALLOWED_NETWORKS`; nothing else opens that door.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use url::{Host, Url};

use crate::api::FieldError;
use crate::api::webhooks::URL_MAX_CHARS;

/// The IPv4 address an IPv6 address carries, for the forms that route to IPv4: IPv4-mapped
/// (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d, deprecated but still parsed), NAT64
/// (64:ff9b::a.b.c.d) and 6to4 (2002:aabb:ccdd::).
pub fn embedded_ipv4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    let o = ip.octets();
    // ::a.b.c.d, but not :: and ::1 (those are IPv6's own unspecified and loopback).
    if s[..6] == [0; 6] && !(s[6] == 0 && s[7] <= 1) {
        return Some(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    None
}

/// Why an IPv4 address is not on the public internet, if it is not.
fn ipv4_kind(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, _, _) => "unspecified",
        (10, _, _) => "private",
        (100, 64..=127, _) => "shared (CGNAT)",
        (127, _, _) => "loopback",
        (169, 254, _) => "link-local",
        (172, 16..=31, _) => "private",
        (192, 0, 0) => "reserved",
        (192, 168, _) => "private",
        (198, 18..=19, _) => "reserved",
        (224..=239, _, _) => "multicast",
        (240..=255, _, _) => "reserved",
        _ => return None,
    })
}

/// Why an address is not a public destination (`"loopback"`, `"private"`, ...), or `None` when
/// it is one. IPv6 forms that embed an IPv4 address are judged by that address.
pub fn forbidden_kind(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => ipv4_kind(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_ipv4(v6) {
                return ipv4_kind(v4);
            }
            let s = v6.segments();
            Some(match s[0] {
                _ if v6.is_unspecified() => "unspecified",
                _ if v6.is_loopback() => "loopback",
                x if x & 0xfe00 == 0xfc00 => "unique-local",
                x if x & 0xffc0 == 0xfe80 => "link-local",
                x if x & 0xffc0 == 0xfec0 => "site-local",
                x if x & 0xff00 == 0xff00 => "multicast",
                // 64:ff9b:1::/48, NAT64 for local use.
                0x64 if s[1] == 0xff9b && s[2] == 1 => "reserved",
                // 100::/64, discard-only.
                0x100 if s[1..4] == [0, 0, 0] => "reserved",
                _ => return None,
            })
        }
    }
}

/// Whether `net` (an operator's allowed network) holds `ip` or the IPv4 address it embeds.
fn allowed_by(allowed: &[IpNet], ip: IpAddr) -> bool {
    let v4 = match ip {
        IpAddr::V6(v6) => embedded_ipv4(v6).map(IpAddr::V4),
        IpAddr::V4(_) => None,
    };
    allowed
        .iter()
        .any(|n| n.contains(&ip) || v4.is_some_and(|v4| n.contains(&v4)))
}

/// Whether a webhook may connect to `ip`: a public address, or one inside `allowed`.
pub fn destination_allowed(ip: IpAddr, allowed: &[IpNet]) -> bool {
    forbidden_kind(ip).is_none() || allowed_by(allowed, ip)
}

/// Host names that always mean this machine (RFC 6761), whatever DNS says.
fn is_loopback_name(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost" || host.ends_with(".localhost")
}

fn bad(field: &str, code: &str, message: impl Into<String>) -> FieldError {
    FieldError::new(field, code, message)
}

fn forbidden(field: &str, kind: &str) -> FieldError {
    bad(
        field,
        "forbidden_destination",
        format!(
            "is a {kind} address; webhooks are only delivered to public addresses (an operator may \
             allow networks with KEYWARD_WEBHOOK_ALLOWED_NETWORKS)"
        ),
    )
}

/// An endpoint URL: http(s), a host, no credentials, at most [`URL_MAX_CHARS`] characters; an IP
/// literal or `localhost` must be a public address or inside `allowed`; plain http only to an
/// address inside `allowed`. Returns the normalised URL. Host names are checked again, after
/// resolution, each time a delivery connects ([`destination_allowed`]).
pub fn validate(field: &str, raw: &str, allowed: &[IpNet]) -> Result<String, FieldError> {
    let raw = raw.trim();
    let too_long = || {
        bad(
            field,
            "too_long",
            format!("must be at most {URL_MAX_CHARS} characters"),
        )
    };
    if raw.chars().count() > URL_MAX_CHARS {
        return Err(too_long());
    }
    let url = Url::parse(raw).map_err(|_| bad(field, "invalid_url", "is not an absolute URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad(
            field,
            "unsupported_scheme",
            "must be an https URL (http only to a network the operator allows)",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            field,
            "credentials_not_allowed",
            "must not carry a user name or password",
        ));
    }
    // The URL parser already turned every spelling of an address (0x7f.1, 2130706433,
    // [::ffff:127.0.0.1]) into the address itself.
    let ip = match url.host() {
        None => return Err(bad(field, "invalid_url", "must name a host")),
        Some(Host::Domain("")) => return Err(bad(field, "invalid_url", "must name a host")),
        Some(Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
        Some(Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
        Some(Host::Domain(name)) if is_loopback_name(name) => Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        Some(Host::Domain(_)) => None,
    };
    let inside_allowed = ip.is_some_and(|ip| allowed_by(allowed, ip));
    if let Some(ip) = ip
        && !inside_allowed
        && let Some(kind) = forbidden_kind(ip)
    {
        return Err(forbidden(field, kind));
    }
    if url.scheme() == "http" && !inside_allowed {
        return Err(bad(
            field,
            "https_required",
            "must use https (http only to a network the operator allows)",
        ));
    }
    let normalised = url.to_string();
    if normalised.chars().count() > URL_MAX_CHARS {
        return Err(too_long());
    }
    Ok(normalised)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn internal_addresses_are_refused_in_every_spelling() {
        for (url, kind) in [
            ("http://127.0.0.1:9000/", "loopback"),
            ("https://127.1/", "loopback"),
            ("https://2130706433/", "loopback"),
            ("https://0x7f.0.0.1/", "loopback"),
            ("https://localhost/", "loopback"),
            ("https://api.localhost./", "loopback"),
            ("https://169.254.169.254/latest/meta-data/", "link-local"),
            ("https://10.0.0.7/", "private"),
            ("https://172.16.3.4/", "private"),
            ("https://192.168.1.5/", "private"),
            ("https://100.64.0.1/", "shared (CGNAT)"),
            ("https://0.0.0.0/", "unspecified"),
            ("https://224.0.0.1/", "multicast"),
            ("https://255.255.255.255/", "reserved"),
            ("https://[::1]/", "loopback"),
            ("https://[::]/", "unspecified"),
            ("http://[::ffff:127.0.0.1]/", "loopback"),
            ("https://[::ffff:169.254.169.254]/", "link-local"),
            ("https://[::10.0.0.1]/", "private"),
            ("https://[64:ff9b::a00:1]/", "private"),
            ("https://[2002:7f00:1::]/", "loopback"),
            ("https://[fd00::1]/", "unique-local"),
            ("https://[fe80::1]/", "link-local"),
            ("https://[ff02::1]/", "multicast"),
        ] {
            let err = validate("url", url, &[]).expect_err(url);
            assert_eq!(err.code, "forbidden_destination", "{url}");
            assert!(err.message.contains(kind), "{url}: {}", err.message);
        }
    }

    #[test]
    fn public_addresses_and_names_pass() {
        for ok in [
            "https://example.com/hook",
            "https://203.0.113.9/hook",
            "https://8.8.8.8/",
            "https://[2606:4700::1111]/",
            "https://[::ffff:8.8.8.8]/",
        ] {
            assert!(validate("url", ok, &[]).is_ok(), "{ok}");
        }
    }

    #[test]
    fn allowed_networks_open_exactly_themselves() {
        let allowed = nets(&["127.0.0.0/8", "10.1.0.0/16"]);
        assert!(validate("url", "http://127.0.0.1:9000/x", &allowed).is_ok());
        assert!(validate("url", "http://localhost:9000/x", &allowed).is_ok());
        assert!(validate("url", "http://[::ffff:127.0.0.1]/", &allowed).is_ok());
        assert!(validate("url", "https://10.1.2.3/", &allowed).is_ok());
        assert_eq!(
            validate("url", "https://10.2.0.1/", &allowed)
                .unwrap_err()
                .code,
            "forbidden_destination"
        );
        assert_eq!(
            validate("url", "https://169.254.169.254/", &allowed)
                .unwrap_err()
                .code,
            "forbidden_destination"
        );
        // http stays https-only for the public internet.
        assert_eq!(
            validate("url", "http://example.com/", &allowed)
                .unwrap_err()
                .code,
            "https_required"
        );
    }

    #[test]
    fn malformed_urls() {
        for (bad, code) in [
            ("not a url", "invalid_url"),
            ("/relative", "invalid_url"),
            ("ftp://example.com/", "unsupported_scheme"),
            ("mailto:a@example.com", "unsupported_scheme"),
            ("http://example.com/", "https_required"),
            ("http://8.8.8.8/", "https_required"),
            ("https://user:pw@example.com/", "credentials_not_allowed"),
        ] {
            assert_eq!(validate("url", bad, &[]).unwrap_err().code, code, "{bad}");
        }
        let long = format!("https://example.com/{}", "a".repeat(2048));
        assert_eq!(validate("url", &long, &[]).unwrap_err().code, "too_long");
    }

    #[test]
    fn resolved_addresses() {
        let none: &[IpNet] = &[];
        assert!(!destination_allowed("127.0.0.1".parse().unwrap(), none));
        assert!(!destination_allowed(
            "::ffff:10.0.0.1".parse().unwrap(),
            none
        ));
        assert!(destination_allowed("93.184.216.34".parse().unwrap(), none));
        let allowed = nets(&["127.0.0.0/8"]);
        assert!(destination_allowed("127.0.0.1".parse().unwrap(), &allowed));
        assert!(destination_allowed(
            "::ffff:127.0.0.1".parse().unwrap(),
            &allowed
        ));
        assert!(!destination_allowed("::1".parse().unwrap(), &allowed));
    }
}
