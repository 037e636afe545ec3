#!/usr/bin/env bash
# End-to-end: two `dossier serve` processes linked over nng (ipc). Each sees the other come up;
# when node 2 is killed with SIGKILL node 1 sees it go down; a restarted node 2 is seen again;
# both stop cleanly on SIGTERM. Waits are bounded only to catch a hang.
set -euo pipefail

bin="${DOSSIER_BIN:?DOSSIER_BIN must name the dossier binary}"
work="$(mktemp -d "${TMPDIR:-/tmp}/ds-e2e-cl.XXXXXX")"
# shellcheck source=tests/e2e/lib/pg.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/pg.sh"
ds_use_test_pg "$work/data"
p1=""
p2=""
cleanup() {
    for p in $p1 $p2; do
        kill -9 "$p" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

u1="ipc://$work/n1.sock"
u2="ipc://$work/n2.sock"
start1() {
    "$bin" serve --node 1 --workers 1 --cluster-listen "$u1" --peer "2=$u2" 2>>"$work/n1.log" &
    p1=$!
}
start2() {
    "$bin" serve --node 2 --workers 1 --cluster-listen "$u2" --peer "1=$u1" 2>>"$work/n2.log" &
    p2=$!
}

# wait_count FILE PATTERN N: waits up to 20 s until PATTERN occurs N times in FILE.
wait_count() {
    local i
    for i in $(seq 1 200); do
        if [ "$(grep -c "$2" "$1" 2>/dev/null || true)" -ge "$3" ]; then
            echo "ok: $1 has $3 x $2"
            return 0
        fi
        sleep 0.1
    done
    echo "FAIL: $1 has not $3 x $2 after 20 s" >&2
    cat "$work"/*.log >&2
    exit 1
}

# stop PID: SIGTERM, then the exit status must be 0 within 15 s.
stop() {
    local pid="$1" i
    kill -TERM "$pid"
    for i in $(seq 1 150); do
        if ! kill -0 "$pid" 2>/dev/null; then
            wait "$pid" && { echo "ok: pid $pid stopped cleanly"; return 0; }
            echo "FAIL: pid $pid exited non-zero" >&2
            exit 1
        fi
        sleep 0.1
    done
    echo "FAIL: pid $pid did not stop within 15 s" >&2
    exit 1
}

start1
start2
wait_count "$work/n1.log" '"peer node up","node":2' 1
wait_count "$work/n2.log" '"peer node up","node":1' 1

kill -9 "$p2"
wait "$p2" 2>/dev/null || true
p2=""
wait_count "$work/n1.log" '"peer node down","node":2' 1

start2
wait_count "$work/n1.log" '"peer node up","node":2' 2

stop "$p2"
p2=""
stop "$p1"
p1=""
