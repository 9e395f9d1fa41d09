#!/usr/bin/env bash
# Floods of unknown key ids against the filter of known ids (issue 11), at fixed rates:
#
#   1. the valid demo key alone: oha at FLOOD_VALID_RPS (default 300) for FLOOD_SECONDS
#      (default 15) with latency correction — its p99 is the figure users feel;
#   2. the same beside a paced flood of 50,000 distinct random key ids (UUIDv4, well-formed
#      tokens; wrk -c32 with scripts/wrk/tokens.lua), once per pacing in FLOOD_DELAYS (ms
#      between requests per connection: 10 is about 3,200 req/s, 20 about 1,600, 40 about 800);
#   3. the same beside a flood of ids forged to look just minted (UUIDv7 of now), which the
#      filter cannot rule out and sends through its global lookup budget (50/s).
#
# The flood's generator runs at nice FLOOD_NICE (default 19): an attacker's CPU is on its own
# machines, and on one 2-core box the generator would otherwise take the cores the server and
# the valid key's generator need (FLOOD_NICE=0 measures that too).
#
# For each flood: requests sent, how many reached PostgreSQL (keyward_key_lookups_total with
# result database_found|database_absent), as a share of the distinct ids; the server's CPU per
# flood request; and the valid key's p99 beside it over alone. Raw outputs and the summary go
# to artifacts/flood/.
#
# Usage: scripts/flood-bench.sh
# Environment: FLOOD_SECONDS=15 FLOOD_VALID_RPS=300 FLOOD_DELAYS="10 20 40" FLOOD_NICE=19
#              FLOOD_PORT=18090 FLOOD_SKIP_BUILD=1 (use the release binaries as built)
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$KW_ROOT"

SECS="${FLOOD_SECONDS:-15}"
RPS="${FLOOD_VALID_RPS:-300}"
read -r -a DELAYS <<<"${FLOOD_DELAYS:-10 20 40}"
NICE="${FLOOD_NICE:-19}"
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
p99_ms() { jq -r '.latencyPercentiles.p99 * 1000 * 1000 | round / 1000' "$OUT/$1.json"; }
ok_share() { jq -r '(.statusCodeDistribution["200"] // 0) / ([.statusCodeDistribution[]] | add)' "$OUT/$1.json"; }
# The server's CPU time so far, in clock ticks (user + system).
server_ticks() { awk '{ print $14 + $15 }' "/proc/$SERVER_PID/stat"; }
# flood KIND DELAY NAME — a flood of KIND tokens paced DELAY ms per connection while the valid
# key runs ("valid-with-NAME"); in $OUT: lookups that reached PostgreSQL (lookups-NAME) and the
# server's CPU ticks (ticks-NAME) during it, wrk's output (flood-NAME.txt).
flood() {
    local kind="$1" delay="$2" name="$3" before ticks
    before="$(db_lookups)"
    ticks="$(server_ticks)"
    TOKENS_FILE="$OUT/$kind.txt" FLOOD_DELAY_MS="$delay" nice -n "$NICE" wrk -t1 -c32 -d"$((SECS + 2))s" \
        -s scripts/wrk/tokens.lua "$URL/v1/whoami" >"$OUT/flood-$name.txt" 2>&1 &
    FLOOD_PID=$!
    sleep 1
    valid "valid-with-$name"
    wait "$FLOOD_PID" || die "flood failed; see $OUT/flood-$name.txt"
    FLOOD_PID=""
    echo $(($(db_lookups) - before)) >"$OUT/lookups-$name"
    echo $(($(server_ticks) - ticks)) >"$OUT/ticks-$name"
}
requests() { awk '/requests in/ { print $1; exit }' "$OUT/flood-$1.txt"; }
rate() { awk '/^Requests\/sec/ { printf "%.0f", $2; exit }' "$OUT/flood-$1.txt"; }
share() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", 100 * a / b }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
# Server CPU per request during flood NAME, in µs (the valid key's requests included).
cpu_us() {
    awk -v t="$(cat "$OUT/ticks-$1")" -v hz="$(getconf CLK_TCK)" -v n="$(requests "$1")" -v v="$((RPS * SECS))" \
        'BEGIN { printf "%.0f", t / hz * 1e6 / (n + v) }'
}

valid valid-alone
for delay in "${DELAYS[@]}"; do
    flood unknown "$delay" "unknown-$delay"
done
# Just-minted-looking ids are made right before their flood (their timestamps must be recent).
"$TOKENS" recent 50000 >"$OUT/recent.txt"
flood recent "${DELAYS[0]}" recent
valid valid-alone-2

alone="$(awk -v a="$(p99_ms valid-alone)" -v b="$(p99_ms valid-alone-2)" 'BEGIN { print (a + b) / 2 }')"
distinct() { local n; n="$(requests "$1")"; echo $((n < 50000 ? n : 50000)); }
first="unknown-${DELAYS[0]}"
{
    echo "# Unknown-id floods against the filter of known ids"
    echo
    echo "$(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) cores; valid key at $RPS req/s (oha, latency-corrected) for ${SECS}s; floods wrk -t1 -c32 at nice $NICE, paced per connection; release server, demo data."
    echo
    echo "| run | flood req/s | valid p99 (ms) | p99 / alone | valid 200s | flood requests | reached PostgreSQL | server CPU per request |"
    echo "|---|---|---|---|---|---|---|---|"
    echo "| valid key alone | | $(p99_ms valid-alone) | | $(ok_share valid-alone) | | | |"
    for delay in "${DELAYS[@]}"; do
        n="unknown-$delay"
        echo "| beside 50,000 random ids, paced ${delay} ms | $(rate "$n") | $(p99_ms "valid-with-$n") | $(ratio "$(p99_ms "valid-with-$n")" "$alone") | $(ok_share "valid-with-$n") | $(requests "$n") | $(cat "$OUT/lookups-$n") ($(share "$(cat "$OUT/lookups-$n")" "$(distinct "$n")") % of distinct ids) | $(cpu_us "$n") µs |"
    done
    echo "| beside 50,000 forged just-minted ids | $(rate recent) | $(p99_ms valid-with-recent) | $(ratio "$(p99_ms valid-with-recent)" "$alone") | $(ok_share valid-with-recent) | $(requests recent) | $(cat "$OUT/lookups-recent") ($(share "$(cat "$OUT/lookups-recent")" "$(distinct recent)") %; budget 50/s) | $(cpu_us recent) µs |"
    echo "| valid key alone again | | $(p99_ms valid-alone-2) | | $(ok_share valid-alone-2) | | | |"
    echo
    echo "- valid p99 beside the fastest random-id flood / alone (mean of both): $(ratio "$(p99_ms "valid-with-$first")" "$alone") (target <= 1.5)"
    echo "- random ids reaching PostgreSQL: $(share "$(cat "$OUT/lookups-$first")" "$(distinct "$first")") % (target <= 1 %)"
} | tee "$OUT/summary.md"
