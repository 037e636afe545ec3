/* pgsql: synchronous SQL helpers of the integration tests. See tests/integration/pgsql.h. */
#include "tests/integration/pgsql.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "runtime/mem.h"

PGconn *pg_open(const char *dsn)
{
    PGconn *c = PQconnectdb(dsn);
    if (PQstatus(c) != CONNECTION_OK) {
        fail_msg("cannot connect: %s", PQerrorMessage(c));
    }
    return c;
}

void pg_close(PGconn **c)
{
    PQfinish(*c);
    *c = NULL;
}

PGresult *q(PGconn *c, const char *sql, int n, const char *const *params)
{
    PGresult *r = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        fail_msg("query failed: %s  in: %s", PQresultErrorMessage(r), sql);
    }
    return r;
}

void q_exec(PGconn *c, const char *sql)
{
    PQclear(q(c, sql, 0, NULL));
}

void q_execp(PGconn *c, const char *sql, int n, const char *const *params)
{
    PQclear(q(c, sql, n, params));
}

char *q_value(PGconn *c, const char *sql, int n, const char *const *params)
{
    PGresult *r = q(c, sql, n, params);
    if (PQntuples(r) < 1) {
        fail_msg("no row from: %s", sql);
    }
    char *v = ds_xstrdup(PQgetisnull(r, 0, 0) ? "<null>" : PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

void q_expect(PGconn *c, const char *sql, int n, const char *const *params, const char *want)
{
    char *v = q_value(c, sql, n, params);
    if (strcmp(v, want) != 0) {
        fail_msg("got \"%s\", want \"%s\"  from: %s", v, want, sql);
    }
    free(v);
}

void q_fails_msg(PGconn *c, const char *sql, int n, const char *const *params, const char *state,
                 const char *msg)
{
    bool in_tx = PQtransactionStatus(c) == PQTRANS_INTRANS;
    if (in_tx) {
        q_exec(c, "SAVEPOINT expect_error");
    }
    PGresult *r = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
    const char *got = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    const char *text = PQresultErrorMessage(r);
    if (PQresultStatus(r) != PGRES_FATAL_ERROR || got == NULL || strcmp(got, state) != 0 ||
        (msg != NULL && strstr(text, msg) == NULL)) {
        fail_msg("expected SQLSTATE %s (%s), got %s: %s  in: %s", state, msg ? msg : "any",
                 got ? got : "success", text, sql);
    }
    PQclear(r);
    if (in_tx) {
        q_exec(c, "ROLLBACK TO SAVEPOINT expect_error");
    }
}

void q_fails(PGconn *c, const char *sql, int n, const char *const *params, const char *state)
{
    q_fails_msg(c, sql, n, params, state, NULL);
}

void set_tenant(PGconn *c, const char *tenant)
{
    const char *p[] = {tenant};
    PQclear(q(c, "SELECT pg_catalog.set_config('app.tenant_id', $1, true)", 1, p));
}
