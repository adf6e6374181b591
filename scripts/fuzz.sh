#!/usr/bin/env bash
# Coverage-guided fuzzing of every parser of untrusted bytes (cargo-fuzz,
# libFuzzer, on the nightly toolchain). The targets are fuzz/src/lib.rs; the
# test suite replays their corpora on stable (fuzz/tests/smoke.rs).
#
#   ./scripts/fuzz.sh list
#   ./scripts/fuzz.sh run <target|all> [seconds per target, default 600]
#
# New corpus entries go to fuzz/corpus/<target>/ (commit them: the smoke test
# replays them); crashes to fuzz/libfuzzer/artifacts/<target>/, each a
# finding to fix with a regression test. No sanitizer (the targets are safe
# Rust; ASan-instrumenting wasmtime costs more than it finds here), debug
# assertions on, so overflows are findings too.
set -euo pipefail
cd "$(dirname "$0")/.."
targets=(config manifest format_detection checksum_layer compression_layer encryption_layer xml resp postgres_wire http_response cache_entry)
if [ "${1:-}" = list ]; then printf '%s\n' "${targets[@]}"; exit 0; fi
[ "${1:-}" = run ] || { sed -n '2,13p' "$0"; exit 2; }
want=${2:-all}
secs=${3:-600}
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# The targets need no built-in adapter, and nightly may lack wasm32-wasip2.
export WHARF_BUILTINS=none
flags=(--fuzz-dir fuzz/libfuzzer -O --debug-assertions -s none)
cargo +nightly fuzz build "${flags[@]}"
failed=()
for t in "${targets[@]}"; do
    [ "$want" = all ] || [ "$want" = "$t" ] || continue
    mkdir -p "fuzz/corpus/$t"
    echo "== $t: $secs s"
    set +e
    cargo +nightly fuzz run "${flags[@]}" "$t" "fuzz/corpus/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 2>&1 |
        grep -E '^(stat::|#[0-9]+ +DONE|==|SUMMARY|thread|Test unit written)'
    status=${PIPESTATUS[0]}
    set -e
    [ "$status" = 0 ] || failed+=("$t")
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "findings in: ${failed[*]} (see fuzz/libfuzzer/artifacts/)"
    exit 1
fi
