/* Integration tests: the shape of schema dossier (schema/migrations/).
 *
 * - The folder tree: paths kept right by inserts and moves, moves into a folder's own subtree
 *   refused, subtree counts exact on a small tree; and at 1M folders in one tenant, the subtree
 *   query the application runs (dossier.folder_subtree, under RLS as dossier_app) is a range
 *   scan of the path index, never a sequential scan.
 * - Structure every tenant table must keep: indexes lead with tenant_id (the shard key),
 *   foreign keys between tenant tables carry tenant_id, and every foreign key has an index.
 * - Ids (uuid_v7), function privileges, control-plane constraints, the tenant purge.
 *
 * Needs DS_TEST_PG_ENV (pgtest.h), else it exits 77. Every test makes its own tenants. The 1M
 * folders are written and removed through the superuser with triggers off (the owner's trigger
 * path costs minutes on a small machine; the small-tree test covers the triggers). */
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

/* ---- synchronous SQL on one session --------------------------------------------------- */

static pgtest_env_t g_env;

static long q_long(PGconn *c, const char *sql, int n, const char *const *params)
{
    char *v = q_value(c, sql, n, params);
    long x = strtol(v, NULL, 10);
    free(v);
    return x;
}

/* A new tenant with a random slug, through the owner. Returns its id (malloc'ed). */
static char *tenant_new(PGconn *owner)
{
    return q_value(owner,
                   "INSERT INTO dossier.tenants (slug, name, region)"
                   " VALUES ('t-' || substr(md5(random()::text || clock_timestamp()::text), 1, 20),"
                   " 'schema test', 'test') RETURNING id",
                   0, NULL);
}

/* Purges the tenant's rows and deletes it. Frees *id. */
static void tenant_drop(PGconn *owner, char **id)
{
    const char *p[] = {*id};
    q_exec(owner, "BEGIN");
    PQclear(q(owner, "SELECT dossier.tenant_purge($1)", 1, p));
    PQclear(q(owner, "DELETE FROM dossier.tenants WHERE id = $1", 1, p));
    q_exec(owner, "COMMIT");
    free(*id);
    *id = NULL;
}

/* Tenant tables (as test_isolation.c defines them): oid, name, tenant_id's attnum. */
#define TENANT_TABLES                                                                           \
    "WITH tt AS (SELECT c.oid, c.relname, a.attnum AS tenant_att FROM pg_catalog.pg_class c"    \
    " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"                                 \
    " JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id'"         \
    "  AND NOT a.attisdropped"                                                                  \
    " WHERE n.nspname = 'dossier' AND c.relkind IN ('r', 'p')"                                  \
    "  AND c.relname <> ALL ('{tenants,tenant_plan_overrides,control_audit,schema_migrations}'" \
    "::name[])) "

/* Asserts that a catalog query listing offenders returns "" (and that tt is not empty). */
static void expect_no_offenders(PGconn *c, const char *what, const char *sql)
{
    assert_true(q_long(c, TENANT_TABLES "SELECT count(*) FROM tt", 0, NULL) >= 10);
    char *v = q_value(c, sql, 0, NULL);
    if (v[0] != '\0') {
        fail_msg("%s: %s", what, v);
    }
    free(v);
}

/* ---- folders ------------------------------------------------------------------------- */

/* A folder named name under parent (NULL: top level), as the session's tenant; its id. */
static char *folder_new(PGconn *c, const char *name, const char *parent)
{
    const char *p[] = {name, parent};
    return q_value(c, "INSERT INTO dossier.folders (name, parent_id) VALUES ($1, $2) RETURNING id",
                   2, p);
}

static long subtree_count(PGconn *c, const char *root)
{
    const char *p[] = {root};
    return q_long(c, "SELECT count(*) FROM dossier.folder_subtree($1)", 1, p);
}

/* Paths follow inserts and moves; subtrees are exact; the tree cannot be bent into a cycle
 * and paths cannot be written directly. As the application role. */
static void test_folder_tree(void **state)
{
    (void)state;
    PGconn *owner = pg_open(g_env.owner_dsn);
    PGconn *app = pg_open(g_env.app_dsn);
    char *t = tenant_new(owner);
    q_exec(app, "BEGIN");
    set_tenant(app, t);
    char *root = folder_new(app, "root", NULL);
    char *a = folder_new(app, "a", root);
    char *a1 = folder_new(app, "a1", a);
    char *a2 = folder_new(app, "a2", a);
    char *b = folder_new(app, "b", root);
    char *other = folder_new(app, "other", NULL);
    assert_int_equal(subtree_count(app, root), 5);
    assert_int_equal(subtree_count(app, a), 3);
    assert_int_equal(subtree_count(app, b), 1);
    assert_int_equal(subtree_count(app, a1), 1);
    assert_int_equal(subtree_count(app, other), 1);

    /* Move a (with a1, a2) under b: the whole subtree is re-pathed. */
    const char *pab[] = {a, b};
    PQclear(q(app, "UPDATE dossier.folders SET parent_id = $2 WHERE id = $1", 2, pab));
    assert_int_equal(subtree_count(app, b), 4);
    assert_int_equal(subtree_count(app, root), 5);
    const char *chain[] = {root, b, a, a1};
    q_expect(app,
             "SELECT path = concat('/', $1::text, '/', $2::text, '/', $3::text, '/', $4::text)"
             " AND depth = 3"
             " AND dossier.folder_path_ids(path) = ARRAY[$1::uuid, $2::uuid, $3::uuid, $4::uuid]"
             " FROM dossier.folders WHERE id = $4::uuid",
             4, chain, "t");

    /* Into its own subtree, or under itself: refused. */
    const char *pba1[] = {b, a1};
    q_fails(app, "UPDATE dossier.folders SET parent_id = $2 WHERE id = $1", 2, pba1, "23514");
    q_fails(app, "UPDATE dossier.folders SET parent_id = $1 WHERE id = $1", 1, pba1, "23514");
    /* Paths are derived, never written. */
    const char *pa1[] = {a1};
    PQclear(q(app, "UPDATE dossier.folders SET path = '/x', depth = 0, name = 'a1b' WHERE id = $1",
              1, pa1));
    q_expect(app, "SELECT depth || name FROM dossier.folders WHERE id = $1", 1, pa1, "3a1b");
    assert_int_equal(subtree_count(app, a), 3);
    /* A parent that does not exist. */
    q_fails(app, "INSERT INTO dossier.folders (name, parent_id) VALUES ('x', gen_random_uuid())", 0,
            NULL, "23503");
    /* Back to the top level. */
    PQclear(q(app, "UPDATE dossier.folders SET parent_id = NULL WHERE id = $1", 1, pa1));
    assert_int_equal(subtree_count(app, b), 3);
    assert_int_equal(subtree_count(app, a1), 1);
    q_expect(app, "SELECT path = '/' || id::text AND depth = 0 FROM dossier.folders WHERE id = $1",
             1, pa1, "t");

    /* Documents of a subtree: join the function. */
    const char *pa2[] = {a2};
    PQclear(q(app, "INSERT INTO dossier.documents (folder_id, name) VALUES ($1, 'd')", 1, pa2));
    const char *pr[] = {root};
    q_expect(app,
             "SELECT count(*) FROM dossier.documents d"
             " JOIN dossier.folder_subtree($1) f ON f.id = d.folder_id",
             1, pr, "1");
    q_exec(app, "COMMIT");

    free(root);
    free(a);
    free(a1);
    free(a2);
    free(b);
    free(other);
    pg_close(&app);
    tenant_drop(owner, &t);
    pg_close(&owner);
}

/* The big tree lives in a tenant of its own; its rows go even when the test fails. */
typedef struct big_tree {
    PGconn *owner;
    PGconn *super; /* superuser on database dossier */
    char *tenant;
} big_tree_t;

static int big_tree_setup(void **state)
{
    big_tree_t *bt = ds_xcalloc(1, sizeof(*bt));
    bt->owner = pg_open(g_env.owner_dsn);
    char *dsn = ds_xasprintf("%s dbname=dossier", g_env.super_dsn);
    bt->super = pg_open(dsn);
    free(dsn);
    bt->tenant = tenant_new(bt->owner);
    *state = bt;
    return 0;
}

static int big_tree_teardown(void **state)
{
    big_tree_t *bt = *state;
    const char *p[] = {bt->tenant};
    if (PQtransactionStatus(bt->super) != PQTRANS_IDLE) {
        q_exec(bt->super, "ROLLBACK");
    }
    q_exec(bt->super, "BEGIN");
    q_exec(bt->super, "SET LOCAL session_replication_role = replica");
    PQclear(q(bt->super, "DELETE FROM dossier.folders WHERE tenant_id = $1", 1, p));
    q_exec(bt->super, "COMMIT");
    tenant_drop(bt->owner, &bt->tenant);
    pg_close(&bt->super);
    pg_close(&bt->owner);
    free(bt);
    return 0;
}

/* 100 top-level folders, 100 children each, 100 grandchildren each: 1,010,100 folders with the
 * paths the trigger would give them. The ids are version-7 shaped and numbered so that id order
 * is path order (top level n = 1..100, a child of n is n * 1000 + 1..100): cheaper than
 * uuid_v7() and written at the right edge of every index, which keeps the fill in seconds. */
static void big_tree_fill(big_tree_t *bt)
{
    static const char top[] =
        "INSERT INTO dossier.folders (tenant_id, id, parent_id, name, path, depth)"
        " SELECT $1, x.id, NULL, 'f' || i, '/' || x.id::text, 0 FROM generate_series(1, 100) i,"
        " LATERAL (SELECT ('01900000-0000-7000-8000-' || lpad(to_hex(i), 12, '0'))::uuid AS id) x";
    static const char below[] =
        "INSERT INTO dossier.folders (tenant_id, id, parent_id, name, path, depth)"
        " SELECT f.tenant_id, x.id, f.id, 'f' || i, f.path || '/' || x.id::text, f.depth + 1"
        " FROM dossier.folders f, generate_series(1, 100) i,"
        " LATERAL (SELECT ('01900000-0000-7000-8000-' || lpad(to_hex(('x' || right(f.id::text,"
        "  12))::bit(48)::bigint * 1000 + i), 12, '0'))::uuid AS id) x"
        " WHERE f.tenant_id = $1 AND f.depth = $2::smallint";
    const char *p[] = {bt->tenant, NULL};
    q_exec(bt->super, "BEGIN");
    /* Triggers (and with them foreign-key checks) off for this transaction only. */
    q_exec(bt->super, "SET LOCAL session_replication_role = replica");
    q_exec(bt->super, "SET LOCAL jit = off");
    PQclear(q(bt->super, top, 1, p));
    p[1] = "0";
    PQclear(q(bt->super, below, 2, p));
    p[1] = "1";
    PQclear(q(bt->super, below, 2, p));
    q_exec(bt->super, "COMMIT");
    q_exec(bt->super, "ANALYZE dossier.folders");
}

/* Checks one EXPLAIN (FORMAT JSON) of the subtree query: no sequential scan anywhere, and a
 * scan of folders_path_key bounded on path. */
static void expect_path_range_scan(PGconn *app, const char *plan, const char *what)
{
    const char *p[] = {plan};
    PGresult *r = q(app,
                    "SELECT (SELECT count(*) FROM jsonb_path_query($1::jsonb,"
                    "  'strict $.** ? (@.\"Node Type\" == \"Seq Scan\")')),"
                    " (SELECT count(*) FROM jsonb_path_query($1::jsonb,"
                    "  'strict $.** ? (@.\"Index Name\" == \"folders_path_key\")') n"
                    "  WHERE n->>'Node Type' IN ('Index Scan', 'Index Only Scan',"
                    "   'Bitmap Index Scan')"
                    "  AND n->>'Index Cond' LIKE '%tenant_id = %'"
                    "  AND n->>'Index Cond' LIKE '%path >= %'"
                    "  AND n->>'Index Cond' LIKE '%path < %')",
                    1, p);
    if (strcmp(PQgetvalue(r, 0, 0), "0") != 0 || strcmp(PQgetvalue(r, 0, 1), "1") != 0) {
        fail_msg("%s: seq scans %s, path range scans %s; plan: %s", what, PQgetvalue(r, 0, 0),
                 PQgetvalue(r, 0, 1), plan);
    }
    PQclear(r);
}

/* 1M folders in one tenant: the subtree query is an index range scan, custom or generic plan,
 * and its counts are exact. */
static void test_folder_subtree_at_1m(void **state)
{
    big_tree_t *bt = *state;
    big_tree_fill(bt);

    PGconn *app = pg_open(g_env.app_dsn);
    q_exec(app, "BEGIN");
    set_tenant(app, bt->tenant);
    assert_int_equal(q_long(app, "SELECT count(*) FROM dossier.folders", 0, NULL), 1010100);
    char *top =
        q_value(app, "SELECT id FROM dossier.folders WHERE parent_id IS NULL LIMIT 1", 0, NULL);
    const char *ptop[] = {top};
    char *mid =
        q_value(app, "SELECT id FROM dossier.folders WHERE parent_id = $1 LIMIT 1", 1, ptop);
    const char *pmid[] = {mid};

    char *plan =
        q_value(app, "EXPLAIN (FORMAT JSON) SELECT * FROM dossier.folder_subtree($1)", 1, ptop);
    expect_path_range_scan(app, plan, "custom plan, 10101 folders");
    free(plan);
    plan = q_value(app, "EXPLAIN (FORMAT JSON) SELECT * FROM dossier.folder_subtree($1)", 1, pmid);
    expect_path_range_scan(app, plan, "custom plan, 101 folders");
    free(plan);
    q_exec(app, "SET LOCAL plan_cache_mode = force_generic_plan");
    q_exec(app, "PREPARE subtree(uuid) AS SELECT * FROM dossier.folder_subtree($1)");
    char *sql = ds_xasprintf("EXPLAIN (FORMAT JSON) EXECUTE subtree('%s')", mid);
    plan = q_value(app, sql, 0, NULL);
    expect_path_range_scan(app, plan, "generic plan");
    free(plan);
    free(sql);

    assert_int_equal(subtree_count(app, top), 10101);
    assert_int_equal(subtree_count(app, mid), 101);
    q_exec(app, "COMMIT");

    free(top);
    free(mid);
    pg_close(&app);
}

/* ---- structure ----------------------------------------------------------------------- */

/* Every index of a tenant table starts with tenant_id. */
static void test_indexes_lead_with_tenant_id(void **state)
{
    (void)state;
    PGconn *c = pg_open(g_env.owner_dsn);
    expect_no_offenders(c, "indexes not led by tenant_id",
                        TENANT_TABLES
                        "SELECT coalesce(string_agg(i.indexrelid::regclass::text, ','), '')"
                        " FROM pg_catalog.pg_index i JOIN tt ON tt.oid = i.indrelid"
                        " WHERE i.indkey[0] <> tt.tenant_att");
    pg_close(&c);
}

/* A foreign key between tenant tables pairs tenant_id with tenant_id, so it cannot reach into
 * another tenant; a tenant table refers to nothing else but dossier.tenants. */
static void test_foreign_keys_stay_in_tenant(void **state)
{
    (void)state;
    PGconn *c = pg_open(g_env.owner_dsn);
    expect_no_offenders(c, "foreign keys that can cross tenants",
                        TENANT_TABLES
                        "SELECT coalesce(string_agg(k.conrelid::regclass || '.' || k.conname,"
                        " ','), '') FROM pg_catalog.pg_constraint k"
                        " JOIN tt s ON s.oid = k.conrelid LEFT JOIN tt d ON d.oid = k.confrelid"
                        " WHERE k.contype = 'f' AND (CASE"
                        "  WHEN k.confrelid = 'dossier.tenants'::regclass"
                        "   THEN k.conkey <> ARRAY[s.tenant_att]"
                        "  WHEN d.oid IS NULL THEN true"
                        "  ELSE NOT EXISTS (SELECT 1 FROM generate_subscripts(k.conkey, 1) j"
                        "   WHERE k.conkey[j] = s.tenant_att AND k.confkey[j] = d.tenant_att)"
                        " END)");
    pg_close(&c);
}

/* Every foreign key of a tenant table has an index for its lookups (deleting a parent must
 * not scan the child table): one whose leading columns are the key's columns, or a unique one
 * within them. */
static void test_foreign_keys_indexed(void **state)
{
    (void)state;
    PGconn *c = pg_open(g_env.owner_dsn);
    expect_no_offenders(c, "foreign keys without an index",
                        TENANT_TABLES
                        "SELECT coalesce(string_agg(k.conrelid::regclass || '.' || k.conname, ','),"
                        " '') FROM pg_catalog.pg_constraint k JOIN tt ON tt.oid = k.conrelid"
                        " WHERE k.contype = 'f' AND NOT EXISTS ("
                        "  SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = k.conrelid"
                        "  AND (((i.indkey::int2[])[0:cardinality(k.conkey) - 1] @> k.conkey"
                        "    AND i.indnkeyatts >= cardinality(k.conkey))"
                        "   OR (i.indisunique AND k.conkey @>"
                        "    (i.indkey::int2[])[0:i.indnkeyatts - 1])))");
    pg_close(&c);
}

/* uuid_v7(): version 7, RFC variant, the current time in its first 48 bits, ordered by time. */
static void test_uuid_v7(void **state)
{
    (void)state;
    PGconn *c = pg_open(g_env.app_dsn);
    q_expect(
        c,
        "SELECT substr(u::text, 15, 1) = '7' AND substr(u::text, 20, 1) IN ('8', '9', 'a', 'b')"
        " AND abs(('x' || substr(replace(u::text, '-', ''), 1, 12))::bit(48)::bigint"
        "  - (extract(epoch FROM clock_timestamp()) * 1000)::bigint) < 5000"
        " FROM (SELECT dossier.uuid_v7() AS u) s",
        0, NULL, "t");
    q_expect(c,
             "SELECT count(DISTINCT u) FROM (SELECT dossier.uuid_v7() AS u"
             " FROM generate_series(1, 10000)) s",
             0, NULL, "10000");
    char *first = q_value(c, "SELECT dossier.uuid_v7()", 0, NULL);
    q_exec(c, "SELECT pg_sleep(0.005)");
    const char *p[] = {first};
    q_expect(c, "SELECT $1::uuid < dossier.uuid_v7()", 1, p, "t");
    free(first);
    pg_close(&c);
}

/* Nothing in schema dossier is executable by PUBLIC; the application may call exactly the
 * functions it needs; SECURITY DEFINER functions pin their search_path. */
static void test_function_privileges(void **state)
{
    (void)state;
    PGconn *c = pg_open(g_env.owner_dsn);
    q_expect(c,
             "SELECT coalesce(string_agg(p.oid::regprocedure::text, ','), '')"
             " FROM pg_catalog.pg_proc p WHERE p.pronamespace = 'dossier'::regnamespace"
             " AND has_function_privilege('public', p.oid, 'EXECUTE')",
             0, NULL, "");
    q_expect(c,
             "SELECT string_agg(p.proname, ',' ORDER BY p.proname) FROM pg_catalog.pg_proc p"
             " WHERE p.pronamespace = 'dossier'::regnamespace"
             " AND has_function_privilege('dossier_app', p.oid, 'EXECUTE')",
             0, NULL,
             "api_api_key,api_audit_entry,api_folder,api_grant,api_group,api_guard,api_idem_claim,"
             "api_login_failed,api_login_locked,api_login_succeeded,api_logout,api_refresh,"
             "api_revoke_sessions,api_service_account,api_user,"
             "audit_append,audit_encode,audit_field,current_tenant,effective_role,"
             "folder_path_ids,folder_subtree,object_chain,object_permissions,schema_version,"
             "tenant_by_id,tenant_by_slug,tenant_overrides_by_id,user_create,user_deactivate,"
             "user_reactivate,user_revoke_sessions,user_seat_check,user_set_password,uuid_v7");
    q_expect(c,
             "SELECT coalesce(string_agg(p.proname, ','), '') FROM pg_catalog.pg_proc p"
             " WHERE p.pronamespace = 'dossier'::regnamespace AND p.prosecdef"
             " AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) s"
             "  WHERE s LIKE 'search\\_path=pg\\_catalog, %')",
             0, NULL, "");
    pg_close(&c);
}

/* The control plane refuses malformed tenants and overrides. */
static void test_control_plane_constraints(void **state)
{
    (void)state;
    PGconn *c = pg_open(g_env.owner_dsn);
    static const char *const bad[] = {
        "INSERT INTO dossier.tenants (slug, name, region) VALUES ('Bad_Slug', 'n', 'eu')",
        "INSERT INTO dossier.tenants (slug, name, region) VALUES ('-x', 'n', 'eu')",
        "INSERT INTO dossier.tenants (slug, name, region) VALUES ('ok', '', 'eu')",
        "INSERT INTO dossier.tenants (slug, name, region, plan) VALUES ('ok', 'n', 'eu', 'gold')",
        "INSERT INTO dossier.tenants (slug, name, region, status)"
        " VALUES ('ok', 'n', 'eu', 'suspended')",
        "INSERT INTO dossier.tenant_plan_overrides (tenant_id, key, value)"
        " SELECT id, 'max_widgets', 1 FROM dossier.tenants WHERE slug = 'ok'",
        "INSERT INTO dossier.tenant_plan_overrides (tenant_id, key, value)"
        " SELECT id, 'max_users', -1 FROM dossier.tenants WHERE slug = 'ok'",
        "INSERT INTO dossier.control_audit (actor, action, details)"
        " VALUES ('root', 'tenant.create', '[]')",
    };
    q_exec(c, "BEGIN");
    q_exec(c, "DELETE FROM dossier.tenants WHERE slug = 'ok'");
    q_exec(c, "INSERT INTO dossier.tenants (slug, name, region) VALUES ('ok', 'n', 'eu')");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        q_fails(c, bad[i], 0, NULL, "23514");
    }
    q_fails(c, "INSERT INTO dossier.tenants (slug, name, region) VALUES ('ok', 'n', 'eu')", 0, NULL,
            "23505");
    q_exec(c, "ROLLBACK");
    pg_close(&c);
}

/* A document's current version is one of its own versions. */
static void test_document_current_version(void **state)
{
    (void)state;
    PGconn *owner = pg_open(g_env.owner_dsn);
    PGconn *app = pg_open(g_env.app_dsn);
    char *t = tenant_new(owner);
    q_exec(app, "BEGIN");
    set_tenant(app, t);
    char *f = folder_new(app, "f", NULL);
    const char *pf[] = {f};
    char *d1 = q_value(app,
                       "INSERT INTO dossier.documents (folder_id, name) VALUES ($1, 'one')"
                       " RETURNING id",
                       1, pf);
    char *d2 = q_value(app,
                       "INSERT INTO dossier.documents (folder_id, name) VALUES ($1, 'two')"
                       " RETURNING id",
                       1, pf);
    const char *pd1[] = {d1};
    char *v1 = q_value(app,
                       "INSERT INTO dossier.document_versions (document_id, version_no, blob_key,"
                       " size_bytes, sha256) VALUES ($1, 1, 'k1', 0, sha256(''::bytea))"
                       " RETURNING id",
                       1, pd1);
    const char *pv1d1[] = {v1, d1};
    const char *pv1d2[] = {v1, d2};
    PQclear(q(app, "UPDATE dossier.documents SET current_version_id = $1 WHERE id = $2", 2, pv1d1));
    q_fails(app, "UPDATE dossier.documents SET current_version_id = $1 WHERE id = $2", 2, pv1d2,
            "23503");
    q_fails(app, "DELETE FROM dossier.document_versions WHERE id = $1", 1, pv1d1, "23503");
    q_fails(app,
            "INSERT INTO dossier.document_versions (document_id, version_no, blob_key,"
            " size_bytes, sha256) VALUES ($1, 2, 'k2', 0, '\\x00'::bytea)",
            1, pd1, "23514");
    q_exec(app, "COMMIT");
    free(f);
    free(d1);
    free(d2);
    free(v1);
    pg_close(&app);
    tenant_drop(owner, &t);
    pg_close(&owner);
}

/* tenant_purge() removes every row of one tenant, and nothing of another. */
static void test_tenant_purge(void **state)
{
    (void)state;
    PGconn *owner = pg_open(g_env.owner_dsn);
    char *t[2] = {tenant_new(owner), tenant_new(owner)};
    for (int i = 0; i < 2; i++) {
        q_exec(owner, "BEGIN");
        set_tenant(owner, t[i]);
        q_exec(owner, "INSERT INTO dossier.users (email) VALUES ('u@example.com')");
        q_exec(owner, "INSERT INTO dossier.folders (name) VALUES ('r')");
        q_exec(owner, "INSERT INTO dossier.folders (name, parent_id)"
                      " SELECT 'c', id FROM dossier.folders");
        q_exec(owner, "INSERT INTO dossier.documents (folder_id, name, created_by)"
                      " SELECT f.id, 'd', u.id FROM dossier.folders f, dossier.users u");
        q_exec(owner, "INSERT INTO dossier.document_versions (document_id, version_no, blob_key,"
                      " size_bytes, sha256) SELECT id, 1, 'k' || id, 0, sha256(''::bytea)"
                      " FROM dossier.documents");
        q_exec(owner, "UPDATE dossier.documents d SET current_version_id = v.id"
                      " FROM dossier.document_versions v WHERE v.document_id = d.id");
        q_exec(owner, "INSERT INTO dossier.grants (role, folder_id, user_id)"
                      " SELECT 'viewer', f.id, u.id FROM dossier.folders f, dossier.users u");
        q_exec(owner, "COMMIT");
    }
    const char *p0[] = {t[0]};
    assert_true(q_long(owner, "SELECT dossier.tenant_purge($1)", 1, p0) > 0);
    static const char count_all[] =
        "SELECT (SELECT count(*) FROM dossier.users) + (SELECT count(*) FROM dossier.folders) +"
        " (SELECT count(*) FROM dossier.documents) +"
        " (SELECT count(*) FROM dossier.document_versions) +"
        " (SELECT count(*) FROM dossier.grants)";
    for (int i = 0; i < 2; i++) {
        q_exec(owner, "BEGIN");
        set_tenant(owner, t[i]);
        assert_int_equal(q_long(owner, count_all, 0, NULL), i == 0 ? 0 : 9);
        q_exec(owner, "COMMIT");
    }
    tenant_drop(owner, &t[0]);
    tenant_drop(owner, &t[1]);
    pg_close(&owner);
}

int main(void)
{
    pgtest_env_or_skip(&g_env);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_folder_tree),
        cmocka_unit_test_setup_teardown(test_folder_subtree_at_1m, big_tree_setup,
                                        big_tree_teardown),
        cmocka_unit_test(test_indexes_lead_with_tenant_id),
        cmocka_unit_test(test_foreign_keys_stay_in_tenant),
        cmocka_unit_test(test_foreign_keys_indexed),
        cmocka_unit_test(test_uuid_v7),
        cmocka_unit_test(test_function_privileges),
        cmocka_unit_test(test_control_plane_constraints),
        cmocka_unit_test(test_document_current_version),
        cmocka_unit_test(test_tenant_purge),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    pgtest_env_fini(&g_env);
    return failed;
}
