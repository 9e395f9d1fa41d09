#!/usr/bin/env bash
# The database outage figure: runs the end-to-end outage test with PostgreSQL cut for
# OUTAGE_SECS (default 20) behind a TCP proxy, and prints what it measured: warm calls answered
# during the cut (fail static), how soon an admin read got 503 database_unavailable, how soon a
# revocation made elsewhere during the cut applied after reconnection, and whether every call
# was counted exactly once.
#
# Usage: scripts/outage.sh        (OUTAGE_SECS=20)
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$KW_ROOT"
ensure_postgres
ensure_nextest
export KEYWARD_OUTAGE_SECS="${OUTAGE_SECS:-20}"
log "cutting PostgreSQL for ${KEYWARD_OUTAGE_SECS} s under the outage test"
cargo nextest run -p keyward-e2e --test e2e --no-capture \
    -E 'test(resilience::a_database_outage_fails_static_for_warm_keys_and_503_for_the_rest)' 2>&1 |
    grep -E '^outage |PASS|FAIL|panicked' || die "the outage test failed"
