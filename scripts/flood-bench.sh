#!/usr/bin/env bash
# Floods of unknown key ids against the filter of known ids (issue 11), at fixed rates:
#
#   1. the valid demo key alone: oha at FLOOD_VALID_RPS (default 300) for FLOOD_SECONDS
#      (default 15) with latency correction — its p99 is the figure users feel;
#   2. the same beside a paced flood of 50,000 distinct random key ids (UUIDv4, well-formed
#      tokens; wrk with scripts/wrk/tokens.lua, FLOOD_DELAY_MS between requests per connection);
#   3. the same beside a flood of ids forged to look just minted (UUIDv7 of now), which the
#      filter cannot rule out and sends through its global lookup budget (50/s).
#
# For each flood: requests sent, how many reached PostgreSQL (keyward_key_lookups_total with
# result database_found|database_absent), as a share of the distinct ids; and the valid key's
# p99 beside it over alone. Raw outputs and the summary go to artifacts/flood/.
#
# Usage: scripts/flood-bench.sh
# Environment: FLOOD_SECONDS=15 FLOOD_VALID_RPS=300 FLOOD_DELAY_MS=10 FLOOD_PORT=18090
#              FLOOD_SKIP_BUILD=1 (use the release binaries as built)
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$KW_ROOT"

SECS="${FLOOD_SECONDS:-15}"
RPS="${FLOOD_VALID_RPS:-300}"
DELAY="${FLOOD_DELAY_MS:-10}"
ADDR="127.0.0.1:${FLOOD_PORT:-18090}"
URL="http://$ADDR"
OUT="$KW_ROOT/artifacts/flood"
BIN="$CARGO_TARGET_DIR/release/keyward-server"
TOKENS="$CARGO_TARGET_DIR/release/examples/flood_tokens"
OHA_ROOT="${OHA_ROOT:-/var/tmp/oha}"
OHA="$OHA_ROOT/bin/oha"
mkdir -p "$OUT"

ensure_postgres
ensure_rust
ensure_apt_packages wrk curl jq
if [ ! -x "$OHA" ]; then
    log "installing oha into $OHA_ROOT (a few minutes on 2 cores)"
    cargo install oha --locked --root "$OHA_ROOT"
fi

if [ "${FLOOD_SKIP_BUILD:-0}" = 1 ] && [ -x "$BIN" ] && [ -x "$TOKENS" ]; then
    log "FLOOD_SKIP_BUILD=1: using the release binaries already built"
else
    log "building keyward-server and flood_tokens (release)"
    cargo build --release -p keyward-server --bin keyward-server --example flood_tokens
fi

recreate_db keyward_flood
export DATABASE_URL="$KEYWARD_PG_URL/keyward_flood"
export KEYWARD_BIND="$ADDR"
export RUST_LOG="${RUST_LOG:-warn}"
"$BIN" migrate
"$BIN" demo >/dev/null
KEY="$(first_live_key < <("$BIN" demo --json))"

curl -fs -o /dev/null "$URL/healthz" && die "something already serves $URL; set FLOOD_PORT"
SERVER_PID=""
FLOOD_PID=""
cleanup() {
    [ -n "$FLOOD_PID" ] && kill "$FLOOD_PID" 2>/dev/null || true
    if [ -n "$SERVER_PID" ]; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    pg_admin -c "DROP DATABASE IF EXISTS keyward_flood WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$BIN" serve >"$OUT/server.log" 2>&1 &
SERVER_PID=$!
wait_until 60 "keyward-server (see $OUT/server.log)" curl -fs -o /dev/null "$URL/readyz"
# The filter is loaded once the change feed is connected.
wait_until 30 "the filter of known ids" bash -c "curl -fsS '$URL/metrics' | grep -Eq '^keyward_known_key_ids [1-9]'"
curl -fsS -o /dev/null -H "Authorization: Bearer $KEY" "$URL/v1/whoami" || die "the demo key failed"

log "generating 50,000 random and 50,000 just-minted-looking tokens"
"$TOKENS" unknown 50000 >"$OUT/unknown.txt"

db_lookups() {
    curl -fsS "$URL/metrics" |
        awk '/^keyward_key_lookups_total\{result="database_(found|absent)"\}/ { n += $2 } END { print n + 0 }'
}
# valid NAME — the valid key at $RPS req/s for $SECS s; oha's JSON in $OUT/NAME.json.
valid() {
    log "valid key: oha -q $RPS -z ${SECS}s --latency-correction ($1)"
    "$OHA" -q "$RPS" -z "${SECS}s" --latency-correction --no-tui --output-format json \
        -H "Authorization: Bearer $KEY" "$URL/v1/whoami" >"$OUT/$1.json"
}
p99_ms() { jq -r '.latencyPercentiles.p99 * 1000' "$OUT/$1.json"; }
ok_share() { jq -r '(.statusCodeDistribution["200"] // 0) / ([.statusCodeDistribution[]] | add)' "$OUT/$1.json"; }
# flood KIND — a paced flood of KIND tokens while the valid key runs; lookups that reached
# PostgreSQL during it in $OUT/lookups-KIND.
flood() {
    local kind="$1" before
    before="$(db_lookups)"
    TOKENS_FILE="$OUT/$kind.txt" FLOOD_DELAY_MS="$DELAY" wrk -t1 -c32 -d"$((SECS + 2))s" \
        -s scripts/wrk/tokens.lua "$URL/v1/whoami" >"$OUT/flood-$kind.txt" 2>&1 &
    FLOOD_PID=$!
    sleep 1
    valid "valid-with-$kind"
    wait "$FLOOD_PID" || die "flood failed; see $OUT/flood-$kind.txt"
    FLOOD_PID=""
    echo $(($(db_lookups) - before)) >"$OUT/lookups-$kind"
}
requests() { awk '/requests in/ { print $1; exit }' "$OUT/flood-$1.txt"; }
share() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", 100 * a / b }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

valid valid-alone
flood unknown
# Just-minted-looking ids are made right before their flood (their timestamps must be recent).
"$TOKENS" recent 50000 >"$OUT/recent.txt"
flood recent
valid valid-alone-2

alone="$(awk -v a="$(p99_ms valid-alone)" -v b="$(p99_ms valid-alone-2)" 'BEGIN { print (a + b) / 2 }')"
unknown_n="$(requests unknown)"
recent_n="$(requests recent)"
unknown_distinct=$((unknown_n < 50000 ? unknown_n : 50000))
recent_distinct=$((recent_n < 50000 ? recent_n : 50000))
{
    echo "# Unknown-id floods against the filter of known ids"
    echo
    echo "$(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) cores; valid key at $RPS req/s (oha, latency-corrected) for ${SECS}s; floods wrk -t1 -c32 paced ${DELAY} ms per connection; release server, demo data."
    echo
    echo "| run | valid p99 (ms) | valid 200s | flood requests | reached PostgreSQL |"
    echo "|---|---|---|---|---|"
    echo "| valid key alone | $(p99_ms valid-alone) | $(ok_share valid-alone) | | |"
    echo "| beside 50,000 random ids | $(p99_ms valid-with-unknown) | $(ok_share valid-with-unknown) | $unknown_n | $(cat "$OUT/lookups-unknown") ($(share "$(cat "$OUT/lookups-unknown")" "$unknown_distinct") % of distinct ids) |"
    echo "| beside 50,000 forged just-minted ids | $(p99_ms valid-with-recent) | $(ok_share valid-with-recent) | $recent_n | $(cat "$OUT/lookups-recent") ($(share "$(cat "$OUT/lookups-recent")" "$recent_distinct") %; budget 50/s) |"
    echo "| valid key alone again | $(p99_ms valid-alone-2) | $(ok_share valid-alone-2) | | |"
    echo
    echo "- valid p99 beside the random-id flood / alone (mean of both): $(ratio "$(p99_ms valid-with-unknown)" "$alone") (target <= 1.5)"
    echo "- valid p99 beside the forged-id flood / alone: $(ratio "$(p99_ms valid-with-recent)" "$alone")"
    echo "- random ids reaching PostgreSQL: $(share "$(cat "$OUT/lookups-unknown")" "$unknown_distinct") % (target <= 1 %)"
} | tee "$OUT/summary.md"
