#!/usr/bin/env bash
# The whole test suite, with all setup: the wasm32-wasip2 target, then unit
# tests, the conformance suite through the real host, the security fixtures,
# the CLI tests and the doc examples. Guest components are built by build
# scripts. Ends with one line summing every test binary's result.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-wasip2 >/dev/null
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --exclude wharf-adapter-local-filesystem --exclude wharf-fixture-misbehave "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i == "passed;") p += $(i-1); if ($i == "failed;") f += $(i-1) } }
     END { printf "summary: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
