# Sourced by scripts: starts moto's server (single-threaded, see scripts/moto_server.py) on a
# free loopback port, points the AWS SDK at it, and stops it when the calling script exits.

start_moto() {
    local root port_file
    root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
    mkdir -p "$root/.tmp"
    port_file=$(mktemp "$root/.tmp/moto-port.XXXXXX")
    rm -f "$port_file"
    "$root/.venv/bin/python" "$root/scripts/moto_server.py" "$port_file" \
        > "$root/.tmp/moto.log" 2>&1 &
    MOTO_PID=$!
    trap stop_moto EXIT
    for _ in $(seq 1 300); do
        [[ -s "$port_file" ]] && break
        kill -0 "$MOTO_PID" 2>/dev/null || { cat "$root/.tmp/moto.log"; echo "moto failed to start" >&2; return 1; }
        sleep 0.1
    done
    [[ -s "$port_file" ]] || { echo "moto did not start in 30 s" >&2; return 1; }
    MOTO_ENDPOINT="http://127.0.0.1:$(cat "$port_file")"
    rm -f "$port_file"
    export AWS_ENDPOINT_URL_DYNAMODB="$MOTO_ENDPOINT"
    export AWS_ENDPOINT_URL_STS="$MOTO_ENDPOINT"
    export AWS_ENDPOINT_URL_SECRETS_MANAGER="$MOTO_ENDPOINT"
    export AWS_REGION=us-east-1
    export AWS_ACCESS_KEY_ID=testing
    export AWS_SECRET_ACCESS_KEY=testing
    export AWS_EC2_METADATA_DISABLED=true
    echo "==> moto listening on $MOTO_ENDPOINT (pid $MOTO_PID)"
}

stop_moto() {
    if [[ -n "${MOTO_PID:-}" ]]; then
        kill "$MOTO_PID" 2>/dev/null || true
        wait "$MOTO_PID" 2>/dev/null || true
        MOTO_PID=
    fi
}
