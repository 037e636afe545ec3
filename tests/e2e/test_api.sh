#!/usr/bin/env bash
# End-to-end: the HTTP API of the real binary, over real HTTP (curl), with the suite's
# PostgreSQL: login and its throttling, refresh rotation and reuse detection, logout, users
# (plan limit, If-Match, deactivation), groups and members, Idempotency-Key, grants and the
# permission report through a group, service accounts and scoped API keys, the audit trail,
# a suspended tenant, and bad input of every kind (malformed JSON, unknown fields, duplicate
# keys, wrong media type, invalid UTF-8, forged, tampered and alg=none tokens, bad ids).
# Needs DOSSIER_BIN, DS_SOURCE_DIR and DS_TEST_PG_ENV (set by ctest), curl and python3.
set -euo pipefail

bin="${DOSSIER_BIN:?DOSSIER_BIN must name the dossier binary}"
src="${DS_SOURCE_DIR:?DS_SOURCE_DIR must name the source tree}"
# shellcheck source=tests/e2e/lib/pg.sh
. "$src/tests/e2e/lib/pg.sh"
# shellcheck source=tests/e2e/lib/api.sh
. "$src/tests/e2e/lib/api.sh"

work="$(mktemp -d /tmp/ds-e2e-api.XXXXXX)"
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
export DOSSIER_LOG_LEVEL=info

failures=0
fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}
pass() { echo "ok: $*"; }
expect() { # expect STATUS WHAT
    if [ "$api_status" = "$1" ]; then pass "$2"; else fail "$2: status $api_status, body $api_body"; fi
}
expect_problem() { # expect_problem STATUS SLUG WHAT
    if [ "$api_status" = "$1" ] && printf '%s' "$api_body" | grep -q "problems/$2\""; then
        pass "$3"
    else
        fail "$3: status $api_status, body $api_body"
    fi
}
header() { grep -i "^$1:" "$api_headers" | head -n1 | cut -d' ' -f2- | tr -d '\r'; }
psql_owner() { "$bin" db psql --data-dir "$DOSSIER_DATA_DIR" -- -qtA -v ON_ERROR_STOP=1; }

slug="api$RANDOM$RANDOM"
ds_api_tenant "$slug"
admin_pw="$api_password"
ds_api_start
tenant_id="$(printf "SELECT id FROM dossier.tenants WHERE slug = '%s';\n" "$slug" | psql_owner)"

# --- login ------------------------------------------------------------------------------------
ds_api_login "$slug" "admin@$slug.test" "$admin_pw"
if [ "${api_access:0:3}" = "eyJ" ] && [ "${api_refresh:0:4}" = "dsr_" ]; then
    pass "login answers an access token and a refresh token"
else
    fail "login: $api_body"
fi
admin_access="$api_access"
admin_refresh="$api_refresh"
login() { # login SLUG EMAIL PASSWORD: sets api_status/api_body (no bearer)
    local b
    b="$(python3 -c 'import json,sys; print(json.dumps({"email": sys.argv[1], "password": sys.argv[2]}))' "$2" "$3")"
    api_status="$(curl -s --max-time 20 -o "$work/api_body" -D "$work/api_headers" -w '%{http_code}' \
        --resolve "$1.localhost:$api_port:127.0.0.1" -H 'Content-Type: application/json' -d "$b" \
        "http://$1.localhost:$api_port/v1/auth/login")"
    api_body="$(cat "$work/api_body")"
    api_headers="$work/api_headers"
}
login "$slug" "admin@$slug.test" "wrong password here"
expect_problem 401 unauthorized "a wrong password is 401"
login "$slug" "nobody@$slug.test" "wrong password here"
expect_problem 401 unauthorized "an unknown email is the same 401"
login "nosuchtenant$RANDOM" "admin@$slug.test" "$admin_pw"
expect_problem 404 not-found "an unknown tenant host is 404"
# Throttling per account: after 5 failures, locked with backoff.
for _ in 1 2 3 4 5; do login "$slug" "victim@$slug.test" "wrong password here"; done
# The 6th failure locks for 2 s, the 7th for 4 s...: a slow machine may see a lock expire.
for _ in 1 2 3 4; do
    login "$slug" "victim@$slug.test" "wrong password here"
    if [ "$api_status" = 429 ]; then break; fi
done
if [ "$api_status" = 429 ] && [ -n "$(header Retry-After)" ]; then
    pass "repeated failures lock the account (429 with Retry-After)"
else
    fail "throttle: status $api_status"
fi

# --- users ------------------------------------------------------------------------------------
api_access="$admin_access"
ds_api_call POST /v1/users '{"email":"alice@example.com","password":"correct horse battery","display_name":"Alice"}'
expect 201 "an admin creates a user"
alice="$(ds_api_json 'j["id"]')"
if [ "$(header Location)" = "/v1/users/$alice" ] && [ "$(header ETag)" = '"1"' ]; then
    pass "a create answers Location and ETag"
else
    fail "create headers: $(cat "$api_headers")"
fi
hash_of() { printf "BEGIN; SELECT set_config('app.tenant_id', '%s', true); SELECT password_hash FROM dossier.users WHERE email = '%s'; COMMIT;\n" "$tenant_id" "$1" | psql_owner | sed -n '2p'; }
case "$(hash_of alice@example.com)" in
'$argon2id$v=19$m=19456,t=2,p=1$'*) pass "passwords are argon2id at the configured cost" ;;
*) fail "alice's hash: $(hash_of alice@example.com | cut -c1-40)" ;;
esac
printf 'another good password 1' | DOSSIER_AUTH__PASSWORD_ITERATIONS=3 DOSSIER_AUTH__PASSWORD_MEMORY_KIB=8192 \
    "$bin" user create --tenant "$slug" --email carol@example.com --password-stdin >/dev/null
case "$(hash_of carol@example.com)" in
'$argon2id$v=19$m=8192,t=3,p=1$'*) pass "the argon2id cost comes from the config (auth.password_*)" ;;
*) fail "carol's hash: $(hash_of carol@example.com | cut -c1-40)" ;;
esac
login "$slug" "carol@example.com" "another good password 1"
expect 200 "a hash of another cost still verifies"
ds_api_call POST /v1/users '{"email":"ALICE@example.com","password":"correct horse battery"}'
expect_problem 409 conflict "an email taken (ignoring case) is 409"
ds_api_call POST /v1/users '{"email":"bob@example.com","password":"short"}'
expect_problem 400 validation-failed "a password against the policy is 400"
ds_api_call POST /v1/users '{"email":"bob@example.com","password":"correct horse battery","admin":true}'
expect_problem 400 validation-failed "an unknown field is 400"
ds_api_call POST /v1/users '{"email":"bob@example.com","email":"eve@example.com"}'
expect_problem 400 validation-failed "a duplicate key is 400"
ds_api_call POST /v1/users '{"email":"bob@example.com",'
expect_problem 400 validation-failed "malformed JSON is 400"
ds_api_call POST /v1/users $'{"email":"b\xffb@example.com"}'
expect_problem 400 validation-failed "invalid UTF-8 is 400"
api_status="$(curl -s --max-time 20 -o "$work/api_body" -w '%{http_code}' -H "Authorization: Bearer $api_access" \
    -H 'Content-Type: text/plain' -d '{"email":"bob@example.com"}' "$api_base/v1/users")"
api_body="$(cat "$work/api_body")"
expect_problem 415 unsupported-media-type "a body that is not JSON is 415"
long_pw="$(python3 -c 'print("\U0001F600" * 250 + "abcdef")')"
ds_api_call POST /v1/users "{\"email\":\"emoji@example.com\",\"password\":\"$long_pw\"}"
expect 201 "a 256-character password of 1,006 bytes is taken whole"
login "$slug" "emoji@example.com" "$long_pw"
expect 200 "and it logs in"
ds_api_call POST /v1/users "{\"email\":\"emoji2@example.com\",\"password\":\"x$long_pw\"}"
expect_problem 400 validation-failed "a 257-character password is refused"
ds_api_call GET "/v1/users/$alice" ""
expect 200 "a user is read back"
ds_api_call PATCH "/v1/users/$alice" '{"display_name":"Alice B."}' -H 'If-Match: "9"'
expect_problem 412 precondition-failed "PATCH with a stale If-Match is 412"
ds_api_call PATCH "/v1/users/$alice" '{"display_name":"Alice B."}' -H 'If-Match: "1"'
if [ "$api_status" = 200 ] && [ "$(ds_api_json 'j["display_name"]')" = "Alice B." ] &&
    [ "$(header ETag)" = '"2"' ]; then
    pass "PATCH with the current If-Match changes the user and its ETag"
else
    fail "patch: $api_status $api_body"
fi
ds_api_call GET /v1/users/not-a-uuid ""
expect_problem 404 not-found "a malformed id is 404"
ds_api_call GET /v1/users/00000000-0000-7000-8000-000000000000 ""
expect_problem 404 not-found "an unknown id is 404"

# --- plan limit on users: racing creates never pass it ----------------------------------------
count_active() { printf "BEGIN; SELECT set_config('app.tenant_id', '%s', true); SELECT count(*) FROM dossier.users WHERE status = 'active'; COMMIT;\n" "$tenant_id" | psql_owner | sed -n '2p'; }
before="$(count_active)"
"$bin" tenant limit "$slug" max_users=5 >/dev/null
sleep 3.5 # the node's directory re-reads the plan within DS_API_DIR_TTL_MS
racers=()
for i in 1 2 3 4 5 6; do
    curl -s --max-time 20 -o /dev/null -w '%{http_code}\n' -H "Authorization: Bearer $admin_access" \
        -H 'Content-Type: application/json' -d "{\"email\":\"race$i@example.com\"}" \
        "$api_base/v1/users" >"$work/race$i" &
    racers+=($!)
done
wait "${racers[@]}"
created=$(cat "$work"/race* | grep -c '^201$' || true)
active="$(count_active)"
if [ "$active" = 5 ] && [ "$created" = $((5 - before)) ]; then
    pass "6 racing creates under max_users=5 ($before users exist) create exactly $created"
else
    fail "plan limit: $created created, $active active users"
fi
ds_api_call POST /v1/users '{"email":"late@example.com"}'
expect_problem 409 plan-limit-reached "a create past the plan's user limit is 409"
ds_api_call GET "/v1/users?limit=200" ""
racer="$(ds_api_json '[u["id"] for u in j["items"] if u["email"].startswith("race")][0]')"
ds_api_call DELETE "/v1/users/$racer" ""
ds_api_call POST /v1/users '{"email":"seat@example.com"}'
expect 201 "a deactivation frees a seat"
ds_api_call PATCH "/v1/users/$racer" '{"status":"active"}'
expect_problem 409 plan-limit-reached "reactivating past the plan's user limit is 409"
"$bin" tenant limit "$slug" max_users=unlimited >/dev/null

# --- groups, members, idempotency ---------------------------------------------------------------
ds_api_call POST /v1/groups '{"name":"Editors"}' -H 'Idempotency-Key: grp-1'
expect 201 "an admin creates a group"
group="$(ds_api_json 'j["id"]')"
ds_api_call POST /v1/groups '{"name":"Editors"}' -H 'Idempotency-Key: grp-1'
if [ "$api_status" = 201 ] && [ "$(ds_api_json 'j["id"]')" = "$group" ] &&
    [ "$(header Idempotent-Replayed)" = true ]; then
    pass "a retried create with its Idempotency-Key replays the first answer"
else
    fail "idempotent replay: $api_status $api_body"
fi
ds_api_call POST /v1/groups '{"name":"Other"}' -H 'Idempotency-Key: grp-1'
expect_problem 422 idempotency-key-reused "the same Idempotency-Key with another request is 422"
ds_api_call PUT "/v1/groups/$group/members/$alice" ""
expect 204 "an admin adds a member"
ds_api_call PUT "/v1/groups/$group/members/$alice" ""
expect 204 "adding a member twice is still 204"
ds_api_call GET "/v1/groups/$group/members" ""
if [ "$(ds_api_json 'j["items"][0]["id"]')" = "$alice" ]; then pass "members list"; else fail "members: $api_body"; fi

# --- grants and permissions through a group ---------------------------------------------------
folders="$(printf "BEGIN; SELECT set_config('app.tenant_id', '%s', true);
WITH r AS (INSERT INTO dossier.folders (name) VALUES ('Projects') RETURNING id),
     s AS (INSERT INTO dossier.folders (name, parent_id) SELECT 'Apollo', id FROM r RETURNING id, parent_id),
     o AS (INSERT INTO dossier.folders (name) VALUES ('Private') RETURNING id)
SELECT s.parent_id || ' ' || s.id || ' ' || o.id FROM s, o; COMMIT;\n" "$tenant_id" | psql_owner | sed -n '2p')"
read -r projects apollo private <<<"$folders"
ds_api_call POST /v1/grants "{\"role\":\"editor\",\"folder_id\":\"$projects\",\"group_id\":\"$group\"}"
expect 201 "an admin grants a group a role on a folder"
grant="$(ds_api_json 'j["id"]')"
ds_api_call GET "/v1/folders/$apollo/permissions" ""
if [ "$api_status" = 200 ] && printf '%s' "$api_body" | grep -q "$grant"; then
    pass "the permission report of a subfolder names the inherited grant"
else
    fail "permissions: $api_status $api_body"
fi
ds_api_login "$slug" "alice@example.com" "correct horse battery"
alice_access="$api_access"
alice_refresh="$api_refresh"
ds_api_call GET /v1/folders ""
if printf '%s' "$api_body" | grep -q "$apollo" && ! printf '%s' "$api_body" | grep -q "$private"; then
    pass "a member sees the folders granted to her group, not the others"
else
    fail "folders as alice: $api_body"
fi
ds_api_call GET "/v1/folders/$private/permissions" ""
expect_problem 404 not-found "a folder the caller may not see is 404"
ds_api_call POST /v1/grants "{\"role\":\"viewer\",\"folder_id\":\"$private\",\"user_id\":\"$alice\"}"
expect_problem 404 not-found "granting on a folder one cannot see is 404"
ds_api_call POST /v1/grants "{\"role\":\"viewer\",\"folder_id\":\"$apollo\",\"user_id\":\"$alice\"}"
expect_problem 403 forbidden "granting needs the admin role on the folder (403 when visible)"
ds_api_call POST /v1/groups '{"name":"Nope"}'
expect_problem 403 forbidden "a viewer cannot create groups"
ds_api_call GET /v1/audit ""
expect_problem 403 forbidden "a viewer cannot read the audit trail"
ds_api_call GET "/v1/service-accounts/$group" ""
expect_problem 404 not-found "admin-only objects are 404 to others"

# --- refresh, reuse detection, logout ---------------------------------------------------------
api_access=""
ds_api_call POST /v1/auth/refresh "{\"refresh_token\":\"$alice_refresh\"}"
expect 200 "a refresh token is exchanged for a new pair"
rotated="$(ds_api_json 'j["refresh_token"]')"
ds_api_call POST /v1/auth/refresh "{\"refresh_token\":\"$alice_refresh\"}"
expect_problem 401 unauthorized "a rotated refresh token replayed is 401"
ds_api_call POST /v1/auth/refresh "{\"refresh_token\":\"$rotated\"}"
expect_problem 401 unauthorized "the replay revoked the whole family (the successor is refused)"
reuse="$(printf "BEGIN; SELECT set_config('app.tenant_id', '%s', true); SELECT count(*) FROM dossier.audit_log WHERE action = 'auth.token_reuse'; COMMIT;\n" "$tenant_id" | psql_owner | sed -n '2p')"
if [ "$reuse" = 1 ]; then pass "token reuse is audited"; else fail "token reuse audit: $reuse"; fi
ds_api_login "$slug" "alice@example.com" "correct horse battery"
r1="$api_refresh"
ds_api_login "$slug" "alice@example.com" "correct horse battery"
r2="$api_refresh"
ds_api_call POST /v1/auth/logout "{\"refresh_token\":\"$r1\"}"
expect 204 "logout"
api_access=""
ds_api_call POST /v1/auth/refresh "{\"refresh_token\":\"$r1\"}"
expect_problem 401 unauthorized "a logged-out session's refresh token is refused"
ds_api_login "$slug" "alice@example.com" "correct horse battery"
ds_api_call POST /v1/auth/logout '{"everywhere":true}'
expect 204 "log out everywhere"
api_access=""
ds_api_call POST /v1/auth/refresh "{\"refresh_token\":\"$r2\"}"
expect_problem 401 unauthorized "after log out everywhere, every session is gone"

# --- tokens that must not pass ------------------------------------------------------------------
api_access="eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.$(printf '{"sub":"%s","tid":"%s"}' "$alice" "$tenant_id" | base64 -w0 | tr '+/' '-_' | tr -d '=')."
ds_api_call GET /v1/users ""
expect_problem 401 unauthorized "an alg=none token is 401"
api_access="${admin_access%?}x"
ds_api_call GET /v1/users ""
expect_problem 401 unauthorized "a tampered token is 401"
api_access="dsk_notakey"
ds_api_call GET /v1/users ""
expect_problem 401 unauthorized "a malformed API key is 401"

# --- service accounts and API keys -------------------------------------------------------------
api_access="$admin_access"
ds_api_call POST /v1/service-accounts '{"name":"ci","roles":["admin"]}'
expect 201 "an admin creates a service account with an API key"
sa="$(ds_api_json 'j["service_account"]["id"]')"
key="$(ds_api_json 'j["api_key"]["key"]')"
key_id="$(ds_api_json 'j["api_key"]["id"]')"
ds_api_call POST "/v1/service-accounts/$sa/keys" '{"name":"reader","scopes":["read"]}'
expect 201 "a read-scoped key"
read_key="$(ds_api_json 'j["key"]')"
api_access="$key"
ds_api_call GET /v1/users ""
expect 200 "an API key authenticates"
api_access="$read_key"
ds_api_call GET /v1/groups ""
expect 200 "a read-scoped key reads"
ds_api_call POST /v1/groups '{"name":"By reader"}'
expect_problem 403 forbidden "a read-scoped key cannot write"
api_access="$admin_access"
ds_api_call DELETE "/v1/service-accounts/$sa/keys/$key_id" ""
expect 204 "an admin revokes a key"
api_access="$key"
ds_api_call GET /v1/users ""
expect_problem 401 unauthorized "a revoked key is 401"
keyrow="$(printf "BEGIN; SELECT set_config('app.tenant_id', '%s', true); SELECT count(*) FROM dossier.api_keys WHERE key_hash = sha256(convert_to('%s', 'UTF8')); COMMIT;\n" "$tenant_id" "$read_key" | psql_owner | sed -n '2p')"
if [ "$keyrow" = 1 ] && ! printf "SELECT key_prefix FROM dossier.api_keys;\n" | psql_owner | grep -q "$read_key"; then
    pass "API keys are stored as SHA-256 only"
else
    fail "key storage: $keyrow"
fi

# --- deactivation -------------------------------------------------------------------------------
api_access="$admin_access"
ds_api_call PATCH "/v1/users/$alice" '{"roles":["admin"]}'
expect 200 "an admin makes alice an admin"
ds_api_login "$slug" "alice@example.com" "correct horse battery"
alice_admin="$api_access"
api_access="$admin_access"
ds_api_call DELETE "/v1/users/$alice" ""
expect 204 "an admin deactivates a user"
api_access="$alice_admin"
ds_api_call POST /v1/groups '{"name":"From a ghost"}'
expect_problem 401 unauthorized "a deactivated admin's unexpired token changes nothing"
api_access="$admin_access"
login "$slug" "alice@example.com" "correct horse battery"
expect_problem 401 unauthorized "a deactivated user cannot log in"

# --- the audit trail ------------------------------------------------------------------------------
api_access="$admin_access"
ds_api_call GET "/v1/audit?action=user.create&limit=200" ""
if [ "$api_status" = 200 ] && printf '%s' "$api_body" | grep -q "$alice"; then
    pass "the audit trail lists the user's creation (filtered by action)"
else
    fail "audit: $api_status $api_body"
fi
ds_api_call GET "/v1/audit?object_id=$group" ""
n="$(ds_api_json 'len(j["items"])')"
if [ "$n" -ge 3 ]; then pass "the audit trail filters by object ($n entries)"; else fail "audit by object: $api_body"; fi
ds_api_call GET "/v1/audit?action=auth.login" ""
if printf '%s' "$api_body" | grep -q '"outcome" : "failure"'; then
    pass "failed logins are audited"
else
    fail "failed logins: $api_body"
fi
ds_api_call GET "/v1/audit?since=yesterday" ""
expect_problem 400 bad-request "a malformed time filter is 400"

# --- a suspended tenant ---------------------------------------------------------------------------
"$bin" tenant suspend "$slug" >/dev/null
sleep 3.5
ds_api_call GET /v1/users ""
expect_problem 403 tenant-suspended "a suspended tenant's tokens are refused"
login "$slug" "admin@$slug.test" "$admin_pw"
expect_problem 403 tenant-suspended "a suspended tenant's logins are refused"
"$bin" tenant resume "$slug" >/dev/null
sleep 3.5
ds_api_call GET /v1/users ""
expect 200 "a resumed tenant is served again"

# --- access log: tenant and request id; the tenant header is not sent ------------------------------
ds_api_call GET /v1/users ""
rid="$(header X-Request-Id)"
if grep -q "\"msg\":\"http request\".*\"request_id\":\"$rid\",\"tenant\":\"$tenant_id\"" "$work/serve.err"; then
    pass "the access log line names the request id and the tenant"
else
    fail "access log for $rid: $(grep "$rid" "$work/serve.err" | head -2)"
fi
if grep -qi '^x-dossier-tenant' "$api_headers"; then fail "X-Dossier-Tenant was sent"; else pass "the tenant log header stays inside"; fi

# --- the request rate limit: 429 for that tenant only ---------------------------------------------
other="api$RANDOM$RANDOM"
ds_api_tenant "$other"
other_pw="$api_password"
ds_api_login "$other" "admin@$other.test" "$other_pw"
other_access="$api_access"
"$bin" tenant limit "$slug" api_requests_per_minute=60 >/dev/null
sleep 3.5
limited=0
for _ in $(seq 1 30); do
    api_access="$admin_access"
    ds_api_call GET /v1/groups ""
    if [ "$api_status" = 429 ]; then
        limited=$((limited + 1))
        retry="$(header Retry-After)"
        ratelimit="$(header RateLimit-Limit)"
    fi
done
api_access="$other_access"
ds_api_call GET /v1/groups ""
other_status="$api_status"
if [ "$limited" -gt 0 ] && [ -n "${retry:-}" ] && [ "${ratelimit:-}" = 60 ] && [ "$other_status" = 200 ]; then
    pass "past its request rate a tenant gets 429 with Retry-After ($limited of 30); another tenant is served"
else
    fail "rate limit: $limited limited, Retry-After '${retry:-}', RateLimit-Limit '${ratelimit:-}', other $other_status"
fi
"$bin" tenant limit "$slug" api_requests_per_minute=unlimited >/dev/null
sleep 3.5
api_access="$admin_access"

# --- the process survived everything -----------------------------------------------------------
if kill -0 "$api_pid" 2>/dev/null; then pass "the server is still running"; else fail "the server died"; fi
ds_api_stop
if grep -q '"level":"error"' "$work/serve.err"; then
    fail "errors in the server log: $(grep '"level":"error"' "$work/serve.err" | head -3)"
fi

# --- signing keys rotate without logging anyone out ---------------------------------------------
kid() { python3 -c 'import base64,json,sys; h=sys.argv[1].split(".")[0]; print(json.loads(base64.urlsafe_b64decode(h + "=" * (-len(h) % 4)))["kid"])' "$1"; }
old_kid="$(kid "$admin_access")"
"$bin" keys rotate-signing --data-dir "$DOSSIER_DATA_DIR" >/dev/null
ds_api_start
api_access="$admin_access"
ds_api_call GET /v1/users ""
expect 200 "a token signed before the rotation still works after a restart"
ds_api_login "$slug" "admin@$slug.test" "$admin_pw"
new_kid="$(kid "$api_access")"
if [ -n "$new_kid" ] && [ "$new_kid" != "$old_kid" ]; then
    pass "new tokens are signed with the new key ($old_kid -> $new_kid)"
else
    fail "kids: $old_kid -> $new_kid"
fi
if [ "$failures" -ne 0 ]; then
    echo "$failures failure(s)" >&2
    exit 1
fi
echo "all API checks passed"
