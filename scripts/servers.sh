#!/usr/bin/env bash
# Starts and stops the servers the tests run against, on 127.0.0.1, each on
# a free port, each stopped by its process id.
#
#   scripts/servers.sh start [name...]   # default: all; prints `export` lines
#   scripts/servers.sh stop  [name...]
#   scripts/servers.sh restart redis2|postgres2 # same port and data, new process:
#                                               # every client connection is cut
#
# Names: moto, s3s, azurite, azurite_oauth, gcs, and those in scripts/servers.d/. State (pid files, data, logs, the env
# file with every URL) lives in target/servers/. Run scripts/tools.sh first.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
tools=$root/.tools
state=$root/target/servers
mkdir -p "$state"
all=(moto s3s azurite azurite_oauth gcs)

# Credentials of the throwaway servers (not secrets).
S3S_ACCESS_KEY=wharf-test-key
S3S_SECRET_KEY=wharf-test-secret
AZURITE_ACCOUNT=devstoreaccount1
AZURITE_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
BUCKET=wharf-test

free_port() {
    "$tools/venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_http URL PIDFILE NAME [CURL ARGS]: polls for any HTTP answer, at
# most 60 s.
wait_http() {
    local url=$1 pid name=$3
    pid=$(cat "$2")
    shift 3
    for _ in $(seq 1 120); do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "servers: $name exited during startup; its log:" >&2
            tail -n 30 "$state/$name.log" >&2
            return 1
        fi
        if curl -s -o /dev/null --max-time 2 "$@" "$url"; then
            return 0
        fi
        sleep 0.5
    done
    echo "servers: $name did not answer at $url within 60 s" >&2
    return 1
}

# test_ca: a CA and a server certificate it signs, made here with openssl
# for the TLS tests (redis's TLS port, PostgreSQL's ssl=on) and exported as
# WHARF_TEST_TLS_CA. The certificate names `localhost` only (not
# 127.0.0.1), so a client that checks host names accepts `localhost` and
# refuses `127.0.0.1`. Made once per state directory (again when 20 days
# old: they are valid for 30); nothing secret.
test_ca() {
    local d=$state/tls
    if [ ! -f "$d/server.pem" ] || [ -n "$(find "$d/server.pem" -mtime +20)" ]; then
        rm -rf "$d"
        mkdir -p "$d"
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
            -subj "/CN=wharf test CA" -keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
            -subj "/CN=localhost" -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null
        printf 'subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$d/ext"
        openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
            -days 30 -extfile "$d/ext" -out "$d/server.pem" 2>/dev/null
        chmod 644 "$d/server.key"
    fi
    echo "$d"
}

start_moto() {
    local port
    port=$(free_port)
    "$tools/venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$state/moto.log" 2>&1 &
    echo $! >"$state/moto.pid"
    wait_http "http://127.0.0.1:$port/" "$state/moto.pid" moto
    # moto checks no signatures: create the bucket with a plain request.
    curl -sf -X PUT "http://127.0.0.1:$port/$BUCKET" -o /dev/null
    echo "export WHARF_TEST_MOTO_URL=http://127.0.0.1:$port"
}

start_s3s() {
    local port data=$state/s3s-data
    port=$(free_port)
    rm -rf "$data"
    mkdir -p "$data/$BUCKET"
    "$tools/cargo/bin/s3s-fs" --host 127.0.0.1 --port "$port" \
        --access-key "$S3S_ACCESS_KEY" --secret-key "$S3S_SECRET_KEY" "$data" >"$state/s3s.log" 2>&1 &
    echo $! >"$state/s3s.pid"
    wait_http "http://127.0.0.1:$port/" "$state/s3s.pid" s3s
    echo "export WHARF_TEST_S3S_URL=http://127.0.0.1:$port"
    echo "export WHARF_TEST_S3S_ACCESS_KEY=$S3S_ACCESS_KEY"
    echo "export WHARF_TEST_S3S_SECRET_KEY=$S3S_SECRET_KEY"
}

start_azurite() {
    local port data=$state/azurite-data
    port=$(free_port)
    rm -rf "$data"
    mkdir -p "$data"
    "$tools/node/node_modules/.bin/azurite-blob" --blobHost 127.0.0.1 --blobPort "$port" --location "$data" \
        --skipApiVersionCheck --loose --disableTelemetry >"$state/azurite.log" 2>&1 &
    echo $! >"$state/azurite.pid"
    wait_http "http://127.0.0.1:$port/" "$state/azurite.pid" azurite
    local url=http://127.0.0.1:$port/$AZURITE_ACCOUNT
    "$tools/venv/bin/python" - "$url" "$AZURITE_ACCOUNT" "$AZURITE_KEY" "$BUCKET" <<'PY'
import sys
from azure.storage.blob import BlobServiceClient
url, account, key, container = sys.argv[1:]
BlobServiceClient(url, credential={"account_name": account, "account_key": key}).create_container(container)
PY
    echo "export WHARF_TEST_AZURITE_URL=$url"
    echo "export WHARF_TEST_AZURITE_ACCOUNT=$AZURITE_ACCOUNT"
    echo "export WHARF_TEST_AZURITE_KEY=$AZURITE_KEY"
}

# A second Azurite for Entra ID: HTTPS (the test CA's certificate, which
# names `localhost`) and `--oauth basic`, which checks a bearer token's
# lifetime, issuer and audience (not its signature: no Entra here).
start_azurite_oauth() {
    local port data=$state/azurite_oauth-data tls
    tls=$(test_ca)
    port=$(free_port)
    rm -rf "$data"
    mkdir -p "$data"
    "$tools/node/node_modules/.bin/azurite-blob" --blobHost 127.0.0.1 --blobPort "$port" --location "$data" \
        --skipApiVersionCheck --loose --disableTelemetry --oauth basic \
        --cert "$tls/server.pem" --key "$tls/server.key" >"$state/azurite_oauth.log" 2>&1 &
    echo $! >"$state/azurite_oauth.pid"
    wait_http "https://localhost:$port/" "$state/azurite_oauth.pid" azurite_oauth --cacert "$tls/ca.pem"
    local url=https://localhost:$port/$AZURITE_ACCOUNT
    "$tools/venv/bin/python" - "$url" "$AZURITE_ACCOUNT" "$AZURITE_KEY" "$BUCKET" "$tls/ca.pem" <<'PY'
import sys
from azure.storage.blob import BlobServiceClient
url, account, key, container, ca = sys.argv[1:]
BlobServiceClient(url, credential={"account_name": account, "account_key": key},
                  connection_verify=ca).create_container(container)
PY
    echo "export WHARF_TEST_AZURITE_OAUTH_URL=$url"
    echo "export WHARF_TEST_TLS_CA=$tls/ca.pem"
}

start_gcs() {
    local port data=$state/gcs-data
    port=$(free_port)
    rm -rf "$data"
    mkdir -p "$data"
    (cd "$data" && exec "$tools/venv/bin/gcp-storage-emulator" start --host 127.0.0.1 --port "$port" \
        --default-bucket "$BUCKET" -q >"$state/gcs.log" 2>&1) &
    echo $! >"$state/gcs.pid"
    wait_http "http://127.0.0.1:$port/" "$state/gcs.pid" gcs
    echo "export WHARF_TEST_GCS_URL=http://127.0.0.1:$port"
}

# More servers: each scripts/servers.d/<name>.sh defines `start_<name>`
# (printing its `export` lines) and appends <name> to `all`.
for extra in scripts/servers.d/*.sh; do
    [ -e "$extra" ] || continue
    # shellcheck source=/dev/null
    source "$extra"
done

stop_one() {
    local pidfile=$state/$1.pid pid
    [ -f "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    if kill "$pid" 2>/dev/null; then
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
    # What the tests stored (gigabytes of round trips) goes with the server
    # (each start begins empty anyway), unless a restart keeps its config.
    [ "${2:-}" = keep ] || rm -rf "${state:?}/$1-data"
    # A server that keeps its data outside $state (postgres) names the folder here.
    if [ -f "$state/$1.datadir" ]; then
        rm -rf "$(cat "$state/$1.datadir")"
        rm -f "$state/$1.datadir"
    fi
}

cmd=${1:-}
shift || true
names=("$@")
[ ${#names[@]} -gt 0 ] || names=("${all[@]}")
case $cmd in
start)
    for n in "${names[@]}"; do
        stop_one "$n"
        "start_$n" | tee "$state/$n.env"
    done
    echo "export WHARF_TEST_BUCKET=$BUCKET"
    echo "export WHARF_TEST_PYTHON=$tools/venv/bin/python"
    ;;
stop)
    for n in "${names[@]}"; do stop_one "$n"; done
    ;;
restart)
    for n in "${names[@]}"; do "restart_$n"; done
    ;;
*)
    echo "usage: scripts/servers.sh start|stop|restart [${all[*]}]" >&2
    exit 2
    ;;
esac
