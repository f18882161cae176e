#!/usr/bin/env bash
# shellcheck shell=bash
#
# Throwaway PostgreSQL and Redis for Tollgate's tests and benchmarks.
#
# Source this file (it is `set -euo pipefail` friendly), then:
#
#   tg_ensure_packages [wrk ...]   install postgresql/redis-server (and extras) via apt if missing
#   tg_start_postgres              reuse $TOLLGATE_TEST_POSTGRES_URL if reachable, else start a
#                                  private cluster and export the URL (database tollgate_test)
#   tg_start_redis                 reuse $TOLLGATE_TEST_REDIS_URL if it answers PING, else start a
#                                  private redis-server and export the URL
#   tg_stop_services               stop only what the two functions above started; idempotent
#   tg_services_trap               trap tg_stop_services on EXIT (and turn INT/TERM/HUP into exits)
#   tg_redis_down / tg_redis_up    stop / start again (same port, empty) the redis tg_start_redis
#                                  started; refuse to touch one it did not start (fault tests)
#   tg_postgres_down / tg_postgres_up
#                                  the same for the private PostgreSQL cluster (data kept)
#
# Call tg_start_* directly in the main shell (not inside $(...) or a pipeline): they record
# state in shell variables that tg_stop_services needs.
#
# Everything is bound to 127.0.0.1. Progress goes to stderr, prefixed "[services]".
#
# Tunables (env):
#   TG_SERVICES_TIMEOUT   seconds to wait for a server to become ready (default 30)
#   TG_SERVICES_KEEP=1    leave the temp dirs (logs) behind after stopping

# State. Guarded so that sourcing the file twice does not forget started services.
: "${TG_PG_STARTED:=0}"
: "${TG_PG_DIR:=}"
: "${TG_PG_BINDIR:=}"
: "${TG_REDIS_STARTED:=0}"
: "${TG_REDIS_PID:=}"
: "${TG_REDIS_DIR:=}"
: "${TG_REDIS_PORT:=}"
: "${TG_APT_UPDATED:=0}"

_tg_log() { printf '[services] %s\n' "$*" >&2; }

# Log an error (always succeeds; callers follow it with `return 1`).
_tg_err() { _tg_log "error: $*"; }

_tg_timeout() { printf '%s' "${TG_SERVICES_TIMEOUT:-30}"; }

# Print the bin directory of the newest PostgreSQL in /usr/lib/postgresql, or of the one on PATH.
_tg_pg_bindir() {
    local dir best=""
    for dir in /usr/lib/postgresql/*/bin; do
        [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]] || continue
        if [[ -z "$best" ]] || [[ "$(printf '%s\n%s\n' "$best" "$dir" | sort -V | tail -n1)" == "$dir" ]]; then
            best="$dir"
        fi
    done
    if [[ -z "$best" ]] && command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        best="$(dirname "$(command -v initdb)")"
    fi
    [[ -n "$best" ]] || return 1
    printf '%s\n' "$best"
}

# Run a command as root, via sudo when we are not root.
_tg_as_root() {
    if [[ "$(id -u)" -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        _tg_err "need root (or sudo) to run: $*"
        return 1
    fi
}

# tg_ensure_packages [extra-command[:package] ...]
# Installs postgresql / redis-server when their binaries are missing, plus any extra
# command given (e.g. `tg_ensure_packages wrk`, where the Debian package has the same name, or
# `tg_ensure_packages chromedriver:chromium-driver`, where it does not).
tg_ensure_packages() {
    local -a pkgs=()
    local extra
    if ! _tg_pg_bindir >/dev/null || ! command -v psql >/dev/null 2>&1 \
        || ! command -v pg_isready >/dev/null 2>&1; then
        pkgs+=(postgresql postgresql-client)
    fi
    if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
        pkgs+=(redis-server redis-tools)
    fi
    local -a cmds=()
    for extra in "$@"; do
        cmds+=("${extra%%:*}")
        command -v "${extra%%:*}" >/dev/null 2>&1 || pkgs+=("${extra#*:}")
    done
    if ((${#pkgs[@]} == 0)); then
        return 0
    fi
    command -v apt-get >/dev/null 2>&1 || { _tg_err "missing ${pkgs[*]} and no apt-get to install them"; return 1; }
    if [[ "$TG_APT_UPDATED" != 1 ]]; then
        _tg_log "apt-get update"
        _tg_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || { _tg_err "apt-get update failed"; return 1; }
        TG_APT_UPDATED=1
    fi
    _tg_log "installing ${pkgs[*]}"
    _tg_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >&2 \
        || { _tg_err "apt-get install ${pkgs[*]} failed"; return 1; }
    _tg_pg_bindir >/dev/null || { _tg_err "initdb/pg_ctl still missing after install"; return 1; }
    for extra in psql pg_isready redis-server redis-cli "${cmds[@]}"; do
        command -v "$extra" >/dev/null 2>&1 || { _tg_err "$extra still missing after install"; return 1; }
    done
}

# Print a TCP port on 127.0.0.1 that is free right now.
_tg_free_port() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()' && return 0
    fi
    # Fallback: probe random high ports with bash's /dev/tcp (a refused connection means free).
    local i port
    for ((i = 0; i < 200; i++)); do
        port=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            printf '%s\n' "$port"
            return 0
        fi
    done
    _tg_err "could not find a free TCP port"
    return 1
}

# Is the PostgreSQL at URL reachable (and the database there)?
_tg_pg_reachable() {
    local url="$1"
    if command -v psql >/dev/null 2>&1; then
        PGCONNECT_TIMEOUT=3 timeout 10 psql "$url" -XqtAc 'select 1' >/dev/null 2>&1
    else
        timeout 10 pg_isready -q -t 3 -d "$url" >/dev/null 2>&1
    fi
}

_tg_redis_reachable() {
    local url="$1"
    [[ "$(timeout 5 redis-cli -u "$url" ping 2>/dev/null)" == PONG ]]
}

# Run a command as the `postgres` OS user when we are root (postgres refuses to run as root).
_tg_as_pg_user() {
    if [[ "$(id -u)" -eq 0 ]]; then
        if command -v runuser >/dev/null 2>&1; then
            runuser -u postgres -- "$@"
        else
            local q
            q="$(printf '%q ' "$@")"
            su -s /bin/sh postgres -c "$q"
        fi
    else
        "$@"
    fi
}

_tg_ensure_pg_os_user() {
    [[ "$(id -u)" -eq 0 ]] || return 0
    id -u postgres >/dev/null 2>&1 && return 0
    _tg_log "creating OS user postgres"
    if command -v useradd >/dev/null 2>&1; then
        useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin postgres
    else
        adduser --system --group --no-create-home --home /nonexistent postgres
    fi
}

tg_start_postgres() {
    local timeout
    timeout="$(_tg_timeout)"
    if [[ "$TG_PG_STARTED" == 1 ]]; then
        _tg_log "postgres already started by us at ${TOLLGATE_TEST_POSTGRES_URL:-?}"
        return 0
    fi
    if [[ -n "${TOLLGATE_TEST_POSTGRES_URL:-}" ]]; then
        if _tg_pg_reachable "$TOLLGATE_TEST_POSTGRES_URL"; then
            _tg_log "using existing postgres from TOLLGATE_TEST_POSTGRES_URL"
            return 0
        fi
        _tg_log "TOLLGATE_TEST_POSTGRES_URL is set but unreachable; starting a private cluster instead"
    fi

    TG_PG_BINDIR="$(_tg_pg_bindir)" || { _tg_err "initdb/pg_ctl not found (run tg_ensure_packages)"; return 1; }
    _tg_ensure_pg_os_user || return 1

    local base dir port attempt ok=0 i
    # The data dir must be reachable by the postgres user: keep it under /tmp when root
    # (TMPDIR may point into /root).
    if [[ "$(id -u)" -eq 0 ]]; then base=/tmp; else base="${TMPDIR:-/tmp}"; fi
    dir="$(mktemp -d "$base/tollgate-pg.XXXXXX")" || return 1
    chmod 755 "$dir"
    TG_PG_DIR="$dir"
    mkdir -p "$dir/sock"
    if [[ "$(id -u)" -eq 0 ]]; then chown -R postgres: "$dir"; fi

    _tg_log "initdb in $dir ($TG_PG_BINDIR)"
    if ! _tg_as_pg_user "$TG_PG_BINDIR/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-locale \
        >"$dir/initdb.log" 2>&1; then
        cat "$dir/initdb.log" >&2
        _tg_err "initdb failed"
        return 1
    fi
    # Trust, but only over the private socket directory and 127.0.0.1.
    _tg_as_pg_user sh -c "cat > '$dir/data/pg_hba.conf'" <<'EOF'
local   all all              trust
host    all all 127.0.0.1/32 trust
EOF

    for attempt in 1 2 3; do
        port="$(_tg_free_port)" || return 1
        _tg_as_pg_user sh -c "cat > '$dir/data/postgresql.auto.conf'" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir/sock'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 300
shared_buffers = 128MB
log_min_messages = warning
EOF
        _tg_log "starting postgres on 127.0.0.1:$port (attempt $attempt)"
        if _tg_as_pg_user "$TG_PG_BINDIR/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -s -w -t "$timeout" start \
            >/dev/null 2>&1; then
            ok=1
            break
        fi
        # A failed start may still have left a postmaster behind (e.g. slow start past -t).
        _tg_as_pg_user "$TG_PG_BINDIR/pg_ctl" -D "$dir/data" -s -m immediate stop >/dev/null 2>&1 || true
        tail -n 20 "$dir/postgres.log" >&2 2>/dev/null || true
    done
    if [[ "$ok" != 1 ]]; then
        _tg_err "postgres did not start (log: $dir/postgres.log)"
        return 1
    fi
    TG_PG_STARTED=1

    ok=0
    for ((i = 0; i < timeout * 4; i++)); do
        if pg_isready -q -h 127.0.0.1 -p "$port" -t 1 >/dev/null 2>&1; then
            ok=1
            break
        fi
        sleep 0.25
    done
    [[ "$ok" == 1 ]] || { _tg_err "postgres on port $port not ready after ${timeout}s"; return 1; }

    if ! psql -Xq -h 127.0.0.1 -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 \
        -c 'CREATE DATABASE tollgate_test' >/dev/null; then
        _tg_err "could not create database tollgate_test"
        return 1
    fi
    export TOLLGATE_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/tollgate_test"
    _tg_log "postgres ready: $TOLLGATE_TEST_POSTGRES_URL"
}

tg_start_redis() {
    local timeout
    timeout="$(_tg_timeout)"
    if [[ "$TG_REDIS_STARTED" == 1 ]]; then
        _tg_log "redis already started by us at ${TOLLGATE_TEST_REDIS_URL:-?}"
        return 0
    fi
    if [[ -n "${TOLLGATE_TEST_REDIS_URL:-}" ]]; then
        if _tg_redis_reachable "$TOLLGATE_TEST_REDIS_URL"; then
            _tg_log "using existing redis from TOLLGATE_TEST_REDIS_URL"
            return 0
        fi
        _tg_log "TOLLGATE_TEST_REDIS_URL is set but does not answer PING; starting a private redis instead"
    fi
    command -v redis-server >/dev/null 2>&1 || { _tg_err "redis-server not found (run tg_ensure_packages)"; return 1; }

    local dir port attempt pid ok=0 i
    dir="$(mktemp -d "${TMPDIR:-/tmp}/tollgate-redis.XXXXXX")" || return 1
    TG_REDIS_DIR="$dir"
    for attempt in 1 2 3; do
        port="$(_tg_free_port)" || return 1
        _tg_log "starting redis on 127.0.0.1:$port (attempt $attempt)"
        redis-server --bind 127.0.0.1 --port "$port" --protected-mode yes \
            --save '' --appendonly no --daemonize no \
            --dir "$dir" --logfile "$dir/redis.log" \
            --maxclients 10000 \
            </dev/null >/dev/null 2>&1 &
        pid=$!
        TG_REDIS_PID="$pid"
        TG_REDIS_STARTED=1
        for ((i = 0; i < timeout * 4; i++)); do
            if ! kill -0 "$pid" 2>/dev/null; then
                break
            fi
            if [[ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" == PONG ]]; then
                ok=1
                break
            fi
            sleep 0.25
        done
        [[ "$ok" == 1 ]] && break
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        TG_REDIS_PID=""
        TG_REDIS_STARTED=0
        tail -n 20 "$dir/redis.log" >&2 2>/dev/null || true
    done
    [[ "$ok" == 1 ]] || { _tg_err "redis did not start (log: $dir/redis.log)"; return 1; }
    TG_REDIS_PORT="$port"
    export TOLLGATE_TEST_REDIS_URL="redis://127.0.0.1:$port/"
    _tg_log "redis ready: $TOLLGATE_TEST_REDIS_URL (pid $pid)"
}

# Stop the redis that tg_start_redis started (SIGTERM, then SIGKILL after 10 s), keeping its
# port and directory for tg_redis_up.
tg_redis_down() {
    local i
    if [[ "$TG_REDIS_STARTED" != 1 || -z "$TG_REDIS_PID" ]]; then
        _tg_err "tg_redis_down: no running redis started by this shell"
        return 1
    fi
    _tg_log "stopping redis (pid $TG_REDIS_PID) for a fault"
    kill "$TG_REDIS_PID" 2>/dev/null || true
    for ((i = 0; i < 40; i++)); do
        kill -0 "$TG_REDIS_PID" 2>/dev/null || break
        sleep 0.25
    done
    kill -9 "$TG_REDIS_PID" 2>/dev/null || true
    wait "$TG_REDIS_PID" 2>/dev/null || true
    TG_REDIS_PID=""
}

# Start redis again on the port tg_start_redis chose (empty: it never persists), and wait
# until it answers PING.
tg_redis_up() {
    local i timeout pid
    timeout="$(_tg_timeout)"
    if [[ "$TG_REDIS_STARTED" != 1 || -n "$TG_REDIS_PID" || -z "$TG_REDIS_PORT" ]]; then
        _tg_err "tg_redis_up: no stopped redis started by this shell"
        return 1
    fi
    _tg_log "starting redis again on 127.0.0.1:$TG_REDIS_PORT"
    redis-server --bind 127.0.0.1 --port "$TG_REDIS_PORT" --protected-mode yes \
        --save '' --appendonly no --daemonize no \
        --dir "$TG_REDIS_DIR" --logfile "$TG_REDIS_DIR/redis.log" \
        --maxclients 10000 \
        </dev/null >/dev/null 2>&1 &
    pid=$!
    TG_REDIS_PID="$pid"
    for ((i = 0; i < timeout * 4; i++)); do
        [[ "$(redis-cli -h 127.0.0.1 -p "$TG_REDIS_PORT" ping 2>/dev/null)" == PONG ]] && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.25
    done
    _tg_err "redis did not come back on port $TG_REDIS_PORT"
    return 1
}

# Stop the private PostgreSQL cluster (fast shutdown: sessions are cut), keeping its data.
tg_postgres_down() {
    if [[ "$TG_PG_STARTED" != 1 || -z "$TG_PG_DIR" ]]; then
        _tg_err "tg_postgres_down: no postgres started by this shell"
        return 1
    fi
    _tg_log "stopping postgres ($TG_PG_DIR) for a fault"
    _tg_as_pg_user "$TG_PG_BINDIR/pg_ctl" -D "$TG_PG_DIR/data" -s -m fast -w -t 30 stop >/dev/null
}

# Start the private PostgreSQL cluster again and wait until it accepts connections.
tg_postgres_up() {
    local timeout
    timeout="$(_tg_timeout)"
    if [[ "$TG_PG_STARTED" != 1 || -z "$TG_PG_DIR" ]]; then
        _tg_err "tg_postgres_up: no postgres started by this shell"
        return 1
    fi
    _tg_log "starting postgres again ($TG_PG_DIR)"
    _tg_as_pg_user "$TG_PG_BINDIR/pg_ctl" -D "$TG_PG_DIR/data" -l "$TG_PG_DIR/postgres.log" -s -w -t "$timeout" start \
        >/dev/null
}

tg_stop_services() {
    # Must never fail or abort the caller's EXIT trap.
    local - i
    set +e
    if [[ "$TG_REDIS_STARTED" == 1 && -n "$TG_REDIS_PID" ]]; then
        _tg_log "stopping redis (pid $TG_REDIS_PID)"
        kill "$TG_REDIS_PID" 2>/dev/null
        for ((i = 0; i < 40; i++)); do
            kill -0 "$TG_REDIS_PID" 2>/dev/null || break
            sleep 0.25
        done
        if kill -0 "$TG_REDIS_PID" 2>/dev/null; then
            _tg_log "redis did not exit; killing"
            kill -9 "$TG_REDIS_PID" 2>/dev/null
        fi
        wait "$TG_REDIS_PID" 2>/dev/null
    fi
    TG_REDIS_STARTED=0
    TG_REDIS_PID=""
    if [[ -n "$TG_REDIS_DIR" && -d "$TG_REDIS_DIR" && "${TG_SERVICES_KEEP:-0}" != 1 ]]; then
        rm -rf -- "$TG_REDIS_DIR"
    fi
    TG_REDIS_DIR=""

    if [[ "$TG_PG_STARTED" == 1 && -n "$TG_PG_DIR" && -d "$TG_PG_DIR/data" ]]; then
        _tg_log "stopping postgres ($TG_PG_DIR)"
        if ! _tg_as_pg_user "$TG_PG_BINDIR/pg_ctl" -D "$TG_PG_DIR/data" -s -m fast -w -t 30 stop >/dev/null 2>&1; then
            local pmpid
            pmpid="$(head -n1 "$TG_PG_DIR/data/postmaster.pid" 2>/dev/null)"
            if [[ "$pmpid" =~ ^[0-9]+$ ]]; then
                _tg_log "pg_ctl stop failed; killing postmaster $pmpid"
                kill -9 "$pmpid" 2>/dev/null
            fi
        fi
    fi
    TG_PG_STARTED=0
    if [[ -n "$TG_PG_DIR" && -d "$TG_PG_DIR" && "${TG_SERVICES_KEEP:-0}" != 1 ]]; then
        rm -rf -- "$TG_PG_DIR"
    fi
    TG_PG_DIR=""
    return 0
}

# Install tg_stop_services as the EXIT trap, plus `$1` (an extra cleanup command, run first).
# INT/TERM/HUP become ordinary exits so that the EXIT trap runs.
tg_services_trap() {
    local extra="${1:-}"
    if [[ -n "$extra" ]]; then
        # shellcheck disable=SC2064  # expand $extra now, on purpose
        trap "$extra; tg_stop_services" EXIT
    else
        trap tg_stop_services EXIT
    fi
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
}
