#!/usr/bin/env bash
# SQL checked at build time. The server's static queries are sqlx's query! macros. Builds read
# the types of those queries from .sqlx/ (SQLX_OFFLINE=true in .cargo/config.toml), so no build
# needs a database. This script runs the macros against a live database migrated from
# migrations/:
#
#   scripts/sqlx-prepare.sh          regenerate .sqlx/ (after changing a query or a migration)
#   scripts/sqlx-prepare.sh --check  fail when a query no longer checks against the migrated
#                                    schema (a migration broke it) or .sqlx/ is stale; CI runs this
#
# It compiles keyward-server in its own target directory ($CARGO_TARGET_DIR/sqlx-check),
# cleaning only that crate there, so the macros always run again.
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$KW_ROOT"

mode=update
[ "${1:-}" = --check ] && mode=check

ensure_postgres
ensure_rust
db=keyward_sqlx_check
recreate_db "$db"
trap 'pg_admin -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true' EXIT
for f in migrations/*.sql; do
    PGOPTIONS="-c client_min_messages=warning" psql -w -X -q -v ON_ERROR_STOP=1 \
        -d "$KEYWARD_PG_URL/$db" -f "$f" >/dev/null
done

out="$(mktemp -d)"
target="${CARGO_TARGET_DIR:-$KW_ROOT/target}/sqlx-check"
cargo clean -p keyward-server --target-dir "$target" >/dev/null 2>&1 || true
log "checking the server's queries against the migrated schema"
SQLX_OFFLINE=false DATABASE_URL="$KEYWARD_PG_URL/$db" SQLX_OFFLINE_DIR="$out" \
    cargo check -p keyward-server --lib --locked --target-dir "$target" --quiet
n="$(find "$out" -name 'query-*.json' | wc -l)"

if [ "$mode" = update ]; then
    mkdir -p .sqlx
    rm -f .sqlx/query-*.json
    cp "$out"/query-*.json .sqlx/
    log "wrote $n queries to .sqlx/"
elif diff -r -q .sqlx "$out" >/dev/null; then
    log "$n queries check against the migrated schema; .sqlx/ is current"
else
    diff -r -q .sqlx "$out" || true
    die ".sqlx/ is stale: run scripts/sqlx-prepare.sh and commit .sqlx/"
fi
rm -rf "$out"
