#!/usr/bin/env bash
# End-to-end: docs/quickstart.md, executed. Starts the real `dossier serve` on a fresh data
# directory of its own (private PostgreSQL cluster, demo tenant, one-time password), then runs
# every ```sh block of the quickstart, in order, in one shell with PASSWORD and DOSSIER set as
# the reader would, and checks what they printed and what the audit trail holds.
# Needs DOSSIER_BIN and DS_SOURCE_DIR (set by ctest), curl, jq and Debian's postgresql-15.
set -euo pipefail

bin="${DOSSIER_BIN:?DOSSIER_BIN must name the dossier binary}"
src="${DS_SOURCE_DIR:?DS_SOURCE_DIR must name the source tree}"
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    echo "SKIP: PostgreSQL server binaries are not installed"
    exit 77
fi
unset DOSSIER_CONFIG DOSSIER_DATABASE__DSN DOSSIER_DATABASE__OWNER_DSN DOSSIER_DATA_DIR
export DOSSIER_HTTP__LISTEN="127.0.0.1:0"

# Under /tmp: the cluster runs as the postgres user when we are root, which must reach it.
work="$(mktemp -d /tmp/ds-e2e-quick.XXXXXX)"
chmod 0711 "$work"
export DOSSIER_DATA_DIR="$work/data"
# shellcheck source=tests/e2e/lib/api.sh
. "$src/tests/e2e/lib/api.sh"
cleanup() {
    local rc=$?
    ds_api_stop
    if [ "$rc" -ne 0 ] && [ -f "$work/serve.err" ]; then
        grep -v '"level":"\(debug\|info\)"' "$work/serve.err" | tail -n 20 >&2 || true
    fi
    "$bin" db stop --data-dir "$DOSSIER_DATA_DIR" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

ds_api_start
PASSWORD="$(sed -n '/with the password/{n;n;p}' "$work/serve.out" | tr -d ' ')"
if [ -z "$PASSWORD" ]; then
    echo "FAIL: the first start printed no demo password" >&2
    exit 1
fi
export PASSWORD DOSSIER="http://demo.localhost:$api_port"

# Every ```sh block, in order, as one script.
awk '/^```sh$/ {on = 1; next} /^```$/ {on = 0} on' "$src/docs/quickstart.md" >"$work/quickstart.sh"
blocks="$(grep -c '^```sh$' "$src/docs/quickstart.md")"
if [ "$blocks" -lt 6 ]; then
    echo "FAIL: docs/quickstart.md has $blocks sh blocks" >&2
    exit 1
fi
if ! bash -euo pipefail "$work/quickstart.sh" >"$work/out" 2>&1; then
    echo "FAIL: the quickstart failed:" >&2
    cat "$work/out" >&2
    exit 1
fi
cat "$work/out"

failures=0
want() { # want PATTERN WHAT
    if grep -qE "$1" "$work/out"; then echo "ok: $2"; else
        echo "FAIL: $2 (no /$1/ in the output)" >&2
        failures=$((failures + 1))
    fi
}
want '"role": "editor"' "the grant was created"
want '^Shared$' "the new user sees the folder through his group"
for action in auth.login user.create group.create group.member_add grant.create; do
    want "	$action	success$" "the audit trail lists $action"
done
if [ "$failures" -ne 0 ]; then exit 1; fi
echo "the quickstart works as written"
