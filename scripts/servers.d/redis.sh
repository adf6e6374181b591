# redis-server for the `redis` adapter: a free 127.0.0.1 port, nothing
# persisted (no RDB, no AOF), and a password so the adapter's AUTH is
# exercised. Sourced by scripts/servers.sh.

REDIS_BIN=${REDIS_BIN:-redis-server}
# A throwaway server's password, not a secret.
REDIS_PASSWORD=wharf-test-redis-password

start_redis() {
    redis_instance redis REDIS
}

# A second server, for the tests that restart theirs (the others share the
# first and must not see it go away).
start_redis2() {
    redis_instance redis2 REDIS2
}

# redis_instance NAME VAR: a server whose state files are $state/NAME*, its
# address exported as WHARF_TEST_<VAR>_ADDR.
redis_instance() {
    local name=$1 var=$2 port tls_port data=$state/$1-data
    port=$(free_port)
    rm -rf "$data"
    mkdir -p "$data"
    # The password goes in a config file, not in the process list.
    (umask 077 && printf 'requirepass %s\n' "$REDIS_PASSWORD" >"$data/redis.conf")
    echo "$port" >"$state/$name.port"
    # A second port speaks TLS only (certificate from test_ca).
    tls_port=$(free_port)
    echo "$tls_port" >"$state/$name.tlsport"
    run_redis "$name" "$var" "$port" "$tls_port"
}

# Stops the server and starts a new one on the same port (nothing is
# persisted, so it comes back empty): what a client sees of a restart.
restart_redis2() {
    local port
    port=$(cat "$state/redis2.port")
    stop_one redis2 keep
    run_redis redis2 REDIS2 "$port" "$(cat "$state/redis2.tlsport")" >/dev/null
}

run_redis() {
    local name=$1 var=$2 port=$3 tls_port=$4 pid data=$state/$1-data tls
    tls=$(test_ca)
    # `exec` makes the recorded pid the server's own.
    (
        cd "$data" &&
            exec "$REDIS_BIN" "$data/redis.conf" --bind 127.0.0.1 --port "$port" --save '' \
                --tls-port "$tls_port" --tls-cert-file "$tls/server.pem" --tls-key-file "$tls/server.key" \
                --tls-ca-cert-file "$tls/ca.pem" --tls-auth-clients no \
                --appendonly no --daemonize no --dir "$data" >"$state/$name.log" 2>&1
    ) &
    echo $! >"$state/$name.pid"
    pid=$(cat "$state/$name.pid")
    for _ in $(seq 1 100); do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "servers: redis exited during startup; its log:" >&2
            tail -n 30 "$state/$name.log" >&2
            return 1
        fi
        if [ "$(REDISCLI_AUTH=$REDIS_PASSWORD timeout 2 redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ]; then
            echo "export WHARF_TEST_${var}_ADDR=127.0.0.1:$port"
            echo "export WHARF_TEST_${var}_TLS_PORT=$tls_port"
            echo "export WHARF_TEST_TLS_CA=$tls/ca.pem"
            echo "export WHARF_TEST_${var}_PASSWORD=$REDIS_PASSWORD"
            return 0
        fi
        sleep 0.2
    done
    echo "servers: redis did not answer PING at 127.0.0.1:$port within 20 s" >&2
    return 1
}

all+=(redis redis2)
