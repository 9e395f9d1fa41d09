//! Unit and property tests of the client address resolution and the header parsers.

use super::*;
use proptest::prelude::*;
use std::net::Ipv4Addr;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn nets(items: &[&str]) -> Vec<IpNet> {
    items.iter().map(|s| s.parse().unwrap()).collect()
}

fn xff(lines: &[&str]) -> Vec<Hop> {
    x_forwarded_for_hops(lines.iter().map(|l| l.as_bytes()))
}

fn fwd(lines: &[&str]) -> Vec<Hop> {
    forwarded_hops(lines.iter().map(|l| l.as_bytes()))
}

fn addr(s: &str) -> Hop {
    Hop::Addr(ip(s))
}

const U: Hop = Hop::Unknown;

fn resolve_with(header: ClientIpHeader, peer: &str, lines: &[&str]) -> IpAddr {
    resolve(
        header,
        ip(peer),
        lines.iter().map(|l| l.as_bytes()),
        &nets(&["127.0.0.0/8", "10.0.0.0/8", "2001:db8:ffff::/48"]),
    )
}

fn via_xff(peer: &str, lines: &[&str]) -> IpAddr {
    resolve_with(ClientIpHeader::XForwardedFor, peer, lines)
}

fn via_forwarded(peer: &str, lines: &[&str]) -> IpAddr {
    resolve_with(ClientIpHeader::Forwarded, peer, lines)
}

#[test]
fn xff_entries_are_bare_addresses() {
    assert_eq!(
        xff(&["203.0.113.7, 10.0.0.1,2001:db8::1 ,\t::ffff:192.0.2.1"]),
        [
            addr("203.0.113.7"),
            addr("10.0.0.1"),
            addr("2001:db8::1"),
            addr("::ffff:192.0.2.1")
        ]
    );
    for garbage in [
        "1.2.3.4:5678",
        "[2001:db8::1]",
        "[2001:db8::1]:80",
        "unknown",
        "",
        "  ",
        "garbage",
        "01.2.3.4",
        "1.2.3",
        "fe80::1%eth0",
        "for=1.2.3.4",
        "\"1.2.3.4\"",
    ] {
        assert_eq!(xff(&[garbage]), [U], "{garbage:?}");
    }
    assert_eq!(xff(&["1.2.3.4,"]), [addr("1.2.3.4"), U]);
    // Several field lines are one list, in order.
    assert_eq!(
        xff(&["203.0.113.7", "unknown, 10.0.0.1"]),
        [addr("203.0.113.7"), U, addr("10.0.0.1")]
    );
    // Bytes that are not UTF-8 are an unknown entry, not the end of the line.
    assert_eq!(
        x_forwarded_for_hops([&b"\xff\xfe, 10.0.0.1"[..]]),
        [U, addr("10.0.0.1")]
    );
}

#[test]
fn forwarded_elements_are_hops() {
    assert_eq!(
        fwd(&["for=192.0.2.60;proto=http;by=203.0.113.43, for=192.168.10.10"]),
        [addr("192.0.2.60"), addr("192.168.10.10")]
    );
    assert_eq!(fwd(&[r#"for="[2001:db8::1]:4711""#]), [addr("2001:db8::1")]);
    assert_eq!(fwd(&[r#"For="[2001:db8::1]""#]), [addr("2001:db8::1")]);
    assert_eq!(fwd(&[r#"for="192.0.2.7:80""#]), [addr("192.0.2.7")]);
    assert_eq!(fwd(&[r#"for="192.0.2.7:_p0rt""#]), [addr("192.0.2.7")]);
    assert_eq!(fwd(&[r#"for="\1\9\2.0.2.7""#]), [addr("192.0.2.7")]);
    assert_eq!(
        fwd(&["proto=https ; for=192.0.2.7 ;by=_x ,\tfor=10.0.0.1;"]),
        [addr("192.0.2.7"), addr("10.0.0.1")]
    );
    // Commas and semicolons inside quotes do not split anything.
    assert_eq!(
        fwd(&[r#"host="a,b;c", for=10.0.0.1"#]),
        [U, addr("10.0.0.1")]
    );
    // Several field lines are one list, in order.
    assert_eq!(
        fwd(&["for=192.0.2.7", "for=unknown, for=10.0.0.1"]),
        [addr("192.0.2.7"), U, addr("10.0.0.1")]
    );
}

#[test]
fn forwarded_nodes_that_are_not_addresses_are_unknown() {
    for element in [
        "for=unknown",
        "for=_hidden",
        r#"for="_hidden:80""#,
        "proto=https",
        "",
        ";",
        r#"for="2001:db8::1""#,
        r#"for="[192.0.2.7]""#,
        r#"for="[2001:db8::1]80""#,
        r#"for="[2001:db8::1]:""#,
        r#"for="192.0.2.7:123456""#,
        r#"for="192.0.2.7:_""#,
        r#"for="192.0.2.7:8a""#,
        r#"for="[2001:db8::1""#,
        r#"for="[fe80::1%25eth0]""#,
        "for=192.0.2.7;for=192.0.2.7",
        "for=192.0.2.7;FOR=10.0.0.1",
    ] {
        assert_eq!(fwd(&[element]), [U], "{element:?}");
    }
    assert_eq!(fwd(&["for=10.0.0.1,"]), [addr("10.0.0.1"), U]);
}

#[test]
fn malformed_forwarded_lines_are_one_unknown_hop() {
    for line in [
        r#"for="192.0.2.7"#,
        r#"for="192.0.2.7, for=10.0.0.1"#,
        "for=[2001:db8::1]",
        "for=192.0.2.7:80",
        "for 192.0.2.7",
        "for=",
        "for==1.2.3.4",
        "=1.2.3.4",
        "for=1.2.3.4 x",
        "for=\"a\"b",
        "for=\"\x01\"",
        "for=\"a\\",
        "for=1.2.3.4, \"x\"",
    ] {
        assert_eq!(fwd(&[line]), [U], "{line:?}");
    }
    // Only the malformed line: the lines after it still count.
    assert_eq!(
        fwd(&[r#"for="203.0.113.7"#, "for=10.0.0.1"]),
        [U, addr("10.0.0.1")]
    );
}

#[test]
fn an_untrusted_peer_is_the_client() {
    assert_eq!(
        via_xff("198.51.100.1", &["203.0.113.7"]),
        ip("198.51.100.1")
    );
    assert_eq!(
        via_forwarded("198.51.100.1", &["for=203.0.113.7"]),
        ip("198.51.100.1")
    );
    assert_eq!(
        via_xff("::ffff:198.51.100.1", &[]),
        ip("198.51.100.1"),
        "mapped addresses are canonical"
    );
}

#[test]
fn the_nearest_untrusted_address_is_the_client() {
    assert_eq!(via_xff("127.0.0.1", &["203.0.113.7"]), ip("203.0.113.7"));
    assert_eq!(
        via_xff("127.0.0.1", &["198.51.100.9, 203.0.113.7, 10.0.0.3"]),
        ip("203.0.113.7")
    );
    assert_eq!(
        via_xff("::ffff:127.0.0.1", &["::ffff:203.0.113.7"]),
        ip("203.0.113.7")
    );
    assert_eq!(
        via_forwarded(
            "127.0.0.1",
            &[r#"for=198.51.100.9, for="[2001:db8::1]:4711";proto=https, for=10.0.0.3"#]
        ),
        ip("2001:db8::1")
    );
    // No header, or an empty chain: the peer.
    assert_eq!(via_xff("127.0.0.1", &[]), ip("127.0.0.1"));
    // All trusted: the leftmost, written by a trusted proxy.
    assert_eq!(
        via_xff("127.0.0.1", &["10.0.0.9, 10.0.0.3"]),
        ip("10.0.0.9")
    );
}

#[test]
fn nothing_left_of_an_unparsable_entry_is_believed() {
    for garbage in ["unknown", "1.2.3.4:5678", "garbage", "", "[::1]"] {
        let line = format!("203.0.113.7, {garbage}");
        assert_eq!(via_xff("127.0.0.1", &[&line]), ip("127.0.0.1"), "{line}");
        let line = format!("203.0.113.7, {garbage}, 10.0.0.3");
        assert_eq!(via_xff("127.0.0.1", &[&line]), ip("10.0.0.3"), "{line}");
    }
    assert_eq!(
        via_xff("127.0.0.1", &["203.0.113.7", "unknown"]),
        ip("127.0.0.1")
    );
    for element in ["for=unknown", "for=_hidden", "proto=https", r#"for="x"#] {
        let line = format!("for=203.0.113.7, {element}");
        assert_eq!(
            via_forwarded("127.0.0.1", &[&line]),
            ip("127.0.0.1"),
            "{line}"
        );
    }
}

#[test]
fn only_the_configured_header_is_read() {
    assert_eq!(via_xff("127.0.0.1", &["for=203.0.113.7"]), ip("127.0.0.1"));
    assert_eq!(
        via_forwarded("127.0.0.1", &["203.0.113.7"]),
        ip("127.0.0.1")
    );
}

#[test]
fn header_names_parse_in_any_case() {
    for (s, h) in [
        ("x-forwarded-for", ClientIpHeader::XForwardedFor),
        (" X-Forwarded-For ", ClientIpHeader::XForwardedFor),
        ("forwarded", ClientIpHeader::Forwarded),
        ("Forwarded", ClientIpHeader::Forwarded),
    ] {
        assert_eq!(s.parse::<ClientIpHeader>().unwrap(), h);
    }
    assert!("x-real-ip".parse::<ClientIpHeader>().is_err());
    assert_eq!(
        serde_json::from_str::<ClientIpHeader>(r#""forwarded""#).unwrap(),
        ClientIpHeader::Forwarded
    );
    assert_eq!(
        serde_json::to_string(&ClientIpHeader::XForwardedFor).unwrap(),
        r#""x-forwarded-for""#
    );
    assert_eq!(ClientIpHeader::default(), ClientIpHeader::XForwardedFor);
}

// --- properties ---

/// Hops whose address says what they are: 10.0.0.i is trusted, 203.0.113.i is not (i is the
/// position, so the answer tells which entry was chosen).
fn any_chain() -> impl Strategy<Value = (bool, Vec<Hop>)> {
    (
        any::<bool>(),
        prop::collection::vec(0u8..3, 0..12).prop_map(|kinds| {
            kinds
                .iter()
                .enumerate()
                .map(|(i, kind)| match kind {
                    0 => Hop::Addr(IpAddr::V4(Ipv4Addr::new(10, 0, 0, i as u8))),
                    1 => Hop::Addr(IpAddr::V4(Ipv4Addr::new(203, 0, 113, i as u8))),
                    _ => Hop::Unknown,
                })
                .collect()
        }),
    )
}

/// Client-written text full of the characters the parsers care about.
fn client_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("for=".to_owned()),
        Just("\"".to_owned()),
        Just("\\".to_owned()),
        Just(",".to_owned()),
        Just(";".to_owned()),
        Just("=".to_owned()),
        Just(" ".to_owned()),
        Just("[".to_owned()),
        Just("]".to_owned()),
        Just(":".to_owned()),
        Just("unknown".to_owned()),
        Just("_x".to_owned()),
        Just("proto=https".to_owned()),
        (0u8..=255).prop_map(|i| format!("203.0.113.{i}")),
        (0u8..=255).prop_map(|i| format!("10.9.9.{i}")),
        (0u16..=0xffff).prop_map(|i| format!("2001:db8::{i:x}")),
        "[a-z0-9.:]{0,6}",
    ];
    prop::collection::vec(piece, 0..16).prop_map(|pieces| pieces.concat())
}

proptest! {
    /// No entry left of an untrusted or unparsable one is ever chosen; and the walk goes as
    /// far as it may: to the nearest untrusted address, or to the last trusted hop.
    #[test]
    fn no_entry_left_of_an_untrusted_or_unparsable_one_is_chosen(
        (peer_trusted, hops) in any_chain()
    ) {
        let trusted = nets(&["10.0.0.0/8"]);
        let peer = if peer_trusted { ip("10.255.255.254") } else { ip("198.51.100.1") };
        let chosen = client_address(peer, &hops, &trusted);
        let position = hops.iter().position(|h| *h == Hop::Addr(chosen));
        let stop = hops.iter().rposition(|h| match h {
            Hop::Addr(a) => !is_trusted(*a, &trusted),
            Hop::Unknown => true,
        });
        match position {
            None => {
                prop_assert_eq!(chosen, peer);
                // The peer is the answer when it is untrusted, or nothing right of it
                // could be believed (no chain, or its last entry is unknown).
                prop_assert!(
                    !peer_trusted
                        || hops.is_empty()
                        || hops.last() == Some(&Hop::Unknown)
                );
            }
            Some(i) => {
                prop_assert!(peer_trusted, "an untrusted peer's header was read");
                // Everything right of the chosen entry is a trusted address.
                prop_assert!(hops[i + 1..].iter().all(
                    |h| matches!(h, Hop::Addr(a) if is_trusted(*a, &trusted))
                ));
                match stop {
                    // The nearest untrusted address itself, or the hop right of an
                    // unknown entry.
                    Some(s) if hops[s] == Hop::Unknown => prop_assert_eq!(i, s + 1),
                    Some(s) => prop_assert_eq!(i, s),
                    // All trusted: the leftmost.
                    None => prop_assert_eq!(i, 0),
                }
            }
        }
    }

    /// Whatever a client writes, an address a trusted proxy appends after it (on the same
    /// line or its own) is what X-Forwarded-For yields.
    #[test]
    fn xff_client_text_never_outranks_the_proxy(text in client_text()) {
        let proxy_line = format!("{text}, 198.51.100.77");
        prop_assert_eq!(via_xff("127.0.0.1", &[&proxy_line]), ip("198.51.100.77"));
        prop_assert_eq!(
            via_xff("127.0.0.1", &[&text, "198.51.100.77"]),
            ip("198.51.100.77")
        );
        // Behind two trusted proxies.
        let chained = format!("{text}, 198.51.100.77, 10.0.0.3");
        prop_assert_eq!(via_xff("127.0.0.1", &[&chained]), ip("198.51.100.77"));
    }

    /// Whatever a client writes in Forwarded, the answer is the address a trusted proxy
    /// appended or that proxy itself, never a value the client wrote.
    #[test]
    fn forwarded_client_text_never_outranks_the_proxy(text in client_text()) {
        let same_line = format!("{text}, for=198.51.100.77");
        let got = via_forwarded("127.0.0.1", &[&same_line]);
        prop_assert!(got == ip("198.51.100.77") || got == ip("127.0.0.1"), "{got}");
        prop_assert_eq!(
            via_forwarded("127.0.0.1", &[&text, "for=198.51.100.77"]),
            ip("198.51.100.77")
        );
        // Behind two trusted proxies.
        prop_assert_eq!(
            via_forwarded(
                "127.0.0.1",
                &[&text, "for=198.51.100.77;proto=https", r#"for="10.0.0.3:443""#]
            ),
            ip("198.51.100.77")
        );
        let chained = format!("{text}, for=198.51.100.77, for=10.0.0.3");
        let got = via_forwarded("127.0.0.1", &[&chained]);
        prop_assert!(got == ip("198.51.100.77") || got == ip("127.0.0.1"), "{got}");
    }

    /// Addresses written the way RFC 7239 says come back as they were.
    #[test]
    fn forwarded_addresses_round_trip(
        ip in any::<IpAddr>(),
        port in prop::option::of(any::<u16>()),
        before in prop::option::of(Just("proto=https;by=_edge")),
        after in prop::option::of(Just("host=\"api.example, ;\"")),
    ) {
        let node = match (ip, port) {
            (IpAddr::V4(v4), None) => format!("{v4}"),
            (IpAddr::V4(v4), Some(p)) => format!("\"{v4}:{p}\""),
            (IpAddr::V6(v6), None) => format!("\"[{v6}]\""),
            (IpAddr::V6(v6), Some(p)) => format!("\"[{v6}]:{p}\""),
        };
        let mut pairs: Vec<String> = before.into_iter().map(str::to_owned).collect();
        pairs.push(format!("for={node}"));
        pairs.extend(after.map(str::to_owned));
        let line = format!("for=unknown, {}", pairs.join(";"));
        prop_assert_eq!(fwd(&[&line]), vec![Hop::Unknown, Hop::Addr(ip)]);
    }

    /// Any bytes at all: no panic, and one hop at least per line.
    #[test]
    fn parsers_take_any_bytes(lines in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..4)) {
        let forwarded = forwarded_hops(lines.iter().map(Vec::as_slice));
        prop_assert!(forwarded.len() >= lines.len());
        let xff = x_forwarded_for_hops(lines.iter().map(Vec::as_slice));
        prop_assert!(xff.len() >= lines.len());
    }
}
