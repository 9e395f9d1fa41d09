#!/usr/bin/env bash
# Shared limits at a fixed rate: what leased limits cost beside local ones and exact ones.
#
# Two release nodes of one demo database: node A without Redis (local limits), node B with
# REDIS_URL. Keys: the demo key of the `internal` tier (gcra 1,000,000/s and fixed_window
# 1,000,000/10 s, leased: never near its limit here) and a key made here with the same two rules
# marked `"consistency": "exact"`. Runs, each LIMITS_SECONDS (default 10):
#   1. fixed rate (oha -q LIMITS_RATE, default 30000, --latency-correction), in this order:
#      GET /healthz on B, whoami with local limits (A), leased (B), exact (B), /healthz on B
#      again: p50, p99, p99.9 of each, and each limited run's p99 against the mean healthz p99;
#   2. closed loop (wrk -t2 -c64): local (A), leased (B), exact (B): req/s and ratios to local;
#   3. Redis script calls per 1,000 limited requests during the leased and exact runs (from
#      /readyz's counters of node B).
# Raw outputs and the summary (limits.md) go to artifacts/limits-bench/.
#
# Usage: scripts/limits-bench.sh
# Environment (all optional):
#   LIMITS_RATE=30000        fixed rate of the oha runs (req/s)
#   LIMITS_SECONDS=10        duration of each run
#   LIMITS_CONNECTIONS=64    oha connections
#   LIMITS_PORT=18100        node A's port (node B: +1)
#   LIMITS_SKIP_BUILD=1      use the release binary already built
#   OHA_ROOT=/var/tmp/oha    where oha is (installed there when missing)
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$KW_ROOT"

RATE="${LIMITS_RATE:-30000}"
SECS="${LIMITS_SECONDS:-10}"
CONNS="${LIMITS_CONNECTIONS:-64}"
PORT="${LIMITS_PORT:-18100}"
A="http://127.0.0.1:$PORT"
B="http://127.0.0.1:$((PORT + 1))"
OUT="$KW_ROOT/artifacts/limits-bench"
BIN="$CARGO_TARGET_DIR/release/keyward-server"
OHA_ROOT="${OHA_ROOT:-/var/tmp/oha}"
OHA="$OHA_ROOT/bin/oha"
mkdir -p "$OUT"

ensure_postgres
ensure_redis
ensure_rust
ensure_apt_packages wrk curl jq
if [ ! -x "$OHA" ]; then
    log "installing oha into $OHA_ROOT (a few minutes on 2 cores)"
    env -u CARGO_TARGET_DIR cargo install oha --locked --root "$OHA_ROOT" </dev/null
fi
if [ "${LIMITS_SKIP_BUILD:-0}" = 1 ] && [ -x "$BIN" ]; then
    log "LIMITS_SKIP_BUILD=1: using the release binary already built"
else
    log "building keyward-server (release)"
    cargo build --release -p keyward-server --bin keyward-server
fi
for url in "$A" "$B"; do
    if curl -fs -o /dev/null "$url/healthz"; then
        die "something already serves $url; stop it or set LIMITS_PORT"
    fi
done

recreate_db keyward_limits_bench
export DATABASE_URL="$KEYWARD_PG_URL/keyward_limits_bench"
export RUST_LOG="${RUST_LOG:-warn}"
"$BIN" migrate
"$BIN" demo --json >"$OUT/demo.json"
LEASED_KEY="$(demo_key_named "Load test (internal tier)" <"$OUT/demo.json")"

PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "node A (local limits) on $A, node B (REDIS_URL) on $B"
KEYWARD_BIND="127.0.0.1:$PORT" "$BIN" serve >"$OUT/node-a.log" 2>&1 &
PIDS+=($!)
KEYWARD_BIND="127.0.0.1:$((PORT + 1))" REDIS_URL="${KEYWARD_REDIS_URL:-redis://127.0.0.1:6379}" \
    "$BIN" serve >"$OUT/node-b.log" 2>&1 &
PIDS+=($!)
for ((i = 0; i < 120; i++)); do
    curl -fs "$B/readyz" 2>/dev/null | grep -q '"mode":"redis"' && curl -fs -o /dev/null "$A/readyz" && break
    sleep 0.5
done
curl -fs "$B/readyz" | grep -q '"mode":"redis"' || die "node B did not reach Redis; see $OUT/node-b.log"

# The exact twin of the leased key: the same rules, each checked against Redis per request.
SESSION="$(curl -fsS "$A/v1/auth/login" -H 'content-type: application/json' \
    -d "$(jq -n --arg e "$(jq -r .email "$OUT/demo.json")" --arg p "$(jq -r .password "$OUT/demo.json")" \
        '{email: $e, password: $p}')" | jq -r .token)"
EXACT_KEY="$(curl -fsS "$A/v1/keys" -H "authorization: Bearer $SESSION" -H 'content-type: application/json' \
    -d '{"name": "Load test (exact)", "scopes": ["achievements:*"], "rate_limits": [
          {"algorithm": "gcra", "limit": 1000000, "window_seconds": 1, "consistency": "exact"},
          {"algorithm": "fixed_window", "limit": 1000000, "window_seconds": 10, "consistency": "exact"}]}' |
    jq -r .token)"
[ -n "$EXACT_KEY" ] && [ "$EXACT_KEY" != null ] || die "could not create the exact key"
for key in "$LEASED_KEY" "$EXACT_KEY"; do
    for url in "$A" "$B"; do
        curl -fsS -o /dev/null -H "Authorization: Bearer $key" "$url/v1/whoami" || die "whoami failed on $url"
    done
done
log "warming up (3 s per node and key, not measured)"
wrk -t2 -c64 -d3s -H "Authorization: Bearer $LEASED_KEY" "$A/v1/whoami" >/dev/null 2>&1
wrk -t2 -c64 -d3s -H "Authorization: Bearer $LEASED_KEY" "$B/v1/whoami" >/dev/null 2>&1
wrk -t2 -c64 -d3s -H "Authorization: Bearer $EXACT_KEY" "$B/v1/whoami" >/dev/null 2>&1

redis_calls() { curl -fsS "$B/readyz" | jq -r '.limits.redis.calls'; }
# fixed NAME URL [KEY] — oha at $RATE req/s; its JSON in $OUT/NAME.json, and for a limited run
# the Redis calls node B made meanwhile in $OUT/NAME.calls.
fixed() {
    local name="$1" url="$2" key="${3:-}" before
    before="$(redis_calls)"
    log "oha $name: -q $RATE -z ${SECS}s -c $CONNS --latency-correction $url"
    if [ -n "$key" ]; then
        "$OHA" -q "$RATE" -z "${SECS}s" -c "$CONNS" --latency-correction --no-tui --output-format json \
            -H "Authorization: Bearer $key" "$url" >"$OUT/$name.json"
    else
        "$OHA" -q "$RATE" -z "${SECS}s" -c "$CONNS" --latency-correction --no-tui --output-format json \
            "$url" >"$OUT/$name.json"
    fi
    echo $(($(redis_calls) - before)) >"$OUT/$name.calls"
}
closed() {
    local name="$1" url="$2" key="$3"
    log "wrk $name: -t2 -c64 -d${SECS}s $url"
    wrk -t2 -c64 -d"${SECS}s" --latency -H "Authorization: Bearer $key" "$url" >"$OUT/$name.txt" 2>&1
}

fixed healthz-1 "$B/healthz"
fixed local "$A/v1/whoami" "$LEASED_KEY"
fixed leased "$B/v1/whoami" "$LEASED_KEY"
fixed exact "$B/v1/whoami" "$EXACT_KEY"
fixed healthz-2 "$B/healthz"
closed closed-local "$A/v1/whoami" "$LEASED_KEY"
closed closed-leased "$B/v1/whoami" "$LEASED_KEY"
closed closed-exact "$B/v1/whoami" "$EXACT_KEY"

ms() { jq -r ".latencyPercentiles[\"$2\"] * 1000 * 1000 | round / 1000" "$OUT/$1.json"; }
ok() { jq -r '(.statusCodeDistribution["200"] // 0)' "$OUT/$1.json"; }
all() { jq -r '[.statusCodeDistribution[]] | add' "$OUT/$1.json"; }
rps() { awk '/^Requests\/sec:/ { print $2 }' "$OUT/$1.txt"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
per_k() { awk -v c="$(cat "$OUT/$1.calls")" -v n="$(all "$1")" 'BEGIN { if (n > 0) printf "%.1f", 1000 * c / n; else print "n/a" }'; }
hz99="$(awk -v a="$(ms healthz-1 p99)" -v b="$(ms healthz-2 p99)" 'BEGIN { print (a + b) / 2 }')"
row() {
    printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$1" "$(ms "$2" p50)" "$(ms "$2" p99)" "$(ms "$2" p99.9)" \
        "$(ratio "$(ms "$2" p99)" "$hz99")" "$(ok "$2")/$(all "$2")" "${3:-}"
}
{
    echo "# Shared limits: local, leased and exact"
    echo
    echo "$(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) cores; release nodes, demo data; client, nodes, PostgreSQL and Redis on the same machine."
    echo
    echo "Fixed rate: oha -q $RATE -z ${SECS}s -c $CONNS --latency-correction (ms)."
    echo
    echo "| run | p50 | p99 | p99.9 | p99 / healthz p99 | 200 / answered | Redis calls per 1,000 |"
    echo "|---|---|---|---|---|---|---|"
    row "GET /healthz (node B)" healthz-1
    row "whoami, local limits (node A)" local
    row "whoami, leased (node B)" leased "$(per_k leased)"
    row "whoami, exact (node B)" exact "$(per_k exact)"
    row "GET /healthz again (node B)" healthz-2
    echo
    echo "Closed loop: wrk -t2 -c64 -d${SECS}s."
    echo
    echo "| run | req/s | / local |"
    echo "|---|---|---|"
    for r in local leased exact; do
        printf '| %s | %s | %s |\n' "$r" "$(rps "closed-$r")" "$(ratio "$(rps "closed-$r")" "$(rps closed-local)")"
    done
    echo
    echo "Goals: leased p99 <= 1.3x healthz p99; leased closed-loop >= 0.9x local; <= 20 Redis calls per 1,000 requests away from the limit."
} >"$OUT/limits.md"
echo
cat "$OUT/limits.md"
log "summary written to artifacts/limits-bench/limits.md"
