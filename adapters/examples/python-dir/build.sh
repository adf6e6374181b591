#!/usr/bin/env bash
# Builds the Python example adapter into <out>/python_dir.wasm.
#
#   adapters/examples/python-dir/build.sh [out-dir]     (default: target/examples)
#
# Installs the pinned componentize-py from PyPI into .tools/componentize-py
# (a virtualenv at the repository root) when it is missing or another
# version; a second run reuses it. Then generates the Python bindings of the
# contract into bindings/ (for editors, type checkers and unit tests on the
# host's CPython; the build generates its own copy) and builds the component.
set -euo pipefail

COMPONENTIZE_PY_VERSION=0.25.1

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
wit=$here/../../../wit
out=${1:-$repo/target/examples}
mkdir -p "$out" "$repo/.tools"
out=$(cd "$out" && pwd)

# One build at a time: tests start this script at once (and the SQLite
# example's build.sh shares the tool's virtualenv under the same lock).
if command -v flock >/dev/null; then
    exec 9>"$repo/.tools/componentize-py.lock"
    flock 9
fi

venv=$repo/.tools/componentize-py
tool=$venv/bin/componentize-py
if [ "$("$tool" --version 2>/dev/null | awk '{print $2}')" != "$COMPONENTIZE_PY_VERSION" ]; then
    echo "python-dir: installing componentize-py $COMPONENTIZE_PY_VERSION into $venv" >&2
    python=$(command -v python3 || command -v python || true)
    [ -n "$python" ] || { echo "python-dir: python3 is needed to install componentize-py" >&2; exit 1; }
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "componentize-py==$COMPONENTIZE_PY_VERSION"
fi

# The bindings are generated code: regenerate them whenever the WIT or the
# tool changes (a stamp records what they were made from).
stamp=$(cat "$wit"/*.wit | sha256sum | cut -c1-16)-$COMPONENTIZE_PY_VERSION
if [ "$(cat "$here/bindings/.stamp" 2>/dev/null)" != "$stamp" ]; then
    rm -rf "$here/bindings"
    "$tool" --quiet -d "$wit" -w storage-adapter bindings "$here/bindings"
    echo "$stamp" > "$here/bindings/.stamp"
fi

# Skip the build when the component is already made from these sources by
# this tool version (the same inputs give an equivalent, not byte-identical,
# component: a rebuild would only cost a recompile in every host cache).
inputs=$( (cat "$here/app.py" "$wit"/*.wit; echo "$COMPONENTIZE_PY_VERSION") | sha256sum | cut -c1-32)
if [ -f "$out/python_dir.wasm" ] && [ "$(cat "$out/python_dir.wasm.inputs" 2>/dev/null)" = "$inputs" ]; then
    echo "python-dir: $out/python_dir.wasm is up to date" >&2
    exit 0
fi

start=$(date +%s)
# Written aside and renamed, so a concurrent build or a reader never sees
# half a component.
"$tool" --quiet -d "$wit" -w storage-adapter componentize \
    --python-path "$here" app -o "$out/python_dir.wasm.$$.tmp"
mv "$out/python_dir.wasm.$$.tmp" "$out/python_dir.wasm"
echo "$inputs" > "$out/python_dir.wasm.inputs"
echo "python-dir: built $out/python_dir.wasm ($(wc -c < "$out/python_dir.wasm") bytes, $(( $(date +%s) - start ))s)" >&2
