#!/usr/bin/env bash
# The Python package's tests: builds python/ with maturin into a wheel (the
# dev profile, reusing the test build's dependencies in target/), installs
# it into target/python (not into the shared tools venv: other clones use
# that one), then runs pytest on python/tests with the tools venv's
# interpreter. Needs the servers up: scripts/test.sh runs this with them
# (`./scripts/test.sh --python [PYTEST ARGS]` runs only this).
#
#   ./scripts/python-tests.sh [PYTEST ARGS]   build, install, test
#   ./scripts/python-tests.sh --build         build and install only
#   ./scripts/python-tests.sh --built [ARGS]  test what --build installed
#
# scripts/test.sh builds first, alone, then runs pytest beside the other
# test binaries: a compile next to the servers under test starved them.
# The build turns on the crate's `unify` feature (python/Cargo.toml): the
# shared dependencies get the features of the workspace's test build, so
# maturin reuses its compiled crates instead of building wasmtime again.
# With WHARF_LINT=1 (exported by test.sh in CI) the build is linted too:
# RUSTC_WORKSPACE_WRAPPER reaches maturin's cargo.
set -euo pipefail
cd "$(dirname "$0")/.."
py=$PWD/.tools/venv/bin/python
mode=all
case "${1:-}" in
--build) mode=build; shift ;;
--built) mode=test; shift ;;
esac

# Warns (does not fail) when the feature sets drift apart: the cost is a
# rebuild, not a wrong result. Compared with the CI's test build (test.sh's
# WHARF_LINT selection).
unify_check() {
    local tree=(-e normal,build -f '{p} [{f}]' --prefix none)
    "$py" - <(cargo tree --workspace --exclude wharf-python -e dev "${tree[@]}") \
        <(cargo tree -p wharf-python --features pyo3/extension-module,unify "${tree[@]}") <<'PY'
import re, sys
def load(path):
    sets = {}
    for line in open(path):
        m = re.match(r"(\S+) (v\S+)(?: \(.*?\))? \[(.*)\]", line.strip())
        if m:
            sets.setdefault((m[1], m[2]), set()).update(f for f in m[3].split(",") if f)
    return sets
ws, py = load(sys.argv[1]), load(sys.argv[2])
# wharf's own `object-store` feature (on in the test build) would bring
# object_store with the benchmarks' cloud features here: maturin rebuilds
# the wharf crate alone instead, a known minute.
for k in ws:
    if k[0] == "wharf":
        ws[k].discard("object-store")
drift = [f"{n} {v}: {sorted(py[k] ^ ws[k])}" for k in sorted(py) if k in ws and py[k] != ws[k] for n, v in [k]]
if drift:
    print("python: warning: the `unify` feature of python/Cargo.toml no longer matches the test build;"
          " maturin rebuilds these and what depends on them:", *drift, sep="\n  ")
PY
}

if [ "$mode" != test ]; then
    start=$SECONDS
    [ "${WHARF_LINT:-}" = 1 ] && unify_check
    rm -f target/wheels/wharf_storage-*.whl
    .tools/venv/bin/maturin build -m python/Cargo.toml --features pyo3/extension-module,unify --out target/wheels -i "$py" 2>&1 |
        grep -v '^ *Blocking' | awk '/^ *Compiling/ { n++; next } { print } END { print "python: maturin compiled " n+0 " crates" }' || true
    wheel=$(ls target/wheels/wharf_storage-*.whl)
    rm -rf target/python
    "$py" -m pip install --quiet --disable-pip-version-check --no-deps --no-index --target target/python "$wheel"
    echo "python: built and installed $(basename "$wheel") in $((SECONDS - start)) s"
fi
[ "$mode" = build ] && exit 0
export PYTHONPATH=$PWD/target/python
exec "$py" -m pytest -c python/pyproject.toml -p no:cacheprovider -ra --durations=15 "$@"
