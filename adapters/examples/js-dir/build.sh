#!/usr/bin/env bash
# Builds the js_dir adapter component from source.
#
#   ./build.sh [OUT_DIR]     writes OUT_DIR/js_dir.wasm (default: target/examples
#                            at the repository root)
#
# Needs node >= 18 and npm. Installs the pinned toolchain from package-lock.json
# (`npm ci`, npm registry only) when node_modules is missing or stale, then runs
# componentize-js on adapter.js against wit/world.wit, with the wharf contract
# (../../../wit) and the WASI 0.2 packages (shipped in @bytecodealliance/jco)
# as the world's dependencies.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
out="${1:-$repo/target/examples}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
cd "$here"

command -v npm >/dev/null || { echo "build.sh: npm is not on PATH (install Node.js >= 18)" >&2; exit 1; }

# node_modules is current when it was installed from this exact lockfile.
stamp=node_modules/.wharf-lock.sha256
want="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "build.sh: installing the toolchain (npm ci)" >&2
    # --ignore-scripts: nothing runs or downloads at install time; every
    # binary the build uses comes in a registry package.
    npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2
    echo "$want" > "$stamp"
fi

# Skip the build when nothing it reads has changed. componentize-js output is
# not byte-for-byte reproducible (the engine snapshot records its work
# directory), so rebuilding an unchanged adapter would give the host a "new"
# component to compile again.
inputs="$(cat adapter.js wit/world.wit "$repo/wit/storage.wit" package-lock.json build.sh | sha256sum | cut -d' ' -f1)"
if [ -s "$out/js_dir.wasm" ] && [ "$(cat "$out/js_dir.wasm.inputs" 2>/dev/null)" = "$inputs" ]; then
    echo "build.sh: $out/js_dir.wasm is up to date" >&2
    echo "$out/js_dir.wasm"
    exit 0
fi

# The world and its dependencies, in a directory of this build's own.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
wasi="node_modules/@bytecodealliance/jco/lib/wit/builtin/0.2.12"
mkdir -p "$work/wit/deps/wharf-storage"
cp wit/world.wit "$work/wit/"
cp "$repo/wit/storage.wit" "$work/wit/deps/wharf-storage/"
for pkg in io clocks filesystem; do
    mkdir -p "$work/wit/deps/wasi-$pkg"
    cp "$wasi/wasi-$pkg/package.wit" "$work/wit/deps/wasi-$pkg/"
done

# No outgoing HTTP and no fetch event: this adapter only touches files, so
# the component imports no wasi:http.
node_modules/.bin/componentize-js adapter.js \
    --wit "$work/wit" --world-name js-dir \
    --disable http fetch-event \
    -o "$work/js_dir.wasm" >&2
[ -s "$work/js_dir.wasm" ] || { echo "build.sh: componentize-js wrote no component" >&2; exit 1; }
mv -f "$work/js_dir.wasm" "$out/js_dir.wasm.tmp"
mv -f "$out/js_dir.wasm.tmp" "$out/js_dir.wasm"
echo "$inputs" > "$out/js_dir.wasm.inputs"
echo "$out/js_dir.wasm"
