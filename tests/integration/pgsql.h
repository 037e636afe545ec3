/* pgsql: synchronous SQL on one libpq session for the integration tests, failing the running
 * cmocka test (fail_msg) on anything unexpected. Include after <cmocka.h>. */
#pragma once

#include <libpq-fe.h>

/* A connection to dsn; fails the test unless it opens. */
PGconn *pg_open(const char *dsn);
/* Closes *c and sets it to NULL. */
void pg_close(PGconn **c);
/* Runs sql with n text params; fails the test unless it succeeds. The caller PQclear()s. */
PGresult *q(PGconn *c, const char *sql, int n, const char *const *params);
/* The same without a result to read, with and without params. */
void q_exec(PGconn *c, const char *sql);
void q_execp(PGconn *c, const char *sql, int n, const char *const *params);
/* The first value of the first row, malloc'ed ("<null>" for NULL); fails without a row. */
char *q_value(PGconn *c, const char *sql, int n, const char *const *params);
/* Fails unless q_value() is want. */
void q_expect(PGconn *c, const char *sql, int n, const char *const *params, const char *want);
/* Runs sql expecting SQLSTATE state and, if msg is not NULL, a message containing it. Inside a
 * transaction the statement runs under a savepoint, so the transaction goes on. */
void q_fails_msg(PGconn *c, const char *sql, int n, const char *const *params, const char *state,
                 const char *msg);
void q_fails(PGconn *c, const char *sql, int n, const char *const *params, const char *state);
/* set_config('app.tenant_id', tenant, true): the first statement of a tenant transaction. */
void set_tenant(PGconn *c, const char *tenant);
