#!/usr/bin/env bash
# End-to-end checks of the `dossier` binary: exit codes, JSON logs, heartbeat, clean stop.
# Needs DOSSIER_BIN (set by ctest) and python3.
set -euo pipefail

bin="${DOSSIER_BIN:?DOSSIER_BIN must name the dossier binary}"
if ! command -v python3 >/dev/null 2>&1; then
    echo "SKIP: python3 is not installed"
    exit 77
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/ds-e2e-cli.XXXXXX")"
# shellcheck source=tests/e2e/lib/pg.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/pg.sh"
ds_use_test_pg "$work/data"
pid=""
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

failures=0
fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}
pass() { echo "ok: $*"; }

# Runs the binary with the given arguments; sets $status, $out and $err.
run() {
    set +e
    "$bin" "$@" >"$work/out" 2>"$work/err"
    status=$?
    set -e
    out="$(cat "$work/out")"
    err="$(cat "$work/err")"
}

expect_status() {
    local want="$1" what="$2"
    if [ "$status" -eq "$want" ]; then
        pass "$what exits $want"
    else
        fail "$what: exit status $status, want $want; stdout: $out; stderr: $err"
    fi
}

run version
expect_status 0 "version"
if [[ "$out" == dossier\ * ]]; then pass "version prints '$out'"; else fail "version printed '$out'"; fi

run --help
expect_status 0 "--help"
if [[ "$out" == *serve* ]]; then pass "--help lists serve"; else fail "--help output: $out"; fi

run help
expect_status 0 "help"

run serve --help
expect_status 0 "serve --help"

run frobnicate
expect_status 2 "unknown subcommand"
if [[ "$err" == *frobnicate* ]]; then pass "usage error names the command"; else fail "stderr: $err"; fi

run serve --no-such-option
expect_status 2 "unknown serve option"

run serve --heartbeat-ms abc
expect_status 2 "bad --heartbeat-ms value"

run
expect_status 2 "no subcommand"

# serve: JSON logs, a heartbeat within 10 s, a clean exit on SIGTERM within 15 s.
log="$work/serve.err"
"$bin" serve --heartbeat-ms 200 --workers 2 >"$work/serve.out" 2>"$log" &
pid=$!

heartbeat=0
for _ in $(seq 1 100); do
    if grep -q '"msg":"heartbeat"' "$log"; then
        heartbeat=1
        break
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
        break
    fi
    sleep 0.1
done
if [ "$heartbeat" -eq 1 ]; then
    pass "serve logged a heartbeat"
else
    fail "no heartbeat within 10 s; stderr so far:"
    cat "$log" >&2
fi
if grep -q '"msg":"node started"' "$log"; then pass "serve logged node started"; else fail "no 'node started' line"; fi

if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    stopped=0
    for _ in $(seq 1 150); do
        if ! kill -0 "$pid" 2>/dev/null; then
            stopped=1
            break
        fi
        sleep 0.1
    done
    if [ "$stopped" -eq 0 ]; then
        kill -9 "$pid" 2>/dev/null || true
        fail "serve still running 15 s after SIGTERM (killed)"
    fi
else
    fail "serve exited before SIGTERM"
fi
set +e
wait "$pid"
serve_status=$?
set -e
pid=""
if [ "$serve_status" -eq 0 ]; then pass "serve exits 0 after SIGTERM"; else fail "serve exit status $serve_status after SIGTERM"; fi
if grep -q '"msg":"node stopped"' "$log"; then pass "serve logged node stopped"; else fail "no 'node stopped' line"; fi

# Every stderr line is one JSON object with ts, level and msg.
if python3 - "$log" <<'PY'; then
import json, sys
bad = 0
with open(sys.argv[1], encoding="utf-8", errors="strict") as f:
    for n, line in enumerate(f, 1):
        try:
            obj = json.loads(line)
            assert isinstance(obj, dict), "not an object"
            for key in ("ts", "level", "msg"):
                assert key in obj, "no " + key
        except Exception as e:  # noqa: BLE001 - report every kind of bad line
            print(f"line {n} is not a log line ({e}): {line!r}", file=sys.stderr)
            bad += 1
sys.exit(1 if bad else 0)
PY
    pass "every stderr line of serve is a JSON log line"
else
    fail "serve wrote lines on stderr that are not JSON logs"
fi

if [ "$failures" -ne 0 ]; then
    echo "$failures check(s) failed" >&2
    exit 1
fi
echo "all checks passed"
