#!/usr/bin/env bash
# Benchmarks: the criterion benches (core token, server verify), then a wrk load run against a
# release server on 127.0.0.1:18080 seeded with the demo data in a fresh `keyward_bench`
# database:
#   1. GET /healthz, GET /v1/whoami (valid demo key), GET /healthz again (drift check), each
#      wrk -t2 -c64 --latency;
#   2. the valid key's whoami (wrk -t1 -c16) alone, beside a flood of unknown keys, and beside a
#      flood of wrong secrets for its own key id (each flood wrk -t1 -c48);
#   3. rate limits: whoami (wrk -t2 -c64) with a key without limits, with the demo key of the
#      `internal` tier (two rules) on the same server (local limits), and the same key on a second
#      node of the same database with REDIS_URL (shared limits), then the unlimited key again;
#   4. usage recording: whoami on a third node of the same database with KEYWARD_USAGE_RECORDING
#      off, beside the first node (recording on), alternated.
# Raw outputs go to artifacts/bench/, the summary to artifacts/bench/summary.md and stdout.
# Fixed-rate latency of shared limits (local, leased, exact beside /healthz, with oha) is
# scripts/limits-bench.sh.
#
# Usage: scripts/bench.sh
# Environment (all optional):
#   BENCH_SECONDS=10          duration of each wrk run
#   BENCH_PORT=18080          port of the benchmarked server
#   BENCH_SKIP_CRITERION=1    skip the criterion benches (load run only)
#   BENCH_ONLY_LIMITS=1       of the wrk runs, only the rate-limit and recording comparisons
#   BENCH_REDIS_POOL=2        KEYWARD_REDIS_POOL_SIZE of the Redis node
#   KEYWARD_PG_URL            PostgreSQL server URL (default postgres://postgres@127.0.0.1:5432)
#   RUST_LOG                  server log filter (default warn, so logging does not skew numbers)
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$KW_ROOT"

SECS="${BENCH_SECONDS:-10}"
ADDR="127.0.0.1:${BENCH_PORT:-18080}"
URL="http://$ADDR"
OUT="$KW_ROOT/artifacts/bench"
BIN="$CARGO_TARGET_DIR/release/keyward-server"
TOKENS_LUA="$KW_ROOT/scripts/wrk/tokens.lua"
export KEYWARD_TEST_PG_URL="${KEYWARD_TEST_PG_URL:-$KEYWARD_PG_URL}" # for the verify bench
mkdir -p "$OUT"

log "checking services and tools"
ensure_postgres
ensure_redis
ensure_rust
ensure_apt_packages wrk curl

# --- criterion ------------------------------------------------------------------------------
if [ "${BENCH_SKIP_CRITERION:-0}" = 1 ]; then
    log "BENCH_SKIP_CRITERION=1: skipping criterion benches"
    : >"$OUT/criterion.txt"
else
    log "criterion: keyward-core token"
    cargo bench -p keyward-core --bench token 2>&1 | tee "$OUT/criterion-token.txt"
    log "criterion: keyward-server verify"
    cargo bench -p keyward-server --bench verify 2>&1 | tee "$OUT/criterion-verify.txt"
    log "criterion: keyward-server limits (beside governor)"
    cargo bench -p keyward-server --bench limits 2>&1 | tee "$OUT/criterion-limits.txt"
    cat "$OUT/criterion-token.txt" "$OUT/criterion-verify.txt" "$OUT/criterion-limits.txt" >"$OUT/criterion.txt"
fi

# --- server ---------------------------------------------------------------------------------
log "building keyward-server and the flood_tokens example (release)"
cargo build --release -p keyward-server --bin keyward-server --example flood_tokens

recreate_db keyward_bench
export DATABASE_URL="$KEYWARD_PG_URL/keyward_bench"
export KEYWARD_BIND="$ADDR"
export RUST_LOG="${RUST_LOG:-warn}"
"$BIN" migrate
"$BIN" demo >"$OUT/demo.txt"
KEY="$(first_live_key < <("$BIN" demo --json))"
LIMITED_KEY="$(demo_key_named "Load test (internal tier)" < <("$BIN" demo --json))"
REDIS_ADDR="127.0.0.1:$((${BENCH_PORT:-18080} + 1))"
REDIS_NODE="http://$REDIS_ADDR"

if curl -fs -o /dev/null "$URL/healthz"; then
    die "something already serves $URL; stop it or set BENCH_PORT"
fi

SERVER_PID=""
FLOOD_PID=""
REDIS_NODE_PID=""
QUIET_NODE_PID=""
# On exit: stop a flood still running, then the servers (SIGTERM: they drain and exit).
cleanup() {
    if [ -n "$FLOOD_PID" ]; then kill "$FLOOD_PID" 2>/dev/null || true; fi
    if [ -n "$REDIS_NODE_PID" ]; then kill -TERM "$REDIS_NODE_PID" 2>/dev/null || true; fi
    if [ -n "$QUIET_NODE_PID" ]; then kill -TERM "$QUIET_NODE_PID" 2>/dev/null || true; fi
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        log "stopping keyward-server (pid $SERVER_PID)"
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "starting keyward-server on $URL (log: artifacts/bench/server.log)"
"$BIN" serve >"$OUT/server.log" 2>&1 &
SERVER_PID=$!
for ((i = 0; i < 120; i++)); do
    curl -fs -o /dev/null "$URL/readyz" && break
    kill -0 "$SERVER_PID" 2>/dev/null || die "keyward-server exited; see $OUT/server.log"
    sleep 0.5
done
curl -fs -o /dev/null "$URL/readyz" || die "keyward-server not ready after 60s"
# One call first: checks the key works and warms it (the first check of a key runs argon2).
curl -fsS -H "Authorization: Bearer $KEY" "$URL/v1/whoami" >"$OUT/whoami.json" ||
    die "GET /v1/whoami with the demo key failed"

# --- wrk runs -------------------------------------------------------------------------------
# run_wrk NAME WRK-ARGS... — run wrk, keep its output in $OUT/NAME.txt (and show it).
run_wrk() {
    local name="$1"
    shift
    log "wrk $name: ${*//"$KEY"/<demo key>}"
    wrk "$@" >"$OUT/$name.txt" 2>&1
    cat "$OUT/$name.txt"
}
rps() { awk '/^Requests\/sec:/ { print $2 }' "$OUT/$1.txt"; }
p99() { awk '$1 == "99%" { print $2; exit }' "$OUT/$1.txt"; }
non2xx() { awk '/Non-2xx or 3xx responses:/ { n = $NF } END { print n + 0 }' "$OUT/$1.txt"; }
total() { awk '/requests in/ { print $1; exit }' "$OUT/$1.txt"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "n/a" }'; }
AUTH="Authorization: Bearer $KEY"

if [ "${BENCH_ONLY_LIMITS:-0}" != 1 ]; then
run_wrk healthz-1 -t2 -c64 -d"${SECS}s" --latency "$URL/healthz"
run_wrk whoami -t2 -c64 -d"${SECS}s" --latency -H "$AUTH" "$URL/v1/whoami"
run_wrk healthz-2 -t2 -c64 -d"${SECS}s" --latency "$URL/healthz"

log "generating flood tokens"
cargo run -q --release -p keyward-server --example flood_tokens -- unknown 20000 >"$OUT/unknown.txt"
cargo run -q --release -p keyward-server --example flood_tokens -- wrong "$KEY" 20000 >"$OUT/wrong.txt"

run_wrk valid-alone -t1 -c16 -d"${SECS}s" --latency -H "$AUTH" "$URL/v1/whoami"

# with_flood KIND — the valid key's run while a flood of KIND tokens runs beside it. The flood
# starts 1 s before and lasts 2 s longer, so it covers the whole measured run.
with_flood() {
    local kind="$1"
    log "flood-$kind: wrk -t1 -c48 -d$((SECS + 2))s -s scripts/wrk/tokens.lua (TOKENS_FILE=$kind.txt)"
    TOKENS_FILE="$OUT/$kind.txt" wrk -t1 -c48 -d"$((SECS + 2))s" --latency -s "$TOKENS_LUA" \
        "$URL/v1/whoami" >"$OUT/flood-$kind.txt" 2>&1 &
    FLOOD_PID=$!
    sleep 1
    run_wrk "valid-with-$kind" -t1 -c16 -d"${SECS}s" --latency -H "$AUTH" "$URL/v1/whoami"
    wait "$FLOOD_PID" || die "flood wrk failed; see $OUT/flood-$kind.txt"
    FLOOD_PID=""
    cat "$OUT/flood-$kind.txt"
}
with_flood unknown
with_flood wrong
fi

# --- rate limits: off / local / Redis ---------------------------------------------------------
log "starting a second node with REDIS_URL on $REDIS_NODE (log: artifacts/bench/server-redis.log)"
KEYWARD_BIND="$REDIS_ADDR" KEYWARD_REDIS_POOL_SIZE="${BENCH_REDIS_POOL:-2}" REDIS_URL="${KEYWARD_REDIS_URL:-redis://127.0.0.1:6379}" "$BIN" serve >"$OUT/server-redis.log" 2>&1 &
REDIS_NODE_PID=$!
for ((i = 0; i < 120; i++)); do
    curl -fs "$REDIS_NODE/readyz" 2>/dev/null | grep -q '"mode":"redis"' && break
    sleep 0.5
done
curl -fs "$REDIS_NODE/readyz" | grep -q '"mode":"redis"' || die "the Redis node did not reach Redis; see $OUT/server-redis.log"
LAUTH="Authorization: Bearer $LIMITED_KEY"
curl -fsS -o /dev/null -H "$LAUTH" "$URL/v1/whoami" || die "the limited demo key failed"
curl -fsS -o /dev/null -H "$LAUTH" "$REDIS_NODE/v1/whoami" || die "the limited demo key failed on the Redis node"
log "warming up both nodes (3 s each, not measured)"
wrk -t2 -c64 -d3s -H "$AUTH" "$URL/v1/whoami" >/dev/null 2>&1
wrk -t2 -c64 -d3s -H "$LAUTH" "$REDIS_NODE/v1/whoami" >/dev/null 2>&1
run_wrk limits-off -t2 -c64 -d"${SECS}s" --latency -H "$AUTH" "$URL/v1/whoami"
run_wrk limits-local -t2 -c64 -d"${SECS}s" --latency -H "$LAUTH" "$URL/v1/whoami"
run_wrk limits-redis -t2 -c64 -d"${SECS}s" --latency -H "$LAUTH" "$REDIS_NODE/v1/whoami"
run_wrk limits-off-2 -t2 -c64 -d"${SECS}s" --latency -H "$AUTH" "$URL/v1/whoami"
curl -fsS "$REDIS_NODE/readyz" >"$OUT/readyz-redis.json" || true

# --- usage recording on / off -----------------------------------------------------------------
QUIET_ADDR="127.0.0.1:$((${BENCH_PORT:-18080} + 2))"
QUIET_NODE="http://$QUIET_ADDR"
log "starting a third node without usage recording on $QUIET_NODE"
KEYWARD_BIND="$QUIET_ADDR" KEYWARD_USAGE_RECORDING=false "$BIN" serve >"$OUT/server-quiet.log" 2>&1 &
QUIET_NODE_PID=$!
for ((i = 0; i < 120; i++)); do
    curl -fs -o /dev/null "$QUIET_NODE/readyz" && break
    sleep 0.5
done
curl -fsS -o /dev/null -H "$AUTH" "$QUIET_NODE/v1/whoami" || die "the node without recording failed"
wrk -t2 -c64 -d3s -H "$AUTH" "$QUIET_NODE/v1/whoami" >/dev/null 2>&1
run_wrk recording-on -t2 -c64 -d"${SECS}s" --latency -H "$AUTH" "$URL/v1/whoami"
run_wrk recording-off -t2 -c64 -d"${SECS}s" --latency -H "$AUTH" "$QUIET_NODE/v1/whoami"
run_wrk recording-on-2 -t2 -c64 -d"${SECS}s" --latency -H "$AUTH" "$URL/v1/whoami"
run_wrk recording-off-2 -t2 -c64 -d"${SECS}s" --latency -H "$AUTH" "$QUIET_NODE/v1/whoami"

# --- summary --------------------------------------------------------------------------------
row() { printf '| %s | %s | %s | %s | %s | %s |\n' "$1" "$2" "$(rps "$3")" "$(p99 "$3")" "$(non2xx "$3")" "$(total "$3")"; }
h1="$(rps healthz-1)" h2="$(rps healthz-2)" who="$(rps whoami)"
{
    echo "# Keyward load run"
    echo
    echo "$(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo ' (dirty)'), $(nproc) cores, ${SECS}s per wrk run, server $URL (release, RUST_LOG=$RUST_LOG), client and server on the same machine."
    echo
    echo "| run | wrk | req/s | p99 | non-2xx | requests |"
    echo "|---|---|---|---|---|---|"
    if [ "${BENCH_ONLY_LIMITS:-0}" != 1 ]; then
    row "GET /healthz" "-t2 -c64" healthz-1
    row "GET /v1/whoami (valid key)" "-t2 -c64" whoami
    row "GET /healthz again" "-t2 -c64" healthz-2
    row "valid key alone" "-t1 -c16" valid-alone
    row "valid key beside unknown-key flood" "-t1 -c16" valid-with-unknown
    row "  unknown-key flood itself" "-t1 -c48" flood-unknown
    row "valid key beside wrong-secret flood" "-t1 -c16" valid-with-wrong
    row "  wrong-secret flood itself" "-t1 -c48" flood-wrong
    fi
    row "whoami, key without limits" "-t2 -c64" limits-off
    row "whoami, 2 rules, local limits" "-t2 -c64" limits-local
    row "whoami, 2 rules, Redis (2nd node)" "-t2 -c64" limits-redis
    row "whoami, key without limits again" "-t2 -c64" limits-off-2
    row "whoami, usage recording on" "-t2 -c64" recording-on
    row "whoami, usage recording off (3rd node)" "-t2 -c64" recording-off
    row "whoami, usage recording on again" "-t2 -c64" recording-on-2
    row "whoami, usage recording off again" "-t2 -c64" recording-off-2
    echo
    if [ "${BENCH_ONLY_LIMITS:-0}" != 1 ]; then
    echo "- whoami / healthz req/s: $(ratio "$who" "$(awk -v a="$h1" -v b="$h2" 'BEGIN { print (a + b) / 2 }')") (against the mean of both healthz runs)"
    echo "- healthz drift (second / first run): $(ratio "$h2" "$h1")"
    echo "- valid key req/s beside unknown flood / alone: $(ratio "$(rps valid-with-unknown)" "$(rps valid-alone)")"
    echo "- valid key req/s beside wrong-secret flood / alone: $(ratio "$(rps valid-with-wrong)" "$(rps valid-alone)")"
    fi
    off="$(awk -v a="$(rps limits-off)" -v b="$(rps limits-off-2)" 'BEGIN { print (a + b) / 2 }')"
    echo "- limits local / off req/s: $(ratio "$(rps limits-local)" "$off") (target >= 0.9; off = mean of both runs)"
    echo "- limits Redis / local req/s: $(ratio "$(rps limits-redis)" "$(rps limits-local)") (target >= 0.5)"
    on="$(awk -v a="$(rps recording-on)" -v b="$(rps recording-on-2)" 'BEGIN { print (a + b) / 2 }')"
    quiet="$(awk -v a="$(rps recording-off)" -v b="$(rps recording-off-2)" 'BEGIN { print (a + b) / 2 }')"
    echo "- usage recording on / off req/s: $(ratio "$on" "$quiet") (target >= 0.95; means of two runs each)"
    echo "- Redis node after the run: $(cat "$OUT/readyz-redis.json" 2>/dev/null)"
    if [ -s "$OUT/criterion.txt" ]; then
        echo
        echo "## Criterion"
        echo
        echo "| bench | time [low estimate high] |"
        echo "|---|---|"
        # A bench's name stands before "time:" or, when long, alone on the line above it.
        awk '/time:/ { n = ($1 == "time:") ? prev : $1; t = $0; sub(/.*time:[ \t]*/, "", t)
                       printf "| %s | %s |\n", n, t; next }
             NF == 1 { prev = $1 }' "$OUT/criterion.txt"
    fi
    echo
    echo "Raw outputs: artifacts/bench/*.txt, server log: artifacts/bench/server.log."
} >"$OUT/summary.md"

echo
cat "$OUT/summary.md"
log "summary written to artifacts/bench/summary.md"
