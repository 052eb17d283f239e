# Sourced by scripts/run and scripts/test: checks the build tools and makes PostgreSQL and Redis
# available.
#
# Needs Rust (cargo, rustc) at least the rust-version of Cargo.toml, from https://rustup.rs; installs
# gcc, curl and python3-venv with apt-get when they are missing and we are root.
# Uses the servers on 127.0.0.1:$HB_PG_PORT (default 5432) and 127.0.0.1:$HB_REDIS_PORT (default
# 6379) when they answer; otherwise starts private instances on those loopback ports with their
# data under .local/ (ignored by git), installing the Debian packages when the binaries are
# missing and we are root. As root, when the postgres user cannot enter .local/ (a clone under
# /root, say), the private PostgreSQL's data goes to /var/lib/hereabouts/pg-$HB_PG_PORT instead.
# Each script stops, by PID, the instances it started when it ends (after its own exit hooks);
# HB_KEEP_SERVICES=1 leaves them running, and the next run finds and reuses them.
# HEREABOUTS_DATABASE_URL / HEREABOUTS_REDIS_URL, when set, are used as they are.

set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOCAL="$ROOT/.local"
HB_PG_PORT=${HB_PG_PORT:-5432}
HB_REDIS_PORT=${HB_REDIS_PORT:-6379}
mkdir -p "$LOCAL"

say() { printf '[services] %s\n' "$*" >&2; }

# Exit hooks: a script registers its cleanup with at_exit (called with the exit status, last
# registered first); then the instances this run started are stopped. One trap for all, so a
# script's own trap cannot displace the services' one; INT and TERM exit through it too.
HB_EXIT_HOOKS=()
HB_STARTED=() # "redis PIDFILE" or "postgres DATADIR", in the order started
at_exit() { HB_EXIT_HOOKS+=("$1"); }
run_exit_hooks() {
    local status=$? i
    trap - EXIT INT TERM
    for ((i = ${#HB_EXIT_HOOKS[@]} - 1; i >= 0; i--)); do "${HB_EXIT_HOOKS[i]}" "$status" || true; done
    stop_started_services || true
    exit "$status"
}
trap run_exit_hooks EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# pid signal what [seconds]: the signal, then up to `seconds` (30) for the process to go, then
# KILL; a child of this shell is reaped
stop_pid() {
    local pid=$1 grace=${4:-30}
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    say "stopping $3 (pid $pid)"
    kill "-$2" "$pid" 2>/dev/null || true
    for _ in $(seq $((grace * 10))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        say "$3 did not stop in $grace s: killing pid $pid"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}
stop_started_services() {
    [ "${#HB_STARTED[@]}" -gt 0 ] || return 0
    if [ "${HB_KEEP_SERVICES:-0}" = 1 ]; then
        say "HB_KEEP_SERVICES=1: leaving running what this run started (the next run reuses it)"
        return 0
    fi
    local i kind path
    for ((i = ${#HB_STARTED[@]} - 1; i >= 0; i--)); do
        read -r kind path <<<"${HB_STARTED[i]}"
        case "$kind" in
            # Redis ends on TERM; PostgreSQL's fast shutdown is INT to the postmaster
            redis) stop_pid "$(cat "$path" 2>/dev/null)" TERM "the private Redis of $(dirname "$path")" ;;
            postgres) stop_pid "$(head -n 1 "$path/postmaster.pid" 2>/dev/null)" INT "the private PostgreSQL of $path" ;;
        esac
    done
}

apt_install() {
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
        say "missing $*: install the Debian packages '$*' (apt-get install $*) and run again"
        exit 1
    fi
    say "installing $* with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

rust_version_required() { # the rust-version of Cargo.toml, e.g. 1.94
    sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' "$ROOT/Cargo.toml" | head -n 1
}

version_at_least() { # have need
    [ "$(printf '%s\n' "$2" "$1" | sort -V | head -n 1)" = "$2" ]
}

ensure_rust() {
    local need have
    need=$(rust_version_required)
    if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
        PATH="$HOME/.cargo/bin:$PATH" # installed by rustup, but this shell has not read ~/.cargo/env
    fi
    if ! command -v cargo >/dev/null || ! command -v rustc >/dev/null; then
        say "cargo and rustc not found: install Rust ${need:-stable} or newer from https://rustup.rs"
        say "  (curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh; then . \"\$HOME/.cargo/env\") and run again"
        exit 1
    fi
    have=$(rustc --version | awk '{print $2}')
    have=${have%%-*} # 1.95.0-nightly -> 1.95.0
    if [ -n "$need" ] && ! version_at_least "$have" "$need"; then
        if command -v rustup >/dev/null; then
            say "rustc $have is older than the rust-version $need of Cargo.toml: run 'rustup update stable' and run again"
        else
            say "rustc $have is older than the rust-version $need of Cargo.toml (Debian's rustc is too old):"
            say "  install Rust from https://rustup.rs, make sure ~/.cargo/bin comes first in PATH, and run again"
        fi
        exit 1
    fi
}

ensure_build_tools() {
    ensure_rust
    local missing=()
    # rustc links with cc; Debian's gcc provides it (libc6-dev: the C library it links against).
    { command -v gcc >/dev/null && command -v cc >/dev/null; } || missing+=(gcc libc6-dev)
    # jemalloc, the server's allocator, is built from its C sources with make
    command -v make >/dev/null || missing+=(make)
    command -v curl >/dev/null || missing+=(curl)
    # scripts/schemathesis makes a venv: Debian's python3 lacks ensurepip without python3-venv.
    if [ ! -x "$ROOT/.venv/bin/st" ] && ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
        missing+=(python3-venv)
    fi
    if [ "${#missing[@]}" -gt 0 ]; then apt_install "${missing[@]}"; fi
}

ensure_build_tools

pg_bin() {
    local name=$1
    if command -v "$name" >/dev/null; then command -v "$name"; return; fi
    ls /usr/lib/postgresql/*/bin/"$name" 2>/dev/null | sort -V | tail -n 1
}

pg_answers() { # port
    local isready
    isready=$(pg_bin pg_isready)
    [ -n "$isready" ] && "$isready" -q -h 127.0.0.1 -p "$1" -t 2 >/dev/null 2>&1
}

psql_do() { # port db sql
    "$(pg_bin psql)" -w -v ON_ERROR_STOP=1 -q -h 127.0.0.1 -p "$1" -U postgres -d "$2" -Atc "$3"
}

# Where the private cluster's data lives: .local/pg-PORT, or, when we are root and the postgres
# user cannot enter .local/ (e.g. a clone under /root, mode 0700), /var/lib/hereabouts/pg-PORT.
# The same answer on every run, so a second run finds the data (and the instance) of the first.
pg_data_dir() {
    if [ "$(id -u)" -eq 0 ] && ! runuser -u postgres -- test -x "$LOCAL" 2>/dev/null; then
        echo "/var/lib/hereabouts/pg-$HB_PG_PORT"
    else
        echo "$LOCAL/pg-$HB_PG_PORT"
    fi
}

start_private_postgres() {
    local run_as=()
    if [ "$(id -u)" -eq 0 ]; then
        id postgres >/dev/null 2>&1 || useradd --system --no-create-home --home-dir /var/lib/postgresql postgres
        run_as=(runuser -u postgres --)
    fi
    local data
    data=$(pg_data_dir)
    case "$data" in
        "$LOCAL"/*) ;;
        *) say "the postgres user cannot enter $LOCAL: the private PostgreSQL's data lives in $data" ;;
    esac
    if [ ! -f "$data/PG_VERSION" ]; then
        say "initialising a private PostgreSQL in $data"
        mkdir -p "$data"
        if [ "$(id -u)" -eq 0 ]; then chown postgres "$data"; fi
        chmod 700 "$data"
        (cd / && "${run_as[@]}" "$(pg_bin initdb)" -D "$data" -U postgres --auth=trust -E UTF8 >/dev/null)
    fi
    say "starting a private PostgreSQL on 127.0.0.1:$HB_PG_PORT (log: $data/server.log)"
    (cd / && "${run_as[@]}" "$(pg_bin pg_ctl)" -D "$data" -l "$data/server.log" -w -t 60 \
        -o "-p $HB_PG_PORT -k $data -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off" start >/dev/null) || {
        say "PostgreSQL did not start; see $data/server.log"
        exit 1
    }
    HB_STARTED+=("postgres $data")
}

# We create databases as the superuser postgres without a password; a server that wants one (or
# has no such role) is not ours to use: say what to do rather than fail later.
check_postgres_access() {
    local err
    if err=$(psql_do "$HB_PG_PORT" postgres "SELECT 1" 2>&1 >/dev/null); then return; fi
    say "a PostgreSQL answers on 127.0.0.1:$HB_PG_PORT but refuses passwordless access as user postgres:"
    say "  ${err%%$'\n'*}"
    say "either set HEREABOUTS_DATABASE_URL and HEREABOUTS_TEST_DATABASE_URL with a password"
    say "  (e.g. postgres://USER:PASSWORD@127.0.0.1:$HB_PG_PORT/hereabouts and ...@127.0.0.1:$HB_PG_PORT/postgres,"
    say "  USER being allowed to create databases), or pick a free port, e.g. HB_PG_PORT=55432,"
    say "  to get a private PostgreSQL started for you"
    exit 1
}

ensure_postgres() {
    if [ -z "$(pg_bin pg_ctl)" ] || [ -z "$(pg_bin psql)" ] || [ -z "$(pg_bin initdb)" ]; then
        apt_install postgresql
    fi
    if ! pg_answers "$HB_PG_PORT"; then start_private_postgres; fi
    if [ -z "${HEREABOUTS_DATABASE_URL:-}" ] || [ -z "${HEREABOUTS_TEST_DATABASE_URL:-}" ]; then
        check_postgres_access
    fi
    if [ -z "${HEREABOUTS_DATABASE_URL:-}" ]; then
        if [ "$(psql_do "$HB_PG_PORT" postgres "SELECT 1 FROM pg_database WHERE datname = 'hereabouts'")" != 1 ]; then
            psql_do "$HB_PG_PORT" postgres "CREATE DATABASE hereabouts"
        fi
        export HEREABOUTS_DATABASE_URL="postgres://postgres@127.0.0.1:$HB_PG_PORT/hereabouts"
    fi
    export HEREABOUTS_TEST_DATABASE_URL=${HEREABOUTS_TEST_DATABASE_URL:-"postgres://postgres@127.0.0.1:$HB_PG_PORT/postgres"}
    say "PostgreSQL answers on 127.0.0.1:$HB_PG_PORT"
}
redis_answers() { # port
    [ "$(redis-cli -h 127.0.0.1 -p "$1" --no-auth-warning ping 2>/dev/null)" = PONG ]
}

ensure_redis() {
    if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
        apt_install redis-server
    fi
    if ! redis_answers "$HB_REDIS_PORT"; then
        local dir="$LOCAL/redis-$HB_REDIS_PORT"
        mkdir -p "$dir"
        say "starting a private Redis on 127.0.0.1:$HB_REDIS_PORT"
        redis-server --port "$HB_REDIS_PORT" --bind 127.0.0.1 --daemonize yes --dir "$dir" \
            --save "" --appendonly no --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
        HB_STARTED+=("redis $dir/redis.pid")
        for _ in $(seq 50); do redis_answers "$HB_REDIS_PORT" && break; sleep 0.1; done
        redis_answers "$HB_REDIS_PORT" || { say "Redis did not start; see $dir/redis.log"; exit 1; }
    fi
    export HEREABOUTS_REDIS_URL=${HEREABOUTS_REDIS_URL:-"redis://127.0.0.1:$HB_REDIS_PORT"}
    export HEREABOUTS_TEST_REDIS_URL=${HEREABOUTS_TEST_REDIS_URL:-"redis://127.0.0.1:$HB_REDIS_PORT"}
    say "Redis answers on 127.0.0.1:$HB_REDIS_PORT"
}

# A local 3-master Redis Cluster on 127.0.0.1:$HB_CLUSTER_PORT..+2 (default 7101-7103), data under
# .local/cluster-PORT; reused when it already answers with cluster_state:ok.
# HB_CLUSTER_MASTERS=N (default 3) makes it N masters (scripts/bench compares 1 and 3).
HB_CLUSTER_PORT=${HB_CLUSTER_PORT:-7101}
cluster_ok() {
    redis-cli -h 127.0.0.1 -p "$HB_CLUSTER_PORT" cluster info 2>/dev/null | grep -q 'cluster_state:ok'
}
ensure_redis_cluster() {
    local ports=() i
    for ((i = 0; i < ${HB_CLUSTER_MASTERS:-3}; i++)); do ports+=("$((HB_CLUSTER_PORT + i))"); done
    if ! cluster_ok; then
        local nodes=()
        for p in "${ports[@]}"; do
            local dir="$LOCAL/cluster-$p"
            if ! redis_answers "$p"; then
                rm -rf "$dir" && mkdir -p "$dir"
                redis-server --port "$p" --bind 127.0.0.1 --daemonize yes --dir "$dir" --save "" --appendonly no \
                    --cluster-enabled yes --cluster-config-file "$dir/nodes.conf" --cluster-node-timeout 2000 \
                    --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
                HB_STARTED+=("redis $dir/redis.pid")
            fi
            nodes+=("127.0.0.1:$p")
        done
        for p in "${ports[@]}"; do
            for _ in $(seq 50); do redis_answers "$p" && break; sleep 0.1; done
        done
        say "creating a local Redis Cluster on ${nodes[*]}"
        redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes >/dev/null
        for _ in $(seq 100); do cluster_ok && break; sleep 0.1; done
        cluster_ok || { say "the Redis Cluster did not become ready"; exit 1; }
    fi
    HEREABOUTS_TEST_REDIS_CLUSTER_URL=$(printf 'redis://127.0.0.1:%s,' "${ports[@]}")
    export HEREABOUTS_TEST_REDIS_CLUSTER_URL=${HEREABOUTS_TEST_REDIS_CLUSTER_URL%,}
    say "Redis Cluster answers on 127.0.0.1:${ports[0]}-${ports[-1]}"
}

# The browser test's tools: Debian's chromium, Node.js and npm (installed with apt-get only when
# missing), and tests/browser's pinned playwright-core (npm ci, only when its lockfile changed).
ensure_browser_tools() {
    local missing=()
    command -v chromium >/dev/null || missing+=(chromium)
    command -v node >/dev/null || missing+=(nodejs)
    command -v npm >/dev/null || missing+=(npm)
    if [ "${#missing[@]}" -gt 0 ]; then apt_install "${missing[@]}"; fi
    export HB_CHROMIUM=${HB_CHROMIUM:-$(command -v chromium)}
    local dir="$ROOT/tests/browser"
    if ! cmp -s "$dir/package-lock.json" "$dir/node_modules/.hb-installed-lock" 2>/dev/null; then
        say "npm ci in tests/browser"
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
        cp "$dir/package-lock.json" "$dir/node_modules/.hb-installed-lock"
    fi
    say "chromium $("$HB_CHROMIUM" --version 2>/dev/null | awk '{print $2}'), node $(node --version)"
}

# HAProxy for the fault suite's load-balanced scenario (two API instances behind it): Debian's
# package, installed with apt-get only when missing; the suite starts its own on a free port.
ensure_haproxy() {
    if ! command -v haproxy >/dev/null && [ ! -x /usr/sbin/haproxy ]; then apt_install haproxy; fi
    command -v redis-cli >/dev/null || apt_install redis-tools
    local bin
    bin=$(command -v haproxy || echo /usr/sbin/haproxy)
    say "haproxy $("$bin" -v 2>/dev/null | awk 'NR==1{print $3}')"
}

# Unlinks every key under a prefix on one Redis node. Keys may be binary (the index's record keys
# hold a user's 16 bytes), so no text pipe: a script scans one step and unlinks what it found,
# the shell carries the cursor (a node's SCAN returns its own keys, so a cluster node serves them).
redis_unlink_prefix() { # host port prefix
    local cursor=0
    for _ in $(seq 1000000); do
        cursor=$(redis-cli -h "$1" -p "$2" --no-auth-warning EVAL "#!lua flags=allow-cross-slot-keys
local r = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[2], 'COUNT', 1000)
for _, k in ipairs(r[2]) do redis.call('UNLINK', k) end
return r[1]" 0 "$cursor" "$3:*") || return 1
        [ "$cursor" = 0 ] && return 0
    done
}

# A free TCP port on loopback (the kernel picks it; a race with another binder is unlikely).
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
