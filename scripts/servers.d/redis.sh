# redis-server for the `redis` adapter: a free 127.0.0.1 port, nothing
# persisted (no RDB, no AOF), and a password so the adapter's AUTH is
# exercised. Sourced by scripts/servers.sh.

REDIS_BIN=${REDIS_BIN:-redis-server}
# A throwaway server's password, not a secret.
REDIS_PASSWORD=wharf-test-redis-password

start_redis() {
    local port pid data=$state/redis-data
    port=$(free_port)
    rm -rf "$data"
    mkdir -p "$data"
    # The password goes in a config file, not in the process list; `exec`
    # makes the recorded pid the server's own.
    (umask 077 && printf 'requirepass %s\n' "$REDIS_PASSWORD" >"$data/redis.conf")
    (
        cd "$data" &&
            exec "$REDIS_BIN" "$data/redis.conf" --bind 127.0.0.1 --port "$port" --save '' \
                --appendonly no --daemonize no --dir "$data" >"$state/redis.log" 2>&1
    ) &
    echo $! >"$state/redis.pid"
    pid=$(cat "$state/redis.pid")
    for _ in $(seq 1 100); do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "servers: redis exited during startup; its log:" >&2
            tail -n 30 "$state/redis.log" >&2
            return 1
        fi
        if [ "$(REDISCLI_AUTH=$REDIS_PASSWORD timeout 2 redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ]; then
            echo "export WHARF_TEST_REDIS_ADDR=127.0.0.1:$port"
            echo "export WHARF_TEST_REDIS_PASSWORD=$REDIS_PASSWORD"
            return 0
        fi
        sleep 0.2
    done
    echo "servers: redis did not answer PING at 127.0.0.1:$port within 20 s" >&2
    return 1
}

all+=(redis)
