/* test_supervisor: restart strategies (runtime/supervisor.h). Children count their inits and
 * terminates; ds_whereis() finds each child's current incarnation by its name. Waits are
 * bounded only to catch a hang. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "runtime/catalog.h"
#include "runtime/clock.h"
#include "runtime/err.h"
#include "runtime/id.h"
#include "runtime/msg.h"
#include "runtime/registry.h"
#include "runtime/rt.h"
#include "runtime/supervisor.h"
#include "tests/unit/rt_helpers.h"

/* A child's counters, shared by all its incarnations (the spec's arg). */
typedef struct child {
    atomic_uint inits, terms, pings;
    atomic_int last_reason; /* of the last terminate */
    atomic_uint init_seq;   /* order of the last init among all children */
    atomic_int fail_init;   /* init returns this */
} child_t;

static atomic_uint init_seq;

static int child_init(ds_ctx_t *ctx, void *arg)
{
    child_t *c = arg;
    ds_ctx_set_state(ctx, c);
    atomic_fetch_add(&c->inits, 1);
    atomic_store(&c->init_seq, atomic_fetch_add(&init_seq, 1) + 1);
    return atomic_load(&c->fail_init);
}

static int child_receive(ds_ctx_t *ctx, ds_msg_t **msgp)
{
    child_t *c = ds_ctx_state(ctx);
    const ds_msg_t *m = *msgp;
    switch (m->type) {
    case T_CRASH:
        return (int)(int64_t)u64_at(m, 0);
    case T_STOP:
        ds_ctx_stop(ctx, (int)(int64_t)u64_at(m, 0));
        break;
    case T_PING:
        atomic_fetch_add(&c->pings, 1);
        break;
    default:
        break;
    }
    return 0;
}

static void child_terminate(ds_ctx_t *ctx, int reason)
{
    child_t *c = ds_ctx_state(ctx);
    atomic_store(&c->last_reason, reason);
    atomic_fetch_add(&c->terms, 1);
}

static const ds_behaviour_t child_beh = {.name = "test.child",
                                         .init = child_init,
                                         .receive = child_receive,
                                         .terminate = child_terminate};

static ds_actor_id_t where(ds_rt_t *rt, const char *name)
{
    ds_actor_id_t id = DS_ID_NIL;
    assert_int_equal(ds_whereis(rt, name, &id), 0);
    return id;
}

/* Waits until name resolves to an incarnation other than old; returns it. */
static ds_actor_id_t next_incarnation(ds_rt_t *rt, const char *name, ds_actor_id_t old)
{
    ds_actor_id_t id = DS_ID_NIL;
    WAIT_FOR(ds_whereis(rt, name, &id) == 0 && !ds_id_eq(id, old));
    return id;
}

static void crash(ds_rt_t *rt, ds_actor_id_t id)
{
    assert_int_equal(send_out(rt, id, T_CRASH, (uint64_t)(int64_t)-EIO), 0);
}

/* Pings id and waits for child c to count it: the incarnation works. */
static void ping_works(ds_rt_t *rt, ds_actor_id_t id, child_t *c)
{
    unsigned n = atomic_load(&c->pings);
    assert_int_equal(send_out(rt, id, T_PING, 0), 0);
    WAIT_FOR(atomic_load(&c->pings) == n + 1);
}

/* The observer: T_GO(id) monitors id. */
static int monitor_on_go(ds_ctx_t *ctx, tactor_t *t, ds_msg_t **msgp)
{
    if ((*msgp)->type == T_GO) {
        uint64_t ref = 0;
        atomic_store(&t->aux[1],
                     (uint64_t)(int64_t)ds_monitor(ctx, (ds_actor_id_t){u64_at(*msgp, 0)}, &ref));
        atomic_fetch_add(&t->aux[0], 1);
    }
    return 0;
}

static void monitor(ds_rt_t *rt, tactor_t *obs, ds_actor_id_t id)
{
    uint64_t n = atomic_load(&obs->aux[0]);
    assert_int_equal(send_out(rt, tactor_id(obs), T_GO, id.v), 0);
    WAIT_FOR(atomic_load(&obs->aux[0]) == n + 1);
    assert_int_equal((int)(int64_t)atomic_load(&obs->aux[1]), 0);
}

static tactor_t *observer_up(ds_rt_t *rt)
{
    tactor_t *t = tactor_new();
    t->handle = monitor_on_go;
    spawn_t(rt, t, NULL);
    return t;
}

static void test_one_for_one(void **state)
{
    (void)state;
    ds_rt_t *rt = rt_up(2);
    child_t a = {0}, b = {0};
    ds_child_spec_t kids[] = {
        {.name = "o4o.a", .behaviour = &child_beh, .arg = &a, .restart = DS_RESTART_PERMANENT},
        {.name = "o4o.b", .behaviour = &child_beh, .arg = &b, .restart = DS_RESTART_PERMANENT},
    };
    ds_sup_spec_t spec = {.strategy = DS_ONE_FOR_ONE, .children = kids, .nchildren = 2};
    ds_actor_id_t sup;
    assert_int_equal(ds_supervisor_start(rt, &spec, NULL, &sup), 0);
    assert_int_equal(ds_rt_actor_count(rt), 3);
    ds_actor_id_t a0 = where(rt, "o4o.a"), b0 = where(rt, "o4o.b");
    assert_int_equal(atomic_load(&a.inits), 1);

    crash(rt, a0);
    ds_actor_id_t a1 = next_incarnation(rt, "o4o.a", a0);
    assert_int_equal(atomic_load(&a.inits), 2);
    assert_int_equal(atomic_load(&a.terms), 1);
    assert_int_equal(atomic_load(&a.last_reason), -EIO);
    ping_works(rt, a1, &a);
    assert_int_equal(send_out(rt, a0, T_PING, 0), DS_ENOACTOR);
    /* The sibling was left alone. */
    assert_true(ds_id_eq(where(rt, "o4o.b"), b0));
    assert_int_equal(atomic_load(&b.inits), 1);
    assert_int_equal(atomic_load(&b.terms), 0);
    ping_works(rt, b0, &b);

    /* Again, for the new incarnation: restarts count per child, not per spec. */
    crash(rt, a1);
    ds_actor_id_t a2 = next_incarnation(rt, "o4o.a", a1);
    ping_works(rt, a2, &a);
    assert_int_equal(atomic_load(&a.inits), 3);
    assert_int_equal(ds_rt_actor_count(rt), 3);
    ds_rt_free(&rt);
}

static void test_transient_and_temporary(void **state)
{
    (void)state;
    ds_rt_t *rt = rt_up(2);
    child_t tn = {0}, ts = {0}, tf = {0}, tmp = {0}, p = {0};
    ds_child_spec_t kids[] = {
        {.name = "tr.normal", .behaviour = &child_beh, .arg = &tn, .restart = DS_RESTART_TRANSIENT},
        {.name = "tr.shut", .behaviour = &child_beh, .arg = &ts, .restart = DS_RESTART_TRANSIENT},
        {.name = "tr.fail", .behaviour = &child_beh, .arg = &tf, .restart = DS_RESTART_TRANSIENT},
        {.name = "tr.temp", .behaviour = &child_beh, .arg = &tmp, .restart = DS_RESTART_TEMPORARY},
        {.name = "tr.perm", .behaviour = &child_beh, .arg = &p, .restart = DS_RESTART_PERMANENT},
    };
    ds_sup_spec_t spec = {.strategy = DS_ONE_FOR_ONE, .children = kids, .nchildren = 5};
    ds_actor_id_t sup;
    assert_int_equal(ds_supervisor_start(rt, &spec, NULL, &sup), 0);
    tactor_t *obs = observer_up(rt);
    ds_actor_id_t n0 = where(rt, "tr.normal"), s0 = where(rt, "tr.shut");
    ds_actor_id_t f0 = where(rt, "tr.fail"), t0 = where(rt, "tr.temp");
    ds_actor_id_t p0 = where(rt, "tr.perm");
    monitor(rt, obs, n0);
    monitor(rt, obs, s0);
    monitor(rt, obs, t0);

    assert_int_equal(send_out(rt, n0, T_STOP, DS_EXIT_NORMAL), 0);
    assert_int_equal(send_out(rt, s0, T_STOP, DS_EXIT_SHUTDOWN), 0);
    crash(rt, t0);
    /* A DOWN is sent after the exit signals to links: the supervisor has these three exits
     * queued before the permanent child's, sent next. */
    assert_int_equal(down_of(obs, n0), DS_EXIT_NORMAL);
    assert_int_equal(down_of(obs, s0), DS_EXIT_SHUTDOWN);
    assert_int_equal(down_of(obs, t0), -EIO);
    crash(rt, p0);
    next_incarnation(rt, "tr.perm", p0);
    /* Handled by now, and none of them was restarted. */
    assert_int_equal(atomic_load(&tn.inits), 1);
    assert_int_equal(atomic_load(&ts.inits), 1);
    assert_int_equal(atomic_load(&tmp.inits), 1);
    ds_actor_id_t id;
    assert_int_equal(ds_whereis(rt, "tr.normal", &id), -ENOENT);
    assert_int_equal(ds_whereis(rt, "tr.temp", &id), -ENOENT);

    /* A transient child that fails is restarted. */
    crash(rt, f0);
    ds_actor_id_t f1 = next_incarnation(rt, "tr.fail", f0);
    ping_works(rt, f1, &tf);
    assert_int_equal(atomic_load(&tf.inits), 2);
    ds_rt_free(&rt);
    tactor_free(&obs);
}

static void test_one_for_all(void **state)
{
    (void)state;
    ds_rt_t *rt = rt_up(2);
    child_t a = {0}, b = {0}, c = {0}, d = {0};
    ds_child_spec_t kids[] = {
        {.name = "o4a.a", .behaviour = &child_beh, .arg = &a, .restart = DS_RESTART_PERMANENT},
        {.name = "o4a.b", .behaviour = &child_beh, .arg = &b, .restart = DS_RESTART_PERMANENT},
        {.name = "o4a.d", .behaviour = &child_beh, .arg = &d, .restart = DS_RESTART_TEMPORARY},
        {.name = "o4a.c", .behaviour = &child_beh, .arg = &c, .restart = DS_RESTART_TRANSIENT},
    };
    ds_sup_spec_t spec = {.strategy = DS_ONE_FOR_ALL, .children = kids, .nchildren = 4};
    ds_actor_id_t sup;
    assert_int_equal(ds_supervisor_start(rt, &spec, NULL, &sup), 0);
    ds_actor_id_t a0 = where(rt, "o4a.a"), b0 = where(rt, "o4a.b"), c0 = where(rt, "o4a.c");
    ds_actor_id_t d0 = where(rt, "o4a.d");

    crash(rt, b0);
    ds_actor_id_t a1 = next_incarnation(rt, "o4a.a", a0);
    ds_actor_id_t b1 = next_incarnation(rt, "o4a.b", b0);
    ds_actor_id_t c1 = next_incarnation(rt, "o4a.c", c0);
    WAIT_FOR(atomic_load(&a.terms) == 1 && atomic_load(&c.terms) == 1 &&
             atomic_load(&d.terms) == 1);
    /* The siblings were stopped as a shutdown, the failed one with its error. */
    assert_int_equal(atomic_load(&a.last_reason), DS_EXIT_SHUTDOWN);
    assert_int_equal(atomic_load(&c.last_reason), DS_EXIT_SHUTDOWN);
    assert_int_equal(atomic_load(&d.last_reason), DS_EXIT_SHUTDOWN);
    assert_int_equal(atomic_load(&b.last_reason), -EIO);
    /* All restarted, in spec order, but the temporary child. */
    assert_int_equal(atomic_load(&a.inits), 2);
    assert_int_equal(atomic_load(&b.inits), 2);
    assert_int_equal(atomic_load(&c.inits), 2);
    assert_int_equal(atomic_load(&d.inits), 1);
    assert_true(atomic_load(&a.init_seq) < atomic_load(&b.init_seq));
    assert_true(atomic_load(&b.init_seq) < atomic_load(&c.init_seq));
    ds_actor_id_t id;
    assert_int_equal(ds_whereis(rt, "o4a.d", &id), -ENOENT);
    assert_int_equal(send_out(rt, d0, T_PING, 0), DS_ENOACTOR);
    ping_works(rt, a1, &a);
    ping_works(rt, b1, &b);
    ping_works(rt, c1, &c);
    /* Supervisor and three children. */
    WAIT_FOR(ds_rt_actor_count(rt) == 4);

    /* And again, from another child: the new incarnations are linked too. */
    crash(rt, c1);
    next_incarnation(rt, "o4a.a", a1);
    next_incarnation(rt, "o4a.b", b1);
    next_incarnation(rt, "o4a.c", c1);
    WAIT_FOR(ds_rt_actor_count(rt) == 4);
    assert_int_equal(atomic_load(&a.inits), 3);
    ds_rt_free(&rt);
}

static void test_restart_intensity(void **state)
{
    (void)state;
    ds_rt_t *rt = rt_up(2);
    child_t p = {0}, q = {0};
    ds_child_spec_t kids[] = {
        {.name = "int.p", .behaviour = &child_beh, .arg = &p, .restart = DS_RESTART_PERMANENT},
        {.name = "int.q", .behaviour = &child_beh, .arg = &q, .restart = DS_RESTART_PERMANENT},
    };
    ds_sup_spec_t spec = {.strategy = DS_ONE_FOR_ONE,
                          .max_restarts = 2,
                          .period_ns = 3600 * SEC,
                          .children = kids,
                          .nchildren = 2};
    ds_actor_id_t sup;
    assert_int_equal(ds_supervisor_start(rt, &spec, NULL, &sup), 0);
    tactor_t *obs = observer_up(rt);
    monitor(rt, obs, sup);
    ds_actor_id_t id = where(rt, "int.p");
    for (int i = 0; i < 2; i++) {
        crash(rt, id);
        id = next_incarnation(rt, "int.p", id);
    }
    crash(rt, id); /* the third restart in the period: too many */
    assert_int_equal(down_of(obs, sup), DS_ELIMIT);
    assert_int_equal(atomic_load(&p.inits), 3);
    /* The supervisor took the rest of its children down with it. */
    WAIT_FOR(atomic_load(&q.terms) == 1);
    WAIT_FOR(ds_rt_actor_count(rt) == 1);
    assert_int_equal(atomic_load(&q.inits), 1);
    assert_int_equal(ds_whereis(rt, "int.q", &id), -ENOENT);
    ds_rt_free(&rt);
    tactor_free(&obs);
}

static void test_start_errors(void **state)
{
    (void)state;
    ds_rt_t *rt = rt_up(2);
    child_t a = {0}, b = {0}, c = {0};
    atomic_store(&b.fail_init, -EPERM);
    ds_child_spec_t kids[] = {
        {.name = "se.a", .behaviour = &child_beh, .arg = &a},
        {.name = "se.b", .behaviour = &child_beh, .arg = &b},
        {.name = "se.c", .behaviour = &child_beh, .arg = &c},
    };
    ds_sup_spec_t spec = {.strategy = DS_ONE_FOR_ONE, .children = kids, .nchildren = 3};
    ds_actor_id_t sup;
    assert_int_equal(ds_supervisor_start(rt, &spec, NULL, &sup), -EPERM);
    /* The child started before the failing one is stopped; the one after never started. */
    WAIT_FOR(atomic_load(&a.terms) == 1);
    assert_int_equal(atomic_load(&a.last_reason), DS_EXIT_SHUTDOWN);
    WAIT_FOR(ds_rt_actor_count(rt) == 0);
    assert_int_equal(atomic_load(&c.inits), 0);

    ds_sup_spec_t bad = spec;
    bad.strategy = (ds_strategy_t)7;
    assert_int_equal(ds_supervisor_start(rt, &bad, NULL, &sup), -EINVAL);
    ds_child_spec_t nobeh[] = {{.name = "x", .behaviour = NULL}};
    bad = (ds_sup_spec_t){.children = nobeh, .nchildren = 1};
    assert_int_equal(ds_supervisor_start(rt, &bad, NULL, &sup), -EINVAL);
    ds_child_spec_t badrestart[] = {{.behaviour = &child_beh, .restart = (ds_restart_t)9}};
    bad = (ds_sup_spec_t){.children = badrestart, .nchildren = 1};
    assert_int_equal(ds_supervisor_start(rt, &bad, NULL, &sup), -EINVAL);
    assert_int_equal(ds_supervisor_start(rt, NULL, NULL, &sup), -EINVAL);
    ds_rt_free(&rt);
}

static void test_drain_stops_without_restarts(void **state)
{
    (void)state;
    ds_rt_t *rt = rt_up(2);
    child_t a = {0}, b = {0};
    ds_child_spec_t kids[] = {
        {.name = "dr.a", .behaviour = &child_beh, .arg = &a},
        {.name = "dr.b", .behaviour = &child_beh, .arg = &b},
    };
    ds_sup_spec_t spec = {.strategy = DS_ONE_FOR_ALL, .children = kids, .nchildren = 2};
    ds_actor_id_t sup;
    assert_int_equal(ds_supervisor_start(rt, &spec, NULL, &sup), 0);
    assert_int_equal(ds_rt_drain(rt, HANG_NS), 0);
    assert_int_equal(ds_rt_actor_count(rt), 0);
    assert_int_equal(atomic_load(&a.inits), 1);
    assert_int_equal(atomic_load(&b.inits), 1);
    assert_int_equal(atomic_load(&a.last_reason), DS_EXIT_SHUTDOWN);
    assert_int_equal(atomic_load(&b.last_reason), DS_EXIT_SHUTDOWN);
    ds_rt_free(&rt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_for_one),  cmocka_unit_test(test_transient_and_temporary),
        cmocka_unit_test(test_one_for_all),  cmocka_unit_test(test_restart_intensity),
        cmocka_unit_test(test_start_errors), cmocka_unit_test(test_drain_stops_without_restarts),
    };
    test_filter_from_env();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
