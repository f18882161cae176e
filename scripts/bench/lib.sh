#!/usr/bin/env bash
# shellcheck shell=bash
#
# Shared plumbing for Tollgate benchmarks (client-credentials, private_key_jwt, introspection, soak).
# Source it from a bench script, then typically:
#
#   bench_setup client-credentials          # backends + build + fresh DB + server + tenant/server
#   body="$(bench_admin_post "/admin/tenants/$BENCH_TENANT/servers/$BENCH_SERVER/clients" "$json")"
#   bench_wrk 64 20 scripts/bench/foo.lua "$BENCH_GATEWAY_URL/..." "$BENCH_OUT_DIR/foo.c64.wrk.txt"
#   bench_wrk_row "$BENCH_OUT_DIR/foo.c64.wrk.txt" 64   # -> "64 1234.56 1.23 4.56 0 0"
#
# bench_setup installs an EXIT trap (bench_cleanup) that kills the server, drops the database and
# stops the PostgreSQL/Redis that this run started. Everything talks to 127.0.0.1 only.
#
# Env knobs:
#   TOLLGATE_BIN          binary to run (default: target/release/tollgate, built by bench_build)
#   BENCH_SKIP_BUILD=1    do not run `cargo build --release -p tollgate-cli`
#   BENCH_SERVER_ARGS     extra arguments appended to `tollgate serve` (word-split)
#   TOLLGATE_RATE_LIMIT_CLIENT_PER_SECOND, TOLLGATE_RATE_LIMIT_ADDRESS_PER_SECOND
#                         default 1000000 here: the limiter runs but does not refuse the load
#   BENCH_TENANT          tenant id to create (default bench)
#   BENCH_SERVER          authorization server id to create (default main)
#   BENCH_KEEP_DB=1       do not drop the bench database at exit
#   BENCH_STORE=memory    run with the in-process short-lived store (default: redis)
#
# Exported after bench_setup:
#   BENCH_ROOT BENCH_OUT_DIR BENCH_RUN_DIR BENCH_DATABASE_NAME BENCH_DATABASE_URL
#   BENCH_ADMIN_TOKEN BENCH_GATEWAY_URL BENCH_ADMIN_URL BENCH_SERVER_PID BENCH_SERVER_LOG
#   BENCH_TENANT BENCH_SERVER  (+ TOLLGATE_TEST_POSTGRES_URL, TOLLGATE_TEST_REDIS_URL)

BENCH_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export BENCH_ROOT
# shellcheck source-path=SCRIPTDIR/../.. source=scripts/lib/services.sh
source "$BENCH_ROOT/scripts/lib/services.sh"

: "${BENCH_SERVER_PID:=}"
: "${BENCH_DATABASE_NAME:=}"
: "${BENCH_RUN_DIR:=}"
: "${BENCH_DB_CREATED:=0}"

bench_log() { printf '[bench] %s\n' "$*" >&2; }

bench_fail() {
    bench_log "error: $*"
    exit 1
}

# Common curl options: bounded, never through a proxy, 127.0.0.1 only.
_bench_curl() { curl -sS --noproxy '*' --connect-timeout 5 --max-time 30 "$@"; }

# bench_json_field FIELD  (JSON on stdin) -> value on stdout; fails if absent.
bench_json_field() {
    python3 -c '
import json, sys
v = json.load(sys.stdin).get(sys.argv[1])
if v is None:
    sys.exit("field %r missing" % sys.argv[1])
print(v if isinstance(v, str) else json.dumps(v))' "$1"
}

# Seconds as an integer from "20", "20s", "2m".
bench_seconds() {
    local v="$1"
    case "$v" in
    *m) echo $((${v%m} * 60)) ;;
    *s) echo "${v%s}" ;;
    *) echo "$v" ;;
    esac
}

bench_init() {
    BENCH_NAME="${1:?bench name}"
    export BENCH_NAME
    export BENCH_OUT_DIR="$BENCH_ROOT/target/bench"
    mkdir -p "$BENCH_OUT_DIR"
    BENCH_RUN_DIR="$(mktemp -d "${TMPDIR:-/tmp}/tollgate-bench.XXXXXX")"
    export BENCH_RUN_DIR
    export BENCH_TENANT="${BENCH_TENANT:-bench}"
    export BENCH_SERVER="${BENCH_SERVER:-main}"
    tg_services_trap bench_cleanup
    # Say where a `set -e` abort happened instead of dying silently.
    set -o errtrace
    trap 'bench_log "command failed (exit $?) at ${BASH_SOURCE[0]##*/}:$LINENO: $BASH_COMMAND"' ERR
    command -v curl >/dev/null 2>&1 || tg_ensure_packages curl
    command -v python3 >/dev/null 2>&1 || bench_fail "python3 is required"
}

bench_build() {
    if [[ -n "${TOLLGATE_BIN:-}" ]]; then
        [[ -x "$TOLLGATE_BIN" ]] || bench_fail "TOLLGATE_BIN=$TOLLGATE_BIN is not executable"
        bench_log "using TOLLGATE_BIN=$TOLLGATE_BIN"
        return 0
    fi
    export TOLLGATE_BIN="$BENCH_ROOT/target/release/tollgate"
    if [[ "${BENCH_SKIP_BUILD:-0}" == 1 ]]; then
        bench_log "BENCH_SKIP_BUILD=1: not building"
    else
        bench_log "cargo build --release -p tollgate-cli"
        (cd "$BENCH_ROOT" && cargo build --release -p tollgate-cli)
    fi
    [[ -x "$TOLLGATE_BIN" ]] || bench_fail "$TOLLGATE_BIN missing"
}

bench_start_backends() {
    tg_ensure_packages wrk
    tg_start_postgres
    tg_start_redis
}

# Create a fresh database tollgate_bench_<pid> next to TOLLGATE_TEST_POSTGRES_URL's.
bench_create_database() {
    export BENCH_DATABASE_NAME="tollgate_bench_$$"
    BENCH_DATABASE_URL="$(python3 -c '
import sys, urllib.parse as u
p = u.urlsplit(sys.argv[1])
print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$TOLLGATE_TEST_POSTGRES_URL" "$BENCH_DATABASE_NAME")"
    export BENCH_DATABASE_URL
    bench_log "creating database $BENCH_DATABASE_NAME"
    PGOPTIONS='-c client_min_messages=warning' psql "$TOLLGATE_TEST_POSTGRES_URL" -Xq -v ON_ERROR_STOP=1 \
        -c "DROP DATABASE IF EXISTS $BENCH_DATABASE_NAME" \
        -c "CREATE DATABASE $BENCH_DATABASE_NAME" >/dev/null
    BENCH_DB_CREATED=1
}

_bench_parse_url() {
    # $1: phrase before the URL; prints the first URL after it in the server log.
    sed 's/\x1b\[[0-9;]*m//g' "$BENCH_SERVER_LOG" 2>/dev/null \
        | grep -oE "$1 listening on http://[0-9.]+:[0-9]+" | head -n1 | sed 's/.* listening on //' || true
}

bench_start_server() {
    BENCH_ADMIN_TOKEN="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    export BENCH_ADMIN_TOKEN
    export BENCH_SERVER_LOG="$BENCH_OUT_DIR/$BENCH_NAME.server.log"
    local master_key
    master_key="$(head -c 32 /dev/urandom | base64)"
    local -a extra=()
    # shellcheck disable=SC2206  # word splitting of BENCH_SERVER_ARGS is intended
    [[ -n "${BENCH_SERVER_ARGS:-}" ]] && extra=($BENCH_SERVER_ARGS)
    local -a store=(--redis-url "$TOLLGATE_TEST_REDIS_URL")
    [[ "${BENCH_STORE:-redis}" == memory ]] && store=()
    bench_log "starting $TOLLGATE_BIN serve (log: $BENCH_SERVER_LOG)"
    # The load comes from one address and a few clients: raise the rate limits (through the
    # environment, so that BENCH_SERVER_ARGS can still set the flags) so that the limiter
    # runs — its Redis round trip is part of every request — but never refuses.
    TOLLGATE_RATE_LIMIT_CLIENT_PER_SECOND="${TOLLGATE_RATE_LIMIT_CLIENT_PER_SECOND:-1000000}" \
        TOLLGATE_RATE_LIMIT_ADDRESS_PER_SECOND="${TOLLGATE_RATE_LIMIT_ADDRESS_PER_SECOND:-1000000}" \
        "$TOLLGATE_BIN" serve \
        --public-addr 127.0.0.1:0 \
        --admin-addr 127.0.0.1:0 \
        --database-url "$BENCH_DATABASE_URL" \
        "${store[@]}" \
        --master-key "$master_key" \
        --admin-token "$BENCH_ADMIN_TOKEN" \
        "${extra[@]}" \
        </dev/null >"$BENCH_SERVER_LOG" 2>&1 &
    BENCH_SERVER_PID=$!
    export BENCH_SERVER_PID

    local i gw="" admin=""
    for ((i = 0; i < 120; i++)); do
        gw="$(_bench_parse_url gateway)"
        admin="$(_bench_parse_url 'admin API')"
        [[ -n "$gw" && -n "$admin" ]] && break
        if ! kill -0 "$BENCH_SERVER_PID" 2>/dev/null; then
            tail -n 40 "$BENCH_SERVER_LOG" >&2
            bench_fail "server exited during startup"
        fi
        sleep 0.25
    done
    if [[ -z "$gw" || -z "$admin" ]]; then
        tail -n 40 "$BENCH_SERVER_LOG" >&2
        bench_fail "server did not print its listening URLs within 30s"
    fi
    case "$gw $admin" in
    "http://127.0.0.1:"*" http://127.0.0.1:"*) ;;
    *) bench_fail "server is not on 127.0.0.1 ($gw, $admin)" ;;
    esac
    export BENCH_GATEWAY_URL="$gw" BENCH_ADMIN_URL="$admin"
    bench_log "gateway $BENCH_GATEWAY_URL, admin $BENCH_ADMIN_URL (pid $BENCH_SERVER_PID)"
}

# bench_admin_post PATH JSON [EXPECTED_STATUS=201] -> response body on stdout.
bench_admin_post() {
    local path="$1" json="$2" expect="${3:-201}" out code
    out="$BENCH_RUN_DIR/admin.$RANDOM.json"
    code="$(_bench_curl -o "$out" -w '%{http_code}' -X POST "$BENCH_ADMIN_URL$path" \
        -H "Authorization: Bearer $BENCH_ADMIN_TOKEN" \
        -H 'Content-Type: application/json' \
        --data-binary "$json")" || code="curl-error"
    if [[ "$code" != "$expect" ]]; then
        bench_log "POST $path -> $code (expected $expect): $(head -c 2000 "$out" 2>/dev/null)"
        bench_fail "admin request failed"
    fi
    cat "$out"
}

bench_create_tenant_and_server() {
    bench_log "creating tenant $BENCH_TENANT and server $BENCH_SERVER"
    bench_admin_post /admin/tenants \
        "{\"id\":\"$BENCH_TENANT\",\"name\":\"Bench\"}" >/dev/null
    bench_admin_post "/admin/tenants/$BENCH_TENANT/servers" \
        "{\"id\":\"$BENCH_SERVER\",\"name\":\"Main\"}" >/dev/null
}

# Everything up to a ready tenant + authorization server.
bench_setup() {
    bench_init "$1"
    bench_start_backends
    bench_build
    bench_create_database
    bench_start_server
    bench_create_tenant_and_server
}

bench_stop_server() {
    local i
    [[ -n "$BENCH_SERVER_PID" ]] || return 0
    if kill -0 "$BENCH_SERVER_PID" 2>/dev/null; then
        bench_log "stopping server (pid $BENCH_SERVER_PID)"
        kill "$BENCH_SERVER_PID" 2>/dev/null || true
        for ((i = 0; i < 40; i++)); do
            kill -0 "$BENCH_SERVER_PID" 2>/dev/null || break
            sleep 0.25
        done
        kill -9 "$BENCH_SERVER_PID" 2>/dev/null || true
    fi
    wait "$BENCH_SERVER_PID" 2>/dev/null || true
    BENCH_SERVER_PID=""
}

bench_cleanup() {
    local -
    set +e
    bench_stop_server
    if [[ "$BENCH_DB_CREATED" == 1 && "${BENCH_KEEP_DB:-0}" != 1 && -n "${TOLLGATE_TEST_POSTGRES_URL:-}" ]]; then
        bench_log "dropping database $BENCH_DATABASE_NAME"
        PGOPTIONS='-c client_min_messages=warning' PGCONNECT_TIMEOUT=5 timeout 30 psql "$TOLLGATE_TEST_POSTGRES_URL" -Xq \
            -c "DROP DATABASE IF EXISTS $BENCH_DATABASE_NAME WITH (FORCE)" >/dev/null
        BENCH_DB_CREATED=0
    fi
    [[ -n "$BENCH_RUN_DIR" && -d "$BENCH_RUN_DIR" ]] && rm -rf -- "$BENCH_RUN_DIR"
    return 0
}

# bench_wrk CONNECTIONS SECONDS LUA_SCRIPT URL OUTFILE [THREADS=2]
# Runs wrk (bounded by `timeout`), tees its report to OUTFILE.
bench_wrk() {
    local conns="$1" secs="$2" script="$3" url="$4" out="$5" threads="${6:-2}"
    ((conns >= threads)) || threads="$conns"
    bench_log "wrk -t$threads -c$conns -d${secs}s $url"
    timeout -k 5 $((secs + 60)) wrk -t "$threads" -c "$conns" -d "${secs}s" --timeout 10s --latency \
        -s "$script" "$url" >"$out" 2>&1 || {
        cat "$out" >&2
        bench_fail "wrk failed"
    }
}

# bench_wrk_row OUTFILE CONNECTIONS -> "conns req/s p50_ms p99_ms non200 socket_errors"
# non200 comes from the Lua script's "non200: N" line in done(), else wrk's Non-2xx line.
bench_wrk_row() {
    awk -v conns="$2" '
        function ms(v) {
            if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
            if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
            if (v ~ /m$/)  return substr(v, 1, length(v) - 1) * 60000
            if (v ~ /s$/)  return substr(v, 1, length(v) - 1) * 1000
            return v + 0
        }
        /^ *50% / { p50 = ms($2) }
        /^ *99% / { p99 = ms($2) }
        /^Requests\/sec:/ { rps = $2 }
        /^non200: / { lua = $2 }
        /Non-2xx or 3xx responses:/ { non2xx = $NF }
        /Socket errors:/ {
            for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) { gsub(",", "", $i); sock += $i }
        }
        END {
            n = (lua != "") ? lua : ((non2xx != "") ? non2xx : 0)
            printf "%s %s %.2f %.2f %d %d\n", conns, (rps == "" ? "0" : rps), p50, p99, n, sock
        }' "$1"
}

# bench_measure NAME LUA URL UNIT: one wrk run per value of $CONNECTIONS against URL, then a
# table (connections, UNIT, p50, p99, non-200, socket errors) on stdout and in
# $BENCH_OUT_DIR/NAME.txt. Fails if any response was not 200, unless BENCH_ALLOW_ERRORS=1.
# Reads DURATION, THREADS and CONNECTIONS.
bench_measure() {
    local name="$1" lua="$2" url="$3" unit="$4"
    local rows=() c raw r n s
    for c in $CONNECTIONS; do
        raw="$BENCH_OUT_DIR/$name.c$c.wrk.txt"
        bench_wrk "$c" "$DURATION" "$lua" "$url" "$raw" "$THREADS"
        rows+=("$(bench_wrk_row "$raw" "$c")")
    done
    local report="$BENCH_OUT_DIR/$name.txt"
    {
        printf '# %s: %ss per run, %s wrk threads, %s, %s, rev %s\n' \
            "$name" "$DURATION" "$THREADS" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
            "$(nproc) cores" "$(git -C "$BENCH_ROOT" rev-parse --short HEAD 2>/dev/null || echo none)"
        printf '%-12s %12s %10s %10s %8s %14s\n' connections "$unit" p50_ms p99_ms non200 socket_errors
        for r in "${rows[@]}"; do
            # shellcheck disable=SC2086  # split the row into its fields
            printf '%-12s %12s %10s %10s %8s %14s\n' $r
        done
    } >"$report"
    cat "$report"
    bench_log "report written to $report"
    [[ "${BENCH_ALLOW_ERRORS:-0}" == 1 ]] && return 0
    for r in "${rows[@]}"; do
        read -r _ _ _ _ n s <<<"$r"
        if ((n > 0 || s > 0)); then
            bench_fail "non-200 responses or socket errors during the benchmark (see $BENCH_OUT_DIR/$name.c*.wrk.txt)"
        fi
    done
}

# bench_authorize_url CLIENT_ID REDIRECT_URI SCOPE CODE_CHALLENGE -> the authorize URL.
bench_authorize_url() {
    python3 -c '
import sys, urllib.parse as u
base, cid, redirect, scope, challenge = sys.argv[1:6]
print(base + "/oauth2/authorize?" + u.urlencode({"response_type": "code", "client_id": cid,
    "redirect_uri": redirect, "scope": scope, "state": "bench", "code_challenge": challenge,
    "code_challenge_method": "S256"}))' \
        "$BENCH_GATEWAY_URL/$BENCH_TENANT/$BENCH_SERVER" "$1" "$2" "$3" "$4"
}

# bench_login AUTHORIZE_URL USERNAME PASSWORD -> a Cookie header value (session and binding
# cookies) of a browser that has logged in and consented, scripted over HTTP with curl like a
# user would: the login form, then the consent form, each with its hidden req and csrf fields.
bench_login() {
    local url="$1" user="$2" pass="$3" jar="$BENCH_RUN_DIR/cookies.txt" page="$BENCH_RUN_DIR/page.html"
    local issuer="$BENCH_GATEWAY_URL/$BENCH_TENANT/$BENCH_SERVER" next req csrf
    rm -f "$jar"
    next="$(_bench_curl -c "$jar" -b "$jar" -o /dev/null -w '%{redirect_url}' "$url")"
    [[ "$next" == "$issuer/login?"* ]] || bench_fail "authorize did not lead to the login page: $next"
    _bench_curl -c "$jar" -b "$jar" -o "$page" "$next"
    req="$(grep -o 'name="req" value="[^"]*"' "$page" | cut -d'"' -f4)"
    csrf="$(grep -o 'name="csrf" value="[^"]*"' "$page" | cut -d'"' -f4)"
    next="$(_bench_curl -c "$jar" -b "$jar" -o /dev/null -w '%{redirect_url}' \
        --data-urlencode "req=$req" --data-urlencode "csrf=$csrf" \
        --data-urlencode "username=$user" --data-urlencode "password=$pass" "$issuer/login")"
    [[ "$next" == "$issuer/consent?"* ]] || bench_fail "login did not lead to the consent page: $next"
    _bench_curl -c "$jar" -b "$jar" -o "$page" "$next"
    req="$(grep -o 'name="req" value="[^"]*"' "$page" | cut -d'"' -f4)"
    csrf="$(grep -o 'name="csrf" value="[^"]*"' "$page" | cut -d'"' -f4)"
    next="$(_bench_curl -c "$jar" -b "$jar" -o /dev/null -w '%{redirect_url}' \
        --data-urlencode "req=$req" --data-urlencode "csrf=$csrf" --data-urlencode decision=allow \
        "$issuer/consent")"
    [[ "$next" == *"code="* ]] || bench_fail "consent did not return a code: $next"
    # Netscape cookie jar: name and value are the last two fields (HttpOnly lines start with #).
    sed -n 's/^#HttpOnly_//; /^[^#]/p' "$jar" | awk -F'\t' 'NF >= 7 { printf "%s%s=%s", sep, $6, $7; sep = "; " }'
}

# bench_user USERNAME PASSWORD: a user of the bench server's built-in login.
bench_user() {
    bench_admin_post "/admin/tenants/$BENCH_TENANT/servers/$BENCH_SERVER/users" \
        "{\"username\":\"$1\",\"password\":\"$2\"}" >/dev/null
}

# bench_pkce -> "VERIFIER CHALLENGE" (S256).
bench_pkce() {
    python3 -c '
import base64, hashlib, secrets
v = secrets.token_urlsafe(48)
c = base64.urlsafe_b64encode(hashlib.sha256(v.encode()).digest()).rstrip(b"=").decode()
print(v, c)'
}
