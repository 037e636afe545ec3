#!/usr/bin/env bash
# End-to-end: the cross-tenant attack suite (tests/e2e/cross_tenant.py), generated from the
# router: tenant B's admin replays every route with tenant A's ids and gets 404 (or nothing of
# A's), and A's rows are unchanged afterwards. This script starts the real server on the
# suite's PostgreSQL, makes both tenants, and gives A one object of every kind.
# Needs DOSSIER_BIN, DS_SOURCE_DIR and DS_TEST_PG_ENV (set by ctest), curl and python3.
set -euo pipefail

bin="${DOSSIER_BIN:?DOSSIER_BIN must name the dossier binary}"
src="${DS_SOURCE_DIR:?DS_SOURCE_DIR must name the source tree}"
# shellcheck source=tests/e2e/lib/pg.sh
. "$src/tests/e2e/lib/pg.sh"
# shellcheck source=tests/e2e/lib/api.sh
. "$src/tests/e2e/lib/api.sh"

work="$(mktemp -d /tmp/ds-e2e-xt.XXXXXX)"
cleanup() {
    local rc=$?
    ds_api_stop
    if [ "$rc" -ne 0 ] && [ -f "$work/serve.err" ]; then
        echo "--- server log (warnings and errors) ---" >&2
        grep -v '"level":"\(debug\|info\)"' "$work/serve.err" | tail -n 40 >&2 || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
ds_use_test_pg "$work/data"
psql_owner() { "$bin" db psql -- -qtA -v ON_ERROR_STOP=1; }
check() { # check STATUS WHAT
    if [ "$api_status" != "$1" ]; then
        echo "setup failed: $2: status $api_status, body $api_body" >&2
        exit 1
    fi
}

a="xta$RANDOM$RANDOM"
b="xtb$RANDOM$RANDOM"
ds_api_tenant "$a"
a_pw="$api_password"
ds_api_tenant "$b"
b_pw="$api_password"
ds_api_start
a_id="$(printf "SELECT id FROM dossier.tenants WHERE slug = '%s';\n" "$a" | psql_owner)"

# Tenant A's objects, one of every kind the router names.
ds_api_login "$a" "admin@$a.test" "$a_pw"
ds_api_call POST /v1/users '{"email":"victim@example.com","password":"victim password 1"}'
check 201 "user"
user="$(ds_api_json 'j["id"]')"
ds_api_call POST /v1/groups '{"name":"Victims"}'
check 201 "group"
group="$(ds_api_json 'j["id"]')"
ds_api_call PUT "/v1/groups/$group/members/$user" ""
check 204 "member"
ids="$(printf "BEGIN; SELECT set_config('app.tenant_id', '%s', true);
WITH f AS (INSERT INTO dossier.folders (name) VALUES ('Secret') RETURNING id),
     d AS (INSERT INTO dossier.documents (folder_id, name) SELECT id, 'plan.txt' FROM f RETURNING id, folder_id)
SELECT d.folder_id || ' ' || d.id FROM d; COMMIT;\n" "$a_id" | psql_owner | sed -n '2p')"
read -r folder document <<<"$ids"
ds_api_call POST /v1/grants "{\"role\":\"editor\",\"folder_id\":\"$folder\",\"group_id\":\"$group\"}"
check 201 "grant"
grant="$(ds_api_json 'j["id"]')"
ds_api_call POST /v1/service-accounts '{"name":"victim-ci"}'
check 201 "service account"
sa="$(ds_api_json 'j["service_account"]["id"]')"
key="$(ds_api_json 'j["api_key"]["id"]')"
ds_api_login "$a" "victim@example.com" "victim password 1" # a live session in A

VICTIM="$(python3 -c 'import json,sys; a=sys.argv; print(json.dumps({"slug": a[1], "tenant_id": a[2], "email": "admin@" + a[1] + ".test", "password": a[3], "ids": {"user": a[4], "group": a[5], "grant": a[6], "service_account": a[7], "api_key": a[8], "folder": a[9], "document": a[10]}}))' \
    "$a" "$a_id" "$a_pw" "$user" "$group" "$grant" "$sa" "$key" "$folder" "$document")"
ds_api_login "$b" "admin@$b.test" "$b_pw"
ATTACKER="$(python3 -c 'import json,sys; print(json.dumps({"slug": sys.argv[1], "access": sys.argv[2], "refresh": sys.argv[3]}))' \
    "$b" "$api_access" "$api_refresh")"
export VICTIM ATTACKER API_PORT="$api_port"
python3 "$src/tests/e2e/cross_tenant.py"
