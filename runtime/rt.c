/* rt: runtime lifecycle, groups, the actor table, spawning, the send path, turns, death and
 * slot reclamation, the drain. The scheduler is in sched.c; links, monitors and asks in link.c.
 *
 * The send path (ds__deliver) is the hottest code of the node. For a receiver on this node it
 * does: one load of the slot's state word (a foreign sender pins it with an atomic add instead),
 * one atomic add on the mailbox depth (refused past the group's limit), one on the group's
 * bytes in flight (refused past its cap), one exchange on the mailbox tail, and one load of the
 * receiver's sched flag (plus an exchange when the receiver was idle). No lock, no allocation. */
#define _GNU_SOURCE
#include "runtime/rt.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "runtime/catalog.h"
#include "runtime/clock.h"
#include "runtime/err.h"
#include "runtime/mem.h"
#include "runtime/rt_int.h"
#include "runtime/timer.h"

static _Thread_local ds_ctx_t *tl_ctx;

ds_ctx_t *ds__current(void)
{
    return tl_ctx;
}

ds_ctx_t *ds__set_current(ds_ctx_t *ctx)
{
    ds_ctx_t *old = tl_ctx;
    tl_ctx = ctx;
    return old;
}

/* ---- configuration and lifecycle ---- */

static void cfg_defaults(ds_rt_cfg_t *c)
{
    if (c->node == 0) {
        c->node = 1;
    }
    if (c->workers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        c->workers = n > 0 ? (unsigned)n : 1;
    }
    if (c->batch == 0) {
        c->batch = 64;
    }
    if (c->max_actors == 0) {
        c->max_actors = 1u << 22;
    }
    if (c->max_groups == 0) {
        c->max_groups = 1u << 16;
    }
    if (c->max_payload == 0) {
        c->max_payload = 16u << 20;
    }
    if (c->quantum_ns == 0) {
        c->quantum_ns = 200000;
    }
    if (c->slice_ns == 0) {
        c->slice_ns = 50000;
    }
    if (c->system_mailbox == 0) {
        c->system_mailbox = 1u << 16;
    }
    if (c->system_bytes == 0) {
        c->system_bytes = 1ull << 30;
    }
}

static int timer_deliver(void *arg, ds_actor_id_t to, ds_msg_t **msgp)
{
    ds_rt_t *rt = arg;
    if ((*msgp)->flags == 0 && atomic_load_explicit(&rt->draining, memory_order_relaxed)) {
        return DS_ESHUTDOWN; /* ticks stop with the drain; ask timeouts (system) still fire */
    }
    return ds__deliver(rt, NULL, to, msgp);
}

int ds_rt_new(const ds_rt_cfg_t *cfg, ds_rt_t **out)
{
    ds_rt_cfg_t c = cfg != NULL ? *cfg : (ds_rt_cfg_t){0};
    cfg_defaults(&c);
    if (c.workers > 256 || c.max_actors > DS_ID_INDEX_MAX || c.max_groups > (1u << 24) ||
        c.max_payload > DS_MSG_PAYLOAD_MAX || c.batch > 1u << 20) {
        return -EINVAL;
    }
    ds_clock_init();
    ds_rt_t *rt = ds_xaligned(DS__CACHELINE, sizeof(*rt));
    memset(rt, 0, sizeof(*rt));
    rt->cfg = c;
    uint64_t ns_per_mtick = ds_clock_ticks_to_ns(1u << 20);
    rt->slice_ticks = ns_per_mtick > 0 ? (c.slice_ns << 20) / ns_per_mtick : c.slice_ns;
    rt->nworkers = c.workers;
    rt->nchunks = (c.max_actors >> DS__CHUNK_BITS) + 1;
    rt->chunks = ds_xcalloc(rt->nchunks, sizeof(*rt->chunks));
    rt->groups = ds_xcalloc(c.max_groups, sizeof(*rt->groups));
    atomic_init(&rt->hwm, 1); /* index 0 is never used: the nil id */
    atomic_init(&rt->epoch, 1);
    pthread_mutex_init(&rt->slot_lock, NULL);
    pthread_mutex_init(&rt->group_lock, NULL);
    pthread_mutex_init(&rt->remote_lock, NULL);
    rt->workers = ds_xaligned(DS__CACHELINE, sizeof(ds__worker_t) * rt->nworkers);
    memset(rt->workers, 0, sizeof(ds__worker_t) * rt->nworkers);
    for (unsigned i = 0; i < rt->nworkers; i++) {
        ds__worker_t *w = &rt->workers[i];
        w->rt = rt;
        w->id = i;
        ds_mpsc_init(&w->inbox);
        atomic_init(&w->seen_epoch, UINT64_MAX);
        w->heap = ds_xcalloc(c.max_groups, sizeof(ds__wgroup_t *));
        w->seq = 1;
    }
    int rc = ds_timers_new(timer_deliver, rt, &rt->timers);
    if (rc < 0) {
        ds_rt_free(&rt);
        return rc;
    }
    uint32_t sys;
    ds_group_cfg_t gc = {
        .weight = 1, .mailbox_limit = c.system_mailbox, .bytes_cap = c.system_bytes};
    rc = ds_group_new(rt, &gc, &sys);
    if (rc < 0) {
        ds_rt_free(&rt);
        return rc;
    }
    *out = rt;
    return 0;
}

int ds_rt_start(ds_rt_t *rt)
{
    if (atomic_exchange(&rt->started, true)) {
        return -EALREADY;
    }
    int rc = ds_timers_start(rt->timers);
    if (rc < 0) {
        return rc;
    }
    return ds__sched_start(rt);
}

uint16_t ds_rt_node(const ds_rt_t *rt)
{
    return rt->cfg.node;
}

uint32_t ds_rt_actor_count(ds_rt_t *rt)
{
    return atomic_load_explicit(&rt->live, memory_order_relaxed);
}

void ds_rt_set_router(ds_rt_t *rt, const ds_router_t *router)
{
    rt->router = router != NULL ? *router : (ds_router_t){0};
}

/* ---- groups ---- */

static int group_cfg_check(const ds_group_cfg_t *cfg)
{
    if (cfg == NULL || cfg->weight == 0 || cfg->weight > (1u << 16) || cfg->mailbox_limit == 0 ||
        cfg->bytes_cap < 4096) {
        return -EINVAL;
    }
    return 0;
}

static void group_apply(ds__group_t *g, const ds_group_cfg_t *cfg)
{
    atomic_store_explicit(&g->weight, cfg->weight, memory_order_relaxed);
    atomic_store_explicit(&g->vmul, (1u << 20) / cfg->weight, memory_order_relaxed);
    atomic_store_explicit(&g->mailbox_limit, cfg->mailbox_limit, memory_order_relaxed);
    atomic_store_explicit(&g->bytes_cap, cfg->bytes_cap, memory_order_relaxed);
}

int ds_group_new(ds_rt_t *rt, const ds_group_cfg_t *cfg, uint32_t *out)
{
    int rc = group_cfg_check(cfg);
    if (rc < 0) {
        return rc;
    }
    pthread_mutex_lock(&rt->group_lock);
    if (rt->ngroups >= rt->cfg.max_groups) {
        pthread_mutex_unlock(&rt->group_lock);
        return -ENOSPC;
    }
    uint32_t id = rt->ngroups++;
    size_t size = sizeof(ds__group_t) + sizeof(ds__wgroup_t) * rt->nworkers;
    ds__group_t *g = ds_xaligned(DS__CACHELINE, size);
    memset(g, 0, size);
    g->id = id;
    group_apply(g, cfg);
    /* Release pairs with the acquire load in ds__group(). */
    atomic_store_explicit(&rt->groups[id], g, memory_order_release);
    pthread_mutex_unlock(&rt->group_lock);
    *out = id;
    return 0;
}

int ds_group_update(ds_rt_t *rt, uint32_t gid, const ds_group_cfg_t *cfg)
{
    int rc = group_cfg_check(cfg);
    if (rc < 0) {
        return rc;
    }
    ds__group_t *g = ds__group(rt, gid);
    if (g == NULL) {
        return -ENOENT;
    }
    group_apply(g, cfg);
    return 0;
}

static uint64_t rd(_Atomic uint64_t *p)
{
    return atomic_load_explicit(p, memory_order_relaxed);
}

int ds_group_metrics(ds_rt_t *rt, uint32_t gid, ds_group_metrics_t *out)
{
    ds__group_t *g = ds__group(rt, gid);
    if (g == NULL) {
        return -ENOENT;
    }
    ds_group_metrics_t m = {0};
    uint64_t sent = rd(&g->fsent), done = rd(&g->xdelivered) + rd(&g->dropped);
    m.delivered = done;
    for (unsigned i = 0; i < rt->nworkers; i++) {
        ds__wgroup_t *wg = &g->w[i];
        m.delivered += rd(&wg->delivered);
        sent += rd(&wg->sent);
        done += rd(&wg->delivered);
        m.cpu_ns += rd(&wg->cpu_ns);
        m.turns += rd(&wg->turns);
        m.refused += rd(&wg->refused);
        for (int b = 0; b < DS__HIST_BUCKETS; b++) {
            m.delay_hist[b] += rd(&wg->hist[b]);
        }
    }
    m.queued = sent > done ? sent - done : 0;
    m.refused += rd(&g->refused);
    m.bytes = rd(&g->bytes);
    m.actors = atomic_load_explicit(&g->actors, memory_order_relaxed);
    *out = m;
    return 0;
}

/* ---- the actor table ---- */

static ds__actor_t *chunk_map(void)
{
    /* Map twice the size and trim, so the chunk is aligned to a huge page and one fault zeroes
     * 16,384 actors instead of 32 (a first touch of a 4 KiB page costs ~12 us here). */
    size_t size = (size_t)DS__CHUNK_SIZE * sizeof(ds__actor_t);
    uint8_t *p = mmap(NULL, size * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        return NULL;
    }
    uintptr_t start = ((uintptr_t)p + size - 1) & ~(uintptr_t)(size - 1);
    uint8_t *s = (uint8_t *)start;
    if (s > p) {
        munmap(p, (size_t)(s - p));
    }
    munmap(s + size, (size_t)(p + size * 2 - (s + size)));
    (void)madvise(s, size, MADV_HUGEPAGE);
    return (ds__actor_t *)s;
}

static int slot_alloc(ds_rt_t *rt, uint32_t *out)
{
    pthread_mutex_lock(&rt->slot_lock);
    if (rt->nfree > 0) {
        *out = rt->free_idx[--rt->nfree];
        pthread_mutex_unlock(&rt->slot_lock);
        return 0;
    }
    uint32_t i = atomic_load_explicit(&rt->hwm, memory_order_relaxed);
    if (i > rt->cfg.max_actors) {
        pthread_mutex_unlock(&rt->slot_lock);
        return -EAGAIN;
    }
    uint32_t c = i >> DS__CHUNK_BITS;
    if (atomic_load_explicit(&rt->chunks[c], memory_order_relaxed) == NULL) {
        ds__actor_t *chunk = chunk_map();
        if (chunk == NULL) {
            pthread_mutex_unlock(&rt->slot_lock);
            return -ENOMEM;
        }
        /* Release pairs with the acquire load in ds__slot(). */
        atomic_store_explicit(&rt->chunks[c], chunk, memory_order_release);
    }
    atomic_store_explicit(&rt->hwm, i + 1, memory_order_relaxed);
    pthread_mutex_unlock(&rt->slot_lock);
    *out = i;
    return 0;
}

static void free_push(ds_rt_t *rt, uint32_t idx)
{
    if (rt->nfree == rt->free_cap) {
        rt->free_cap = rt->free_cap ? rt->free_cap * 2 : 1024;
        rt->free_idx = ds_xrealloc(rt->free_idx, rt->free_cap * sizeof(uint32_t));
    }
    rt->free_idx[rt->nfree++] = idx;
}

/* ---- spawning ---- */

static void actor_init(ds__actor_t *a, uint32_t idx, uint32_t gid, const ds_behaviour_t *b)
{
    ds_mpsc_init(&a->mb);
    atomic_store_explicit(&a->depth, 0, memory_order_relaxed);
    /* Held at 1 until init has run, so nobody schedules the actor before it exists. */
    atomic_store_explicit(&a->sched, 1, memory_order_relaxed);
    atomic_store_explicit(&a->nchildren, 0, memory_order_relaxed);
    atomic_store_explicit(&a->run.next, NULL, memory_order_relaxed);
    a->rnext = NULL;
    a->gid = gid;
    a->beh = b;
    a->state = NULL;
    a->ext = NULL;
    a->exec = NULL;
    a->parent = DS_ID_NIL;
    a->enq_tick = 0;
    a->index = idx;
    a->flags = 0;
    a->stop_reason = 0;
}

static void parent_add(ds_rt_t *rt, ds_actor_id_t parent)
{
    ds__actor_t *p = ds__slot(rt, ds_id_index(parent));
    if (p != NULL && ds_id_node(parent) == rt->cfg.node) {
        atomic_fetch_add_explicit(&p->nchildren, 1, memory_order_relaxed);
    }
}

static void retire(ds_rt_t *rt, ds__actor_t *a);
static void drain_dead(ds_rt_t *rt, ds__actor_t *a, ds_actor_id_t self);
static void parent_child_gone(ds_rt_t *rt, ds_actor_id_t parent);

int ds__spawn_ex(ds_rt_t *rt, const ds_behaviour_t *b, void *arg, const ds_spawn_opts_t *opts,
                 ds__executor_t *exec, void *vreg, ds_actor_id_t *out)
{
    ds_ctx_t *cur = ds__current();
    if (b == NULL || b->receive == NULL) {
        return -EINVAL;
    }
    if (cur == NULL && atomic_load(&rt->draining)) {
        return DS_ESHUTDOWN;
    }
    uint32_t gid = opts != NULL && opts->group != 0 ? opts->group
                   : cur != NULL                    ? cur->a->gid
                                                    : DS_GROUP_SYSTEM;
    ds__group_t *g = ds__group(rt, gid);
    if (g == NULL) {
        return -ENOENT;
    }
    uint32_t idx;
    int rc = slot_alloc(rt, &idx);
    if (rc < 0) {
        return rc;
    }
    ds__actor_t *a = ds__slot(rt, idx);
    actor_init(a, idx, gid, b);
    a->exec = exec;
    a->home =
        (uint16_t)(atomic_fetch_add_explicit(&rt->rr, 1, memory_order_relaxed) % rt->nworkers);
    if (opts != NULL && opts->trap_exit) {
        a->flags |= DS__A_TRAP;
    }
    if (exec != NULL) {
        a->flags |= DS__A_EXTERNAL;
    }
    if (vreg != NULL) {
        a->flags |= DS__A_VIRTUAL;
        *ds__ext_reg(a) = vreg;
    }
    a->parent = opts != NULL && !ds_id_is_nil(opts->parent) ? opts->parent
                : cur != NULL                               ? cur->self
                                                            : DS_ID_NIL;
    if (!ds_id_is_nil(a->parent)) {
        parent_add(rt, a->parent);
    }
    uint64_t gen = DS__ST_GEN(atomic_load_explicit(&a->st, memory_order_relaxed));
    ds_actor_id_t id = ds_id_make(rt->cfg.node, (uint32_t)gen, idx);
    /* Release pairs with the acquire load of st in ds__deliver(): a sender that sees ALIVE
     * sees an initialised mailbox. */
    atomic_store_explicit(&a->st, (gen << 32) | DS__ST_ALIVE, memory_order_release);
    atomic_fetch_add_explicit(&g->actors, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&rt->live, 1, memory_order_relaxed);

    ds_ctx_t ctx = {.rt = rt, .w = cur != NULL ? cur->w : NULL, .a = a, .self = id};
    ds_ctx_t *saved = ds__set_current(&ctx);
    if (opts != NULL && !ds_id_is_nil(opts->link)) {
        rc = ds_link(&ctx, opts->link);
    }
    if (rc == 0 && b->init != NULL) {
        rc = b->init(&ctx, arg);
    }
    ds__set_current(saved);
    if (rc < 0 || ctx.stop) {
        /* A failed init: the actor never ran. Tell its links, answer what was sent to it
         * meanwhile, retire it and let its parent know. */
        ctx.w = NULL;
        atomic_fetch_xor(&a->st, DS__ST_ALIVE | DS__ST_DEAD);
        ds__signals_on_death(&ctx, rc < 0 ? rc : ctx.reason);
        drain_dead(rt, a, id);
        ds_actor_id_t parent = a->parent; /* before retire: the slot may be reused after */
        retire(rt, a);
        parent_child_gone(rt, parent);
        return rc < 0 ? rc : DS_ENOACTOR;
    }
    /* seq_cst pairs with the senders' depth increment and sched load (see ds__after_turn). */
    atomic_store(&a->sched, 0);
    if (atomic_load(&a->depth) > 0 && atomic_exchange(&a->sched, 1) == 0) {
        ds__schedule(rt, a);
    }
    *out = id;
    return 0;
}

int ds_spawn(ds_rt_t *rt, const ds_behaviour_t *b, void *arg, const ds_spawn_opts_t *opts,
             ds_actor_id_t *out)
{
    return ds__spawn_ex(rt, b, arg, opts, NULL, NULL, out);
}

/* ---- the send path ---- */

static void unpin(ds__actor_t *t, bool pinned)
{
    if (pinned) {
        /* Release pairs with the acquire load of st in reclaim_ready(). */
        atomic_fetch_sub_explicit(&t->st, 1, memory_order_release);
    }
}

static int refuse(ds_ctx_t *ctx, ds__group_t *g, ds__actor_t *t, bool pinned, int code)
{
    if (pinned) {
        atomic_fetch_add_explicit(&g->refused, 1, memory_order_relaxed);
        unpin(t, pinned);
    } else {
        /* Per worker: a flood of refusals must not bounce a shared counter between cores. */
        _Atomic uint64_t *r = &g->w[ctx->w->id].refused;
        atomic_store_explicit(r, rd(r) + 1, memory_order_relaxed);
    }
    return code;
}

int ds__deliver(ds_rt_t *rt, ds_ctx_t *ctx, ds_actor_id_t to, ds_msg_t **msgp)
{
    ds_msg_t *m = *msgp;
    m->to = to;
    if (ds_id_is_nil(to)) {
        return DS_ENOACTOR;
    }
    if (ds_id_node(to) != rt->cfg.node) {
        if (rt->router.route == NULL) {
            return DS_ENODEDOWN;
        }
        return rt->router.route(rt->router.arg, msgp);
    }
    ds__actor_t *t = ds__slot(rt, ds_id_index(to));
    if (t == NULL) {
        return DS_ENOACTOR;
    }
    /* A worker is protected by its quiescent state; any other thread pins the slot. */
    bool pinned = ctx == NULL || ctx->w == NULL;
    uint64_t st =
        pinned ? atomic_fetch_add(&t->st, 1) : atomic_load_explicit(&t->st, memory_order_acquire);
    if (DS__ST_GEN(st) != ds_id_gen(to) || (st & DS__ST_ALIVE) == 0) {
        unpin(t, pinned);
        return DS_ENOACTOR;
    }
    ds__group_t *g = rt->groups[t->gid];
    uint32_t size = (uint32_t)ds_msg_footprint(m);
    bool privileged = (m->flags & (DS_MSG_F_SYSTEM | DS_MSG_F_REPLY)) != 0;
    unsigned limit = atomic_load_explicit(&g->mailbox_limit, memory_order_relaxed);
    /* A full mailbox is refused with a plain load first: a flooding sender then only reads the
     * receiver's cache line instead of bouncing it with two atomic writes per refusal. */
    if (!privileged && atomic_load_explicit(&t->depth, memory_order_relaxed) >= limit) {
        return refuse(ctx, g, t, pinned, DS_EFULL);
    }
    /* seq_cst: pairs with the consumer's sched store and depth load in ds__after_turn(). */
    unsigned d = atomic_fetch_add(&t->depth, 1);
    if (!privileged && d >= limit) {
        atomic_fetch_sub_explicit(&t->depth, 1, memory_order_relaxed);
        return refuse(ctx, g, t, pinned, DS_EFULL);
    }
    uint64_t b = atomic_fetch_add_explicit(&g->bytes, size, memory_order_relaxed);
    if (!privileged && b + size > atomic_load_explicit(&g->bytes_cap, memory_order_relaxed)) {
        atomic_fetch_sub_explicit(&g->bytes, size, memory_order_relaxed);
        atomic_fetch_sub_explicit(&t->depth, 1, memory_order_relaxed);
        return refuse(ctx, g, t, pinned, DS_ECAP);
    }
    m->ds__gid = t->gid;
    m->ds__charge = size;
    ds_mpsc_push(&t->mb, &m->ds__node);
    *msgp = NULL;
    if (pinned) {
        atomic_fetch_add_explicit(&g->fsent, 1, memory_order_relaxed);
    } else {
        _Atomic uint64_t *s = &g->w[ctx->w->id].sent;
        atomic_store_explicit(s, rd(s) + 1, memory_order_relaxed);
    }
    if (atomic_load(&t->sched) == 0 && atomic_exchange(&t->sched, 1) == 0) {
        ds__schedule(rt, t);
    }
    unpin(t, pinned);
    return 0;
}

int ds_send_from(ds_rt_t *rt, ds_actor_id_t to, ds_msg_t **msgp)
{
    if (atomic_load_explicit(&rt->draining, memory_order_relaxed)) {
        return DS_ESHUTDOWN;
    }
    ds_msg_t *m = *msgp;
    if (m->len > rt->cfg.max_payload) {
        return -EMSGSIZE;
    }
    m->from = DS_ID_NIL;
    m->group = DS_GROUP_SYSTEM;
    return ds__deliver(rt, ds__current(), to, msgp);
}

int ds_send(ds_ctx_t *ctx, ds_actor_id_t to, ds_msg_t **msgp)
{
    ds_msg_t *m = *msgp;
    if (m->len > ctx->rt->cfg.max_payload) {
        return -EMSGSIZE;
    }
    m->from = ctx->self;
    m->group = ctx->a->gid;
    return ds__deliver(ctx->rt, ctx, to, msgp);
}

/* ---- context ---- */

ds_actor_id_t ds_self(const ds_ctx_t *ctx)
{
    return ctx->self;
}

ds_rt_t *ds_ctx_rt(const ds_ctx_t *ctx)
{
    return ctx->rt;
}

uint32_t ds_ctx_group(const ds_ctx_t *ctx)
{
    return ctx->a->gid;
}

void *ds_ctx_state(const ds_ctx_t *ctx)
{
    return ctx->a->state;
}

void ds_ctx_set_state(ds_ctx_t *ctx, void *state)
{
    ctx->a->state = state;
}

void ds_ctx_stop(ds_ctx_t *ctx, int reason)
{
    ctx->stop = true;
    ctx->reason = reason;
}

void ds_ctx_trap_exit(ds_ctx_t *ctx, bool on)
{
    if (on) {
        ctx->a->flags |= DS__A_TRAP;
    } else {
        ctx->a->flags &= (uint16_t)~DS__A_TRAP;
    }
}

/* ---- turns ---- */

unsigned ds__turn(ds_rt_t *rt, ds_ctx_t *ctx, unsigned batch)
{
    ds__actor_t *a = ctx->a;
    unsigned n = 0;
    uint64_t bytes = 0;
    uint64_t start = ctx->w != NULL ? ctx->w->tick_now : ds_clock_ticks();
    /* A turn ends after `batch` messages or, past the first, once it ran a slice: a handler
     * that is slow, or an actor that feeds itself, yields to the others between messages. */
    while (n < batch && (n == 0 || ds_clock_ticks() - start < rt->slice_ticks)) {
        struct ds_qnode *node = ds_mpsc_pop(&a->mb);
        if (node == NULL) {
            break;
        }
        ds_msg_t *m = (ds_msg_t *)node;
        n++;
        bytes += m->ds__charge;
        if ((m->flags & (DS_MSG_F_SYSTEM | DS_MSG_F_REPLY)) != 0 && ds__system(ctx, &m)) {
            ds_msg_free(&m);
        } else {
            int rc = a->beh->receive(ctx, &m);
            ds_msg_free(&m);
            if (rc < 0 && !ctx->stop) {
                ctx->stop = true;
                ctx->reason = rc;
            }
        }
        if (ctx->stop) {
            break;
        }
    }
    if (bytes > 0) {
        atomic_fetch_sub_explicit(&rt->groups[a->gid]->bytes, bytes, memory_order_relaxed);
    }
    return n;
}

static void die(ds_rt_t *rt, ds_ctx_t *ctx, int reason);

bool ds__after_turn(ds_rt_t *rt, ds_ctx_t *ctx, unsigned ran)
{
    ds__actor_t *a = ctx->a;
    if (ctx->stop) {
        if (ran > 0) {
            atomic_fetch_sub(&a->depth, ran);
        }
        die(rt, ctx, ctx->reason);
        return false;
    }
    unsigned left = ran > 0 ? atomic_fetch_sub(&a->depth, ran) - ran : atomic_load(&a->depth);
    if (left > 0) {
        return true;
    }
    /* seq_cst store then load: pairs with the sender's depth increment then sched load in
     * ds__deliver(). Either the sender sees 0 and schedules, or we see its message here. */
    atomic_store(&a->sched, 0);
    return atomic_load(&a->depth) > 0 && atomic_exchange(&a->sched, 1) == 0;
}

/* ---- death and reclamation ---- */

/* Pops everything queued in a dead actor's mailbox and answers it. */
static void drain_dead(ds_rt_t *rt, ds__actor_t *a, ds_actor_id_t self)
{
    ds__group_t *g = rt->groups[a->gid];
    struct ds_qnode *node;
    uint64_t bytes = 0;
    unsigned n = 0;
    while ((node = ds_mpsc_pop(&a->mb)) != NULL) {
        ds_msg_t *m = (ds_msg_t *)node;
        bytes += m->ds__charge;
        n++;
        ds__answer_dead(rt, self, &m);
        ds_msg_free(&m);
    }
    if (n > 0) {
        atomic_fetch_sub_explicit(&g->bytes, bytes, memory_order_relaxed);
        atomic_fetch_sub(&a->depth, n);
        atomic_fetch_add_explicit(&g->dropped, n, memory_order_relaxed);
    }
}

static void retire(ds_rt_t *rt, ds__actor_t *a)
{
    ds__group_t *g = rt->groups[a->gid];
    atomic_fetch_sub_explicit(&g->actors, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&rt->live, 1, memory_order_relaxed);
    pthread_mutex_lock(&rt->slot_lock);
    ds__limbo_t *l = &rt->limbo;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 256;
        l->idx = ds_xrealloc(l->idx, l->cap * sizeof(uint32_t));
        l->epoch = ds_xrealloc(l->epoch, l->cap * sizeof(uint64_t));
    }
    l->idx[l->n] = a->index;
    /* seq_cst: the DEAD flag, set before, is ordered before the new epoch that workers must
     * reach (their seen_epoch stores are seq_cst too). */
    l->epoch[l->n] = atomic_fetch_add(&rt->epoch, 1) + 1;
    l->n++;
    atomic_store_explicit(&rt->nlimbo, l->n, memory_order_relaxed);
    pthread_mutex_unlock(&rt->slot_lock);
}

/* One child fewer: the drain stops a parent once it has none (stop_leaves). */
static void parent_child_gone(ds_rt_t *rt, ds_actor_id_t parent)
{
    if (ds_id_is_nil(parent) || ds_id_node(parent) != rt->cfg.node) {
        return;
    }
    ds__actor_t *p = ds__slot(rt, ds_id_index(parent));
    if (p != NULL) {
        atomic_fetch_sub_explicit(&p->nchildren, 1, memory_order_relaxed);
    }
}

static void die(ds_rt_t *rt, ds_ctx_t *ctx, int reason)
{
    ds__actor_t *a = ctx->a;
    /* ALIVE -> DEAD: from here on sends fail with DS_ENOACTOR. sched stays 1 for good, so no
     * sender that raced with us can queue the actor again. */
    atomic_fetch_xor(&a->st, DS__ST_ALIVE | DS__ST_DEAD);
    if (a->beh->terminate != NULL) {
        a->beh->terminate(ctx, reason);
    }
    ds__signals_on_death(ctx, reason);
    drain_dead(rt, a, ctx->self);
    ds_actor_id_t parent = a->parent;
    retire(rt, a);
    parent_child_gone(rt, parent);
}

/* A limbo entry may be reused when every worker has passed a turn boundary since it died and
 * no foreign sender pins it. */
static bool reclaim_ready(ds_rt_t *rt, uint64_t tag, ds__actor_t *a)
{
    for (unsigned i = 0; i < rt->nworkers; i++) {
        /* seq_cst: pairs with the worker's seq_cst store of seen_epoch (sched.c). */
        if (atomic_load(&rt->workers[i].seen_epoch) < tag) {
            return false;
        }
    }
    /* Acquire pairs with the release in unpin(). */
    return (atomic_load_explicit(&a->st, memory_order_acquire) & DS__ST_PINS) == 0;
}

void ds__reclaim(ds_rt_t *rt, bool force)
{
    pthread_mutex_lock(&rt->slot_lock);
    ds__limbo_t *l = &rt->limbo;
    uint32_t keep = 0;
    for (uint32_t i = 0; i < l->n; i++) {
        ds__actor_t *a = ds__slot(rt, l->idx[i]);
        if (!force && !reclaim_ready(rt, l->epoch[i], a)) {
            l->idx[keep] = l->idx[i];
            l->epoch[keep] = l->epoch[i];
            keep++;
            continue;
        }
        uint64_t st = atomic_load(&a->st);
        uint32_t gen = DS__ST_GEN(st);
        /* Messages that raced with the death: nobody else can push now. */
        drain_dead(rt, a, ds_id_make(rt->cfg.node, gen, a->index));
        ds__ext_free(a);
        atomic_store_explicit(&a->sched, 0, memory_order_relaxed);
        atomic_store_explicit(&a->st, (uint64_t)(gen + 1) << 32, memory_order_release);
        if (gen + 1 <= DS_ID_GEN_MAX) {
            free_push(rt, a->index); /* else retired for good: a stale id never aliases */
        }
    }
    l->n = keep;
    atomic_store_explicit(&rt->nlimbo, keep, memory_order_relaxed);
    pthread_mutex_unlock(&rt->slot_lock);
}

/* ---- drain and shutdown ---- */

static bool all_idle(ds_rt_t *rt)
{
    for (uint32_t g = 0; g < rt->ngroups; g++) {
        ds__group_t *grp = ds__group(rt, g);
        if (grp != NULL && atomic_load_explicit(&grp->bytes, memory_order_relaxed) > 0) {
            return false;
        }
    }
    return ds__sched_quiet(rt);
}

static bool wait_until(ds_rt_t *rt, bool (*cond)(ds_rt_t *), int64_t deadline)
{
    while (!cond(rt)) {
        if (ds_clock_now() >= deadline) {
            return false;
        }
        usleep(1000);
    }
    return true;
}

static bool no_actors(ds_rt_t *rt)
{
    return atomic_load(&rt->live) == 0;
}

/* Sends STOP to every live actor without live children that was not sent one yet; stopped[i]
 * remembers the generation that got it (+1), so each incarnation is asked once. */
static void stop_leaves(ds_rt_t *rt, uint32_t *stopped, uint32_t n)
{
    uint32_t hwm = atomic_load(&rt->hwm);
    for (uint32_t i = 1; i < hwm && i < n; i++) {
        ds__actor_t *a = ds__slot(rt, i);
        uint64_t st = atomic_load_explicit(&a->st, memory_order_acquire);
        if ((st & DS__ST_ALIVE) == 0 || atomic_load(&a->nchildren) > 0 ||
            stopped[i] == DS__ST_GEN(st) + 1) {
            continue;
        }
        ds_msg_t *m;
        if (ds_stop_new(&(ds_stop_t){.reason = DS_EXIT_SHUTDOWN}, &m) < 0) {
            continue;
        }
        m->flags |= DS_MSG_F_SYSTEM;
        m->from = DS_ID_NIL;
        if (ds__deliver(rt, NULL, ds_id_make(rt->cfg.node, DS__ST_GEN(st), i), &m) < 0) {
            ds_msg_free(&m);
        }
        stopped[i] = DS__ST_GEN(st) + 1;
    }
}

int ds_rt_drain(ds_rt_t *rt, int64_t timeout_ns)
{
    int64_t deadline = ds_clock_now() + timeout_ns;
    atomic_store(&rt->draining, true);
    bool delivered = wait_until(rt, all_idle, deadline);
    /* Children first: leaves now; a parent gets its stop when its last child is gone. The
     * rescans catch parents whose children died before the drain and actors spawned by actors
     * meanwhile; each incarnation is asked once. */
    uint32_t n = rt->cfg.max_actors + 1;
    uint32_t *stopped = ds_xcalloc(n, sizeof(uint32_t));
    stop_leaves(rt, stopped, n);
    while (!no_actors(rt) && ds_clock_now() < deadline) {
        usleep(2000);
        stop_leaves(rt, stopped, n);
    }
    free(stopped);
    return delivered && no_actors(rt) ? 0 : DS_ETIMEDOUT;
}

static void kill_remaining(ds_rt_t *rt)
{
    uint32_t hwm = atomic_load(&rt->hwm);
    for (uint32_t i = 1; i < hwm; i++) {
        ds__actor_t *a = ds__slot(rt, i);
        uint64_t st = atomic_load(&a->st);
        if ((st & DS__ST_ALIVE) == 0) {
            continue;
        }
        ds_ctx_t ctx = {.rt = rt, .a = a, .self = ds_id_make(rt->cfg.node, DS__ST_GEN(st), i)};
        a->flags |= DS__A_DRAIN;
        die(rt, &ctx, DS_EXIT_SHUTDOWN);
    }
}

void ds_rt_free(ds_rt_t **rtp)
{
    ds_rt_t *rt = *rtp;
    if (rt == NULL) {
        return;
    }
    *rtp = NULL;
    atomic_store(&rt->draining, true);
    if (atomic_load(&rt->started)) {
        ds__sched_stop(rt);
    }
    ds_timers_free(&rt->timers);
    kill_remaining(rt);
    ds__reclaim(rt, true);
    ds__registry_free(rt);
    for (uint32_t c = 0; c < rt->nchunks; c++) {
        ds__actor_t *chunk = atomic_load(&rt->chunks[c]);
        if (chunk != NULL) {
            munmap(chunk, (size_t)DS__CHUNK_SIZE * sizeof(ds__actor_t));
        }
    }
    for (uint32_t g = 0; g < rt->ngroups; g++) {
        free(atomic_load(&rt->groups[g]));
    }
    for (unsigned i = 0; i < rt->nworkers; i++) {
        free(rt->workers[i].heap);
    }
    free(rt->workers);
    free(rt->groups);
    free(rt->chunks);
    free(rt->free_idx);
    free(rt->limbo.idx);
    free(rt->limbo.epoch);
    free(rt->remote);
    pthread_mutex_destroy(&rt->slot_lock);
    pthread_mutex_destroy(&rt->group_lock);
    pthread_mutex_destroy(&rt->remote_lock);
    free(rt);
}

/* ---- timers ---- */

int ds_timer_after(ds_rt_t *rt, ds_actor_id_t to, int64_t delay_ns, ds_msg_t **msgp, uint64_t *tid)
{
    uint64_t id;
    int rc =
        ds_timers_add(rt->timers, to, ds_clock_now() + (delay_ns > 0 ? delay_ns : 0), 0, msgp, &id);
    if (rc == 0 && tid != NULL) {
        *tid = id;
    }
    return rc;
}

int ds_timer_every(ds_rt_t *rt, ds_actor_id_t to, int64_t period_ns, ds_msg_t **msgp, uint64_t *tid)
{
    if (period_ns <= 0) {
        return -EINVAL;
    }
    uint64_t id;
    int rc = ds_timers_add(rt->timers, to, ds_clock_now() + period_ns, period_ns, msgp, &id);
    if (rc == 0 && tid != NULL) {
        *tid = id;
    }
    return rc;
}

int ds_timer_cancel(ds_rt_t *rt, uint64_t tid)
{
    return ds_timers_cancel(rt->timers, tid);
}

bool ds_rt_draining(ds_rt_t *rt)
{
    return atomic_load_explicit(&rt->draining, memory_order_relaxed);
}
