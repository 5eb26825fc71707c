#!/usr/bin/env bash
# The production Compose stack, run for real on this machine: engine, images, `up --wait`, the
# scenario of deploy/smoke.py, then everything torn down, volumes included.
#
#   sudo deploy/smoke.sh          # from the repository root; exits non-zero on any failed expectation
#   sudo deploy/smoke.sh --keep   # leave the stack up to look at (UI on the port printed)
#
# Where no Docker engine runs and this is root, it installs Debian's docker.io (and Compose v2 and
# buildx from Debian trixie's packages, as CLI plugins, when `docker compose` is missing) and starts
# dockerd. Images that cannot be pulled here are built from a `debootstrap --variant=minbase
# bookworm` base (deploy/local/, deploy/compose.local.yml). The last line printed is one JSON
# summary: services, timings, run ids and figures.
set -euo pipefail
cd "$(dirname "$0")/.."

KEEP=0
[[ "${1:-}" == "--keep" ]] && KEEP=1
WORK="${HYPERION_SMOKE_DIR:-/tmp/hyperion-smoke}"
mkdir -p "$WORK"
STARTED_DOCKERD=0
say() { echo "smoke.sh: $*" >&2; }
fail() { say "FAILED: $*"; exit 1; }
now() { date +%s.%N; }
elapsed() { python3 -c "print(round($(now) - $1, 1))"; }

# -- a Docker engine, and Compose v2 -------------------------------------------------------------
ensure_engine() {
    if docker info > /dev/null 2>&1; then return; fi
    [[ $EUID -eq 0 ]] || fail "no Docker engine runs and this is not root: start one, or run as root"
    if ! command -v dockerd > /dev/null; then
        say "installing docker.io"
        apt-get update -q > "$WORK/apt.log" 2>&1
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io >> "$WORK/apt.log" 2>&1
    fi
    say "starting dockerd"
    dockerd > "$WORK/dockerd.log" 2>&1 &
    STARTED_DOCKERD=1
    for _ in $(seq 60); do docker info > /dev/null 2>&1 && break; sleep 0.5; done
    docker info > /dev/null 2>&1 || fail "dockerd did not start (see $WORK/dockerd.log)"
    # dockerd sets the FORWARD policy to DROP, which cuts containers off from each other's ports
    # on some hosts; the project's network is its own bridge.
    iptables -P FORWARD ACCEPT 2> /dev/null || true
}

ensure_compose() {
    if docker compose version > /dev/null 2>&1; then return; fi
    [[ $EUID -eq 0 ]] || fail "docker compose (v2) is missing"
    say "installing Compose v2 and buildx from Debian trixie's packages as CLI plugins"
    local apt="$WORK/trixie"
    mkdir -p "$apt/lists/partial"
    echo "deb http://deb.debian.org/debian trixie main" > "$apt/sources.list"
    local opts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
                -o "Dir::State::Lists=$apt/lists" -o Debug::NoLocking=1)
    apt-get "${opts[@]}" update -q > "$apt/update.log" 2>&1
    (cd "$apt" && apt-get "${opts[@]}" download docker-compose docker-buildx > "$apt/download.log" 2>&1)
    for deb in "$apt"/*.deb; do dpkg-deb -x "$deb" "$apt/x"; done
    mkdir -p /usr/local/lib/docker/cli-plugins
    cp "$apt"/x/usr/libexec/docker/cli-plugins/* /usr/local/lib/docker/cli-plugins/
    docker compose version > /dev/null || fail "Compose v2 plugin did not install"
}

# -- images ---------------------------------------------------------------------------------------
build_local_images() {
    if ! docker image inspect hyperion-local/bookworm:base > /dev/null 2>&1; then
        command -v debootstrap > /dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap > /dev/null
        say "debootstrap bookworm (minbase)"
        rm -rf "$WORK/rootfs"
        debootstrap --variant=minbase bookworm "$WORK/rootfs" http://deb.debian.org/debian > "$WORK/debootstrap.log" 2>&1 \
            || fail "debootstrap failed (see $WORK/debootstrap.log)"
        tar -C "$WORK/rootfs" -c . | docker import - hyperion-local/bookworm:base > /dev/null
        rm -rf "$WORK/rootfs"
    fi
    # The Python base's context: the CPU torch wheel and this machine's CA bundle.
    local context="$WORK/python-context"
    rm -rf "$context" && mkdir -p "$context/wheels" "$context/trust"
    python3 -m pip download -q --no-deps torch==2.13.0 -d "$context/wheels" \
        --extra-index-url https://download.pytorch.org/whl/cpu > "$WORK/pip.log" 2>&1 \
        || fail "could not fetch the torch 2.13.0 CPU wheel (see $WORK/pip.log)"
    cp /etc/ssl/certs/ca-certificates.crt "$context/trust/host-ca-certificates.crt"
    docker build -q -f deploy/local/python.Dockerfile -t hyperion-local/python:3.11 "$context" > /dev/null \
        || fail "building hyperion-local/python:3.11 failed"
}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

write_env() {
    local password
    password="smoke-$(python3 -c 'import secrets; print(secrets.token_hex(8))')"
    UI_PORT=$(free_port); PROMETHEUS_PORT=$(free_port); FLOWER_PORT=$(free_port); SEARCH_PORT=$(free_port)
    SEARCH_TOKEN="search-$(python3 -c 'import secrets; print(secrets.token_hex(8))')"
    FLOWER_AUTH="hyperion:flower-$(python3 -c 'import secrets; print(secrets.token_hex(8))')"
    cat > "$WORK/smoke.env" <<EOF
POSTGRES_PASSWORD=$password
HYPERION_STATE_DB_URL=postgresql+psycopg2://hyperion:$password@postgres:5432/hyperion
MINIO_ROOT_USER=unused
MINIO_ROOT_PASSWORD=unused-$password
DOCKER_GID=$(stat -c %g /var/run/docker.sock)
HYPERION_UI_PORT=$UI_PORT
HYPERION_UI_URL=http://127.0.0.1:$UI_PORT
HYPERION_MILVUS_PORT=$(free_port)
HYPERION_PUSHGATEWAY_PORT=$(free_port)
HYPERION_PROMETHEUS_PORT=$PROMETHEUS_PORT
RABBITMQ_PASSWORD=rabbit-$(python3 -c 'import secrets; print(secrets.token_hex(8))')
FLOWER_BASIC_AUTH=$FLOWER_AUTH
HYPERION_FLOWER_PORT=$FLOWER_PORT
HYPERION_SERVE_TOKEN=$SEARCH_TOKEN
HYPERION_SEARCH_PORT=$SEARCH_PORT
EOF
}

teardown() {
    local status=$?
    if [[ $KEEP -eq 1 ]]; then
        say "left up (--keep): UI http://127.0.0.1:${UI_PORT:-?}; take it down with: ${COMPOSE[*]} down -v"
        exit $status
    fi
    say "tearing down (volumes included)"
    "${COMPOSE[@]}" --profile celery down -v --remove-orphans > "$WORK/down.log" 2>&1 || true
    # Run containers that DockerRunLauncher started and compose did not count as its own.
    docker ps -aq --filter label=dagster/run_id | xargs -r docker rm -f > /dev/null 2>&1 || true
    docker volume rm hyperion_data > /dev/null 2>&1 || true
    if [[ $STARTED_DOCKERD -eq 1 ]]; then pkill -x dockerd || true; fi
    exit $status
}

started=$(now)
ensure_engine
ensure_compose
engine_s=$(elapsed "$started")

mark=$(now)
build_local_images
write_env
COMPOSE=(docker compose -f docker-compose.yml -f deploy/compose.local.yml --env-file "$WORK/smoke.env")
trap teardown EXIT
"${COMPOSE[@]}" --profile celery down -v --remove-orphans > /dev/null 2>&1 || true  # what an earlier run left
# The `celery` profile's images too: its step turns the profile on at the end.
"${COMPOSE[@]}" --profile celery build > "$WORK/build.log" 2>&1 || fail "docker compose build failed (see $WORK/build.log)"
build_s=$(elapsed "$mark")

mark=$(now)
"${COMPOSE[@]}" up -d --wait > "$WORK/up.log" 2>&1 || { "${COMPOSE[@]}" ps >&2; fail "services did not all become healthy (see $WORK/up.log)"; }
up_s=$(elapsed "$mark")
say "stack healthy: engine ${engine_s} s, images ${build_s} s, up ${up_s} s"

python3 deploy/smoke.py --compose "${COMPOSE[*]}" --ui "http://127.0.0.1:$UI_PORT" \
    --prometheus "http://127.0.0.1:$PROMETHEUS_PORT" \
    --flower "http://127.0.0.1:$FLOWER_PORT" --flower-auth "$FLOWER_AUTH" \
    --search-api "http://127.0.0.1:$SEARCH_PORT" --search-token "$SEARCH_TOKEN" \
    --timings "{\"engine_s\": $engine_s, \"images_s\": $build_s, \"up_s\": $up_s}"
