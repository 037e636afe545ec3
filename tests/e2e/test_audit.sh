#!/usr/bin/env bash
# End-to-end: the audit chain with the real binary on the suite's PostgreSQL. Entries are
# appended with dossier.audit_append() as dossier_app; `dossier serve` signs checkpoints (every
# second here, and once more at shutdown); then the OWNER role tampers with the table and
# `dossier audit verify` must exit 1 naming the first problem: an edited entry, a missing one, a
# cut tail, a consistent rewrite, a damaged checkpoint file; an intact chain exits 0. Also
# `dossier audit export`. Needs DOSSIER_BIN, DS_TEST_PG_ENV (ctest sets both) and python3.
set -euo pipefail

bin="${DOSSIER_BIN:?DOSSIER_BIN must name the dossier binary}"
src="${DS_SOURCE_DIR:?DS_SOURCE_DIR must name the source tree}"
# shellcheck source=tests/e2e/lib/pg.sh
. "$src/tests/e2e/lib/pg.sh"
work="$(mktemp -d /tmp/ds-e2e-audit.XXXXXX)"
ds_use_test_pg "$work/data"
export DOSSIER_LOG_LEVEL=info
export DOSSIER_AUDIT__CHECKPOINT_INTERVAL_S=1
psql=("$DS_PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -tA)
pid=""
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

failures=0
fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}
pass() { echo "ok: $*"; }
run() { # sets $status, $out, $err
    set +e
    out="$("$bin" "$@" 2>"$work/err")"
    status=$?
    set -e
    err="$(cat "$work/err")"
}
json() { # json EXPR: evaluates EXPR on the JSON document $out (as `d`)
    python3 -c "import json,sys; d=json.loads(sys.stdin.read()); print($1)" <<<"$out"
}

# One tenant per scenario; slugs unique to this run (the database is shared).
sfx="$$"
declare -A tid
for s in intact edit gap cut rewrite forged; do
    "$bin" tenant create --slug "au-$s-$sfx" --name "audit $s" >/dev/null
    tid[$s]="$("${psql[@]}" "$DS_PG_OWNER_DSN" -c "SELECT id FROM dossier.tenants WHERE slug = 'au-$s-$sfx'")"
done
append() { # append SCENARIO N: N entries as dossier_app
    "${psql[@]}" "$DS_PG_APP_DSN" <<SQL >/dev/null
BEGIN;
SELECT set_config('app.tenant_id', '${tid[$1]}', true);
SELECT dossier.audit_append('operator', NULL, 'e2e: dossier audit', 'user.create', 'user',
       gen_random_uuid(), '192.0.2.7', 'req-' || g, 'success', jsonb_build_object('i', g, 'q', 'a"b'))
  FROM generate_series(1, $2) g;
COMMIT;
SQL
}
owner_sql() { # owner_sql SCENARIO SQL: as the table's owner, in the tenant
    "${psql[@]}" "$DS_PG_OWNER_DSN" >/dev/null <<SQL
BEGIN;
SELECT set_config('app.tenant_id', '${tid[$1]}', true);
$2;
COMMIT;
SQL
}
for s in "${!tid[@]}"; do append "$s" 6; done

# --- serve signs checkpoints, then a final one at shutdown ------------------------------------
"$bin" serve --workers 1 >"$work/serve.out" 2>"$work/serve.err" &
pid=$!
signed=0
for _ in $(seq 1 600); do
    if grep -q "\"msg\":\"audit checkpoint signed\",\"tenant\":\"${tid[intact]}\",\"seq\":6" "$work/serve.err"; then signed=1; break; fi
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    sleep 0.1
done
if [ "$signed" -eq 1 ]; then pass "serve signs a checkpoint of the chain head"; else fail "no checkpoint signed: $(grep -v heartbeat "$work/serve.err" | tail -5)"; fi
append intact 2 # after the last round it saw: only the final checkpoint covers these
kill -TERM "$pid"
set +e
wait "$pid"
st=$?
set -e
pid=""
if [ "$st" -eq 0 ]; then pass "serve exits 0"; else fail "serve exit status $st"; fi
if grep -q "\"msg\":\"final audit checkpoint\",\"tenant\":\"${tid[intact]}\",\"seq\":8" "$work/serve.err"; then pass "the final checkpoint signs the head at shutdown"; else fail "no final checkpoint at seq 8: $(grep audit "$work/serve.err" | tail -5)"; fi
perm="$(stat -c %a "$work/data/keys/audit-ed25519.pem")"
if [ "$perm" = 600 ]; then pass "the signing key is a 0600 file in the key store"; else fail "signing key mode $perm"; fi

# --- verify ------------------------------------------------------------------------------------
run audit verify --tenant "au-intact-$sfx" --json
if [ "$status" -eq 0 ] && [ "$(json 'd["intact"], d["entries_checked"], d["checkpoint"]["seq"]')" = "True 8 8" ]; then pass "an intact chain verifies (exit 0) against its checkpoint"; else fail "verify intact: $status $out $err"; fi
run audit verify --tenant "au-intact-$sfx"
if [ "$status" -eq 0 ] && [[ "$out" == *": intact"* && "$out" == *"checkpoint: seq 8"* ]]; then pass "the text report"; else fail "verify text: $out"; fi

expect_broken() { # expect_broken SCENARIO KIND SEQ WHAT
    run audit verify --tenant "au-$1-$sfx" --json
    if [ "$status" -eq 1 ] && [ "$(json 'd["intact"], d["problem"]["kind"], d["problem"]["seq"]')" = "False $2 $3" ]; then
        pass "$4"
    else
        fail "$4: status $status, $out $err"
    fi
}
owner_sql edit "UPDATE dossier.audit_log SET details = '{\"i\": 99}' WHERE seq = 3"
expect_broken edit edited 3 "an owner's edit of an entry is named by its seq"
owner_sql gap "DELETE FROM dossier.audit_log WHERE seq = 4"
expect_broken gap missing 3 "a deleted middle entry is a gap"
if [ "$(json 'd["problem"]["next_seq"]')" = 5 ]; then pass "the gap says where the chain resumes"; else fail "gap: $out"; fi
owner_sql cut "DELETE FROM dossier.audit_log WHERE seq > 4"
expect_broken cut truncated 4 "a cut tail is caught by the checkpoint"
owner_sql rewrite "DO \$\$ DECLARE r record; p bytea; BEGIN
 UPDATE dossier.audit_log SET details = '{\"forged\": true}' WHERE seq = 2;
 FOR r IN SELECT * FROM dossier.audit_log WHERE seq >= 2 ORDER BY seq LOOP
  SELECT hash INTO p FROM dossier.audit_log WHERE seq = r.seq - 1;
  UPDATE dossier.audit_log SET prev_hash = p, hash = sha256(p || dossier.audit_encode(r.tenant_id,
   r.seq, r.id, r.created_at, r.actor_type, r.actor_id, r.actor_label, r.action, r.object_type,
   r.object_id, r.ip, r.request_id, r.outcome, r.details)) WHERE tenant_id = r.tenant_id AND seq = r.seq;
 END LOOP; END \$\$"
expect_broken rewrite rewritten 6 "a chain rewritten consistently by the owner is caught by the checkpoint"
region="$("$bin" config show | sed -n 's/^region: *"\{0,1\}\([a-z0-9-]*\)"\{0,1\}$/\1/p')"
cpfile="$work/data/blobs/$region/${tid[forged]}/audit/checkpoint-latest"
if [ -f "$cpfile" ]; then
    python3 - "$cpfile" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[200] ^= 1
open(p, "wb").write(b)
PY
    expect_broken forged forged 0 "a tampered checkpoint file is reported as forged"
else
    fail "no checkpoint file at $cpfile"
fi

# --- export --------------------------------------------------------------------------------------
run audit export --tenant "au-intact-$sfx" --json
lines="$(printf '%s\n' "$out" | grep -c '^{' || true)"
if [ "$status" -eq 0 ] && [ "$lines" = 8 ] && printf '%s\n' "$out" | python3 -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin]
assert [r["seq"] for r in rows] == list(range(1, 9)), rows
r = rows[0]
assert r["prev_hash"] == "0" * 64 and len(r["hash"]) == 64 and rows[1]["prev_hash"] == r["hash"]
assert r["ip"] == "192.0.2.7/32" and r["details"]["q"] == "a\"b" and r["actor_id"] is None
assert r["created_at"].endswith("Z") and r["actor_type"] == "operator"
'; then pass "export writes every entry as one JSON line"; else fail "export: $status $lines $out $err"; fi
run audit export --tenant "au-intact-$sfx" --json --since 2999-01-01T00:00:00Z
if [ "$status" -eq 0 ] && [ -z "$out" ]; then pass "export --since filters"; else fail "export --since: $status $out"; fi
run audit export --tenant "au-intact-$sfx" --json --until 2000-01-01T00:00:00+02:00
if [ "$status" -eq 0 ] && [ -z "$out" ]; then pass "export --until filters"; else fail "export --until: $status $out"; fi
run audit export --tenant "au-intact-$sfx" --json --since yesterday
if [ "$status" -eq 2 ]; then pass "a time that is not RFC 3339 is a usage error"; else fail "bad --since: $status"; fi
run audit export --tenant "au-intact-$sfx"
if [ "$status" -eq 2 ]; then pass "export needs --json"; else fail "export without --json: $status"; fi
run audit verify --tenant "no-such-tenant-$sfx"
if [ "$status" -eq 1 ] && [[ "$err" == *"no tenant"* ]]; then pass "an unknown tenant fails"; else fail "unknown tenant: $status $err"; fi

for s in "${!tid[@]}"; do
    "${psql[@]}" "$DS_PG_OWNER_DSN" -c "BEGIN; SELECT dossier.tenant_purge('${tid[$s]}'); DELETE FROM dossier.control_audit WHERE tenant_id = '${tid[$s]}'; DELETE FROM dossier.tenants WHERE id = '${tid[$s]}'; COMMIT" >/dev/null || true
done

if [ "$failures" -ne 0 ]; then
    echo "$failures failure(s)" >&2
    exit 1
fi
echo "all audit checks passed"
