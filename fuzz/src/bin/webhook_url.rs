//! afl.rs harness for [`keyward_fuzz::webhook_url`]: `scripts/fuzz.sh` builds and runs it.

fn main() {
    afl::fuzz!(|data: &[u8]| keyward_fuzz::webhook_url::run(data));
}
