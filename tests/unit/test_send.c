/* test_send: the send path of the runtime (runtime/rt.h): delivery and its order, mailbox limits
 * and byte caps per group, system messages past a full mailbox, stale ids, group metrics, many
 * runnable actors, spawn failures, ds_ctx_stop() and timers. Waits are bounded only to catch a
 * hang (rt_helpers.h). */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
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

/* ---- send and receive ---- */

/* Forwards T_GO's u64 as a T_PING to the actor in aux[0]; stores the send's result in aux[1]. */
static int forward_on_go(ds_ctx_t *ctx, tactor_t *t, ds_msg_t **msgp)
{
    if ((*msgp)->type == T_GO) {
        ds_actor_id_t to = {atomic_load(&t->aux[0])};
        atomic_store(&t->aux[1], (uint64_t)(int64_t)send_in(ctx, to, T_PING, u64_at(*msgp, 0)));
    }
    return 0;
}

static void test_send_receive(void **state)
{
    (void)state;
    ds_rt_t *rt = rt_up(2);
    tactor_t *b = tactor_new();
    tactor_t *a = tactor_new();
    a->handle = forward_on_go;
    ds_actor_id_t bid = spawn_t(rt, b, NULL);
    ds_actor_id_t aid = spawn_t(rt, a, NULL);
    assert_false(ds_id_eq(aid, bid));
    assert_int_equal(ds_id_node(aid), ds_rt_node(rt));
    atomic_store(&a->aux[0], bid.v);
    atomic_store(&a->aux[1], 1);

    for (uint64_t i = 0; i < 3; i++) {
        assert_int_equal(send_out(rt, bid, T_PING, 100 + i), 0);
    }
    assert_int_equal(send_out(rt, aid, T_GO, 7), 0);
    WAIT_FOR(tactor_count(b, T_PING) == 4);

    /* From outside: no sender, the system group; in the order sent. */
    for (size_t i = 0; i < 3; i++) {
        rec_ev_t e;
        assert_true(tactor_get(b, T_PING, i, &e));
        assert_int_equal(e.a, 100 + i);
        assert_true(ds_id_is_nil(e.from));
        assert_int_equal(e.flags, 0);
    }
    /* From an actor: its id as the sender. */
    rec_ev_t e;
    assert_true(tactor_get(b, T_PING, 3, &e));
    assert_int_equal(e.a, 7);
    assert_true(ds_id_eq(e.from, aid));
    assert_int_equal(atomic_load(&a->aux[1]), 0);
    assert_int_equal(ds_rt_actor_count(rt), 2);

    /* An id of another node without a router, an index never handed out. */
    assert_int_equal(send_out(rt, ds_id_make(9, 0, 1), T_PING, 0), DS_ENODEDOWN);
    assert_int_equal(send_out(rt, ds_id_make(ds_rt_node(rt), 0, 1000000), T_PING, 0), DS_ENOACTOR);

    ds_rt_free(&rt);
    assert_null(rt);
    /* ds_rt_free() terminates what is still alive. */
    assert_int_equal(atomic_load(&a->terminated), 1);
    assert_int_equal(atomic_load(&a->reason), DS_EXIT_SHUTDOWN);
    assert_int_equal(atomic_load(&b->terminated), 1);
    tactor_free(&a);
    tactor_free(&b);
}

/* ---- per sender-receiver FIFO order with concurrent senders ---- */

enum {
    FIFO_ACTORS = 4,  /* sender actors, spread over the workers by their home */
    FIFO_THREADS = 4, /* foreign sender threads */
    FIFO_SENDERS = FIFO_ACTORS + FIFO_THREADS,
    FIFO_N = 10000, /* messages per sender */
    FIFO_CHUNK = 50,
};

typedef struct fifo {
    ds_rt_t *rt;
    ds_actor_id_t rx;
    uint64_t next[FIFO_SENDERS]; /* receiver only */
    atomic_ulong total;
    atomic_ulong out_of_order;
    atomic_ulong send_errors;
    atomic_int start;
} fifo_t;

static int fifo_rx_init(ds_ctx_t *ctx, void *arg)
{
    ds_ctx_set_state(ctx, arg);
    return 0;
}

static int fifo_rx_receive(ds_ctx_t *ctx, ds_msg_t **msgp)
{
    fifo_t *f = ds_ctx_state(ctx);
    uint64_t s = u64_at(*msgp, 0), seq = u64_at(*msgp, 1);
    if ((*msgp)->type != T_SEQ || s >= FIFO_SENDERS || seq != f->next[s]) {
        atomic_fetch_add(&f->out_of_order, 1);
    } else {
        f->next[s]++;
    }
    atomic_fetch_add_explicit(&f->total, 1, memory_order_release);
    return 0;
}

static const ds_behaviour_t fifo_rx_beh = {
    .name = "test.fifo_rx", .init = fifo_rx_init, .receive = fifo_rx_receive};

typedef struct fifo_tx {
    fifo_t *f;
    uint64_t sender;
    uint64_t seq;
} fifo_tx_t;

static int fifo_tx_init(ds_ctx_t *ctx, void *arg)
{
    ds_ctx_set_state(ctx, arg);
    return 0;
}

/* On T_GO: sends the next chunk, then T_GO to itself, so senders interleave turn by turn. */
static int fifo_tx_receive(ds_ctx_t *ctx, ds_msg_t **msgp)
{
    fifo_tx_t *s = ds_ctx_state(ctx);
    (void)msgp;
    for (int i = 0; i < FIFO_CHUNK && s->seq < FIFO_N; i++) {
        ds_msg_t *m = mk2(T_SEQ, s->sender, s->seq, true);
        int rc = ds_send(ctx, s->f->rx, &m);
        if (rc != 0) {
            ds_msg_free(&m);
            atomic_fetch_add(&s->f->send_errors, 1);
            return 0;
        }
        s->seq++;
    }
    if (s->seq < FIFO_N && send_in(ctx, ds_self(ctx), T_GO, 0) != 0) {
        atomic_fetch_add(&s->f->send_errors, 1);
    }
    return 0;
}

static const ds_behaviour_t fifo_tx_beh = {
    .name = "test.fifo_tx", .init = fifo_tx_init, .receive = fifo_tx_receive};

typedef struct fifo_thread {
    fifo_t *f;
    uint64_t sender;
} fifo_thread_t;

static void *fifo_thread_main(void *arg)
{
    fifo_thread_t *t = arg;
    while (!atomic_load(&t->f->start)) {
        sched_yield();
    }
    for (uint64_t seq = 0; seq < FIFO_N; seq++) {
        ds_msg_t *m = mk2(T_SEQ, t->sender, seq, true);
        int rc;
        /* A refused message was not queued, so retrying it keeps the order. */
        while ((rc = ds_send_from(t->f->rt, t->f->rx, &m)) == DS_EFULL || rc == DS_ECAP) {
            sched_yield();
        }
        if (rc != 0) {
            ds_msg_free(&m);
            atomic_fetch_add(&t->f->send_errors, 1);
            return NULL;
        }
    }
    return NULL;
}

static void test_fifo_per_sender(void **state)
{
    (void)state;
    ds_rt_t *rt = rt_up(4);
    uint32_t g = group_up(rt, 1u << 20, 1ull << 32);
    fifo_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->rt = rt;
    ds_spawn_opts_t o = {.group = g};
    assert_int_equal(ds_spawn(rt, &fifo_rx_beh, f, &o, &f->rx), 0);

    fifo_tx_t tx[FIFO_ACTORS];
    ds_actor_id_t txid[FIFO_ACTORS];
    for (int i = 0; i < FIFO_ACTORS; i++) {
        tx[i] = (fifo_tx_t){.f = f, .sender = (uint64_t)i};
        assert_int_equal(ds_spawn(rt, &fifo_tx_beh, &tx[i], NULL, &txid[i]), 0);
    }
    pthread_t th[FIFO_THREADS];
    fifo_thread_t tt[FIFO_THREADS];
    for (int i = 0; i < FIFO_THREADS; i++) {
        tt[i] = (fifo_thread_t){.f = f, .sender = (uint64_t)(FIFO_ACTORS + i)};
        assert_int_equal(pthread_create(&th[i], NULL, fifo_thread_main, &tt[i]), 0);
    }
    for (int i = 0; i < FIFO_ACTORS; i++) {
        assert_int_equal(send_out(rt, txid[i], T_GO, 0), 0);
    }
    atomic_store(&f->start, 1);
    for (int i = 0; i < FIFO_THREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
    }
    WAIT_FOR(atomic_load_explicit(&f->total, memory_order_acquire) ==
                 (unsigned long)FIFO_SENDERS * FIFO_N ||
             atomic_load(&f->send_errors) > 0);
    assert_int_equal(atomic_load(&f->send_errors), 0);
    assert_int_equal(atomic_load(&f->out_of_order), 0);
    for (int s = 0; s < FIFO_SENDERS; s++) {
        assert_int_equal(f->next[s], FIFO_N);
    }
    ds_group_metrics_t gm = metrics(rt, g);
    assert_int_equal(gm.refused, 0);
    WAIT_FOR(metrics(rt, g).delivered == (uint64_t)FIFO_SENDERS * FIFO_N);
    ds_rt_free(&rt);
    free(f);
}

/* ---- mailbox limit, byte cap, run-time update ---- */

/* On T_GO: sends a T_PING to the actor whose id is the message's u64; stores the result. */
static int send_on_go(ds_ctx_t *ctx, tactor_t *t, ds_msg_t **msgp)
{
    if ((*msgp)->type == T_GO) {
        ds_actor_id_t to = {u64_at(*msgp, 0)};
        atomic_store(&t->aux[0], (uint64_t)(int64_t)send_in(ctx, to, T_PING, 0));
        atomic_fetch_add(&t->aux[1], 1);
    }
    return 0;
}

static void test_mailbox_limit(void **state)
{
    (void)state;
    ds_rt_t *rt = rt_up(2);
    uint32_t noisy = group_up(rt, 4, 1u << 20);
    uint32_t quiet = group_up(rt, 64, 1u << 20);
    tactor_t *q = tactor_new();
    tactor_t *s = tactor_new();
    s->handle = send_on_go;
    ds_actor_id_t qid = spawn_t(rt, q, &(ds_spawn_opts_t){.group = quiet});
    ds_actor_id_t sid = spawn_t(rt, s, &(ds_spawn_opts_t){.group = quiet});

    /* The receiver runs nothing until the gate opens: its mailbox only fills. */
    tactor_t *x = tactor_new();
    gated_t gx;
    ds_actor_id_t xid = gated_start(&gx, rt, x, &(ds_spawn_opts_t){.group = noisy});
    for (uint64_t i = 0; i < 4; i++) {
        assert_int_equal(send_out(rt, xid, T_PING, i), 0);
    }
    for (int i = 0; i < 10; i++) {
        assert_int_equal(send_out(rt, xid, T_PING, 99), DS_EFULL);
    }
    /* Another group is not affected. */
    for (int i = 0; i < 10; i++) {
        assert_int_equal(send_out(rt, qid, T_PING, (uint64_t)i), 0);
    }
    ds_group_metrics_t gm = metrics(rt, noisy);
    assert_int_equal(gm.refused, 10);
    assert_int_equal(gm.queued, 4);
    assert_int_equal(gm.actors, 1);
    assert_int_equal(metrics(rt, quiet).refused, 0);

    /* From an actor (the worker path): refused the same way. */
    assert_int_equal(send_out(rt, sid, T_GO, xid.v), 0);
    WAIT_FOR(atomic_load(&s->aux[1]) == 1);
    assert_int_equal((int)(int64_t)atomic_load(&s->aux[0]), DS_EFULL);
    assert_int_equal(metrics(rt, noisy).refused, 11);

    /* A larger limit applies to the next send. */
    ds_group_cfg_t gc = {.weight = 1, .mailbox_limit = 8, .bytes_cap = 1u << 20};
    assert_int_equal(ds_group_update(rt, noisy, &gc), 0);
    for (uint64_t i = 4; i < 8; i++) {
        assert_int_equal(send_out(rt, xid, T_PING, i), 0);
    }
    assert_int_equal(send_out(rt, xid, T_PING, 99), DS_EFULL);
    assert_int_equal(metrics(rt, noisy).refused, 12);
    assert_int_equal(metrics(rt, quiet).refused, 0);
    gc.mailbox_limit = 0;
    assert_int_equal(ds_group_update(rt, noisy, &gc), -EINVAL);
    assert_int_equal(ds_group_update(rt, 12345, &(ds_group_cfg_t){1, 8, 1u << 20}), -ENOENT);

    gated_open(&gx);
    WAIT_FOR(tactor_count(x, T_PING) == 8);
    WAIT_FOR(tactor_count(q, T_PING) == 10);
    for (size_t i = 0; i < 8; i++) {
        rec_ev_t e;
        assert_true(tactor_get(x, T_PING, i, &e));
        assert_int_equal(e.a, i); /* none of the refused ones (99) */
    }
    WAIT_FOR(metrics(rt, noisy).delivered == 8);
    gm = metrics(rt, noisy);
    assert_int_equal(gm.queued, 0);
    assert_int_equal(gm.refused, 12);
    /* Room again once the receiver has caught up. */
    assert_int_equal(send_out(rt, xid, T_PING, 8), 0);
    WAIT_FOR(tactor_count(x, T_PING) == 9);

    ds_rt_free(&rt);
    tactor_free(&x);
    tactor_free(&q);
    tactor_free(&s);
}

static void test_bytes_cap(void **state)
{
    (void)state;
    ds_rt_t *rt = rt_up(2);
    uint32_t g = group_up(rt, 1000, 4096);
    tactor_t *x = tactor_new();
    gated_t gx;
    ds_actor_id_t xid = gated_start(&gx, rt, x, &(ds_spawn_opts_t){.group = g});

    static uint8_t payload[1000];
    ds_msg_t *m = NULL;
    assert_int_equal(ds_msg_new(T_PING, payload, sizeof(payload), &m), 0);
    size_t fp = ds_msg_footprint(m);
    ds_msg_free(&m);
    assert_true(fp >= sizeof(payload));
    size_t fits = 4096 / fp;
    assert_true(fits >= 1);

    size_t ok = 0;
    int rc = 0;
    for (int i = 0; i < 100; i++) {
        assert_int_equal(ds_msg_new(T_PING, payload, sizeof(payload), &m), 0);
        rc = ds_send_from(rt, xid, &m);
        if (rc != 0) {
            assert_non_null(m); /* refused: still ours */
            ds_msg_free(&m);
            break;
        }
        assert_null(m);
        ok++;
    }
    assert_int_equal(rc, DS_ECAP);
    assert_int_equal(ok, fits);
    ds_group_metrics_t gm = metrics(rt, g);
    assert_int_equal(gm.refused, 1);
    assert_int_equal(gm.bytes, fits * fp);
    assert_int_equal(gm.queued, fits);

    /* A higher cap applies to the next send. */
    ds_group_cfg_t gc = {.weight = 1, .mailbox_limit = 1000, .bytes_cap = 8192};
    assert_int_equal(ds_group_update(rt, g, &gc), 0);
    size_t fits2 = 8192 / fp;
    for (;;) {
        assert_int_equal(ds_msg_new(T_PING, payload, sizeof(payload), &m), 0);
        rc = ds_send_from(rt, xid, &m);
        if (rc != 0) {
            ds_msg_free(&m);
            break;
        }
        ok++;
    }
    assert_int_equal(rc, DS_ECAP);
    assert_int_equal(ok, fits2);
    assert_int_equal(metrics(rt, g).refused, 2);

    gated_open(&gx);
    WAIT_FOR(tactor_count(x, T_PING) == fits2);
    WAIT_FOR(metrics(rt, g).bytes == 0);
    /* Bytes in flight went back to 0: the cap no longer refuses. */
    assert_int_equal(send_out(rt, xid, T_PING, 1), 0);
    WAIT_FOR(tactor_count(x, T_PING) == fits2 + 1);

    ds_rt_free(&rt);
    tactor_free(&x);
}

/* ---- system messages and replies past a full mailbox ---- */

/* X's setup: monitor the actor in aux[0], ask the one in aux[1]; keep the ref and the corr. */
static int full_setup(ds_ctx_t *ctx, tactor_t *t)
{
    uint64_t ref = 0, corr = 0;
    if (ds_monitor(ctx, (ds_actor_id_t){atomic_load(&t->aux[0])}, &ref) != 0) {
        return -EIO;
    }
    ds_msg_t *m = mk(T_ASK, 5);
    if (ds_ask(ctx, (ds_actor_id_t){atomic_load(&t->aux[1])}, &m, 60 * SEC, &corr) != 0) {
        ds_msg_free(&m);
        return -EIO;
    }
    atomic_store(&t->aux[2], ref);
    atomic_store(&t->aux[3], corr);
    return 0;
}

/* Holds the ask it gets (user); on T_GO answers it and stores ds_reply()'s result in aux[0]. */
static int hold_then_reply(ds_ctx_t *ctx, tactor_t *t, ds_msg_t **msgp)
{
    if ((*msgp)->type == T_ASK) {
        t->user = *msgp;
        *msgp = NULL;
    } else if ((*msgp)->type == T_GO && t->user != NULL) {
        ds_msg_t *req = t->user;
        ds_msg_t *r = mk(T_ANSWER, u64_at(req, 0) + 1);
        int rc = ds_reply(ctx, req, &r);
        ds_msg_free(&r);
        ds_msg_free(&req);
        t->user = NULL;
        atomic_store(&t->aux[0], (uint64_t)(int64_t)rc);
        atomic_store(&t->aux[1], 1);
    }
    return 0;
}

/* On T_GO: ds_exit(the u64's actor, 42); stores the result. */
static int exit_on_go(ds_ctx_t *ctx, tactor_t *t, ds_msg_t **msgp)
{
    if ((*msgp)->type == T_GO) {
        int rc = ds_exit(ctx, (ds_actor_id_t){u64_at(*msgp, 0)}, 42);
        atomic_store(&t->aux[0], (uint64_t)(int64_t)rc);
        atomic_store(&t->aux[1], 1);
    }
    return 0;
}

static void test_system_never_refused(void **state)
{
    (void)state;
    ds_rt_t *rt = rt_up(2);
    uint32_t small = group_up(rt, 2, 1u << 20);
    uint32_t other = group_up(rt, 64, 1u << 20);
    tactor_t *z = tactor_basic_new(); /* monitored; will stop */
    tactor_t *p = tactor_new();       /* asked; answers late */
    p->handle = hold_then_reply;
    tactor_t *s = tactor_new(); /* sends the exit signal */
    s->handle = exit_on_go;
    ds_actor_id_t zid = spawn_t(rt, z, &(ds_spawn_opts_t){.group = other});
    ds_actor_id_t pid = spawn_t(rt, p, &(ds_spawn_opts_t){.group = other});
    ds_actor_id_t sid = spawn_t(rt, s, &(ds_spawn_opts_t){.group = other});

    tactor_t *x = tactor_new();
    x->setup = full_setup;
    atomic_store(&x->aux[0], zid.v);
    atomic_store(&x->aux[1], pid.v);
    gated_t gx;
    ds_actor_id_t xid =
        gated_start(&gx, rt, x, &(ds_spawn_opts_t){.group = small, .trap_exit = true});
    WAIT_FOR(tactor_count(p, T_ASK) == 1);

    assert_int_equal(send_out(rt, xid, T_PING, 0), 0);
    assert_int_equal(send_out(rt, xid, T_PING, 1), 0);
    assert_int_equal(send_out(rt, xid, T_PING, 2), DS_EFULL);

    /* An exit signal, a reply and a monitor's DOWN all get past the full mailbox. */
    assert_int_equal(send_out(rt, sid, T_GO, xid.v), 0);
    WAIT_FOR(atomic_load(&s->aux[1]) == 1);
    assert_int_equal((int)(int64_t)atomic_load(&s->aux[0]), 0);
    assert_int_equal(send_out(rt, pid, T_GO, 0), 0);
    WAIT_FOR(atomic_load(&p->aux[1]) == 1);
    assert_int_equal((int)(int64_t)atomic_load(&p->aux[0]), 0);
    assert_int_equal(send_out(rt, zid, T_STOP, (uint64_t)(int64_t)-EPIPE), 0);
    WAIT_FOR(metrics(rt, small).queued == 5);
    assert_int_equal(send_out(rt, xid, T_PING, 3), DS_EFULL);
    assert_int_equal(metrics(rt, small).refused, 2);

    gated_open(&gx);
    WAIT_FOR(tactor_count(x, 0) == 5);
    assert_int_equal(tactor_count(x, T_PING), 2);
    rec_ev_t e;
    assert_true(tactor_get(x, DS_MT_EXIT, 0, &e));
    assert_true(ds_id_eq(e.who, sid));
    assert_int_equal(e.reason, 42);
    assert_true(tactor_get(x, T_ANSWER, 0, &e));
    assert_int_equal(e.corr, atomic_load(&x->aux[3]));
    assert_true((e.flags & DS_MSG_F_REPLY) != 0);
    assert_int_equal(e.a, 6);
    assert_true(tactor_get(x, DS_MT_DOWN, 0, &e));
    assert_int_equal(e.ref, atomic_load(&x->aux[2]));
    assert_true(ds_id_eq(e.who, zid));
    assert_int_equal(e.reason, -EPIPE);
    assert_int_equal(atomic_load(&x->terminated), 0);

    ds_rt_free(&rt);
    tactor_free(&x);
    tactor_free(&z);
    tactor_free(&p);
    tactor_free(&s);
}

/* ---- stale ids ---- */

typedef struct mortal_counts {
    atomic_uint stale; /* T_STALE received: must stay 0 */
    atomic_uint pings;
    atomic_uint terms;
} mortal_counts_t;

static int mortal_init(ds_ctx_t *ctx, void *arg)
{
    ds_ctx_set_state(ctx, arg);
    return 0;
}

static int mortal_receive(ds_ctx_t *ctx, ds_msg_t **msgp)
{
    mortal_counts_t *c = ds_ctx_state(ctx);
    switch ((*msgp)->type) {
    case T_STALE:
        atomic_fetch_add(&c->stale, 1);
        break;
    case T_PING:
        atomic_fetch_add(&c->pings, 1);
        break;
    case T_STOP:
        ds_ctx_stop(ctx, DS_EXIT_NORMAL);
        break;
    default:
        break;
    }
    return 0;
}

static void mortal_terminate(ds_ctx_t *ctx, int reason)
{
    mortal_counts_t *c = ds_ctx_state(ctx);
    (void)reason;
    atomic_fetch_add(&c->terms, 1);
}

static const ds_behaviour_t mortal_beh = {.name = "test.mortal",
                                          .init = mortal_init,
                                          .receive = mortal_receive,
                                          .terminate = mortal_terminate};

/* On T_GO: sends T_STALE to the u64's id; stores the result. */
static int stale_on_go(ds_ctx_t *ctx, tactor_t *t, ds_msg_t **msgp)
{
    if ((*msgp)->type == T_GO) {
        atomic_store(&t->aux[0], (uint64_t)(int64_t)send_in(ctx, (ds_actor_id_t){u64_at(*msgp, 0)},
                                                            T_STALE, 0));
        atomic_fetch_add(&t->aux[1], 1);
    }
    return 0;
}

static void test_stale_id(void **state)
{
    (void)state;
    ds_rt_t *rt = rt_up(2);
    mortal_counts_t c = {0};
    tactor_t *s = tactor_new();
    s->handle = stale_on_go;
    ds_actor_id_t sid = spawn_t(rt, s, NULL);

    ds_actor_id_t old;
    assert_int_equal(ds_spawn(rt, &mortal_beh, &c, NULL, &old), 0);
    assert_int_equal(send_out(rt, old, T_STOP, 0), 0);
    WAIT_FOR(atomic_load(&c.terms) == 1 && ds_rt_actor_count(rt) == 1);
    assert_int_equal(send_out(rt, old, T_STALE, 0), DS_ENOACTOR);

    /* Spawn (keeping each alive) until one lands in the old slot. Dead slots are reclaimed
     * when workers pass turn boundaries, so each new actor gets a ping to run a turn. */
    ds_actor_id_t reused = DS_ID_NIL;
    int64_t deadline = ds_clock_now() + HANG_NS;
    unsigned pings = 0;
    while (ds_id_is_nil(reused)) {
        ds_actor_id_t id;
        assert_int_equal(ds_spawn(rt, &mortal_beh, &c, NULL, &id), 0);
        if (ds_id_index(id) == ds_id_index(old)) {
            reused = id;
        } else {
            assert_true(ds_clock_now() < deadline);
            assert_int_equal(send_out(rt, id, T_PING, 0), 0);
            pings++;
            WAIT_FOR(atomic_load(&c.pings) == pings);
        }
    }
    assert_int_not_equal(ds_id_gen(reused), ds_id_gen(old));

    /* The old id reaches nobody, from outside or from an actor. */
    assert_int_equal(send_out(rt, old, T_STALE, 0), DS_ENOACTOR);
    assert_int_equal(send_out(rt, sid, T_GO, old.v), 0);
    WAIT_FOR(atomic_load(&s->aux[1]) == 1);
    assert_int_equal((int)(int64_t)atomic_load(&s->aux[0]), DS_ENOACTOR);
    /* The new actor handles a ping sent after those: a stale message would be before it. */
    assert_int_equal(send_out(rt, reused, T_PING, 0), 0);
    WAIT_FOR(atomic_load(&c.pings) == pings + 1);
    assert_int_equal(atomic_load(&c.stale), 0);

    ds_rt_free(&rt);
    tactor_free(&s);
}

enum {
    CHURN = 300
};

static void test_stale_ids_churn(void **state)
{
    (void)state;
    ds_rt_t *rt = rt_up(2);
    mortal_counts_t c = {0};
    ds_actor_id_t ids[CHURN];
    for (unsigned i = 0; i < CHURN; i++) {
        assert_int_equal(ds_spawn(rt, &mortal_beh, &c, NULL, &ids[i]), 0);
        assert_int_equal(send_out(rt, ids[i], T_STOP, 0), 0);
        WAIT_FOR(atomic_load(&c.terms) == i + 1 && ds_rt_actor_count(rt) == 0);
    }
    bool reused = false;
    for (unsigned i = 0; i < CHURN; i++) {
        for (unsigned j = i + 1; j < CHURN; j++) {
            assert_false(ds_id_eq(ids[i], ids[j])); /* an id is never handed out twice */
            reused |= ds_id_index(ids[i]) == ds_id_index(ids[j]);
        }
    }
    assert_true(reused);
    /* A live actor in a reused slot; every old id still fails. */
    ds_actor_id_t live;
    assert_int_equal(ds_spawn(rt, &mortal_beh, &c, NULL, &live), 0);
    for (unsigned i = 0; i < CHURN; i++) {
        assert_int_equal(send_out(rt, ids[i], T_STALE, 0), DS_ENOACTOR);
    }
    assert_int_equal(send_out(rt, live, T_PING, 0), 0);
    WAIT_FOR(atomic_load(&c.pings) == 1);
    assert_int_equal(atomic_load(&c.stale), 0);
    ds_rt_free(&rt);
}

/* ---- group metrics ---- */

typedef struct busy {
    atomic_uint handled;
} busy_t;

static int busy_init(ds_ctx_t *ctx, void *arg)
{
    ds_ctx_set_state(ctx, arg);
    return 0;
}

/* Works ~20 us per message, so the group's turns take measurable time. */
static int busy_receive(ds_ctx_t *ctx, ds_msg_t **msgp)
{
    busy_t *b = ds_ctx_state(ctx);
    if ((*msgp)->type == T_STOP) {
        ds_ctx_stop(ctx, DS_EXIT_NORMAL);
        return 0;
    }
    int64_t until = ds_clock_now() + 20000;
    while (ds_clock_now() < until) {
    }
    atomic_fetch_add(&b->handled, 1);
    return 0;
}

static const ds_behaviour_t busy_beh = {
    .name = "test.busy", .init = busy_init, .receive = busy_receive};

static uint64_t hist_sum(const ds_group_metrics_t *m)
{
    uint64_t s = 0;
    for (int i = 0; i < 16; i++) {
        s += m->delay_hist[i];
    }
    return s;
}

static void test_group_metrics(void **state)
{
    (void)state;
    ds_rt_t *rt = rt_up(2);
    uint32_t g = group_up(rt, 1000, 1u << 20);
    uint32_t idle = group_up(rt, 1000, 1u << 20);
    busy_t b = {0};
    ds_actor_id_t ids[3];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ds_spawn(rt, &busy_beh, &b, &(ds_spawn_opts_t){.group = g}, &ids[i]), 0);
    }
    ds_group_metrics_t m = metrics(rt, g);
    assert_int_equal(m.actors, 3);
    assert_int_equal(m.delivered, 0);
    assert_int_equal(m.turns, 0);

    for (int k = 0; k < 100; k++) {
        for (int i = 0; i < 3; i++) {
            assert_int_equal(send_out(rt, ids[i], T_PING, 0), 0);
        }
    }
    WAIT_FOR(atomic_load(&b.handled) == 300);
    WAIT_FOR((m = metrics(rt, g)).delivered == 300 && hist_sum(&m) == m.turns);
    assert_true(m.turns >= 3);
    assert_true(m.turns <= 300);
    assert_true(m.cpu_ns > 0);
    assert_int_equal(m.queued, 0);
    assert_int_equal(m.bytes, 0);
    assert_int_equal(m.refused, 0);
    assert_int_equal(m.actors, 3);

    /* Nothing ran in the other group. */
    ds_group_metrics_t mi = metrics(rt, idle);
    assert_int_equal(mi.delivered, 0);
    assert_int_equal(mi.turns, 0);
    assert_int_equal(mi.cpu_ns, 0);
    assert_int_equal(hist_sum(&mi), 0);
    assert_int_equal(mi.actors, 0);

    assert_int_equal(send_out(rt, ids[0], T_STOP, 0), 0);
    WAIT_FOR(metrics(rt, g).actors == 2);
    ds_group_metrics_t out;
    assert_int_equal(ds_group_metrics(rt, 4242, &out), -ENOENT);
    ds_rt_free(&rt);
}

/* ---- many runnable actors ---- */

enum {
    MANY = 100000
};

static atomic_uint many_handled;

static int many_receive(ds_ctx_t *ctx, ds_msg_t **msgp)
{
    (void)ctx;
    (void)msgp;
    atomic_fetch_add_explicit(&many_handled, 1, memory_order_relaxed);
    return 0;
}

static const ds_behaviour_t many_beh = {.name = "test.many", .receive = many_receive};

static void test_many_runnable_actors(void **state)
{
    (void)state;
    ds_rt_t *rt = rt_up(4);
    uint32_t g = group_up(rt, 16, 1ull << 30);
    ds_actor_id_t *ids = calloc(MANY, sizeof(*ids));
    assert_non_null(ids);
    atomic_store(&many_handled, 0);
    for (unsigned i = 0; i < MANY; i++) {
        assert_int_equal(ds_spawn(rt, &many_beh, NULL, &(ds_spawn_opts_t){.group = g}, &ids[i]), 0);
    }
    assert_int_equal(ds_rt_actor_count(rt), MANY);
    for (unsigned i = 0; i < MANY; i++) {
        assert_int_equal(send_out(rt, ids[i], T_PING, i), 0);
    }
    WAIT_FOR(atomic_load(&many_handled) == MANY);
    ds_group_metrics_t m;
    WAIT_FOR((m = metrics(rt, g)).delivered == MANY);
    assert_int_equal(m.actors, MANY);
    assert_int_equal(m.refused, 0);
    assert_true(m.turns >= MANY); /* one message each: one turn each at least */
    ds_rt_free(&rt);
    free(ids);
}

/* ---- spawn failures and ds_ctx_stop ---- */

static int init_fails(ds_ctx_t *ctx, void *arg)
{
    (void)ctx;
    (void)arg;
    return -EIO;
}

static int never_receive(ds_ctx_t *ctx, ds_msg_t **msgp)
{
    (void)ctx;
    (void)msgp;
    return 0;
}

static atomic_int bad_terminated;

static void bad_terminate(ds_ctx_t *ctx, int reason)
{
    (void)ctx;
    (void)reason;
    atomic_fetch_add(&bad_terminated, 1);
}

static const ds_behaviour_t bad_beh = {
    .name = "test.bad", .init = init_fails, .receive = never_receive, .terminate = bad_terminate};

static void test_spawn_init_error(void **state)
{
    (void)state;
    ds_rt_t *rt = rt_up(2);
    uint32_t g = group_up(rt, 16, 1u << 20);
    ds_actor_id_t id = ds_id_make(1, 2, 3);
    assert_int_equal(ds_spawn(rt, &bad_beh, NULL, &(ds_spawn_opts_t){.group = g}, &id), -EIO);
    assert_true(ds_id_eq(id, ds_id_make(1, 2, 3))); /* written only on success */
    assert_int_equal(ds_rt_actor_count(rt), 0);
    assert_int_equal(metrics(rt, g).actors, 0);
    assert_int_equal(atomic_load(&bad_terminated), 0); /* it never ran */

    /* Linked at spawn: the link hears of the failure with init's code. */
    tactor_t *l = tactor_new();
    ds_actor_id_t lid = spawn_t(rt, l, &(ds_spawn_opts_t){.trap_exit = true});
    assert_int_equal(ds_spawn(rt, &bad_beh, NULL, &(ds_spawn_opts_t){.link = lid}, &id), -EIO);
    WAIT_FOR(tactor_count(l, DS_MT_EXIT) == 1);
    rec_ev_t e;
    assert_true(tactor_get(l, DS_MT_EXIT, 0, &e));
    assert_int_equal(e.reason, -EIO);
    assert_int_equal(ds_rt_actor_count(rt), 1);

    /* Bad arguments. */
    assert_int_equal(ds_spawn(rt, NULL, NULL, NULL, &id), -EINVAL);
    assert_int_equal(ds_spawn(rt, &tactor_beh, l, &(ds_spawn_opts_t){.group = 999}, &id), -ENOENT);
    ds_rt_free(&rt);
    tactor_free(&l);
}

static int watch_setup(ds_ctx_t *ctx, tactor_t *t)
{
    uint64_t ref;
    int rc = ds_monitor(ctx, (ds_actor_id_t){atomic_load(&t->aux[0])}, &ref);
    atomic_store(&t->aux[1], ref);
    return rc;
}

static void test_ctx_stop(void **state)
{
    (void)state;
    ds_rt_t *rt = rt_up(2);
    tactor_t *t = tactor_basic_new();
    gated_t gt;
    ds_actor_id_t tid = gated_start(&gt, rt, t, NULL);
    tactor_t *o = tactor_new();
    o->setup = watch_setup;
    atomic_store(&o->aux[0], tid.v);
    spawn_t(rt, o, NULL);
    /* Both queued before the first turn: the stop ends the actor after its own message. */
    assert_int_equal(send_out(rt, tid, T_STOP, 1234), 0);
    assert_int_equal(send_out(rt, tid, T_PING, 0), 0);
    gated_open(&gt);
    WAIT_FOR(tactor_count(o, DS_MT_DOWN) == 1);
    rec_ev_t e;
    assert_true(tactor_get(o, DS_MT_DOWN, 0, &e));
    assert_int_equal(e.reason, 1234);
    assert_true(ds_id_eq(e.who, tid));
    assert_int_equal(e.ref, atomic_load(&o->aux[1]));
    assert_int_equal(atomic_load(&t->terminated), 1);
    assert_int_equal(atomic_load(&t->reason), 1234);
    assert_int_equal(tactor_count(t, T_STOP), 1);
    assert_int_equal(tactor_count(t, T_PING), 0);
    assert_int_equal(send_out(rt, tid, T_PING, 0), DS_ENOACTOR);
    ds_rt_free(&rt);
    tactor_free(&t);
    tactor_free(&o);
}

/* ---- timers through the runtime ---- */

static void test_timers(void **state)
{
    (void)state;
    ds_rt_t *rt = rt_up(2);
    tactor_t *t = tactor_new();
    ds_actor_id_t tid = spawn_t(rt, t, NULL);

    /* One-shot: delivered once. */
    ds_msg_t *m = mk(T_TICK, 1);
    uint64_t timer = 0;
    assert_int_equal(ds_timer_after(rt, tid, 1 * MS, &m, &timer), 0);
    assert_null(m);
    assert_int_not_equal(timer, 0);
    WAIT_FOR(tactor_count(t, T_TICK) == 1);
    assert_int_equal(ds_timer_cancel(rt, timer), -ENOENT);

    /* Periodic: several firings, then none after a successful cancel. */
    m = mk(T_TICK, 2);
    assert_int_equal(ds_timer_every(rt, tid, 1 * MS, &m, &timer), 0);
    WAIT_FOR(tactor_count(t, T_TICK) >= 4);
    assert_int_equal(ds_timer_cancel(rt, timer), 0);
    /* Firings delivered before the cancel returned are ahead of this probe. */
    assert_int_equal(send_out(rt, tid, T_PROBE, 0), 0);
    WAIT_FOR(tactor_count(t, T_PROBE) == 1);
    size_t ticks = tactor_count(t, T_TICK);
    usleep(30000);
    assert_int_equal(send_out(rt, tid, T_PROBE, 1), 0);
    WAIT_FOR(tactor_count(t, T_PROBE) == 2);
    assert_int_equal(tactor_count(t, T_TICK), ticks);
    assert_int_equal(ds_timer_cancel(rt, timer), -ENOENT);
    for (size_t i = 1; i < ticks; i++) {
        rec_ev_t e;
        assert_true(tactor_get(t, T_TICK, i, &e));
        assert_int_equal(e.a, 2); /* a clone of the periodic message each time */
    }

    m = mk(T_TICK, 3);
    assert_int_equal(ds_timer_every(rt, tid, 0, &m, &timer), -EINVAL);
    assert_non_null(m);
    ds_msg_free(&m);

    /* To a dead actor: the firing is dropped, a periodic timer cancels itself. */
    tactor_t *d = tactor_basic_new();
    ds_actor_id_t did = spawn_t(rt, d, NULL);
    assert_int_equal(send_out(rt, did, T_STOP, 0), 0);
    WAIT_FOR(atomic_load(&d->terminated) == 1 && ds_rt_actor_count(rt) == 1);
    m = mk(T_TICK, 4);
    assert_int_equal(ds_timer_after(rt, did, 0, &m, NULL), 0);
    m = mk(T_TICK, 5);
    assert_int_equal(ds_timer_every(rt, did, 1 * MS, &m, &timer), 0);
    usleep(200000); /* many periods: the first firing found nobody */
    assert_int_equal(ds_timer_cancel(rt, timer), -ENOENT);
    assert_int_equal(tactor_count(d, T_TICK), 0);

    ds_rt_free(&rt);
    tactor_free(&t);
    tactor_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_send_receive),
        cmocka_unit_test(test_fifo_per_sender),
        cmocka_unit_test(test_mailbox_limit),
        cmocka_unit_test(test_bytes_cap),
        cmocka_unit_test(test_system_never_refused),
        cmocka_unit_test(test_stale_id),
        cmocka_unit_test(test_stale_ids_churn),
        cmocka_unit_test(test_group_metrics),
        cmocka_unit_test(test_many_runnable_actors),
        cmocka_unit_test(test_spawn_init_error),
        cmocka_unit_test(test_ctx_stop),
        cmocka_unit_test(test_timers),
    };
    test_filter_from_env();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
