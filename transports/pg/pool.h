/* pool: the asynchronous PostgreSQL pool (DESIGN.md §4). A port actor on a libuv loop
 * (runtime/loop.h) that holds up to `size` libpq connections and runs transactions on them
 * for other actors, which ask it and get the outcome back as a message: no actor ever blocks.
 *
 * Requests. Two kinds, and nothing else runs SQL through the pool:
 *   - a tenant transaction (DS_MT_PG_TX): the pool sends, pipelined in one round trip,
 *         SELECT set_config('app.tenant_id', $tenant, true), set_config('statement_timeout', $ms,
 *                true)        -- the first statement: the tenant, and SET LOCAL statement_timeout
 *         the request's statements, in order, each with its text parameters
 *     then a pipeline sync. Everything up to the sync is one transaction of the extended
 *     protocol (it begins with the first message and the sync commits it, or rolls it back
 *     after an error), exactly as BEGIN ... COMMIT would make it, without those two statements.
 *     Both settings are local to the transaction, so a connection reused afterwards reads ''
 *     for app.tenant_id: nothing leaks from one tenant to the next. The server does not count
 *     it as a transaction block, so statements that need one fail with 25P01 (SAVEPOINT, LOCK
 *     TABLE, DECLARE without HOLD), SET LOCAL only warns (set_config(..., true) works), SET
 *     TRANSACTION cannot follow the prologue (25001), and statements that refuse a block
 *     (VACUUM, CREATE DATABASE) have no place in a request either.
 *   - a system request (DS_MT_PG_SYSTEM), with no tenant, for the control plane's SECURITY
 *     DEFINER functions (routing: slug -> id, plan...). The application role sees no tenant row
 *     without a tenant, so it cannot leak one. Its statements run as one implicit transaction
 *     (the extended protocol's, ended by the sync: atomic, rolled back on error), preceded by
 *     set_config('statement_timeout', $ms, true) only when the request asks for a timeout other
 *     than the system default (set on each connection when it opens).
 * Every error rolls the transaction back (the server skips to the sync, which ends it).
 *
 * Pipelining. A connection serves one tenant at a time (the system counts as one). While it has
 * requests of that tenant in flight, more of the same tenant's may follow them on it, up to
 * pipeline_depth at once, each its own transaction, as long as no other tenant waits under its
 * cap and some connection of the pool is owned by nobody: a tenant arriving then finds that
 * one instead of waiting behind a batch. When every connection is taken by several tenants,
 * or a tenant arrives while one tenant alone holds them all, no request is added to a batch
 * already sent: each connection goes back to the fair queue once its batch is done.
 * A tenant that pipelines while under its cap has another connection opened for it (when a
 * slot is free), as it would have had without pipelining. Under load a tenant's
 * transactions thus travel in batches: one write, one wake-up of the server process, results read
 * together. A failed one aborts only itself.
 *
 * Replies. Exactly one per ask: DS_MT_PG_RESULT (every statement's columns, rows of text
 * values with NULLs told apart, and affected row count) or DS_MT_PG_FAIL (code, SQLSTATE,
 * message, failing statement). ds_pg_reply_decode() reads either, and the runtime's error
 * replies and timeouts too. The error's detail and hint go to the log (debug), never the reply.
 * Codes of FAIL:
 *   -EIO           PostgreSQL refused a statement: sqlstate and message say why. Rolled back.
 *   -ETIMEDOUT     a statement ran past the statement timeout (sqlstate 57014). Rolled back.
 *   -EAGAIN        serialization failure or deadlock (40001, 40P01): rolled back, retry it all.
 *   -ECONNRESET    the connection was lost with the request in flight (a restart, a killed
 *                  backend: sqlstate 08xxx or 57P01..57P03 when the server said why). The
 *                  sync (the commit) went out with the statements, so the outcome is unknown:
 *                  a writer must check before it retries.
 *   -ECONNREFUSED  no connection to the database could be opened (server down, wrong port,
 *                  authentication failed: the log says which). The request never ran. While the
 *                  pool has no connection and its last attempt failed, requests fail at once;
 *                  it keeps retrying with backoff (backoff_min_ms doubling to backoff_max_ms).
 *   DS_EFULL       the tenant's wait queue (max_waiting) or the pool's is full. Never ran.
 *   DS_ETIMEDOUT   the ask's deadline passed while it waited for a connection. Never ran.
 *   -EMSGSIZE      the results passed max_bytes. As the sync went out with the statements, a
 *                  transaction that wrote may have committed: size max_bytes for what your
 *                  writes return.
 *   -EINVAL        a malformed request (tenant not a UUID, no statements, too many...).
 *   DS_ESHUTDOWN   the pool stopped before it could answer.
 *
 * Fairness. Each tenant may hold at most max_conns connections at once (each running up to
 * pipeline_depth of its transactions, one after the other) and have at most max_waiting
 * requests waiting; the pool at most max_waiting in all.
 * Waiting tenants share free connections by start-time fair queueing over virtual time
 * (Goyal, Vin & Cheng, SIGCOMM '96, at the granularity of a tenant): each tenant has a virtual
 * time that grows by 1/weight for every transaction it is given; a free connection goes to the
 * eligible tenant (waiting, and under its cap -- or with room on its connections while
 * pipelining is allowed, see above) with the least virtual time; a tenant that starts
 * waiting joins at no less than the virtual time of the last transaction dispatched, so idle
 * time banks no credit. A flooding tenant thus gets its weighted share and no more, and never
 * more than max_conns connections. System requests form one more "tenant" with limits of their
 * own. Within a tenant, requests run in arrival order.
 *
 * Timeouts. The statement timeout of a transaction is the least of: the tenant's limit (its
 * registered timeout_ms, else the default), the request's timeout_ms when set, and the time
 * left to the ask's deadline (at least 1 ms). A request still waiting at its deadline is
 * answered DS_ETIMEDOUT (the asker has its runtime timeout already) and dropped.
 *
 * Reply encoding. RESULT.results is a msgpack array with one entry per statement, each
 *     [ [column name (str)...], [ [value (str, or nil for NULL)...] per row ], affected (uint) ]
 * where affected is PQcmdTuples (0 when the command reports none). Request stmts (TX, SYSTEM)
 * are a msgpack array of [sql (str), [param (str, or nil for NULL)...]].
 *
 * Prepared statements. Each connection prepares the first `stmt_cache` distinct SQL texts it
 * runs and reuses them (Bind/Execute only), which is why requests should pass values as
 * parameters and keep their SQL text constant.
 *
 * Threads. ds_pg_pool_start() is safe from any thread (actors included). The pool's code runs
 * on the loop thread only. The request builder and reply reader below are plain functions on
 * the caller's memory, safe on any thread for distinct objects.
 *
 * Lifetime. The pool lives until its loop is freed (ds_loop_free()) or it is sent a stop; it
 * then answers every request it holds with DS_ESHUTDOWN and closes its connections. It copies
 * its configuration; the conninfo (which may hold a password) is wiped when the pool stops. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/catalog.h"
#include "runtime/id.h"
#include "runtime/loop.h"
#include "runtime/msg.h"
#include "transports/pg/pg_msgs.h"

enum {
    DS_PG_STMT_NONE = UINT32_MAX,     /* FAIL.stmt when no user statement failed */
    DS_PG_REQ_STMTS_MAX = 256,        /* statements per request */
    DS_PG_REQ_PARAMS_MAX = 4096,      /* parameters per statement */
    DS_PG_REQ_BYTES_MAX = 1048576,    /* encoded statements of a request (TX.stmts max) */
    DS_PG_RESULT_BYTES_MAX = 8388608, /* ceiling of max_result_bytes */
    DS_PG_MESSAGE_MAX = 512,          /* bytes of FAIL.message kept */
    DS_PG_UUID_LEN = 36,              /* a tenant id in text */
};

/* A tenant's limits (its plan's). Zero fields take the pool's tenant defaults. */
typedef struct ds_pg_limits {
    uint32_t weight;               /* share of connections against other waiting tenants [1] */
    uint32_t max_conns;            /* connections held at once [max(1, size / 2)] */
    uint32_t max_waiting;          /* requests waiting for a connection [64] */
    uint32_t statement_timeout_ms; /* ceiling of a statement's run time [30,000] */
} ds_pg_limits_t;

/* Configuration. Zeroed fields take the defaults in brackets. */
typedef struct ds_pg_pool_config {
    const char *conninfo;        /* libpq conninfo or URI; required; copied */
    uint32_t size;               /* connections [8] */
    uint32_t connect_timeout_ms; /* one connection attempt, TCP to ready [5,000] */
    uint32_t backoff_min_ms;     /* first wait after a failed attempt [100] */
    uint32_t backoff_max_ms;     /* the wait doubles up to this [5,000] */
    uint32_t max_result_bytes;   /* largest reply; at most DS_PG_RESULT_BYTES_MAX [1 MiB] */
    uint32_t max_waiting;        /* requests waiting in all [4,096] */
    uint32_t pipeline_depth;     /* a tenant's requests in flight on one connection [1] */
    uint32_t stmt_cache;         /* prepared statements kept per connection; 0: default [64] */
    ds_pg_limits_t tenant;       /* defaults of tenants with no registered limits */
    ds_pg_limits_t system;       /* system requests [weight 1, max_conns size, max_waiting 1,024,
                                    30,000 ms] */
} ds_pg_pool_config_t;

/* Spawns the pool as a port of loop (it runs on the loop's thread) and returns its actor id.
 * No connection is opened until a request needs one. 0 and *out; -EINVAL for a config
 * without conninfo, or whose limits are inconsistent (backoff_min_ms > backoff_max_ms,
 * max_result_bytes past DS_PG_RESULT_BYTES_MAX); or an error of ds_loop_port().
 * The catalog (ds_pg_msgs_register()) is the process's to register. */
int ds_pg_pool_start(ds_loop_t *loop, const ds_pg_pool_config_t *cfg, ds_actor_id_t *out);

/* ---- requests ---- */

/* A request under construction: an ordered list of statements with text parameters. Build
 * it, turn it into a message with ds_pg_req_tx() or ds_pg_req_system() (as many times as
 * wanted), free it with ds_pg_req_free(). */
typedef struct ds_pg_req ds_pg_req_t;

/* Per-request options; NULL or zero fields: the tenant's and pool's. */
typedef struct ds_pg_opts {
    uint32_t timeout_ms; /* statement timeout wanted; capped by the tenant's */
    uint32_t max_bytes;  /* largest reply wanted; capped by the pool's */
} ds_pg_opts_t;

/* A new, empty request. Free with ds_pg_req_free(). */
ds_pg_req_t *ds_pg_req_new(void);
/* Frees *rp and sets it to NULL. Accepts NULL. */
void ds_pg_req_free(ds_pg_req_t **rp);
/* Appends a statement: sql (UTF-8, NUL-terminated, one SQL command, parameters $1..$n) and
 * nparams text parameters (params[i] NULL for SQL NULL; params may be NULL when nparams is 0).
 * The strings are copied. 0; -EINVAL for an empty sql, a string that is not UTF-8, more than
 * DS_PG_REQ_STMTS_MAX statements or DS_PG_REQ_PARAMS_MAX parameters; -EMSGSIZE past
 * DS_PG_REQ_BYTES_MAX in all. On error the request is unchanged. */
int ds_pg_req_add(ds_pg_req_t *r, const char *sql, uint32_t nparams, const char *const *params);
/* Statements added so far. */
uint32_t ds_pg_req_count(const ds_pg_req_t *r);
/* A DS_MT_PG_TX message for tenant (a UUID in text) running r's statements: ask the pool with
 * it. r is not changed in any way a caller sees (a header is framed in its spare room). 0 and *out
 * (free with ds_msg_free() unless sent); -EINVAL when r is empty or tenant is not a UUID. */
int ds_pg_req_tx(ds_pg_req_t *r, const char *tenant, const ds_pg_opts_t *opts, ds_msg_t **out);
/* A DS_MT_PG_SYSTEM message (no tenant) running r's statements. As ds_pg_req_tx(). */
int ds_pg_req_system(ds_pg_req_t *r, const ds_pg_opts_t *opts, ds_msg_t **out);

/* True when s[0..len) is a UUID in text: 8-4-4-4-12 hex digits, either case. */
bool ds_pg_uuid_valid(const char *s, size_t len);

/* ---- replies ---- */

/* A text value: ptr[0..len), not NUL-terminated, pointing into the reply message. */
typedef struct ds_pg_value {
    const char *ptr; /* NULL when null */
    uint32_t len;
    bool null; /* SQL NULL */
} ds_pg_value_t;

/* One statement's result. */
typedef struct ds_pg_rows {
    uint32_t ncols;
    uint32_t nrows;
    uint64_t affected;         /* rows affected or returned, as the command tag says */
    const ds_str_t *cols;      /* ncols column names */
    const ds_pg_value_t *vals; /* nrows * ncols values, row after row */
} ds_pg_rows_t;

/* A decoded reply. Fields point into the message it was decoded from, which must outlive it. */
typedef struct ds_pg_reply {
    int code;            /* 0: results below; else the failure (see the codes above) */
    char sqlstate[6];    /* PostgreSQL's SQLSTATE, "" when the error was not the server's */
    ds_str_t message;    /* the error's primary message (may be empty) */
    uint32_t stmt;       /* index of the failing statement, or DS_PG_STMT_NONE */
    uint32_t nstmts;     /* results: one per statement of the request */
    ds_pg_rows_t *stmts; /* private allocation: free with ds_pg_reply_fini() */
} ds_pg_reply_t;

/* Reads the answer to an ask of the pool: a DS_MT_PG_RESULT (code 0), a DS_MT_PG_FAIL, the
 * runtime's error reply (the pool crashed: code DS_ECRASHED and the like) or the ask's
 * DS_MT_TIMEOUT (code DS_ETIMEDOUT). 0 and *out; DS_EDECODE for any other message or a
 * malformed payload. Call ds_pg_reply_fini(out) after a 0. */
int ds_pg_reply_decode(const ds_msg_t *m, ds_pg_reply_t *out);
/* Frees what ds_pg_reply_decode() allocated. Safe on a zeroed reply. */
void ds_pg_reply_fini(ds_pg_reply_t *r);
/* The value at (row, col) of rows, or NULL past its bounds. */
const ds_pg_value_t *ds_pg_rows_at(const ds_pg_rows_t *rows, uint32_t row, uint32_t col);

/* ---- metrics ---- */

/* The pool's metrics, as DS_MT_PG_STATS carries them (ds_pg_stats_t, from pg_msgs.h):
 *   size, open (connections ready or busy), connecting, busy (serving a request), waiting
 *   (requests queued for a connection); counters: served (replies with results), errors
 *   (FAIL replies), connects, reconnects (connects that replaced a lost or failed one),
 *   disconnects (connections lost), connect_failures, refused (DS_EFULL), expired
 *   (DS_ETIMEDOUT while waiting); and for the tenant asked about: tenant_active (connections it
 *   holds), tenant_waiting, tenant_peak (most connections it ever held at once), tenant_served,
 *   tenant_peak_inflight (most of its requests ever in flight at once: above tenant_peak only
 *   when they were pipelined).
 * Ask the pool with ds_pg_stats_get_new(&(ds_pg_stats_get_t){.tenant = ...}) and decode the
 * reply with ds_pg_stats_decode(). Metric names for export: dossier_pg_<field>[_total]. */
