#!/usr/bin/env bash
# Run every test: formatting, clippy, then the workspace's unit, property and end-to-end tests
# against a real PostgreSQL and Redis (started here if they are down), then schemathesis over
# /openapi.json. CI runs exactly this.
#
# Usage: scripts/test.sh [TEST-RUNNER-ARGS...]   e.g. scripts/test.sh -E 'test(login)'
#   Extra arguments go to `cargo nextest run` (or `cargo test` when nextest is unavailable).
# Environment (all optional):
#   KEYWARD_SKIP_LINT=1      skip cargo fmt and clippy (fast local loops)
#   KEYWARD_SKIP_DESKTOP_E2E=1  skip the desktop WebDriver test
#   KEYWARD_SKIP_FUZZ=1      skip the fuzz smoke run
#   KEYWARD_TEST_PG_URL      PostgreSQL server for the tests (default postgres://postgres@127.0.0.1:5432)
#   KEYWARD_TEST_REDIS_URL   Redis for the tests (default redis://127.0.0.1:6379)
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$KW_ROOT"

export KEYWARD_TEST_PG_URL="${KEYWARD_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432}"
export KEYWARD_TEST_REDIS_URL="${KEYWARD_TEST_REDIS_URL:-redis://127.0.0.1:6379}"

log "checking services and toolchain"
ensure_postgres
ensure_redis
ensure_rust
# The end-to-end tests scan a pg_dump of their database.
command -v pg_dump >/dev/null 2>&1 || ensure_apt_packages postgresql-client
ensure_nextest

# --locked only when there is a lock file to hold to.
locked=()
[ -f Cargo.lock ] && locked=(--locked)

# step NAME CMD... — run one step; record "NAME ok" or "NAME FAILED" and carry on, so a single
# run reports every problem. The script fails at the end if any step failed.
results=()
failed=0
step() {
    local name="$1"
    shift
    log "$name: $*"
    if "$@"; then
        results+=("$name ok")
    else
        results+=("$name FAILED")
        failed=1
    fi
}

# The desktop UI first: the desktop crate embeds ui/dist when it compiles (clippy included).
step ui build_ui

if [ "${KEYWARD_SKIP_LINT:-0}" = 1 ]; then
    log "KEYWARD_SKIP_LINT=1: skipping fmt and clippy"
    results+=("lint skipped")
else
    step fmt cargo fmt --all -- --check
    step clippy cargo clippy --workspace --all-targets "${locked[@]}" -- -D warnings
fi
# The query! macros against a database migrated from migrations/: a migration that breaks a
# query, or a stale .sqlx/, fails here.
step "sqlx queries" scripts/sqlx-prepare.sh --check

mkdir -p artifacts
rm -f artifacts/tests-junit.xml artifacts/desktop-junit.xml artifacts/chart-tests.log
# nextest's JUnit report of the `ci` profile (scripts/test-summary.py counts tests per layer).
junit="$KW_ROOT/target/nextest/${NEXTEST_PROFILE:-ci}/junit.xml"
keep_junit() { [ ! -f "$junit" ] || cp "$junit" "artifacts/$1"; }

rm -f "$junit"
step "tests ($KW_TEST_RUNNER)" run_tests --workspace "${locked[@]}" --no-fail-fast "$@"
keep_junit tests-junit.xml

# chart/ is a workspace of its own (it builds for wasm32): its host-side tests, in the target
# directory scripts/build-chart.sh builds it in.
chart_tests() {
    cargo test --manifest-path chart/Cargo.toml --locked --target-dir "$CARGO_TARGET_DIR/chart" \
        2>&1 | tee artifacts/chart-tests.log
}
step "chart tests" chart_tests

# /openapi.json against a live server: schemathesis with all its checks (scripts/schemathesis.sh).
step schemathesis "$KW_ROOT/scripts/schemathesis.sh"

# Coverage-guided fuzzing (afl.rs on stable): a short run of every target; 0 crashes required.
# The long run is scripts/fuzz.sh [SECONDS_PER_TARGET] (skip here: KEYWARD_SKIP_FUZZ=1).
if [ "${KEYWARD_SKIP_FUZZ:-0}" = 1 ]; then
    results+=("fuzz smoke skipped")
else
    step "fuzz smoke" "$KW_ROOT/scripts/fuzz.sh" --smoke
fi

# The real app in a real window under Xvfb, driven by WebDriver (skip: KEYWARD_SKIP_DESKTOP_E2E=1).
if [ "${KEYWARD_SKIP_DESKTOP_E2E:-0}" = 1 ]; then
    results+=("desktop e2e skipped")
else
    rm -f "$junit"
    step "desktop e2e" "$KW_ROOT/scripts/desktop-e2e.sh"
    keep_junit desktop-junit.xml
fi

python3 "$KW_ROOT/scripts/test-summary.py" "$KW_ROOT/artifacts" >&2 || warn "no per-layer counts"

summary="$(printf '%s, ' "${results[@]}")"
if [ "$failed" -ne 0 ]; then
    log "test.sh FAILED after ${SECONDS}s: ${summary%, }"
    exit 1
fi
log "test.sh passed in ${SECONDS}s: ${summary%, }"
