#!/usr/bin/env bash
# Coverage-guided fuzzing of keyward-core on the stable toolchain: afl.rs (the `afl` crate and
# `cargo-afl`, which builds AFL++ from the source it ships) runs each target of the fuzz/ crate
# (token, scope, cidr, requests, webhook_url, ratelimit_headers) in turn, starting from the
# seeds in fuzz/corpus/<target>/, then reports per target the executions, crashes and hangs,
# writes artifacts/fuzz/summary.md and copies any crashing input to artifacts/fuzz/crashes/.
# Exits non-zero when a target crashed (a panic: a failed invariant or a bug) or did not run.
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET]     (default 300)
#        scripts/fuzz.sh --smoke                   (12 s per target, for scripts/test.sh)
# Environment (optional):
#   FUZZ_TARGETS="token cidr"   run only these targets
#
# Installs what it lacks (idempotent): build-essential (AFL++ is compiled with gcc and make),
# cargo-afl into the default cargo home (~/.cargo/bin) with AFL++ under ~/.local/share/afl.rs,
# rebuilt there for a new rustc. Builds into /var/tmp/keyward-fuzz-target; AFL++'s working
# directories (queues, crashes) are /var/tmp/keyward-fuzz-out/<target>, fresh each run.
# Runs headless and non-interactive, also as root. A second run waits for the first.
#
# Reproduce a crash: /var/tmp/keyward-fuzz-target/release/<target> < artifacts/fuzz/crashes/<target>/<file>
# (prints the panic), or drop the file into fuzz/corpus/<target>/ and run
# `cargo test --lib` in fuzz/ (every seed is replayed there).
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$KW_ROOT"

# Must match the `afl` version pinned in fuzz/Cargo.toml.
AFL_RS_VERSION=0.18.2
ALL_TARGETS=(token scope cidr requests webhook_url ratelimit_headers)
SMOKE_SECONDS=12

SECS=300
MODE=full
case "${1:-}" in
"") ;;
--smoke)
    SECS=$SMOKE_SECONDS
    MODE=smoke
    ;;
-h | --help)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
    ;;
*)
    [[ "$1" =~ ^[1-9][0-9]*$ ]] || die "usage: scripts/fuzz.sh [SECONDS_PER_TARGET | --smoke]"
    SECS=$1
    ;;
esac
read -r -a TARGETS <<<"${FUZZ_TARGETS:-${ALL_TARGETS[*]}}"
for t in "${TARGETS[@]}"; do
    [[ " ${ALL_TARGETS[*]} " == *" $t "* ]] || die "unknown target $t (targets: ${ALL_TARGETS[*]})"
done

export CARGO_TARGET_DIR=/var/tmp/keyward-fuzz-target
OUT_ROOT=/var/tmp/keyward-fuzz-out
ART="$KW_ROOT/artifacts/fuzz"
BIN_DIR="$CARGO_TARGET_DIR/release"

# One run at a time on a machine: the working directories are shared.
mkdir -p "$OUT_ROOT"
exec 9>"$OUT_ROOT/.lock"
if ! flock -n 9; then
    log "another fuzz run holds $OUT_ROOT/.lock; waiting for it"
    flock 9
fi

# --- tools --------------------------------------------------------------------------------
ensure_rust
ensure_apt_packages build-essential
if [[ "$(cargo afl --version 2>/dev/null || true)" != "cargo-afl $AFL_RS_VERSION"* ]]; then
    log "installing cargo-afl $AFL_RS_VERSION (builds AFL++; takes a few minutes)"
    # Its own temporary target dir, so the install neither locks nor bloats the fuzz one.
    env -u CARGO_TARGET_DIR cargo install cargo-afl --locked --version "$AFL_RS_VERSION" </dev/null
fi
# AFL++ and its LLVM runtime are built per rustc version: again after a toolchain update.
if ! config_out="$(cargo afl config --build 2>&1 </dev/null)" &&
    [[ "$config_out" != *"already built"* ]]; then
    printf '%s\n' "$config_out" >&2
    die "cargo afl config --build failed"
fi
AFL_TOOL_VERSION="$(cargo afl --version)"
RUSTC_VERSION="$(rustc --version)"
log "$AFL_TOOL_VERSION; $RUSTC_VERSION"

# --- build --------------------------------------------------------------------------------
log "building the fuzz targets (cargo afl build --release, into $CARGO_TARGET_DIR)"
build_start=$SECONDS
(cd fuzz && cargo afl build --release --bins </dev/null)
log "built in $((SECONDS - build_start)) s"

# --- run ----------------------------------------------------------------------------------
# Headless, non-interactive, any CPU governor and core-dump setting, no core pinning (other
# work may hold the cores), and no startup calibration detours.
export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1 AFL_NO_AFFINITY=1
export AFL_FAST_CAL=1 AFL_NO_CRASH_README=1
unset AFL_AUTORESUME AFL_BENCH_UNTIL_CRASH

rm -rf "$ART"
mkdir -p "$ART"
stat_of() { sed -n "s/^$2 *: *//p" "$1" 2>/dev/null | head -n 1; }

failed=0
rows=()
details=()
run_start=$SECONDS
for t in "${TARGETS[@]}"; do
    bin="$BIN_DIR/$t"
    out="$OUT_ROOT/$t"
    logfile="$OUT_ROOT/$t.log"
    crash_dir="$ART/crashes/$t"
    rm -rf "$out" "$logfile"
    [ -x "$bin" ] || die "$bin was not built"

    # A seed that crashes would stop afl-fuzz at startup: replay them first, each on its own.
    seed_crashes=0
    for seed in fuzz/corpus/"$t"/*; do
        if ! panic="$(RUST_BACKTRACE=0 "$bin" <"$seed" 2>&1 >/dev/null)"; then
            mkdir -p "$crash_dir"
            cp "$seed" "$crash_dir/seed-$(basename "$seed")"
            seed_crashes=$((seed_crashes + 1))
            panic="$(grep -v '^$\|^note:' <<<"$panic" | head -n 8 || true)"
            details+=("### $t: seed \`fuzz/corpus/$t/$(basename "$seed")\` crashes" ""
                "Reproduce: \`$bin < fuzz/corpus/$t/$(basename "$seed")\`" "" '```' "$panic" '```' "")
            warn "$t: seed $seed crashes:"
            printf '%s\n' "$panic" >&2
        fi
    done
    if [ "$seed_crashes" -gt 0 ]; then
        warn "$t: $seed_crashes seed(s) crash; not fuzzing it"
        rows+=("| $t | 0 | 0 | - | - | - | $seed_crashes (seeds) | - |")
        failed=1
        continue
    fi

    log "fuzzing $t for $SECS s"
    status=0
    # -t: 1 s per input is a hang (the auto-calibrated default is ~20 ms, which a loaded machine
    # trips); the outer timeout only guards against afl-fuzz itself never finishing.
    timeout --kill-after=10 $((SECS + 120)) \
        cargo afl fuzz -i "fuzz/corpus/$t" -o "$out" -V "$SECS" -t 1000 -- "$bin" \
        </dev/null >"$logfile" 2>&1 || status=$?
    stats="$out/default/fuzzer_stats"
    if [ ! -f "$stats" ]; then
        warn "$t: afl-fuzz did not run (exit $status); the end of $logfile:"
        tail -n 20 "$logfile" >&2
        rows+=("| $t | 0 | 0 | - | - | - | did not run | - |")
        failed=1
        continue
    fi
    run_time="$(stat_of "$stats" run_time)"
    execs="$(stat_of "$stats" execs_done)"
    per_sec="$(stat_of "$stats" execs_per_sec)"
    corpus="$(stat_of "$stats" corpus_count)"
    edges="$(stat_of "$stats" edges_found)/$(stat_of "$stats" total_edges)"
    crashes="$(stat_of "$stats" saved_crashes)"
    hangs="$(stat_of "$stats" saved_hangs)"
    [ "$status" -eq 0 ] || warn "$t: afl-fuzz exited with $status"
    rows+=("| $t | $run_time | $execs | ${per_sec%.*} | $corpus | $edges | $crashes | $hangs |")
    printf '%-18s %6s s  %12s execs  %7s/s  corpus %5s  edges %11s  crashes %s  hangs %s\n' \
        "$t" "$run_time" "$execs" "${per_sec%.*}" "$corpus" "$edges" "$crashes" "$hangs"

    if [ "${crashes:-0}" != 0 ]; then
        failed=1
        mkdir -p "$crash_dir"
        cp "$out"/default/crashes/id:* "$crash_dir"/ 2>/dev/null || true
        first="$(find "$crash_dir" -type f | sort | head -n 1)"
        if [ -n "$first" ]; then
            panic="$(RUST_BACKTRACE=0 "$bin" <"$first" 2>&1 >/dev/null | grep -v '^$\|^note:' |
                head -n 8 || true)"
            details+=("### $t" "" "$crashes crashing input(s) in \`artifacts/fuzz/crashes/$t/\`." \
                "Reproduce: \`$bin < '${first#"$KW_ROOT/"}'\`" "" '```' "$panic" '```' "")
            warn "$t crashed; first input: ${first#"$KW_ROOT/"}"
            printf '%s\n' "$panic" >&2
        fi
    fi
    if [ "${hangs:-0}" != 0 ]; then
        mkdir -p "$ART/hangs/$t"
        cp "$out"/default/hangs/id:* "$ART/hangs/$t/" 2>/dev/null || true
        details+=("### $t: hangs" "" "$hangs input(s) took over 1 s: \`artifacts/fuzz/hangs/$t/\`." "")
    fi
    tail -n 30 "$logfile" >"$ART/$t.log"
done

{
    echo "# Fuzzing summary"
    echo
    echo "$(date -u +%Y-%m-%dT%H:%M:%SZ), $MODE run, $SECS s per target (\`scripts/fuzz.sh\`)."
    echo "$AFL_TOOL_VERSION, $RUSTC_VERSION."
    echo
    echo "| target | seconds | executions | execs/s | corpus | edges | crashes | hangs |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
    printf '%s\n' "${rows[@]}"
    echo
    if [ "${#details[@]}" -gt 0 ]; then
        printf '%s\n' "${details[@]}"
    else
        echo "No crashes and no hangs."
    fi
} >"$ART/summary.md"
log "fuzzed ${#TARGETS[@]} target(s) in $((SECONDS - run_start)) s; summary in artifacts/fuzz/summary.md"

if [ "$failed" -ne 0 ]; then
    die "fuzzing found crashes (or a target did not run): see artifacts/fuzz/summary.md"
fi
log "no crashes"
