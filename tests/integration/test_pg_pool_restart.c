/* test_pg_pool_restart: PostgreSQL restarted under load, for real. The test makes a private
 * cluster (pgtest_cluster_new: initdb + pg_ctl, as `postgres` when run as root), loads the pool
 * with transactions, stops the server with `pg_ctl stop -m fast` in the middle, asks while it
 * is down, starts it again and asks until the pool has reconnected. Checked by counting: every
 * ask got exactly one reply; the ones that failed failed with the documented codes
 * (-ECONNRESET in flight, -ECONNREFUSED while the server is down); once the pool reconnected
 * (with backoff, on its own) every later request succeeds. No assertion is on a duration. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "runtime/err.h"
#include "runtime/id.h"
#include "runtime/loop.h"
#include "runtime/msg.h"
#include "runtime/rt.h"
#include "tests/integration/pgtest.h"
#include "transports/pg/pg_msgs.h"
#include "transports/pg/pool.h"

#define SEC     INT64_C(1000000000)
#define HANG_NS (120 * SEC)
#define ASK_NS  (60 * SEC)

#define TENANT "66666666-6666-4666-8666-666666666666"

static pgtest_env_t g_env;

static ds_msg_t *work(size_t i, bool tenant)
{
    char num[24];
    (void)snprintf(num, sizeof(num), "%zu", i);
    const char *p[] = {num};
    ds_pg_req_t *r = ds_pg_req_new();
    assert_int_equal(ds_pg_req_add(r, "SELECT $1::int, pg_sleep(0.002)", 1, p), 0);
    ds_msg_t *m;
    if (tenant) {
        assert_int_equal(ds_pg_req_tx(r, TENANT, NULL, &m), 0);
    } else {
        assert_int_equal(ds_pg_req_system(r, NULL, &m), 0);
    }
    ds_pg_req_free(&r);
    return m;
}

/* Counts a batch's outcomes; fails on a missing or double reply or an undocumented code. */
static void tally(pgtest_calls_t *b, size_t n, unsigned *ok, unsigned *reset, unsigned *refused)
{
    for (size_t i = 0; i < n; i++) {
        pgtest_call_t *c = pgtest_calls_get(b, i);
        assert_int_equal(c->replies, 1);
        assert_int_equal(c->ask_rc, 0);
        assert_int_equal(c->decode_rc, 0);
        int code = c->pg.code;
        if (code != 0 && code != -ECONNRESET && code != -ECONNREFUSED) {
            fail_msg("request %zu: unexpected %s (%s)", i, ds_strerror(code), c->pg.sqlstate);
        }
        *ok += code == 0 ? 1 : 0;
        *reset += code == -ECONNRESET ? 1 : 0;
        *refused += code == -ECONNREFUSED ? 1 : 0;
    }
}

static void test_restart_under_load(void **state)
{
    (void)state;
    enum {
        LOAD = 400,
        DOWN = 20,
        AFTER = 100,
        RETRIES = 600
    };
    pgtest_cluster_t *pg;
    assert_int_equal(pgtest_cluster_new(g_env.bindir, &pg), 0);
    ds_rt_cfg_t rc = {.workers = 2};
    ds_rt_t *rt;
    ds_loop_t *loop;
    ds_actor_id_t pool;
    assert_int_equal(ds_rt_new(&rc, &rt), 0);
    assert_int_equal(ds_rt_start(rt), 0);
    assert_int_equal(ds_loop_new(rt, "pg", &loop), 0);
    assert_int_equal(ds_loop_start(loop), 0);
    ds_pg_pool_config_t cfg = {
        .conninfo = pgtest_cluster_dsn(pg),
        .size = 4,
        .backoff_min_ms = 20,
        .backoff_max_ms = 200,
        .tenant = {.max_conns = 2, .max_waiting = LOAD},
        .system = {.max_waiting = LOAD},
    };
    assert_int_equal(ds_pg_pool_start(loop, &cfg, &pool), 0);

    /* Load: 400 requests (tenant and system) queue; the server is stopped once some are done. */
    pgtest_calls_t *load = pgtest_calls_new(rt, LOAD);
    for (size_t i = 0; i < LOAD; i++) {
        ds_msg_t *m = work(i, i % 2 == 0);
        assert_int_equal(pgtest_calls_ask(load, i, pool, &m, ASK_NS, 0), 0);
    }
    assert_true(pgtest_calls_wait(load, 20, HANG_NS) >= 20);
    assert_int_equal(pgtest_cluster_stop(pg, "fast"), 0);

    /* Asked while the server is down: refused (or reset, by a connection not yet seen dead). */
    pgtest_calls_t *down = pgtest_calls_new(rt, DOWN);
    for (size_t i = 0; i < DOWN; i++) {
        ds_msg_t *m = work(i, i % 2 == 0);
        assert_int_equal(pgtest_calls_ask(down, i, pool, &m, ASK_NS, 0), 0);
    }
    assert_int_equal(pgtest_calls_wait(down, DOWN, HANG_NS), DOWN);
    assert_int_equal(pgtest_calls_wait(load, LOAD, HANG_NS), LOAD);
    unsigned ok = 0, reset = 0, refused = 0;
    tally(load, LOAD, &ok, &reset, &refused);
    (void)fprintf(stderr, "load: %u ok, %u reset, %u refused\n", ok, reset, refused);
    assert_true(ok >= 20);
    assert_true(reset + refused >= 1); /* the stop came with work left */
    ok = reset = refused = 0;
    tally(down, DOWN, &ok, &reset, &refused);
    assert_int_equal(ok, 0);
    assert_true(refused >= 1);

    /* Start again: the pool reconnects by itself; ask until it serves, then everything works. */
    assert_int_equal(pgtest_cluster_start(pg), 0);
    bool served = false;
    for (int i = 0; i < RETRIES && !served; i++) {
        ds_msg_t *m = work((size_t)i, true);
        pgtest_result_t x;
        assert_int_equal(pgtest_ask1(rt, pool, &m, ASK_NS, &x), 0);
        assert_true(x.code == 0 || x.code == -ECONNREFUSED || x.code == -ECONNRESET);
        served = x.code == 0;
        if (!served) {
            usleep(20000);
        }
    }
    assert_true(served);
    pgtest_calls_t *after = pgtest_calls_new(rt, AFTER);
    for (size_t i = 0; i < AFTER; i++) {
        ds_msg_t *m = work(i, i % 2 == 0);
        assert_int_equal(pgtest_calls_ask(after, i, pool, &m, ASK_NS, 0), 0);
    }
    assert_int_equal(pgtest_calls_wait(after, AFTER, HANG_NS), AFTER);
    for (size_t i = 0; i < AFTER; i++) {
        pgtest_call_t *c = pgtest_calls_get(after, i);
        assert_int_equal(c->replies, 1);
        assert_int_equal(c->pg.code, 0);
        char want[24];
        (void)snprintf(want, sizeof(want), "%zu", i);
        const ds_pg_value_t *v = ds_pg_rows_at(&c->pg.stmts[0], 0, 0);
        assert_non_null(v);
        assert_int_equal(v->len, strlen(want));
        assert_memory_equal(v->ptr, want, v->len);
    }

    /* The metrics saw it all. */
    ds_msg_t *q;
    assert_int_equal(ds_pg_stats_get_new(&(ds_pg_stats_get_t){.tenant = {"", 0}}, &q), 0);
    pgtest_calls_t *st = pgtest_calls_new(rt, 1);
    assert_int_equal(pgtest_calls_ask(st, 0, pool, &q, ASK_NS, 0), 0);
    assert_int_equal(pgtest_calls_wait(st, 1, HANG_NS), 1);
    ds_pg_stats_t s;
    assert_int_equal(ds_pg_stats_decode(pgtest_calls_get(st, 0)->reply, &s), 0);
    (void)fprintf(stderr,
                  "stats: connects %llu reconnects %llu disconnects %llu connect_failures %llu\n",
                  (unsigned long long)s.connects, (unsigned long long)s.reconnects,
                  (unsigned long long)s.disconnects, (unsigned long long)s.connect_failures);
    assert_true(s.disconnects >= 1);
    assert_true(s.connect_failures >= 1);
    assert_true(s.reconnects >= 1);
    assert_int_equal(s.waiting, 0);

    pgtest_calls_free(&st);
    pgtest_calls_free(&after);
    pgtest_calls_free(&down);
    pgtest_calls_free(&load);
    ds_loop_free(&loop);
    assert_int_equal(ds_rt_drain(rt, 30 * SEC), 0);
    ds_rt_free(&rt);
    pgtest_cluster_free(&pg);
}

int main(void)
{
    pgtest_env_or_skip(&g_env);
    if (ds_pg_msgs_register() < 0) {
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_restart_under_load),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    pgtest_env_fini(&g_env);
    return rc;
}
