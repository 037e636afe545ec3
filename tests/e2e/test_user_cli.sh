#!/usr/bin/env bash
# End-to-end: `dossier user` against the suite's PostgreSQL (the ctest fixture `pg`): create
# (password from stdin, policy, duplicate email), list --json, deactivate (sessions revoked),
# reactivate, reset-password (sessions revoked, new hash), the plan's max_users limit set with
# `dossier tenant limit`, and an audit entry in the tenant's log for every change, without
# password material. Needs DOSSIER_BIN (set by ctest) and python3.
set -euo pipefail

bin="${DOSSIER_BIN:?DOSSIER_BIN must name the dossier binary}"
if ! command -v python3 >/dev/null 2>&1; then
    echo "SKIP: python3 is not installed"
    exit 77
fi
work="$(mktemp -d "${TMPDIR:-/tmp}/ds-e2e-user.XXXXXX")"
# shellcheck source=tests/e2e/lib/pg.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/pg.sh"
ds_use_test_pg "$work/data"
export DOSSIER_LOG_LEVEL=warn
trap 'rm -rf "$work"' EXIT

failures=0
fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}
pass() { echo "ok: $*"; }

# run [--stdin TEXT] ARGS...: runs the binary; sets $status, $out, $err.
run() {
    local input=""
    if [ "$1" = "--stdin" ]; then
        input="$2"
        shift 2
    fi
    set +e
    printf '%s' "$input" | "$bin" "$@" >"$work/out" 2>"$work/err"
    status=$?
    set -e
    out="$(cat "$work/out")"
    err="$(cat "$work/err")"
}
expect() { # expect STATUS WHAT
    if [ "$status" -eq "$1" ]; then pass "$2"; else fail "$2: status $status, stdout: $out, stderr: $err"; fi
}
json() { # json EXPR: evaluates EXPR on $out parsed as `j`
    python3 -c "import json,sys; j=json.loads(sys.argv[1]); print($1)" "$out"
}

slug="ut-$$-$RANDOM"
run tenant create --slug "$slug" --name "User CLI test" --json
expect 0 "tenant create"
tid="$(json 'j["id"]')"
# sql QUERY: runs QUERY as the owner in the test tenant; unaligned tuples on stdout.
sql() {
    printf "BEGIN;\n\\\\o /dev/null\nSELECT set_config('app.tenant_id', '%s', true);\n\\\\o\n%s;\nCOMMIT;\n" \
        "$tid" "$1" | "$bin" db psql -- -tAq -v ON_ERROR_STOP=1
}

# --- usage -------------------------------------------------------------------------------------
run user --help
expect 0 "user --help"
if [[ "$out" == *reset-password* ]]; then pass "--help lists the commands"; else fail "help: $out"; fi
run user
expect 2 "user without a command"
run user create --tenant "$slug" --password-stdin
expect 2 "create without --email"
run user create --tenant "$slug" --email a@example.com
expect 2 "create without --password-stdin"
run user create --tenant "$slug" --email a@example.com --role root --password-stdin
expect 2 "an unknown role"
run user list
expect 2 "list without --tenant"
run user frob --tenant "$slug"
expect 2 "an unknown command"

# --- create ------------------------------------------------------------------------------------
alice_pw='Correct horse battery 1'
run --stdin "$alice_pw"$'\n' user create --tenant "$slug" --email Alice@Example.com \
    --display-name "Alice A" --role editor --role admin --role editor --password-stdin --json
expect 0 "create alice"
if [ "$status" -eq 0 ] && [ "$(json 'j["email"], j["display_name"], j["roles"], j["status"], j["last_login_at"]')" = \
    "Alice@Example.com Alice A ['editor', 'admin'] active None" ]; then
    pass "create prints the user"
else fail "create printed: $out"; fi
alice="$(json 'j["id"]' 2>/dev/null || true)"
if [ "$(sql "SELECT password_hash LIKE '\$argon2id\$%' AND password_changed_at IS NOT NULL FROM dossier.users WHERE id = '$alice'")" = t ]; then
    pass "the password is stored as an argon2id hash"
else fail "alice's password hash"; fi
run --stdin "$alice_pw" user create --tenant "$slug" --email alice@EXAMPLE.com --password-stdin
expect 1 "a second user with the same email (another case)"
if [[ "$err" == *"exists"* ]]; then pass "the error says the email is taken"; else fail "duplicate said: $err"; fi
run --stdin "short1A" user create --tenant "$slug" --email bob@example.com --password-stdin
expect 1 "a short password is refused"
if [[ "$err" == *"password refused"*"at least 12"* ]]; then pass "with the policy's reason"; else fail "short password said: $err"; fi
run --stdin "onlylowercaseletters" user create --tenant "$slug" --email bob@example.com --password-stdin
expect 1 "a password of one kind of characters is refused"
run --stdin "Valid password 1" user create --tenant "$slug" --email not-an-email --password-stdin
expect 1 "a malformed email is refused"
run --stdin "Valid password 1" user create --tenant "no-such-$slug" --email bob@example.com --password-stdin
expect 1 "an unknown tenant"
if [[ "$err" == *"no tenant"* ]]; then pass "is named"; else fail "unknown tenant said: $err"; fi
run --stdin "Bob's password 2" user create --tenant "$slug" --email bob@example.com --password-stdin
expect 0 "create bob (default role)"
if [[ "$out" == "created user bob@example.com"*"roles viewer"* ]]; then pass "text output"; else fail "create bob printed: $out"; fi
bob="$(sql "SELECT id FROM dossier.users WHERE email = 'bob@example.com'")"

# --- list --------------------------------------------------------------------------------------
run user list --tenant "$slug" --json
expect 0 "list --json"
if [ "$status" -eq 0 ] && [ "$(json '[u["email"] for u in j["items"]]')" = "['Alice@Example.com', 'bob@example.com']" ]; then
    pass "list --json gives both users"
else fail "list printed: $out"; fi
run user list --tenant "$slug"
if [ "$status" -eq 0 ] && [[ "$out" == *EMAIL*bob@example.com* ]]; then pass "list as a table"; else fail "list: $out $err"; fi

# --- deactivate / reactivate -------------------------------------------------------------------
sql "INSERT INTO dossier.sessions (user_id, expires_at) VALUES ('$alice', now() + interval '1 day'), ('$alice', now() + interval '1 day')" >/dev/null
run user deactivate --tenant "$slug" --email alice@example.com --json
expect 0 "deactivate alice"
if [ "$status" -eq 0 ] && [ "$(json 'j["status"]')" = deactivated ]; then pass "alice is deactivated"; else fail "deactivate printed: $out"; fi
if [ "$(sql "SELECT count(*) FILTER (WHERE revoked_reason = 'user_deactivated') || '/' || count(*) FROM dossier.sessions WHERE user_id = '$alice'")" = "2/2" ] &&
    [ "$(sql "SELECT deactivated_at IS NOT NULL FROM dossier.users WHERE id = '$alice'")" = t ]; then
    pass "her sessions are revoked (user_deactivated) and deactivated_at is set"
else fail "sessions after deactivate: $(sql "SELECT revoked_reason FROM dossier.sessions")"; fi
run user deactivate --tenant "$slug" --email alice@example.com
expect 0 "deactivating again"
if [[ "$out" == unchanged* ]]; then pass "changes nothing"; else fail "second deactivate printed: $out"; fi
run user deactivate --tenant "$slug" --email nobody@example.com
expect 1 "deactivating an unknown email"

# --- reset-password ----------------------------------------------------------------------------
old_hash="$(sql "SELECT password_hash FROM dossier.users WHERE id = '$bob'")"
sql "INSERT INTO dossier.sessions (user_id, expires_at) VALUES ('$bob', now() + interval '1 day')" >/dev/null
run --stdin "short" user reset-password --tenant "$slug" --email bob@example.com --password-stdin
expect 1 "reset-password with a bad password"
bob_pw='Another long secret 3'
run --stdin "$bob_pw"$'\r\n' user reset-password --tenant "$slug" --email bob@example.com --password-stdin
expect 0 "reset-password"
if [[ "$out" == *"sessions revoked: 1"* ]]; then pass "reports the revoked session"; else fail "reset printed: $out"; fi
if [ "$(sql "SELECT password_hash <> '$old_hash' AND password_changed_at > created_at FROM dossier.users WHERE id = '$bob'")" = t ] &&
    [ "$(sql "SELECT string_agg(revoked_reason, ',') FROM dossier.sessions WHERE user_id = '$bob'")" = password_change ]; then
    pass "a new hash, password_changed_at, the session revoked (password_change)"
else fail "after reset-password"; fi

# --- the plan's user limit ---------------------------------------------------------------------
run tenant limit "$slug" max_users=2
expect 0 "tenant limit max_users=2"
run --stdin "Carol's password 4" user create --tenant "$slug" --email carol@example.com --password-stdin
expect 0 "a second active user fits (alice is deactivated)"
run --stdin "Dave's password 5" user create --tenant "$slug" --email dave@example.com --password-stdin
expect 1 "a third active user is refused"
if [[ "$err" == *"plan limit reached"* ]]; then pass "with 'plan limit reached'"; else fail "limit said: $err"; fi
run user reactivate --tenant "$slug" --email alice@example.com
expect 1 "reactivating alice is refused at the limit too"
run tenant limit "$slug" max_users=
expect 0 "the override removed"
run user reactivate --tenant "$slug" --email alice@example.com --json
if [ "$status" -eq 0 ] && [ "$(json 'j["status"]')" = active ]; then pass "reactivate under the plan's own limit"; else fail "reactivate: $status $out $err"; fi
if [ "$(sql "SELECT count(*) FROM dossier.users WHERE email = 'dave@example.com'")" = 0 ]; then pass "the refused user was not created"; else fail "dave exists"; fi

# --- the audit log -----------------------------------------------------------------------------
audit="$(sql "SELECT string_agg(concat_ws(' ', action, actor_type, actor_id IS NULL, actor_label, object_type, object_id = (SELECT id FROM dossier.users WHERE lower(email) = lower(details->>'email')), outcome), E'\n' ORDER BY seq) FROM dossier.audit_log")"
me="$(id -un)"
want="user.create operator t $me: dossier user create user t success
user.create operator t $me: dossier user create user t success
user.deactivate operator t $me: dossier user deactivate user t success
user.password_reset operator t $me: dossier user reset-password user t success
user.create operator t $me: dossier user create user t success
user.reactivate operator t $me: dossier user reactivate user t success"
if [ "$audit" = "$want" ]; then pass "every change is in the tenant's audit log, and nothing else"; else fail "audit log:
$audit
want:
$want"; fi
if [ "$(sql "SELECT details->>'sessions_revoked' FROM dossier.audit_log WHERE action = 'user.deactivate'")" = 2 ] &&
    [ "$(sql "SELECT details->'roles' FROM dossier.audit_log WHERE seq = 1")" = '["editor", "admin"]' ]; then
    pass "the details say what changed"
else fail "audit details: $(sql "SELECT string_agg(details::text, ' ') FROM dossier.audit_log")"; fi
leaks="$(sql "SELECT count(*) FROM dossier.audit_log WHERE details::text ~* 'argon2|password_hash' OR strpos(details::text, '$alice_pw') > 0 OR strpos(details::text, '$bob_pw') > 0")"
if [ "$leaks" = 0 ]; then pass "no password material in the audit log"; else fail "password material in $leaks audit entries"; fi

if [ "$failures" -ne 0 ]; then
    echo "$failures check(s) failed" >&2
    exit 1
fi
echo "all user CLI e2e checks passed"
