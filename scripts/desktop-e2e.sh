#!/usr/bin/env bash
# The desktop end-to-end test: the real keyward-desktop binary in a real window on a virtual
# display (Xvfb), driven by WebDriver (tauri-driver + WebKitWebDriver), with its session token in
# a real Secret Service (gnome-keyring on a private session bus) and a real notification daemon
# (dunst on the same bus, recording what it shows to artifacts/notifications.log), against a real
# server and PostgreSQL. Screenshots land in artifacts/desktop/.
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

# dunst runs its `record` rule's script for every notification it shows: one line each
# (application, summary, body) in the log the test reads.
export KEYWARD_NOTIFICATIONS_LOG="$KEYWARD_ARTIFACTS/notifications.log"
: >"$KEYWARD_NOTIFICATIONS_LOG"
notify_dir="$(mktemp -d)"
cat >"$notify_dir/record.sh" <<'SH'
#!/bin/sh
printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$KEYWARD_NOTIFICATIONS_LOG"
SH
chmod +x "$notify_dir/record.sh"
cat >"$notify_dir/dunstrc" <<CONF
[global]
    # Under Xvfb nobody touches the keyboard: never hold notifications back as "idle".
    idle_threshold = 0
[record]
    summary = "*"
    script = $notify_dir/record.sh
CONF
export KW_DUNSTRC="$notify_dir/dunstrc"

# Everything below runs on a private session bus with an unlocked gnome-keyring.
dbus-run-session -- bash -euo pipefail -c '
    echo -n keyward-e2e | gnome-keyring-daemon --unlock --components=secrets >/dev/null
    dunst -config "$KW_DUNSTRC" >"$KEYWARD_ARTIFACTS/dunst.log" 2>&1 &
    dunst=$!
    for _ in $(seq 50); do
        dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
            org.freedesktop.DBus.NameHasOwner string:org.freedesktop.Notifications 2>/dev/null |
            grep -q "boolean true" && break
        sleep 0.1
    done
    tauri-driver --port '"$port"' >"$KEYWARD_ARTIFACTS/tauri-driver.log" 2>&1 &
    driver=$!
    trap "kill $driver $dunst 2>/dev/null || true" EXIT
    for _ in $(seq 50); do curl -fs "$KEYWARD_WEBDRIVER_URL/status" >/dev/null 2>&1 && break; sleep 0.2; done
    cargo nextest run --profile "${NEXTEST_PROFILE:-ci}" -p keyward-desktop -p keyward-e2e --run-ignored only \
        -E "test(keychain_round_trip) | (binary(e2e) & test(/^desktop::/))" --no-fail-fast --no-capture
'
log "screenshots: artifacts/desktop/"
