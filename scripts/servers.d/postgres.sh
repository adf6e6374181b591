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

# pg_cluster NAME VAR: a cluster whose state files are $state/NAME.*, its
# address exported as WHARF_TEST_<VAR>_ADDR.
pg_cluster() {
    local name=$1 var=$2 port dir pid tls
    if [ -f "$state/$name.datadir" ]; then
        rm -rf "$(cat "$state/$name.datadir")"
        rm -f "$state/$name.datadir"
    fi
    port=$(free_port)
    dir=$(mktemp -d /tmp/wharf-postgres.XXXXXX)
    echo "$dir" >"$state/$name.datadir"
    chmod 700 "$dir"
    printf '%s\n' "$PG_PASSWORD" >"$dir/pwfile"
    # TLS on the same port (clients ask with SSLRequest), certificate from
    # test_ca; the key must be the server user's and 0600.
    tls=$(test_ca)
    cp "$tls/server.pem" "$dir/server.pem"
    cp "$tls/server.key" "$dir/server.key"
    chmod 600 "$dir/server.key"
    chown -R postgres:postgres "$dir"
    runuser -u postgres -- "$PG_BIN/initdb" -D "$dir/data" -U "$PG_USER" --pwfile="$dir/pwfile" \
        --auth=scram-sha-256 --encoding=UTF8 --locale=C >"$state/$name.log" 2>&1
    rm -f "$dir/pwfile"
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -W \
        -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir \
            -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
            -c max_connections=200 -c shared_buffers=128MB -c max_wal_size=1GB \
            -c ssl=on -c ssl_cert_file=$dir/server.pem -c ssl_key_file=$dir/server.key" \
        start >>"$state/$name.log" 2>&1
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
    echo "$pid" >"$state/$name.pid"
    PGPASSWORD=$PG_PASSWORD psql -q -h 127.0.0.1 -p "$port" -U "$PG_USER" -d postgres \
        -c "CREATE DATABASE $PG_DB" >>"$state/$name.log" 2>&1
    echo "export WHARF_TEST_${var}_ADDR=127.0.0.1:$port"
    echo "export WHARF_TEST_TLS_CA=$tls/ca.pem"
}

start_postgres() {
    pg_cluster postgres PG
    echo "export WHARF_TEST_PG_USER=$PG_USER"
    echo "export WHARF_TEST_PG_PASSWORD=$PG_PASSWORD"
    echo "export WHARF_TEST_PG_DB=$PG_DB"
}

# A second cluster, for the tests that restart their server (the others
# share the first and must not see it go away).
start_postgres2() {
    pg_cluster postgres2 PG2
}

# A fast shutdown (every session cut) and a start with the same data,
# options and port.
restart_postgres2() {
    local dir pid
    dir=$(cat "$state/postgres2.datadir")
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w restart >>"$state/postgres2.log" 2>&1
    pid=$(head -n 1 "$dir/data/postmaster.pid")
    echo "$pid" >"$state/postgres2.pid"
}

all+=(postgres postgres2)
