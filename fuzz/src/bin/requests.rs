//! afl.rs harness for [`keyward_fuzz::requests`]: `scripts/fuzz.sh` builds and runs it.

fn main() {
    afl::fuzz!(|data: &[u8]| keyward_fuzz::requests::run(data));
}
