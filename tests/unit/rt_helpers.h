/* rt_helpers: shared helpers of the runtime's tests (test_send, test_ask, test_link, test_drain,
 * test_supervisor, test_registry).
 *
 * - Messages of the tests are plain user types (T_*) whose payload is a row of little-endian
 *   u64s: mk() and mk2() build them, u64_at() reads them (0 past the end). The runtime does not
 *   validate local payloads, so no catalog is needed.
 * - WAIT_FOR(cond) polls cond every 100 us and fails the test after HANG_NS: a bound that only
 *   catches a hang, never a timing assertion.
 * - tactor_t is a scriptable actor: it records every message it gets (type, flags, corr,
 *   sender, the fields of EXIT and DOWN, the error of an error reply) under a mutex, so the
 *   test thread can read them. With a gate, init publishes the actor's id and then waits until
 *   the test opens the gate: messages sent meanwhile queue up (an actor gets no message before
 *   its init returned), which holds a mailbox full without stalling a worker.
 *
 * Threads: hooks run on workers (or on the spawning thread for setup); they never call cmocka's
 * assertions, which may only run on the test thread. They count what went wrong instead. */
#pragma once

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

#define MS      ((int64_t)1000000)
#define SEC     ((int64_t)1000000000)
#define HANG_NS (20 * SEC)

/* One poll of WAIT_FOR: sleeps 100 us, and fails the test once the deadline passed. */
static inline void wait_step(int64_t deadline, const char *what)
{
    if (ds_clock_now() > deadline) {
        fail_msg("timed out waiting for %s", what);
    }
    usleep(100);
}

/* Polls cond until it holds; fails the test if it does not within HANG_NS. One statement, so a
 * wait inside loops does not deepen their nesting. */
#define WAIT_FOR(cond)                                                  \
    for (int64_t wait_deadline_ = ds_clock_now() + HANG_NS; !(cond);) { \
        wait_step(wait_deadline_, #cond);                               \
    }

enum {
    T_PING = DS_MSG_USER_BASE + 1, /* u64: a value to record */
    T_GO,                          /* u64s: a command for the actor's handle hook */
    T_STOP,                        /* u64: stop with this reason (tactor_basic) */
    T_CRASH,                       /* u64: fail with this code (tactor_basic) */
    T_PROBE,                       /* nothing: a marker that all before it was handled */
    T_ASK,                         /* u64: a request */
    T_ANSWER,                      /* u64: the answer to a T_ASK */
    T_SEQ,                         /* u64 sender, u64 sequence number */
    T_TICK,                        /* u64: a timer's message */
    T_STALE,                       /* u64: sent to an old id, must never arrive */
};

/* A message of `type` carrying a (and b when two). Aborts on failure: tests only. */
static inline ds_msg_t *mk2(uint32_t type, uint64_t a, uint64_t b, bool two)
{
    uint8_t p[16];
    size_t n = two ? 16 : 8;
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(a >> (8 * i));
        p[8 + i] = (uint8_t)(b >> (8 * i));
    }
    ds_msg_t *m = NULL;
    if (ds_msg_new(type, p, n, &m) != 0) {
        abort();
    }
    return m;
}

static inline ds_msg_t *mk(uint32_t type, uint64_t a)
{
    return mk2(type, a, 0, false);
}

/* The i-th u64 of a message's payload, or 0 past its end. */
static inline uint64_t u64_at(const ds_msg_t *m, size_t i)
{
    if (m->len < (i + 1) * 8) {
        return 0;
    }
    uint64_t v = 0;
    for (int k = 7; k >= 0; k--) {
        v = (v << 8) | m->data[i * 8 + (size_t)k];
    }
    return v;
}

/* Sends from outside any actor; frees the message when it was refused. Returns the result. */
static inline int send_out(ds_rt_t *rt, ds_actor_id_t to, uint32_t type, uint64_t a)
{
    ds_msg_t *m = mk(type, a);
    int rc = ds_send_from(rt, to, &m);
    ds_msg_free(&m);
    return rc;
}

/* Sends from inside an actor; frees the message when it was refused. Returns the result. */
static inline int send_in(ds_ctx_t *ctx, ds_actor_id_t to, uint32_t type, uint64_t a)
{
    ds_msg_t *m = mk(type, a);
    int rc = ds_send(ctx, to, &m);
    ds_msg_free(&m);
    return rc;
}

/* A started runtime with n workers. */
static inline ds_rt_t *rt_up(unsigned workers)
{
    ds_rt_t *rt = NULL;
    ds_rt_cfg_t cfg = {.workers = workers};
    assert_int_equal(ds_rt_new(&cfg, &rt), 0);
    assert_int_equal(ds_rt_start(rt), 0);
    return rt;
}

static inline uint32_t group_up(ds_rt_t *rt, uint32_t limit, uint64_t cap)
{
    uint32_t g = 0;
    ds_group_cfg_t gc = {.weight = 1, .mailbox_limit = limit, .bytes_cap = cap};
    assert_int_equal(ds_group_new(rt, &gc, &g), 0);
    return g;
}

static inline ds_group_metrics_t metrics(ds_rt_t *rt, uint32_t gid)
{
    ds_group_metrics_t m;
    assert_int_equal(ds_group_metrics(rt, gid, &m), 0);
    return m;
}

/* ---- the scriptable actor ---- */

enum {
    REC_CAP = 256
};

typedef struct rec_ev {
    uint32_t type;
    uint16_t flags;
    uint64_t corr;
    ds_actor_id_t from;
    uint64_t a, b;     /* payload u64s of the tests' types */
    ds_actor_id_t who; /* EXIT, DOWN */
    int64_t reason;    /* EXIT, DOWN */
    uint64_t ref;      /* DOWN */
    int err;           /* an error reply's code */
} rec_ev_t;

typedef struct gate {
    _Atomic uint64_t id; /* the gated actor's id once its init waits */
    atomic_bool open;
    atomic_bool timed_out;
} gate_t;

typedef struct tactor tactor_t;
struct tactor {
    /* hooks, all optional */
    int (*setup)(ds_ctx_t *ctx, tactor_t *t);                   /* in init */
    int (*handle)(ds_ctx_t *ctx, tactor_t *t, ds_msg_t **msgp); /* after recording */
    void (*term)(ds_ctx_t *ctx, tactor_t *t, int reason);
    void *user;
    gate_t *gate;
    /* written by the actor */
    _Atomic uint64_t self;
    _Atomic uint64_t aux[4]; /* for hooks: ids, refs, corrs, return codes */
    atomic_int terminated;
    atomic_int reason;
    pthread_mutex_t mu;
    rec_ev_t ev[REC_CAP];
    size_t n;
    size_t dropped; /* events past REC_CAP */
};

static inline tactor_t *tactor_new(void)
{
    tactor_t *t = calloc(1, sizeof(*t));
    assert_non_null(t);
    assert_int_equal(pthread_mutex_init(&t->mu, NULL), 0);
    return t;
}

static inline void tactor_free(tactor_t **tp)
{
    if (*tp != NULL) {
        pthread_mutex_destroy(&(*tp)->mu);
        free(*tp);
        *tp = NULL;
    }
}

static inline ds_actor_id_t tactor_id(tactor_t *t)
{
    return (ds_actor_id_t){atomic_load(&t->self)};
}

static inline void tactor_record(tactor_t *t, const ds_msg_t *m)
{
    rec_ev_t e = {.type = m->type, .flags = m->flags, .corr = m->corr, .from = m->from};
    if ((m->flags & DS_MSG_F_ERROR) != 0) {
        e.err = ds_msg_error(m);
    } else if (m->type == DS_MT_EXIT) {
        ds_exit_t x;
        if (ds_exit_decode(m, &x) == 0) {
            e.who = x.who;
            e.reason = x.reason;
        }
    } else if (m->type == DS_MT_DOWN) {
        ds_down_t d;
        if (ds_down_decode(m, &d) == 0) {
            e.who = d.who;
            e.reason = d.reason;
            e.ref = d.ref;
        }
    } else {
        e.a = u64_at(m, 0);
        e.b = u64_at(m, 1);
    }
    pthread_mutex_lock(&t->mu);
    if (t->n < REC_CAP) {
        t->ev[t->n++] = e;
    } else {
        t->dropped++;
    }
    pthread_mutex_unlock(&t->mu);
}

/* Number of recorded messages of a type (0: of any type). */
static inline size_t tactor_count(tactor_t *t, uint32_t type)
{
    size_t c = 0;
    pthread_mutex_lock(&t->mu);
    for (size_t i = 0; i < t->n; i++) {
        c += type == 0 || t->ev[i].type == type;
    }
    pthread_mutex_unlock(&t->mu);
    return c;
}

/* The k-th recorded message of a type (0: of any type); false if there is none. */
static inline bool tactor_get(tactor_t *t, uint32_t type, size_t k, rec_ev_t *out)
{
    bool found = false;
    *out = (rec_ev_t){0};
    pthread_mutex_lock(&t->mu);
    for (size_t i = 0; i < t->n && !found; i++) {
        if (type == 0 || t->ev[i].type == type) {
            if (k == 0) {
                *out = t->ev[i];
                found = true;
            } else {
                k--;
            }
        }
    }
    pthread_mutex_unlock(&t->mu);
    return found;
}

/* Number of recorded messages carrying corr. */
static inline size_t tactor_count_corr(tactor_t *t, uint64_t corr)
{
    size_t c = 0;
    pthread_mutex_lock(&t->mu);
    for (size_t i = 0; i < t->n; i++) {
        c += t->ev[i].corr == corr;
    }
    pthread_mutex_unlock(&t->mu);
    return c;
}

static inline int tactor_init_cb(ds_ctx_t *ctx, void *arg)
{
    tactor_t *t = arg;
    atomic_store(&t->self, ds_self(ctx).v);
    ds_ctx_set_state(ctx, t);
    int rc = t->setup != NULL ? t->setup(ctx, t) : 0;
    if (rc == 0 && t->gate != NULL) {
        gate_t *g = t->gate;
        atomic_store(&g->id, ds_self(ctx).v);
        int64_t deadline = ds_clock_now() + HANG_NS;
        while (!atomic_load(&g->open)) {
            if (ds_clock_now() > deadline) {
                atomic_store(&g->timed_out, true);
                break;
            }
            usleep(100);
        }
    }
    return rc;
}

static inline int tactor_receive_cb(ds_ctx_t *ctx, ds_msg_t **msgp)
{
    tactor_t *t = ds_ctx_state(ctx);
    tactor_record(t, *msgp);
    return t->handle != NULL ? t->handle(ctx, t, msgp) : 0;
}

static inline void tactor_term_cb(ds_ctx_t *ctx, int reason)
{
    tactor_t *t = ds_ctx_state(ctx);
    if (t->term != NULL) {
        t->term(ctx, t, reason);
    }
    atomic_store(&t->reason, reason);
    atomic_store(&t->terminated, 1);
}

static const ds_behaviour_t tactor_beh = {
    .name = "test.tactor",
    .init = tactor_init_cb,
    .receive = tactor_receive_cb,
    .terminate = tactor_term_cb,
};

/* A handle hook for the common commands: T_STOP stops with the u64 as reason, T_CRASH fails
 * with it. */
static inline int tactor_basic(ds_ctx_t *ctx, tactor_t *t, ds_msg_t **msgp)
{
    (void)t;
    const ds_msg_t *m = *msgp;
    if (m->type == T_STOP) {
        ds_ctx_stop(ctx, (int)(int64_t)u64_at(m, 0));
    } else if (m->type == T_CRASH) {
        return (int)(int64_t)u64_at(m, 0);
    }
    return 0;
}

/* The reason in the observer's DOWN for id (waits for it). */
static inline int64_t down_of(tactor_t *obs, ds_actor_id_t id)
{
    for (;;) {
        size_t n = tactor_count(obs, DS_MT_DOWN);
        for (size_t i = 0; i < n; i++) {
            rec_ev_t e;
            assert_true(tactor_get(obs, DS_MT_DOWN, i, &e));
            if (ds_id_eq(e.who, id)) {
                return e.reason;
            }
        }
        WAIT_FOR(tactor_count(obs, DS_MT_DOWN) > n);
    }
}

static inline ds_actor_id_t spawn_t(ds_rt_t *rt, tactor_t *t, const ds_spawn_opts_t *o)
{
    ds_actor_id_t id = DS_ID_NIL;
    assert_int_equal(ds_spawn(rt, &tactor_beh, t, o, &id), 0);
    assert_false(ds_id_is_nil(id));
    return id;
}

/* A tactor with tactor_basic as its handle hook. */
static inline tactor_t *tactor_basic_new(void)
{
    tactor_t *t = tactor_new();
    t->handle = tactor_basic;
    return t;
}

/* ---- gated spawns: ds_spawn() runs on a helper thread whose init waits on the gate ---- */

typedef struct gated {
    pthread_t th;
    ds_rt_t *rt;
    tactor_t *t;
    ds_spawn_opts_t opts;
    gate_t gate;
    int rc;
    ds_actor_id_t id;
} gated_t;

static inline void *gated_main(void *arg)
{
    gated_t *g = arg;
    g->rc = ds_spawn(g->rt, &tactor_beh, g->t, &g->opts, &g->id);
    if (g->rc != 0) {
        atomic_store(&g->gate.id, UINT64_MAX); /* tell the waiter */
    }
    return NULL;
}

/* Starts spawning t behind a gate; returns its id once its init waits. */
static inline ds_actor_id_t gated_start(gated_t *g, ds_rt_t *rt, tactor_t *t,
                                        const ds_spawn_opts_t *opts)
{
    memset(g, 0, sizeof(*g));
    g->rt = rt;
    g->t = t;
    if (opts != NULL) {
        g->opts = *opts;
    }
    t->gate = &g->gate;
    assert_int_equal(pthread_create(&g->th, NULL, gated_main, g), 0);
    WAIT_FOR(atomic_load(&g->gate.id) != 0);
    assert_int_not_equal(atomic_load(&g->gate.id), UINT64_MAX);
    return (ds_actor_id_t){atomic_load(&g->gate.id)};
}

/* Opens the gate and waits for the spawn to return; asserts that it succeeded in time. */
static inline void gated_open(gated_t *g)
{
    atomic_store(&g->gate.open, true);
    assert_int_equal(pthread_join(g->th, NULL), 0);
    assert_false(atomic_load(&g->gate.timed_out));
    assert_int_equal(g->rc, 0);
    assert_true(ds_id_eq(g->id, (ds_actor_id_t){atomic_load(&g->gate.id)}));
}

/* Runs only the tests matching $DS_TEST_FILTER (a cmocka pattern such as "test_fifo*"). */
static inline void test_filter_from_env(void)
{
    const char *f = getenv("DS_TEST_FILTER");
    if (f != NULL && f[0] != '\0') {
        cmocka_set_test_filter(f);
    }
}
