//! The client's address behind reverse proxies: which entry of `X-Forwarded-For` or of RFC 7239
//! `Forwarded` is believed.
//!
//! Each proxy appends the address it got the request from to what it received, so everything a
//! client wrote itself stays on the left. The chain is therefore read from the right, starting
//! at the connection's peer: while the address at hand is a trusted proxy, the entry that proxy
//! appended is believed and becomes the address at hand. The walk stops
//!
//! - at the first address that is not a trusted proxy: that is the client;
//! - at the first entry that does not name an address (`unknown`, an obfuscated node, a port
//!   where none belongs, garbage, a syntax error): the address at hand — the last trusted hop —
//!   is the client. Never a value further left: that was written by nobody the server trusts.
//!
//! When every entry is a trusted address, the leftmost is the client (it was written by a
//! trusted proxy). Only one header is read, the configured [`ClientIpHeader`]; a proxy that
//! maintains one of them usually passes the other through from the client untouched.

mod forwarded;
mod syntax;
mod x_forwarded_for;

#[cfg(test)]
mod tests;

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize};

pub use forwarded::forwarded_hops;
pub use x_forwarded_for::x_forwarded_for_hops;

/// The request header that carries the proxies' chain of addresses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientIpHeader {
    /// `X-Forwarded-For: 203.0.113.7, 10.0.0.2`: bare addresses, comma-separated.
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=203.0.113.7;proto=https, for="[2001:db8::1]:4711"`.
    Forwarded,
}

impl ClientIpHeader {
    /// The header's name, lowercase.
    pub fn name(self) -> &'static str {
        match self {
            ClientIpHeader::XForwardedFor => "x-forwarded-for",
            ClientIpHeader::Forwarded => "forwarded",
        }
    }

    /// The chain written in the header's field lines (in the order they were received), oldest
    /// entry first.
    pub fn hops<'a>(self, lines: impl IntoIterator<Item = &'a [u8]>) -> Vec<Hop> {
        match self {
            ClientIpHeader::XForwardedFor => x_forwarded_for_hops(lines),
            ClientIpHeader::Forwarded => forwarded_hops(lines),
        }
    }
}

impl fmt::Display for ClientIpHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The configured value is not a header this module reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected `x-forwarded-for` or `forwarded`, got `{0}`")]
pub struct UnknownClientIpHeader(String);

impl FromStr for ClientIpHeader {
    type Err = UnknownClientIpHeader;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("x-forwarded-for") {
            Ok(ClientIpHeader::XForwardedFor)
        } else if s.eq_ignore_ascii_case("forwarded") {
            Ok(ClientIpHeader::Forwarded)
        } else {
            Err(UnknownClientIpHeader(s.chars().take(64).collect()))
        }
    }
}

impl<'de> Deserialize<'de> for ClientIpHeader {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// One entry of the chain, as written by the proxy to its right (or by the client).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hop {
    /// An address.
    Addr(IpAddr),
    /// Anything that is not an address: `unknown`, an obfuscated node, garbage, an element
    /// without `for`, a field line that does not parse.
    Unknown,
}

/// The client's address: `peer` (the connection's), or, when `peer` is a trusted proxy, the
/// entry of `header` chosen as the module documentation says. `lines` are the header's field
/// lines in the order received. IPv4-mapped IPv6 addresses count as IPv4, in the trust check and
/// in the answer.
pub fn resolve<'a>(
    header: ClientIpHeader,
    peer: IpAddr,
    lines: impl IntoIterator<Item = &'a [u8]>,
    trusted: &[IpNet],
) -> IpAddr {
    let peer = peer.to_canonical();
    if !is_trusted(peer, trusted) {
        // The header is not even read.
        return peer;
    }
    client_address(peer, &header.hops(lines), trusted)
}

/// Walks `hops` (oldest first, as written) from the right, starting at `peer`; see the module
/// documentation.
pub fn client_address(peer: IpAddr, hops: &[Hop], trusted: &[IpNet]) -> IpAddr {
    let mut current = peer.to_canonical();
    for hop in hops.iter().rev() {
        if !is_trusted(current, trusted) {
            break;
        }
        match *hop {
            Hop::Addr(ip) => current = ip.to_canonical(),
            Hop::Unknown => break,
        }
    }
    current
}

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| net.contains(&ip))
}
