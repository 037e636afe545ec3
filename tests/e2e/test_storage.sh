#!/usr/bin/env bash
# End-to-end: the storage commands of the real binary on a private PostgreSQL cluster of this
# test's own (it stops and starts it): config check, first start of `dossier serve` (cluster
# initialized, migrated, demo tenant with a one-time password), `dossier tenant`, `dossier
# migrate` with a tampered file, `dossier db psql`, racing starters, the last user stopping
# the cluster, a database that refuses connections, a data directory whose socket path would
# be too long, and `dossier keys rotate`.
# Needs DOSSIER_BIN (set by ctest), python3 and Debian's postgresql-15.
set -euo pipefail

bin="${DOSSIER_BIN:?DOSSIER_BIN must name the dossier binary}"
src="${DS_SOURCE_DIR:?DS_SOURCE_DIR must name the source tree}"
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    echo "SKIP: PostgreSQL server binaries are not installed"
    exit 77
fi
unset DOSSIER_CONFIG DOSSIER_DATABASE__DSN DOSSIER_DATABASE__OWNER_DSN DOSSIER_DATA_DIR
export DOSSIER_LOG_LEVEL=info
export DOSSIER_HTTP__LISTEN="127.0.0.1:0" # tests run side by side: a port of our own

# Under /tmp: the cluster runs as the postgres user when we are root, which must reach it.
work="$(mktemp -d /tmp/ds-e2e-storage.XXXXXX)"
chmod 0711 "$work"
data="$work/data"
pid=""
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -9 "$pid" 2>/dev/null || true
    fi
    for d in "$data" "$work"/long*/*; do
        if [ -d "$d/pg" ]; then "$bin" db stop --data-dir "$d" >/dev/null 2>&1 || true; fi
    done
    rm -rf "$work"
}
trap cleanup EXIT

failures=0
fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}
pass() { echo "ok: $*"; }

# Runs the binary; sets $status, $out, $err.
run() {
    set +e
    out="$("$bin" "$@" 2>"$work/err")"
    status=$?
    set -e
    err="$(cat "$work/err")"
}
expect() { # expect STATUS WHAT
    if [ "$status" -eq "$1" ]; then pass "$2"; else fail "$2: status $status, stderr: $err"; fi
}
running() { "$bin" db status --json --data-dir "$1" | grep -q '"running":true'; }

# --- config check ------------------------------------------------------------------------------
printf 'region: eu\ndatabase:\n  pool_size: 4\n' >"$work/good.yaml"
printf 'region: eu\ndatabase:\n  pool_size: 4\n  pool_sise: 5\n' >"$work/bad.yaml"
printf 'region: eu\nplans:\n  standard:\n    scheduler_weight: heavy\n' >"$work/type.yaml"
run config check "$work/good.yaml"
expect 0 "config check accepts a valid partial file"
run config check "$work/bad.yaml"
expect 1 "config check refuses an unknown key"
if [[ "$err" == *bad.yaml:4:*pool_sise* ]]; then pass "the unknown key is reported with its line"; else fail "config check said: $err"; fi
run config check "$work/type.yaml"
expect 1 "config check refuses a wrong type"
if [[ "$err" == *type.yaml:4:*scheduler_weight* ]]; then pass "the wrong type is reported with its line"; else fail "config check said: $err"; fi
DOSSIER_DATABASE__POOL_SIZE=lots run config show
expect 1 "a bad environment override is refused"

# --- first start: init, migrate, demo tenant -----------------------------------------------------
"$bin" serve --data-dir "$data" --workers 1 >"$work/serve1.out" 2>"$work/serve1.err" &
pid=$!
for _ in $(seq 1 600); do
    if grep -q '"msg":"node started"' "$work/serve1.err"; then break; fi
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    sleep 0.1
done
if grep -q '"msg":"node started"' "$work/serve1.err"; then pass "serve started on a fresh data directory"; else fail "serve did not start: $(tail -5 "$work/serve1.err")"; fi
password="$(grep -A2 "Demo tenant 'demo' created" "$work/serve1.out" | sed -n 3p | tr -d ' ')"
if [ "${#password}" -eq 20 ]; then pass "the demo admin's password is printed on stdout"; else fail "no demo password in: $(cat "$work/serve1.out")"; fi
if [ -n "$password" ] && grep -q -- "$password" "$work/serve1.err"; then fail "the password reached the log"; else pass "the password is not in the log"; fi
if running "$data"; then pass "the private cluster runs"; else fail "the private cluster does not run"; fi
# The HTTP API: alive, ready (database reachable, schema current), problems for the rest.
port="$(grep -o '"msg":"http listening"[^}]*"port":[0-9]*' "$work/serve1.err" | grep -o '[0-9]*$' || true)"
if [ -n "$port" ] && command -v curl >/dev/null; then
    code="$(curl -s -o "$work/h.body" -w '%{http_code}' "http://127.0.0.1:$port/healthz")"
    if [ "$code" = 200 ] && grep -q '"status":"ok"' "$work/h.body"; then pass "GET /healthz is 200"; else fail "/healthz: $code $(cat "$work/h.body")"; fi
    code="$(curl -s -o "$work/h.body" -w '%{http_code}' "http://127.0.0.1:$port/readyz")"
    if [ "$code" = 200 ] && grep -q '"status":"ready"' "$work/h.body"; then pass "GET /readyz is 200 with the database up"; else fail "/readyz: $code $(cat "$work/h.body")"; fi
    code="$(curl -s -D "$work/h.head" -o "$work/h.body" -w '%{http_code}' "http://127.0.0.1:$port/no/such/thing")"
    if [ "$code" = 404 ] && grep -qi '^content-type: application/problem+json' "$work/h.head" &&
        grep -q '"type":"https://dossier.dev/problems/not-found"' "$work/h.body" &&
        grep -qi '^x-request-id: ' "$work/h.head"; then pass "an unknown path is a 404 problem with X-Request-Id"; else fail "404: $code $(cat "$work/h.head" "$work/h.body")"; fi
    code="$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "http://127.0.0.1:$port/healthz")"
    if [ "$code" = 405 ]; then pass "DELETE /healthz is 405"; else fail "DELETE /healthz: $code"; fi
else
    fail "no 'http listening' port in the log, or no curl"
fi
perm="$(stat -c %a "$data/secrets/pg.passwords")"
if [ "$perm" = 600 ]; then pass "role passwords are kept in a 0600 file"; else fail "pg.passwords has mode $perm"; fi

# A command while the node runs uses its cluster and leaves it running.
run tenant create --slug acme --name "Acme Corp" --plan professional --json --data-dir "$data"
expect 0 "tenant create while serve runs"
if [[ "$out" == *'"slug":"acme"'* && "$out" == *'"plan":"professional"'* ]]; then pass "tenant create prints the tenant as JSON"; else fail "tenant create printed: $out"; fi
if running "$data"; then pass "a command leaves the node's cluster running"; else fail "a command stopped the node's cluster"; fi
run tenant create --slug acme --name Again --data-dir "$data"
expect 1 "a second tenant with the same slug is refused"
run tenant suspend acme --json --data-dir "$data"
if [ "$status" -eq 0 ] && [[ "$out" == *'"status":"suspended"'* ]]; then pass "tenant suspend"; else fail "tenant suspend: $status $out $err"; fi
run tenant show nosuch --data-dir "$data"
expect 1 "tenant show of a missing tenant fails"
run tenant limit acme max_users=lots --data-dir "$data"
expect 1 "a bad plan override is refused"
run tenant limit acme max_users=5000 --json --data-dir "$data"
if [ "$status" -eq 0 ] && [[ "$out" == *'"max_users" : 5000'* ]]; then pass "tenant limit sets an override"; else fail "tenant limit: $status $out $err"; fi

# The database going away: not ready (503 problem), still alive.
"$bin" db stop --data-dir "$data" >/dev/null 2>&1 || true
if [ -n "$port" ]; then
    code="$(curl -s -o "$work/h.body" -w '%{http_code}' "http://127.0.0.1:$port/readyz")"
    if [ "$code" = 503 ] && grep -q '"type":"https://dossier.dev/problems/not-ready"' "$work/h.body"; then pass "GET /readyz is a 503 problem with the database down"; else fail "/readyz with the database down: $code $(cat "$work/h.body")"; fi
    code="$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/healthz")"
    if [ "$code" = 200 ]; then pass "and /healthz stays 200"; else fail "/healthz with the database down: $code"; fi
fi

kill -TERM "$pid"
set +e
wait "$pid"
serve_status=$?
set -e
pid=""
if [ "$serve_status" -eq 0 ]; then pass "serve exits 0 on SIGTERM"; else fail "serve exit status $serve_status"; fi
if running "$data"; then fail "the cluster still runs after its last user stopped"; else pass "the node stopped its cluster"; fi

# --- commands start the cluster for themselves ---------------------------------------------------
run tenant list --json --data-dir "$data"
if [ "$status" -eq 0 ] && [[ "$out" == *'"slug":"demo"'* && "$out" == *'"slug":"acme"'* ]]; then pass "tenant list starts the cluster for itself"; else fail "tenant list: $status $out $err"; fi
if running "$data"; then fail "tenant list left the cluster running"; else pass "tenant list stopped the cluster after"; fi
run db psql --data-dir "$data" -- -tA -c "SELECT concat_ws(' ', actor, action) FROM dossier.control_audit ORDER BY at"
if [[ "$out" == *"cli:"*"tenant.create"* && "$out" == *"tenant.suspend"* && "$out" == *"tenant.override"* ]]; then pass "operator actions are in control_audit"; else fail "control_audit: $out $err"; fi
set +e
out="$(echo "SELECT 'marker', count(*) FROM dossier.users;" |
    "$bin" db psql --data-dir "$data" -- -tA -v ON_ERROR_STOP=1 2>"$work/err")"
psql_status=$?
set -e
# The owner is subject to forced RLS: without a tenant set it sees no user rows.
if [ "$psql_status" -eq 0 ] && [ "$out" = "marker|0" ]; then pass "db psql runs SQL from stdin (and RLS hides tenant rows from the owner)"; else fail "db psql stdin: status $psql_status, out '$out', $(cat "$work/err")"; fi

# Racing starters: the lock file lets exactly one start the cluster; all succeed.
pids=()
for i in 1 2 3 4; do
    "$bin" tenant list --data-dir "$data" >"$work/race$i.out" 2>"$work/race$i.err" &
    pids+=($!)
done
race_ok=1
for i in 1 2 3 4; do
    if ! wait "${pids[$((i - 1))]}"; then race_ok=0; echo "racer $i: $(cat "$work/race$i.err")" >&2; fi
done
if [ "$race_ok" -eq 1 ]; then pass "four commands racing to start the cluster all succeed"; else fail "a racing command failed"; fi
if running "$data"; then fail "racing commands left the cluster running"; else pass "the last racer stopped the cluster"; fi

# --- migrations: status, and a tampered file --------------------------------------------------
run migrate status --json --data-dir "$data"
if [ "$status" -eq 0 ] && [[ "$out" == *'"current":true'* ]]; then pass "migrate status: current"; else fail "migrate status: $status $out $err"; fi
cp -r "$src/schema/migrations" "$work/migrations"
first="$(ls "$work/migrations" | head -n1)"
printf '\n-- edited after it was applied\n' >>"$work/migrations/$first"
run migrate --dir "$work/migrations" --data-dir "$data"
expect 1 "a changed migration file is refused"
if [[ "$err" == *"$first"*changed* ]]; then pass "the refusal names the changed file"; else fail "migrate said: $err"; fi
run migrate status --dir "$work/migrations" --data-dir "$data"
if [ "$status" -eq 1 ] && [[ "$out" == changed*"$first"* ]]; then pass "migrate status shows the changed file"; else fail "migrate status: $status $out"; fi

# --- a second start does not print a password again -------------------------------------------
"$bin" serve --data-dir "$data" --workers 1 >"$work/serve2.out" 2>"$work/serve2.err" &
pid=$!
for _ in $(seq 1 300); do
    if grep -q '"msg":"node started"' "$work/serve2.err" || ! kill -0 "$pid" 2>/dev/null; then break; fi
    sleep 0.1
done
kill -TERM "$pid" 2>/dev/null || true
wait "$pid" || true
pid=""
if grep -q "Demo tenant" "$work/serve2.out"; then fail "the second start printed a password again"; else pass "the password is printed only once"; fi

# --- keys rotate ---------------------------------------------------------------------------------
run keys rotate --json --data-dir "$data"
if [ "$status" -eq 0 ] && [[ "$out" == *'"master_key_id"'* ]]; then pass "keys rotate"; else fail "keys rotate: $status $out $err"; fi

# --- a database that refuses connections ------------------------------------------------------
DOSSIER_DATABASE__DSN="host=$work/nowhere dbname=dossier user=dossier_app" \
    DOSSIER_DATABASE__OWNER_DSN="host=$work/nowhere dbname=dossier user=dossier_owner" \
    run tenant list --data-dir "$data"
expect 1 "tenant list against a database that refuses connections fails"
if [[ "$err" == *"could not connect"* ]]; then pass "with a clear error"; else fail "the error was: $err"; fi
set +e
DOSSIER_DATABASE__DSN="host=$work/nowhere dbname=dossier user=dossier_app" \
    DOSSIER_DATABASE__OWNER_DSN="host=$work/nowhere dbname=dossier user=dossier_owner" \
    timeout 30 "$bin" serve --data-dir "$data" >/dev/null 2>"$work/refused.err"
refused=$?
set -e
if [ "$refused" -eq 1 ]; then pass "serve exits 1 when the database refuses connections"; else fail "serve exit $refused: $(tail -3 "$work/refused.err")"; fi

# --- a data directory too deep for a socket path ----------------------------------------------
long="$work/long$(printf 'x%.0s' $(seq 1 60))/data"
mkdir -p "$(dirname "$long")"
chmod 0711 "$(dirname "$long")"
run db start --data-dir "$long"
expect 0 "db start in a deep data directory"
sock="$("$bin" db status --json --data-dir "$long" | python3 -c 'import json,sys; print(json.load(sys.stdin)["socket_dir"])')"
if [[ "$sock" == /tmp/dossier-pg-* ]]; then pass "its socket goes to a short private directory"; else fail "socket dir: $sock"; fi
run migrate --data-dir "$long"
expect 0 "migrate in a deep data directory"
run tenant list --data-dir "$long"
expect 0 "and it is usable"
run db stop --data-dir "$long"
expect 0 "db stop"
if running "$long"; then fail "db stop left it running"; else pass "db stop stops it"; fi

# Another local user may create the short socket directory first, or a link in its place:
# refused, and nothing it points to is touched.
long2="$(dirname "$long")/data2"
short="/tmp/dossier-pg-$(printf '%s' "$long2" | sha256sum | cut -c1-12)"
mkdir -p "$work/victim"
chmod 0755 "$work/victim"
ln -sfn "$work/victim" "$short"
run db start --data-dir "$long2"
expect 1 "a symbolic link in place of the socket directory is refused"
if [ "$(stat -c '%U %a' "$work/victim")" = "root 755" ]; then pass "its target is untouched"; else fail "the link's target changed: $(stat -c '%U %a' "$work/victim")"; fi
rm -f "$short"

if [ "$failures" -ne 0 ]; then
    echo "$failures check(s) failed" >&2
    exit 1
fi
echo "all storage e2e checks passed"
