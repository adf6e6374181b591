#!/usr/bin/env bash
# The whole test suite, with all setup: the wasm32-wasip2 target, the test
# servers and clients (scripts/tools.sh), the servers themselves on
# 127.0.0.1 (scripts/servers.sh, stopped by pid on exit), then unit tests
# (the adapters' too, compiled natively),
# the conformance suite of every adapter through the real host, the
# cross-client checks, the security fixtures, the CLI tests and the doc
# examples. Guest components are built by build scripts. Ends with one line
# summing every test binary's result.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-wasip2 >/dev/null
./scripts/tools.sh
log=$(mktemp)
trap './scripts/servers.sh stop; rm -f "$log"' EXIT
# A server that fails to start fails the run (it is not skipped).
exports=$(./scripts/servers.sh start)
eval "$exports"
set +e
# The benchmarks (wharf-bench) are not tests: scripts/bench.sh runs them.
cargo test --workspace --exclude wharf-bench --no-fail-fast "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i == "passed;") p += $(i-1); if ($i == "failed;") f += $(i-1) } }
     END { printf "summary: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
