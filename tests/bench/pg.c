/* pg: point selects through the PostgreSQL pool (transports/pg/pool.h), the workload of
 * `pgbench -S`: SELECT abalance FROM pgbench_accounts WHERE aid = $1, aid random.
 *
 *   pg --dsn CONNINFO [--mode plain|tenant|pipelined] [--conns N] [--clients C] [--depth D]
 *      [--secs S] [--warm W] [--rows R] [--workers K]
 *
 * C client actors (default N) each ask the pool, wait for the reply, ask again, for W seconds
 * of warm-up and then S measured seconds; the pool has N connections and its loop a thread of
 * its own; the clients run on K runtime workers (1: idle workers spin briefly before they park,
 * and on a small machine that spinning takes CPU from the server being measured). Modes:
 *   plain      a system request per select (no tenant; one statement, one round trip)
 *   tenant     a tenant transaction per select (BEGIN, set_config, the select, COMMIT,
 *              pipelined in one round trip)
 *   pipelined  system requests with D of them in flight per connection (C defaults to N x D)
 * Prints one line: mode, conns, clients, depth, completed, errors, seconds, tps. The database
 * must hold pgbench's tables (pgbench -i); tests/bench/storage_pg.sh runs it all and the anchor.
 * Threads: the main thread sets up, sleeps, and reads the clients' totals under a mutex. */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/clock.h"
#include "runtime/err.h"
#include "runtime/id.h"
#include "runtime/loop.h"
#include "runtime/mem.h"
#include "runtime/msg.h"
#include "runtime/rt.h"
#include "transports/pg/pg_msgs.h"
#include "transports/pg/pool.h"

#define SEC          INT64_C(1000000000)
#define BENCH_TENANT "77777777-7777-4777-8777-777777777777"

typedef struct bench {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    ds_actor_id_t pool;
    bool tenant;
    uint32_t rows;
    int64_t t0, t1; /* the measured window */
    uint64_t done;  /* selects completed inside the window, all clients */
    uint64_t errors;
    unsigned finished; /* clients that stopped */
} bench_t;

typedef struct client {
    bench_t *b;
    uint64_t rng;
    uint64_t done, errors;
} client_t;

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

static int ask_next(ds_ctx_t *ctx, client_t *c)
{
    char aid[16];
    (void)snprintf(aid, sizeof(aid), "%u", (unsigned)(xorshift(&c->rng) % c->b->rows) + 1);
    const char *p[] = {aid};
    ds_pg_req_t *r = ds_pg_req_new();
    int rc = ds_pg_req_add(r, "SELECT abalance FROM pgbench_accounts WHERE aid = $1", 1, p);
    ds_msg_t *m = NULL;
    if (rc == 0) {
        rc = c->b->tenant ? ds_pg_req_tx(r, BENCH_TENANT, NULL, &m) : ds_pg_req_system(r, NULL, &m);
    }
    ds_pg_req_free(&r);
    uint64_t corr;
    if (rc == 0) {
        rc = ds_ask(ctx, c->b->pool, &m, 30 * SEC, &corr);
    }
    ds_msg_free(&m);
    return rc;
}

static void client_finish(ds_ctx_t *ctx, client_t *c)
{
    bench_t *b = c->b;
    pthread_mutex_lock(&b->mu);
    b->done += c->done;
    b->errors += c->errors;
    b->finished++;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
    ds_ctx_stop(ctx, DS_EXIT_NORMAL);
}

static int client_init(ds_ctx_t *ctx, void *arg)
{
    ds_ctx_set_state(ctx, arg);
    return 0;
}

static int client_receive(ds_ctx_t *ctx, ds_msg_t **msgp)
{
    client_t *c = ds_ctx_state(ctx);
    const ds_msg_t *m = *msgp;
    if (m->type != DS_MT_PG_GO) {
        ds_pg_reply_t rep;
        int64_t now = ds_clock_now();
        bool ok = false;
        if (ds_pg_reply_decode(m, &rep) == 0) {
            ok = rep.code == 0 && rep.nstmts == 1 && rep.stmts[0].nrows == 1;
            ds_pg_reply_fini(&rep);
        }
        if (now >= c->b->t0 && now < c->b->t1) {
            c->done += ok ? 1 : 0;
            c->errors += ok ? 0 : 1;
        }
        if (now >= c->b->t1) {
            client_finish(ctx, c);
            return 0;
        }
    }
    if (ask_next(ctx, c) < 0) {
        c->errors++;
        client_finish(ctx, c);
    }
    return 0;
}

static void client_terminate(ds_ctx_t *ctx, int reason)
{
    (void)reason;
    free(ds_ctx_state(ctx));
}

static const ds_behaviour_t client_behaviour = {
    .name = "bench.pg.client",
    .init = client_init,
    .receive = client_receive,
    .terminate = client_terminate,
};

typedef struct opts {
    const char *dsn;
    const char *mode;
    unsigned conns, clients, depth, secs, warm, rows, workers;
} opts_t;

static int parse(int argc, char **argv, opts_t *o)
{
    *o = (opts_t){.mode = "plain",
                  .conns = 8,
                  .depth = 16,
                  .secs = 10,
                  .warm = 2,
                  .rows = 100000,
                  .workers = 1};
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        unsigned long n = strtoul(v, NULL, 10);
        if (strcmp(k, "--dsn") == 0) {
            o->dsn = v;
        } else if (strcmp(k, "--mode") == 0) {
            o->mode = v;
        } else if (strcmp(k, "--conns") == 0) {
            o->conns = (unsigned)n;
        } else if (strcmp(k, "--clients") == 0) {
            o->clients = (unsigned)n;
        } else if (strcmp(k, "--depth") == 0) {
            o->depth = (unsigned)n;
        } else if (strcmp(k, "--secs") == 0) {
            o->secs = (unsigned)n;
        } else if (strcmp(k, "--warm") == 0) {
            o->warm = (unsigned)n;
        } else if (strcmp(k, "--rows") == 0) {
            o->rows = (unsigned)n;
        } else if (strcmp(k, "--workers") == 0) {
            o->workers = (unsigned)n;
        } else {
            return -EINVAL;
        }
    }
    bool pipelined = strcmp(o->mode, "pipelined") == 0;
    if (!pipelined) {
        o->depth = 1;
    }
    if (o->clients == 0) {
        o->clients = o->conns * o->depth;
    }
    if (o->dsn == NULL || o->conns == 0 || o->workers == 0 || o->rows == 0 || o->depth == 0 ||
        (!pipelined && strcmp(o->mode, "plain") != 0 && strcmp(o->mode, "tenant") != 0)) {
        return -EINVAL;
    }
    return 0;
}

static int run(const opts_t *o, bench_t *b)
{
    ds_rt_t *rt;
    ds_loop_t *loop;
    ds_rt_cfg_t rc = {.workers = o->workers};
    if (ds_rt_new(&rc, &rt) < 0 || ds_rt_start(rt) < 0) {
        return -EIO;
    }
    if (ds_loop_new(rt, "pg", &loop) < 0 || ds_loop_start(loop) < 0) {
        return -EIO;
    }
    ds_pg_pool_config_t cfg = {
        .conninfo = o->dsn,
        .size = o->conns,
        .pipeline_depth = o->depth,
        .tenant = {.max_conns = o->conns, .max_waiting = o->clients},
        .system = {.max_waiting = o->clients},
    };
    if (ds_pg_pool_start(loop, &cfg, &b->pool) < 0) {
        return -EIO;
    }
    int64_t start = ds_clock_now();
    b->t0 = start + (int64_t)o->warm * SEC;
    b->t1 = b->t0 + (int64_t)o->secs * SEC;
    for (unsigned i = 0; i < o->clients; i++) {
        client_t *c = ds_xcalloc(1, sizeof(*c));
        c->b = b;
        c->rng = 0x9E3779B97F4A7C15ULL * (i + 1);
        ds_actor_id_t id;
        ds_msg_t *go;
        if (ds_spawn(rt, &client_behaviour, c, NULL, &id) < 0 || ds_pg_go_new(NULL, &go) < 0) {
            return -EIO;
        }
        if (ds_send_from(rt, id, &go) < 0) {
            ds_msg_free(&go);
            return -EIO;
        }
    }
    pthread_mutex_lock(&b->mu);
    while (b->finished < o->clients) {
        pthread_cond_wait(&b->cv, &b->mu);
    }
    pthread_mutex_unlock(&b->mu);
    ds_loop_free(&loop);
    (void)ds_rt_drain(rt, 30 * SEC);
    ds_rt_free(&rt);
    return 0;
}

int main(int argc, char **argv)
{
    opts_t o;
    if (parse(argc, argv, &o) < 0) {
        (void)fprintf(stderr, "usage: pg --dsn CONNINFO [--mode plain|tenant|pipelined] "
                              "[--conns N] [--clients C] [--depth D] [--secs S] [--warm W] "
                              "[--rows R] [--workers K]\n");
        return 2;
    }
    if (ds_pg_msgs_register() < 0) {
        return 1;
    }
    bench_t b = {.tenant = strcmp(o.mode, "tenant") == 0, .rows = o.rows};
    (void)pthread_mutex_init(&b.mu, NULL);
    (void)pthread_cond_init(&b.cv, NULL);
    if (run(&o, &b) < 0) {
        (void)fprintf(stderr, "pg: setup failed\n");
        return 1;
    }
    double tps = (double)b.done / (double)o.secs;
    (void)printf("pool mode=%s conns=%u clients=%u depth=%u completed=%llu errors=%llu "
                 "secs=%u tps=%.0f\n",
                 o.mode, o.conns, o.clients, o.depth, (unsigned long long)b.done,
                 (unsigned long long)b.errors, o.secs, tps);
    (void)pthread_mutex_destroy(&b.mu);
    (void)pthread_cond_destroy(&b.cv);
    return b.errors > 0 ? 1 : 0;
}
