#!/usr/bin/env python3
"""The cross-tenant attack suite, generated from the router (`dossier routes --json`).

Tenant A (the victim) has one object of every kind; tenant B (the attacker) has an admin. For
every route of the table, B's admin sends the route's request with A's ids in the path and in
the route's attack body, and:
  - a route that names an object of A (in its path or body) must answer 404;
  - any other route must answer 2xx/401 and its answer must not contain any id of A;
  - afterwards A's rows in every tenant table, audit log included, are exactly as before.
The table must say how to attack each route (its parameter kinds and, for routes that take a
body, an attack body): a route added without that fails here, as does a parameter kind this
suite does not know. Run by tests/e2e/test_cross_tenant.sh, which starts the server and makes
the tenants; it passes everything in the environment variables read below.
"""
import base64
import http.client
import json
import os
import re
import subprocess
import sys
import uuid

BIN = os.environ["DOSSIER_BIN"]
PORT = int(os.environ["API_PORT"])
A = json.loads(os.environ["VICTIM"])      # slug, tenant_id, email, password, ids by kind
B = json.loads(os.environ["ATTACKER"])    # slug, access (an admin's token), refresh

KINDS = {"user", "group", "grant", "service_account", "api_key", "folder", "document"}
BODY_METHODS = {"POST", "PUT", "PATCH"}
failures = []


def request(method, path, body=None, token=None, host=None):
    conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=20)
    headers = {"Host": host or f"127.0.0.1:{PORT}"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None
    if body is not None:
        data = body.encode()
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=data, headers=headers)
    resp = conn.getresponse()
    text = resp.read().decode("utf-8", "replace")
    conn.close()
    return resp.status, text


def owner_sql(sql):
    out = subprocess.run([BIN, "db", "psql", "--", "-qtA", "-v", "ON_ERROR_STOP=1"],
                         input=sql, capture_output=True, text=True, check=True)
    return out.stdout


def snapshot(tenant_id):
    """Every row of the tenant in every table with a tenant_id, as the owner, hashed per table."""
    tables = owner_sql(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id'"
        " WHERE n.nspname = 'dossier' AND c.relkind = 'r' ORDER BY 1;").split()
    if len(tables) < 10:
        failures.append(f"found only {len(tables)} tenant tables")
    parts = [f"SELECT set_config('app.tenant_id', '{tenant_id}', true);"]
    for t in tables:
        # The filter as well as RLS: control-plane tables (control_audit) have no RLS, and
        # other tests share the cluster and write their own tenants' rows meanwhile.
        parts.append(f"SELECT '{t}', count(*), md5(COALESCE(string_agg(x::text, ',' ORDER BY"
                     f" x::text), '')) FROM dossier.{t} x WHERE x.tenant_id = '{tenant_id}';")
    lines = owner_sql("BEGIN;\n" + "\n".join(parts) + "\nCOMMIT;\n").splitlines()
    return {ln.split("|")[0]: ln for ln in lines if "|" in ln}


def forged_refresh():
    """A's tenant in the clear part, B's secret: must match nothing under A."""
    raw = base64.urlsafe_b64decode(B["refresh"][4:] + "==")
    forged = uuid.UUID(A["tenant_id"]).bytes + raw[16:]
    return "dsr_" + base64.urlsafe_b64encode(forged).decode().rstrip("=")


def fill(template, nonce):
    values = dict(A["ids"])
    values.update({"user_email": A["email"], "user_password": A["password"],
                   "refresh_token": forged_refresh(), "nonce": nonce})
    names = set(re.findall(r"\{([a-z_]+)\}", template))
    unknown = names - set(values)
    if unknown:
        failures.append(f"attack body names unknown placeholders {sorted(unknown)}")
    for name in names:
        template = template.replace("{" + name + "}", values.get(name, ""))
    return template, bool(names & KINDS)


def attack(route, i):
    method, pattern = route["method"], route["path"]
    name = route["name"]
    kinds = [k for k in route["param_kinds"].split(",") if k]
    params = re.findall(r"\{[a-z_]+\}", pattern)
    if len(kinds) != len(params):
        failures.append(f"{name}: {len(params)} path parameters but param_kinds {kinds}")
        return
    path = pattern
    for placeholder, kind in zip(params, kinds):
        if kind not in KINDS:
            failures.append(f"{name}: parameter kind {kind!r} is unknown to the attack suite")
            return
        path = path.replace(placeholder, A["ids"][kind], 1)
    body = route["attack_body"]
    names_victim = bool(kinds)
    if body is None and method in BODY_METHODS and method != "PUT":
        failures.append(f"{name}: {method} route without an attack body")
        return
    if body is not None:
        body, refs = fill(body, f"x{i}")
        names_victim = names_victim or refs
    host = None
    token = B["access"]
    if "login" in route["flags"]:
        host = f"{B['slug']}.localhost:{PORT}"   # A's credentials at B's host
        token = None
    status, text = request(method, path, body, token, host)
    leaked = [k for k, v in A["ids"].items() if v in text]
    if names_victim:
        ok = status == 404
        want = "404"
    else:
        ok = status in (200, 201, 204, 401) and not leaked
        want = "2xx/401 without A's ids"
    verdict = "ok" if ok else "FAIL"
    print(f"{verdict}: {method} {pattern} as B with A's ids -> {status} (want {want})")
    if not ok:
        failures.append(f"{method} {pattern}: {status} {text[:200]} leaked={leaked}")


def main():
    routes = json.loads(subprocess.run([BIN, "routes", "--json"], capture_output=True,
                                       text=True, check=True).stdout)
    before = snapshot(A["tenant_id"])
    # Routes that name none of A's ids go first: whatever they answer, B has not yet sent
    # A's ids anywhere (its own audit trail records the ids of B's failed attempts later).
    def names_ids(r):
        return bool(r["param_kinds"]) or bool(re.search(
            r"\{(" + "|".join(KINDS) + r")\}", r["attack_body"] or ""))
    ordered = sorted(routes, key=names_ids)
    for i, route in enumerate(ordered):
        attack(route, i)
    after = snapshot(A["tenant_id"])
    for table in sorted(set(before) | set(after)):
        if before.get(table) != after.get(table):
            failures.append(f"tenant A's {table} changed: {before.get(table)} -> {after.get(table)}")
    if not failures:
        print(f"ok: {len(routes)} routes attacked; tenant A unchanged in {len(before)} tables")
        return 0
    for f in failures:
        print(f"FAIL: {f}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
