#!/usr/bin/env bash
# The desktop end-to-end test: the real keyward-desktop binary in a real window on a virtual
# display (Xvfb), driven by WebDriver (tauri-driver + WebKitWebDriver), with its session token in
# a real Secret Service (gnome-keyring on a private session bus), against a real server and
# PostgreSQL. Screenshots land in artifacts/desktop/.
#
# Usage: scripts/desktop-e2e.sh     (assumes ui/dist is built: scripts/test.sh does it first)
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$KW_ROOT"

ensure_desktop_deps
ensure_tauri_driver
[ -f ui/dist/index.html ] || build_ui
log "building keyward-desktop"
cargo build -p keyward-desktop

display=":$((90 + RANDOM % 9))"
log "starting Xvfb on $display"
Xvfb "$display" -screen 0 1280x860x24 -nolisten tcp >/dev/null 2>&1 &
xvfb_pid=$!
trap 'kill "$xvfb_pid" 2>/dev/null || true' EXIT
export DISPLAY="$display"
wait_until 10 "Xvfb on $display" test -S "/tmp/.X11-unix/X${display#:}"

port=$((4444 + RANDOM % 500))
export KEYWARD_WEBDRIVER_URL="http://127.0.0.1:$port"
export KEYWARD_DESKTOP_DATA_DIR
KEYWARD_DESKTOP_DATA_DIR="$(mktemp -d)"
export KEYWARD_ARTIFACTS="$KW_ROOT/artifacts"
rm -rf "$KEYWARD_ARTIFACTS/desktop"
mkdir -p "$KEYWARD_ARTIFACTS"

# Everything below runs on a private session bus with an unlocked gnome-keyring.
dbus-run-session -- bash -euo pipefail -c '
    echo -n keyward-e2e | gnome-keyring-daemon --unlock --components=secrets >/dev/null
    tauri-driver --port '"$port"' >"$KEYWARD_ARTIFACTS/tauri-driver.log" 2>&1 &
    driver=$!
    trap "kill $driver 2>/dev/null || true" EXIT
    for _ in $(seq 50); do curl -fs "$KEYWARD_WEBDRIVER_URL/status" >/dev/null 2>&1 && break; sleep 0.2; done
    cargo nextest run -p keyward-desktop -p keyward-e2e --run-ignored only \
        -E "test(keychain_round_trip) | binary(desktop)" --no-fail-fast --no-capture
'
log "screenshots: artifacts/desktop/"
