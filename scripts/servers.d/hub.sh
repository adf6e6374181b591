# The in-repo Hugging Face Hub-compatible server (tests/hub/server.py), with
# a fixed test token; its signed LFS URLs use the host name `localhost` on the
# same port (its "CDN"). Sourced by scripts/servers.sh.

HUB_TOKEN=hf_wharf_test_token

start_hub() {
    local port data=$state/hub-data
    port=$(free_port)
    rm -rf "$data"
    mkdir -p "$data"
    "$tools/venv/bin/python" "$root/tests/hub/server.py" --host 127.0.0.1 --port "$port" \
        --token "$HUB_TOKEN" --data "$data" --cdn-host localhost >"$state/hub.log" 2>&1 &
    echo $! >"$state/hub.pid"
    wait_http "http://127.0.0.1:$port/api/whoami-v2" "$state/hub.pid" hub
    echo "export WHARF_TEST_HUB_URL=http://127.0.0.1:$port"
    echo "export WHARF_TEST_HUB_CDN_URL=http://localhost:$port"
    echo "export WHARF_TEST_HUB_TOKEN=$HUB_TOKEN"
}

all+=(hub)
