# MLflow tracking servers with their artifact proxy (`--serve-artifacts`).
# Sourced by scripts/servers.sh.
#   mlflow     artifacts in a local directory (the file artifact store: no
#              multipart upload, the mpu routes answer 501)
#   mlflow_s3  artifacts in a bucket of the `moto` S3 server (started first
#              if it is not running): the mpu routes hand out presigned part
#              URLs

# wait_health URL PIDFILE NAME: polls URL/health until it answers 200, at most 90 s.
wait_health() {
    local url=$1 pid
    pid=$(cat "$2")
    for _ in $(seq 1 180); do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "servers: $3 exited during startup; its log:" >&2
            tail -n 30 "$state/$3.log" >&2
            return 1
        fi
        if curl -sf -o /dev/null --max-time 2 "$url/health"; then
            return 0
        fi
        sleep 0.5
    done
    echo "servers: $3 did not answer at $url/health within 90 s" >&2
    return 1
}

start_mlflow() {
    local port data=$state/mlflow-data
    port=$(free_port)
    rm -rf "$data"
    mkdir -p "$data/artifacts"
    run_mlflow mlflow "$port" "$data/artifacts"
    echo "export WHARF_TEST_MLFLOW_URL=http://127.0.0.1:$port"
    echo "export WHARF_TEST_MLFLOW_ARTIFACTS=$data/artifacts"
}

# run_mlflow NAME PORT DESTINATION [ENV...]: starts `mlflow server` in the
# background, its pid in $state/NAME.pid, and waits for /health. The pid is
# mlflow's own (by `exec`): on SIGTERM it stops its uvicorn worker and exits,
# in about 3 s; uvicorn's graceful shutdown is capped at 2 s so that open
# connections cannot stretch it past stop's 5 s (then kill -9 would leave the
# worker behind).
run_mlflow() {
    local name=$1 port=$2 dest=$3 data=$state/$1-data
    shift 3
    (
        cd "$data" &&
            exec env MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false "$@" \
                "$tools/venv/bin/mlflow" server --host 127.0.0.1 --port "$port" --workers 1 \
                --backend-store-uri "sqlite:///$data/mlflow.db" \
                --artifacts-destination "$dest" --serve-artifacts \
                --uvicorn-opts "--timeout-graceful-shutdown 2" \
                >"$state/$name.log" 2>&1
    ) &
    echo $! >"$state/$name.pid"
    wait_health "http://127.0.0.1:$port" "$state/$name.pid" "$name"
}

start_mlflow_s3() {
    local port root data=$state/mlflow_s3-data bucket=mlflow-artifacts moto=
    if [ -f "$state/moto.env" ] && [ -f "$state/moto.pid" ] && kill -0 "$(cat "$state/moto.pid")" 2>/dev/null; then
        moto=$(sed -n 's/^export WHARF_TEST_MOTO_URL=//p' "$state/moto.env")
    fi
    if [ -z "$moto" ]; then
        start_moto | tee "$state/moto.env"
        moto=$(sed -n 's/^export WHARF_TEST_MOTO_URL=//p' "$state/moto.env")
    fi
    curl -sf -X PUT "$moto/$bucket" -o /dev/null
    port=$(free_port)
    root=mlflow-$port
    rm -rf "$data"
    mkdir -p "$data"
    run_mlflow mlflow_s3 "$port" "s3://$bucket/$root" \
        AWS_ACCESS_KEY_ID=moto-key AWS_SECRET_ACCESS_KEY=moto-secret AWS_DEFAULT_REGION=us-east-1 \
        MLFLOW_S3_ENDPOINT_URL="$moto"
    echo "export WHARF_TEST_MLFLOW_S3_URL=http://127.0.0.1:$port"
    echo "export WHARF_TEST_MLFLOW_S3_STORE=$moto"
    echo "export WHARF_TEST_MLFLOW_S3_BUCKET=$bucket"
    echo "export WHARF_TEST_MLFLOW_S3_ROOT=$root"
}

all+=(mlflow mlflow_s3)
