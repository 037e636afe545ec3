/* Integration tests: tenant isolation in PostgreSQL (issue 4, "Tests that must exist").
 *
 * For every tenant table found in the catalog (a table of schema dossier with a tenant_id
 * column, outside the control plane), as the application role: another tenant's rows are
 * invisible to SELECT and untouchable by UPDATE and DELETE, an INSERT carrying another
 * tenant's id is refused by row-level security (42501), and with no tenant set nothing is
 * visible, also on a pooled connection whose earlier transaction set the tenant locally.
 * The catalog is checked too: RLS enabled and forced with the standard policy on every tenant
 * table, the roles' attributes, the application role's privileges (append-only audit log, no
 * access to the control plane), and foreign keys that cannot cross tenants.
 *
 * Rows come from k_fixtures, one or more INSERTs per table run as the owner with the tenant
 * set; test_fixture_per_table fails when a tenant table has no fixture, so a new table cannot
 * slip past the suite.
 *
 * Needs DS_TEST_PG_ENV (pgtest.h), else it exits 77. Every test makes its own tenants (random
 * slugs) and purges them at the end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "runtime/mem.h"
#include "tests/integration/pgsql.h"
#include "tests/integration/pgtest.h"

/* ---- synchronous SQL on one session (the tests depend on session state) ---------------- */

static pgtest_env_t g_env;

static long q_long(PGconn *c, const char *sql, int n, const char *const *params)
{
    char *v = q_value(c, sql, n, params);
    long x = strtol(v, NULL, 10);
    free(v);
    return x;
}

/* How many rows sql changed (UPDATE, DELETE, INSERT). */
static long q_changed(PGconn *c, const char *sql, int n, const char *const *params)
{
    PGresult *r = q(c, sql, n, params);
    long x = strtol(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    return x;
}

/* A new tenant with a random slug (control plane: through the owner). Returns its id. */
static char *tenant_new(PGconn *owner)
{
    return q_value(owner,
                   "INSERT INTO dossier.tenants (slug, name, region)"
                   " VALUES ('t-' || substr(md5(random()::text || clock_timestamp()::text), 1, 20),"
                   " 'isolation test', 'test') RETURNING id",
                   0, NULL);
}

/* Deletes the tenant's rows from every tenant table, then the tenant. Frees *id. */
static void tenant_drop(PGconn *owner, char **id)
{
    const char *p[] = {*id};
    q_exec(owner, "BEGIN");
    PQclear(q(owner, "SELECT dossier.tenant_purge($1)", 1, p));
    PQclear(q(owner, "DELETE FROM dossier.tenant_plan_overrides WHERE tenant_id = $1", 1, p));
    PQclear(q(owner, "DELETE FROM dossier.tenants WHERE id = $1", 1, p));
    q_exec(owner, "COMMIT");
    free(*id);
    *id = NULL;
}

/* ---- the tables ---------------------------------------------------------------------- */

typedef struct name_list {
    char **v;
    size_t n;
} name_list_t;

static void name_list_free(name_list_t *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i]);
    }
    free((void *)l->v);
    l->v = NULL;
    l->n = 0;
}

/* Control-plane tables: no RLS, no privilege for the application role. Everything else in
 * schema dossier with a tenant_id column is a tenant table. */
#define CONTROL_PLANE "'{tenants,tenant_plan_overrides,control_audit,schema_migrations}'"

/* The tenant tables, by name, from the catalog. */
static name_list_t tenant_tables(PGconn *c)
{
    PGresult *r = q(c,
                    "SELECT c.relname FROM pg_catalog.pg_class c"
                    " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
                    " JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid"
                    "  AND a.attname = 'tenant_id' AND NOT a.attisdropped"
                    " WHERE n.nspname = 'dossier' AND c.relkind IN ('r', 'p')"
                    "  AND c.relname <> ALL (" CONTROL_PLANE "::name[])"
                    " ORDER BY 1",
                    0, NULL);
    name_list_t l = {.n = (size_t)PQntuples(r)};
    l.v = ds_xcalloc(l.n + 1, sizeof(char *));
    for (size_t i = 0; i < l.n; i++) {
        l.v[i] = ds_xstrdup(PQgetvalue(r, (int)i, 0));
    }
    PQclear(r);
    if (l.n < 10) {
        fail_msg("only %zu tenant tables: is the database migrated?", l.n);
    }
    return l;
}

/* Rows for each tenant table, inserted in this order as the owner in one transaction with the
 * tenant set; parents are found through sub-selects, which RLS confines to that tenant. */
typedef struct fixture {
    const char *table;
    const char *sql;
} fixture_t;

static const fixture_t k_fixtures[] = {
    {"users", "INSERT INTO dossier.users (email, password_hash, roles)"
              " VALUES ('ann@example.com', '$argon2id$v=19$m=65536,t=3,p=1$x$y', '{admin}')"},
    {"groups", "INSERT INTO dossier.groups (name) VALUES ('staff')"},
    {"group_members", "INSERT INTO dossier.group_members (group_id, user_id)"
                      " SELECT g.id, u.id FROM dossier.groups g, dossier.users u"},
    {"service_accounts", "INSERT INTO dossier.service_accounts (name, created_by)"
                         " SELECT 'sync', id FROM dossier.users"},
    {"api_keys", "INSERT INTO dossier.api_keys (service_account_id, key_prefix, key_hash, scopes)"
                 " SELECT id, 'dsk_ab12', sha256(convert_to(gen_random_uuid()::text, 'UTF8')),"
                 " '{documents:read}' FROM dossier.service_accounts"},
    {"sessions", "INSERT INTO dossier.sessions (user_id, expires_at, ip)"
                 " SELECT id, now() + interval '1 day', '192.0.2.1' FROM dossier.users"},
    {"refresh_tokens",
     "INSERT INTO dossier.refresh_tokens (session_id, token_hash, expires_at)"
     " SELECT id, sha256(convert_to(gen_random_uuid()::text, 'UTF8')), now() + interval '1 day'"
     " FROM dossier.sessions"},
    {"login_throttles", "INSERT INTO dossier.login_throttles (kind, subject_hash, failures)"
                        " VALUES ('account', sha256('\\x00'::bytea), 1)"},
    {"folders", "INSERT INTO dossier.folders (name) VALUES ('root')"},
    {"folders", "INSERT INTO dossier.folders (name, parent_id)"
                " SELECT 'child', id FROM dossier.folders WHERE parent_id IS NULL"},
    {"documents", "INSERT INTO dossier.documents (folder_id, name, created_by)"
                  " SELECT f.id, 'report.pdf', u.id FROM dossier.folders f, dossier.users u"
                  " WHERE f.parent_id IS NULL"},
    {"document_versions",
     "INSERT INTO dossier.document_versions (document_id, version_no, blob_key, size_bytes, sha256)"
     " SELECT id, 1, 'test/' || id, 3, sha256('\\x616263'::bytea) FROM dossier.documents"},
    {"documents", "UPDATE dossier.documents d SET current_version_id = v.id"
                  " FROM dossier.document_versions v WHERE v.document_id = d.id"},
    {"grants", "INSERT INTO dossier.grants (role, folder_id, group_id)"
               " SELECT 'editor', f.id, g.id FROM dossier.folders f, dossier.groups g"
               " WHERE f.parent_id IS NULL"},
    {"share_links", "INSERT INTO dossier.share_links (document_id, expires_at)"
                    " SELECT id, now() + interval '7 days' FROM dossier.documents"},
    {"audit_log",
     "INSERT INTO dossier.audit_log (seq, prev_hash, hash, actor_type, action, outcome)"
     " VALUES (1, decode(repeat('00', 32), 'hex'), sha256('\\x01'::bytea), 'system',"
     " 'tenant.created', 'success')"},
    {"idempotency_keys",
     "INSERT INTO dossier.idempotency_keys (principal_id, key, method, route, request_hash)"
     " SELECT id, 'k-1', 'POST', '/v1/groups', sha256('\\x02'::bytea) FROM dossier.users"},
    {"jobs",
     "INSERT INTO dossier.jobs (kind, payload) VALUES ('index.rebuild', '{\"full\": true}')"},
};

static const size_t k_nfixtures = sizeof(k_fixtures) / sizeof(k_fixtures[0]);

static bool has_fixture(const char *table)
{
    for (size_t i = 0; i < k_nfixtures; i++) {
        if (strcmp(k_fixtures[i].table, table) == 0) {
            return true;
        }
    }
    return false;
}

static void fixtures_insert(PGconn *owner, const char *tenant)
{
    q_exec(owner, "BEGIN");
    set_tenant(owner, tenant);
    for (size_t i = 0; i < k_nfixtures; i++) {
        q_exec(owner, k_fixtures[i].sql);
    }
    q_exec(owner, "COMMIT");
}

/* "dossier"."table", malloc'ed. */
static char *qualified(PGconn *c, const char *table)
{
    char *ident = PQescapeIdentifier(c, table, strlen(table));
    assert_non_null(ident);
    char *out = ds_xasprintf("dossier.%s", ident);
    PQfreemem(ident);
    return out;
}

/* A digest of the tenant's rows in table, as the owner sees them with the tenant set. */
static char *rows_digest(PGconn *owner, const char *tenant, const char *table)
{
    char *rel = qualified(owner, table);
    char *sql = ds_xasprintf("SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, ','"
                             " ORDER BY t::text)), '') FROM %s t",
                             rel);
    q_exec(owner, "BEGIN");
    set_tenant(owner, tenant);
    char *v = q_value(owner, sql, 0, NULL);
    q_exec(owner, "COMMIT");
    free(sql);
    free(rel);
    return v;
}

/* ---- tests --------------------------------------------------------------------------- */

/* Every tenant table has a fixture, every fixture a table, and the fixtures give each table
 * at least one row. */
static void test_fixture_per_table(void **state)
{
    (void)state;
    PGconn *owner = pg_open(g_env.owner_dsn);
    name_list_t tables = tenant_tables(owner);
    for (size_t i = 0; i < tables.n; i++) {
        if (!has_fixture(tables.v[i])) {
            fail_msg("tenant table %s has no fixture in k_fixtures (test_isolation.c)",
                     tables.v[i]);
        }
    }
    for (size_t i = 0; i < k_nfixtures; i++) {
        bool found = false;
        for (size_t j = 0; j < tables.n && !found; j++) {
            found = strcmp(k_fixtures[i].table, tables.v[j]) == 0;
        }
        if (!found) {
            fail_msg("fixture for %s, which is not a tenant table", k_fixtures[i].table);
        }
    }
    char *t = tenant_new(owner);
    fixtures_insert(owner, t);
    for (size_t i = 0; i < tables.n; i++) {
        char *d = rows_digest(owner, t, tables.v[i]);
        if (strncmp(d, "0:", 2) == 0) {
            fail_msg("the fixtures left %s empty", tables.v[i]);
        }
        free(d);
    }
    tenant_drop(owner, &t);
    name_list_free(&tables);
    pg_close(&owner);
}

static bool app_may(PGconn *app, const char *rel, const char *priv)
{
    const char *p[] = {rel, priv};
    char *v = q_value(app, "SELECT has_table_privilege(current_user, $1::regclass, $2)", 2, p);
    bool yes = strcmp(v, "t") == 0;
    free(v);
    return yes;
}

/* As the application role with tenant a set, in one transaction rolled back at the end. */
static void check_table_from_a(PGconn *app, const char *table, const char *a, const char *b)
{
    char *rel = qualified(app, table);
    const char *pb[] = {b};
    const char *pab[] = {a, b};
    char *sql;
    bool may_update = app_may(app, rel, "UPDATE");
    bool may_delete = app_may(app, rel, "DELETE");

    q_exec(app, "BEGIN");
    set_tenant(app, a);
    /* SELECT: a's rows only. */
    sql = ds_xasprintf("SELECT count(*) FILTER (WHERE tenant_id = $1), count(*),"
                       " count(*) FILTER (WHERE tenant_id = $2) FROM %s",
                       rel);
    PGresult *r = q(app, sql, 2, pab);
    long mine = strtol(PQgetvalue(r, 0, 0), NULL, 10);
    long visible = strtol(PQgetvalue(r, 0, 1), NULL, 10);
    long theirs = strtol(PQgetvalue(r, 0, 2), NULL, 10);
    PQclear(r);
    if (mine < 1 || visible != mine || theirs != 0) {
        fail_msg("%s as tenant A: own %ld, visible %ld, B's %ld", table, mine, visible, theirs);
    }
    free(sql);

    /* UPDATE and DELETE aimed at b's rows touch nothing. */
    sql = ds_xasprintf("UPDATE %s SET tenant_id = tenant_id WHERE tenant_id = $1", rel);
    if (may_update) {
        assert_int_equal(q_changed(app, sql, 1, pb), 0);
    } else {
        q_fails_msg(app, sql, 1, pb, "42501", "permission denied");
    }
    free(sql);
    sql = ds_xasprintf("DELETE FROM %s WHERE tenant_id = $1", rel);
    if (may_delete) {
        assert_int_equal(q_changed(app, sql, 1, pb), 0);
    } else {
        q_fails_msg(app, sql, 1, pb, "42501", "permission denied");
    }
    free(sql);

    /* Moving a's rows to b, or inserting a row for b, is refused by the policy. */
    sql = ds_xasprintf("UPDATE %s SET tenant_id = $1", rel);
    q_fails_msg(app, sql, 1, pb, "42501", may_update ? "row-level security" : "permission denied");
    free(sql);
    sql = ds_xasprintf("INSERT INTO %s SELECT (jsonb_populate_record(NULL::%s, to_jsonb(t) ||"
                       " jsonb_build_object('tenant_id', $1::uuid, 'id', gen_random_uuid()))).*"
                       " FROM %s t LIMIT 1",
                       rel, rel, rel);
    q_fails_msg(app, sql, 1, pb, "42501", "row-level security");
    free(sql);
    q_exec(app, "ROLLBACK");
    free(rel);
}

/* The heart of it: with tenant A set, B's rows cannot be read, changed or added to. */
static void test_cross_tenant_rows(void **state)
{
    (void)state;
    PGconn *owner = pg_open(g_env.owner_dsn);
    PGconn *app = pg_open(g_env.app_dsn);
    name_list_t tables = tenant_tables(owner);
    char *a = tenant_new(owner);
    char *b = tenant_new(owner);
    fixtures_insert(owner, a);
    fixtures_insert(owner, b);

    char **before = ds_xcalloc(tables.n, sizeof(char *));
    for (size_t i = 0; i < tables.n; i++) {
        before[i] = rows_digest(owner, b, tables.v[i]);
    }
    for (size_t i = 0; i < tables.n; i++) {
        check_table_from_a(app, tables.v[i], a, b);
    }
    /* B's rows are exactly as they were. */
    for (size_t i = 0; i < tables.n; i++) {
        char *after = rows_digest(owner, b, tables.v[i]);
        if (strcmp(after, before[i]) != 0) {
            fail_msg("%s: tenant B's rows changed (%s -> %s)", tables.v[i], before[i], after);
        }
        free(after);
        free(before[i]);
    }
    free((void *)before);

    tenant_drop(owner, &a);
    tenant_drop(owner, &b);
    name_list_free(&tables);
    pg_close(&app);
    pg_close(&owner);
}

/* Every tenant table is empty to a session that has no tenant set. */
static void expect_nothing_visible(PGconn *c, const name_list_t *tables, const char *when)
{
    for (size_t i = 0; i < tables->n; i++) {
        char *rel = qualified(c, tables->v[i]);
        char *sql = ds_xasprintf("SELECT count(*) FROM %s", rel);
        long n = q_long(c, sql, 0, NULL);
        if (n != 0) {
            fail_msg("%s: %ld rows of %s visible", when, n, tables->v[i]);
        }
        free(sql);
        free(rel);
    }
}

/* No tenant set: nothing visible (a fresh session reads NULL, a pooled one '' after a
 * transaction that set the tenant locally; neither is a cast error), nothing insertable. */
static void test_no_tenant_nothing_visible(void **state)
{
    (void)state;
    PGconn *owner = pg_open(g_env.owner_dsn);
    name_list_t tables = tenant_tables(owner);
    char *a = tenant_new(owner);
    fixtures_insert(owner, a);

    PGconn *app = pg_open(g_env.app_dsn);
    PGresult *r = q(app, "SELECT current_setting('app.tenant_id', true)", 0, NULL);
    assert_true(PQgetisnull(r, 0, 0));
    PQclear(r);
    expect_nothing_visible(app, &tables, "fresh session");
    /* FORCE: the owner is no exception. */
    expect_nothing_visible(owner, &tables, "owner without a tenant");

    q_exec(app, "BEGIN");
    set_tenant(app, a);
    assert_true(q_long(app, "SELECT count(*) FROM dossier.users", 0, NULL) >= 1);
    q_exec(app, "COMMIT");
    char *v = q_value(app, "SELECT current_setting('app.tenant_id', true)", 0, NULL);
    assert_string_equal(v, "");
    free(v);
    r = q(app, "SELECT dossier.current_tenant()", 0, NULL);
    assert_true(PQgetisnull(r, 0, 0));
    PQclear(r);
    expect_nothing_visible(app, &tables, "after a transaction that set the tenant");

    const char *pa[] = {a};
    q_fails_msg(app, "INSERT INTO dossier.jobs (tenant_id, kind) VALUES ($1, 'x')", 1, pa, "42501",
                "row-level security");
    q_fails_msg(app, "INSERT INTO dossier.jobs (kind) VALUES ('x')", 0, NULL, "42501",
                "row-level security");

    pg_close(&app);
    tenant_drop(owner, &a);
    name_list_free(&tables);
    pg_close(&owner);
}

/* One tenant table: RLS on and forced, one standard FOR ALL policy, no permissive policy that
 * widens it (restrictive ones may only narrow), tenant_id NOT NULL with a foreign key to
 * tenants. */
static void check_table_policy(PGconn *c, const char *table)
{
    const char *p[] = {table};
    PGresult *r =
        q(c,
          "SELECT c.relrowsecurity, c.relforcerowsecurity,"
          " (SELECT count(*) FROM pg_catalog.pg_policy p WHERE p.polrelid = c.oid"
          "   AND p.polpermissive AND p.polcmd = '*'"
          "   AND pg_catalog.pg_get_expr(p.polqual, p.polrelid) = s.std"
          "   AND pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid) = s.std),"
          " (SELECT count(*) FROM pg_catalog.pg_policy p WHERE p.polrelid = c.oid"
          "   AND p.polpermissive"
          "   AND (coalesce(pg_catalog.pg_get_expr(p.polqual, p.polrelid), s.std) <> s.std"
          "    OR coalesce(pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid), s.std) <> s.std)),"
          " a.attnotnull,"
          " (SELECT count(*) FROM pg_catalog.pg_constraint k WHERE k.conrelid = c.oid"
          "   AND k.contype = 'f' AND k.confrelid = 'dossier.tenants'::regclass"
          "   AND k.conkey = ARRAY[a.attnum])"
          " FROM pg_catalog.pg_class c"
          " JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id',"
          " (SELECT '(tenant_id = dossier.current_tenant())'::text AS std) s"
          " WHERE c.oid = ('dossier.' || quote_ident($1))::regclass",
          1, p);
    static const char *const what[] = {"row security enabled", "row security forced",
                                       "standard policies",    "widening policies",
                                       "tenant_id not null",   "foreign keys to tenants"};
    static const char *const want[] = {"t", "t", "1", "0", "t", "1"};
    for (int i = 0; i < 6; i++) {
        if (strcmp(PQgetvalue(r, 0, i), want[i]) != 0) {
            fail_msg("%s: %s is %s, want %s", table, what[i], PQgetvalue(r, 0, i), want[i]);
        }
    }
    PQclear(r);
}

/* Every tenant table has RLS enabled and forced and the standard policy; no view or
 * materialized view exposes tenant rows around it; current_tenant() is STABLE SQL. */
static void test_catalog_rls(void **state)
{
    (void)state;
    PGconn *c = pg_open(g_env.owner_dsn);
    /* pg_get_expr() qualifies names outside the search_path: compare one spelling. */
    q_exec(c, "SET search_path = pg_catalog");
    name_list_t tables = tenant_tables(c);
    for (size_t i = 0; i < tables.n; i++) {
        check_table_policy(c, tables.v[i]);
    }
    name_list_free(&tables);

    char *v = q_value(c,
                      "SELECT coalesce(string_agg(c.relname, ','), '') FROM pg_class c"
                      " JOIN pg_namespace n ON n.oid = c.relnamespace"
                      " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id'"
                      " WHERE n.nspname = 'dossier' AND c.relkind IN ('v', 'm', 'f')"
                      "  AND NOT (c.relkind = 'v'"
                      "   AND coalesce(c.reloptions, '{}') @> '{security_invoker=true}')",
                      0, NULL);
    if (v[0] != '\0') {
        fail_msg("views around row-level security: %s", v);
    }
    free(v);

    v = q_value(c,
                "SELECT concat_ws(':', l.lanname, p.provolatile, p.prosecdef)"
                " FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang"
                " WHERE p.oid = 'dossier.current_tenant()'::regprocedure",
                0, NULL);
    assert_string_equal(v, "sql:s:f");
    free(v);
    pg_close(&c);
}

/* Roles: the application role cannot get around RLS; neither can the owner. */
static void test_roles(void **state)
{
    (void)state;
    PGconn *app = pg_open(g_env.app_dsn);
    char *v = q_value(app,
                      "SELECT concat_ws(':', current_user, rolsuper, rolbypassrls, rolcreaterole,"
                      " rolcreatedb, pg_has_role(current_user, 'dossier_owner', 'MEMBER'))"
                      " FROM pg_roles WHERE rolname = current_user",
                      0, NULL);
    assert_string_equal(v, "dossier_app:f:f:f:f:f");
    free(v);
    v = q_value(app,
                "SELECT concat_ws(':', rolsuper, rolbypassrls) FROM pg_roles"
                " WHERE rolname = 'dossier_owner'",
                0, NULL);
    assert_string_equal(v, "f:f");
    free(v);
    /* The application role owns nothing (an owner could disable RLS). */
    assert_int_equal(q_long(app,
                            "SELECT (SELECT count(*) FROM pg_class WHERE relowner = r.oid) +"
                            " (SELECT count(*) FROM pg_proc WHERE proowner = r.oid) +"
                            " (SELECT count(*) FROM pg_namespace WHERE nspowner = r.oid)"
                            " FROM pg_roles r WHERE r.rolname = current_user",
                            0, NULL),
                     0);
    pg_close(&app);
}

/* The application role's table privileges: DML on tenant tables, INSERT and SELECT only on
 * the audit log, nothing on the control plane, never TRUNCATE, REFERENCES or TRIGGER. */
static void test_app_privileges(void **state)
{
    (void)state;
    PGconn *app = pg_open(g_env.app_dsn);
    name_list_t tables = tenant_tables(app);
    for (size_t i = 0; i < tables.n; i++) {
        char *rel = qualified(app, tables.v[i]);
        bool audit = strcmp(tables.v[i], "audit_log") == 0;
        if (!app_may(app, rel, "SELECT") || !app_may(app, rel, "INSERT") ||
            app_may(app, rel, "UPDATE") == audit || app_may(app, rel, "DELETE") == audit ||
            app_may(app, rel, "TRUNCATE") || app_may(app, rel, "REFERENCES") ||
            app_may(app, rel, "TRIGGER")) {
            fail_msg("dossier_app has the wrong privileges on %s", tables.v[i]);
        }
        free(rel);
    }
    name_list_free(&tables);
    char *v = q_value(app,
                      "SELECT coalesce(string_agg(c.relname, ','), '') FROM pg_class c"
                      " JOIN pg_namespace n ON n.oid = c.relnamespace"
                      " WHERE n.nspname = 'dossier' AND c.relkind IN ('r', 'p', 'v', 'm')"
                      "  AND c.relname = ANY (" CONTROL_PLANE "::name[])"
                      "  AND (has_table_privilege(current_user, c.oid, 'SELECT')"
                      "   OR has_table_privilege(current_user, c.oid, 'INSERT')"
                      "   OR has_table_privilege(current_user, c.oid, 'UPDATE')"
                      "   OR has_table_privilege(current_user, c.oid, 'DELETE'))",
                      0, NULL);
    if (v[0] != '\0') {
        fail_msg("dossier_app may touch control-plane tables: %s", v);
    }
    free(v);
    pg_close(&app);
}

/* The audit log is append-only for the application: INSERT and SELECT work, UPDATE, DELETE
 * and TRUNCATE are refused even for its own tenant's rows. */
static void test_audit_log_append_only(void **state)
{
    (void)state;
    PGconn *owner = pg_open(g_env.owner_dsn);
    PGconn *app = pg_open(g_env.app_dsn);
    char *a = tenant_new(owner);

    q_exec(app, "BEGIN");
    set_tenant(app, a);
    q_exec(app, "INSERT INTO dossier.audit_log (seq, prev_hash, hash, actor_type, action,"
                " object_type, ip, request_id, outcome, details)"
                " VALUES (1, decode(repeat('00', 32), 'hex'), sha256('\\x01'::bytea), 'anonymous',"
                " 'auth.login', 'user', '198.51.100.7', 'r-1', 'failure', '{\"reason\": \"x\"}')");
    assert_int_equal(q_long(app, "SELECT count(*) FROM dossier.audit_log", 0, NULL), 1);
    q_fails_msg(app, "UPDATE dossier.audit_log SET outcome = 'success'", 0, NULL, "42501",
                "permission denied");
    q_fails_msg(app, "DELETE FROM dossier.audit_log", 0, NULL, "42501", "permission denied");
    q_fails_msg(app, "TRUNCATE dossier.audit_log", 0, NULL, "42501", "permission denied");
    /* Two entries cannot share a place in the chain. */
    q_fails_msg(app,
                "INSERT INTO dossier.audit_log (seq, prev_hash, hash, actor_type, action, outcome)"
                " VALUES (1, decode(repeat('00', 32), 'hex'), sha256('\\x02'::bytea), 'system',"
                " 'x', 'success')",
                0, NULL, "23505", NULL);
    q_exec(app, "COMMIT");

    pg_close(&app);
    tenant_drop(owner, &a);
    pg_close(&owner);
}

/* The control plane is closed to the application except through the routing functions. */
static void test_control_plane_hidden(void **state)
{
    (void)state;
    PGconn *owner = pg_open(g_env.owner_dsn);
    PGconn *app = pg_open(g_env.app_dsn);
    char *a = tenant_new(owner);
    const char *pa[] = {a};
    PQclear(q(owner,
              "INSERT INTO dossier.tenant_plan_overrides (tenant_id, key, value)"
              " VALUES ($1, 'max_users', 7), ($1, 'max_documents', NULL)",
              1, pa));

    static const char *const reads[] = {
        "SELECT * FROM dossier.tenants",
        "SELECT * FROM dossier.tenant_plan_overrides",
        "SELECT * FROM dossier.control_audit",
        "SELECT * FROM dossier.schema_migrations",
        "INSERT INTO dossier.tenants (slug, name, region) VALUES ('evil', 'e', 'x')",
        "UPDATE dossier.tenants SET status = 'active'",
        "INSERT INTO dossier.control_audit (actor, action) VALUES ('x', 'x')",
    };
    for (size_t i = 0; i < sizeof(reads) / sizeof(reads[0]); i++) {
        q_fails_msg(app, reads[i], 0, NULL, "42501", "permission denied");
    }
    q_fails_msg(app, "SELECT dossier.tenant_purge($1)", 1, pa, "42501", "permission denied");

    char *slug = q_value(owner, "SELECT slug FROM dossier.tenants WHERE id = $1", 1, pa);
    const char *ps[] = {slug};
    char *v = q_value(app,
                      "SELECT id || ':' || region || ':' || plan || ':' || status"
                      " FROM dossier.tenant_by_slug($1)",
                      1, ps);
    char *want = ds_xasprintf("%s:test:standard:active", a);
    assert_string_equal(v, want);
    free(v);
    v = q_value(app, "SELECT slug FROM dossier.tenant_by_id($1)", 1, pa);
    assert_string_equal(v, slug);
    free(v);
    v = q_value(app,
                "SELECT string_agg(key || '=' || coalesce(value::text, 'unlimited'), ',')"
                " FROM dossier.tenant_overrides_by_id($1)",
                1, pa);
    assert_string_equal(v, "max_documents=unlimited,max_users=7");
    free(v);
    assert_int_equal(
        q_long(app, "SELECT count(*) FROM dossier.tenant_by_slug('no-such-tenant')", 0, NULL), 0);
    assert_true(q_long(app, "SELECT dossier.schema_version()", 0, NULL) >= 5);

    free(want);
    free(slug);
    pg_close(&app);
    tenant_drop(owner, &a);
    pg_close(&owner);
}

/* Foreign keys include tenant_id: a row cannot point at another tenant's row, even by a
 * valid id the caller learned somehow. */
static void test_cross_tenant_foreign_keys(void **state)
{
    (void)state;
    PGconn *owner = pg_open(g_env.owner_dsn);
    PGconn *app = pg_open(g_env.app_dsn);
    char *a = tenant_new(owner);
    char *b = tenant_new(owner);
    fixtures_insert(owner, a);
    fixtures_insert(owner, b);

    q_exec(owner, "BEGIN");
    set_tenant(owner, b);
    char *b_folder =
        q_value(owner, "SELECT id FROM dossier.folders WHERE parent_id IS NULL", 0, NULL);
    char *b_user = q_value(owner, "SELECT id FROM dossier.users", 0, NULL);
    q_exec(owner, "COMMIT");

    const char *pf[] = {b_folder};
    const char *pu[] = {b_user};
    q_exec(app, "BEGIN");
    set_tenant(app, a);
    q_fails_msg(app, "INSERT INTO dossier.documents (folder_id, name) VALUES ($1, 'x')", 1, pf,
                "23503", NULL);
    q_fails_msg(app, "UPDATE dossier.documents SET folder_id = $1", 1, pf, "23503", NULL);
    q_fails_msg(app, "INSERT INTO dossier.folders (name, parent_id) VALUES ('x', $1)", 1, pf,
                "23503", NULL);
    q_fails_msg(app,
                "INSERT INTO dossier.group_members (group_id, user_id)"
                " SELECT id, $1 FROM dossier.groups",
                1, pu, "23503", NULL);
    q_fails_msg(app,
                "INSERT INTO dossier.grants (role, folder_id, user_id)"
                " SELECT 'admin', id, $1 FROM dossier.folders WHERE parent_id IS NULL",
                1, pu, "23503", NULL);
    q_fails_msg(app, "INSERT INTO dossier.sessions (user_id, expires_at) VALUES ($1, now())", 1, pu,
                "23503", NULL);
    q_exec(app, "ROLLBACK");

    free(b_folder);
    free(b_user);
    pg_close(&app);
    tenant_drop(owner, &a);
    tenant_drop(owner, &b);
    pg_close(&owner);
}

int main(void)
{
    pgtest_env_or_skip(&g_env);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture_per_table),
        cmocka_unit_test(test_cross_tenant_rows),
        cmocka_unit_test(test_no_tenant_nothing_visible),
        cmocka_unit_test(test_catalog_rls),
        cmocka_unit_test(test_roles),
        cmocka_unit_test(test_app_privileges),
        cmocka_unit_test(test_audit_log_append_only),
        cmocka_unit_test(test_control_plane_hidden),
        cmocka_unit_test(test_cross_tenant_foreign_keys),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    pgtest_env_fini(&g_env);
    return failed;
}
