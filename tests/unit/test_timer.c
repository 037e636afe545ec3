/* test_timer: the timer service (runtime/timer.h). Deliveries go to a test-local callback that
 * records them under a mutex; waits are bounded only to catch a hang, never to time anything. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "runtime/clock.h"
#include "runtime/err.h"
#include "runtime/id.h"
#include "runtime/msg.h"
#include "runtime/timer.h"

enum {
    T_ONESHOT = DS_MSG_USER_BASE + 1,
    T_PERIODIC = DS_MSG_USER_BASE + 2,
    T_SENTINEL = DS_MSG_USER_BASE + 3,
    T_FAILING = DS_MSG_USER_BASE + 4,
};

#define MS           INT64_C(1000000)
#define SEC          INT64_C(1000000000)
#define HANG_NS      (120 * SEC) /* a wait this long means a hang, not a slow machine */
#define SENTINEL_KEY UINT64_MAX
#define TO           ds_id_make(1, 1, 42)

/* What the callback saw. Keys are the 8-byte payloads of the messages. */
struct rec {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC */
    size_t calls;      /* callback calls, refused ones included */
    size_t n;          /* deliveries taken */
    size_t by_type[8]; /* deliveries taken, by type - DS_MSG_USER_BASE */
    uint64_t *order;   /* keys in delivery order, up to order_cap */
    size_t norder;
    size_t order_cap;
    uint8_t *hits;      /* per key < nkeys: deliveries (saturating) */
    uint8_t *cancelled; /* per key: a cancel of its timer returned 0 */
    size_t nkeys;
    size_t violations; /* deliveries of a key whose cancel had returned 0 */
    ds_actor_id_t last_to;
    uint32_t fail_type; /* messages of this type get fail_rc, fail_times times (-1: always) */
    int fail_rc;
    int fail_times;
};

static void rec_init(struct rec *r, size_t nkeys, size_t order_cap)
{
    memset(r, 0, sizeof(*r));
    pthread_condattr_t ca;
    assert_int_equal(pthread_condattr_init(&ca), 0);
    assert_int_equal(pthread_condattr_setclock(&ca, CLOCK_MONOTONIC), 0);
    assert_int_equal(pthread_cond_init(&r->cv, &ca), 0);
    pthread_condattr_destroy(&ca);
    assert_int_equal(pthread_mutex_init(&r->mu, NULL), 0);
    r->nkeys = nkeys;
    r->hits = calloc(nkeys + 1, 1);
    r->cancelled = calloc(nkeys + 1, 1);
    r->order_cap = order_cap;
    r->order = calloc(order_cap + 1, sizeof(uint64_t));
    assert_non_null(r->hits);
    assert_non_null(r->cancelled);
    assert_non_null(r->order);
}

static void rec_fini(struct rec *r)
{
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r->hits);
    free(r->cancelled);
    free(r->order);
}

static uint64_t msg_key(const ds_msg_t *m)
{
    uint64_t key = 0;
    if (m->len == sizeof(key)) {
        memcpy(&key, m->data, sizeof(key));
    }
    return key;
}

static int rec_deliver(void *arg, ds_actor_id_t to, ds_msg_t **msgp)
{
    struct rec *r = arg;
    const ds_msg_t *m = *msgp;
    uint64_t key = msg_key(m);
    pthread_mutex_lock(&r->mu);
    r->calls++;
    r->last_to = to;
    if (m->type == r->fail_type && r->fail_times != 0) {
        if (r->fail_times > 0) {
            r->fail_times--;
        }
        int rc = r->fail_rc;
        pthread_cond_broadcast(&r->cv);
        pthread_mutex_unlock(&r->mu);
        return rc; /* not taken: the service frees it */
    }
    if (key < r->nkeys) {
        r->violations += r->cancelled[key];
        if (r->hits[key] < UINT8_MAX) {
            r->hits[key]++;
        }
    }
    if (r->norder < r->order_cap) {
        r->order[r->norder++] = key;
    }
    r->n++;
    if (m->type >= DS_MSG_USER_BASE && m->type < DS_MSG_USER_BASE + 8) {
        r->by_type[m->type - DS_MSG_USER_BASE]++;
    }
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    ds_msg_free(msgp);
    return 0;
}

/* Waits until the count of deliveries of type (0: all) reaches want; false on a hang. */
static bool rec_wait(struct rec *r, uint32_t type, size_t want)
{
    int64_t until = ds_clock_now() + HANG_NS;
    struct timespec ts = {.tv_sec = (time_t)(until / SEC), .tv_nsec = (long)(until % SEC)};
    pthread_mutex_lock(&r->mu);
    bool ok = true;
    for (;;) {
        size_t have = type == 0 ? r->n : r->by_type[type - DS_MSG_USER_BASE];
        if (have >= want) {
            break;
        }
        if (pthread_cond_timedwait(&r->cv, &r->mu, &ts) == ETIMEDOUT) {
            ok = false;
            break;
        }
    }
    pthread_mutex_unlock(&r->mu);
    return ok;
}

static size_t rec_count(struct rec *r, uint32_t type)
{
    pthread_mutex_lock(&r->mu);
    size_t n = type == 0 ? r->n : r->by_type[type - DS_MSG_USER_BASE];
    pthread_mutex_unlock(&r->mu);
    return n;
}

static void rec_mark_cancelled(struct rec *r, uint64_t key)
{
    pthread_mutex_lock(&r->mu);
    r->cancelled[key] = 1;
    pthread_mutex_unlock(&r->mu);
}

static ds_msg_t *key_msg(uint32_t type, uint64_t key)
{
    ds_msg_t *m = NULL;
    assert_int_equal(ds_msg_new(type, &key, sizeof(key), &m), 0);
    return m;
}

static uint64_t add_timer(ds_timers_t *t, uint32_t type, uint64_t key, int64_t deadline,
                          int64_t period)
{
    ds_msg_t *m = key_msg(type, key);
    uint64_t tid = 0;
    assert_int_equal(ds_timers_add(t, TO, deadline, period, &m, &tid), 0);
    assert_null(m);
    assert_int_not_equal(tid, 0);
    return tid;
}

/* Adds a one-shot sentinel at deadline and waits for it: every timer due before it has been
 * delivered by then, because firings go in deadline order. */
static void pass_sentinel(ds_timers_t *t, struct rec *r, int64_t deadline)
{
    size_t before = rec_count(r, T_SENTINEL);
    add_timer(t, T_SENTINEL, SENTINEL_KEY, deadline, 0);
    assert_true(rec_wait(r, T_SENTINEL, before + 1));
}

static ds_timers_t *timers_started(struct rec *r)
{
    ds_timers_t *t = NULL;
    assert_int_equal(ds_timers_new(rec_deliver, r, &t), 0);
    assert_int_equal(ds_timers_start(t), 0);
    return t;
}

static void test_oneshot_fires_once(void **state)
{
    (void)state;
    struct rec r;
    rec_init(&r, 16, 16);
    ds_timers_t *t = timers_started(&r);
    ds_msg_t *m = NULL;
    assert_int_equal(ds_msg_new(T_ONESHOT, "hello", 5, &m), 0);
    uint64_t tid = 0;
    assert_int_equal(ds_timers_add(t, TO, ds_clock_now() + 5 * MS, 0, &m, &tid), 0);
    assert_null(m);
    assert_int_not_equal(tid, 0);
    assert_true(rec_wait(&r, T_ONESHOT, 1));
    pass_sentinel(t, &r, ds_clock_now() + 20 * MS);
    assert_int_equal(rec_count(&r, T_ONESHOT), 1);
    assert_true(ds_id_eq(r.last_to, TO));
    assert_int_equal(ds_timers_pending(t), 0);
    assert_int_equal(ds_timers_cancel(t, tid), -ENOENT); /* cancel after fire */
    ds_timers_free(&t);
    assert_null(t);
    rec_fini(&r);
}

/* The message delivered is the one armed (checked inside a dedicated callback). */
static int check_hello(void *arg, ds_actor_id_t to, ds_msg_t **msgp)
{
    struct rec *r = arg;
    const ds_msg_t *m = *msgp;
    bool ok =
        m->type == T_ONESHOT && m->len == 5 && memcmp(m->data, "hello", 5) == 0 && ds_id_eq(to, TO);
    pthread_mutex_lock(&r->mu);
    r->violations += !ok;
    r->n++;
    r->by_type[T_ONESHOT - DS_MSG_USER_BASE]++;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    ds_msg_free(msgp);
    return 0;
}

static void test_oneshot_message_intact(void **state)
{
    (void)state;
    struct rec r;
    rec_init(&r, 1, 1);
    ds_timers_t *t = NULL;
    assert_int_equal(ds_timers_new(check_hello, &r, &t), 0);
    assert_int_equal(ds_timers_start(t), 0);
    ds_msg_t *m = NULL;
    assert_int_equal(ds_msg_new(T_ONESHOT, "hello", 5, &m), 0);
    assert_int_equal(ds_timers_add(t, TO, 0, 0, &m, NULL), 0); /* past deadline: at once */
    assert_true(rec_wait(&r, T_ONESHOT, 1));
    assert_int_equal(r.violations, 0);
    ds_timers_free(&t);
    rec_fini(&r);
}

static void test_periodic_repeats_until_cancel(void **state)
{
    (void)state;
    struct rec r;
    rec_init(&r, 16, 4096);
    ds_timers_t *t = timers_started(&r);
    uint64_t tid = add_timer(t, T_PERIODIC, 1, ds_clock_now() + 2 * MS, 2 * MS);
    assert_true(rec_wait(&r, T_PERIODIC, 5));
    assert_int_equal(ds_timers_pending(t), 1);
    assert_int_equal(ds_timers_cancel(t, tid), 0);
    rec_mark_cancelled(&r, 1);
    size_t seen = rec_count(&r, T_PERIODIC);
    pass_sentinel(t, &r, ds_clock_now() + 20 * MS); /* ten periods later */
    assert_int_equal(rec_count(&r, T_PERIODIC), seen);
    assert_int_equal(r.violations, 0);
    assert_int_equal(ds_timers_pending(t), 0);
    assert_int_equal(ds_timers_cancel(t, tid), -ENOENT);
    ds_timers_free(&t);
    rec_fini(&r);
}

static void test_cancel_before_fire(void **state)
{
    (void)state;
    struct rec r;
    rec_init(&r, 16, 16);
    ds_timers_t *t = timers_started(&r);
    int64_t now = ds_clock_now();
    uint64_t tid = add_timer(t, T_ONESHOT, 1, now + 10 * MS, 0);
    assert_int_equal(ds_timers_pending(t), 1);
    assert_int_equal(ds_timers_cancel(t, tid), 0);
    assert_int_equal(ds_timers_pending(t), 0);
    assert_int_equal(ds_timers_cancel(t, tid), -ENOENT); /* twice */
    pass_sentinel(t, &r, now + 30 * MS);
    assert_int_equal(rec_count(&r, T_ONESHOT), 0);
    ds_timers_free(&t);
    rec_fini(&r);
}

static void test_stale_id_after_reuse(void **state)
{
    (void)state;
    struct rec r;
    rec_init(&r, 16, 16);
    ds_timers_t *t = NULL; /* not started: nothing fires */
    assert_int_equal(ds_timers_new(rec_deliver, &r, &t), 0);
    uint64_t a = add_timer(t, T_ONESHOT, 1, ds_clock_now(), 0);
    assert_int_equal(ds_timers_cancel(t, a), 0);
    uint64_t b = add_timer(t, T_ONESHOT, 2, ds_clock_now(), 0);
    assert_int_equal((uint32_t)a, (uint32_t)b); /* the slot was reused... */
    assert_int_not_equal(a, b);                 /* ...under a new generation */
    assert_int_equal(ds_timers_cancel(t, a), -ENOENT);
    assert_int_equal(ds_timers_pending(t), 1);
    assert_int_equal(ds_timers_cancel(t, 0), -ENOENT);
    assert_int_equal(ds_timers_cancel(t, b + 1), -ENOENT);
    assert_int_equal(ds_timers_cancel(t, UINT64_MAX), -ENOENT);
    assert_int_equal(ds_timers_cancel(t, b), 0);
    assert_int_equal(ds_timers_pending(t), 0);
    ds_timers_free(&t);
    rec_fini(&r);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    struct rec r;
    rec_init(&r, 1, 1);
    ds_timers_t *t = NULL;
    assert_int_equal(ds_timers_new(NULL, &r, &t), -EINVAL);
    assert_null(t);
    assert_int_equal(ds_timers_new(rec_deliver, &r, &t), 0);
    ds_msg_t *m = key_msg(T_ONESHOT, 1);
    uint64_t tid = 7;
    assert_int_equal(ds_timers_add(t, TO, 0, -1, &m, &tid), -EINVAL);
    assert_non_null(m); /* still ours */
    assert_int_equal(tid, 7);
    ds_msg_t *none = NULL;
    assert_int_equal(ds_timers_add(t, TO, 0, 0, &none, &tid), -EINVAL);
    assert_int_equal(ds_timers_add(t, TO, 0, 0, NULL, &tid), -EINVAL);
    ds_msg_free(&m);
    assert_int_equal(ds_timers_start(t), 0);
    assert_int_equal(ds_timers_start(t), -EINVAL);
    ds_timers_free(&t);
    ds_timers_free(&t); /* NULL is fine */
    ds_timers_free(NULL);
    rec_fini(&r);
}

/* Deadlines in a scrambled order with ties fire sorted by deadline, ties in arming order. */
static void test_ordering(void **state)
{
    (void)state;
    enum {
        N = 5000
    };
    struct rec r;
    rec_init(&r, N, N);
    ds_timers_t *t = NULL;
    assert_int_equal(ds_timers_new(rec_deliver, &r, &t), 0);
    int64_t base = ds_clock_now() + 20 * MS;
    static int64_t deadline[N];
    for (uint64_t i = 0; i < N; i++) {
        /* 997 buckets visited in a scrambled order, about five timers in each */
        deadline[i] = base + (int64_t)((i * 7919) % 997) * 10000;
        add_timer(t, T_ONESHOT, i, deadline[i], 0);
    }
    assert_int_equal(ds_timers_pending(t), N);
    assert_int_equal(ds_timers_start(t), 0); /* all armed before any can fire */
    assert_true(rec_wait(&r, T_ONESHOT, N));
    assert_int_equal(r.norder, N);
    for (size_t i = 1; i < N; i++) {
        uint64_t prev = r.order[i - 1];
        uint64_t cur = r.order[i];
        assert_true(deadline[prev] < deadline[cur] ||
                    (deadline[prev] == deadline[cur] && prev < cur));
    }
    for (size_t k = 0; k < N; k++) {
        assert_int_equal(r.hits[k], 1);
    }
    ds_timers_free(&t);
    rec_fini(&r);
}

static void test_enoactor_stops_periodic(void **state)
{
    (void)state;
    struct rec r;
    rec_init(&r, 16, 16);
    r.fail_type = T_FAILING;
    r.fail_rc = DS_ENOACTOR;
    r.fail_times = -1;
    ds_timers_t *t = timers_started(&r);
    uint64_t tid = add_timer(t, T_FAILING, 1, ds_clock_now(), 1 * MS);
    pass_sentinel(t, &r, ds_clock_now() + 20 * MS);
    pthread_mutex_lock(&r.mu);
    size_t calls = r.calls;
    pthread_mutex_unlock(&r.mu);
    assert_int_equal(calls, 2); /* one refused firing, then the sentinel */
    assert_int_equal(ds_timers_pending(t), 0);
    assert_int_equal(ds_timers_cancel(t, tid), -ENOENT);
    ds_timers_free(&t);
    rec_fini(&r);
}

static void test_full_drops_one_firing(void **state)
{
    (void)state;
    struct rec r;
    rec_init(&r, 16, 64);
    r.fail_type = T_PERIODIC;
    r.fail_rc = DS_EFULL;
    r.fail_times = 3;
    ds_timers_t *t = timers_started(&r);
    uint64_t tid = add_timer(t, T_PERIODIC, 1, ds_clock_now(), 1 * MS);
    assert_true(rec_wait(&r, T_PERIODIC, 2)); /* three refused, then it keeps going */
    assert_int_equal(ds_timers_cancel(t, tid), 0);
    pthread_mutex_lock(&r.mu);
    assert_int_equal(r.fail_times, 0);
    pthread_mutex_unlock(&r.mu);
    /* A refused one-shot is dropped and its message freed (the leak checker watches). */
    pthread_mutex_lock(&r.mu);
    r.fail_type = T_ONESHOT;
    r.fail_times = 1;
    pthread_mutex_unlock(&r.mu);
    add_timer(t, T_ONESHOT, 2, ds_clock_now(), 0);
    pass_sentinel(t, &r, ds_clock_now() + 5 * MS);
    assert_int_equal(rec_count(&r, T_ONESHOT), 0);
    ds_timers_free(&t);
    rec_fini(&r);
}

/* A timer ten and a half periods late fires once, then keeps to its grid: no burst. */
static void test_periodic_skips_missed(void **state)
{
    (void)state;
    struct rec r;
    rec_init(&r, 16, 64);
    ds_timers_t *t = timers_started(&r);
    int64_t period = 2 * SEC;
    int64_t now = ds_clock_now();
    uint64_t tid = add_timer(t, T_PERIODIC, 1, now - 10 * period - period / 2, period);
    assert_true(rec_wait(&r, T_PERIODIC, 1));
    /* The next grid point is now + period/2; a burst would have delivered ten at once. */
    pass_sentinel(t, &r, now + 50 * MS);
    assert_int_equal(rec_count(&r, T_PERIODIC), 1);
    assert_int_equal(ds_timers_cancel(t, tid), 0);
    ds_timers_free(&t);
    rec_fini(&r);
}

/* Freeing a running service with pending one-shot and periodic timers joins and frees all. */
static void test_free_with_pending(void **state)
{
    (void)state;
    struct rec r;
    rec_init(&r, 1024, 1);
    ds_timers_t *t = timers_started(&r);
    int64_t now = ds_clock_now();
    for (uint64_t i = 0; i < 1000; i++) {
        add_timer(t, i % 10 == 0 ? T_PERIODIC : T_ONESHOT, i, now + 60 * SEC + (int64_t)i,
                  i % 10 == 0 ? SEC : 0);
    }
    add_timer(t, T_PERIODIC, 1000, now, 1 * MS); /* busy while we free */
    assert_true(rec_wait(&r, T_PERIODIC, 3));
    ds_timers_free(&t);
    assert_null(t);
    rec_fini(&r);
}

/* A million pending timers: add, cancel half while they start firing, deliver the rest. */
static void test_million(void **state)
{
    (void)state;
    enum {
        N = 1000000
    };
    struct rec r;
    rec_init(&r, N, 0);
    ds_timers_t *t = NULL;
    assert_int_equal(ds_timers_new(rec_deliver, &r, &t), 0);
    uint64_t *tids = malloc(N * sizeof(uint64_t));
    assert_non_null(tids);
    int64_t base = ds_clock_now() + 1 * SEC;
    for (uint64_t i = 0; i < N; i++) {
        /* spread over three seconds, in a scrambled order */
        int64_t off = (int64_t)((i * 2654435761u) % N) * 3000;
        tids[i] = add_timer(t, T_ONESHOT, i, base + off, 0);
    }
    assert_int_equal(ds_timers_pending(t), N);
    assert_int_equal(ds_timers_start(t), 0);
    size_t cancelled = 0;
    for (uint64_t i = 0; i < N; i += 2) {
        int rc = ds_timers_cancel(t, tids[i]);
        assert_true(rc == 0 || rc == -ENOENT); /* -ENOENT: it fired first */
        if (rc == 0) {
            rec_mark_cancelled(&r, i);
            cancelled++;
        }
    }
    assert_true(rec_wait(&r, T_ONESHOT, N - cancelled));
    assert_int_equal(ds_timers_pending(t), 0);
    ds_timers_free(&t); /* joins: no delivery can be in flight past this */
    assert_int_equal(r.n, N - cancelled);
    assert_int_equal(r.violations, 0);
    for (size_t i = 0; i < N; i++) {
        if (r.cancelled[i]) {
            assert_int_equal(r.hits[i], 0);
        } else {
            assert_int_equal(r.hits[i], 1);
        }
    }
    free(tids);
    rec_fini(&r);
}

enum {
    CONC_THREADS = 4,
    CONC_ITERS = 20000,
    CONC_LAG = 8,
    CONC_KEYS = CONC_THREADS * CONC_ITERS,
};

struct conc_arg {
    ds_timers_t *t;
    struct rec *r;
    uint64_t base;   /* first key of this thread */
    uint64_t seed;   /* xorshift state */
    size_t oneshots; /* one-shot timers armed */
    size_t cancels;  /* one-shot cancels that returned 0 */
};

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void conc_cancel(struct conc_arg *a, uint64_t tid, uint64_t key, bool periodic)
{
    int rc = ds_timers_cancel(a->t, tid);
    if (periodic) {
        assert_int_equal(rc, 0); /* a periodic timer is pending until cancelled */
    } else {
        assert_true(rc == 0 || rc == -ENOENT);
    }
    if (rc == 0) {
        rec_mark_cancelled(a->r, key);
        a->cancels += !periodic;
    }
}

/* Arms one-shot timers due within 2 ms and cancels a third at once, a third a few arms later;
 * every 64th timer is periodic (250 us) and is cancelled a few arms later. */
static void *conc_worker(void *p)
{
    struct conc_arg *a = p;
    uint64_t lag_tid[CONC_LAG] = {0};
    uint64_t lag_key[CONC_LAG] = {0};
    bool lag_periodic[CONC_LAG] = {false};
    for (uint64_t i = 0; i < CONC_ITERS; i++) {
        uint64_t key = a->base + i;
        bool periodic = i % 64 == 0;
        int64_t deadline = ds_clock_now() + (int64_t)(xorshift(&a->seed) % (2 * MS));
        uint64_t tid = add_timer(a->t, periodic ? T_PERIODIC : T_ONESHOT, key, deadline,
                                 periodic ? 250000 : 0);
        a->oneshots += !periodic;
        if (!periodic && i % 3 == 0) {
            conc_cancel(a, tid, key, false);
            continue;
        }
        size_t slot = i % CONC_LAG;
        if (lag_tid[slot] != 0) {
            conc_cancel(a, lag_tid[slot], lag_key[slot], lag_periodic[slot]);
            lag_tid[slot] = 0;
        }
        if (periodic || i % 3 == 1) {
            lag_tid[slot] = tid;
            lag_key[slot] = key;
            lag_periodic[slot] = periodic;
        }
    }
    for (size_t s = 0; s < CONC_LAG; s++) {
        if (lag_tid[s] != 0) {
            conc_cancel(a, lag_tid[s], lag_key[s], lag_periodic[s]);
        }
    }
    return NULL;
}

static void test_concurrent_add_cancel(void **state)
{
    (void)state;
    struct rec r;
    rec_init(&r, CONC_KEYS, 0);
    ds_timers_t *t = timers_started(&r);
    pthread_t th[CONC_THREADS];
    struct conc_arg args[CONC_THREADS];
    for (size_t i = 0; i < CONC_THREADS; i++) {
        args[i] = (struct conc_arg){
            .t = t, .r = &r, .base = i * CONC_ITERS, .seed = 0x9e3779b97f4a7c15u + i};
        assert_int_equal(pthread_create(&th[i], NULL, conc_worker, &args[i]), 0);
    }
    size_t want = 0;
    for (size_t i = 0; i < CONC_THREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        want += args[i].oneshots - args[i].cancels;
    }
    assert_true(rec_wait(&r, T_ONESHOT, want));
    pass_sentinel(t, &r, ds_clock_now() + 5 * MS); /* after the last one-shot deadline */
    assert_int_equal(ds_timers_pending(t), 0);
    ds_timers_free(&t);
    assert_int_equal(rec_count(&r, T_ONESHOT), want);
    assert_int_equal(r.violations, 0);
    for (size_t k = 0; k < CONC_KEYS; k++) {
        if (k % CONC_ITERS % 64 != 0) { /* one-shot */
            assert_int_equal(r.hits[k], r.cancelled[k] ? 0 : 1);
        }
    }
    rec_fini(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_oneshot_fires_once),
        cmocka_unit_test(test_oneshot_message_intact),
        cmocka_unit_test(test_periodic_repeats_until_cancel),
        cmocka_unit_test(test_cancel_before_fire),
        cmocka_unit_test(test_stale_id_after_reuse),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_ordering),
        cmocka_unit_test(test_enoactor_stops_periodic),
        cmocka_unit_test(test_full_drops_one_firing),
        cmocka_unit_test(test_periodic_skips_missed),
        cmocka_unit_test(test_free_with_pending),
        cmocka_unit_test(test_million),
        cmocka_unit_test(test_concurrent_add_cancel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
