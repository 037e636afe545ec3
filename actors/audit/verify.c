/* verify: the chain walk over blocking libpq. See actors/audit/verify.h. */
#include "actors/audit/verify.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "runtime/mem.h"
#include "transports/blob/keystore.h"

static int verify_exec(PGconn *conn, const char *sql, int n, const char *const *params,
                       PGresult **res, char **why)
{
    PGresult *r = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        if (why != NULL && *why == NULL) {
            *why = ds_xasprintf("%s", r != NULL ? PQresultErrorMessage(r) : PQerrorMessage(conn));
        }
        PQclear(r);
        return -EIO;
    }
    if (res != NULL) {
        *res = r;
    } else {
        PQclear(r);
    }
    return 0;
}

/* Feeds the rows of one batch to the walk. 0, or the walk's OpenSSL error. */
static int verify_feed(ds_audit_walk_t *w, PGresult *r)
{
    int rows = PQntuples(r);
    if (PQnfields(r) != DS_AUDIT_NCOLS) {
        return -EIO;
    }
    ds_pg_value_t row[DS_AUDIT_NCOLS];
    for (int i = 0; i < rows && w->problem.kind == DS_AUDIT_INTACT; i++) {
        for (int c = 0; c < DS_AUDIT_NCOLS; c++) {
            bool null = PQgetisnull(r, i, c) != 0;
            row[c] = (ds_pg_value_t){
                .ptr = null ? NULL : PQgetvalue(r, i, c),
                .len = null ? 0 : (uint32_t)PQgetlength(r, i, c),
                .null = null,
            };
        }
        int rc = ds_audit_walk_row(w, row);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

static int verify_batches(PGconn *conn, ds_audit_walk_t *w, uint32_t batch, char **why)
{
    char limit[16];
    (void)snprintf(limit, sizeof(limit), "%u", batch);
    for (;;) {
        char seq[24];
        char id[DS_AUDIT_UUID_LEN + 1];
        ds_audit_walk_next(w, seq, id);
        const char *p[] = {w->tenant, seq, id, limit};
        PGresult *r = NULL;
        int rc = verify_exec(conn, DS_AUDIT_BATCH_SQL, 4, p, &r, why);
        if (rc < 0) {
            return rc;
        }
        int rows = PQntuples(r);
        rc = verify_feed(w, r);
        PQclear(r);
        if (rc < 0) {
            return rc;
        }
        if (w->problem.kind != DS_AUDIT_INTACT || (uint32_t)rows < batch) {
            return 0;
        }
    }
}

int ds_audit_verify_conn(PGconn *conn, const char *tenant, const ds_audit_verify_opts_t *opts,
                         ds_audit_walk_t *out, char **why)
{
    if (!ds_keystore_tenant_valid(tenant)) {
        return -EINVAL;
    }
    ds_audit_verify_opts_t o = opts != NULL ? *opts : (ds_audit_verify_opts_t){0};
    uint32_t batch = o.batch != 0 ? o.batch : DS_AUDIT_BATCH_DEFAULT;
    ds_audit_walk_t w;
    ds_audit_walk_init(&w, tenant);
    if (o.checkpoint != NULL) {
        ds_audit_walk_set_checkpoint(&w, o.checkpoint->seq, o.checkpoint->hash);
        if (o.resume) {
            ds_audit_walk_resume(&w);
        }
    }
    const char *p[] = {tenant};
    int rc =
        verify_exec(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", 0, NULL, NULL, why);
    if (rc == 0) {
        rc = verify_exec(conn, "SELECT set_config('app.tenant_id', $1, true)", 1, p, NULL, why);
    }
    if (rc == 0) {
        rc = verify_batches(conn, &w, batch, why);
    }
    if (rc == 0) {
        rc = verify_exec(conn, "COMMIT", 0, NULL, NULL, why);
    } else {
        PQclear(PQexec(conn, "ROLLBACK"));
    }
    if (rc < 0) {
        return rc;
    }
    (void)ds_audit_walk_finish(&w);
    *out = w;
    return 0;
}
