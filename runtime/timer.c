/* timer: the runtime's timer service. See runtime/timer.h.
 *
 * Data structure. Timers live in a slab of 32-byte slots, allocated in chunks that never move
 * (no large copies as the slab grows) and recycled through a LIFO free list. The order of
 * firing is a 4-ary min-heap of 16-byte nodes {deadline, seq, slot index}: keeping the deadline
 * in the node lets sifts compare without touching the slab, and four children fit one cache
 * line. Each slot records its node's heap position, so cancel removes any timer in O(log n)
 * (the classic indexed priority queue; a 4-ary heap halves the depth of a binary one, as in
 * libuv's and Go's timer heaps). seq breaks ties between equal deadlines in arming order (it
 * wraps at 2^32, so ties between timers armed 2^31 arms apart may swap; harmless).
 *
 * The timer thread. It holds the lock only to collect up to DS_TIMER_BATCH due timers into a
 * local batch, then delivers the batch without the lock. It sleeps on a CLOCK_MONOTONIC
 * condition variable until the root's deadline; an add signals it only when the new timer
 * becomes the root and is earlier than the deadline the thread sleeps until (wake_at), so most
 * adds cost no wakeup and an idle service sleeps without a timeout.
 *
 * Exact cancel. A one-shot timer leaves the heap and its slot is freed (generation bumped) in the
 * same critical section that puts it in the batch: a later cancel finds a stale id (-ENOENT) and
 * an earlier one removed it from the heap, so it is never delivered. A periodic timer is re-armed
 * when collected and its batch entry names it by id; just before delivering, the thread checks
 * the id under the lock (skipping it if cancelled) and marks the slot busy; a cancel from
 * another thread waits while its slot is busy, so when cancel returns 0 no callback runs.
 * While busy, the stored message is read (cloned) outside the lock: only a cancel frees it, and
 * a cancel waits, unless it runs inside the callback, after the clone was made. */
#include "runtime/timer.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "runtime/clock.h"
#include "runtime/err.h"
#include "runtime/mem.h"

enum {
    DS_TIMER_CHUNK_SHIFT = 12, /* 4096 slots (128 KiB) per slab chunk */
    DS_TIMER_CHUNK = 1 << DS_TIMER_CHUNK_SHIFT,
    DS_TIMER_ARITY = 4,
    DS_TIMER_BATCH = 256, /* firings collected per lock hold */
};

#define DS_TIMER_NONE      UINT32_MAX        /* no slot: free list end, no busy slot */
#define DS_TIMER_POS_FREE  UINT32_MAX        /* slot pos of a free or retired slot */
#define DS_TIMER_SLOTS_MAX (UINT32_MAX - 1u) /* slot indices stay below the sentinels */
#define DS_TIMER_NS        INT64_C(1000000000)

struct timer_slot {
    ds_msg_t *msg;    /* owned; the template of a periodic timer */
    ds_actor_id_t to; /* receiver */
    union {
        int64_t period;     /* armed: 0 for a one-shot timer */
        uint32_t next_free; /* free: next slot of the free list */
    };
    uint32_t gen; /* high half of the timer id; bumped when the slot is freed */
    uint32_t pos; /* heap position while armed, DS_TIMER_POS_FREE otherwise */
};

struct timer_node {
    int64_t deadline;
    uint32_t seq; /* arming order among equal deadlines */
    uint32_t idx; /* slot */
};

/* One collected firing. One-shot: msg is the timer's message, tid 0. Periodic: msg NULL, tid
 * names the timer, re-checked before delivery. */
struct timer_fire {
    ds_msg_t *msg;
    ds_actor_id_t to;
    uint64_t tid;
};

struct ds_timers {
    pthread_mutex_t mu;     /* guards everything below but cb and arg */
    pthread_cond_t wake_cv; /* CLOCK_MONOTONIC: the timer thread sleeps on it */
    pthread_cond_t idle_cv; /* cancels wait on it for a busy periodic delivery */
    ds_timer_deliver_cb_t cb;
    void *arg;
    struct timer_slot **chunks;
    uint32_t nchunks;
    uint32_t chunks_cap;
    uint32_t nslots;    /* slots ever handed out: the slab's high-water mark */
    uint32_t free_head; /* DS_TIMER_NONE when empty */
    struct timer_node *heap;
    size_t heap_n;
    size_t heap_cap;
    uint32_t seq;
    uint32_t busy;    /* slot of the periodic timer being delivered, or DS_TIMER_NONE */
    uint32_t waiters; /* cancels waiting on idle_cv */
    int64_t wake_at;  /* deadline the thread sleeps until; INT64_MIN while it is awake */
    bool stop;
    bool started; /* owner's only */
    pthread_t thread;
};

_Static_assert(sizeof(struct timer_slot) == 32, "a slot is 32 bytes");
_Static_assert(sizeof(struct timer_node) == 16, "a heap node is 16 bytes");

/* The service whose timer thread this is, so a cancel from the callback does not wait on
 * itself. */
static _Thread_local const ds_timers_t *tl_timer_thread;

static uint64_t tid_make(uint32_t idx, uint32_t gen)
{
    return ((uint64_t)gen << 32) | idx;
}

static uint32_t tid_index(uint64_t tid)
{
    return (uint32_t)tid;
}

static uint32_t tid_gen(uint64_t tid)
{
    return (uint32_t)(tid >> 32);
}

static struct timer_slot *slot_at(const ds_timers_t *t, uint32_t idx)
{
    return &t->chunks[idx >> DS_TIMER_CHUNK_SHIFT][idx & (DS_TIMER_CHUNK - 1)];
}

/* The armed slot tid names, or NULL if it is free, reused or out of range. */
static struct timer_slot *slot_find(const ds_timers_t *t, uint32_t idx, uint32_t gen)
{
    if (idx >= t->nslots) {
        return NULL;
    }
    struct timer_slot *s = slot_at(t, idx);
    if (s->pos == DS_TIMER_POS_FREE || s->gen != gen) {
        return NULL;
    }
    return s;
}

static int slot_alloc(ds_timers_t *t, uint32_t *out)
{
    if (t->free_head != DS_TIMER_NONE) {
        uint32_t idx = t->free_head;
        t->free_head = slot_at(t, idx)->next_free;
        *out = idx;
        return 0;
    }
    if (t->nslots >= DS_TIMER_SLOTS_MAX) {
        return -ENOMEM;
    }
    if ((t->nslots & (DS_TIMER_CHUNK - 1)) == 0) {
        if (t->nchunks == t->chunks_cap) {
            t->chunks_cap = t->chunks_cap == 0 ? 16 : t->chunks_cap * 2;
            t->chunks = ds_xrealloc(t->chunks, (size_t)t->chunks_cap * sizeof(struct timer_slot *));
        }
        t->chunks[t->nchunks++] = ds_xmalloc(DS_TIMER_CHUNK * sizeof(struct timer_slot));
    }
    uint32_t idx = t->nslots++;
    struct timer_slot *s = slot_at(t, idx);
    s->gen = 1; /* ids are never 0 */
    s->pos = DS_TIMER_POS_FREE;
    *out = idx;
    return 0;
}

/* Frees a slot that is out of the heap; its message must have been taken. A slot whose
 * generation wraps is retired (never reused), so no id is ever issued twice. */
static void slot_free(ds_timers_t *t, uint32_t idx)
{
    struct timer_slot *s = slot_at(t, idx);
    s->msg = NULL;
    s->pos = DS_TIMER_POS_FREE;
    s->gen++;
    if (s->gen != 0) {
        s->next_free = t->free_head;
        t->free_head = idx;
    }
}

static bool node_before(const struct timer_node *a, const struct timer_node *b)
{
    if (a->deadline != b->deadline) {
        return a->deadline < b->deadline;
    }
    return (int32_t)(a->seq - b->seq) < 0;
}

static void heap_place(ds_timers_t *t, size_t pos, struct timer_node node)
{
    t->heap[pos] = node;
    slot_at(t, node.idx)->pos = (uint32_t)pos;
}

static void heap_sift_up(ds_timers_t *t, size_t pos, struct timer_node node)
{
    while (pos > 0) {
        size_t parent = (pos - 1) / DS_TIMER_ARITY;
        if (!node_before(&node, &t->heap[parent])) {
            break;
        }
        heap_place(t, pos, t->heap[parent]);
        pos = parent;
    }
    heap_place(t, pos, node);
}

static void heap_sift_down(ds_timers_t *t, size_t pos, struct timer_node node)
{
    size_t n = t->heap_n;
    for (;;) {
        size_t first = pos * DS_TIMER_ARITY + 1;
        if (first >= n) {
            break;
        }
        size_t end = first + DS_TIMER_ARITY < n ? first + DS_TIMER_ARITY : n;
        size_t best = first;
        for (size_t c = first + 1; c < end; c++) {
            if (node_before(&t->heap[c], &t->heap[best])) {
                best = c;
            }
        }
        if (!node_before(&t->heap[best], &node)) {
            break;
        }
        heap_place(t, pos, t->heap[best]);
        pos = best;
    }
    heap_place(t, pos, node);
}

static void heap_push(ds_timers_t *t, struct timer_node node)
{
    if (t->heap_n == t->heap_cap) {
        t->heap_cap = t->heap_cap == 0 ? 64 : t->heap_cap * 2;
        t->heap = ds_xrealloc(t->heap, t->heap_cap * sizeof(*t->heap));
    }
    heap_sift_up(t, t->heap_n++, node);
}

/* Removes the node at pos; the caller frees or re-arms its slot. */
static void heap_remove(ds_timers_t *t, size_t pos)
{
    struct timer_node last = t->heap[--t->heap_n];
    if (pos == t->heap_n) {
        return;
    }
    if (pos > 0 && node_before(&last, &t->heap[(pos - 1) / DS_TIMER_ARITY])) {
        heap_sift_up(t, pos, last);
    } else {
        heap_sift_down(t, pos, last);
    }
}

static int64_t add_sat(int64_t a, int64_t b)
{
    int64_t r;
    return __builtin_add_overflow(a, b, &r) ? INT64_MAX : r;
}

/* The deadline after prev on prev's grid (no drift). When the thread is behind by more than a
 * period, the first grid point after now: the missed firings are skipped, not burst. */
static int64_t next_deadline(int64_t prev, int64_t period, int64_t now)
{
    int64_t next = add_sat(prev, period);
    if (next > now) {
        return next;
    }
    int64_t lag;
    int64_t step;
    if (__builtin_sub_overflow(now, prev, &lag) ||
        __builtin_mul_overflow(lag / period + 1, period, &step) ||
        __builtin_add_overflow(prev, step, &next)) {
        return add_sat(now, period);
    }
    return next;
}

/* Moves up to DS_TIMER_BATCH due timers into batch; the lock is held. */
static size_t collect(ds_timers_t *t, int64_t now, struct timer_fire *batch)
{
    size_t n = 0;
    while (n < DS_TIMER_BATCH && t->heap_n > 0 && t->heap[0].deadline <= now) {
        struct timer_node root = t->heap[0];
        struct timer_slot *s = slot_at(t, root.idx);
        struct timer_fire *f = &batch[n++];
        f->to = s->to;
        if (s->period == 0) {
            f->msg = s->msg;
            f->tid = 0;
            heap_remove(t, 0);
            slot_free(t, root.idx);
        } else {
            f->msg = NULL;
            f->tid = tid_make(root.idx, s->gen);
            root.deadline = next_deadline(root.deadline, s->period, now);
            root.seq = t->seq++;
            heap_sift_down(t, 0, root);
        }
    }
    return n;
}

static void deliver_once(ds_timers_t *t, struct timer_fire *f)
{
    int rc = t->cb(t->arg, f->to, &f->msg);
    if (rc == 0) {
        assert(f->msg == NULL && "the callback takes the message when it returns 0");
        f->msg = NULL;
    } else {
        ds_msg_free(&f->msg); /* dropped firing */
    }
}

static void deliver_periodic(ds_timers_t *t, const struct timer_fire *f)
{
    uint32_t idx = tid_index(f->tid);
    uint32_t gen = tid_gen(f->tid);
    pthread_mutex_lock(&t->mu);
    struct timer_slot *s = slot_find(t, idx, gen);
    if (s == NULL) { /* cancelled since it was collected */
        pthread_mutex_unlock(&t->mu);
        return;
    }
    t->busy = idx;
    const ds_msg_t *tmpl = s->msg;
    ds_actor_id_t to = s->to;
    pthread_mutex_unlock(&t->mu);

    ds_msg_t *copy = NULL;
    int rc = ds_msg_clone(tmpl, &copy);
    if (rc == 0) {
        rc = t->cb(t->arg, to, &copy);
        assert((rc != 0 || copy == NULL) && "the callback takes the message when it returns 0");
        if (rc != 0) {
            ds_msg_free(&copy);
        }
    }

    ds_msg_t *drop = NULL;
    pthread_mutex_lock(&t->mu);
    t->busy = DS_TIMER_NONE;
    s = slot_find(t, idx, gen);
    if (rc == DS_ENOACTOR && s != NULL) { /* receiver gone: the timer ends */
        heap_remove(t, s->pos);
        drop = s->msg;
        slot_free(t, idx);
    }
    if (t->waiters > 0) {
        pthread_cond_broadcast(&t->idle_cv);
    }
    pthread_mutex_unlock(&t->mu);
    ds_msg_free(&drop);
}

/* Sleeps until the root's deadline, a new earlier root or stop; the lock is held. */
static void timer_sleep(ds_timers_t *t)
{
    int64_t until = t->heap_n > 0 ? t->heap[0].deadline : INT64_MAX;
    t->wake_at = until;
    if (until == INT64_MAX) {
        pthread_cond_wait(&t->wake_cv, &t->mu);
    } else {
        struct timespec ts = {.tv_sec = (time_t)(until / DS_TIMER_NS),
                              .tv_nsec = (long)(until % DS_TIMER_NS)};
        pthread_cond_timedwait(&t->wake_cv, &t->mu, &ts);
    }
    t->wake_at = INT64_MIN;
}

static void *timer_main(void *arg)
{
    ds_timers_t *t = arg;
    struct timer_fire batch[DS_TIMER_BATCH];
    tl_timer_thread = t;
    pthread_mutex_lock(&t->mu);
    while (!t->stop) {
        size_t n = collect(t, ds_clock_now(), batch);
        if (n == 0) {
            timer_sleep(t);
            continue;
        }
        pthread_mutex_unlock(&t->mu);
        for (size_t i = 0; i < n; i++) {
            if (batch[i].tid == 0) {
                deliver_once(t, &batch[i]);
            } else {
                deliver_periodic(t, &batch[i]);
            }
        }
        pthread_mutex_lock(&t->mu);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

int ds_timers_new(ds_timer_deliver_cb_t cb, void *arg, ds_timers_t **out)
{
    if (cb == NULL || out == NULL) {
        return -EINVAL;
    }
    ds_timers_t *t = ds_xcalloc(1, sizeof(*t));
    pthread_condattr_t ca;
    int rc = pthread_condattr_init(&ca);
    if (rc != 0) {
        free(t);
        return -rc;
    }
    rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (rc == 0) {
        rc = pthread_cond_init(&t->wake_cv, &ca);
    }
    pthread_condattr_destroy(&ca);
    if (rc != 0) {
        free(t);
        return -rc;
    }
    rc = pthread_cond_init(&t->idle_cv, NULL);
    if (rc != 0) {
        pthread_cond_destroy(&t->wake_cv);
        free(t);
        return -rc;
    }
    rc = pthread_mutex_init(&t->mu, NULL);
    if (rc != 0) {
        pthread_cond_destroy(&t->idle_cv);
        pthread_cond_destroy(&t->wake_cv);
        free(t);
        return -rc;
    }
    t->cb = cb;
    t->arg = arg;
    t->free_head = DS_TIMER_NONE;
    t->busy = DS_TIMER_NONE;
    t->wake_at = INT64_MIN; /* not sleeping yet: the thread looks at the heap when it starts */
    *out = t;
    return 0;
}

int ds_timers_start(ds_timers_t *t)
{
    if (t == NULL || t->started) {
        return -EINVAL;
    }
    /* The timer thread takes no signals: they belong to the threads that wait for them. */
    sigset_t all;
    sigset_t old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&t->thread, NULL, timer_main, t);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        return -rc;
    }
    t->started = true;
    return 0;
}

void ds_timers_free(ds_timers_t **tp)
{
    if (tp == NULL || *tp == NULL) {
        return;
    }
    ds_timers_t *t = *tp;
    *tp = NULL;
    if (t->started) {
        pthread_mutex_lock(&t->mu);
        t->stop = true;
        pthread_cond_signal(&t->wake_cv);
        pthread_mutex_unlock(&t->mu);
        pthread_join(t->thread, NULL);
    }
    for (size_t i = 0; i < t->heap_n; i++) {
        ds_msg_free(&slot_at(t, t->heap[i].idx)->msg);
    }
    for (uint32_t i = 0; i < t->nchunks; i++) {
        free(t->chunks[i]);
    }
    free(t->chunks);
    free(t->heap);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->idle_cv);
    pthread_cond_destroy(&t->wake_cv);
    free(t);
}

int ds_timers_add(ds_timers_t *t, ds_actor_id_t to, int64_t deadline, int64_t period_ns,
                  ds_msg_t **msgp, uint64_t *tid)
{
    if (t == NULL || msgp == NULL || *msgp == NULL || period_ns < 0) {
        return -EINVAL;
    }
    uint32_t idx;
    pthread_mutex_lock(&t->mu);
    int rc = slot_alloc(t, &idx);
    if (rc < 0) {
        pthread_mutex_unlock(&t->mu);
        return rc;
    }
    struct timer_slot *s = slot_at(t, idx);
    s->msg = *msgp;
    s->to = to;
    s->period = period_ns;
    heap_push(t, (struct timer_node){.deadline = deadline, .seq = t->seq++, .idx = idx});
    /* Wake the thread only for a new root earlier than what it sleeps until. */
    bool wake = s->pos == 0 && deadline < t->wake_at;
    if (wake) {
        t->wake_at = deadline;
    }
    uint64_t id = tid_make(idx, s->gen);
    pthread_mutex_unlock(&t->mu);
    if (wake) {
        pthread_cond_signal(&t->wake_cv);
    }
    *msgp = NULL;
    if (tid != NULL) {
        *tid = id;
    }
    return 0;
}

int ds_timers_cancel(ds_timers_t *t, uint64_t tid)
{
    uint32_t idx = tid_index(tid);
    uint32_t gen = tid_gen(tid);
    ds_msg_t *drop = NULL;
    int rc = -ENOENT;
    pthread_mutex_lock(&t->mu);
    struct timer_slot *s = slot_find(t, idx, gen);
    /* A delivery of this periodic timer is in flight: wait for its callback to return, unless
     * this is that callback. */
    while (s != NULL && t->busy == idx && tl_timer_thread != t) {
        t->waiters++;
        pthread_cond_wait(&t->idle_cv, &t->mu);
        t->waiters--;
        s = slot_find(t, idx, gen);
    }
    if (s != NULL) {
        heap_remove(t, s->pos);
        drop = s->msg;
        slot_free(t, idx);
        rc = 0;
    }
    pthread_mutex_unlock(&t->mu);
    ds_msg_free(&drop);
    return rc;
}

size_t ds_timers_pending(ds_timers_t *t)
{
    pthread_mutex_lock(&t->mu);
    size_t n = t->heap_n;
    pthread_mutex_unlock(&t->mu);
    return n;
}
