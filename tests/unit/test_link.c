/* test_link: links, monitors and exit signals (runtime/rt.h, Erlang semantics). An observer
 * actor monitors the actors of a test and records their DOWN messages, which carry the reason
 * each one stopped with. Waits are bounded only to catch a hang. */
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
#include "runtime/rt.h"
#include "tests/unit/rt_helpers.h"

/* Commands understood by link_handle, besides tactor_basic's T_STOP and T_CRASH. */
enum {
    C_LINK = 1,    /* ds_link(b) */
    C_UNLINK,      /* ds_unlink(b) */
    C_MONITOR,     /* ds_monitor(b): the ref goes to aux[0] */
    C_DEMONITOR,   /* ds_demonitor(aux[0]) */
    C_EXIT,        /* ds_exit(b, reason c) */
    C_TRAP,        /* ds_ctx_trap_exit(b != 0) */
    C_MONITOR_TWO, /* two monitors of b (aux[0], aux[1]), then ds_demonitor(aux[0]) */
};

/* T_GO(cmd, arg) with a third u64 in the payload for C_EXIT's reason is too much for mk2: the
 * reason rides in the high half of the command word. */
static uint64_t cmd(uint32_t c, int32_t reason)
{
    return (uint64_t)c | ((uint64_t)(uint32_t)reason << 32);
}

/* Runs a command; its result goes to aux[3] and aux[2] counts commands done. */
static int link_handle(ds_ctx_t *ctx, tactor_t *t, ds_msg_t **msgp)
{
    const ds_msg_t *m = *msgp;
    if (m->type != T_GO) {
        return tactor_basic(ctx, t, msgp);
    }
    uint64_t w = u64_at(m, 0);
    ds_actor_id_t b = {u64_at(m, 1)};
    int32_t reason = (int32_t)(uint32_t)(w >> 32);
    uint64_t ref = 0, ref2 = 0;
    int rc = 0;
    switch ((uint32_t)w) {
    case C_LINK:
        rc = ds_link(ctx, b);
        break;
    case C_UNLINK:
        rc = ds_unlink(ctx, b);
        break;
    case C_MONITOR:
        rc = ds_monitor(ctx, b, &ref);
        atomic_store(&t->aux[0], ref);
        break;
    case C_DEMONITOR:
        rc = ds_demonitor(ctx, atomic_load(&t->aux[0]));
        break;
    case C_EXIT:
        rc = ds_exit(ctx, b, reason);
        break;
    case C_TRAP:
        ds_ctx_trap_exit(ctx, b.v != 0);
        break;
    case C_MONITOR_TWO:
        rc = ds_monitor(ctx, b, &ref);
        if (rc == 0) {
            rc = ds_monitor(ctx, b, &ref2);
        }
        atomic_store(&t->aux[0], ref);
        atomic_store(&t->aux[1], ref2);
        if (rc == 0) {
            rc = ds_demonitor(ctx, ref);
        }
        if (rc == 0 && ds_demonitor(ctx, ref) != -ENOENT) {
            rc = -EBADE;
        }
        break;
    default:
        rc = -ENOSYS;
    }
    atomic_store(&t->aux[3], (uint64_t)(int64_t)rc);
    atomic_fetch_add(&t->aux[2], 1);
    return 0;
}

/* Sends a command to `to` and waits until it ran; returns its result. */
static int run_cmd(ds_rt_t *rt, tactor_t *t, uint32_t c, ds_actor_id_t b, int32_t reason)
{
    uint64_t done = atomic_load(&t->aux[2]);
    ds_msg_t *m = mk2(T_GO, cmd(c, reason), b.v, true);
    assert_int_equal(ds_send_from(rt, tactor_id(t), &m), 0);
    WAIT_FOR(atomic_load(&t->aux[2]) == done + 1);
    return (int)(int64_t)atomic_load(&t->aux[3]);
}

static tactor_t *actor_up(ds_rt_t *rt, const ds_spawn_opts_t *o)
{
    tactor_t *t = tactor_new();
    t->handle = link_handle;
    spawn_t(rt, t, o);
    return t;
}

/* The observer: monitors what it is told to (C_MONITOR) and records DOWNs. */
static tactor_t *observer_up(ds_rt_t *rt)
{
    return actor_up(rt, NULL);
}

static void watch(ds_rt_t *rt, tactor_t *obs, tactor_t *t)
{
    assert_int_equal(run_cmd(rt, obs, C_MONITOR, tactor_id(t), 0), 0);
}

/* True once t handled a ping sent now: it was alive after everything queued before. */
static bool alive_after(ds_rt_t *rt, tactor_t *t)
{
    size_t n = tactor_count(t, T_PING);
    if (send_out(rt, tactor_id(t), T_PING, 0) != 0) {
        return false;
    }
    WAIT_FOR(tactor_count(t, T_PING) == n + 1 || atomic_load(&t->terminated));
    return tactor_count(t, T_PING) == n + 1;
}

static void test_link_propagates_failure(void **state)
{
    (void)state;
    ds_rt_t *rt = rt_up(2);
    tactor_t *obs = observer_up(rt);
    tactor_t *a = actor_up(rt, NULL);
    tactor_t *b = actor_up(rt, &(ds_spawn_opts_t){.link = tactor_id(a)});
    tactor_t *c = actor_up(rt, NULL);
    watch(rt, obs, a);
    watch(rt, obs, b);
    watch(rt, obs, c);
    /* c links to a at run time: a chain c - a - b. */
    assert_int_equal(run_cmd(rt, c, C_LINK, tactor_id(a), 0), 0);

    assert_int_equal(send_out(rt, tactor_id(b), T_CRASH, (uint64_t)(int64_t)-EIO), 0);
    assert_int_equal(down_of(obs, tactor_id(b)), -EIO);
    assert_int_equal(down_of(obs, tactor_id(a)), -EIO);
    assert_int_equal(down_of(obs, tactor_id(c)), -EIO);
    assert_int_equal(atomic_load(&a->reason), -EIO);
    assert_int_equal(atomic_load(&c->reason), -EIO);
    assert_int_equal(tactor_count(a, DS_MT_EXIT), 0); /* not trapping: no message */
    WAIT_FOR(ds_rt_actor_count(rt) == 1);
    ds_rt_free(&rt);
    tactor_free(&obs);
    tactor_free(&a);
    tactor_free(&b);
    tactor_free(&c);
}

static void test_trap_exit(void **state)
{
    (void)state;
    ds_rt_t *rt = rt_up(2);
    tactor_t *a = actor_up(rt, &(ds_spawn_opts_t){.trap_exit = true});
    tactor_t *b = actor_up(rt, &(ds_spawn_opts_t){.link = tactor_id(a)});
    assert_int_equal(send_out(rt, tactor_id(b), T_CRASH, (uint64_t)(int64_t)-EIO), 0);
    WAIT_FOR(tactor_count(a, DS_MT_EXIT) == 1);
    rec_ev_t e;
    assert_true(tactor_get(a, DS_MT_EXIT, 0, &e));
    assert_true(ds_id_eq(e.who, tactor_id(b)));
    assert_int_equal(e.reason, -EIO);
    assert_true((e.flags & DS_MSG_F_SYSTEM) != 0);
    assert_true(alive_after(rt, a));

    /* Trapping turned on at run time, and off again. */
    tactor_t *c = actor_up(rt, NULL);
    assert_int_equal(run_cmd(rt, c, C_TRAP, (ds_actor_id_t){1}, 0), 0);
    tactor_t *d = actor_up(rt, &(ds_spawn_opts_t){.link = tactor_id(c)});
    assert_int_equal(send_out(rt, tactor_id(d), T_STOP, 5), 0);
    WAIT_FOR(tactor_count(c, DS_MT_EXIT) == 1);
    assert_true(tactor_get(c, DS_MT_EXIT, 0, &e));
    assert_int_equal(e.reason, 5);
    assert_true(alive_after(rt, c));
    assert_int_equal(run_cmd(rt, c, C_TRAP, DS_ID_NIL, 0), 0);
    tactor_t *f = actor_up(rt, &(ds_spawn_opts_t){.link = tactor_id(c)});
    assert_int_equal(send_out(rt, tactor_id(f), T_STOP, 6), 0);
    WAIT_FOR(atomic_load(&c->terminated) == 1);
    assert_int_equal(atomic_load(&c->reason), 6);
    assert_int_equal(tactor_count(c, DS_MT_EXIT), 1);

    /* ds_exit() to a trapping actor that is not linked: a message too. */
    tactor_t *g = actor_up(rt, NULL);
    assert_int_equal(run_cmd(rt, g, C_EXIT, tactor_id(a), 77), 0);
    WAIT_FOR(tactor_count(a, DS_MT_EXIT) == 2);
    assert_true(tactor_get(a, DS_MT_EXIT, 1, &e));
    assert_true(ds_id_eq(e.who, tactor_id(g)));
    assert_int_equal(e.reason, 77);
    assert_true(alive_after(rt, a));
    ds_rt_free(&rt);
    tactor_free(&a);
    tactor_free(&b);
    tactor_free(&c);
    tactor_free(&d);
    tactor_free(&f);
    tactor_free(&g);
}

static void test_normal_exit_keeps_links(void **state)
{
    (void)state;
    ds_rt_t *rt = rt_up(2);
    tactor_t *obs = observer_up(rt);
    tactor_t *a = actor_up(rt, NULL);
    tactor_t *b = actor_up(rt, &(ds_spawn_opts_t){.link = tactor_id(a)});
    tactor_t *t = actor_up(rt, &(ds_spawn_opts_t){.trap_exit = true});
    assert_int_equal(run_cmd(rt, t, C_LINK, tactor_id(b), 0), 0);
    watch(rt, obs, b);
    assert_int_equal(send_out(rt, tactor_id(b), T_STOP, DS_EXIT_NORMAL), 0);
    assert_int_equal(down_of(obs, tactor_id(b)), DS_EXIT_NORMAL);
    /* The exit signal reached a before this ping: a ignored it. */
    assert_true(alive_after(rt, a));
    assert_int_equal(atomic_load(&a->terminated), 0);
    /* A trapping link sees the normal exit as a message. */
    WAIT_FOR(tactor_count(t, DS_MT_EXIT) == 1);
    rec_ev_t e;
    assert_true(tactor_get(t, DS_MT_EXIT, 0, &e));
    assert_int_equal(e.reason, DS_EXIT_NORMAL);
    /* ds_exit(normal) to an actor that does not trap is ignored. */
    tactor_t *g = actor_up(rt, NULL);
    assert_int_equal(run_cmd(rt, g, C_EXIT, tactor_id(a), DS_EXIT_NORMAL), 0);
    assert_true(alive_after(rt, a));
    ds_rt_free(&rt);
    tactor_free(&obs);
    tactor_free(&a);
    tactor_free(&b);
    tactor_free(&t);
    tactor_free(&g);
}

static void test_kill_untrappable(void **state)
{
    (void)state;
    ds_rt_t *rt = rt_up(2);
    tactor_t *obs = observer_up(rt);
    tactor_t *a = actor_up(rt, &(ds_spawn_opts_t){.trap_exit = true});
    tactor_t *l = actor_up(rt, &(ds_spawn_opts_t){.trap_exit = true, .link = tactor_id(a)});
    tactor_t *k = actor_up(rt, NULL);
    watch(rt, obs, a);
    assert_int_equal(run_cmd(rt, k, C_EXIT, tactor_id(a), DS_EXIT_KILL), 0);
    assert_int_equal(down_of(obs, tactor_id(a)), DS_EXIT_KILLED);
    assert_int_equal(atomic_load(&a->reason), DS_EXIT_KILLED);
    assert_int_equal(tactor_count(a, DS_MT_EXIT), 0);
    /* Its link sees `killed`, which it may trap. */
    WAIT_FOR(tactor_count(l, DS_MT_EXIT) == 1);
    rec_ev_t e;
    assert_true(tactor_get(l, DS_MT_EXIT, 0, &e));
    assert_true(ds_id_eq(e.who, tactor_id(a)));
    assert_int_equal(e.reason, DS_EXIT_KILLED);
    assert_true(alive_after(rt, l));
    assert_true(alive_after(rt, k));
    ds_rt_free(&rt);
    tactor_free(&obs);
    tactor_free(&a);
    tactor_free(&l);
    tactor_free(&k);
}

static void test_kill_from_a_link(void **state)
{
    (void)state;
    ds_rt_t *rt = rt_up(2);
    tactor_t *obs = observer_up(rt);
    tactor_t *a = actor_up(rt, &(ds_spawn_opts_t){.trap_exit = true});
    tactor_t *k = actor_up(rt, &(ds_spawn_opts_t){.trap_exit = true, .link = tactor_id(a)});
    watch(rt, obs, a);
    /* Being linked to the killer does not make the kill trappable. */
    assert_int_equal(run_cmd(rt, k, C_EXIT, tactor_id(a), DS_EXIT_KILL), 0);
    assert_int_equal(down_of(obs, tactor_id(a)), DS_EXIT_KILLED);
    assert_int_equal(tactor_count(a, DS_MT_EXIT), 0);
    WAIT_FOR(tactor_count(k, DS_MT_EXIT) == 1);
    rec_ev_t e;
    assert_true(tactor_get(k, DS_MT_EXIT, 0, &e));
    assert_int_equal(e.reason, DS_EXIT_KILLED);
    ds_rt_free(&rt);
    tactor_free(&obs);
    tactor_free(&a);
    tactor_free(&k);
}

static void test_link_monitor_dead(void **state)
{
    (void)state;
    ds_rt_t *rt = rt_up(2);
    tactor_t *obs = observer_up(rt);
    tactor_t *d = actor_up(rt, NULL);
    ds_actor_id_t did = tactor_id(d);
    assert_int_equal(send_out(rt, did, T_STOP, 0), 0);
    WAIT_FOR(atomic_load(&d->terminated) == 1);
    WAIT_FOR(send_out(rt, did, T_PING, 0) == DS_ENOACTOR);
    ds_actor_id_t never = ds_id_make(ds_rt_node(rt), 3, 123456);

    /* Monitor: DOWN at once, with the ref ds_monitor() returned. */
    ds_actor_id_t targets[2] = {did, never};
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(run_cmd(rt, obs, C_MONITOR, targets[i], 0), 0);
        uint64_t ref = atomic_load(&obs->aux[0]);
        WAIT_FOR(tactor_count(obs, DS_MT_DOWN) == i + 1);
        rec_ev_t e;
        assert_true(tactor_get(obs, DS_MT_DOWN, i, &e));
        assert_int_equal(e.ref, ref);
        assert_true(ds_id_eq(e.who, targets[i]));
        assert_int_equal(e.reason, DS_ENOACTOR);
    }

    /* Link, trapping: an EXIT message. */
    tactor_t *t = actor_up(rt, &(ds_spawn_opts_t){.trap_exit = true});
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(run_cmd(rt, t, C_LINK, targets[i], 0), 0);
        WAIT_FOR(tactor_count(t, DS_MT_EXIT) == i + 1);
        rec_ev_t e;
        assert_true(tactor_get(t, DS_MT_EXIT, i, &e));
        assert_true(ds_id_eq(e.who, targets[i]));
        assert_int_equal(e.reason, DS_ENOACTOR);
    }
    /* Link, not trapping: it dies of it. */
    tactor_t *n = actor_up(rt, NULL);
    watch(rt, obs, n);
    assert_int_equal(run_cmd(rt, n, C_LINK, did, 0), 0);
    assert_int_equal(down_of(obs, tactor_id(n)), DS_ENOACTOR);
    /* Linked at spawn to the dead: the same. */
    tactor_t *s = actor_up(rt, &(ds_spawn_opts_t){.link = did});
    WAIT_FOR(atomic_load(&s->terminated) == 1);
    assert_int_equal(atomic_load(&s->reason), DS_ENOACTOR);
    ds_rt_free(&rt);
    tactor_free(&obs);
    tactor_free(&d);
    tactor_free(&t);
    tactor_free(&n);
    tactor_free(&s);
}

static void test_monitor_and_demonitor(void **state)
{
    (void)state;
    ds_rt_t *rt = rt_up(2);
    tactor_t *obs = observer_up(rt);
    tactor_t *t = actor_up(rt, NULL);
    /* Two monitors, the first cancelled: one DOWN, for the second. */
    assert_int_equal(run_cmd(rt, obs, C_MONITOR_TWO, tactor_id(t), 0), 0);
    uint64_t ref1 = atomic_load(&obs->aux[0]), ref2 = atomic_load(&obs->aux[1]);
    assert_int_not_equal(ref1, ref2);
    assert_int_equal(send_out(rt, tactor_id(t), T_CRASH, (uint64_t)(int64_t)-ENOMEM), 0);
    WAIT_FOR(tactor_count(obs, DS_MT_DOWN) == 1);
    rec_ev_t e;
    assert_true(tactor_get(obs, DS_MT_DOWN, 0, &e));
    assert_int_equal(e.ref, ref2);
    assert_int_equal(e.reason, -ENOMEM);
    assert_true((e.flags & DS_MSG_F_SYSTEM) != 0);
    /* A monitor does not take the watcher down. */
    assert_true(alive_after(rt, obs));
    assert_int_equal(tactor_count(obs, DS_MT_DOWN), 1);
    assert_int_equal(run_cmd(rt, obs, C_DEMONITOR, DS_ID_NIL, 0), -ENOENT);
    ds_rt_free(&rt);
    tactor_free(&obs);
    tactor_free(&t);
}

/* The watcher's setup: monitor the actor in aux[0], then queue T_GO(C_DEMONITOR) to itself. */
static int monitor_then_demonitor_setup(ds_ctx_t *ctx, tactor_t *t)
{
    uint64_t ref = 0;
    int rc = ds_monitor(ctx, (ds_actor_id_t){atomic_load(&t->aux[0])}, &ref);
    atomic_store(&t->aux[0], ref);
    if (rc != 0) {
        return rc;
    }
    ds_msg_t *m = mk2(T_GO, cmd(C_DEMONITOR, 0), 0, true);
    rc = ds_send(ctx, ds_self(ctx), &m);
    ds_msg_free(&m);
    return rc;
}

static void test_demonitor_drops_queued_down(void **state)
{
    (void)state;
    ds_rt_t *rt = rt_up(2);
    uint32_t g = group_up(rt, 64, 1u << 20);
    tactor_t *t = actor_up(rt, NULL);
    tactor_t *w = tactor_new();
    w->handle = link_handle;
    w->setup = monitor_then_demonitor_setup;
    atomic_store(&w->aux[0], tactor_id(t).v);
    gated_t gw;
    gated_start(&gw, rt, w, &(ds_spawn_opts_t){.group = g});
    /* t dies while w cannot run yet: its DOWN queues behind w's own demonitor command. */
    assert_int_equal(send_out(rt, tactor_id(t), T_STOP, 9), 0);
    WAIT_FOR(metrics(rt, g).queued == 2);
    gated_open(&gw);
    WAIT_FOR(atomic_load(&w->aux[2]) == 1);
    assert_int_equal((int)(int64_t)atomic_load(&w->aux[3]), 0);
    assert_true(alive_after(rt, w));
    assert_int_equal(tactor_count(w, DS_MT_DOWN), 0);
    ds_rt_free(&rt);
    tactor_free(&t);
    tactor_free(&w);
}

static void test_unlink(void **state)
{
    (void)state;
    ds_rt_t *rt = rt_up(2);
    tactor_t *obs = observer_up(rt);
    tactor_t *a = actor_up(rt, NULL);
    tactor_t *b = actor_up(rt, &(ds_spawn_opts_t){.link = tactor_id(a)});
    watch(rt, obs, b);
    assert_int_equal(run_cmd(rt, a, C_UNLINK, tactor_id(b), 0), 0);
    /* The unlink was queued to b before the test sends the crash: b handles it first. */
    assert_int_equal(send_out(rt, tactor_id(b), T_CRASH, (uint64_t)(int64_t)-EIO), 0);
    assert_int_equal(down_of(obs, tactor_id(b)), -EIO);
    assert_true(alive_after(rt, a));
    ds_rt_free(&rt);
    tactor_free(&obs);
    tactor_free(&a);
    tactor_free(&b);
}

/* b's setup: link to the actor in aux[0]. */
static int link_setup(ds_ctx_t *ctx, tactor_t *t)
{
    return ds_link(ctx, (ds_actor_id_t){atomic_load(&t->aux[0])});
}

static void test_unlink_races_with_exit(void **state)
{
    (void)state;
    ds_rt_t *rt = rt_up(2);
    tactor_t *a = actor_up(rt, NULL);
    tactor_t *b = tactor_new();
    b->handle = link_handle;
    b->setup = link_setup;
    atomic_store(&b->aux[0], tactor_id(a).v);
    gated_t gb;
    ds_actor_id_t bid = gated_start(&gb, rt, b, NULL);
    /* b will fail on its first message; a unlinks it before that, but b only learns of the
     * unlink after it failed: the exit signal it sends must not take a down (Erlang's unlink
     * guarantee: after ds_unlink() the link has no effect on the caller). */
    assert_int_equal(send_out(rt, bid, T_CRASH, (uint64_t)(int64_t)-EIO), 0);
    assert_int_equal(run_cmd(rt, a, C_UNLINK, bid, 0), 0);
    gated_open(&gb);
    WAIT_FOR(atomic_load(&b->terminated) == 1);
    assert_int_equal(atomic_load(&b->reason), -EIO);
    assert_true(alive_after(rt, a));
    ds_rt_free(&rt);
    tactor_free(&a);
    tactor_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_link_propagates_failure),
        cmocka_unit_test(test_trap_exit),
        cmocka_unit_test(test_normal_exit_keeps_links),
        cmocka_unit_test(test_kill_untrappable),
        cmocka_unit_test(test_kill_from_a_link),
        cmocka_unit_test(test_link_monitor_dead),
        cmocka_unit_test(test_monitor_and_demonitor),
        cmocka_unit_test(test_demonitor_drops_queued_down),
        cmocka_unit_test(test_unlink),
        cmocka_unit_test(test_unlink_races_with_exit),
    };
    test_filter_from_env();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
