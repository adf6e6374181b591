#!/usr/bin/env bash
# The whole test suite, with all setup: the wasm32-wasip2 target, then unit
# tests, the conformance suite through the real host, the security fixtures
# and the CLI tests. Guest components are built by build scripts.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-wasip2 >/dev/null
# Two cores: one test binary at a time keeps the 1 GiB cases from fighting.
cargo test --workspace --exclude wharf-adapter-local-filesystem --exclude wharf-fixture-misbehave "$@"
