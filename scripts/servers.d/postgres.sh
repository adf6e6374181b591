# PostgreSQL 15 for the `database` adapter: a throwaway cluster with
# scram-sha-256 password auth on 127.0.0.1. Sourced by scripts/servers.sh.
#
# We run as root and postgres refuses to, so the cluster belongs to the
# `postgres` OS user and lives in a folder under /tmp that it can reach
# (not under /root or the work tree). Its path is kept in
# $state/postgres.datadir and the folder is removed when the server stops (or on the next start).
# fsync is off: the cluster is thrown away, and the benchmark compares the
# adapter with a native client on this same server. max_wal_size is kept at
# 1 GB so the multi-GiB tests recycle WAL instead of filling the disk.

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PG_USER=wharf
PG_PASSWORD=wharf-test-pg-password
PG_DB=wharf

start_postgres() {
    local port dir pid
    if [ -f "$state/postgres.datadir" ]; then
        rm -rf "$(cat "$state/postgres.datadir")"
        rm -f "$state/postgres.datadir"
    fi
    port=$(free_port)
    dir=$(mktemp -d /tmp/wharf-postgres.XXXXXX)
    echo "$dir" >"$state/postgres.datadir"
    chmod 700 "$dir"
    printf '%s\n' "$PG_PASSWORD" >"$dir/pwfile"
    chown -R postgres:postgres "$dir"
    runuser -u postgres -- "$PG_BIN/initdb" -D "$dir/data" -U "$PG_USER" --pwfile="$dir/pwfile" \
        --auth=scram-sha-256 --encoding=UTF8 --locale=C >"$state/postgres.log" 2>&1
    rm -f "$dir/pwfile"
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -W \
        -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir \
            -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
            -c max_connections=200 -c shared_buffers=128MB -c max_wal_size=1GB" \
        start >>"$state/postgres.log" 2>&1
    # Ready within 60 s, or fail with the server's log.
    for _ in $(seq 1 120); do
        if pg_isready -q -h 127.0.0.1 -p "$port" -t 2; then
            break
        fi
        sleep 0.5
    done
    if ! pg_isready -q -h 127.0.0.1 -p "$port" -t 2; then
        echo "servers: postgres did not get ready on 127.0.0.1:$port within 60 s; its log:" >&2
        tail -n 30 "$dir/server.log" >&2
        return 1
    fi
    pid=$(head -n 1 "$dir/data/postmaster.pid")
    echo "$pid" >"$state/postgres.pid"
    PGPASSWORD=$PG_PASSWORD psql -q -h 127.0.0.1 -p "$port" -U "$PG_USER" -d postgres \
        -c "CREATE DATABASE $PG_DB" >>"$state/postgres.log" 2>&1
    echo "export WHARF_TEST_PG_ADDR=127.0.0.1:$port"
    echo "export WHARF_TEST_PG_USER=$PG_USER"
    echo "export WHARF_TEST_PG_PASSWORD=$PG_PASSWORD"
    echo "export WHARF_TEST_PG_DB=$PG_DB"
}

all+=(postgres)
