/* test_pg_pool: the asynchronous PostgreSQL pool (transports/pg/pool.h) against the suite's
 * real server. Each run creates a scratch database with an owner role and an application role
 * (NOBYPASSRLS), and a table under forced row-level security keyed on app.tenant_id, as the
 * contract's schema does. Actors ask the pool (tests/integration/pgtest.h) and every assertion
 * is on what came back: rows, codes, SQLSTATEs, counts. No assertion is on a duration; waits
 * are bounded only to catch a hang. */
#include <errno.h>
#include <limits.h>
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

#define MS      INT64_C(1000000)
#define SEC     INT64_C(1000000000)
#define HANG_NS (120 * SEC)
#define ASK_NS  (60 * SEC)

#define TENANT_A "11111111-1111-4111-8111-111111111111"
#define TENANT_B "22222222-2222-4222-8222-222222222222"
#define FLOODER  "33333333-3333-4333-8333-333333333333"
#define VICTIM   "44444444-4444-4444-8444-444444444444"
#define CAPPED   "55555555-5555-4555-8555-555555555555"
#define PIPER    "66666666-6666-4666-8666-666666666666"

static pgtest_env_t g_env;
static pgtest_db_t g_db;

typedef struct fixture {
    ds_rt_t *rt;
    ds_loop_t *loop;
    ds_actor_id_t pool;
} fixture_t;

static void up(fixture_t *f, ds_pg_pool_config_t cfg)
{
    ds_rt_cfg_t rc = {.workers = 2};
    assert_int_equal(ds_rt_new(&rc, &f->rt), 0);
    assert_int_equal(ds_rt_start(f->rt), 0);
    assert_int_equal(ds_loop_new(f->rt, "pg", &f->loop), 0);
    assert_int_equal(ds_loop_start(f->loop), 0);
    if (cfg.conninfo == NULL) {
        cfg.conninfo = g_db.app_dsn;
    }
    assert_int_equal(ds_pg_pool_start(f->loop, &cfg, &f->pool), 0);
}

static void down(fixture_t *f)
{
    ds_loop_free(&f->loop);
    assert_int_equal(ds_rt_drain(f->rt, 30 * SEC), 0);
    ds_rt_free(&f->rt);
}

/* A request of one statement. */
static ds_msg_t *req1(const char *tenant, const char *sql, uint32_t n, const char *const *params,
                      const ds_pg_opts_t *opts)
{
    ds_pg_req_t *r = ds_pg_req_new();
    assert_int_equal(ds_pg_req_add(r, sql, n, params), 0);
    ds_msg_t *m;
    if (tenant != NULL) {
        assert_int_equal(ds_pg_req_tx(r, tenant, opts, &m), 0);
    } else {
        assert_int_equal(ds_pg_req_system(r, opts, &m), 0);
    }
    ds_pg_req_free(&r);
    return m;
}

/* Asks one statement and returns the outcome. */
static pgtest_result_t ask1(const fixture_t *f, const char *tenant, const char *sql, uint32_t n,
                            const char *const *params)
{
    ds_msg_t *m = req1(tenant, sql, n, params, NULL);
    pgtest_result_t r;
    assert_int_equal(pgtest_ask1(f->rt, f->pool, &m, ASK_NS, &r), 0);
    return r;
}

static ds_pg_stats_t stats(const fixture_t *f, const char *tenant)
{
    ds_msg_t *m;
    ds_pg_stats_get_t q = {.tenant = {tenant, (uint32_t)strlen(tenant)}};
    assert_int_equal(ds_pg_stats_get_new(&q, &m), 0);
    pgtest_calls_t *b = pgtest_calls_new(f->rt, 1);
    assert_int_equal(pgtest_calls_ask(b, 0, f->pool, &m, ASK_NS, 0), 0);
    assert_int_equal(pgtest_calls_wait(b, 1, HANG_NS), 1);
    ds_pg_stats_t s;
    assert_int_equal(ds_pg_stats_decode(pgtest_calls_get(b, 0)->reply, &s), 0);
    pgtest_calls_free(&b);
    return s;
}

/* Registers a tenant's limits (zero fields: the pool's defaults). */
static void limits(const fixture_t *f, const char *tenant, ds_pg_limits_t l)
{
    ds_msg_t *m;
    ds_pg_tenant_t t = {.tenant = {tenant, 36},
                        .weight = l.weight,
                        .max_conns = l.max_conns,
                        .max_waiting = l.max_waiting,
                        .timeout_ms = l.statement_timeout_ms};
    assert_int_equal(ds_pg_tenant_new(&t, &m), 0);
    assert_int_equal(ds_send_from(f->rt, f->pool, &m), 0);
}

/* The first statement's first value, as a number. */
static long first_long(const pgtest_call_t *c)
{
    assert_int_equal(c->decode_rc, 0);
    assert_int_equal(c->pg.code, 0);
    const ds_pg_value_t *v = ds_pg_rows_at(&c->pg.stmts[0], 0, 0);
    assert_non_null(v);
    char buf[32];
    (void)snprintf(buf, sizeof(buf), "%.*s", (int)v->len, v->ptr);
    return strtol(buf, NULL, 10);
}

/* The sequence `ord` as the superuser sees it: the rank of the last statement that drew it. */
static long ord_now(void)
{
    char sdsn[1024], buf[32];
    (void)snprintf(sdsn, sizeof(sdsn), "%s dbname=%s", g_env.super_dsn, g_db.name);
    assert_int_equal(pgtest_query1(sdsn, "SELECT last_value FROM ord", buf, sizeof(buf)), 0);
    return strtol(buf, NULL, 10);
}

static bool str_is(const ds_pg_value_t *v, const char *s)
{
    return v != NULL && !v->null && v->len == strlen(s) && memcmp(v->ptr, s, v->len) == 0;
}

/* ---- building and reading, without a server ---- */

static void test_codec(void **state)
{
    (void)state;
    ds_pg_req_t *r = ds_pg_req_new();
    ds_msg_t *m;
    assert_int_equal(ds_pg_req_tx(r, TENANT_A, NULL, &m), -EINVAL); /* empty */
    assert_int_equal(ds_pg_req_add(r, "", 0, NULL), -EINVAL);
    assert_int_equal(ds_pg_req_add(r, "SELECT 1", 1, NULL), -EINVAL);
    const char *bad[] = {"\xff"};
    assert_int_equal(ds_pg_req_add(r, "SELECT $1", 1, bad), -EINVAL);
    const char *ps[] = {"x", NULL};
    assert_int_equal(ds_pg_req_add(r, "SELECT $1, $2", 2, ps), 0);
    assert_int_equal(ds_pg_req_count(r), 1);
    assert_int_equal(ds_pg_req_tx(r, "not-a-uuid", NULL, &m), -EINVAL);
    assert_int_equal(ds_pg_req_tx(r, TENANT_A, NULL, &m), 0);
    ds_pg_tx_t tx;
    assert_int_equal(ds_pg_tx_decode(m, &tx), 0);
    assert_int_equal(tx.tenant.len, 36);
    ds_msg_free(&m);
    assert_true(ds_pg_uuid_valid(TENANT_A, 36));
    assert_false(ds_pg_uuid_valid("11111111-1111-4111-8111-11111111111g", 36));
    assert_false(ds_pg_uuid_valid("111111111111-4111-8111-1111111111111", 36));
    for (int i = 1; i < DS_PG_REQ_STMTS_MAX; i++) {
        assert_int_equal(ds_pg_req_add(r, "SELECT 1", 0, NULL), 0);
    }
    assert_int_equal(ds_pg_req_add(r, "SELECT 1", 0, NULL), -EINVAL); /* past the max */
    ds_pg_req_free(&r);
    assert_null(r);
    /* A reply that is not the pool's is refused; a timeout reads as DS_ETIMEDOUT. */
    assert_int_equal(ds_pg_go_new(NULL, &m), 0);
    ds_pg_reply_t rep;
    assert_int_equal(ds_pg_reply_decode(m, &rep), DS_EDECODE);
    ds_msg_free(&m);
    assert_int_equal(ds_timeout_new(NULL, &m), 0);
    assert_int_equal(ds_pg_reply_decode(m, &rep), 0);
    assert_int_equal(rep.code, DS_ETIMEDOUT);
    ds_msg_free(&m);
    /* Garbage results are DS_EDECODE, never a crash. */
    static const uint8_t junk[] = {0x91, 0x93, 0x91, 0xa1, 'a', 0x91, 0x92, 0xc0, 0xc0, 0x00};
    assert_int_equal(ds_pg_result_new(&(ds_pg_result_t){.results = {junk, sizeof(junk)}}, &m), 0);
    assert_int_equal(ds_pg_reply_decode(m, &rep), DS_EDECODE);
    ds_msg_free(&m);
}

/* ---- results ---- */

static void test_tx_results(void **state)
{
    (void)state;
    fixture_t f;
    up(&f, (ds_pg_pool_config_t){.size = 2});
    ds_pg_req_t *r = ds_pg_req_new();
    const char *p1[] = {TENANT_A, "1", "one"};
    const char *p2[] = {TENANT_A, "2", NULL};
    assert_int_equal(ds_pg_req_add(r, "INSERT INTO items VALUES ($1, $2, $3)", 3, p1), 0);
    assert_int_equal(ds_pg_req_add(r, "INSERT INTO items VALUES ($1, $2, $3)", 3, p2), 0);
    assert_int_equal(ds_pg_req_add(r, "SELECT id, v AS value FROM items ORDER BY id", 0, NULL), 0);
    assert_int_equal(ds_pg_req_add(r, "UPDATE items SET v = 'x' WHERE id > 0", 0, NULL), 0);
    ds_msg_t *m;
    assert_int_equal(ds_pg_req_tx(r, TENANT_A, NULL, &m), 0);
    ds_pg_req_free(&r);
    pgtest_calls_t *b = pgtest_calls_new(f.rt, 1);
    assert_int_equal(pgtest_calls_ask(b, 0, f.pool, &m, ASK_NS, 0), 0);
    assert_int_equal(pgtest_calls_wait(b, 1, HANG_NS), 1);
    pgtest_call_t *c = pgtest_calls_get(b, 0);
    assert_int_equal(c->replies, 1);
    assert_int_equal(c->decode_rc, 0);
    assert_int_equal(c->pg.code, 0);
    assert_int_equal(c->pg.nstmts, 4);
    assert_int_equal(c->pg.stmts[0].affected, 1);
    assert_int_equal(c->pg.stmts[0].ncols, 0);
    const ds_pg_rows_t *sel = &c->pg.stmts[2];
    assert_int_equal(sel->ncols, 2);
    assert_int_equal(sel->nrows, 2);
    assert_int_equal(sel->affected, 2);
    assert_int_equal(sel->cols[1].len, 5);
    assert_memory_equal(sel->cols[1].ptr, "value", 5);
    assert_true(str_is(ds_pg_rows_at(sel, 0, 0), "1"));
    assert_true(str_is(ds_pg_rows_at(sel, 0, 1), "one"));
    assert_true(ds_pg_rows_at(sel, 1, 1)->null); /* NULL, not "" */
    assert_null(ds_pg_rows_at(sel, 2, 0));
    assert_int_equal(c->pg.stmts[3].affected, 2);
    pgtest_calls_free(&b);
    /* An empty string is not NULL. */
    pgtest_result_t x = ask1(&f, TENANT_A, "SELECT ''::text", 0, NULL);
    assert_int_equal(x.code, 0);
    assert_string_equal(x.value, "");
    down(&f);
    assert_int_equal(pgtest_exec(g_db.owner_dsn, "TRUNCATE items"), 0);
}

/* ---- isolation ---- */

static void test_isolation(void **state)
{
    (void)state;
    fixture_t f;
    up(&f, (ds_pg_pool_config_t){.size = 1}); /* one connection: every request reuses it */
    const char *pa[] = {TENANT_A, "1", "a1"};
    const char *pb[] = {TENANT_B, "1", "b1"};
    const char *ins = "INSERT INTO items VALUES ($1, $2, $3)";
    assert_int_equal(ask1(&f, TENANT_A, ins, 3, pa).code, 0);
    assert_int_equal(ask1(&f, TENANT_B, ins, 3, pb).code, 0);
    /* A sees only its rows; B's are neither visible nor touchable. */
    pgtest_result_t r = ask1(&f, TENANT_A, "SELECT string_agg(v, ',') FROM items", 0, NULL);
    assert_int_equal(r.code, 0);
    assert_string_equal(r.value, "a1");
    r = ask1(&f, TENANT_A, "SELECT count(*) FROM items WHERE tenant_id <> current_tenant()", 0,
             NULL);
    assert_string_equal(r.value, "0");
    const char *pbid[] = {TENANT_B};
    r = ask1(&f, TENANT_A, "UPDATE items SET v = 'stolen' WHERE tenant_id = $1", 1, pbid);
    assert_int_equal(r.code, 0);
    r = ask1(&f, TENANT_A, "DELETE FROM items WHERE tenant_id = $1", 1, pbid);
    assert_int_equal(r.code, 0);
    /* Inserting a row for B under A's setting fails the policy's check (42501). */
    const char *forge[] = {TENANT_B, "9", "forged"};
    r = ask1(&f, TENANT_A, ins, 3, forge);
    assert_int_equal(r.code, -EIO);
    assert_string_equal(r.sqlstate, "42501");
    assert_int_equal(r.stmt, 0);
    r = ask1(&f, TENANT_B, "SELECT string_agg(v, ',') FROM items", 0, NULL);
    assert_string_equal(r.value, "b1");
    /* Without a tenant nothing is visible, and the reused connection reads '' for the setting
     * after a tenant's transaction, committed or failed: nothing leaks. */
    r = ask1(&f, NULL, "SELECT count(*) FROM items", 0, NULL);
    assert_int_equal(r.code, 0);
    assert_string_equal(r.value, "0");
    r = ask1(&f, TENANT_A, "SELECT current_setting('app.tenant_id')", 0, NULL);
    assert_string_equal(r.value, TENANT_A);
    r = ask1(&f, NULL, "SELECT current_setting('app.tenant_id', true)", 0, NULL);
    assert_int_equal(r.code, 0);
    assert_string_equal(r.value, "");
    r = ask1(&f, TENANT_B, "SELECT 1/0", 0, NULL);
    assert_int_equal(r.code, -EIO);
    assert_string_equal(r.sqlstate, "22012");
    r = ask1(&f, NULL, "SELECT current_setting('app.tenant_id', true)", 0, NULL);
    assert_string_equal(r.value, "");
    r = ask1(&f, NULL, "SELECT current_setting('statement_timeout')", 0, NULL);
    assert_string_equal(r.value, "30s"); /* the session's default is back, too */
    /* A SECURITY DEFINER function serves the control plane without a tenant. */
    r = ask1(&f, NULL, "SELECT tenant_exists($1)", 1, pbid);
    assert_int_equal(r.code, 0);
    assert_string_equal(r.value, "t");
    /* The tenant's text is normalised: upper case names the same tenant. */
    const char *pc[] = {"abcdef01-0000-4000-8000-00000000000a", "1", "c1"};
    assert_int_equal(ask1(&f, pc[0], ins, 3, pc).code, 0);
    r = ask1(&f, "ABCDEF01-0000-4000-8000-00000000000A", "SELECT string_agg(v, ',') FROM items", 0,
             NULL);
    assert_string_equal(r.value, "c1");
    assert_int_equal(ask1(&f, pc[0], "DELETE FROM items", 0, NULL).code, 0);
    down(&f);
    char buf[64], sdsn[1024];
    (void)snprintf(sdsn, sizeof(sdsn), "%s dbname=%s", g_env.super_dsn, g_db.name);
    assert_int_equal(
        pgtest_query1(sdsn, "SELECT string_agg(v, ',' ORDER BY v) FROM items", buf, sizeof(buf)),
        0);
    assert_string_equal(buf, "a1,b1"); /* nothing was stolen, changed or forged */
    assert_int_equal(pgtest_exec(g_db.owner_dsn, "TRUNCATE items"), 0);
}

/* ---- errors roll back; the connection goes on ---- */

static void test_errors(void **state)
{
    (void)state;
    fixture_t f;
    up(&f, (ds_pg_pool_config_t){.size = 1});
    /* A syntax error in the second statement: the first is rolled back. */
    ds_pg_req_t *r = ds_pg_req_new();
    const char *p[] = {TENANT_A, "7", "kept?"};
    assert_int_equal(ds_pg_req_add(r, "INSERT INTO items VALUES ($1, $2, $3)", 3, p), 0);
    assert_int_equal(ds_pg_req_add(r, "SELEC oops", 0, NULL), 0);
    ds_msg_t *m;
    assert_int_equal(ds_pg_req_tx(r, TENANT_A, NULL, &m), 0);
    ds_pg_req_free(&r);
    pgtest_result_t x;
    assert_int_equal(pgtest_ask1(f.rt, f.pool, &m, ASK_NS, &x), 0);
    assert_int_equal(x.code, -EIO);
    assert_string_equal(x.sqlstate, "42601");
    assert_int_equal(x.stmt, 1);
    x = ask1(&f, TENANT_A, "SELECT count(*) FROM items", 0, NULL);
    assert_int_equal(x.code, 0);
    assert_string_equal(x.value, "0");
    /* The statement timeout: the request's, below the tenant's. */
    m = req1(TENANT_A, "SELECT pg_sleep(5)", 0, NULL, &(ds_pg_opts_t){.timeout_ms = 50});
    assert_int_equal(pgtest_ask1(f.rt, f.pool, &m, ASK_NS, &x), 0);
    assert_int_equal(x.code, -ETIMEDOUT);
    assert_string_equal(x.sqlstate, "57014");
    /* The tenant's registered limit applies when the request asks for nothing. */
    limits(&f, TENANT_B, (ds_pg_limits_t){.statement_timeout_ms = 50});
    x = ask1(&f, TENANT_B, "SELECT pg_sleep(5)", 0, NULL);
    assert_int_equal(x.code, -ETIMEDOUT);
    /* A result past max_bytes. */
    m = req1(TENANT_A, "SELECT repeat('x', 10000)", 0, NULL, &(ds_pg_opts_t){.max_bytes = 1000});
    assert_int_equal(pgtest_ask1(f.rt, f.pool, &m, ASK_NS, &x), 0);
    assert_int_equal(x.code, -EMSGSIZE);
    assert_int_equal(x.stmt, 0);
    /* A malformed request: the tenant is not a UUID. */
    ds_pg_tx_t bad = {.tenant = {"not-a-uuid", 10}, .stmts = {(const uint8_t *)"\x90", 1}};
    assert_int_equal(ds_pg_tx_new(&bad, &m), 0);
    assert_int_equal(pgtest_ask1(f.rt, f.pool, &m, ASK_NS, &x), 0);
    assert_int_equal(x.code, -EINVAL);
    /* Empty statements. */
    ds_pg_system_t bad2 = {.stmts = {(const uint8_t *)"\x90", 1}};
    assert_int_equal(ds_pg_system_new(&bad2, &m), 0);
    assert_int_equal(pgtest_ask1(f.rt, f.pool, &m, ASK_NS, &x), 0);
    assert_int_equal(x.code, -EINVAL);
    /* Still serving, on the same connection, and the cached statements survive errors. */
    x = ask1(&f, TENANT_A, "SELECT 40 + 2", 0, NULL);
    assert_int_equal(x.code, 0);
    assert_string_equal(x.value, "42");
    ds_pg_stats_t s = stats(&f, "");
    assert_int_equal(s.connects, 1);
    assert_int_equal(s.disconnects, 0);
    assert_true(s.errors >= 6);
    down(&f);
}

/* ---- a database that refuses connections ---- */

static void test_refused(void **state)
{
    (void)state;
    fixture_t f;
    char dsn[512];
    (void)snprintf(dsn, sizeof(dsn), "host=%s port=1 dbname=nope user=nobody", g_env.host);
    up(&f, (ds_pg_pool_config_t){
               .conninfo = dsn, .size = 2, .backoff_min_ms = 20, .backoff_max_ms = 100});
    enum {
        N = 20
    };
    pgtest_calls_t *b = pgtest_calls_new(f.rt, N);
    for (size_t i = 0; i < N; i++) {
        ds_msg_t *m = req1(i % 2 ? TENANT_A : NULL, "SELECT 1", 0, NULL, NULL);
        assert_int_equal(pgtest_calls_ask(b, i, f.pool, &m, ASK_NS, 0), 0);
    }
    assert_int_equal(pgtest_calls_wait(b, N, HANG_NS), N);
    for (size_t i = 0; i < N; i++) {
        pgtest_call_t *c = pgtest_calls_get(b, i);
        assert_int_equal(c->replies, 1);
        assert_int_equal(c->decode_rc, 0);
        assert_int_equal(c->pg.code, -ECONNREFUSED);
    }
    pgtest_calls_free(&b);
    /* Bad credentials refuse the same way (the log says why). */
    ds_pg_stats_t s = stats(&f, "");
    assert_true(s.connect_failures >= 1);
    assert_int_equal(s.open, 0);
    down(&f);
    (void)snprintf(dsn, sizeof(dsn), "host=%s port=%s dbname=%s user=%s password=wrong", g_env.host,
                   g_env.port, g_db.name, g_db.app);
    up(&f, (ds_pg_pool_config_t){.conninfo = dsn, .size = 1});
    pgtest_result_t x = ask1(&f, NULL, "SELECT 1", 0, NULL);
    assert_int_equal(x.code, -ECONNREFUSED);
    down(&f);
}

/* ---- fairness and caps ---- */

/* One tenant floods a pool of 4 with 200 transactions, with a cap of 4 (all of it); another
 * asks for 10 once the flood is queued. With fair queueing the newcomer alternates with the
 * flooder for free connections, so few flood statements run between its asks and its last
 * statement (FIFO would let the whole flood pass first: ~190). Every statement draws from a
 * sequence, so the server itself tells the order in which they ran. */
/* A flooder's 200 slow statements wait in the pool; a victim then asks 10 quick ones, and few
 * of the flood's run between the victim's first ask and its last statement. With depth > 1 the
 * flooder, capped at 2 of 4 connections, pipelines on both, and the victim takes the other
 * two rather than wait behind a batch. */
static void fair_wait_queue(uint32_t depth, uint32_t flooder_conns)
{
    enum {
        FLOOD = 200,
        FEW = 10,
        N = FLOOD + FEW
    };
    fixture_t f;
    up(&f, (ds_pg_pool_config_t){.size = 4,
                                 .pipeline_depth = depth,
                                 .tenant = {.max_conns = 4, .max_waiting = 1000}});
    /* registered: its metrics outlive its work */
    limits(&f, FLOODER, (ds_pg_limits_t){.max_conns = flooder_conns});
    pgtest_calls_t *b = pgtest_calls_new(f.rt, N);
    for (size_t i = 0; i < FLOOD; i++) {
        ds_msg_t *m = req1(FLOODER, "SELECT nextval('ord'), pg_sleep(0.005)", 0, NULL, NULL);
        assert_int_equal(pgtest_calls_ask(b, i, f.pool, &m, ASK_NS, 0), 0);
    }
    /* Wait until most of the flood waits in the pool, then ask as the victim. */
    for (int tries = 0; stats(&f, FLOODER).tenant_waiting < FLOOD / 2; tries++) {
        assert_true(tries < 10000);
        usleep(1000);
    }
    long before = ord_now();
    for (size_t i = FLOOD; i < N; i++) {
        ds_msg_t *m = req1(VICTIM, "SELECT nextval('ord')", 0, NULL, NULL);
        assert_int_equal(pgtest_calls_ask(b, i, f.pool, &m, ASK_NS, 0), 0);
    }
    assert_int_equal(pgtest_calls_wait(b, N, HANG_NS), N);
    long last_victim = 0;
    for (size_t i = FLOOD; i < N; i++) {
        long v = first_long(pgtest_calls_get(b, i));
        last_victim = v > last_victim ? v : last_victim;
    }
    size_t flood_between = 0;
    for (size_t i = 0; i < FLOOD; i++) {
        pgtest_call_t *c = pgtest_calls_get(b, i);
        assert_int_equal(c->replies, 1);
        long v = first_long(c);
        flood_between += v > before && v < last_victim ? 1 : 0;
    }
    (void)fprintf(stderr, "flood statements run between the victim's asks and its last: %zu\n",
                  flood_between);
    assert_true(flood_between <= 2 * FEW + 8);
    ds_pg_stats_t s = stats(&f, FLOODER);
    assert_true(s.tenant_peak <= (flooder_conns != 0 ? flooder_conns : 4));
    assert_int_equal(s.tenant_served, FLOOD);
    if (depth > 1) {
        assert_true(s.tenant_peak_inflight > s.tenant_peak); /* it did pipeline */
    } else {
        assert_int_equal(s.tenant_peak_inflight, s.tenant_peak);
    }
    pgtest_calls_free(&b);
    down(&f);
}

static void test_fair_wait_queue(void **state)
{
    (void)state;
    fair_wait_queue(1, 0);
}

static void test_fair_wait_queue_pipelined(void **state)
{
    (void)state;
    fair_wait_queue(16, 2);
}

/* A tenant capped at 2 connections of 6 floods: the server itself never sees more than 2 of
 * its statements running at once (each counts its running twins in pg_stat_activity), and the
 * pool's peak agrees. */
static void test_cap_and_weights(void **state)
{
    (void)state;
    enum {
        N = 60
    };
    fixture_t f;
    up(&f, (ds_pg_pool_config_t){.size = 6, .tenant = {.max_waiting = 1000}});
    limits(&f, CAPPED, (ds_pg_limits_t){.max_conns = 2});
    static const char probe[] = "SELECT (SELECT count(*) FROM pg_stat_activity WHERE state = "
                                "'active' AND query = $1), pg_sleep(0.01)";
    const char *pp[] = {probe};
    pgtest_calls_t *b = pgtest_calls_new(f.rt, N);
    for (size_t i = 0; i < N; i++) {
        ds_msg_t *m = req1(CAPPED, probe, 1, pp, NULL);
        assert_int_equal(pgtest_calls_ask(b, i, f.pool, &m, ASK_NS, 0), 0);
    }
    assert_int_equal(pgtest_calls_wait(b, N, HANG_NS), N);
    long most = 0;
    for (size_t i = 0; i < N; i++) {
        pgtest_call_t *c = pgtest_calls_get(b, i);
        assert_int_equal(c->pg.code, 0);
        const ds_pg_value_t *v = ds_pg_rows_at(&c->pg.stmts[0], 0, 0);
        assert_non_null(v);
        long k = strtol(v->ptr, NULL, 10);
        most = k > most ? k : most;
    }
    assert_true(most >= 1);
    assert_true(most <= 2);
    assert_int_equal(stats(&f, CAPPED).tenant_peak, 2);
    pgtest_calls_free(&b);
    down(&f);
}

/* Weights: with one connection held by a third tenant, two tenants of weight 1 and 3 queue 40
 * transactions each; once the connection frees, the dispatch order is the fair queue's alone,
 * and of the first 20 to run (by the server's sequence), 15 are the heavier tenant's. */
static void test_weights(void **state)
{
    (void)state;
    enum {
        EACH = 40,
        N = 1 + 2 * EACH
    };
    fixture_t f;
    up(&f, (ds_pg_pool_config_t){.size = 1, .tenant = {.max_waiting = 100}});
    limits(&f, TENANT_A, (ds_pg_limits_t){.weight = 1});
    limits(&f, TENANT_B, (ds_pg_limits_t){.weight = 3});
    pgtest_calls_t *b = pgtest_calls_new(f.rt, N);
    ds_msg_t *m = req1(VICTIM, "SELECT pg_sleep(0.3)", 0, NULL, NULL);
    assert_int_equal(pgtest_calls_ask(b, 0, f.pool, &m, ASK_NS, 0), 0);
    for (int tries = 0; stats(&f, "").busy < 1; tries++) {
        assert_true(tries < 10000);
        usleep(1000);
    }
    for (size_t i = 1; i < N; i++) {
        m = req1(i % 2 ? TENANT_A : TENANT_B, "SELECT nextval('ord')", 0, NULL, NULL);
        assert_int_equal(pgtest_calls_ask(b, i, f.pool, &m, ASK_NS, 0), 0);
    }
    for (int tries = 0; stats(&f, "").waiting < N - 1; tries++) {
        assert_true(tries < 10000);
        usleep(1000);
    }
    assert_int_equal(pgtest_calls_wait(b, N, HANG_NS), N);
    long first = LONG_MAX;
    for (size_t i = 1; i < N; i++) {
        long v = first_long(pgtest_calls_get(b, i));
        first = v < first ? v : first;
    }
    unsigned heavy = 0;
    for (size_t i = 2; i < N; i += 2) {
        heavy += first_long(pgtest_calls_get(b, i)) < first + 20 ? 1 : 0;
    }
    assert_int_equal(heavy, 15);
    pgtest_calls_free(&b);
    down(&f);
}

/* ---- bounded waiting: full queues and deadlines ---- */

static void test_full_queue_and_deadline(void **state)
{
    (void)state;
    fixture_t f;
    up(&f, (ds_pg_pool_config_t){.size = 1, .tenant = {.max_waiting = 5}});
    limits(&f, TENANT_A, (ds_pg_limits_t){0});
    assert_int_equal(ask1(&f, TENANT_A, "SELECT 1", 0, NULL).code, 0); /* a connection is up */
    enum {
        N = 11
    };
    pgtest_calls_t *b = pgtest_calls_new(f.rt, N + 1);
    ds_msg_t *m = req1(TENANT_B, "SELECT pg_sleep(0.5)", 0, NULL, NULL);
    assert_int_equal(pgtest_calls_ask(b, 0, f.pool, &m, ASK_NS, 0), 0);
    for (int tries = 0; stats(&f, "").busy < 1; tries++) {
        assert_true(tries < 10000);
        usleep(1000);
    }
    for (size_t i = 1; i < N; i++) {
        m = req1(TENANT_A, "SELECT 1", 0, NULL, NULL);
        assert_int_equal(pgtest_calls_ask(b, i, f.pool, &m, ASK_NS, 0), 0);
    }
    for (int tries = 0; stats(&f, "").refused + stats(&f, "").waiting < N - 1; tries++) {
        assert_true(tries < 10000);
        usleep(1000);
    }
    /* Another tenant's ask with a short deadline waits behind the slow one and expires. */
    m = req1(TENANT_B, "SELECT 1", 0, NULL, NULL);
    assert_int_equal(pgtest_calls_ask(b, N, f.pool, &m, 50 * MS, 0), 0);
    assert_int_equal(pgtest_calls_wait(b, N + 1, HANG_NS), N + 1);
    unsigned ok = 0, full = 0;
    for (size_t i = 0; i < N; i++) {
        pgtest_call_t *c = pgtest_calls_get(b, i);
        assert_int_equal(c->replies, 1);
        ok += c->pg.code == 0 ? 1 : 0;
        full += c->pg.code == DS_EFULL ? 1 : 0;
    }
    assert_int_equal(ok, 1 + 5);
    assert_int_equal(full, 5);
    assert_int_equal(pgtest_calls_get(b, N)->pg.code, DS_ETIMEDOUT);
    pgtest_calls_free(&b);
    ds_pg_stats_t s = stats(&f, TENANT_A);
    assert_int_equal(s.refused, 5);
    assert_int_equal(s.expired, 1); /* the pool dropped it too, without running it */
    assert_int_equal(s.tenant_served, 1 + 5);
    down(&f);
}

/* ---- pipelined system requests and stopping with work in flight ---- */

/* 500 system requests on 2 connections, pipelined 16 deep: the system "tenant" holds both
 * connections, alone on the pool, so it pipelines on both; every 50th fails alone. */
static void test_pipelined_system(void **state)
{
    (void)state;
    enum {
        N = 500
    };
    fixture_t f;
    up(&f, (ds_pg_pool_config_t){.size = 2, .pipeline_depth = 16});
    pgtest_calls_t *b = pgtest_calls_new(f.rt, N);
    char num[N][12];
    for (size_t i = 0; i < N; i++) {
        (void)snprintf(num[i], sizeof(num[i]), "%zu", i);
        const char *p[] = {num[i]};
        /* Every 50th fails: only that request, not its neighbours in the pipeline. */
        ds_msg_t *m = req1(NULL, i % 50 == 49 ? "SELECT 1 / ($1::int - $1::int)" : "SELECT $1::int",
                           1, p, NULL);
        assert_int_equal(pgtest_calls_ask(b, i, f.pool, &m, ASK_NS, 0), 0);
    }
    assert_int_equal(pgtest_calls_wait(b, N, HANG_NS), N);
    for (size_t i = 0; i < N; i++) {
        pgtest_call_t *c = pgtest_calls_get(b, i);
        assert_int_equal(c->replies, 1);
        if (i % 50 == 49) {
            assert_int_equal(c->pg.code, -EIO);
            continue;
        }
        assert_int_equal(c->pg.code, 0);
        assert_true(str_is(ds_pg_rows_at(&c->pg.stmts[0], 0, 0), num[i]));
    }
    pgtest_calls_free(&b);
    /* Alone on the pool, it pipelined on every connection it held. */
    ds_pg_stats_t s = stats(&f, "system");
    assert_true(s.tenant_peak_inflight > s.tenant_peak);
    down(&f);
}

/* A request of two statements. */
static ds_msg_t *req2(const char *tenant, const char *sql1, const char *const *p1, const char *sql2,
                      const char *const *p2)
{
    ds_pg_req_t *r = ds_pg_req_new();
    assert_int_equal(ds_pg_req_add(r, sql1, 1, p1), 0);
    assert_int_equal(ds_pg_req_add(r, sql2, 1, p2), 0);
    ds_msg_t *m;
    assert_int_equal(ds_pg_req_tx(r, tenant, NULL, &m), 0);
    ds_pg_req_free(&r);
    return m;
}

/* A tenant's transactions pipelined on its connections: each is still a transaction of its
 * own. Every 40th fails after its insert, and only its insert is gone; every other sees its
 * tenant; the tenant never held more than its 2 connections, yet had more in flight. */
static void test_pipelined_tenant(void **state)
{
    (void)state;
    enum {
        N = 400,
        BASE = 100000
    };
    fixture_t f;
    up(&f, (ds_pg_pool_config_t){.size = 4, .pipeline_depth = 16});
    limits(&f, PIPER, (ds_pg_limits_t){.max_conns = 2, .max_waiting = N});
    pgtest_calls_t *b = pgtest_calls_new(f.rt, N);
    char id[N][12];
    for (size_t i = 0; i < N; i++) {
        (void)snprintf(id[i], sizeof(id[i]), "%zu", BASE + i);
        const char *p1[] = {id[i]};
        const char *p2[] = {i % 40 == 39 ? "0" : "1"};
        ds_msg_t *m = req2(PIPER, "INSERT INTO items (tenant_id, id) VALUES (current_tenant(), $1)",
                           p1, "SELECT current_setting('app.tenant_id'), 1 / $1::int", p2);
        assert_int_equal(pgtest_calls_ask(b, i, f.pool, &m, ASK_NS, 0), 0);
    }
    assert_int_equal(pgtest_calls_wait(b, N, HANG_NS), N);
    for (size_t i = 0; i < N; i++) {
        pgtest_call_t *c = pgtest_calls_get(b, i);
        assert_int_equal(c->replies, 1);
        if (i % 40 == 39) {
            assert_int_equal(c->pg.code, -EIO);
            assert_int_equal(c->pg.stmt, 1);
            continue;
        }
        assert_int_equal(c->pg.code, 0);
        assert_true(str_is(ds_pg_rows_at(&c->pg.stmts[1], 0, 0), PIPER));
    }
    pgtest_calls_free(&b);
    pgtest_result_t r = ask1(&f, PIPER,
                             "SELECT count(*) || '/' || count(*) FILTER (WHERE id % 40 = 39)"
                             " FROM items WHERE id >= 100000",
                             0, NULL);
    assert_int_equal(r.code, 0);
    assert_string_equal(r.value, "390/0");
    ds_pg_stats_t s = stats(&f, PIPER);
    assert_true(s.tenant_peak <= 2);
    assert_true(s.tenant_peak_inflight > 2);
    assert_int_equal(s.tenant_served, N - N / 40 + 1);
    down(&f);
    assert_int_equal(pgtest_exec(g_db.owner_dsn, "TRUNCATE items"), 0);
}

/* A tenant under its cap that pipelines on its one open connection (nothing else waits, so
 * nothing else would open one) has its next connection opened, and its next request runs on
 * it, beside the batch. */
static void test_pipelining_opens_connections(void **state)
{
    (void)state;
    enum {
        N = 8
    };
    fixture_t f;
    up(&f, (ds_pg_pool_config_t){.size = 4, .pipeline_depth = 16});
    limits(&f, PIPER, (ds_pg_limits_t){.max_conns = 2, .max_waiting = N + 1});
    pgtest_result_t r = ask1(&f, PIPER, "SELECT 1", 0, NULL);
    assert_int_equal(r.code, 0);
    assert_int_equal(stats(&f, "").open, 1);
    pgtest_calls_t *b = pgtest_calls_new(f.rt, N + 1);
    for (size_t i = 0; i < N; i++) {
        ds_msg_t *m = req1(PIPER, "SELECT pg_sleep(0.25)", 0, NULL, NULL);
        assert_int_equal(pgtest_calls_ask(b, i, f.pool, &m, ASK_NS, 0), 0);
    }
    for (int tries = 0; stats(&f, "").open < 2; tries++) {
        assert_true(tries < 10000);
        usleep(1000);
    }
    ds_msg_t *m = req1(PIPER, "SELECT 1", 0, NULL, NULL);
    assert_int_equal(pgtest_calls_ask(b, N, f.pool, &m, ASK_NS, 0), 0);
    assert_int_equal(pgtest_calls_wait(b, N + 1, HANG_NS), N + 1);
    for (size_t i = 0; i <= N; i++) {
        assert_int_equal(pgtest_calls_get(b, i)->pg.code, 0);
    }
    pgtest_calls_free(&b);
    ds_pg_stats_t s = stats(&f, PIPER);
    assert_int_equal(s.tenant_peak, 2);
    assert_true(s.tenant_peak_inflight > 2);
    down(&f);
}

/* A tenant pipelining on its 2 connections has its cap lowered to 1 under load: what it asks
 * afterwards never runs on two server processes at once (each statement counts its running
 * twins), though the batches already sent finish on both. */
static void test_lowered_cap_under_pipelining(void **state)
{
    (void)state;
    enum {
        N = 40,
        M = 20
    };
    fixture_t f;
    up(&f, (ds_pg_pool_config_t){.size = 4, .pipeline_depth = 16});
    limits(&f, PIPER, (ds_pg_limits_t){.max_conns = 2, .max_waiting = N + M});
    static const char probe[] = "SELECT (SELECT count(*) FROM pg_stat_activity WHERE state = "
                                "'active' AND query = $1), pg_sleep(0.01)";
    const char *pp[] = {probe};
    pgtest_calls_t *b = pgtest_calls_new(f.rt, N + M);
    for (size_t i = 0; i < N; i++) {
        ds_msg_t *m = req1(PIPER, "SELECT 0, pg_sleep(0.02)", 0, NULL, NULL);
        assert_int_equal(pgtest_calls_ask(b, i, f.pool, &m, ASK_NS, 0), 0);
    }
    for (int tries = 0; stats(&f, PIPER).tenant_active < 2; tries++) {
        assert_true(tries < 10000);
        usleep(1000);
    }
    limits(&f, PIPER, (ds_pg_limits_t){.max_conns = 1, .max_waiting = N + M});
    for (size_t i = N; i < N + M; i++) {
        ds_msg_t *m = req1(PIPER, probe, 1, pp, NULL);
        assert_int_equal(pgtest_calls_ask(b, i, f.pool, &m, ASK_NS, 0), 0);
    }
    assert_int_equal(pgtest_calls_wait(b, N + M, HANG_NS), N + M);
    long most = 0;
    for (size_t i = 0; i < N + M; i++) {
        long k = first_long(pgtest_calls_get(b, i));
        most = k > most ? k : most;
    }
    assert_int_equal(most, 1);
    pgtest_calls_free(&b);
    down(&f);
}

/* A commit that fails at the sync (a deferred foreign key) fails its request alone: the
 * requests pipelined behind it on the same connection run, and the connection lives on. */
static void test_commit_error_pipelined(void **state)
{
    (void)state;
    enum {
        N = 12
    };
    fixture_t f;
    up(&f, (ds_pg_pool_config_t){.size = 2, .pipeline_depth = 16});
    limits(&f, PIPER, (ds_pg_limits_t){.max_conns = 1, .max_waiting = N});
    pgtest_calls_t *b = pgtest_calls_new(f.rt, N);
    for (size_t i = 0; i < N; i++) {
        ds_msg_t *m = i == 0 ? req1(PIPER, "INSERT INTO dfk VALUES (1, 999)", 0, NULL, NULL)
                             : req1(PIPER, "SELECT count(*) FROM dfk", 0, NULL, NULL);
        assert_int_equal(pgtest_calls_ask(b, i, f.pool, &m, ASK_NS, 0), 0);
    }
    assert_int_equal(pgtest_calls_wait(b, N, HANG_NS), N);
    pgtest_call_t *c = pgtest_calls_get(b, 0);
    assert_int_equal(c->pg.code, -EIO);
    assert_string_equal(c->pg.sqlstate, "23503");
    assert_int_equal(c->pg.stmt, DS_PG_STMT_NONE); /* no statement failed: the commit did */
    for (size_t i = 1; i < N; i++) {
        assert_int_equal(first_long(pgtest_calls_get(b, i)), 0);
    }
    pgtest_calls_free(&b);
    ds_pg_stats_t s = stats(&f, PIPER);
    assert_int_equal(s.disconnects, 0);
    assert_int_equal(s.tenant_served, N - 1);
    assert_true(s.tenant_peak_inflight > 1);
    down(&f);
}

static void test_stop_answers_everyone(void **state)
{
    (void)state;
    enum {
        N = 30
    };
    fixture_t f;
    up(&f, (ds_pg_pool_config_t){.size = 1, .tenant = {.max_waiting = 100}});
    pgtest_calls_t *b = pgtest_calls_new(f.rt, N);
    for (size_t i = 0; i < N; i++) {
        ds_msg_t *m = req1(TENANT_A, "SELECT pg_sleep(10)", 0, NULL, NULL);
        assert_int_equal(pgtest_calls_ask(b, i, f.pool, &m, ASK_NS, 0), 0);
    }
    for (int tries = 0; stats(&f, "").busy < 1 || stats(&f, "").waiting < N - 1; tries++) {
        assert_true(tries < 10000);
        usleep(1000);
    }
    ds_loop_free(&f.loop);
    assert_int_equal(pgtest_calls_wait(b, N, HANG_NS), N);
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(pgtest_calls_get(b, i)->replies, 1);
        assert_int_equal(pgtest_calls_get(b, i)->pg.code, DS_ESHUTDOWN);
    }
    pgtest_calls_free(&b);
    assert_int_equal(ds_rt_drain(f.rt, 30 * SEC), 0);
    ds_rt_free(&f.rt);
}

static const char schema_sql[] =
    "CREATE FUNCTION current_tenant() RETURNS uuid LANGUAGE sql STABLE AS "
    "$$ SELECT NULLIF(current_setting('app.tenant_id', true), '')::uuid $$;"
    "CREATE TABLE items (tenant_id uuid NOT NULL, id int NOT NULL, v text,"
    " PRIMARY KEY (tenant_id, id));"
    "ALTER TABLE items ENABLE ROW LEVEL SECURITY; ALTER TABLE items FORCE ROW LEVEL SECURITY;"
    "CREATE POLICY items_tenant ON items USING (tenant_id = current_tenant())"
    " WITH CHECK (tenant_id = current_tenant());"
    "CREATE SEQUENCE ord;"
    "CREATE TABLE dfk (id int PRIMARY KEY,"
    " ref int REFERENCES dfk (id) DEFERRABLE INITIALLY DEFERRED);"
    "CREATE TABLE tenants (id uuid PRIMARY KEY);"
    "INSERT INTO tenants VALUES ('"
    "11111111-1111-4111-8111-111111111111"
    "'),"
    " ('"
    "22222222-2222-4222-8222-222222222222"
    "');"
    "CREATE FUNCTION tenant_exists(uuid) RETURNS boolean LANGUAGE sql STABLE SECURITY DEFINER"
    " SET search_path = public AS $$ SELECT EXISTS (SELECT 1 FROM tenants WHERE id = $1) $$;"
    "REVOKE ALL ON FUNCTION tenant_exists(uuid) FROM PUBLIC;";

static int setup(void **state)
{
    (void)state;
    if (pgtest_db_create(&g_env, "ds_pgpool", &g_db) < 0) {
        return -1;
    }
    char grants[1024];
    (void)snprintf(grants, sizeof(grants),
                   "GRANT SELECT, INSERT, UPDATE, DELETE ON items TO %s;"
                   "GRANT EXECUTE ON FUNCTION tenant_exists(uuid) TO %s;"
                   "GRANT USAGE ON SEQUENCE ord TO %s;"
                   "GRANT SELECT, INSERT ON dfk TO %s;",
                   g_db.app, g_db.app, g_db.app, g_db.app);
    if (pgtest_exec(g_db.owner_dsn, schema_sql) < 0 || pgtest_exec(g_db.owner_dsn, grants) < 0) {
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    pgtest_db_drop(&g_db);
    return 0;
}

int main(void)
{
    pgtest_env_or_skip(&g_env);
    if (ds_pg_msgs_register() < 0) {
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codec),
        cmocka_unit_test(test_tx_results),
        cmocka_unit_test(test_isolation),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_fair_wait_queue),
        cmocka_unit_test(test_fair_wait_queue_pipelined),
        cmocka_unit_test(test_cap_and_weights),
        cmocka_unit_test(test_weights),
        cmocka_unit_test(test_full_queue_and_deadline),
        cmocka_unit_test(test_pipelined_system),
        cmocka_unit_test(test_pipelined_tenant),
        cmocka_unit_test(test_commit_error_pipelined),
        cmocka_unit_test(test_pipelining_opens_connections),
        cmocka_unit_test(test_lowered_cap_under_pipelining),
        cmocka_unit_test(test_stop_answers_everyone),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    pgtest_env_fini(&g_env);
    return rc;
}
