#!/usr/bin/env bash
# Helpers sourced by scripts/run.sh, scripts/test.sh, scripts/bench.sh (and .ci/run via test.sh).
# They install and start what Keyward needs on a Debian 12 machine: apt packages, PostgreSQL,
# Redis, the Rust components and cargo-nextest. Every helper is idempotent: it checks first and
# only acts on what is missing or down.
#
# Usage: . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"       (from a script)
#        scripts/lib.sh HELPER [ARGS...]                 (run one helper, e.g. ensure_postgres)
set -euo pipefail

# Builds go outside the clone, shared by every script (and CI).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/keyward-target}"
# PostgreSQL server URL without a database; `$KEYWARD_PG_URL/NAME` is a database's URL.
export KEYWARD_PG_URL="${KEYWARD_PG_URL:-postgres://postgres@127.0.0.1:5432}"

# The repository root (this file lives in ROOT/scripts).
KW_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export KW_ROOT

# sudo only when not root (and only if it exists; without it we just try).
KW_SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then
    KW_SUDO="sudo"
fi

log() { printf '==> %s\n' "$*" >&2; }
warn() { printf '==> WARNING: %s\n' "$*" >&2; }
die() {
    printf '==> ERROR: %s\n' "$*" >&2
    exit 1
}

# Run a privileged command (root already, or through sudo).
as_root() { ${KW_SUDO:+"$KW_SUDO"} "$@"; }

# ensure_apt_packages PKG... — install the packages that dpkg does not report as installed.
# `apt-get update` runs at most once per script run, and only when something is missing.
KW_APT_UPDATED=0
ensure_apt_packages() {
    local missing=() pkg
    for pkg in "$@"; do
        # (captured, not piped into grep -q: with pipefail an early grep exit could fail dpkg)
        if [[ "$(dpkg -s "$pkg" 2>/dev/null)" != *"Status: install ok installed"* ]]; then
            missing+=("$pkg")
        fi
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    if [ "$KW_APT_UPDATED" -eq 0 ]; then
        log "apt-get update"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        KW_APT_UPDATED=1
    fi
    log "installing ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq -o Dpkg::Use-Pty=0 --no-install-recommends "${missing[@]}" </dev/null
}

# wait_until SECONDS DESCRIPTION CMD... — poll CMD every 0.5 s until it succeeds or time runs out.
wait_until() {
    local secs="$1" what="$2" i
    shift 2
    for ((i = 0; i < secs * 2; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    die "$what not ready after ${secs}s"
}

# The newest PostgreSQL major version whose server is installed (e.g. 15), or nothing.
pg_version() {
    local bin versions=()
    for bin in /usr/lib/postgresql/*/bin/postgres; do
        if [ -x "$bin" ]; then versions+=("$(basename "${bin%/bin/postgres}")"); fi
    done
    [ "${#versions[@]}" -gt 0 ] || return 0
    printf '%s\n' "${versions[@]}" | sort -n | tail -n 1
}

pg_ready() { pg_isready -q -h 127.0.0.1 -p 5432; }
# -w: never prompt for a password (no terminal in CI); fails instead.
pg_trusts_postgres() { psql -w -h 127.0.0.1 -p 5432 -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1; }

# ensure_postgres — PostgreSQL installed, a cluster `main` running on 127.0.0.1:5432, and user
# postgres allowed in over TCP without a password.
ensure_postgres() {
    local ver hba
    if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! command -v psql >/dev/null 2>&1 ||
        [ -z "$(pg_version)" ]; then
        ensure_apt_packages postgresql
    fi
    ver="$(pg_version)"
    [ -n "$ver" ] || die "no PostgreSQL server under /usr/lib/postgresql"

    if [ ! -d "/etc/postgresql/$ver/main" ]; then
        log "creating PostgreSQL $ver cluster main"
        as_root pg_createcluster --port 5432 "$ver" main
    fi

    if ! pg_ready; then
        log "starting PostgreSQL $ver"
        # Fails harmlessly when the cluster is already starting; the wait below decides.
        as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
        wait_until 60 "PostgreSQL on 127.0.0.1:5432" pg_ready
    fi

    if ! pg_trusts_postgres; then
        hba="/etc/postgresql/$ver/main/pg_hba.conf"
        log "allowing postgres over TCP from localhost without a password ($hba)"
        if ! as_root grep -q '^host all all 127.0.0.1/32 trust$' "$hba"; then
            as_root sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
        fi
        as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main reload
        wait_until 30 "PostgreSQL trust login for postgres" pg_trusts_postgres
    fi
    log "PostgreSQL $ver ready on 127.0.0.1:5432"
}

redis_ready() { [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = "PONG" ]; }

# ensure_redis — Redis installed and answering on 127.0.0.1:6379 (nothing kept on disk).
ensure_redis() {
    if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
        ensure_apt_packages redis-server
    fi
    if ! redis_ready; then
        log "starting Redis"
        as_root mkdir -p /var/lib/redis /var/log/redis
        as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
            --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
        wait_until 30 "Redis on 127.0.0.1:6379" redis_ready
    fi
    log "Redis ready on 127.0.0.1:6379"
}

# ensure_rust — cargo on PATH, with rustfmt and clippy (added through rustup only if missing).
ensure_rust() {
    if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
        # shellcheck disable=SC1091
        . "$HOME/.cargo/env"
    fi
    command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust with rustup first"
    if ! (cd "$KW_ROOT" && cargo fmt --version && cargo clippy --version) >/dev/null 2>&1; then
        command -v rustup >/dev/null 2>&1 || die "rustfmt/clippy missing and no rustup to add them"
        log "adding rustfmt and clippy"
        (cd "$KW_ROOT" && rustup component add rustfmt clippy)
    fi
    log "$(cargo --version)"
}

# ensure_nextest — use cargo-nextest if present, else try to install it from crates.io; if that
# fails too, run_tests falls back to plain `cargo test`. Sets KW_TEST_RUNNER=nextest|cargo-test.
KW_TEST_RUNNER=""
ensure_nextest() {
    if ! cargo nextest --version >/dev/null 2>&1; then
        log "installing cargo-nextest"
        # Its own temporary target dir, so the install neither locks nor bloats the shared one.
        env -u CARGO_TARGET_DIR cargo install cargo-nextest --locked </dev/null ||
            warn "could not install cargo-nextest; falling back to cargo test"
    fi
    if cargo nextest --version >/dev/null 2>&1; then
        KW_TEST_RUNNER=nextest
    else
        KW_TEST_RUNNER=cargo-test
    fi
    log "test runner: $KW_TEST_RUNNER"
}

# run_tests ARGS... — run the workspace's tests (no doc tests) with nextest or cargo test.
# ARGS are passed to both (e.g. --workspace --locked --no-fail-fast). nextest runs the `ci`
# profile of .config/nextest.toml (NEXTEST_PROFILE picks another): a hung test is terminated and
# fails the run instead of eating CI's time limit.
run_tests() {
    [ -n "$KW_TEST_RUNNER" ] || ensure_nextest
    if [ "$KW_TEST_RUNNER" = nextest ]; then
        cargo nextest run --profile "${NEXTEST_PROFILE:-ci}" "$@"
    else
        # lib, bins and integration tests: what nextest runs (doc tests skipped).
        cargo test --lib --bins --tests "$@"
    fi
}

# psql against the maintenance database `postgres` of $KEYWARD_PG_URL.
pg_admin() { PGOPTIONS="-c client_min_messages=warning" psql -w -X -q -v ON_ERROR_STOP=1 -d "$KEYWARD_PG_URL/postgres" "$@"; }

check_db_name() {
    [[ "$1" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "bad database name: $1"
}

# ensure_db NAME — create database NAME (owner postgres) if it does not exist.
ensure_db() {
    check_db_name "$1"
    if [ "$(pg_admin -Atc "select 1 from pg_database where datname = '$1'")" != "1" ]; then
        log "creating database $1"
        pg_admin -c "create database \"$1\""
    fi
}

# recreate_db NAME — drop database NAME (closing its connections) and create it empty.
recreate_db() {
    check_db_name "$1"
    log "recreating database $1"
    pg_admin -c "drop database if exists \"$1\" with (force)"
    pg_admin -c "create database \"$1\""
}

# first_live_key < DEMO-JSON — the token of the first active live key in `keyward-server demo
# --json` output read from standard input.
first_live_key() {
    python3 -c '
import json, sys
keys = json.load(sys.stdin)["keys"]
live = [k["token"] for k in keys if k["status"] == "active" and k["environment"] == "live"]
if not live:
    sys.exit("no active live demo key")
print(live[0])'
}

# demo_key_named NAME < DEMO-JSON — the token of the demo key called NAME.
demo_key_named() {
    python3 -c '
import json, sys
keys = [k["token"] for k in json.load(sys.stdin)["keys"] if k["name"] == sys.argv[1]]
if not keys:
    sys.exit("no demo key named " + sys.argv[1])
print(keys[0])' "$1"
}

# json_field FIELD < JSON — one top-level string field of a JSON object read from standard input.
json_field() {
    python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}

# Executed rather than sourced: run the helper named by the arguments.
if [ "${BASH_SOURCE[0]}" = "$0" ] && [ "$#" -gt 0 ]; then
    "$@"
fi

# --- desktop ---------------------------------------------------------------------------------

# Debian packages the Tauri app builds against, and what its end-to-end test runs under: a
# virtual display, WebKitWebDriver, a session bus and a real Secret Service (gnome-keyring).
KW_DESKTOP_PACKAGES=(libwebkit2gtk-4.1-dev libgtk-3-dev librsvg2-dev libssl-dev pkg-config build-essential file
    xvfb webkit2gtk-driver gnome-keyring dbus dbus-x11 imagemagick curl dunst xdotool)
ensure_desktop_deps() {
    ensure_apt_packages "${KW_DESKTOP_PACKAGES[@]}" || return 1
    # Node.js: this kind of machine ships one; Debian's only when there is none.
    command -v npm >/dev/null 2>&1 || ensure_apt_packages nodejs npm
}

# build_ui — npm ci (when the lock changed), the egui_plot chart to wasm, type-check, unit
# tests, and the production build into ui/dist (which the desktop crate embeds at compile time).
# Set KW_UI_SKIP_TESTS=1 to skip the Vitest run (run.sh does).
build_ui() {
    # Each step checks its own status: this runs under `if` in test.sh, where `set -e` is off.
    ensure_desktop_deps || return 1
    local stamp="$KW_ROOT/ui/node_modules/.keyward-lock"
    if [ ! -f "$stamp" ] || ! cmp -s "$KW_ROOT/ui/package-lock.json" "$stamp"; then
        log "npm ci (ui)"
        (cd "$KW_ROOT/ui" && npm ci --no-audit --no-fund) || return 1
        cp "$KW_ROOT/ui/package-lock.json" "$stamp" || return 1
    fi
    "$KW_ROOT/scripts/build-chart.sh" || return 1
    (cd "$KW_ROOT/ui" && npm run typecheck) || return 1
    if [ "${KW_UI_SKIP_TESTS:-0}" != 1 ]; then
        mkdir -p "$KW_ROOT/artifacts"
        (cd "$KW_ROOT/ui" && npm test -- --reporter=default --reporter=json \
            --outputFile.json="$KW_ROOT/artifacts/ui-tests.json") || return 1
    fi
    (cd "$KW_ROOT/ui" && npm run build) || return 1
}

# ensure_tauri_driver — the WebDriver bridge for Tauri apps (crates.io), into ~/.cargo/bin.
ensure_tauri_driver() {
    if ! command -v tauri-driver >/dev/null 2>&1; then
        log "installing tauri-driver"
        env -u CARGO_TARGET_DIR cargo install tauri-driver --locked </dev/null
    fi
}
