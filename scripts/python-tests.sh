#!/usr/bin/env bash
# The Python package's tests: builds python/ with maturin into a wheel (the
# dev profile, reusing the test build's dependencies in target/), installs
# it into target/python (not into the shared tools venv: other clones use
# that one), then runs pytest on python/tests with the tools venv's
# interpreter. Needs the servers up: scripts/test.sh runs this with them
# (`./scripts/test.sh --python [PYTEST ARGS]` runs only this).
# With WHARF_LINT=1 (exported by test.sh in CI) the build is linted too:
# RUSTC_WORKSPACE_WRAPPER reaches maturin's cargo.
set -euo pipefail
cd "$(dirname "$0")/.."
py=$PWD/.tools/venv/bin/python
start=$SECONDS
rm -f target/wheels/wharf_storage-*.whl
.tools/venv/bin/maturin build -m python/Cargo.toml --out target/wheels -i "$py" 2>&1 |
    grep -v '^ *Compiling\|^ *Blocking' || true
wheel=$(ls target/wheels/wharf_storage-*.whl)
rm -rf target/python
"$py" -m pip install --quiet --disable-pip-version-check --no-deps --no-index --target target/python "$wheel"
echo "python: built and installed $(basename "$wheel") in $((SECONDS - start)) s"
export PYTHONPATH=$PWD/target/python
exec "$py" -m pytest -c python/pyproject.toml -p no:cacheprovider -ra "$@"
