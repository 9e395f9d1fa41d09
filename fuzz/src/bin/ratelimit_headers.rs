//! afl.rs harness for [`keyward_fuzz::ratelimit_headers`]: `scripts/fuzz.sh` builds and runs it.

fn main() {
    afl::fuzz!(|data: &[u8]| keyward_fuzz::ratelimit_headers::run(data));
}
