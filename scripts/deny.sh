#!/usr/bin/env bash
# cargo-deny over the whole dependency graph (deny.toml): licenses, banned
# and duplicate versions, sources; then the RustSec advisories, which need
# the advisory database: where it cannot be fetched, that is said loudly
# and the check is reported as not run (WHARF_DENY_ADVISORIES=required
# makes it fail instead).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/tools.sh
deny=$PWD/.tools/venv/bin/cargo-deny
"$deny" --version
"$deny" check licenses bans sources
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if "$deny" check advisories >"$log" 2>&1; then
    tail -n 1 "$log"
elif grep -q "failed to fetch advisory database" "$log"; then
    echo "deny: ADVISORIES NOT CHECKED: the RustSec advisory database cannot be fetched from this machine" >&2
    grep -m1 "failed to fetch" "$log" >&2
    [ "${WHARF_DENY_ADVISORIES:-}" != required ] || exit 1
else
    cat "$log" >&2
    exit 1
fi
