//! afl.rs harness for [`keyward_fuzz::scope`]: `scripts/fuzz.sh` builds and runs it.

fn main() {
    afl::fuzz!(|data: &[u8]| keyward_fuzz::scope::run(data));
}
