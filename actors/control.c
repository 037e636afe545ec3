/* control: operator actions on the control plane. See actors/control.h. */
#include "actors/control.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/mem.h"

enum {
    CONTROL_SLUG_MAX = 63,
    CONTROL_NAME_MAX = 200,
};

static bool control_slug_ok(const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;
    if (n < 2 || n > CONTROL_SLUG_MAX || s[0] < 'a' || s[0] > 'z' || s[n - 1] == '-') {
        return false;
    }
    return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-") == n;
}

static bool control_plan_ok(const char *p)
{
    return p != NULL && (strcmp(p, "standard") == 0 || strcmp(p, "professional") == 0 ||
                         strcmp(p, "enterprise") == 0);
}

static int control_fail(int rc, char **why, const char *fmt, const char *arg)
{
    if (why != NULL && *why == NULL) {
        *why = ds_xasprintf(fmt, arg != NULL ? arg : "");
    }
    return rc;
}

/* Runs one statement; -EIO with PostgreSQL's primary message in *why on failure. For a
 * statement that must touch a row, *rows gets the affected or returned count. */
static int control_exec(PGconn *conn, const char *sql, int n, const char *const *params,
                        PGresult **out, char **why)
{
    PGresult *res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        int rc = state != NULL && strcmp(state, "23505") == 0    ? -EEXIST
                 : state != NULL && strncmp(state, "23", 2) == 0 ? -EINVAL
                                                                 : -EIO;
        const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
        (void)control_fail(rc, why, "%s", msg != NULL ? msg : PQerrorMessage(conn));
        PQclear(res);
        return rc;
    }
    if (out != NULL) {
        *out = res;
    } else {
        PQclear(res);
    }
    return 0;
}

static void control_rollback(PGconn *conn)
{
    PGresult *res = PQexec(conn, "ROLLBACK");
    PQclear(res);
}

/* One parameterized statement. */
typedef struct control_stmt {
    const char *sql;
    int n;
    const char *const *params;
} control_stmt_t;

/* BEGIN; the statement (it returns the tenant id in column 0 of one row, or no row); the
 * audit row; COMMIT. */
static int control_tx(PGconn *conn, const ds_control_actor_t *actor, const char *action,
                      const control_stmt_t *stmt, const char *details, char id_out[37], char **why)
{
    const char *sql = stmt->sql;
    int n = stmt->n;
    const char *const *params = stmt->params;
    int rc = control_exec(conn, "BEGIN", 0, NULL, NULL, why);
    PGresult *res = NULL;
    if (rc == 0) {
        rc = control_exec(conn, sql, n, params, &res, why);
    }
    if (rc == 0 && PQntuples(res) != 1) {
        rc = control_fail(-ENOENT, why, "no tenant '%s'", params[0]);
    }
    if (rc == 0) {
        const char *audit[] = {actor->who, action, PQgetvalue(res, 0, 0), details};
        if (id_out != NULL) {
            (void)snprintf(id_out, 37, "%s", PQgetvalue(res, 0, 0));
        }
        rc = control_exec(conn,
                          "INSERT INTO dossier.control_audit (actor, action, tenant_id, details)"
                          " VALUES ($1, $2, $3, $4::jsonb)",
                          4, audit, NULL, why);
    }
    PQclear(res);
    if (rc == 0) {
        rc = control_exec(conn, "COMMIT", 0, NULL, NULL, why);
    } else {
        control_rollback(conn);
    }
    return rc;
}

int ds_control_tenant_create(PGconn *conn, const ds_control_actor_t *actor,
                             const ds_tenant_spec_t *spec, char id_out[37], char **why)
{
    if (!control_slug_ok(spec->slug)) {
        return control_fail(-EINVAL, why,
                            "bad slug '%s': 2 to 63 of a-z, 0-9 and '-', starting with a letter",
                            spec->slug);
    }
    if (!control_plan_ok(spec->plan)) {
        return control_fail(-EINVAL, why, "bad plan '%s': standard, professional or enterprise",
                            spec->plan);
    }
    if (spec->name == NULL || spec->name[0] == '\0' || strlen(spec->name) > CONTROL_NAME_MAX) {
        return control_fail(-EINVAL, why, "a tenant needs a name of 1 to 200 bytes%s", NULL);
    }
    const char *params[] = {spec->slug, spec->name, spec->region, spec->plan};
    char *details = ds_xasprintf("{\"slug\":\"%s\",\"plan\":\"%s\",\"region\":\"%s\"}", spec->slug,
                                 spec->plan, spec->region);
    int rc = control_tx(conn, actor, "tenant.create",
                        &(control_stmt_t){"INSERT INTO dossier.tenants (slug, name, region, plan)"
                                          " VALUES ($1, $2, $3, $4) RETURNING id",
                                          4, params},
                        details, id_out, why);
    free(details);
    if (rc == -EEXIST && why != NULL) {
        free(*why);
        *why = ds_xasprintf("a tenant '%s' exists already", spec->slug);
    }
    return rc;
}

int ds_control_tenant_set_status(PGconn *conn, const ds_control_actor_t *actor, const char *slug,
                                 const char *status, char **why)
{
    static const char *const actions[][2] = {
        {"active", "tenant.resume"},
        {"suspended", "tenant.suspend"},
        {"offboarding", "tenant.offboard"},
    };
    const char *action = NULL;
    for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++) {
        if (strcmp(status, actions[i][0]) == 0) {
            action = actions[i][1];
        }
    }
    if (action == NULL) {
        return control_fail(-EINVAL, why, "bad status '%s'", status);
    }
    const char *params[] = {slug, status};
    char *details = ds_xasprintf("{\"status\":\"%s\"}", status);
    control_stmt_t stmt = {
        "UPDATE dossier.tenants SET status = $2,"
        " suspended_at = CASE WHEN $2 = 'suspended' THEN now() ELSE NULL END,"
        " offboarding_at = CASE WHEN $2 = 'offboarding' THEN now() ELSE offboarding_at END"
        " WHERE slug = $1 RETURNING id",
        2, params};
    int rc = control_tx(conn, actor, action, &stmt, details, NULL, why);
    free(details);
    return rc;
}

int ds_control_tenant_override(PGconn *conn, const ds_control_actor_t *actor, const char *slug,
                               const char *key, ds_override_op_t op, uint64_t value, char **why)
{
    char num[24];
    (void)snprintf(num, sizeof(num), "%llu", (unsigned long long)value);
    const char *params[] = {slug, key, op == DS_OVERRIDE_SET ? num : NULL};
    char *details = op == DS_OVERRIDE_SET
                        ? ds_xasprintf("{\"key\":\"%s\",\"value\":%s}", key, num)
                        : ds_xasprintf("{\"key\":\"%s\",\"value\":\"%s\"}", key,
                                       op == DS_OVERRIDE_UNLIMITED ? "unlimited" : "plan");
    int rc;
    if (op != DS_OVERRIDE_REMOVE) {
        rc = control_tx(
            conn, actor, "tenant.override",
            &(control_stmt_t){"INSERT INTO dossier.tenant_plan_overrides (tenant_id, key, value)"
                              " SELECT id, $2, $3::bigint FROM dossier.tenants WHERE slug = $1"
                              " ON CONFLICT (tenant_id, key) DO UPDATE"
                              " SET value = EXCLUDED.value, updated_at = now()"
                              " RETURNING tenant_id",
                              3, params},
            details, NULL, why);
    } else {
        rc = control_tx(
            conn, actor, "tenant.override",
            &(control_stmt_t){"WITH t AS (SELECT id FROM dossier.tenants WHERE slug = $1),"
                              " d AS (DELETE FROM dossier.tenant_plan_overrides o USING t"
                              " WHERE o.tenant_id = t.id AND o.key = $2)"
                              " SELECT id FROM t",
                              2, params},
            details, NULL, why);
    }
    free(details);
    return rc;
}

/* The tenant columns both outputs show. */
#define CONTROL_TENANT_COLUMNS                                                                   \
    "t.id, t.slug, t.name, t.region, t.plan, t.status,"                                          \
    " to_char(t.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS created_at," \
    " to_char(t.suspended_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS "          \
    "suspended_at,"                                                                              \
    " (SELECT coalesce(json_object_agg(o.key, coalesce(to_json(o.value), "                       \
    "to_json('unlimited'::text))"                                                                \
    " ORDER BY o.key), '{}') FROM dossier.tenant_plan_overrides o WHERE o.tenant_id = t.id)"     \
    " AS overrides"

int ds_control_tenant_print(PGconn *conn, const char *slug, bool json, char **why)
{
    const char *params[] = {slug};
    PGresult *res = NULL;
    int rc;
    if (json && slug != NULL) {
        rc = control_exec(conn,
                          "SELECT row_to_json(x) FROM (SELECT " CONTROL_TENANT_COLUMNS
                          " FROM dossier.tenants t WHERE t.slug = $1) x",
                          1, params, &res, why);
    } else if (json) {
        rc = control_exec(conn,
                          "SELECT json_build_object('items', coalesce(json_agg(x ORDER BY x.slug),"
                          " '[]'))::text FROM (SELECT " CONTROL_TENANT_COLUMNS
                          " FROM dossier.tenants t) x",
                          0, NULL, &res, why);
    } else {
        rc = control_exec(conn,
                          "SELECT " CONTROL_TENANT_COLUMNS
                          " FROM dossier.tenants t WHERE $1::text IS NULL OR t.slug = $1"
                          " ORDER BY t.slug",
                          1, params, &res, why);
    }
    if (rc == 0 && slug != NULL && PQntuples(res) == 0) {
        rc = control_fail(-ENOENT, why, "no tenant '%s'", slug);
    }
    if (rc == 0 && json) {
        (void)printf("%s\n", PQgetvalue(res, 0, 0));
    } else if (rc == 0 && slug != NULL) {
        static const char *const labels[] = {"id",         "slug",         "name",
                                             "region",     "plan",         "status",
                                             "created_at", "suspended_at", "overrides"};
        for (int c = 0; c < 9; c++) {
            (void)printf("%-13s %s\n", labels[c], PQgetvalue(res, 0, c));
        }
    } else if (rc == 0) {
        (void)printf("%-36s  %-20s  %-12s  %-9s  %-8s  %s\n", "ID", "SLUG", "PLAN", "STATUS",
                     "REGION", "NAME");
        for (int r = 0; r < PQntuples(res); r++) {
            (void)printf("%-36s  %-20s  %-12s  %-9s  %-8s  %s\n", PQgetvalue(res, r, 0),
                         PQgetvalue(res, r, 1), PQgetvalue(res, r, 4), PQgetvalue(res, r, 5),
                         PQgetvalue(res, r, 3), PQgetvalue(res, r, 2));
        }
    }
    PQclear(res);
    return rc;
}

const char *ds_control_cli_actor(void)
{
    static char who[96];
    const struct passwd *pw = getpwuid(geteuid()); // NOLINT(concurrency-mt-unsafe): main thread
    (void)snprintf(who, sizeof(who), "cli:%s", pw != NULL ? pw->pw_name : "unknown");
    return who;
}
