#!/usr/bin/env bash
# Builds the usage chart (chart/: egui_plot, its own workspace) for wasm32 and generates its JS
# glue into ui/src/chart/pkg (git-ignored) with wasm-bindgen-cli of exactly the version of the
# `wasm-bindgen` crate in chart/Cargo.lock.
#
# Usage: scripts/build-chart.sh [--force]
#   Skips everything after the tool checks when chart/ and the wasm-bindgen version are
#   unchanged since the last build and its output is still there; --force rebuilds anyway.
# Environment: CARGO_TARGET_DIR (default /var/tmp/keyward-target); the chart builds in its
#   `chart` subdirectory, apart from the main workspace's artifacts.
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$KW_ROOT"

force=0
case "${1:-}" in
"") ;;
--force) force=1 ;;
*) die "usage: scripts/build-chart.sh [--force]" ;;
esac

started=$SECONDS
ensure_rust
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    log "adding the wasm32-unknown-unknown target"
    rustup target add wasm32-unknown-unknown
fi

# The version of the `wasm-bindgen` crate (not -macro, -shared, ...) in the lock file.
version="$(awk '
    /^\[\[package\]\]/ { in_wb = 0 }
    /^name = "wasm-bindgen"$/ { in_wb = 1; next }
    in_wb && /^version = / { gsub(/^version = "|"$/, ""); print; exit }
' chart/Cargo.lock)"
[ -n "$version" ] || die "no wasm-bindgen version in chart/Cargo.lock"
installed="$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)"
if [ "$installed" != "$version" ]; then
    log "installing wasm-bindgen-cli $version (found: ${installed:-none})"
    # Without --locked: the published lock file of some versions misses a dependency. Its own
    # temporary target dir, so the install neither locks nor bloats the shared one.
    env -u CARGO_TARGET_DIR cargo install wasm-bindgen-cli --version "$version" </dev/null
    [ "$(wasm-bindgen --version | awk '{print $2}')" = "$version" ] ||
        die "wasm-bindgen on PATH ($(command -v wasm-bindgen)) is not $version"
fi

target="$CARGO_TARGET_DIR/chart"
out="ui/src/chart/pkg"
wasm="$target/wasm32-unknown-unknown/release/keyward_chart.wasm"
stamp_file="$out/.inputs"

# What the output depends on: the crate's sources and manifests, the toolchain and the CLI.
inputs() {
    {
        find chart -path chart/target -prune -o -type f -print | LC_ALL=C sort | xargs sha256sum
        rustc --version
        echo "wasm-bindgen $version"
    } | sha256sum | cut -d' ' -f1
}
stamp="$(inputs)"
if [ "$force" = 0 ] && [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp" ] &&
    [ -f "$out/keyward_chart.js" ] && [ -f "$out/keyward_chart_bg.wasm" ]; then
    log "chart unchanged, keeping $out ($(du -h "$out/keyward_chart_bg.wasm" | cut -f1) of wasm)"
    exit 0
fi

log "building the chart (wasm32, release) in $target"
# `cargo rustc --crate-type cdylib` rather than `cargo build`: cargo skips LTO for a crate that
# is also an rlib (kept for the host tests), and LTO takes the wasm from ~6 MB to under 4 MB.
(cd chart && CARGO_TARGET_DIR="$target" cargo rustc --lib --release --target wasm32-unknown-unknown \
    --locked --crate-type cdylib)

log "generating the JS glue (wasm-bindgen $version) into $out"
rm -rf "$out"
mkdir -p "$out"
# No name section: symbol names are ~10% of the module; panics still report file and line.
wasm-bindgen --target web --remove-name-section --remove-producers-section --out-dir "$out" "$wasm"
echo "$stamp" >"$stamp_file"

bytes="$(stat -c %s "$out/keyward_chart_bg.wasm")"
log "chart ready in $((SECONDS - started)) s: $out/keyward_chart_bg.wasm is $bytes bytes ($(du -h "$out/keyward_chart_bg.wasm" | cut -f1))"
