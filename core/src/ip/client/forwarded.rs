//! RFC 7239 `Forwarded`: its field lines read as a chain of hops, element by element.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::Hop;
use super::syntax::{Cursor, Malformed, is_tchar};

/// RFC 7239 `Forwarded`: one hop per `forwarded-element`, its `for` parameter's node. A node is
/// an IPv4 address or a bracketed IPv6 address (which must be quoted: `for="[2001:db8::1]"`),
/// either with an optional port; `unknown`, obfuscated nodes (`_hidden`), an element without
/// `for` or with two are [`Hop::Unknown`]. A field line that does not follow the grammar
/// (unbalanced quotes, a value that is neither a token nor a quoted string, ...) cannot be split
/// into elements reliably, so the whole line is one [`Hop::Unknown`].
pub fn forwarded_hops<'a>(lines: impl IntoIterator<Item = &'a [u8]>) -> Vec<Hop> {
    let mut hops = Vec::new();
    for line in lines {
        let start = hops.len();
        if forwarded_line(line, &mut hops).is_err() {
            hops.truncate(start);
            hops.push(Hop::Unknown);
        }
    }
    hops
}

/// `Forwarded = 1#forwarded-element` (RFC 7239 section 4, list syntax of RFC 9110 section 5.6.1)
/// `forwarded-element = [ forwarded-pair ] *( ";" [ forwarded-pair ] )`
/// `forwarded-pair = token "=" value`, `value = token / quoted-string`.
/// Spaces and tabs are allowed around `,` and `;`.
fn forwarded_line(line: &[u8], hops: &mut Vec<Hop>) -> Result<(), Malformed> {
    let mut p = Cursor { s: line, i: 0 };
    loop {
        // One element.
        p.skip_ows();
        let mut node: Option<Hop> = None;
        let mut repeated = false;
        loop {
            if p.peek().is_some_and(is_tchar) {
                let name = p.token();
                if p.peek() != Some(b'=') {
                    return Err(Malformed);
                }
                p.i += 1;
                let value = if p.peek() == Some(b'"') {
                    p.quoted_string()?
                } else {
                    let token = p.token();
                    if token.is_empty() {
                        return Err(Malformed);
                    }
                    token.to_vec()
                };
                if name.eq_ignore_ascii_case(b"for") {
                    // "Each parameter MUST NOT occur more than once per forwarded-element."
                    repeated |= node.is_some();
                    node = Some(parse_node(&value));
                }
            }
            p.skip_ows();
            if p.peek() == Some(b';') {
                p.i += 1;
                p.skip_ows();
            } else {
                break;
            }
        }
        hops.push(match node {
            Some(hop) if !repeated => hop,
            _ => Hop::Unknown,
        });
        match p.peek() {
            None => return Ok(()),
            Some(b',') => p.i += 1,
            Some(_) => return Err(Malformed),
        }
    }
}

/// `node = nodename [ ":" node-port ]`, `nodename = IPv4address / "[" IPv6address "]" /
/// "unknown" / obfnode`; only addresses are a [`Hop::Addr`].
fn parse_node(value: &[u8]) -> Hop {
    let Ok(s) = std::str::from_utf8(value) else {
        return Hop::Unknown;
    };
    let (ip, port) = if let Some(rest) = s.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return Hop::Unknown;
        };
        let Ok(v6) = v6.parse::<Ipv6Addr>() else {
            return Hop::Unknown;
        };
        let port = match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(port) => Some(port),
                None => return Hop::Unknown,
            },
        };
        (IpAddr::V6(v6), port)
    } else {
        let (host, port) = match s.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (s, None),
        };
        let Ok(v4) = host.parse::<Ipv4Addr>() else {
            return Hop::Unknown;
        };
        (IpAddr::V4(v4), port)
    };
    match port {
        Some(port) if !is_node_port(port) => Hop::Unknown,
        _ => Hop::Addr(ip),
    }
}

/// `node-port = port / obfport`, `port = 1*5DIGIT`,
/// `obfport = "_" 1*(ALPHA / DIGIT / "." / "_" / "-")`.
fn is_node_port(port: &str) -> bool {
    let digits = (1..=5).contains(&port.len()) && port.bytes().all(|b| b.is_ascii_digit());
    let obfuscated = port.strip_prefix('_').is_some_and(|rest| {
        !rest.is_empty()
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    });
    digits || obfuscated
}
