#!/usr/bin/env bash
# Installs the servers and clients the tests run against into .tools/,
# from package registries only, pinned. Idempotent: a second run is quick.
#   .tools/venv   moto[server], gcp-storage-emulator, boto3, azure-storage-blob, requests
#   .tools/node   azurite
#   .tools/cargo  s3s-fs
#   Debian        redis-server, PostgreSQL 15 (apt-get, when missing)
set -euo pipefail
cd "$(dirname "$0")/.."
tools=$PWD/.tools
mkdir -p "$tools"

stamp() { echo "$1" | sha256sum | cut -c1-16; }

reqs=scripts/requirements-test.txt
want=$(stamp "$(cat "$reqs")")
if [ "$(cat "$tools/venv/.stamp" 2>/dev/null)" != "$want" ]; then
    echo "tools: installing Python packages into .tools/venv" >&2
    # Installed over what is there, so servers already running from the
    # venv keep working when a pin is added.
    [ -x "$tools/venv/bin/pip" ] || python3 -m venv "$tools/venv"
    "$tools/venv/bin/pip" install --quiet --disable-pip-version-check -r "$reqs"
    echo "$want" > "$tools/venv/.stamp"
fi

azurite_version=3.35.0
if [ "$(cat "$tools/node/.stamp" 2>/dev/null)" != "$azurite_version" ]; then
    echo "tools: installing azurite $azurite_version into .tools/node" >&2
    rm -rf "$tools/node"
    npm install --silent --no-audit --no-fund --prefix "$tools/node" "azurite@$azurite_version" >/dev/null
    echo "$azurite_version" > "$tools/node/.stamp"
fi

s3s_version=0.14.1
if [ "$("$tools/cargo/bin/s3s-fs" --version 2>/dev/null | awk '{print $2}')" != "$s3s_version" ]; then
    echo "tools: building s3s-fs $s3s_version into .tools/cargo (a few minutes)" >&2
    cargo install --quiet --locked s3s-fs --version "$s3s_version" --features binary --root "$tools/cargo"
fi

# Debian's servers, installed system-wide when missing.
debs=()
command -v redis-server >/dev/null || debs+=(redis-server)
[ -x /usr/lib/postgresql/15/bin/initdb ] || debs+=(postgresql-15)
if [ ${#debs[@]} -gt 0 ]; then
    echo "tools: installing ${debs[*]} from Debian" >&2
    sudo=; [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${debs[@]}" >/dev/null
fi
