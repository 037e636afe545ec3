/* pgtest: support for integration tests that need PostgreSQL (linked into every program of
 * tests/integration/).
 *
 * 1. The suite's server. The test fixture exports DS_TEST_PG_ENV, the path of a file of
 *    KEY=VALUE lines (../CONTRACTS.md): DS_PG_HOST, DS_PG_PORT, DS_PG_BINDIR,
 *    DS_PG_SUPER_DSN, DS_PG_OWNER_DSN, DS_PG_APP_DSN, DS_PG_DATA_DIR. pgtest_env_or_skip()
 *    loads it, or prints why it cannot and exits 77 (ctest's skip), so call it first in main().
 * 2. Scratch databases. Tests isolate themselves: pgtest_db_create() makes a database of its
 *    own on the suite's server, with an owner role and an application role (LOGIN NOSUPERUSER
 *    NOBYPASSRLS, like dossier_owner and dossier_app) whose names carry the process id, and
 *    pgtest_db_drop() removes all three.
 * 3. Private clusters, for tests that stop and start PostgreSQL: pgtest_cluster_new() runs
 *    initdb into a fresh mkdtemp directory under /tmp and starts the server on a Unix socket
 *    there (no TCP, trust authentication: the socket directory is 0700), as the `postgres` user
 *    when the test runs as root (PostgreSQL refuses root), and pgtest_cluster_free() stops it
 *    and deletes the directory.
 * 4. Synchronous SQL for setup and checks (pgtest_exec, pgtest_query1): libpq's blocking
 *    calls, from the test thread only (never from an actor).
 * 5. Asking an actor from the test thread: pgtest_calls_t spawns one short-lived actor per
 *    ask, which asks, keeps the reply (decoded when it is the pg pool's) and stops. The test
 *    thread waits for replies with a bound that only catches hangs.
 *
 * Errors: functions return 0 or a negative code and print the reason on stderr (a test's
 * stderr is its log). Threads: everything but the calls' actors runs on the test thread. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/id.h"
#include "runtime/msg.h"
#include "runtime/rt.h"
#include "transports/pg/pool.h"

/* ---- 1. the suite's server ---- */

typedef struct pgtest_env {
    char *host; /* socket directory */
    char *port;
    char *bindir;    /* initdb, pg_ctl... */
    char *super_dsn; /* superuser, dbname=postgres */
    char *owner_dsn; /* dossier_owner, dbname=dossier */
    char *app_dsn;   /* dossier_app, dbname=dossier */
    char *data_dir;
} pgtest_env_t;

/* Reads the file DS_TEST_PG_ENV names. 0 and *out (free with pgtest_env_fini()); -ENOENT when
 * the variable is unset or the file unreadable; -EINVAL when a key is missing. */
int pgtest_env_load(pgtest_env_t *out);
void pgtest_env_fini(pgtest_env_t *env);
/* pgtest_env_load(), or a line on stderr saying why and exit(77). */
void pgtest_env_or_skip(pgtest_env_t *out);

/* ---- 2. scratch databases ---- */

typedef struct pgtest_db {
    char name[64];   /* database */
    char owner[64];  /* owner role (owns the database and its public schema) */
    char app[64];    /* application role: NOSUPERUSER NOBYPASSRLS, CONNECT only */
    char *super_dsn; /* copies, free()d by pgtest_db_drop() */
    char *owner_dsn;
    char *app_dsn;
} pgtest_db_t;

/* Creates database and roles named <prefix>_<pid>_<n> (+ _owner, _app) on env's server, with
 * random passwords. 0 and *out, or -EIO. */
int pgtest_db_create(const pgtest_env_t *env, const char *prefix, pgtest_db_t *out);
/* Drops the database (terminating its sessions) and both roles; frees the DSNs. */
void pgtest_db_drop(pgtest_db_t *db);

/* ---- 3. private clusters ---- */

typedef struct pgtest_cluster pgtest_cluster_t;

/* initdb + start, under a new /tmp/ds-pgtest-XXXXXX. bindir: DS_PG_BINDIR. 0 and *out; -EIO
 * when a command failed (its output is in <dir>/cmd.log, the server's in <dir>/server.log). */
int pgtest_cluster_new(const char *bindir, pgtest_cluster_t **out);
/* The superuser's conninfo (dbname=postgres). Owned by the cluster. */
const char *pgtest_cluster_dsn(const pgtest_cluster_t *c);
/* The directory holding everything (for logs in a failure message). */
const char *pgtest_cluster_dir(const pgtest_cluster_t *c);
/* pg_ctl stop -m mode ("fast", "immediate", "smart") -w. 0 or -EIO. */
int pgtest_cluster_stop(pgtest_cluster_t *c, const char *mode);
/* pg_ctl start -w. 0 or -EIO. */
int pgtest_cluster_start(pgtest_cluster_t *c);
/* Stops the server (immediate) if it runs and deletes its directory. Accepts NULL. */
void pgtest_cluster_free(pgtest_cluster_t **c);

/* ---- 4. synchronous SQL ---- */

/* Runs sql (several statements allowed, no parameters). 0, or -EIO (message on stderr). */
int pgtest_exec(const char *dsn, const char *sql);
/* Runs a query and copies its first value (row 0, column 0) into buf ("" for NULL). 0, -EIO,
 * or -ENOENT when it returned no row. */
int pgtest_query1(const char *dsn, const char *sql, char *buf, size_t cap);

/* ---- 5. asking from the test thread ---- */

typedef struct pgtest_call {
    unsigned replies; /* replies (or timeouts) received: exactly 1 once done */
    int ask_rc;       /* ds_ask()'s return: non-zero means no reply will come */
    uint64_t order;   /* 1-based rank of this reply among the batch's replies */
    ds_msg_t *reply;  /* the first reply, owned by the batch */
    int decode_rc;    /* ds_pg_reply_decode()'s return on it */
    ds_pg_reply_t pg; /* decoded (valid when decode_rc is 0) */
} pgtest_call_t;

typedef struct pgtest_calls pgtest_calls_t;

/* A batch of n asks against rt. Free with pgtest_calls_free(). */
pgtest_calls_t *pgtest_calls_new(ds_rt_t *rt, size_t n);
/* Asks `to` with *msgp (taken) from a fresh actor of group `group` (0: the system group),
 * recording the outcome in slot i. 0, or the spawn's error (*msgp still the caller's). */
int pgtest_calls_ask(pgtest_calls_t *b, size_t i, ds_actor_id_t to, ds_msg_t **msgp,
                     int64_t timeout_ns, uint32_t group);
/* Waits until `want` slots are done (fails the test after hang_ns). Returns how many are. */
size_t pgtest_calls_wait(pgtest_calls_t *b, size_t want, int64_t hang_ns);
/* Slot i (read it after pgtest_calls_wait()). */
pgtest_call_t *pgtest_calls_get(pgtest_calls_t *b, size_t i);
/* Frees the batch and its replies. Wait for every ask first. Accepts NULL. */
void pgtest_calls_free(pgtest_calls_t **bp);

/* One ask, waited for: pgtest_calls_* with a batch of one. The outcome is copied to *out
 * (its reply freed: out->pg must not be used; code, sqlstate and stmt are kept). */
typedef struct pgtest_result {
    int code;
    char sqlstate[6];
    uint32_t stmt;
    uint32_t nstmts;
    char value[256]; /* the first statement's first value, or "" (NULL: "<null>") */
    uint32_t nrows;  /* the first statement's rows */
} pgtest_result_t;
int pgtest_ask1(ds_rt_t *rt, ds_actor_id_t to, ds_msg_t **msgp, int64_t timeout_ns,
                pgtest_result_t *out);
