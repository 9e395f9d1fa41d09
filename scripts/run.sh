#!/usr/bin/env bash
# Run Keyward with demo data: make sure PostgreSQL, Redis and Rust are there, build the release
# server, create the `keyward` database, migrate, seed the demo organisation, print the login,
# the demo keys and a curl example, then serve until Ctrl-C.
#
# Usage: scripts/run.sh [GLOBAL-OPTIONS...]     e.g. scripts/run.sh --config keyward.toml
#   Extra arguments go to every keyward-server call as global options (before the subcommand).
# Environment (all optional):
#   KEYWARD_BIND   listen address            (default 127.0.0.1:8080)
#   KEYWARD_URL    URL printed for the server (default http://$KEYWARD_BIND)
#   DATABASE_URL   database                  (default $KEYWARD_PG_URL/keyward)
#   KEYWARD_PG_URL PostgreSQL server URL     (default postgres://postgres@127.0.0.1:5432)
#   REDIS_URL      Redis for shared limits   (default redis://127.0.0.1:6379)
#   RUST_LOG       log filter
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$KW_ROOT"

export KEYWARD_BIND="${KEYWARD_BIND:-127.0.0.1:8080}"
KEYWARD_URL="${KEYWARD_URL:-http://$KEYWARD_BIND}"
export DATABASE_URL="${DATABASE_URL:-$KEYWARD_PG_URL/keyward}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
BIN="$CARGO_TARGET_DIR/release/keyward-server"

# The desktop app, when there is a screen: built (UI, wasm chart, Tauri binary) and started in
# the background once the server answers. Without a display, say how to get one.
start_desktop_if_possible() {
    if [ -z "${DISPLAY:-}" ]; then
        log "no DISPLAY: the desktop app is not started. For a virtual screen run:"
        log "  Xvfb :99 -screen 0 1280x860x24 & DISPLAY=:99 scripts/run.sh"
        return 0
    fi
    log "building the desktop app"
    KW_UI_SKIP_TESTS=1 build_ui || { warn "UI build failed; the desktop app is not started"; return 0; }
    cargo build -p keyward-desktop || { warn "desktop build failed; the desktop app is not started"; return 0; }
    local bin="$CARGO_TARGET_DIR/debug/keyward-desktop"
    log "starting the desktop app (sign in with the demo login above)"
    (
        for _ in $(seq 60); do curl -fs "$KEYWARD_URL/readyz" >/dev/null 2>&1 && break; sleep 0.5; done
        exec "$bin" >/dev/null 2>&1
    ) &
}

log "checking services and toolchain"
ensure_postgres
ensure_redis
ensure_rust

log "building keyward-server (release)"
cargo build --release -p keyward-server

# Create the database when it lives on the local server (the default: `keyward`).
db="${DATABASE_URL#"$KEYWARD_PG_URL"/}"
db="${db%%\?*}"
if [ "$db" != "$DATABASE_URL" ]; then ensure_db "$db"; fi
log "applying migrations"
"$BIN" "$@" migrate
log "seeding demo data"
"$BIN" "$@" demo
demo_json="$("$BIN" "$@" demo --json)" # same data again (idempotent), machine-readable
key="$(first_live_key <<<"$demo_json")"
email="$(json_field email <<<"$demo_json")"
password="$(json_field password <<<"$demo_json")"

cat <<EOF

==> Keyward is starting on $KEYWARD_URL (Ctrl-C to stop)
    Try the demo key:
      curl -H "Authorization: Bearer $key" $KEYWARD_URL/v1/whoami
    Sign in as the demo admin:
      curl -X POST $KEYWARD_URL/v1/auth/login -H 'content-type: application/json' \\
           -d '{"email":"$email","password":"$password"}'

EOF

start_desktop_if_possible
exec "$BIN" "$@" serve
