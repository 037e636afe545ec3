/* demo: the demo tenant and admin. See actors/demo.h. */
#include "actors/demo.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "actors/password.h"
#include "runtime/mem.h"

static int demo_exec(PGconn *conn, const char *sql, int n, const char *const *params,
                     PGresult **out, char **why)
{
    PGresult *res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        if (*why == NULL) {
            *why = ds_xasprintf("demo tenant: %s", PQresultErrorMessage(res));
        }
        PQclear(res);
        return -EIO;
    }
    if (out != NULL) {
        *out = res;
    } else {
        PQclear(res);
    }
    return 0;
}

/* Inside the transaction: the tenant exists (id in tenant_id); add the admin and a top-level
 * folder "Shared" to grant roles on, each recorded in the tenant's audit trail. */
static int demo_admin(PGconn *conn, const char *tenant_id, const char *hash, char **why)
{
    const char *tp[] = {tenant_id};
    int rc = demo_exec(conn, "SELECT set_config('app.tenant_id', $1, true)", 1, tp, NULL, why);
    const char *up[] = {tenant_id, "admin@demo.localhost", "Demo admin", hash};
    if (rc == 0) {
        rc = demo_exec(conn,
                       "INSERT INTO dossier.users (tenant_id, email, display_name, password_hash,"
                       " password_changed_at, roles) VALUES ($1, $2, $3, $4, now(), '{admin}')",
                       4, up, NULL, why);
    }
    if (rc == 0) {
        rc = demo_exec(conn,
                       "SELECT dossier.audit_append('system', NULL, 'dossier serve: demo tenant',"
                       " 'user.create', 'user', u.id, NULL, NULL, 'success',"
                       " jsonb_build_object('email', u.email, 'roles', u.roles))"
                       " FROM dossier.users u",
                       0, NULL, NULL, why);
    }
    if (rc == 0) {
        rc = demo_exec(conn,
                       "WITH f AS (INSERT INTO dossier.folders (name) VALUES ('Shared')"
                       " RETURNING id) SELECT dossier.audit_append('system', NULL,"
                       " 'dossier serve: demo tenant', 'folder.create', 'folder', f.id, NULL,"
                       " NULL, 'success', '{\"name\":\"Shared\"}') FROM f",
                       0, NULL, NULL, why);
    }
    const char *ap[] = {"serve", "tenant.create", tenant_id,
                        "{\"slug\":\"demo\",\"plan\":\"standard\",\"demo\":true,"
                        "\"admin\":\"admin@demo.localhost\"}"};
    if (rc == 0) {
        rc = demo_exec(conn,
                       "INSERT INTO dossier.control_audit (actor, action, tenant_id, details)"
                       " VALUES ($1, $2, $3, $4::jsonb)",
                       4, ap, NULL, why);
    }
    return rc;
}

int ds_demo_ensure(PGconn *conn, const char *region, const ds_password_cost_t *cost, FILE *console,
                   bool *created, char **why)
{
    *created = false;
    char password[DS_PASSWORD_GEN_LEN + 1];
    char hash[DS_PASSWORD_ENCODED_MAX];
    if (ds_password_generate(password) < 0 ||
        ds_password_hash_cost(cost, password, strlen(password), hash) < 0) {
        OPENSSL_cleanse(password, sizeof(password));
        *why = ds_xstrdup("demo tenant: could not hash a password");
        return -EIO;
    }
    int rc = demo_exec(conn, "BEGIN", 0, NULL, NULL, why);
    PGresult *res = NULL;
    const char *params[] = {region};
    if (rc == 0) {
        rc = demo_exec(conn,
                       "INSERT INTO dossier.tenants (slug, name, region, plan)"
                       " VALUES ('demo', 'Demo', $1, 'standard')"
                       " ON CONFLICT (slug) DO NOTHING RETURNING id",
                       1, params, &res, why);
    }
    bool fresh = rc == 0 && PQntuples(res) == 1;
    if (fresh) {
        rc = demo_admin(conn, PQgetvalue(res, 0, 0), hash, why);
    }
    PQclear(res);
    if (rc == 0 && fresh) {
        rc = demo_exec(conn, "COMMIT", 0, NULL, NULL, why);
    } else {
        PGresult *rb = PQexec(conn, "ROLLBACK");
        PQclear(rb);
    }
    if (rc == 0 && fresh) {
        *created = true;
        (void)fprintf(console,
                      "\nDemo tenant 'demo' created. Log in as admin@demo.localhost with the "
                      "password\n\n    %s\n\n(shown only this once; only its hash is stored)\n\n",
                      password);
        (void)fflush(console);
    }
    OPENSSL_cleanse(password, sizeof(password));
    OPENSSL_cleanse(hash, sizeof(hash));
    return rc;
}
