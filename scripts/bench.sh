#!/usr/bin/env bash
# Runs a benchmark with the servers it needs (started on 127.0.0.1, stopped
# by pid on exit) and prints its Markdown report, for BENCHMARKS.md.
#   scripts/bench.sh local_filesystem | aws_s3 | object_store | redis | database | layers | registry | python
set -euo pipefail
cd "$(dirname "$0")/.."
bench=${1:?usage: scripts/bench.sh local_filesystem|aws_s3|object_store|redis|database|layers|registry|python}
rustup target add wasm32-wasip2 >/dev/null
./scripts/tools.sh
trap './scripts/servers.sh stop' EXIT
case $bench in
aws_s3 | object_store | python)
    exports=$(./scripts/servers.sh start s3s)
    eval "$exports"
    ;;
redis | database)
    exports=$(./scripts/servers.sh start "${bench/database/postgres}")
    eval "$exports"
    ;;
registry)
    exports=$(./scripts/servers.sh start s3s postgres redis)
    eval "$exports"
    ;;
esac
if [ "$bench" = python ]; then
    # The package built as pip builds it (release profile), against boto3,
    # OpenDAL and shutil + hashlib in the same process (bench/python/bench.py).
    py=$PWD/.tools/venv/bin/python
    rm -rf target/wheels-release target/python-release
    .tools/venv/bin/maturin build --release -m python/Cargo.toml --out target/wheels-release -i "$py"
    "$py" -m pip install --quiet --disable-pip-version-check --no-deps --no-index \
        --target target/python-release target/wheels-release/wharf_storage-*.whl
    # Not `exec`: the trap must still stop the server.
    PYTHONPATH=$PWD/target/python-release "$py" bench/python/bench.py
    exit
fi
cargo bench -p wharf-bench --bench "$bench"
