/* sched: the worker threads and the weighted fair scheduler.
 *
 * Idea. Each worker owns the actors that run on it and keeps, per group, a FIFO of those that
 * are runnable, plus a min-heap of the groups with runnable actors keyed by the group's virtual
 * time on that worker (start-time fair queueing, as Seastar's scheduling groups do per shard).
 * After every turn the worker charges the turn's real duration, read from the cheap tick clock,
 * to the group's virtual time scaled by 1/weight, and picks the group with the smallest virtual
 * time next. A group that becomes runnable again starts at the worker's virtual clock, less one
 * quantum of credit, so it can neither bank time while idle nor wait behind a busy group for
 * longer than one turn of it.
 *
 * Locality. An actor woken by a send from a worker is queued on that same worker: actors that
 * talk to each other stay on one core, where a hand-off costs a few cache hits instead of a
 * cross-core transfer (~300 ns on these vCPUs). Work moves only when a worker runs dry: the
 * idle worker advertises itself, and a busy worker with two or more runnable actors hands it
 * about half of them (work sharing by the busy side, so no thief ever touches another worker's
 * private queues). Sends from outside the workers go to the actor's home worker's inbox, an MPSC
 * queue, with a futex wake when that worker sleeps.
 *
 * Idle. A worker with nothing to do spins briefly on its inbox, then parks on a futex; an idle
 * node has every worker parked. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "runtime/clock.h"
#include "runtime/mem.h"
#include "runtime/rt_int.h"

enum {
    SPIN_ROUNDS = 2000,   /* inbox polls before parking: ~20-50 us */
    RECLAIM_EVERY = 256,  /* turns between attempts to reuse dead slots */
    BALANCE_EVERY = 1024, /* turns between load comparisons with the other workers */
};

static void futex_wait(_Atomic uint32_t *addr, uint32_t val)
{
    (void)syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void futex_wake(_Atomic uint32_t *addr)
{
    (void)syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* ---- the per-worker heap of groups, by virtual time (wrap-safe comparison) ---- */

static inline bool vt_less(uint64_t a, uint64_t b)
{
    return (int64_t)(a - b) < 0;
}

static void heap_set(ds__worker_t *w, uint32_t i, ds__wgroup_t *wg)
{
    w->heap[i] = wg;
    wg->heap_pos = i + 1;
}

static void heap_up(ds__worker_t *w, uint32_t i)
{
    ds__wgroup_t *x = w->heap[i];
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (!vt_less(x->vt, w->heap[p]->vt)) {
            break;
        }
        heap_set(w, i, w->heap[p]);
        i = p;
    }
    heap_set(w, i, x);
}

static void heap_down(ds__worker_t *w, uint32_t i)
{
    ds__wgroup_t *x = w->heap[i];
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= w->nheap) {
            break;
        }
        if (c + 1 < w->nheap && vt_less(w->heap[c + 1]->vt, w->heap[c]->vt)) {
            c++;
        }
        if (!vt_less(w->heap[c]->vt, x->vt)) {
            break;
        }
        heap_set(w, i, w->heap[c]);
        i = c;
    }
    heap_set(w, i, x);
}

static void load_add(ds__worker_t *w, int64_t delta)
{
    w->load_local = (uint32_t)((int64_t)w->load_local + delta);
    atomic_store_explicit(&w->load, w->load_local, memory_order_relaxed);
}

static void heap_remove(ds__worker_t *w, ds__wgroup_t *wg)
{
    uint32_t i = wg->heap_pos - 1;
    wg->heap_pos = 0;
    load_add(w, -(int64_t)wg->wload);
    ds__wgroup_t *last = w->heap[--w->nheap];
    if (i == w->nheap) {
        return;
    }
    heap_set(w, i, last);
    heap_down(w, i);
    heap_up(w, last->heap_pos - 1);
}

static inline ds__group_t *group_of(ds__worker_t *w, ds__wgroup_t *wg)
{
    return (ds__group_t *)((char *)(wg - w->id) - offsetof(ds__group_t, w));
}

/* ---- local run queues ---- */

static void local_push(ds__worker_t *w, ds__actor_t *a)
{
    ds__group_t *g = w->rt->groups[a->gid];
    ds__wgroup_t *wg = &g->w[w->id];
    a->rnext = NULL;
    if (wg->tail != NULL) {
        wg->tail->rnext = a;
    } else {
        wg->head = a;
    }
    wg->tail = a;
    wg->count++;
    w->nrunnable++;
    if (wg->heap_pos == 0) {
        uint64_t vmul = atomic_load_explicit(&g->vmul, memory_order_relaxed);
        uint64_t credit = (w->rt->cfg.quantum_ns * vmul) >> 10;
        uint64_t start = w->vnow - credit;
        if (vt_less(wg->vt, start)) {
            wg->vt = start;
        }
        wg->wload = atomic_load_explicit(&g->weight, memory_order_relaxed);
        load_add(w, wg->wload);
        heap_set(w, w->nheap++, wg);
        heap_up(w, w->nheap - 1);
    }
}

static ds__actor_t *local_pop(ds__worker_t *w, ds__wgroup_t *wg)
{
    ds__actor_t *a = wg->head;
    wg->head = a->rnext;
    if (wg->head == NULL) {
        wg->tail = NULL;
    }
    wg->count--;
    w->nrunnable--;
    return a;
}

static void wake(ds__worker_t *t)
{
    /* seq_cst fence: pairs with the fence in park() (Dekker): either we see PARKED, or the
     * parking worker sees what we pushed. */
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&t->state, memory_order_relaxed) == DS__W_PARKED) {
        atomic_fetch_add_explicit(&t->wake_seq, 1, memory_order_release);
        futex_wake(&t->wake_seq);
    }
}

void ds__schedule(ds_rt_t *rt, ds__actor_t *a)
{
    if (a->exec != NULL) {
        a->exec->schedule(a->exec, a);
        return;
    }
    ds_ctx_t *cur = ds__current();
    if (cur != NULL && cur->w != NULL) {
        a->enq_tick = cur->w->tick_now;
        local_push(cur->w, a);
        return;
    }
    ds__worker_t *t = &rt->workers[a->home];
    a->enq_tick = ds_clock_ticks();
    ds_mpsc_push(&t->inbox, &a->run);
    wake(t);
}

static void drain_inbox(ds__worker_t *w)
{
    struct ds_qnode *n;
    while ((n = ds_mpsc_pop(&w->inbox)) != NULL) {
        ds__actor_t *a = (ds__actor_t *)((char *)n - offsetof(ds__actor_t, run));
        local_push(w, a);
    }
}

/* Moves about half of w's runnable actors to t's inbox: half of every group's FIFO, and every
 * other group that has a single runnable actor. */
static void give(ds__worker_t *w, ds__worker_t *t)
{
    uint32_t left = w->nrunnable / 2;
    for (uint32_t i = 0; i < w->nheap && left > 0;) {
        ds__wgroup_t *wg = w->heap[i];
        uint32_t n = wg->count > 1 ? wg->count / 2 : (i % 2 == 1 ? 1 : 0);
        for (; n > 0 && left > 0; n--, left--) {
            ds__actor_t *a = local_pop(w, wg);
            ds_mpsc_push(&t->inbox, &a->run);
        }
        if (wg->count == 0) {
            heap_remove(w, wg); /* the slot now holds another group: look at i again */
        } else {
            i++;
        }
    }
}

/* Work sharing, from the busy side. An idle worker is claimed (its state set to RUNNING, so
 * no other donor picks it too) and handed half of our runnable actors. */
static void donate_idle(ds_rt_t *rt, ds__worker_t *w)
{
    for (unsigned i = 1; i < rt->nworkers; i++) {
        ds__worker_t *c = &rt->workers[(w->id + i) % rt->nworkers];
        unsigned s = atomic_load_explicit(&c->state, memory_order_relaxed);
        if (s != DS__W_RUNNING && atomic_compare_exchange_strong(&c->state, &s, DS__W_RUNNING)) {
            atomic_fetch_sub(&rt->searching, 1);
            give(w, c);
            /* It may be parked: bump its futex word in any case (cheap when it is not). */
            atomic_fetch_add_explicit(&c->wake_seq, 1, memory_order_release);
            futex_wake(&c->wake_seq);
            return;
        }
    }
}

/* Load balancing between busy workers. Fair queueing is per worker, so a group's share is its
 * weight over the weights active on its worker: ten quiet tenants crowded on one worker next
 * to a noisy one would each get a tenth of a core while the noisy tenant alone has the other
 * core. Every BALANCE_EVERY turns a worker compares the weight of its active groups with the
 * others' and, when it carries more than four times the lightest's plus two, hands half of its
 * runnable actors to it. The margin is wide on purpose: moving actors costs their caches, and
 * loads that flicker (many groups with one message each) must not shuffle them. */
static void balance(ds_rt_t *rt, ds__worker_t *w)
{
    ds__worker_t *best = NULL;
    unsigned best_load = UINT32_MAX;
    for (unsigned i = 1; i < rt->nworkers; i++) {
        ds__worker_t *c = &rt->workers[(w->id + i) % rt->nworkers];
        unsigned l = atomic_load_explicit(&c->load, memory_order_relaxed);
        if (l < best_load) {
            best_load = l;
            best = c;
        }
    }
    if (best != NULL && w->load_local >= 2 + 4 * best_load) {
        give(w, best);
        wake(best);
    }
}

/* ---- running turns ---- */

static inline unsigned hist_bucket(uint64_t ns)
{
    if (ns < 1024) {
        return 0;
    }
    unsigned b = (unsigned)(63 - __builtin_clzll(ns)) - 9;
    return b < 16 ? b : 15;
}

static inline void stat_add(_Atomic uint64_t *p, uint64_t v)
{
    /* Single writer (this worker): a relaxed load and store, no lock prefix. */
    atomic_store_explicit(p, atomic_load_explicit(p, memory_order_relaxed) + v,
                          memory_order_relaxed);
}

static void run_one(ds_rt_t *rt, ds__worker_t *w, ds__wgroup_t *wg)
{
    ds__actor_t *a = local_pop(w, wg);
    ds__group_t *g = group_of(w, wg);
    uint64_t t0 = w->tick_now;
    uint64_t waited = t0 > a->enq_tick ? t0 - a->enq_tick : 0;
    a->home = (uint16_t)w->id;
    uint64_t st = atomic_load_explicit(&a->st, memory_order_relaxed);
    ds_ctx_t ctx = {
        .rt = rt, .w = w, .a = a, .self = ds_id_make(rt->cfg.node, DS__ST_GEN(st), a->index)};
    ds__set_current(&ctx);
    unsigned ran = ds__turn(rt, &ctx, rt->cfg.batch);
    uint64_t t1 = ds_clock_ticks();
    w->tick_now = t1;
    bool again = ds__after_turn(rt, &ctx, ran);
    ds__set_current(NULL);
    uint64_t ns = ds_clock_ticks_to_ns(t1 - t0);
    uint64_t vmul = atomic_load_explicit(&g->vmul, memory_order_relaxed);
    wg->vt += (ns * vmul) >> 10;
    stat_add(&wg->cpu_ns, ns);
    if (ran > 0) {
        /* A turn that found a push half done (the queue looked empty, the depth did not) ran
         * nothing: it is charged, but not counted as a turn or a scheduling delay. */
        stat_add(&wg->delivered, ran);
        stat_add(&wg->turns, 1);
        stat_add(&wg->hist[hist_bucket(ds_clock_ticks_to_ns(waited))], 1);
    }
    if (again) {
        a->enq_tick = t1;
        local_push(w, a); /* wg is in the heap still, unless emptied below */
    }
    if (wg->count == 0) {
        heap_remove(w, wg);
    } else {
        heap_down(w, wg->heap_pos - 1);
    }
}

void ds__run_external(ds_rt_t *rt, ds__actor_t *a)
{
    uint64_t st = atomic_load_explicit(&a->st, memory_order_relaxed);
    ds__group_t *g = rt->groups[a->gid]; /* read now: a dead actor's slot may be reused */
    ds_ctx_t ctx = {
        .rt = rt, .w = NULL, .a = a, .self = ds_id_make(rt->cfg.node, DS__ST_GEN(st), a->index)};
    ds_ctx_t *saved = ds__set_current(&ctx);
    unsigned ran = ds__turn(rt, &ctx, rt->cfg.batch);
    bool again = ds__after_turn(rt, &ctx, ran);
    ds__set_current(saved);
    atomic_fetch_add_explicit(&g->xdelivered, ran, memory_order_relaxed);
    if (again) {
        a->exec->schedule(a->exec, a);
    }
}

/* ---- idle and park ---- */

static void quiescent(ds_rt_t *rt, ds__worker_t *w)
{
    uint64_t e = atomic_load(&rt->epoch);
    if (atomic_load_explicit(&w->seen_epoch, memory_order_relaxed) != e) {
        /* seq_cst: pairs with the loads in reclaim_ready() (rt.c). */
        atomic_store(&w->seen_epoch, e);
    }
}

static bool has_work(ds__worker_t *w)
{
    return !ds_mpsc_empty(&w->inbox);
}

/* Waits for work. Returns when the inbox has something or the runtime stops. */
static void idle(ds_rt_t *rt, ds__worker_t *w)
{
    quiescent(rt, w); /* we hold no actor: dead slots need not wait for us */
    if (atomic_load_explicit(&rt->nlimbo, memory_order_relaxed) > 0) {
        ds__reclaim(rt, false);
    }
    atomic_store(&w->state, DS__W_SEARCHING);
    atomic_fetch_add(&rt->searching, 1);
    for (int i = 0; i < SPIN_ROUNDS; i++) {
        if (has_work(w) || atomic_load_explicit(&w->state, memory_order_relaxed) == DS__W_RUNNING ||
            atomic_load_explicit(&rt->stopping, memory_order_relaxed)) {
            goto found;
        }
        cpu_relax();
    }
    /* Offline for reclamation while asleep: we hold no actor. */
    atomic_store(&w->seen_epoch, UINT64_MAX);
    for (;;) {
        uint32_t seq = atomic_load_explicit(&w->wake_seq, memory_order_acquire);
        unsigned s = DS__W_SEARCHING;
        if (!atomic_compare_exchange_strong(&w->state, &s, DS__W_PARKED) && s == DS__W_RUNNING) {
            break; /* a donor claimed us */
        }
        /* seq_cst fence: pairs with the fence in wake(). */
        atomic_thread_fence(memory_order_seq_cst);
        if (has_work(w) || atomic_load(&rt->stopping)) {
            break;
        }
        futex_wait(&w->wake_seq, seq);
        if (atomic_load(&w->state) == DS__W_RUNNING || has_work(w) || atomic_load(&rt->stopping)) {
            break;
        }
        s = DS__W_PARKED;
        atomic_compare_exchange_strong(&w->state, &s, DS__W_SEARCHING);
    }
    atomic_store(&w->seen_epoch, atomic_load(&rt->epoch));
found:;
    unsigned s = atomic_exchange(&w->state, DS__W_RUNNING);
    if (s != DS__W_RUNNING) {
        atomic_fetch_sub(&rt->searching, 1); /* we left idle ourselves; else the donor counted */
    }
    w->tick_now = ds_clock_ticks();
}

static void *worker_main(void *arg)
{
    ds__worker_t *w = arg;
    ds_rt_t *rt = w->rt;
    atomic_store(&w->seen_epoch, atomic_load(&rt->epoch));
    w->tick_now = ds_clock_ticks();
    while (!atomic_load_explicit(&rt->stopping, memory_order_relaxed)) {
        drain_inbox(w);
        if (w->nrunnable == 0) {
            idle(rt, w);
            continue;
        }
        if (w->nrunnable >= 2) {
            if (atomic_load_explicit(&rt->searching, memory_order_relaxed) > 0) {
                donate_idle(rt, w);
            } else if (++w->since_balance >= BALANCE_EVERY) {
                w->since_balance = 0;
                balance(rt, w);
            }
        }
        ds__wgroup_t *wg = w->heap[0];
        if (vt_less(w->vnow, wg->vt)) {
            w->vnow = wg->vt;
        }
        run_one(rt, w, wg);
        quiescent(rt, w);
        if (++w->since_reclaim >= RECLAIM_EVERY) {
            w->since_reclaim = 0;
            if (atomic_load_explicit(&rt->nlimbo, memory_order_relaxed) > 0) {
                ds__reclaim(rt, false);
            }
        }
    }
    atomic_store(&w->seen_epoch, UINT64_MAX);
    return NULL;
}

int ds__sched_start(ds_rt_t *rt)
{
    for (unsigned i = 0; i < rt->nworkers; i++) {
        int rc = pthread_create(&rt->workers[i].thread, NULL, worker_main, &rt->workers[i]);
        if (rc != 0) {
            atomic_store(&rt->stopping, true);
            for (unsigned j = 0; j < i; j++) {
                wake(&rt->workers[j]);
                pthread_join(rt->workers[j].thread, NULL);
            }
            return -rc;
        }
    }
    return 0;
}

void ds__sched_stop(ds_rt_t *rt)
{
    atomic_store(&rt->stopping, true);
    for (unsigned i = 0; i < rt->nworkers; i++) {
        ds__worker_t *w = &rt->workers[i];
        atomic_fetch_add(&w->wake_seq, 1);
        futex_wake(&w->wake_seq);
    }
    for (unsigned i = 0; i < rt->nworkers; i++) {
        pthread_join(rt->workers[i].thread, NULL);
    }
}

bool ds__sched_quiet(ds_rt_t *rt)
{
    for (unsigned i = 0; i < rt->nworkers; i++) {
        ds__worker_t *w = &rt->workers[i];
        if (atomic_load(&w->state) == DS__W_RUNNING) {
            return false;
        }
    }
    return true;
}
