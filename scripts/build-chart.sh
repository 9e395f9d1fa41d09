#!/usr/bin/env bash
# Builds the usage chart (chart/, egui_plot) for wasm32 and generates its JS glue into
# ui/src/chart/pkg with wasm-bindgen-cli of exactly the version in chart/Cargo.lock.
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$KW_ROOT"

ensure_rust
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    log "adding the wasm32-unknown-unknown target"
    rustup target add wasm32-unknown-unknown
fi
version="$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/[^0-9.]/, "", $0); print; exit}' chart/Cargo.lock)"
[ -n "$version" ] || die "no wasm-bindgen version in chart/Cargo.lock"
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$version" ]; then
    log "installing wasm-bindgen-cli $version"
    # Without --locked: the published lock file of some versions misses a dependency.
    env -u CARGO_TARGET_DIR cargo install wasm-bindgen-cli --version "$version" </dev/null
fi

target="$CARGO_TARGET_DIR/chart"
log "building the chart (wasm32, release)"
(cd chart && CARGO_TARGET_DIR="$target" cargo build --release --target wasm32-unknown-unknown --locked)
wasm="$target/wasm32-unknown-unknown/release/keyward_chart.wasm"
out="ui/src/chart/pkg"
mkdir -p "$out"
wasm-bindgen --target web --out-dir "$out" "$wasm"
log "chart ready: $(du -h "$out/keyward_chart_bg.wasm" | cut -f1) of wasm in $out"
