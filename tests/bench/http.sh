#!/usr/bin/env bash
# tests/bench/http.sh: the HTTP gateway and API benchmarks of issue 5 (§6), in one run, beside
# the nginx anchor (../shared/anchors/http, its bench.sh starts and stops nginx):
#   1. GET /healthz: wrk -t2 -c64 -d10s against nginx's fixed {"status":"ok"} and against our
#      gateway, through the anchor's bench.sh (ROUNDS interleaved rounds, medians; target
#      ratio ours/nginx >= 1.0);
#   2. GET /v1/groups/{id} with a bearer token (token check, permission check, one PostgreSQL
#      round trip through the pool): wrk -t2 -c64 with tests/bench/http.lua; requests/s, p50,
#      p99 (target p99 < 10 ms at 64 connections);
#   3. POST /v1/auth/login at Host demo.localhost with the right password (argon2id verify,
#      DS_PASSWORD_* of actors/password.h): wrk -t2 -c4; requests/s, beside the cost of one
#      verification measured by tests/bench/password (the ceiling logins cannot pass).
# Our server is the real `dossier serve` of the release build on a private data directory under
# /tmp (its own PostgreSQL cluster), listening on 127.0.0.1:0. It is started once to create the
# demo tenant (whose admin password it prints once), stopped, the demo tenant's
# api_requests_per_minute raised to unlimited (`dossier tenant limit`: the standard plan's 1,000
# a minute would answer 429 to the benchmark; plans are loaded at start), then started again.
# Everything runs on loopback and is stopped at exit (serve by its pid, then its cluster).
#
# Not a test: never registered with ctest (see CMakeLists.txt, "Benchmarks"), so scripts/test
# does not run it. Prints raw figures; asserts nothing (STYLE.md). Record results in
# docs/benchmarks.md.
#
# Usage: tests/bench/http.sh [--install]   (--install: apt-get nginx wrk first; root)
# Environment (defaults): BUILD (unset: builds and uses build/release, as storage.sh), DURATION
#   (10 s a run), CONNS (64), LOGIN_CONNS (4), THREADS (2, wrk's), ROUNDS (3, of each part;
#   medians), WARMUP (1 s of unmeasured load before each run), WORKERS (serve's --workers;
#   unset: one per core), NGINX_PORT / NGINX_SINK_PORT (unset: the first free pair from 18080),
#   HTTP_ANCHOR (the anchor's directory), PW_N (argon2id verifications per thread, 10),
#   ONLY ("healthz group cpu login": the parts to run; cpu: CPU per /healthz request and per group
#   read, ours and PostgreSQL's),
#   LIMITS (more `dossier tenant limit demo`
#   KEY=VALUE overrides, e.g. "pool_connections=8"; the default measures the standard plan).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
DURATION="${DURATION:-10}"
CONNS="${CONNS:-64}"
LOGIN_CONNS="${LOGIN_CONNS:-4}"
THREADS="${THREADS:-2}"
ROUNDS="${ROUNDS:-3}"
WARMUP="${WARMUP:-1}"
PW_N="${PW_N:-10}"

if [[ "${1:-}" == --install ]]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx wrk curl python3
    shift
fi
[[ $# -eq 0 ]] || { echo "usage: $0 [--install]" >&2; exit 2; }
for t in nginx wrk curl python3 timeout; do
    command -v "$t" >/dev/null || { echo "http.sh: missing $t (run with --install)" >&2; exit 1; }
done

# The anchor sits in ../shared next to the repository; from a git worktree, next to the main one.
anchor_dir() {
    local d common
    for d in "${HTTP_ANCHOR:-}" "$ROOT/../shared/anchors/http"; do
        if [[ -n "$d" && -x "$d/bench.sh" ]]; then (cd "$d" && pwd); return 0; fi
    done
    common="$(git -C "$ROOT" rev-parse --path-format=absolute --git-common-dir 2>/dev/null)" || return 1
    d="$(dirname "$common")/../shared/anchors/http"
    [[ -x "$d/bench.sh" ]] && (cd "$d" && pwd)
}
ANCHOR="$(anchor_dir)" || { echo "http.sh: ../shared/anchors/http not found (set HTTP_ANCHOR)" >&2; exit 1; }

if [[ -z "${BUILD:-}" ]]; then
    # shellcheck source=scripts/deps.sh
    . scripts/deps.sh
    ds_build release >/dev/null
    BUILD="$ROOT/build/release"
fi
BIN="$BUILD/dossier"
PWBENCH="$BUILD/tests/bench/password"
for f in "$BIN" "$PWBENCH"; do
    [[ -x "$f" ]] || { echo "http.sh: $f not built (cmake --build $BUILD)" >&2; exit 1; }
done

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if [[ -z "${NGINX_PORT:-}" ]]; then
    for p in $(seq 18080 2 18178); do
        if ! port_busy "$p" && ! port_busy $((p + 1)); then NGINX_PORT="$p"; NGINX_SINK_PORT=$((p + 1)); break; fi
    done
    [[ -n "${NGINX_PORT:-}" ]] || { echo "http.sh: no free port pair in 18080..18179 for nginx" >&2; exit 1; }
fi
NGINX_SINK_PORT="${NGINX_SINK_PORT:-$((NGINX_PORT + 1))}"

unset DOSSIER_CONFIG DOSSIER_DATABASE__DSN DOSSIER_DATABASE__OWNER_DSN DOSSIER_DATA_DIR
export DOSSIER_HTTP__LISTEN="127.0.0.1:0"
LOGIN_USERS="${LOGIN_USERS:-64}"
# wrk logs in from one address: lift the per-address budget of logins (auth.anon_rate_per_ip,
# 10/s by default) so the login figure measures argon2id, not that limit.
export DOSSIER_AUTH__ANON_RATE_PER_IP=1000000
export DOSSIER_LOG_LEVEL=info # "http listening" (the port) is an info line; so is the access log

# Under /tmp: when root, the private cluster runs as postgres, which must reach it.
work="$(mktemp -d /tmp/ds-httpbench.XXXXXX)"
chmod 0711 "$work"
data="$work/data"
serve_pid=""
anchor_pid=""
stop_serve() {
    [[ -n "$serve_pid" ]] || return 0
    kill -TERM "$serve_pid" 2>/dev/null || true
    for _ in $(seq 1 300); do kill -0 "$serve_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$serve_pid" 2>/dev/null || true
    wait "$serve_pid" 2>/dev/null || true
    serve_pid=""
}
# serve_alive: true while serve runs; else says how it ended and keeps its logs.
serve_alive() {
    [[ -n "$serve_pid" ]] && kill -0 "$serve_pid" 2>/dev/null && return 0
    local st=0 keep
    [[ -z "$serve_pid" ]] || wait "$serve_pid" 2>/dev/null || st=$?
    serve_pid=""
    keep="$(mktemp -d /tmp/ds-httpbench-died.XXXXXX)"
    cp "$work"/serve*.err "$work"/serve*.out "$keep"/ 2>/dev/null || true
    echo "http.sh: dossier serve is gone (exit status $st); its logs are kept in $keep; last lines:" >&2
    grep -v '"msg":"http request"' "$work/serve2.err" | tail -8 >&2 || true
    return 1
}
cleanup() {
    if [[ -n "$anchor_pid" ]]; then
        kill -TERM "$anchor_pid" 2>/dev/null || true # bench.sh stops its nginx on exit
        wait "$anchor_pid" 2>/dev/null || true
    fi
    stop_serve
    if [[ -d "$data/pg" ]]; then "$BIN" db stop --data-dir "$data" >/dev/null 2>&1 || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_serve N: runs serve in the background, waits for "node started", sets $port.
start_serve() {
    "$BIN" serve --data-dir "$data" ${WORKERS:+--workers "$WORKERS"} \
        >"$work/serve$1.out" 2>"$work/serve$1.err" &
    serve_pid=$!
    for _ in $(seq 1 900); do
        grep -q '"msg":"node started"' "$work/serve$1.err" && break
        kill -0 "$serve_pid" 2>/dev/null || break
        sleep 0.1
    done
    port="$(grep -o '"msg":"http listening"[^}]*"port":[0-9]*' "$work/serve$1.err" | grep -o '[0-9]*$' || true)"
    if [[ -z "$port" ]] || ! grep -q '"msg":"node started"' "$work/serve$1.err"; then
        echo "http.sh: serve did not start:" >&2; tail -5 "$work/serve$1.err" >&2; exit 1
    fi
}

json_field() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

# login: prints a fresh access token (the demo admin's).
login() {
    curl -sf --max-time 10 --resolve "demo.localhost:$port:127.0.0.1" \
        -H 'Content-Type: application/json' --data-binary @"$work/login.json" \
        "http://demo.localhost:$port/v1/auth/login" | json_field access_token
}

# run_wrk LOG wrk-args... -> "rps p50_ms p99_ms errors" (or FAIL), after WARMUP s unmeasured.
run_wrk() {
    local log="$1" line
    shift
    if ((WARMUP > 0)); then
        timeout $((WARMUP + 30)) wrk -t"$THREADS" -d"${WARMUP}s" --timeout 5s -s "$ROOT/tests/bench/http.lua" \
            "$@" >/dev/null 2>&1 || true
    fi
    timeout $((DURATION + 60)) wrk -t"$THREADS" -d"${DURATION}s" --latency --timeout 5s \
        -s "$ROOT/tests/bench/http.lua" "$@" >"$log" 2>&1 || true
    line="$(grep '^WRK ' "$log" | tail -1 || true)"
    if [[ -z "$line" ]]; then echo FAIL; return 0; fi
    awk '{ for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
           s = v["duration_us"] / 1e6
           err = v["errors_connect"] + v["errors_read"] + v["errors_write"] + v["errors_status"] + v["errors_timeout"]
           printf "%.1f %.3f %.3f %d\n", (s > 0 ? v["requests"] / s : 0), v["p50_us"] / 1000, v["p99_us"] / 1000, err }' <<<"$line"
}
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

# rounds NAME wrk-args...: ROUNDS runs, a ROUND line each, then sets R_RPS R_P50 R_P99 R_ERR.
rounds() {
    local name="$1" r out rps p50 p99 err all_rps="" all_p50="" all_p99=""
    shift
    R_ERR=0
    for r in $(seq 1 "$ROUNDS"); do
        out="$(run_wrk "$work/wrk-$name-r$r.txt" "$@")"
        if [[ "$out" == FAIL ]]; then
            echo "ROUND $r mode=$name FAIL: $(head -1 "$work/wrk-$name-r$r.txt")"; continue
        fi
        read -r rps p50 p99 err <<<"$out"
        echo "ROUND $r mode=$name rps=$rps p50_ms=$p50 p99_ms=$p99 errors=$err"
        all_rps+="$rps "; all_p50+="$p50 "; all_p99+="$p99 "; R_ERR=$((R_ERR + err))
    done
    [[ -n "$all_rps" ]] || return 1
    # shellcheck disable=SC2086 # word splitting intended
    R_RPS="$(median $all_rps)"
    # shellcheck disable=SC2086
    R_P50="$(median $all_p50)"
    # shellcheck disable=SC2086
    R_P99="$(median $all_p99)"
}

echo "== http benchmarks $(date -u +%Y-%m-%dT%H:%M:%SZ), load: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
echo "== $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), $(nginx -v 2>&1 | sed 's|.*: ||'), dossier $(git rev-parse --short HEAD) ($BUILD)"

# --- our server: first start (demo tenant), plan limit, second start ----------------------------
start_serve 1
password="$(grep -A2 "Demo tenant 'demo' created" "$work/serve1.out" | sed -n 3p | tr -d ' ')"
[[ ${#password} -ge 8 ]] || { echo "http.sh: no demo password on serve's stdout" >&2; exit 1; }
stop_serve
for kv in api_requests_per_minute=unlimited ${LIMITS:-}; do
    "$BIN" tenant limit demo "$kv" --data-dir "$data" >/dev/null 2>"$work/limit.err" ||
        { echo "http.sh: tenant limit demo $kv failed:" >&2; cat "$work/limit.err" >&2; exit 1; }
done
start_serve 2
echo "== dossier serve pid $serve_pid on 127.0.0.1:$port (${WORKERS:-default} workers), data $data"
(umask 077 && printf '{"email":"admin@demo.localhost","password":"%s"}' "$password" >"$work/login.json")
token="$(login)"
group="$(curl -sf --max-time 10 -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    --data-binary '{"name":"bench"}' "http://127.0.0.1:$port/v1/groups" | json_field id)"
code="$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "http://127.0.0.1:$port/v1/groups/$group")"
[[ "$code" == 200 ]] || { echo "http.sh: GET /v1/groups/$group answered $code" >&2; exit 1; }

want() { [[ -z "${ONLY:-}" || " $ONLY " == *" $1 "* ]]; }

# --- 1. /healthz beside nginx (the anchor's bench.sh; nginx runs only for this part) ------------
part_healthz() {
    echo "== 1. GET /healthz: nginx (127.0.0.1:$NGINX_PORT) vs ours, anchor's bench.sh, ROUNDS=$ROUNDS"
    DURATION="$DURATION" THREADS="$THREADS" CONNS="$CONNS" ROUNDS="$ROUNDS" WARMUP="$WARMUP" \
        NGINX_PORT="$NGINX_PORT" NGINX_SINK_PORT="$NGINX_SINK_PORT" \
        "$ANCHOR/bench.sh" "ours=http://127.0.0.1:$port/healthz" >"$work/anchor.txt" 2>&1 &
    anchor_pid=$!
    wait "$anchor_pid" || true
    anchor_pid=""
    grep -E '^(ROUND|RESULT|   warning|== nginx)' "$work/anchor.txt" || { cat "$work/anchor.txt"; return 1; }
    local ng ours
    ng="$(grep -o '^RESULT http mode=json target=nginx rps=[0-9]*' "$work/anchor.txt" | grep -o '[0-9]*$' || true)"
    ours="$(grep -o '^RESULT http mode=json target=ours rps=[0-9]*' "$work/anchor.txt" | grep -o '[0-9]*$' || true)"
    if [[ -n "$ng" && -n "$ours" ]]; then
        awk -v o="$ours" -v n="$ng" 'BEGIN { r = o / n
            printf "RESULT http_api mode=healthz ours_rps=%d nginx_rps=%d ratio=%.3f target=1.0 %s\n", o, n, r, (r >= 1.0 ? "met" : "missed") }'
    else
        echo "RESULT http_api mode=healthz FAIL (see the anchor's lines above)"
    fi
}

# --- 2. authenticated group read ----------------------------------------------------------------
part_group() {
    echo "== 2. GET /v1/groups/{id} with a bearer token: wrk -t$THREADS -c$CONNS -d${DURATION}s, ROUNDS=$ROUNDS"
    token="$(login)" # tokens live 15 minutes: fresh for this part
    if BENCH_TOKEN="$token" rounds group_read -c"$CONNS" "http://127.0.0.1:$port/v1/groups/$group"; then
        awk -v r="$R_RPS" -v a="$R_P50" -v b="$R_P99" -v e="$R_ERR" -v c="$CONNS" 'BEGIN {
            printf "RESULT http_api mode=group_read rps=%.0f p50_ms=%.3f p99_ms=%.3f conns=%d errors=%d p99_target_ms=10 %s\n",
                r, a, b, c, e, (b < 10 ? "met" : "missed") }'
    else
        echo "RESULT http_api mode=group_read FAIL"
    fi
}

# --- 4. CPU per request: ours, and PostgreSQL's -------------------------------------------------
# Depends far less on the neighbours than req/s: the server's utime + stime (/proc/PID/stat,
# clock ticks) over one wrk run, warm-up excluded, divided by its requests; for the group read
# also the cluster's (the postmaster and its children: the pool's backends live through the run).
proc_cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
cluster_cpu_ticks() {
    local pm sum=0 p
    pm="$(head -1 "$(find "$data" -maxdepth 3 -name postmaster.pid | head -1)")"
    for p in "$pm" $(ps -o pid= --ppid "$pm"); do sum=$((sum + $(proc_cpu_ticks "$p"))); done
    echo "$sum"
}
# cpu_round NAME ROUND URL: one measured run; prints a ROUND line.
cpu_round() {
    local name="$1" r="$2" url="$3" t0 t1 p0 p1 requests log="$work/wrk-cpu-$1-r$2.txt"
    timeout $((WARMUP + 30)) wrk -t"$THREADS" -c"$CONNS" -d"${WARMUP}s" -s "$ROOT/tests/bench/http.lua" \
        "$url" >/dev/null 2>&1 || true
    t0="$(proc_cpu_ticks "$serve_pid")"
    p0="$(cluster_cpu_ticks)"
    timeout $((DURATION + 60)) wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" \
        -s "$ROOT/tests/bench/http.lua" "$url" >"$log" 2>&1 || true
    t1="$(proc_cpu_ticks "$serve_pid")"
    p1="$(cluster_cpu_ticks)"
    requests="$(grep -o '^WRK requests=[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)"
    awk -v a="$t0" -v b="$t1" -v c="$p0" -v d="$p1" -v hz="$(getconf CLK_TCK)" -v n="$requests" \
        -v r="$r" -v m="$name" 'BEGIN { k = (n > 0 ? 1e6 / hz / n : 0)
            printf "ROUND %d mode=%s requests=%d cpu_s=%.2f us_per_request=%.1f postgres_us_per_request=%.1f\n",
                r, m, n, (b - a) / hz, (b - a) * k, (d - c) * k }'
}
part_cpu() {
    echo "== 4. CPU per request (GET /healthz, then the group read): wrk -t$THREADS -c$CONNS -d${DURATION}s, ROUNDS=$ROUNDS"
    local r
    for r in $(seq 1 "$ROUNDS"); do cpu_round healthz_cpu "$r" "http://127.0.0.1:$port/healthz"; done
    token="$(login)"
    for r in $(seq 1 "$ROUNDS"); do
        BENCH_TOKEN="$token" cpu_round group_read_cpu "$r" "http://127.0.0.1:$port/v1/groups/$group"
    done
}

# --- 3. login throughput, and the argon2id cost it pays -----------------------------------------
part_login() {
    echo "== 3. POST /v1/auth/login (argon2id): wrk -t$THREADS -c$LOGIN_CONNS -d${DURATION}s, ROUNDS=$ROUNDS"
    # The server runs one login of an account at a time (a parallel one is 429): the
    # connections log in as LOGIN_USERS different users, each request the next of them.
    local admin i
    admin="$(login)"
    : >"$work/logins.txt"
    for i in $(seq 1 "$LOGIN_USERS"); do
        curl -sf --max-time 20 -o /dev/null -H "Authorization: Bearer $admin" \
            -H 'Content-Type: application/json' \
            --data-binary "{\"email\":\"bench$i@example.com\",\"password\":\"bench password $i\"}" \
            "http://127.0.0.1:$port/v1/users" || { echo "http.sh: could not create bench$i" >&2; exit 1; }
        printf '{"email":"bench%d@example.com","password":"bench password %d"}\n' "$i" "$i" >>"$work/logins.txt"
    done
    if BENCH_METHOD=POST BENCH_HOST="demo.localhost:$port" BENCH_BODIES="$work/logins.txt" BENCH_THREADS="$THREADS" \
        rounds login -c"$LOGIN_CONNS" "http://127.0.0.1:$port/v1/auth/login"; then
        awk -v r="$R_RPS" -v a="$R_P50" -v b="$R_P99" -v e="$R_ERR" -v c="$LOGIN_CONNS" 'BEGIN {
            printf "RESULT http_api mode=login rps=%.1f p50_ms=%.3f p99_ms=%.3f conns=%d errors=%d\n", r, a, b, c, e }'
    else
        echo "RESULT http_api mode=login FAIL"
    fi
    serve_alive || exit 1
    stop_serve # the argon2id figure is the CPU alone, with the server stopped
    "$PWBENCH" "$PW_N" "$(nproc)"
}

if want healthz; then part_healthz; serve_alive || exit 1; fi
if want group; then part_group; serve_alive || exit 1; fi
if want cpu; then part_cpu; serve_alive || exit 1; fi
if want login; then part_login; fi
echo "== done $(date -u +%Y-%m-%dT%H:%M:%SZ), load: $(cut -d' ' -f1-3 /proc/loadavg)"
