#!/usr/bin/env bash
# Chaos soak (issue 11; not part of CI): three release nodes on one PostgreSQL and one Redis under
# fixed-rate load for SOAK_SECONDS (default 600) while a schedule breaks things, then a report.
#
# Set-up (all on this machine, started and stopped by the script):
# - a scratch database `keyward_soak` (dropped at the end), reached by the nodes through a TCP
#   proxy on 127.0.0.1:15433 (scripts/soak/pgproxy.py) that the schedule cuts and restores: the
#   real PostgreSQL cluster is never stopped;
# - a dedicated redis-server on 127.0.0.1:16379 (no persistence), stopped and started by the
#   schedule (the system Redis on 6379 is left alone);
# - nodes on 127.0.0.1:18181-18183 (REDIS_URL set, the same KEYWARD_VERIFIER_KEY);
# - 1,000 keys made through the admin API (scripts/soak/seed.py), every one with rate limits and
#   a quota (8 % tight enough to refuse part of the load, 2 % with a daily quota of 150), plus
#   the quota probe keys;
# - load: oha (installed into /var/tmp/oha if missing), one process per node, fixed rate
#   (`-q`, with --latency-correction), POST /v1/verify whose body names a random one of the
#   1,000 keys per request (`-Z`, one body per line: oha cannot vary a header per request),
#   every request recorded (`--db-url`) for per-phase figures;
# - a desktop replica (replica/examples/soak_pusher.rs) pushing key operations to node 3
#   throughout through the real SyncEngine.
#
# Schedule (spread over SOAK_SECONDS; outages last SOAK_OUTAGE_SECONDS, default 20, 10 when
# SOAK_SECONDS < 300, each followed by a recovery window as long):
#   quota probe with Redis up (control) → kill -9 node 2, restart → revoke keys → cut PostgreSQL,
#   restore, revoke keys → stop Redis with the quota probe running, start it → revoke keys →
#   kill -9 node 3 while the replica's push request is in flight (retried until the kill lands
#   between two committed operations of one push), restart → quiet tail.
# The quota probe: for each probe key and node, an oha on GET /v1/whoami (-q SOAK_QUOTA_RATE),
# so each key is hit from all three nodes at once; grants (200) beyond the daily quota are the
# over-grant.
#
# At the end the pusher drains its outbox, the nodes get SIGTERM (they flush usage), and
# scripts/soak/report.py writes artifacts/soak/report.md: requests, status counts, p50/p99 per
# phase, revocation visibility per node, quota over-grant with and without Redis, usage expected
# vs stored, ops pushed vs applied (lost, doubled). Raw data stays in artifacts/soak/.
#
# Caution: it takes the machine's cores for the whole run, and after the PostgreSQL cut the
# nodes have been seen to open far more connections than their pools allow (PostgreSQL refusing
# "too many clients" for a while); run it where nothing else depends on this PostgreSQL.
#
# Usage: scripts/soak.sh
# Environment (all optional):
#   SOAK_SECONDS=600          load duration (at least 90)
#   SOAK_RATE=2100            total requests per second of the main load (split over 3 nodes)
#   SOAK_KEYS=1000            load keys
#   SOAK_OUTAGE_SECONDS       PostgreSQL cut and Redis stop length (default 20, or 10 below 300 s)
#   SOAK_REVOKE_PER_BATCH=5   keys revoked per batch (3 batches)
#   SOAK_QUOTA=100            daily quota of each probe key (below what one node alone sees)
#   SOAK_QUOTA_KEYS=3         probe keys per scenario (Redis up, Redis down)
#   SOAK_QUOTA_RATE=15        requests/s per probe key and node
#   SOAK_CONNECTIONS=400      connections per main-load oha
#   SOAK_DB_POOL=8            KEYWARD_DB_MAX_CONNECTIONS of each node (the server's default is 16)
#   SOAK_PUSH_KILL_TRIES=4    attempts at killing node 3 inside a push
#   SOAK_KEEP_DB=1            keep the keyward_soak database afterwards
#   SOAK_SKIP_BUILD=1         use the release binaries already in $CARGO_TARGET_DIR
#   KEYWARD_PG_URL            PostgreSQL server URL (default postgres://postgres@127.0.0.1:5432)
#   RUST_LOG                  node log filter (default warn,keyward_server::jobs::invalidate=info)
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$KW_ROOT"

T="${SOAK_SECONDS:-600}"
RATE="${SOAK_RATE:-2100}"
KEYS="${SOAK_KEYS:-1000}"
REVOKE_N="${SOAK_REVOKE_PER_BATCH:-5}"
QUOTA="${SOAK_QUOTA:-100}"
QUOTA_KEYS="${SOAK_QUOTA_KEYS:-3}"
QUOTA_RATE="${SOAK_QUOTA_RATE:-15}"
PUSH_KILL_TRIES="${SOAK_PUSH_KILL_TRIES:-4}"
if [ -n "${SOAK_OUTAGE_SECONDS:-}" ]; then
    O="$SOAK_OUTAGE_SECONDS"
elif [ "$T" -ge 300 ]; then
    O=20
else
    O=10
fi
R="$O"                    # recovery window after an outage (its own phase in the report)
P=$((O - 2))              # quota probe length
[ "$T" -ge 90 ] || die "SOAK_SECONDS must be at least 90"

DB=keyward_soak
OUT="$KW_ROOT/artifacts/soak"
BIN="$CARGO_TARGET_DIR/release/keyward-server"
PUSHER="$CARGO_TARGET_DIR/release/examples/soak_pusher"
OHA_ROOT=/var/tmp/oha
# Connections per main-load oha: enough that the client does not hold the rate back until
# answers take over CONNS / (SOAK_RATE / 3) seconds (then requests wait for a connection, which
# the latency correction counts).
CONNS="${SOAK_CONNECTIONS:-400}"
PG_PROXY_PORT=15433
REDIS_PORT=16379
PORTS=(18181 18182 18183)
NODES=("http://127.0.0.1:18181" "http://127.0.0.1:18182" "http://127.0.0.1:18183")
PASSWORD="keyward-soak-password-2026"
LOAD_EMAIL="load@soak.test"
DESK_EMAIL="desk@soak.test"
# Warnings, and when each node (re)gains its key-change listener (the report shows it).
export RUST_LOG="${RUST_LOG:-warn,keyward_server::jobs::invalidate=info}"
export KEYWARD_LOG_FORMAT=json # the report counts warnings and errors by message

now() { date +%s.%N | cut -c1-14; }
event() { printf '%s\t%s\t%s\n' "$(now)" "$1" "${2:-}" >>"$OUT/events.tsv"; log "[$(($(date +%s) - ${T0:-$(date +%s)}))s] $1 ${2:-}"; }

# --- tools and services ----------------------------------------------------------------------
log "checking services and tools"
ensure_postgres
ensure_rust
ensure_apt_packages curl python3
if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    ensure_apt_packages redis-server
fi
OHA="$(command -v oha || true)"
if [ -z "$OHA" ]; then
    OHA="$OHA_ROOT/bin/oha"
    if [ ! -x "$OHA" ]; then
        ensure_apt_packages build-essential
        log "installing oha into $OHA_ROOT (cargo install --locked)"
        # Its own temporary target dir, so the install neither locks nor bloats the shared one.
        env -u CARGO_TARGET_DIR cargo install oha --locked --root "$OHA_ROOT" </dev/null
    fi
fi
log "$("$OHA" --version)"
# The interpreter itself, not a wrapper (a pyenv shim may run it as a child, and the proxy's PID
# must be the one that gets the cut and restore signals).
PY="$(python3 -c 'import sys; print(sys.executable)')"

for port in "${PORTS[@]}" "$PG_PROXY_PORT" "$REDIS_PORT"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        die "something already listens on 127.0.0.1:$port (another soak?); stop it first"
    fi
done

if [ "${SOAK_SKIP_BUILD:-0}" = 1 ] && [ -x "$BIN" ] && [ -x "$PUSHER" ]; then
    log "SOAK_SKIP_BUILD=1: using the release binaries already built"
else
    log "building keyward-server and the soak_pusher example (release)"
    cargo build --release -p keyward-server --bin keyward-server
    cargo build --release -p keyward-replica --example soak_pusher
fi

rm -rf "$OUT"
mkdir -p "$OUT/pusher"
: >"$OUT/events.tsv"

# --- processes ---------------------------------------------------------------------------------
PROXY_PID=""
REDIS_PID=""
PUSHER_PID=""
NODE_PIDS=("" "" "")
BG_PIDS=()
cleanup() {
    local pid
    for pid in "${BG_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    if [ -n "$PUSHER_PID" ]; then kill "$PUSHER_PID" 2>/dev/null || true; fi
    for pid in "${NODE_PIDS[@]}"; do
        if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; fi
    done
    for pid in "${NODE_PIDS[@]}"; do
        if [ -n "$pid" ]; then wait "$pid" 2>/dev/null || true; fi
    done
    if [ -n "$REDIS_PID" ]; then kill -TERM "$REDIS_PID" 2>/dev/null || true; fi
    if [ -n "$PROXY_PID" ]; then kill -TERM "$PROXY_PID" 2>/dev/null || true; fi
    if [ "${SOAK_KEEP_DB:-0}" != 1 ]; then
        pg_admin -c "drop database if exists \"$DB\" with (force)" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_redis() {
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
        --daemonize no --logfile "$OUT/redis.log" >/dev/null 2>&1 &
    REDIS_PID=$!
    wait_until 20 "soak Redis on $REDIS_PORT" redis-cli -p "$REDIS_PORT" ping
}
stop_redis() {
    kill -TERM "$REDIS_PID" 2>/dev/null || true
    wait "$REDIS_PID" 2>/dev/null || true
    REDIS_PID=""
}

# start_node I — start node I (0-based) and wait until /readyz answers 200.
start_node() {
    local i="$1" k
    KEYWARD_BIND="127.0.0.1:${PORTS[$i]}" "$BIN" serve >>"$OUT/node$((i + 1)).log" 2>&1 &
    NODE_PIDS[i]=$!
    for ((k = 0; k < 240; k++)); do
        curl -fs -o /dev/null "${NODES[$i]}/readyz" && return 0
        kill -0 "${NODE_PIDS[$i]}" 2>/dev/null || die "node $((i + 1)) exited; see $OUT/node$((i + 1)).log"
        sleep 0.25
    done
    die "node $((i + 1)) not ready after 60 s"
}
kill9_node() {
    local i="$1"
    kill -KILL "${NODE_PIDS[$i]}"
    wait "${NODE_PIDS[$i]}" 2>/dev/null || true
    NODE_PIDS[i]=""
}

# --- database, Redis, proxy, nodes -----------------------------------------------------------
recreate_db "$DB"
DIRECT_URL="$KEYWARD_PG_URL/$DB"
PROXY_URL="${KEYWARD_PG_URL%@*}@127.0.0.1:$PG_PROXY_PORT/$DB"
psql_soak() { PGOPTIONS="-c client_min_messages=warning" psql -w -X -q -At -v ON_ERROR_STOP=1 -d "$DIRECT_URL" "$@"; }

DATABASE_URL="$DIRECT_URL" "$BIN" migrate
printf '%s\n' "$PASSWORD" | DATABASE_URL="$DIRECT_URL" "$BIN" admin create --org "Soak Load" --email "$LOAD_EMAIL" >/dev/null
printf '%s\n' "$PASSWORD" | DATABASE_URL="$DIRECT_URL" "$BIN" admin create --org "Soak Desktop" --email "$DESK_EMAIL" >/dev/null

"$PY" "$KW_ROOT/scripts/soak/pgproxy.py" "$PG_PROXY_PORT" "${KEYWARD_PG_URL##*@}" >"$OUT/pgproxy.log" 2>&1 &
PROXY_PID=$!
wait_until 20 "PostgreSQL proxy on $PG_PROXY_PORT" pg_isready -q -h 127.0.0.1 -p "$PG_PROXY_PORT"
start_redis

export DATABASE_URL="$PROXY_URL"
export REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
KEYWARD_VERIFIER_KEY="$(head -c 32 /dev/urandom | base64)"
export KEYWARD_VERIFIER_KEY
# A small pool per node: three nodes share PostgreSQL with whatever else runs on this machine.
export KEYWARD_DB_MAX_CONNECTIONS="${SOAK_DB_POOL:-8}"
for i in 0 1 2; do start_node "$i"; done
log "nodes ready: ${NODES[*]}"

log "seeding $KEYS load keys and $((2 * QUOTA_KEYS)) quota probe keys through the admin API"
"$PY" "$KW_ROOT/scripts/soak/seed.py" "${NODES[0]}" "$LOAD_EMAIL" "$PASSWORD" "$KEYS" "$QUOTA_KEYS" "$QUOTA" "$OUT"

{
    echo "seconds=$T"
    echo "rate=$RATE"
    echo "keys=$KEYS"
    echo "outage=$O"
    echo "recovery=$R"
    echo "quota=$QUOTA"
    echo "quota_rate=$QUOTA_RATE"
    echo "nodes=${NODES[*]}"
    echo "oha=$("$OHA" --version)"
    echo "commit=$(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo ' (dirty)')"
    echo "cores=$(nproc)"
    echo "db_pool=$KEYWARD_DB_MAX_CONNECTIONS"
    echo "server_built=$(date -u -r "$BIN" +%Y-%m-%dT%H:%M:%SZ)"
    echo "connections=$CONNS"
} >"$OUT/params.env"

# --- the desktop replica ------------------------------------------------------------------------
SOAK_PUSHER_PASSWORD="$PASSWORD" RUST_LOG=warn "$PUSHER" "${NODES[2]}" "$DESK_EMAIL" "$OUT/pusher" \
    >"$OUT/pusher/stdout.log" 2>"$OUT/pusher/stderr.log" &
PUSHER_PID=$!

# --- load ----------------------------------------------------------------------------------------
PER_NODE=$(((RATE + 2) / 3))

: >"$OUT/oha-start.tsv"
OHA_PIDS=()
T0="$(date +%s)"
event start "rate=$RATE per_node=$PER_NODE seconds=$T"
for i in 0 1 2; do
    printf '%s\t%s\t%s\n' "$((i + 1))" "$(now)" "$PER_NODE" >>"$OUT/oha-start.tsv"
    "$OHA" -q "$PER_NODE" -z "${T}s" -c "$CONNS" --latency-correction --no-tui --worker-threads 1 \
        --wait-ongoing-requests-after-deadline -t 30s \
        -m POST -T application/json -Z "$OUT/verify-bodies.txt" \
        --db-url "$OUT/oha-node$((i + 1)).db" --output-format json -o "$OUT/oha-node$((i + 1)).json" \
        "${NODES[$i]}/v1/verify" >"$OUT/oha-node$((i + 1)).log" 2>&1 &
    OHA_PIDS+=($!)
    BG_PIDS+=($!)
done

# sleep_until OFFSET — sleep until OFFSET seconds after the load started.
sleep_until() {
    local left
    left=$(awk -v t0="$T0" -v off="$1" -v now="$(now)" 'BEGIN { d = t0 + off - now; print (d > 0 ? d : 0) }')
    sleep "$left"
}

# quota_probe SCENARIO SECONDS — for each probe key of SCENARIO, one oha per node on whoami.
QUOTA_PIDS=()
quota_probe() {
    local scenario="$1" secs="$2" j=0 token i
    while read -r token; do
        for i in 0 1 2; do
            "$OHA" -q "$QUOTA_RATE" -z "${secs}s" -c 4 --no-tui --worker-threads 1 \
                --wait-ongoing-requests-after-deadline -t 10s \
                -H "Authorization: Bearer $token" --output-format json \
                -o "$OUT/quota-$scenario-k$j-n$((i + 1)).json" "${NODES[$i]}/v1/whoami" \
                >/dev/null 2>&1 &
            QUOTA_PIDS+=($!)
            BG_PIDS+=($!)
        done
        j=$((j + 1))
    done < <("$PY" -c 'import json,sys
for k in map(json.loads, open(sys.argv[1])):
    if k["group"] == sys.argv[2]: print(k["token"])' "$OUT/keys.jsonl" "$scenario")
}
quota_wait() {
    local pid
    for pid in "${QUOTA_PIDS[@]}"; do wait "$pid" || true; done
    QUOTA_PIDS=()
}

# revoke_batch N — revoke REVOKE_N keys at once and time their visibility on every node (in the
# background: a stuck admin API must not hold up the schedule).
REVOKE_PIDS=()
revoke_batch() {
    event revoke "batch=$1"
    "$PY" "$KW_ROOT/scripts/soak/revoke.py" "${NODES[0]}" "$OUT/session" "$OUT/keys.jsonl" "$1" "$REVOKE_N" \
        "$OUT/revocations.jsonl" "${NODES[@]}" >>"$OUT/revoke.log" 2>&1 &
    REVOKE_PIDS+=($!)
    BG_PIDS+=($!)
}

# metric NODE_INDEX NAME — one unlabelled metric of a node, now (empty when it does not answer).
metric() { curl -fs --max-time 1 "${NODES[$1]}/metrics" 2>/dev/null | awk -v n="$2" '$1 == n { print $2 }'; }

# before_kill I — what node I holds in memory that a kill -9 takes with it.
before_kill() {
    echo "flush_lag_s=$(metric "$1" keyward_usage_flush_lag_seconds) pending_rows=$(metric "$1" keyward_usage_pending_rows)"
}

# Samples every node's metrics every 2 s (limiter mode, Redis fallbacks, key lookups by result,
# usage flush lag and pending rows, verifications) for the report's per-phase view.
sample_metrics() {
    local i
    while true; do
        for i in 0 1 2; do
            curl -fs --max-time 1 "${NODES[$i]}/metrics" 2>/dev/null |
                awk -v ts="$(now)" -v node="$((i + 1))" '/^keyward_(limiter_mode|redis_fallbacks_total|redis_errors_total|key_lookups_total|usage_flush_lag_seconds|usage_pending_rows|usage_dropped_total|verifications_total|key_cache_(hits|misses)_total)/ { print ts "\t" node "\t" $1 "\t" $2 }' \
                    >>"$OUT/metrics.tsv" || true
        done
        printf '%s\t0\tloadavg1\t%s\n' "$(now)" "$(cut -d' ' -f1 /proc/loadavg)" >>"$OUT/metrics.tsv"
        sleep 2
    done
}

# fits SECONDS — whether an event of SECONDS still ends before the load does.
fits() {
    if [ "$(($(date +%s) + $1))" -le "$((T0 + T))" ]; then return 0; fi
    event skipped "$2 (no time left before the load ends)"
    return 1
}

restart_node() {
    local i="$1" started
    started="$(date +%s.%N)"
    start_node "$i"
    event node-ready "node=$((i + 1)) after_s=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')"
}

# kill_in_push — kill -9 node 3 while the replica's push request is in flight, restart it, and
# check the kill landed between two committed operations of that push (else try again).
kill_in_push() {
    local attempt line state round start ops median delay kill_at n before after last=0
    for ((attempt = 1; attempt <= PUSH_KILL_TRIES; attempt++)); do
        # Wait for a push that starts after the previous attempt.
        for ((n = 0; n < 2400; n++)); do
            line="$(cat "$OUT/pusher/status" 2>/dev/null || true)"
            read -r state round start ops median <<<"$line"
            if [ "$state" = pushing ] && [ "${start:-0}" -gt "$last" ] && [ "${ops:-0}" -ge 20 ]; then break; fi
            sleep 0.025
        done
        [ "$state" = pushing ] || { warn "no push in flight to kill"; return 0; }
        last="$start"
        # A third into the usual round (push first, then a small pull): inside the push request.
        delay=$((median > 0 ? median * 30 / 100 : 60))
        [ "$delay" -ge 20 ] || delay=20
        sleep "$(awk -v s="$start" -v d="$delay" -v now="$(date +%s%3N)" 'BEGIN { w = (s + d - now) / 1000; print (w > 0 ? w : 0) }')"
        held="$(before_kill 2)"
        kill_at="$(now)"
        kill9_node 2
        event push-kill "node=3 attempt=$attempt round=$round ops=$ops delay_ms=$delay $held"
        sleep 2
        restart_node 2
        # How many of that round's operations committed before the kill, and after.
        mapfile -t ids < <(awk -F'\t' -v r="$round" '$1 == r { print $2 }' "$OUT/pusher/pushed.tsv")
        sleep 3
        read -r before after < <(psql_soak -F ' ' -c "select count(*) filter (where extract(epoch from created_at) < $kill_at),
                count(*) filter (where extract(epoch from created_at) >= $kill_at)
            from sync_ops where op_id = any('{$(IFS=,; echo "${ids[*]}")}'::uuid[])")
        event push-kill-result "attempt=$attempt round=$round ops=${#ids[@]} committed_before_kill=$before committed_after=$after"
        if [ "$before" -gt 0 ] && [ "$before" -lt "${#ids[@]}" ]; then
            return 0
        fi
        fits 10 "another kill inside a push" || return 0
        sleep 2
    done
    warn "no kill landed inside a push after $PUSH_KILL_TRIES attempts"
}

sample_metrics &
SAMPLER_PID=$!
BG_PIDS+=($!)

# --- schedule ----------------------------------------------------------------------------------
# Fixed slots (s): warm-up 5, control probe P+1, node kill 10, revoke 3, PostgreSQL O+R,
# Redis O+R, revoke 3, kill in push 12; the rest of SOAK_SECONDS is spread between them.
FIXED=$((5 + P + 1 + 10 + 3 + 2 * (O + R) + 3 + 12))
GAP=$(((T - FIXED) / 8))
[ "$GAP" -ge 0 ] || GAP=0
at=5
sleep_until "$at"; event warmup-end
at=$((at + GAP))
sleep_until "$at"; event quota-probe-start "scenario=ctl (Redis up) seconds=$P"
quota_probe quota-ctl "$P"; sleep "$P"; quota_wait; event quota-probe-end "scenario=ctl"
at=$((at + P + 1 + GAP))
sleep_until "$at"; if fits 10 "kill -9 node 2"; then
    held="$(before_kill 1)"; kill9_node 1; event node-kill "node=2 $held"; sleep 2; restart_node 1
fi
at=$((at + 10 + GAP))
sleep_until "$at"; fits 3 "revocation batch 0" && revoke_batch 0
at=$((at + 3 + GAP))
sleep_until "$at"; if fits "$((O + 3))" "PostgreSQL cut"; then
    kill -USR1 "$PROXY_PID"; event pg-cut "seconds=$O"
    sleep "$O"; kill -USR2 "$PROXY_PID"; event pg-restore
    sleep 3; revoke_batch 1
fi
at=$((at + O + R + GAP))
sleep_until "$at"; if fits "$O" "Redis stop"; then
    stop_redis; event redis-stop "seconds=$O"
    sleep 1; event quota-probe-start "scenario=redis (Redis down) seconds=$((P - 1))"
    quota_probe quota-redis "$((P - 1))"; sleep "$((O - 1))"
    start_redis; event redis-start
    quota_wait; event quota-probe-end "scenario=redis"
fi
at=$((at + O + R + GAP))
sleep_until "$at"; fits 3 "revocation batch 2" && revoke_batch 2
at=$((at + 3 + GAP))
sleep_until "$at"; fits 8 "kill -9 node 3 inside a push" && kill_in_push

log "schedule done; waiting for the load to finish"
for pid in "${OHA_PIDS[@]}"; do wait "$pid" || warn "an oha run failed; see $OUT/oha-node*.log"; done
event end
for pid in "${REVOKE_PIDS[@]}"; do wait "$pid" || warn "a revocation batch failed; see $OUT/revoke.log"; done
kill "$SAMPLER_PID" 2>/dev/null || true
BG_PIDS=()

# --- wind down ---------------------------------------------------------------------------------
log "stopping the pusher (it drains its outbox first)"
touch "$OUT/pusher/stop"
wait "$PUSHER_PID" || warn "soak_pusher exited with an error; see $OUT/pusher/stderr.log"
PUSHER_PID=""
for i in 0 1 2; do curl -fsS "${NODES[$i]}/metrics" >"$OUT/metrics-node$((i + 1)).txt" 2>/dev/null || true; done
for i in 0 1 2; do curl -fsS "${NODES[$i]}/readyz" >"$OUT/readyz-node$((i + 1)).json" 2>/dev/null || true; done
log "SIGTERM to the nodes (each flushes its usage)"
for i in 0 1 2; do kill -TERM "${NODE_PIDS[$i]}"; done
for i in 0 1 2; do
    wait "${NODE_PIDS[$i]}" || warn "node $((i + 1)) exited non-zero"
    NODE_PIDS[i]=""
done

log "writing the report"
"$PY" "$KW_ROOT/scripts/soak/report.py" "$OUT" "$DIRECT_URL" >"$OUT/report.md"
cat "$OUT/report.md"
log "report written to artifacts/soak/report.md"
