#!/usr/bin/env bash
# Check that /openapi.json is exact: schemathesis (from PyPI) with all its checks, against a
# freshly built server on a fresh database with the demo data, authenticated.
#
# What runs:
# - schemathesis, installed into a venv outside the clone ($KEYWARD_SCHEMATHESIS_VENV, reused
#   when it already holds the pinned version);
# - the debug keyward-server on 127.0.0.1:$SCHEMATHESIS_PORT against a scratch database
#   `keyward_schemathesis` (recreated, dropped at the end), with the demo organisation, Redis,
#   and a tiny echo upstream for `/gw/*` (live and test upstreams both point at it);
# - `schemathesis run --checks all` over every operation but `POST /v1/auth/logout` and
#   `POST /v1/auth/logout-all` (they end the session the run is authenticated with), every
#   phase (examples, coverage, fuzzing, stateful); operations under the `session` scheme get
#   the demo admin's session token, `/gw/*` and `/v1/whoami` (scheme `api_key`) a live key
#   with scope `*:*` made for the run. The document's
#   response links (`POST /v1/keys` → `/v1/keys/{id}`...) drive the stateful phase.
#
# Usage: scripts/schemathesis.sh [SCHEMATHESIS-RUN-ARGS...]   e.g. --max-examples 20 --seed 1
# Environment (all optional):
#   SCHEMATHESIS_MAX_EXAMPLES=50   test cases per operation and phase (the time bound; ~1 min)
#   SCHEMATHESIS_MAX_TIME          overall time budget in seconds passed to --max-time (none)
#   SCHEMATHESIS_PORT=18097        where the server listens (the upstream uses PORT+1)
#   SCHEMATHESIS_SKIP_BUILD=1      use the debug binary already in $CARGO_TARGET_DIR
#   KEYWARD_SCHEMATHESIS_VENV      venv location (default /var/tmp/keyward-schemathesis-venv)
#   SCHEMATHESIS_KEEP_DB=1         keep the scratch database afterwards
# Reports (JUnit, NDJSON) and the server log go to artifacts/schemathesis/.
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$KW_ROOT"

ST_VERSION="4.32.5"
VENV="${KEYWARD_SCHEMATHESIS_VENV:-/var/tmp/keyward-schemathesis-venv}"
PORT="${SCHEMATHESIS_PORT:-18097}"
UPSTREAM_PORT=$((PORT + 1))
URL="http://127.0.0.1:$PORT"
DB=keyward_schemathesis
OUT="$KW_ROOT/artifacts/schemathesis"
BIN="$CARGO_TARGET_DIR/debug/keyward-server"
MAX_EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-50}"

# --- tools and services ----------------------------------------------------------------------
ensure_postgres
ensure_redis
ensure_rust
ensure_apt_packages python3 python3-venv curl

if [ "$("$VENV/bin/schemathesis" --version 2>/dev/null || true)" != "schemathesis, version $ST_VERSION" ]; then
    log "installing schemathesis $ST_VERSION into $VENV"
    [ -x "$VENV/bin/pip" ] || python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$ST_VERSION"
fi
log "$("$VENV/bin/schemathesis" --version)"

if [ "${SCHEMATHESIS_SKIP_BUILD:-0}" = 1 ] && [ -x "$BIN" ]; then
    log "SCHEMATHESIS_SKIP_BUILD=1: using $BIN"
else
    log "building keyward-server (debug)"
    cargo build -p keyward-server --bin keyward-server
fi

for port in "$PORT" "$UPSTREAM_PORT"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        die "something already listens on 127.0.0.1:$port; set SCHEMATHESIS_PORT"
    fi
done

rm -rf "$OUT"
mkdir -p "$OUT"
work="$(mktemp -d)"

SERVER_PID=""
UPSTREAM_PID=""
cleanup() {
    local pid
    for pid in "$SERVER_PID" "$UPSTREAM_PID"; do
        if [ -n "$pid" ]; then
            kill -TERM "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    if [ "${SCHEMATHESIS_KEEP_DB:-0}" != 1 ]; then
        pg_admin -c "drop database if exists $DB with (force)" >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the echo upstream for /gw/* -------------------------------------------------------------
# Every method answers 200 with a small JSON body naming the method and path.
cat >"$work/upstream.py" <<'EOF'
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self):
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        elif "chunked" in (self.headers.get("transfer-encoding") or "").lower():
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                self.rfile.read(size + 2)
                if size == 0:
                    break
        body = json.dumps({"method": self.command, "path": self.path}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = answer

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Echo).serve_forever()
EOF
python3 "$work/upstream.py" "$UPSTREAM_PORT" >"$OUT/upstream.log" 2>&1 &
UPSTREAM_PID=$!

# --- the server ------------------------------------------------------------------------------
recreate_db "$DB"
export DATABASE_URL="$KEYWARD_PG_URL/$DB"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
export KEYWARD_BIND="127.0.0.1:$PORT"
export KEYWARD_UPSTREAM="http://127.0.0.1:$UPSTREAM_PORT/"
export KEYWARD_UPSTREAM_TEST="http://127.0.0.1:$UPSTREAM_PORT/"
export RUST_LOG="${RUST_LOG:-warn}"
"$BIN" migrate
demo_json="$("$BIN" demo --json)"
email="$(json_field email <<<"$demo_json")"
password="$(json_field password <<<"$demo_json")"

"$BIN" serve >"$OUT/server.log" 2>&1 &
SERVER_PID=$!
wait_until 60 "keyward-server (see $OUT/server.log)" curl -fs -o /dev/null "$URL/readyz"
wait_until 10 "the echo upstream" curl -fs -o /dev/null "http://127.0.0.1:$UPSTREAM_PORT/"

login="$(curl -fsS "$URL/v1/auth/login" -H 'content-type: application/json' \
    -d "{\"email\":\"$email\",\"password\":\"$password\"}")" || die "the demo admin could not sign in"
export KEYWARD_ST_SESSION="$(json_field token <<<"$login")"
# The demo keys are scoped to their resources; `/gw/*` is called on any path, so a key of its own.
created="$(curl -fsS "$URL/v1/keys" -H "Authorization: Bearer $KEYWARD_ST_SESSION" \
    -H 'content-type: application/json' -d '{"name":"schemathesis","scopes":["*:*"]}')" ||
    die "the session could not create the gateway key"
export KEYWARD_ST_KEY="$(json_field token <<<"$created")"

# --- schemathesis ----------------------------------------------------------------------------
# The OpenAPI-aware auth puts each security scheme's credential where the document says.
cat >"$work/schemathesis.toml" <<'EOF'
[auth.openapi.session]
bearer = "${KEYWARD_ST_SESSION}"

[auth.openapi.api_key]
bearer = "${KEYWARD_ST_KEY}"

# Rules JSON Schema cannot state, so a schema-valid request may get 422 here (and only here):
# a period must run forwards and is capped per granularity (`from` < `to`, at most 7 days of
# minutes, 90 or 93 days, 3660 days of days), and `since` must be a cursor of an earlier pull.
[[operations]]
include-path = ["/v1/usage", "/v1/keys/{id}/usage", "/v1/gateway/usage", "/v1/keys/{id}/gateway",
    "/v1/ratelimits/violations", "/v1/reports/usage", "/v1/sync/pull"]
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422", "429", "5xx"]

# Keys and tiers: `expires_at` must lie in the future (relative to now), rate-limit rules need
# distinct names and a burst only with gcra, a quota needs `daily` or `monthly`, a tier must
# exist; webhooks: the URL's host must resolve to an allowed network.
[[operations]]
include-path = ["/v1/keys", "/v1/keys/{id}", "/v1/tiers", "/v1/tiers/{name}", "/v1/webhooks"]
include-method = ["POST", "PATCH"]
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422", "429", "5xx"]
EOF

args=(
    --checks all
    --exclude-path /v1/auth/logout
    --exclude-path /v1/auth/logout-all
    --max-examples "$MAX_EXAMPLES"
    --workers 2
    --request-timeout 20
    --generation-database none
    --report junit,ndjson
    --report-dir "$OUT"
    --no-color
)
[ -n "${SCHEMATHESIS_MAX_TIME:-}" ] && args+=(--max-time "$SCHEMATHESIS_MAX_TIME")

log "schemathesis run --checks all $URL/openapi.json"
status=0
"$VENV/bin/schemathesis" --config-file "$work/schemathesis.toml" run "${args[@]}" "$@" \
    "$URL/openapi.json" || status=$?
if [ "$status" -ne 0 ]; then
    log "schemathesis found failures (server log: $OUT/server.log)"
fi
exit "$status"
