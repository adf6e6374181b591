#!/usr/bin/env bash
# Installs the servers and clients the tests run against, from package
# registries only, pinned. Idempotent: a second run is quick.
#   .tools/venv   moto[server], gcp-storage-emulator, boto3, azure-storage-blob, requests, ...
#   .tools/node   azurite
#   .tools/cargo  s3s-fs
#   Debian        redis-server, PostgreSQL 15 (apt-get, when missing)
# Each install is made once per user and pin set, in $WHARF_TOOLS_CACHE
# (default ~/.cache/wharf-tools, yours alone: 0700), and .tools/<name> links
# to it: a new clone on the same machine reuses it, as cargo reuses its
# registry; a fresh machine installs everything.
set -euo pipefail
cd "$(dirname "$0")/.."
tools=$PWD/.tools
cache=${WHARF_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/wharf-tools}
mkdir -p "$tools" "$cache"
chmod 700 "$cache"

stamp() { echo "$1" | sha256sum | cut -c1-16; }

# install NAME KEY COMMAND...: runs COMMAND (which installs into $dir) unless
# $cache/NAME-KEY is complete, then links .tools/NAME to it.
install() {
    local name=$1 key=$2
    shift 2
    dir=$cache/$name-$key
    if [ ! -e "$dir/.complete" ]; then
        rm -rf "$dir"
        "$@"
        touch "$dir/.complete"
    fi
    # A real directory here is an install from before the cache.
    [ -L "$tools/$name" ] || rm -rf "${tools:?}/$name"
    ln -sfn "$dir" "$tools/$name"
    # Other pin sets of NAME unused for 7 days go (a venv is GiBs); one in
    # use by another clone on this machine is touched by its runs and stays.
    touch "$dir/.used"
    local old
    for old in "$cache/$name"-*; do
        [ "$old" != "$dir" ] && [ -d "$old" ] || continue
        if [ -z "$(find "$old/.used" "$old/.complete" -maxdepth 0 -mtime -7 2>/dev/null)" ]; then
            echo "tools: removing $old (unused for 7 days)" >&2
            rm -rf "$old"
        fi
    done
}

reqs=scripts/requirements-test.txt
venv() {
    echo "tools: installing Python packages into $dir" >&2
    python3 -m venv "$dir"
    "$dir/bin/pip" install --quiet --disable-pip-version-check -r "$reqs"
}
install venv "$(stamp "$(cat "$reqs")")" venv

azurite_version=3.35.0
node() {
    echo "tools: installing azurite $azurite_version into $dir" >&2
    npm install --silent --no-audit --no-fund --prefix "$dir" "azurite@$azurite_version" >/dev/null
}
install node "azurite-$azurite_version" node

s3s_version=0.14.1
s3s() {
    echo "tools: building s3s-fs $s3s_version into $dir (a few minutes)" >&2
    cargo install --quiet --locked s3s-fs --version "$s3s_version" --features binary --root "$dir"
}
install cargo "s3s-fs-$s3s_version" s3s

# Debian's servers, installed system-wide when missing.
debs=()
command -v redis-server >/dev/null || debs+=(redis-server)
# The zstd CLI: a standard reader of the compression layer's objects.
command -v zstd >/dev/null || debs+=(zstd)
# The age CLI: the reference reader and writer of the encryption layer's objects.
command -v age >/dev/null || debs+=(age)
[ -x /usr/lib/postgresql/15/bin/initdb ] || debs+=(postgresql-15)
if [ ${#debs[@]} -gt 0 ]; then
    echo "tools: installing ${debs[*]} from Debian" >&2
    sudo=; [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${debs[@]}" >/dev/null
fi
