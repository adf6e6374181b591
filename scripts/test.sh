#!/usr/bin/env bash
# The whole test suite, with all setup: the wasm32-wasip2 target, the test
# servers and clients (scripts/tools.sh), the servers themselves on
# 127.0.0.1 (scripts/servers.sh, stopped by pid on exit), then unit tests
# (the adapters' too, compiled natively), the conformance suite of every
# adapter through the real host, the cross-client checks, the security
# fixtures, the CLI tests, the fuzz smoke runs and the doc examples. Guest
# components are built by build scripts. Ends with one line summing every
# test binary's result.
#
#   ./scripts/test.sh              everything; test binaries run
#                                  WHARF_TEST_JOBS at a time (default 4)
#   ./scripts/test.sh ARGS...      `cargo test ARGS...` with the servers up,
#                                  e.g. `--test redis` or `-p wharf -- cache`
#   ./scripts/test.sh --python [PYTEST ARGS]
#                                  the Python package only (build, install,
#                                  pytest; scripts/python-tests.sh)
#
# Most binaries spend their time waiting on a server, each on its own, so
# several at once finish in about the time of the slowest; each binary keeps
# its own process (a test binary may share a server queue between its tests).
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-wasip2 >/dev/null
./scripts/tools.sh
logs=$(mktemp -d)
trap './scripts/servers.sh stop; rm -rf "$logs"' EXIT
# A server that fails to start fails the run (it is not skipped). The
# Python suite alone needs s3s-fs and redis only.
servers=()
[ "${1:-}" = --python ] && servers=(s3s redis)
exports=$(./scripts/servers.sh start "${servers[@]}")
eval "$exports"

# Sums cargo's `test result:` lines and pytest's last line (`3 passed, 1
# failed in 2.0s`; its errors count as failures).
summary() {
    awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i == "passed;") p += $(i-1); if ($i == "failed;") f += $(i-1) } }
         /^(=+ )?([0-9]+ [a-z]+,? )+in [0-9.]+s/ {
             for (i = 2; i <= NF; i++) {
                 if ($i ~ /^passed,?$/) p += $(i-1)
                 if ($i ~ /^(failed|errors?),?$/) f += $(i-1)
             }
         }
         END { printf "summary: %d passed, %d failed\n", p, f }' "$@"
}

# The benchmarks (wharf-bench) are not tests: scripts/bench.sh runs them.
# The Python extension (wharf-python) is built by maturin and tested from
# Python (scripts/python-tests.sh, one more job below).
selection=(--workspace --exclude wharf-bench --exclude wharf-python)
targets=()

# WHARF_LINT=1 (what .ci/run sets): clippy lints the workspace's crates in
# this same build, as the workspace's rustc (how `cargo clippy` runs it, with
# -D warnings), so CI compiles the tree once instead of checking it and then
# building it. Every target is built, the benchmarks' too, to be linted (in
# the same cargo invocation: a separate one would resolve other features
# and rebuild wasmtime); the benchmarks are not run.
if [ "${WHARF_LINT:-}" = 1 ]; then
    RUSTC_WORKSPACE_WRAPPER=$(rustup which clippy-driver)
    CLIPPY_ARGS=-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__
    export RUSTC_WORKSPACE_WRAPPER CLIPPY_ARGS
    selection=(--workspace --exclude wharf-python)
    targets=(--all-targets)
fi

if [ "${1:-}" = --python ]; then
    shift
    set +e
    ./scripts/python-tests.sh "$@" 2>&1 | tee "$logs/python.log"
    status=${PIPESTATUS[0]}
    set -e
    summary "$logs/python.log"
    exit "$status"
fi

if [ $# -gt 0 ]; then
    set +e
    cargo test "${selection[@]}" --no-fail-fast "$@" 2>&1 | tee "$logs/all.log"
    status=${PIPESTATUS[0]}
    set -e
    summary "$logs/all.log"
    exit "$status"
fi

# Build every test binary once, then list them: "<cwd> <name> <executable>".
cargo test "${selection[@]}" "${targets[@]}" --no-run --message-format=json-render-diagnostics >"$logs/build.json"
python3 - "$logs/build.json" >"$logs/binaries" <<'PY'
import json, os, sys
for line in open(sys.argv[1]):
    msg = json.loads(line)
    if msg.get("reason") == "compiler-artifact" and msg.get("executable") and msg["profile"]["test"]:
        t, dir = msg["target"], os.path.dirname(msg["manifest_path"])
        if t["kind"] == ["bench"]:
            continue  # built to be linted; scripts/bench.sh runs them
        # <crate folder>:<test name>, or <crate folder>:<kind>:<target> for
        # the unit tests of a lib, bin or example (a lib and a bin may share
        # a name); every log file needs its own name.
        kind = "" if t["kind"] == ["test"] else t["kind"][0] + ":"
        name = f"{os.path.basename(dir)}:{kind}{t['name']}"
        print(dir, name, msg["executable"])
PY

# Longest first (from the last measured run), so the slow ones overlap.
slow=(mlflow aws_s3 example_sqlite example_python database full_stack example_js redis azure_blob huggingface_hub conformance cli transform_layers object_store gcp_storage formats crash load layers faults)
rank() {
    local name=${1##*:} i
    for i in "${!slow[@]}"; do [ "${slow[$i]}" = "$name" ] && { echo "$i"; return; }; done
    echo 99
}
while read -r dir name exe; do
    echo "$(rank "$name") $dir $name $exe"
done <"$logs/binaries" | sort -n -k1,1 | cut -d' ' -f2- >"$logs/queue"
# The doc examples are one more job (rustdoc compiles and runs them); the
# Python package's tests are another, started first. Its extension is built
# here, before any test runs: a compile beside the tests starved the servers
# (an MLflow upload timed out in CI while maturin built for 21 minutes).
set +e
./scripts/python-tests.sh --build >"$logs/python-build.log" 2>&1
python_built=$?
set -e
cat "$logs/python-build.log"
export python_built
{ echo "python"; cat "$logs/queue"; } >"$logs/queue.new" && mv "$logs/queue.new" "$logs/queue"
echo "doc" >>"$logs/queue"

run_one() {
    local dir=$1 name=$2 exe=${3:-} start status
    start=$(date +%s)
    set +e
    if [ "$dir" = doc ]; then
        name=doc-tests
        cargo test "${selection[@]}" --doc >"$logs/$name.log" 2>&1
    elif [ "$dir" = python ]; then
        name=python
        if [ "$python_built" = 0 ]; then
            ./scripts/python-tests.sh --built >"$logs/$name.log" 2>&1
        else
            echo "python: the build failed (above)" >"$logs/$name.log"
            false
        fi
    else
        (cd "$dir" && "$exe") >"$logs/$name.log" 2>&1
    fi
    status=$?
    set -e
    [ "$status" = 0 ] || echo "$name" >>"$logs/failed"
    # One binary's output at a time, whole.
    {
        flock 9
        echo "==== $name: exit $status, $(($(date +%s) - start)) s"
        cat "$logs/$name.log"
    } 9>"$logs/.print"
}
export -f run_one
export logs
export selection_str="${selection[*]}"

jobs=${WHARF_TEST_JOBS:-4}
set +e
xargs -P "$jobs" -L 1 bash -c 'selection=($selection_str); run_one "$@"' _ <"$logs/queue"
set -e
summary "$logs"/*.log
if [ -s "$logs/failed" ]; then
    echo "failed binaries: $(tr '\n' ' ' <"$logs/failed")"
    exit 1
fi
