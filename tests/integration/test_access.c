/* Integration tests: the grant model and the user limit (schema/migrations/0007_access.sql).
 *
 * - dossier.effective_role() on a small tree of folders and documents with users, a group,
 *   service accounts and grants at several levels: inheritance down the tree, roles through a
 *   group, the highest role winning, a grant on one document, no grant, a deactivated user, a
 *   tenant admin, objects in the trash, another tenant's objects, unknown types.
 * - dossier.object_permissions() explaining every role on the same tree.
 * - dossier.user_create() racing: eight connections on eight threads create users against a
 *   limit of 5 at once; exactly five win, the others get SQLSTATE DS001. Reactivation obeys the
 *   same limit; deactivation and password changes revoke sessions.
 * - The plan: on a tenant of 20k folders (and enough users, groups, service accounts,
 *   documents and grants that a sequential scan is never the cheap choice), the statement
 *   inside effective_role(), as the application role under RLS, reaches grants through
 *   grants_folder_idx and grants_document_idx and has no sequential scan. auto_explain
 *   (loaded by the superuser, who then becomes dossier_app) reports the plan the function
 *   really runs as a NOTICE.
 *
 * Needs DS_TEST_PG_ENV (pgtest.h), else it exits 77. Every test makes its own tenants (random
 * slugs) and purges them at the end. */
#include <pthread.h>
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

/* ---- synchronous SQL on one session ------------------------------------------------------ */

static pgtest_env_t g_env;

/* A new tenant with a random slug, through the owner. Returns its id (malloc'ed). */
static char *tenant_new(PGconn *owner)
{
    return q_value(owner,
                   "INSERT INTO dossier.tenants (slug, name, region)"
                   " VALUES ('t-' || substr(md5(random()::text || clock_timestamp()::text), 1, 20),"
                   " 'access test', 'test') RETURNING id",
                   0, NULL);
}

/* Purges the tenant's rows and deletes it. Frees *id. */
static void tenant_drop(PGconn *owner, char **id)
{
    const char *p[] = {*id};
    if (PQtransactionStatus(owner) != PQTRANS_IDLE) {
        q_exec(owner, "ROLLBACK");
    }
    q_exec(owner, "BEGIN");
    PQclear(q(owner, "SELECT dossier.tenant_purge($1)", 1, p));
    PQclear(q(owner, "DELETE FROM dossier.tenants WHERE id = $1", 1, p));
    q_exec(owner, "COMMIT");
    free(*id);
    *id = NULL;
}

/* ---- the tree ------------------------------------------------------------------------------
 *
 *   root                     grants: alice viewer, bob viewer, carol editor, sa1 viewer
 *   ├── a                    grants: alice editor
 *   │   └── a1               grants: group staff (bob) editor
 *   │       └── doc da1
 *   └── b
 *       ├── doc db           grants: dave admin (on the document only)
 *       └── doc gone         (in the trash)
 *   trash                    (in the trash), grants: alice admin
 *   └── t1 (not deleted itself, but under a deleted folder)
 *
 * Users: alice, bob (member of staff), carol (deactivated), dave, erin (no grant), root_admin
 * (tenant admin, no grant). Service accounts: sa1 (viewer on root), sa_admin (tenant admin),
 * sa_off (disabled, editor on root).
 */

enum {
    N_NAMES = 32,
};

typedef struct tree {
    PGconn *owner;
    PGconn *app;
    char *tenant;
    char *other; /* a second tenant, with a folder and a user of its own */
    const char *names[N_NAMES];
    char *ids[N_NAMES];
    size_t n;
} tree_t;

static const char *tree_id(const tree_t *t, const char *name)
{
    for (size_t i = 0; i < t->n; i++) {
        if (strcmp(t->names[i], name) == 0) {
            return t->ids[i];
        }
    }
    fail_msg("no object named %s", name);
    return NULL;
}

/* Runs sql (returning one id) with up to 3 params given as names of earlier objects or, with
 * a leading '=', literal values; records the id under name. */
static void tree_add(tree_t *t, const char *name, const char *sql, const char *a, const char *b,
                     const char *c)
{
    const char *in[] = {a, b, c};
    const char *p[3];
    int n = 0;
    for (; n < 3 && in[n] != NULL; n++) {
        p[n] = in[n][0] == '=' ? in[n] + 1 : tree_id(t, in[n]);
    }
    assert_true(t->n < N_NAMES);
    t->names[t->n] = name;
    t->ids[t->n] = q_value(t->app, sql, n, p);
    t->n++;
}

static const char k_folder[] =
    "INSERT INTO dossier.folders (name, parent_id) VALUES ($1, $2) RETURNING id";
static const char k_root_folder[] = "INSERT INTO dossier.folders (name) VALUES ($1) RETURNING id";
static const char k_document[] =
    "INSERT INTO dossier.documents (name, folder_id) VALUES ($1, $2) RETURNING id";
static const char k_user[] = "INSERT INTO dossier.users (email, roles)"
                             " VALUES ($1::text || '@example.com', $2::text[]) RETURNING id";
static const char k_sa[] =
    "INSERT INTO dossier.service_accounts (name, roles) VALUES ($1, $2::text[]) RETURNING id";
static const char k_grant_user[] =
    "INSERT INTO dossier.grants (role, folder_id, user_id) VALUES ($1, $2, $3) RETURNING id";
static const char k_grant_group[] =
    "INSERT INTO dossier.grants (role, folder_id, group_id) VALUES ($1, $2, $3) RETURNING id";
static const char k_grant_sa[] = "INSERT INTO dossier.grants (role, folder_id, service_account_id)"
                                 " VALUES ($1, $2, $3) RETURNING id";
static const char k_grant_doc[] =
    "INSERT INTO dossier.grants (role, document_id, user_id) VALUES ($1, $2, $3) RETURNING id";

static void tree_fill(tree_t *t)
{
    tree_add(t, "root", k_root_folder, "=root", NULL, NULL);
    tree_add(t, "a", k_folder, "=a", "root", NULL);
    tree_add(t, "a1", k_folder, "=a1", "a", NULL);
    tree_add(t, "b", k_folder, "=b", "root", NULL);
    tree_add(t, "trash", k_root_folder, "=trash", NULL, NULL);
    tree_add(t, "t1", k_folder, "=t1", "trash", NULL);
    tree_add(t, "da1", k_document, "=da1", "a1", NULL);
    tree_add(t, "db", k_document, "=db", "b", NULL);
    tree_add(t, "gone", k_document, "=gone", "b", NULL);
    tree_add(t, "alice", k_user, "=alice", "={viewer}", NULL);
    tree_add(t, "bob", k_user, "=bob", "={editor}", NULL);
    tree_add(t, "carol", k_user, "=carol", "={viewer}", NULL);
    tree_add(t, "dave", k_user, "=dave", "={viewer}", NULL);
    tree_add(t, "erin", k_user, "=erin", "={viewer}", NULL);
    tree_add(t, "root_admin", k_user, "=root_admin", "={viewer,admin}", NULL);
    tree_add(t, "staff", "INSERT INTO dossier.groups (name) VALUES ($1) RETURNING id", "=staff",
             NULL, NULL);
    tree_add(t, "staff_bob",
             "INSERT INTO dossier.group_members (group_id, user_id) VALUES ($1, $2) RETURNING id",
             "staff", "bob", NULL);
    tree_add(t, "sa1", k_sa, "=sa1", "={viewer}", NULL);
    tree_add(t, "sa_admin", k_sa, "=sa_admin", "={admin}", NULL);
    tree_add(t, "sa_off", k_sa, "=sa_off", "={viewer}", NULL);
    tree_add(t, "g_alice_root", k_grant_user, "=viewer", "root", "alice");
    tree_add(t, "g_bob_root", k_grant_user, "=viewer", "root", "bob");
    tree_add(t, "g_carol_root", k_grant_user, "=editor", "root", "carol");
    tree_add(t, "g_sa1_root", k_grant_sa, "=viewer", "root", "sa1");
    tree_add(t, "g_sa_off_root", k_grant_sa, "=editor", "root", "sa_off");
    tree_add(t, "g_alice_a", k_grant_user, "=editor", "a", "alice");
    tree_add(t, "g_staff_a1", k_grant_group, "=editor", "a1", "staff");
    tree_add(t, "g_dave_db", k_grant_doc, "=admin", "db", "dave");
    tree_add(t, "g_alice_trash", k_grant_user, "=admin", "trash", "alice");
    static const struct {
        const char *sql;
        const char *name;
    } k_changes[] = {
        {"UPDATE dossier.users SET status = 'deactivated', deactivated_at = now() WHERE id = $1",
         "carol"},
        {"UPDATE dossier.folders SET deleted_at = now() WHERE id = $1", "trash"},
        {"UPDATE dossier.documents SET deleted_at = now() WHERE id = $1", "gone"},
        {"UPDATE dossier.service_accounts SET status = 'disabled', disabled_at = now()"
         " WHERE id = $1",
         "sa_off"},
    };
    for (size_t i = 0; i < sizeof(k_changes) / sizeof(k_changes[0]); i++) {
        const char *p[] = {tree_id(t, k_changes[i].name)};
        PQclear(q(t->app, k_changes[i].sql, 1, p));
    }
}

static int tree_setup(void **state)
{
    tree_t *t = ds_xcalloc(1, sizeof(*t));
    t->owner = pg_open(g_env.owner_dsn);
    t->app = pg_open(g_env.app_dsn);
    t->tenant = tenant_new(t->owner);
    t->other = tenant_new(t->owner);
    /* The other tenant: a folder and a user, with a grant; nothing of it is visible from t. */
    q_exec(t->app, "BEGIN");
    set_tenant(t->app, t->other);
    tree_add(t, "x_folder", k_root_folder, "=x", NULL, NULL);
    tree_add(t, "x_user", k_user, "=xavier", "={admin}", NULL);
    tree_add(t, "x_grant", k_grant_user, "=admin", "x_folder", "x_user");
    q_exec(t->app, "COMMIT");
    q_exec(t->app, "BEGIN");
    set_tenant(t->app, t->tenant);
    tree_fill(t);
    q_exec(t->app, "COMMIT");
    *state = t;
    return 0;
}

static int tree_teardown(void **state)
{
    tree_t *t = *state;
    for (size_t i = 0; i < t->n; i++) {
        free(t->ids[i]);
    }
    pg_close(&t->app);
    tenant_drop(t->owner, &t->tenant);
    tenant_drop(t->owner, &t->other);
    pg_close(&t->owner);
    free(t);
    return 0;
}

/* effective_role(principal, object) under t's tenant is want ("<null>" for NULL). */
static void expect_role(tree_t *t, const char *ptype, const char *principal, const char *otype,
                        const char *object, const char *want)
{
    const char *p[] = {ptype, tree_id(t, principal), otype, tree_id(t, object)};
    char *v = q_value(t->app, "SELECT dossier.effective_role($1, $2, $3, $4)", 4, p);
    if (strcmp(v, want) != 0) {
        fail_msg("effective_role(%s %s, %s %s) = %s, want %s", ptype, principal, otype, object, v,
                 want);
    }
    free(v);
}

static void test_effective_role(void **state)
{
    tree_t *t = *state;
    q_exec(t->app, "BEGIN");
    set_tenant(t->app, t->tenant);
    /* Inheritance, and the highest role winning: viewer on root, editor on a. */
    expect_role(t, "user", "alice", "folder", "root", "viewer");
    expect_role(t, "user", "alice", "folder", "b", "viewer");
    expect_role(t, "user", "alice", "document", "db", "viewer");
    expect_role(t, "user", "alice", "folder", "a", "editor");
    expect_role(t, "user", "alice", "folder", "a1", "editor");
    expect_role(t, "user", "alice", "document", "da1", "editor");
    /* Through a group: bob's own viewer on root, staff's editor on a1. */
    expect_role(t, "user", "bob", "folder", "a", "viewer");
    expect_role(t, "user", "bob", "folder", "a1", "editor");
    expect_role(t, "user", "bob", "document", "da1", "editor");
    expect_role(t, "group", "staff", "folder", "a1", "editor");
    expect_role(t, "group", "staff", "document", "da1", "editor");
    expect_role(t, "group", "staff", "folder", "a", "<null>");
    /* A grant on one document reaches neither its folder nor its siblings. */
    expect_role(t, "user", "dave", "document", "db", "admin");
    expect_role(t, "user", "dave", "folder", "b", "<null>");
    expect_role(t, "user", "dave", "document", "da1", "<null>");
    /* No grant; a deactivated user (its grant stays); a disabled service account. */
    expect_role(t, "user", "erin", "folder", "root", "<null>");
    expect_role(t, "user", "erin", "document", "da1", "<null>");
    expect_role(t, "user", "carol", "folder", "a", "<null>");
    expect_role(t, "service_account", "sa1", "document", "da1", "viewer");
    expect_role(t, "service_account", "sa_off", "folder", "root", "<null>");
    /* Tenant admins see everything, with no grant at all. */
    expect_role(t, "user", "root_admin", "folder", "root", "admin");
    expect_role(t, "user", "root_admin", "document", "da1", "admin");
    expect_role(t, "service_account", "sa_admin", "folder", "b", "admin");
    /* The trash: a deleted folder, a folder under it, a deleted document. Not even admins. */
    expect_role(t, "user", "alice", "folder", "trash", "<null>");
    expect_role(t, "user", "alice", "folder", "t1", "<null>");
    expect_role(t, "user", "root_admin", "folder", "t1", "<null>");
    expect_role(t, "user", "alice", "document", "gone", "<null>");
    expect_role(t, "user", "root_admin", "document", "gone", "<null>");
    /* Another tenant's folder and user do not exist here, whatever their grants. */
    expect_role(t, "user", "x_user", "folder", "x_folder", "<null>");
    expect_role(t, "user", "alice", "folder", "x_folder", "<null>");
    expect_role(t, "user", "x_user", "folder", "root", "<null>");
    /* Wrong types: a folder id asked as a document, unknown kinds. */
    expect_role(t, "user", "alice", "document", "a", "<null>");
    expect_role(t, "user", "alice", "folders", "a", "<null>");
    expect_role(t, "users", "alice", "folder", "a", "<null>");
    expect_role(t, "group", "alice", "folder", "a", "<null>");
    q_exec(t->app, "COMMIT");

    /* Seen from the other tenant, its own grant works and ours do not. */
    q_exec(t->app, "BEGIN");
    set_tenant(t->app, t->other);
    expect_role(t, "user", "x_user", "folder", "x_folder", "admin");
    expect_role(t, "user", "alice", "folder", "root", "<null>");
    q_exec(t->app, "COMMIT");
}

/* object_permissions(type, object) as "principal/role/grant/grant_role/folder/document/group/
 * inherited" lines joined by ';', with every id replaced by its name ("-" for NULL). */
static void expect_permissions(tree_t *t, const char *otype, const char *object, const char *want)
{
    char *map = ds_xstrdup("{");
    for (size_t i = 0; i < t->n; i++) {
        char *next =
            ds_xasprintf("%s%s\"%s\":\"%s\"", map, i > 0 ? "," : "", t->ids[i], t->names[i]);
        free(map);
        map = next;
    }
    char *json = ds_xasprintf("%s}", map);
    free(map);
    const char *p[] = {otype, tree_id(t, object), json};
    char *v = q_value(t->app,
                      "SELECT coalesce(string_agg(concat_ws('/',"
                      "  left(r.principal_type, 1) || ':' || ($3::jsonb ->> r.principal_id::text),"
                      "  r.role, coalesce($3::jsonb ->> r.grant_id::text, '-'), r.grant_role,"
                      "  coalesce($3::jsonb ->> r.via_folder_id::text, '-'),"
                      "  coalesce($3::jsonb ->> r.via_document_id::text, '-'),"
                      "  coalesce($3::jsonb ->> r.via_group_id::text, '-'),"
                      "  CASE WHEN r.inherited THEN 'inherited' ELSE 'own' END), ';'"
                      "  ORDER BY r.principal_type, $3::jsonb ->> r.principal_id::text,"
                      "  r.ordinality), '')"
                      " FROM dossier.object_permissions($1, $2) WITH ORDINALITY r",
                      3, p);
    if (strcmp(v, want) != 0) {
        fail_msg("object_permissions(%s %s):\n got: %s\nwant: %s", otype, object, v, want);
    }
    free(v);
    free(json);
}

/* Rows are compared sorted by principal type and name (ids made in the same millisecond have
 * no set order), keeping the function's order within a principal: strongest grant first, then
 * from the object upwards. */
static void test_object_permissions(void **state)
{
    tree_t *t = *state;
    q_exec(t->app, "BEGIN");
    set_tenant(t->app, t->tenant);
    /* da1 in a1 in a in root: every principal with a role, each reason on its own line. */
    expect_permissions(t, "document", "da1",
                       "g:staff/editor/g_staff_a1/editor/a1/-/-/inherited;"
                       "s:sa1/viewer/g_sa1_root/viewer/root/-/-/inherited;"
                       "s:sa_admin/admin/-/admin/-/-/-/own;"
                       "u:alice/editor/g_alice_a/editor/a/-/-/inherited;"
                       "u:alice/editor/g_alice_root/viewer/root/-/-/inherited;"
                       "u:bob/editor/g_staff_a1/editor/a1/-/staff/inherited;"
                       "u:bob/editor/g_bob_root/viewer/root/-/-/inherited;"
                       "u:root_admin/admin/-/admin/-/-/-/own");
    /* On a1 itself, staff's grant is the folder's own. */
    expect_permissions(t, "folder", "a1",
                       "g:staff/editor/g_staff_a1/editor/a1/-/-/own;"
                       "s:sa1/viewer/g_sa1_root/viewer/root/-/-/inherited;"
                       "s:sa_admin/admin/-/admin/-/-/-/own;"
                       "u:alice/editor/g_alice_a/editor/a/-/-/inherited;"
                       "u:alice/editor/g_alice_root/viewer/root/-/-/inherited;"
                       "u:bob/editor/g_staff_a1/editor/a1/-/staff/own;"
                       "u:bob/editor/g_bob_root/viewer/root/-/-/inherited;"
                       "u:root_admin/admin/-/admin/-/-/-/own");
    /* A document grant is the document's own. */
    expect_permissions(t, "document", "db",
                       "s:sa1/viewer/g_sa1_root/viewer/root/-/-/inherited;"
                       "s:sa_admin/admin/-/admin/-/-/-/own;"
                       "u:alice/viewer/g_alice_root/viewer/root/-/-/inherited;"
                       "u:bob/viewer/g_bob_root/viewer/root/-/-/inherited;"
                       "u:dave/admin/g_dave_db/admin/-/db/-/own;"
                       "u:root_admin/admin/-/admin/-/-/-/own");
    /* The trash and other tenants: nothing. */
    expect_permissions(t, "folder", "t1", "");
    expect_permissions(t, "document", "gone", "");
    expect_permissions(t, "folder", "x_folder", "");
    q_exec(t->app, "COMMIT");
}

/* ---- the user limit -------------------------------------------------------------------- */

enum {
    RACERS = 8,
    RACE_LIMIT = 5,
};

typedef struct racer {
    const char *tenant;
    pthread_barrier_t *start;
    int index;
    char state[6]; /* "" on success, else the SQLSTATE */
} racer_t;

/* One connection creating one user at the barrier's release. */
static void *racer_run(void *arg)
{
    racer_t *r = arg;
    PGconn *c = PQconnectdb(g_env.app_dsn);
    char email[64];
    (void)snprintf(email, sizeof(email), "racer%d@example.com", r->index);
    const char *p[] = {r->tenant, email};
    PGresult *res = PQexec(c, "BEGIN");
    PQclear(res);
    res = PQexecParams(c, "SELECT pg_catalog.set_config('app.tenant_id', $1, true)", 1, NULL, p,
                       NULL, NULL, 0);
    PQclear(res);
    (void)pthread_barrier_wait(r->start);
    res = PQexecParams(c, "SELECT dossier.user_create($1, NULL, NULL, '{viewer}', 5)", 1, NULL,
                       p + 1, NULL, NULL, 0);
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    bool ok = PQresultStatus(res) == PGRES_TUPLES_OK;
    (void)snprintf(r->state, sizeof(r->state), "%s", ok ? "" : state != NULL ? state : "?????");
    PQclear(res);
    res = PQexec(c, ok ? "COMMIT" : "ROLLBACK");
    if (ok && PQresultStatus(res) != PGRES_COMMAND_OK) {
        (void)snprintf(r->state, sizeof(r->state), "commit");
    }
    PQclear(res);
    PQfinish(c);
    return NULL;
}

/* Eight creates at once against a limit of 5 (one user exists already, deactivated, which does
 * not count): five succeed, three fail with DS001, five users are active. */
static void test_user_limit_race(void **state)
{
    (void)state;
    PGconn *owner = pg_open(g_env.owner_dsn);
    char *tenant = tenant_new(owner);
    q_exec(owner, "BEGIN");
    set_tenant(owner, tenant);
    q_exec(owner, "INSERT INTO dossier.users (email, status, deactivated_at)"
                  " VALUES ('old@example.com', 'deactivated', now())");
    q_exec(owner, "COMMIT");

    pthread_barrier_t start;
    assert_int_equal(pthread_barrier_init(&start, NULL, RACERS), 0);
    racer_t racers[RACERS];
    pthread_t threads[RACERS];
    for (int i = 0; i < RACERS; i++) {
        racers[i] = (racer_t){.tenant = tenant, .start = &start, .index = i};
        assert_int_equal(pthread_create(&threads[i], NULL, racer_run, &racers[i]), 0);
    }
    int won = 0;
    int limited = 0;
    for (int i = 0; i < RACERS; i++) {
        assert_int_equal(pthread_join(threads[i], NULL), 0);
        if (racers[i].state[0] == '\0') {
            won++;
        } else if (strcmp(racers[i].state, "DS001") == 0) {
            limited++;
        } else {
            fail_msg("racer %d failed with %s", i, racers[i].state);
        }
    }
    (void)pthread_barrier_destroy(&start);
    assert_int_equal(won, RACE_LIMIT);
    assert_int_equal(limited, RACERS - RACE_LIMIT);

    q_exec(owner, "BEGIN");
    set_tenant(owner, tenant);
    q_expect(owner, "SELECT count(*) FROM dossier.users WHERE status = 'active'", 0, NULL, "5");
    /* At the limit: reactivating the old user is refused too; unlimited (NULL) is not. */
    q_fails(owner,
            "SELECT dossier.user_reactivate((SELECT id FROM dossier.users"
            " WHERE email = 'old@example.com'), 5)",
            0, NULL, "DS001");
    q_fails(owner, "SELECT dossier.user_create('more@example.com', NULL, NULL, NULL, 5)", 0, NULL,
            "DS001");
    q_expect(owner,
             "SELECT dossier.user_reactivate((SELECT id FROM dossier.users"
             " WHERE email = 'old@example.com'), NULL)",
             0, NULL, "t");
    q_expect(owner, "SELECT count(*) FROM dossier.users WHERE status = 'active'", 0, NULL, "6");
    q_exec(owner, "COMMIT");
    tenant_drop(owner, &tenant);
    pg_close(&owner);
}

/* Deactivation and password changes revoke live sessions (and their refresh tokens) with their
 * reason; the email is unique case-insensitively; REPEATABLE READ is refused. */
static void test_user_lifecycle(void **state)
{
    (void)state;
    PGconn *owner = pg_open(g_env.owner_dsn);
    PGconn *app = pg_open(g_env.app_dsn);
    char *tenant = tenant_new(owner);
    q_exec(app, "BEGIN");
    set_tenant(app, tenant);
    char *id = q_value(
        app, "SELECT dossier.user_create('Ann@Example.com', 'Ann', '$argon2id$x', NULL, 10)", 0,
        NULL);
    const char *p[] = {id};
    q_expect(app,
             "SELECT concat_ws(',', email, display_name, roles::text, status,"
             " password_changed_at IS NOT NULL) FROM dossier.users WHERE id = $1",
             1, p, "Ann@Example.com,Ann,{viewer},active,t");
    q_fails(app, "SELECT dossier.user_create('ann@example.COM', NULL, NULL, NULL, 10)", 0, NULL,
            "23505");
    q_fails(app, "SELECT dossier.user_create('nobody', NULL, NULL, NULL, 10)", 0, NULL, "23514");
    q_fails(app, "SELECT dossier.user_create('b@example.com', NULL, NULL, '{root}', 10)", 0, NULL,
            "23514");
    /* Two live sessions (one with a refresh token) and one logged out already. */
    PQclear(q(app,
              "INSERT INTO dossier.sessions (user_id, expires_at, revoked_at, revoked_reason)"
              " VALUES ($1, now() + interval '1 day', NULL, NULL),"
              " ($1, now() + interval '1 day', NULL, NULL),"
              " ($1, now() + interval '1 day', now(), 'logout')",
              1, p));
    PQclear(q(app,
              "INSERT INTO dossier.refresh_tokens (session_id, token_hash, expires_at)"
              " SELECT s.id, sha256(s.id::text::bytea), now() + interval '1 day'"
              " FROM dossier.sessions s WHERE s.user_id = $1 AND s.revoked_at IS NULL LIMIT 1",
              1, p));
    q_expect(app, "SELECT dossier.user_set_password($1, '$argon2id$y')::text", 1, p, "2");
    q_expect(app,
             "SELECT string_agg(revoked_reason, ',' ORDER BY revoked_reason)"
             " FROM dossier.sessions WHERE user_id = $1",
             1, p, "logout,password_change,password_change");
    q_expect(app, "SELECT count(*) FROM dossier.refresh_tokens WHERE revoked_at IS NULL", 0, NULL,
             "0");
    PQclear(q(app,
              "INSERT INTO dossier.sessions (user_id, expires_at) VALUES ($1, now() + '1 day')", 1,
              p));
    q_expect(app, "SELECT (dossier.user_deactivate($1))::text", 1, p, "(t,1)");
    q_expect(app, "SELECT (dossier.user_deactivate($1))::text", 1, p, "(f,0)");
    q_expect(app,
             "SELECT concat_ws(',', status, deactivated_at IS NOT NULL,"
             " (SELECT count(*) FROM dossier.sessions WHERE user_id = $1"
             "  AND revoked_reason = 'user_deactivated'))"
             " FROM dossier.users WHERE id = $1",
             1, p, "deactivated,t,1");
    q_expect(app, "SELECT dossier.user_reactivate($1, 10)", 1, p, "t");
    q_expect(app, "SELECT dossier.user_reactivate($1, 10)", 1, p, "f");
    q_fails(app, "SELECT dossier.user_deactivate(gen_random_uuid())", 0, NULL, "P0002");
    q_fails(app, "SELECT dossier.user_set_password(gen_random_uuid(), NULL)", 0, NULL, "P0002");
    q_exec(app, "COMMIT");

    q_exec(app, "BEGIN ISOLATION LEVEL REPEATABLE READ");
    set_tenant(app, tenant);
    q_fails(app, "SELECT dossier.user_create('c@example.com', NULL, NULL, NULL, 10)", 0, NULL,
            "25001");
    q_exec(app, "ROLLBACK");
    /* No tenant: refused. */
    q_fails(app, "SELECT dossier.user_create('c@example.com', NULL, NULL, NULL, NULL)", 0, NULL,
            "42501");
    free(id);
    pg_close(&app);
    tenant_drop(owner, &tenant);
    pg_close(&owner);
}

/* ---- the plan at 20k folders ---------------------------------------------------------- */

typedef struct notices {
    char *plans; /* every NOTICE received, concatenated */
} notices_t;

static void notice_keep(void *arg, const PGresult *res)
{
    notices_t *n = arg;
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    char *next = ds_xasprintf("%s\n%s", n->plans != NULL ? n->plans : "", msg != NULL ? msg : "");
    free(n->plans);
    n->plans = next;
}

/* 20 top folders with 1000 children each, a document in each child, 2000 users, 1000 groups
 * (a member each), 1000 service accounts and about 22k grants: as the application role, with
 * the triggers (paths) on. */
static void big_fill(PGconn *app, const char *tenant)
{
    q_exec(app, "BEGIN");
    set_tenant(app, tenant);
    q_exec(app,
           "INSERT INTO dossier.folders (name) SELECT 'top' || i FROM generate_series(1, 20) i");
    q_exec(app, "INSERT INTO dossier.folders (name, parent_id) SELECT 'c' || i, f.id"
                " FROM dossier.folders f, generate_series(1, 1000) i");
    q_exec(app, "INSERT INTO dossier.documents (folder_id, name)"
                " SELECT id, 'd' FROM dossier.folders WHERE depth = 1");
    q_exec(app, "INSERT INTO dossier.users (email) SELECT 'u' || i || '@example.com'"
                " FROM generate_series(1, 2000) i");
    q_exec(app,
           "INSERT INTO dossier.groups (name) SELECT 'g' || i FROM generate_series(1, 1000) i");
    q_exec(app, "INSERT INTO dossier.service_accounts (name)"
                " SELECT 's' || i FROM generate_series(1, 1000) i");
    q_exec(app, "INSERT INTO dossier.group_members (group_id, user_id)"
                " SELECT g.id, u.id FROM (SELECT id, row_number() OVER (ORDER BY id) n"
                "  FROM dossier.groups) g JOIN (SELECT id, row_number() OVER (ORDER BY id) n"
                "  FROM dossier.users) u ON u.n = g.n");
    q_exec(app, "INSERT INTO dossier.grants (role, folder_id, user_id)"
                " SELECT 'viewer', f.id, u.id FROM (SELECT id, row_number() OVER () n"
                "  FROM dossier.folders) f JOIN (SELECT id, row_number() OVER () n"
                "  FROM dossier.users) u ON u.n = f.n % 2000 + 1");
    q_exec(app, "INSERT INTO dossier.grants (role, document_id, group_id)"
                " SELECT 'editor', d.id, g.id FROM (SELECT id, row_number() OVER () n"
                "  FROM dossier.documents) d JOIN (SELECT id, row_number() OVER () n"
                "  FROM dossier.groups) g ON g.n = d.n % 1000 + 1 WHERE d.n % 10 = 0");
    q_exec(app, "COMMIT");
}

static void test_effective_role_plan(void **state)
{
    (void)state;
    PGconn *owner = pg_open(g_env.owner_dsn);
    PGconn *app = pg_open(g_env.app_dsn);
    char *tenant = tenant_new(owner);
    big_fill(app, tenant);
    char *dsn = ds_xasprintf("%s dbname=dossier", g_env.super_dsn);
    PGconn *super = pg_open(dsn);
    free(dsn);
    q_exec(super, "ANALYZE dossier.folders, dossier.documents, dossier.users, dossier.groups,"
                  " dossier.group_members, dossier.service_accounts, dossier.grants");
    notices_t notices = {0};
    (void)PQsetNoticeReceiver(super, notice_keep, &notices);
    q_exec(super, "LOAD 'auto_explain'");
    q_exec(super, "SET auto_explain.log_min_duration = 0");
    q_exec(super, "SET auto_explain.log_nested_statements = on");
    q_exec(super, "SET auto_explain.log_level = notice");
    q_exec(super, "SET ROLE dossier_app");
    q_exec(super, "BEGIN");
    set_tenant(super, tenant);
    q_expect(super, "SELECT count(*) FROM dossier.folders", 0, NULL, "20020");
    /* A user who is in a group, on a document whose group grant is its own and whose folder's
     * grant is to that user: each kind of grant is found. */
    char *ids = q_value(super,
                        "SELECT concat_ws(',', m.user_id, d.id, dossier.effective_role('user',"
                        " m.user_id, 'document', d.id)) FROM dossier.grants g"
                        " JOIN dossier.documents d ON d.id = g.document_id"
                        " JOIN dossier.group_members m ON m.group_id = g.group_id LIMIT 1",
                        0, NULL);
    assert_non_null(strstr(ids, ",editor"));
    free(notices.plans);
    notices.plans = NULL;
    char *doc = strchr(ids, ',');
    assert_non_null(doc);
    *doc++ = '\0';
    *strchr(doc, ',') = '\0';
    const char *p[] = {ids, doc};
    q_expect(super, "SELECT dossier.effective_role('user', $1, 'document', $2)", 2, p, "editor");
    q_exec(super, "COMMIT");
    q_exec(super, "RESET ROLE");

    const char *plan = notices.plans != NULL ? strstr(notices.plans, "reaching AS") : NULL;
    if (plan == NULL) {
        fail_msg("no plan of effective_role() in the notices: %s",
                 notices.plans != NULL ? notices.plans : "(none)");
    } else if (strstr(plan, "Seq Scan") != NULL ||
               strstr(plan, "Index Scan using grants_folder_idx") == NULL ||
               strstr(plan, "Index Scan using grants_document_idx") == NULL ||
               strstr(plan, "(folder_id = ANY (") == NULL) {
        fail_msg("effective_role() does not run over the grants indexes:\n%s", plan);
    }
    free(notices.plans);
    free(ids);
    pg_close(&super);
    pg_close(&app);
    tenant_drop(owner, &tenant);
    pg_close(&owner);
}

int main(void)
{
    pgtest_env_or_skip(&g_env);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_effective_role, tree_setup, tree_teardown),
        cmocka_unit_test_setup_teardown(test_object_permissions, tree_setup, tree_teardown),
        cmocka_unit_test(test_user_limit_race),
        cmocka_unit_test(test_user_lifecycle),
        cmocka_unit_test(test_effective_role_plan),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    pgtest_env_fini(&g_env);
    return failed;
}
