#!/usr/bin/env bash
# Runs a benchmark with the servers it needs (started on 127.0.0.1, stopped
# by pid on exit) and prints its Markdown report, for BENCHMARKS.md.
#   scripts/bench.sh local_filesystem | aws_s3 | redis | database | layers
set -euo pipefail
cd "$(dirname "$0")/.."
bench=${1:?usage: scripts/bench.sh local_filesystem|aws_s3|redis|database|layers}
rustup target add wasm32-wasip2 >/dev/null
./scripts/tools.sh
trap './scripts/servers.sh stop' EXIT
case $bench in
aws_s3)
    exports=$(./scripts/servers.sh start s3s)
    eval "$exports"
    ;;
redis | database)
    exports=$(./scripts/servers.sh start "${bench/database/postgres}")
    eval "$exports"
    ;;
esac
cargo bench -p wharf-bench --bench "$bench"
