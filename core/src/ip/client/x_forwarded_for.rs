//! `X-Forwarded-For`: its field lines read as a chain of hops.

use std::net::IpAddr;

use super::Hop;
use super::syntax::trim_ows;

/// `X-Forwarded-For`: comma-separated bare addresses (`203.0.113.7`, `2001:db8::1`), spaces and
/// tabs around them ignored. Anything else is [`Hop::Unknown`] — an address with a port, a
/// bracketed IPv6 address, `unknown`, an empty entry.
pub fn x_forwarded_for_hops<'a>(lines: impl IntoIterator<Item = &'a [u8]>) -> Vec<Hop> {
    lines
        .into_iter()
        .flat_map(|line| line.split(|&b| b == b','))
        .map(|entry| {
            std::str::from_utf8(trim_ows(entry))
                .ok()
                .and_then(|s| s.parse::<IpAddr>().ok())
                .map_or(Hop::Unknown, Hop::Addr)
        })
        .collect()
}
