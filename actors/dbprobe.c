/* dbprobe: see actors/dbprobe.h. */
#include "actors/dbprobe.h"

#include <errno.h>
#include <stdlib.h>

#include "runtime/clock.h"
#include "runtime/err.h"
#include "runtime/log.h"
#include "runtime/mem.h"
#include "transports/pg/pool.h"

enum {
    DBPROBE_TIMEOUT_MS = 10000,
};

typedef struct dbprobe {
    ds_actor_id_t pool;
    int64_t asked_at;
} dbprobe_t;

static int dbprobe_init(ds_ctx_t *ctx, void *arg)
{
    if (arg == NULL) {
        return -EINVAL;
    }
    dbprobe_t *p = ds_xcalloc(1, sizeof(*p));
    p->pool = *(const ds_actor_id_t *)arg;
    ds_ctx_set_state(ctx, p);
    return 0;
}

static int dbprobe_ask(ds_ctx_t *ctx, dbprobe_t *p)
{
    ds_pg_req_t *req = ds_pg_req_new();
    ds_msg_t *msg = NULL;
    int rc = ds_pg_req_add(req, "SELECT dossier.schema_version()", 0, NULL);
    if (rc == 0) {
        ds_pg_opts_t opts = {.timeout_ms = DBPROBE_TIMEOUT_MS};
        rc = ds_pg_req_system(req, &opts, &msg);
    }
    ds_pg_req_free(&req);
    uint64_t corr = 0;
    p->asked_at = ds_clock_now();
    if (rc == 0) {
        rc = ds_ask(ctx, p->pool, &msg, (int64_t)DBPROBE_TIMEOUT_MS * 1000000, &corr);
    }
    ds_msg_free(&msg);
    return rc;
}

static void dbprobe_report(dbprobe_t *p, const ds_msg_t *msg)
{
    ds_pg_reply_t reply;
    int rc = ds_pg_reply_decode(msg, &reply);
    int64_t us = (ds_clock_now() - p->asked_at) / 1000;
    const ds_pg_value_t *v = NULL;
    if (rc == 0 && reply.code == 0 && reply.nstmts == 1) {
        v = ds_pg_rows_at(&reply.stmts[0], 0, 0);
    }
    if (v != NULL && !v->null) {
        char version[16] = {0};
        for (uint32_t i = 0; i < v->len && i + 1 < sizeof(version); i++) {
            version[i] = v->ptr[i];
        }
        ds_log_info("database ready", DS_LOG_STR("schema_version", version),
                    DS_LOG_I64("round_trip_us", us), DS_LOG_END);
    } else {
        int code = rc < 0 ? rc : reply.code;
        ds_log_error("database not ready", DS_LOG_STR("error", ds_errname(code)),
                     DS_LOG_STR("sqlstate", rc == 0 ? reply.sqlstate : ""), DS_LOG_END);
    }
    if (rc == 0) {
        ds_pg_reply_fini(&reply);
    }
}

static int dbprobe_receive(ds_ctx_t *ctx, ds_msg_t **msgp)
{
    dbprobe_t *p = ds_ctx_state(ctx);
    if ((*msgp)->type == DS_MT_PG_GO) {
        int rc = dbprobe_ask(ctx, p);
        if (rc < 0) {
            ds_log_error("database not ready", DS_LOG_STR("error", ds_errname(rc)), DS_LOG_END);
            return ds_exit(ctx, ds_self(ctx), DS_EXIT_SHUTDOWN); /* done: stop */
        }
        return 0;
    }
    dbprobe_report(p, *msgp);
    return ds_exit(ctx, ds_self(ctx), DS_EXIT_SHUTDOWN); /* done: stop */
}

static void dbprobe_terminate(ds_ctx_t *ctx, int reason)
{
    (void)reason;
    free(ds_ctx_state(ctx));
    ds_ctx_set_state(ctx, NULL);
}

const ds_behaviour_t ds_dbprobe_behaviour = {
    .name = "dbprobe",
    .init = dbprobe_init,
    .receive = dbprobe_receive,
    .terminate = dbprobe_terminate,
};
