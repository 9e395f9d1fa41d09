//! Fuzz targets for keyward-core: one module per target, each a `run(&[u8])` that must never
//! panic and asserts the target's invariants. The binaries in `src/bin/` hand these to afl.rs;
//! the tests below replay every seed in `corpus/<target>/` without instrumentation, so a crash
//! input dropped there becomes a regression test (`cargo test --lib` in this directory).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub mod cidr;
pub mod ratelimit_headers;
pub mod requests;
pub mod scope;
pub mod token;
pub mod webhook_url;

/// The input as text: valid UTF-8 as is, anything else with replacement characters, so
/// byte-level mutations still reach the parsers.
pub fn text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}

/// An address from the input's last 16 bytes: IPv4 (the last 4) when the first of them is even,
/// else IPv6.
pub fn address(data: &[u8]) -> Option<IpAddr> {
    let tail = data.len().checked_sub(16)?;
    let bytes: [u8; 16] = data[tail..].try_into().ok()?;
    Some(if bytes[0] & 1 == 0 {
        IpAddr::V4(Ipv4Addr::new(bytes[12], bytes[13], bytes[14], bytes[15]))
    } else {
        IpAddr::V6(Ipv6Addr::from(bytes))
    })
}

/// A target's entry point.
pub type Target = fn(&[u8]);

/// Every target, by the name of its binary and corpus directory.
pub const TARGETS: &[(&str, Target)] = &[
    ("token", token::run),
    ("scope", scope::run),
    ("cidr", cidr::run),
    ("requests", requests::run),
    ("webhook_url", webhook_url::run),
    ("ratelimit_headers", ratelimit_headers::run),
];

#[cfg(test)]
mod tests {
    use std::path::Path;

    #[test]
    fn every_seed_passes_its_target() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
        for (name, run) in super::TARGETS {
            let dir = root.join(name);
            let mut seeds = 0;
            for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{dir:?}: {e}")) {
                let path = entry.unwrap().path();
                run(&std::fs::read(&path).unwrap());
                seeds += 1;
            }
            assert!(seeds > 0, "no seeds in {dir:?}");
        }
    }

    #[test]
    fn every_target_has_a_binary() {
        let bins = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/bin");
        for (name, _) in super::TARGETS {
            assert!(
                bins.join(format!("{name}.rs")).exists(),
                "src/bin/{name}.rs"
            );
        }
    }

    #[test]
    fn empty_and_junk_inputs_pass() {
        for (_, run) in super::TARGETS {
            for input in [&b""[..], b"\0", b"\xff\xfe", b"{}", b"[]", &[0x41; 300]] {
                run(input);
            }
        }
    }
}
