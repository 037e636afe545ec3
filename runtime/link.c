/* link: links, monitors, exit signals and asks (Erlang semantics), and the runtime's handling
 * of system messages inside an actor's turn.
 *
 * Everything an actor knows about its links, monitors and pending asks lives in its ext, which
 * only the thread running the actor touches: the other side of a link or monitor is told by a
 * system message (LINK, MONITOR, ...), never by writing into its memory. Signals to actors on
 * another node travel the same way through the router; the runtime also keeps, under
 * remote_lock, which local actors watch which remote ones, so that a lost node fires them all.
 *
 * Asks: a pending ask is (corr -> timer id) in the asker's ext. A reply or a timeout whose corr
 * is not pending is dropped, so the asker sees exactly one of them.
 *
 * Exit signals come from ds_exit() or from a link (its other side stopped, or was dead or
 * lost when linked). A link's signal carries corr = LINK_EXIT (an exit signal has no other use
 * for corr, and corr travels between nodes), because the two must be told apart: a link's
 * signal from a peer we are no longer linked to is ignored, since we unlinked while the peer
 * was dying (Erlang: after unlink() the link has no effect on the caller), whereas a
 * ds_exit() signal acts whether or not its sender is linked, and DS_EXIT_KILL kills in any
 * case. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/catalog.h"
#include "runtime/clock.h"
#include "runtime/err.h"
#include "runtime/mem.h"
#include "runtime/rt.h"
#include "runtime/rt_int.h"
#include "runtime/timer.h"

typedef struct ref_pair {
    uint64_t ref;
    ds_actor_id_t id;
} ref_pair_t;

typedef struct vec {
    void *v;
    uint32_t n, cap;
} vec_t;

struct ds__ext {
    vec_t links;        /* ds_actor_id_t */
    vec_t mons;         /* ref_pair_t: monitors this actor holds (id = target) */
    vec_t watchers;     /* ref_pair_t: monitors on this actor (id = watcher) */
    uint64_t *ask_corr; /* open addressing; 0 = empty, 1 = deleted */
    uint64_t *ask_tid;
    uint32_t ask_n, ask_used, ask_cap;
    void *reg; /* registry.c */
};

enum {
    ASK_EMPTY = 0,
    ASK_DELETED = 1
};

enum {
    LINK_EXIT = 1
}; /* corr of an exit signal sent because of a link */

static ds__ext_t *ext_of(ds__actor_t *a)
{
    if (a->ext == NULL) {
        a->ext = ds_xcalloc(1, sizeof(ds__ext_t));
    }
    return a->ext;
}

void **ds__ext_reg(ds__actor_t *a)
{
    return &ext_of(a)->reg;
}

static void *vec_push(vec_t *v, size_t size)
{
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 4;
        v->v = ds_xrealloc(v->v, v->cap * size);
    }
    return (uint8_t *)v->v + (size_t)v->n++ * size;
}

static void vec_del(vec_t *v, uint32_t i, size_t size)
{
    uint8_t *base = v->v;
    memmove(base + i * size, base + (i + 1) * size, (v->n - i - 1) * size);
    v->n--;
}

static int id_find(vec_t *v, ds_actor_id_t id)
{
    ds_actor_id_t *ids = v->v;
    for (uint32_t i = 0; i < v->n; i++) {
        if (ds_id_eq(ids[i], id)) {
            return (int)i;
        }
    }
    return -1;
}

static int ref_find(vec_t *v, uint64_t ref)
{
    ref_pair_t *p = v->v;
    for (uint32_t i = 0; i < v->n; i++) {
        if (p[i].ref == ref) {
            return (int)i;
        }
    }
    return -1;
}

void ds__ext_free(ds__actor_t *a)
{
    ds__ext_t *e = a->ext;
    if (e == NULL) {
        return;
    }
    free(e->links.v);
    free(e->mons.v);
    free(e->watchers.v);
    free(e->ask_corr);
    free(e->ask_tid);
    free(e);
    a->ext = NULL;
}

/* ---- pending asks: a small open-addressing table ---- */

static uint32_t ask_slot(const ds__ext_t *e, uint64_t corr, bool for_insert)
{
    uint32_t mask = e->ask_cap - 1;
    uint32_t i = (uint32_t)(corr * 0x9E3779B97F4A7C15ull >> 40) & mask;
    for (;;) {
        uint64_t c = e->ask_corr[i];
        if (c == corr || c == ASK_EMPTY || (for_insert && c == ASK_DELETED)) {
            return i;
        }
        i = (i + 1) & mask;
    }
}

static void ask_grow(ds__ext_t *e)
{
    uint64_t *oc = e->ask_corr, *ot = e->ask_tid;
    uint32_t ocap = e->ask_cap;
    e->ask_cap = ocap ? ocap * 2 : 8;
    if (e->ask_n * 4 < ocap) {
        e->ask_cap = ocap; /* mostly tombstones: rehash at the same size */
    }
    e->ask_corr = ds_xcalloc(e->ask_cap, sizeof(uint64_t));
    e->ask_tid = ds_xcalloc(e->ask_cap, sizeof(uint64_t));
    e->ask_used = 0;
    for (uint32_t i = 0; i < ocap; i++) {
        if (oc[i] > ASK_DELETED) {
            uint32_t s = ask_slot(e, oc[i], true);
            e->ask_corr[s] = oc[i];
            e->ask_tid[s] = ot[i];
            e->ask_used++;
        }
    }
    free(oc);
    free(ot);
}

static void ask_add(ds__ext_t *e, uint64_t corr, uint64_t tid)
{
    if ((e->ask_used + 1) * 4 > e->ask_cap * 3) {
        ask_grow(e);
    }
    uint32_t s = ask_slot(e, corr, true);
    if (e->ask_corr[s] == ASK_EMPTY) {
        e->ask_used++;
    }
    e->ask_corr[s] = corr;
    e->ask_tid[s] = tid;
    e->ask_n++;
}

/* Removes a pending ask; true and its timer id if it was pending. */
static bool ask_take(ds__ext_t *e, uint64_t corr, uint64_t *tid)
{
    if (e == NULL || e->ask_n == 0 || corr <= ASK_DELETED) {
        return false;
    }
    uint32_t s = ask_slot(e, corr, false);
    if (e->ask_corr[s] != corr) {
        return false;
    }
    e->ask_corr[s] = ASK_DELETED;
    e->ask_n--;
    *tid = e->ask_tid[s];
    return true;
}

/* ---- signals ---- */

static uint64_t next_seq(ds_ctx_t *ctx)
{
    if (ctx->w != NULL) {
        return ((uint64_t)(ctx->w->id + 1) << 48) | ctx->w->seq++;
    }
    static _Atomic uint64_t outside = 1;
    return ((uint64_t)0xffff << 48) | atomic_fetch_add_explicit(&outside, 1, memory_order_relaxed);
}

/* Sends a system message built by the caller; frees it if it could not be delivered. */
static int signal_send(ds_rt_t *rt, ds_ctx_t *ctx, ds_actor_id_t from, ds_actor_id_t to,
                       ds_msg_t *m)
{
    m->flags |= DS_MSG_F_SYSTEM;
    m->from = from;
    int rc = ds__deliver(rt, ctx, to, &m);
    ds_msg_free(&m);
    return rc;
}

static void remote_watch(ds_rt_t *rt, bool is_link, ds_actor_id_t local, ds_actor_id_t remote,
                         uint64_t ref)
{
    pthread_mutex_lock(&rt->remote_lock);
    if (rt->nremote == rt->remote_cap) {
        rt->remote_cap = rt->remote_cap ? rt->remote_cap * 2 : 16;
        rt->remote = ds_xrealloc(rt->remote, rt->remote_cap * sizeof(*rt->remote));
    }
    rt->remote[rt->nremote++] = (ds__remote_watch_t){.node = ds_id_node(remote),
                                                     .is_link = is_link,
                                                     .local = local,
                                                     .remote = remote,
                                                     .ref = ref};
    pthread_mutex_unlock(&rt->remote_lock);
}

static void remote_unwatch(ds_rt_t *rt, bool is_link, ds_actor_id_t local, ds_actor_id_t remote,
                           uint64_t ref)
{
    if (ds_id_node(remote) == rt->cfg.node) {
        return;
    }
    pthread_mutex_lock(&rt->remote_lock);
    for (uint32_t i = 0; i < rt->nremote; i++) {
        ds__remote_watch_t *r = &rt->remote[i];
        if (r->is_link == is_link && ds_id_eq(r->local, local) && ds_id_eq(r->remote, remote) &&
            r->ref == ref) {
            rt->remote[i] = rt->remote[--rt->nremote];
            break;
        }
    }
    pthread_mutex_unlock(&rt->remote_lock);
}

/* A link's exit signal: who stopped with reason. NULL if it could not be built. */
static ds_msg_t *link_exit_new(ds_actor_id_t who, int64_t reason)
{
    ds_msg_t *m;
    if (ds_exit_new(&(ds_exit_t){.who = who, .reason = reason}, &m) < 0) {
        return NULL;
    }
    m->corr = LINK_EXIT;
    return m;
}

static void self_signal_exit(ds_ctx_t *ctx, ds_actor_id_t who, int reason)
{
    ds_msg_t *m = link_exit_new(who, reason);
    if (m != NULL) {
        signal_send(ctx->rt, ctx, who, ctx->self, m);
    }
}

static void self_signal_down(ds_ctx_t *ctx, uint64_t ref, ds_actor_id_t who, int reason)
{
    ds_msg_t *m;
    if (ds_down_new(&(ds_down_t){.ref = ref, .who = who, .reason = reason}, &m) == 0) {
        signal_send(ctx->rt, ctx, who, ctx->self, m);
    }
}

int ds_link(ds_ctx_t *ctx, ds_actor_id_t other)
{
    if (ds_id_eq(other, ctx->self) || ds_id_is_nil(other)) {
        return -EINVAL;
    }
    ds__ext_t *e = ext_of(ctx->a);
    if (id_find(&e->links, other) >= 0) {
        return 0;
    }
    ds_msg_t *m;
    int rc = ds_link_new(&(ds_link_t){0}, &m);
    if (rc < 0) {
        return rc;
    }
    *(ds_actor_id_t *)vec_push(&e->links, sizeof(ds_actor_id_t)) = other;
    bool remote = ds_id_node(other) != ctx->rt->cfg.node;
    if (remote) {
        remote_watch(ctx->rt, true, ctx->self, other, 0);
    }
    rc = signal_send(ctx->rt, ctx, ctx->self, other, m);
    if (rc == DS_ENOACTOR || rc == DS_ENODEDOWN) {
        /* Linking to the dead: an exit signal now, as Erlang's noproc; no watch lingers. */
        remote_unwatch(ctx->rt, true, ctx->self, other, 0);
        self_signal_exit(ctx, other, rc);
    }
    return 0;
}

int ds_unlink(ds_ctx_t *ctx, ds_actor_id_t other)
{
    ds__ext_t *e = ext_of(ctx->a);
    int i = id_find(&e->links, other);
    if (i < 0) {
        return 0;
    }
    vec_del(&e->links, (uint32_t)i, sizeof(ds_actor_id_t));
    remote_unwatch(ctx->rt, true, ctx->self, other, 0);
    ds_msg_t *m;
    if (ds_unlink_new(&(ds_unlink_t){0}, &m) == 0) {
        signal_send(ctx->rt, ctx, ctx->self, other, m);
    }
    return 0;
}

int ds_monitor(ds_ctx_t *ctx, ds_actor_id_t target, uint64_t *ref)
{
    if (ds_id_is_nil(target)) {
        return -EINVAL;
    }
    ds__ext_t *e = ext_of(ctx->a);
    uint64_t r = next_seq(ctx);
    ds_msg_t *m;
    int rc = ds_monitor_new(&(ds_monitor_t){.ref = r}, &m);
    if (rc < 0) {
        return rc;
    }
    *(ref_pair_t *)vec_push(&e->mons, sizeof(ref_pair_t)) = (ref_pair_t){r, target};
    if (ds_id_node(target) != ctx->rt->cfg.node) {
        remote_watch(ctx->rt, false, ctx->self, target, r);
    }
    rc = signal_send(ctx->rt, ctx, ctx->self, target, m);
    if (rc == DS_ENOACTOR || rc == DS_ENODEDOWN) {
        remote_unwatch(ctx->rt, false, ctx->self, target, r);
        self_signal_down(ctx, r, target, rc);
    }
    *ref = r;
    return 0;
}

int ds_demonitor(ds_ctx_t *ctx, uint64_t ref)
{
    ds__ext_t *e = ext_of(ctx->a);
    int i = ref_find(&e->mons, ref);
    if (i < 0) {
        return -ENOENT;
    }
    ds_actor_id_t target = ((ref_pair_t *)e->mons.v)[i].id;
    vec_del(&e->mons, (uint32_t)i, sizeof(ref_pair_t));
    remote_unwatch(ctx->rt, false, ctx->self, target, ref);
    ds_msg_t *m;
    if (ds_demonitor_new(&(ds_demonitor_t){.ref = ref}, &m) == 0) {
        signal_send(ctx->rt, ctx, ctx->self, target, m);
    }
    return 0;
}

int ds_exit(ds_ctx_t *ctx, ds_actor_id_t to, int reason)
{
    ds_msg_t *m;
    int rc = ds_exit_new(&(ds_exit_t){.who = ctx->self, .reason = reason}, &m);
    if (rc < 0) {
        return rc;
    }
    return signal_send(ctx->rt, ctx, ctx->self, to, m);
}

/* ---- asks ---- */

int ds_ask(ds_ctx_t *ctx, ds_actor_id_t to, ds_msg_t **msgp, int64_t timeout_ns, uint64_t *corr)
{
    uint64_t c = next_seq(ctx);
    int64_t deadline = ds_clock_now() + (timeout_ns > 0 ? timeout_ns : 0);
    /* The timeout is armed before the send, so a failed arm leaves nothing sent; a timeout
     * that fires before the ask is registered finds no pending corr and is dropped. */
    ds_msg_t *t;
    int rc = ds_timeout_new(NULL, &t);
    if (rc < 0) {
        return rc;
    }
    t->flags |= DS_MSG_F_SYSTEM;
    t->corr = c;
    t->from = to;
    uint64_t tid = 0;
    rc = ds_timers_add(ctx->rt->timers, ctx->self, deadline, 0, &t, &tid);
    if (rc < 0) {
        ds_msg_free(&t);
        return rc;
    }
    ds_msg_t *m = *msgp;
    m->flags |= DS_MSG_F_ASK;
    m->corr = c;
    m->deadline = deadline;
    rc = ds_send(ctx, to, msgp);
    if (rc < 0) {
        (void)ds_timers_cancel(ctx->rt->timers, tid);
        m->flags &= (uint16_t)~DS_MSG_F_ASK;
        m->corr = 0;
        m->deadline = 0;
        return rc;
    }
    ask_add(ext_of(ctx->a), c, tid);
    *corr = c;
    return 0;
}

static int reply_to(ds_rt_t *rt, ds_ctx_t *ctx, const ds_msg_t *req, ds_msg_t **replyp)
{
    if ((req->flags & DS_MSG_F_ASK) == 0 || ds_id_is_nil(req->from)) {
        return -EINVAL;
    }
    ds_msg_t *r = *replyp;
    r->flags |= DS_MSG_F_REPLY;
    r->corr = req->corr;
    r->from = ctx != NULL ? ctx->self : req->to;
    r->group = ctx != NULL ? ctx->a->gid : DS_GROUP_SYSTEM;
    return ds__deliver(rt, ctx, req->from, replyp);
}

int ds_reply(ds_ctx_t *ctx, const ds_msg_t *req, ds_msg_t **replyp)
{
    return reply_to(ctx->rt, ctx, req, replyp);
}

static int error_reply(ds_rt_t *rt, ds_ctx_t *ctx, const ds_msg_t *req, int code)
{
    ds_msg_t *m;
    int rc = ds_error_new(&(ds_error_t){.code = code}, &m);
    if (rc < 0) {
        return rc;
    }
    m->flags |= DS_MSG_F_ERROR;
    rc = reply_to(rt, ctx, req, &m);
    ds_msg_free(&m);
    return rc;
}

int ds_reply_error(ds_ctx_t *ctx, const ds_msg_t *req, int code)
{
    return error_reply(ctx->rt, ctx, req, code < 0 ? code : -EINVAL);
}

int ds_reply_from(ds_rt_t *rt, const ds_msg_t *req, ds_msg_t **replyp)
{
    return reply_to(rt, NULL, req, replyp);
}

int ds_reply_error_from(ds_rt_t *rt, const ds_msg_t *req, int code)
{
    return error_reply(rt, NULL, req, code < 0 ? code : -EINVAL);
}

/* ---- inside a turn ---- */

static bool on_exit_signal(ds_ctx_t *ctx, ds_msg_t *m)
{
    ds_exit_t x;
    if (ds_exit_decode(m, &x) < 0) {
        return true;
    }
    if (m->corr == LINK_EXIT) {
        ds__ext_t *e = ext_of(ctx->a);
        int i = id_find(&e->links, x.who);
        if (i < 0) {
            return true; /* we unlinked while the peer was dying: no effect */
        }
        vec_del(&e->links, (uint32_t)i, sizeof(ds_actor_id_t));
        remote_unwatch(ctx->rt, true, ctx->self, x.who, 0);
        m->corr = 0; /* a trapped signal reaches receive() like any other */
    }
    if (x.reason == DS_EXIT_KILL) {
        ds_ctx_stop(ctx, DS_EXIT_KILLED); /* untrappable, from a linked sender too */
        return true;
    }
    if ((ctx->a->flags & DS__A_TRAP) != 0) {
        return false; /* delivered to receive() as a DS_MT_EXIT message */
    }
    if (x.reason != DS_EXIT_NORMAL) {
        ds_ctx_stop(ctx, (int)x.reason);
    }
    return true;
}

static bool on_down(ds_ctx_t *ctx, const ds_msg_t *m)
{
    ds_down_t d;
    if (ds_down_decode(m, &d) < 0) {
        return true;
    }
    ds__ext_t *e = ext_of(ctx->a);
    int i = ref_find(&e->mons, d.ref);
    if (i < 0) {
        return true; /* demonitored, or already fired */
    }
    vec_del(&e->mons, (uint32_t)i, sizeof(ref_pair_t));
    remote_unwatch(ctx->rt, false, ctx->self, d.who, d.ref);
    return false;
}

static bool on_monitor(ds_ctx_t *ctx, const ds_msg_t *m, bool add)
{
    ds_monitor_t mon;
    if (ds_monitor_decode(m, &mon) < 0) {
        return true;
    }
    ds__ext_t *e = ext_of(ctx->a);
    if (add) {
        *(ref_pair_t *)vec_push(&e->watchers, sizeof(ref_pair_t)) = (ref_pair_t){mon.ref, m->from};
        return true;
    }
    int i = ref_find(&e->watchers, mon.ref);
    if (i >= 0) {
        vec_del(&e->watchers, (uint32_t)i, sizeof(ref_pair_t));
    }
    return true;
}

static bool on_reply(ds_ctx_t *ctx, const ds_msg_t *m)
{
    uint64_t tid;
    if (!ask_take(ctx->a->ext, m->corr, &tid)) {
        return true; /* late: the ask already timed out */
    }
    if (m->type != DS_MT_TIMEOUT) {
        (void)ds_timers_cancel(ctx->rt->timers, tid);
    }
    return false;
}

bool ds__system(ds_ctx_t *ctx, ds_msg_t **msgp)
{
    ds_msg_t *m = *msgp;
    if ((m->flags & DS_MSG_F_REPLY) != 0) {
        return on_reply(ctx, m);
    }
    switch (m->type) {
    case DS_MT_EXIT:
        return on_exit_signal(ctx, m);
    case DS_MT_DOWN:
        return on_down(ctx, m);
    case DS_MT_TIMEOUT:
        return on_reply(ctx, m);
    case DS_MT_LINK:
        if (id_find(&ext_of(ctx->a)->links, m->from) < 0) {
            *(ds_actor_id_t *)vec_push(&ext_of(ctx->a)->links, sizeof(ds_actor_id_t)) = m->from;
            if (ds_id_node(m->from) != ctx->rt->cfg.node) {
                remote_watch(ctx->rt, true, ctx->self, m->from, 0);
            }
        }
        return true;
    case DS_MT_UNLINK: {
        int i = id_find(&ext_of(ctx->a)->links, m->from);
        if (i >= 0) {
            vec_del(&ctx->a->ext->links, (uint32_t)i, sizeof(ds_actor_id_t));
            remote_unwatch(ctx->rt, true, ctx->self, m->from, 0);
        }
        return true;
    }
    case DS_MT_MONITOR:
        return on_monitor(ctx, m, true);
    case DS_MT_DEMONITOR:
        return on_monitor(ctx, m, false);
    case DS_MT_STOP: {
        ds_stop_t s;
        ds_ctx_stop(ctx, ds_stop_decode(m, &s) == 0 ? (int)s.reason : DS_EXIT_SHUTDOWN);
        ctx->a->flags |= DS__A_DRAIN;
        return true;
    }
    case DS_MT_PASSIVATE:
        return ds__registry_passivate(ctx);
    default:
        return false;
    }
}

void ds__signals_on_death(ds_ctx_t *ctx, int reason)
{
    if ((ctx->a->flags & DS__A_VIRTUAL) != 0) {
        ds__registry_forget(ctx->rt, ctx->a, ctx->self);
    }
    ds__ext_t *e = ctx->a->ext;
    if (e == NULL) {
        return;
    }
    ds_rt_t *rt = ctx->rt;
    /* A killed actor's links see DS_EXIT_KILLED, which they may trap (Erlang's `killed`). The
     * drain's own stops do not cascade through links: it stops everyone, children first. */
    int link_reason = reason == DS_EXIT_KILL ? DS_EXIT_KILLED : reason;
    bool cascade = (ctx->a->flags & DS__A_DRAIN) == 0;
    ds_actor_id_t *links = e->links.v;
    for (uint32_t i = 0; i < e->links.n; i++) {
        remote_unwatch(rt, true, ctx->self, links[i], 0);
        ds_msg_t *m = cascade ? link_exit_new(ctx->self, link_reason) : NULL;
        if (m != NULL) {
            signal_send(rt, ctx, ctx->self, links[i], m);
        }
    }
    ref_pair_t *w = e->watchers.v;
    for (uint32_t i = 0; i < e->watchers.n; i++) {
        ds_msg_t *m;
        if (ds_down_new(&(ds_down_t){.ref = w[i].ref, .who = ctx->self, .reason = reason}, &m) ==
            0) {
            signal_send(rt, ctx, ctx->self, w[i].id, m);
        }
    }
    ref_pair_t *mons = e->mons.v;
    for (uint32_t i = 0; i < e->mons.n; i++) {
        remote_unwatch(rt, false, ctx->self, mons[i].id, mons[i].ref);
    }
    /* Pending asks: cancel their timers; no reply can reach a dead actor. */
    for (uint32_t i = 0; i < e->ask_cap; i++) {
        if (e->ask_corr[i] > ASK_DELETED) {
            (void)ds_timers_cancel(rt->timers, e->ask_tid[i]);
        }
    }
    e->links.n = e->mons.n = e->watchers.n = 0;
    e->ask_n = 0;
}

void ds__answer_dead(ds_rt_t *rt, ds_actor_id_t self, ds_msg_t **msgp)
{
    ds_msg_t *m = *msgp;
    if ((m->flags & DS_MSG_F_ASK) != 0) {
        (void)error_reply(rt, NULL, m, DS_ECRASHED);
        return;
    }
    ds_msg_t *s = NULL;
    if (m->type == DS_MT_LINK && (m->flags & DS_MSG_F_SYSTEM) != 0) {
        s = link_exit_new(self, DS_ENOACTOR);
    } else if (m->type == DS_MT_MONITOR && (m->flags & DS_MSG_F_SYSTEM) != 0) {
        ds_monitor_t mon;
        if (ds_monitor_decode(m, &mon) == 0) {
            (void)ds_down_new(&(ds_down_t){.ref = mon.ref, .who = self, .reason = DS_ENOACTOR}, &s);
        }
    }
    if (s != NULL) {
        signal_send(rt, NULL, self, m->from, s);
    }
}

void ds_rt_node_down(ds_rt_t *rt, uint16_t node)
{
    pthread_mutex_lock(&rt->remote_lock);
    ds__remote_watch_t *fire = NULL;
    uint32_t nfire = 0, keep = 0;
    for (uint32_t i = 0; i < rt->nremote; i++) {
        if (rt->remote[i].node != node) {
            rt->remote[keep++] = rt->remote[i];
            continue;
        }
        fire = ds_xrealloc(fire, (nfire + 1) * sizeof(*fire));
        fire[nfire++] = rt->remote[i];
    }
    rt->nremote = keep;
    pthread_mutex_unlock(&rt->remote_lock);
    for (uint32_t i = 0; i < nfire; i++) {
        ds_msg_t *m = NULL;
        if (fire[i].is_link) {
            m = link_exit_new(fire[i].remote, DS_ENODEDOWN);
        } else {
            (void)ds_down_new(
                &(ds_down_t){.ref = fire[i].ref, .who = fire[i].remote, .reason = DS_ENODEDOWN},
                &m);
        }
        if (m != NULL) {
            signal_send(rt, NULL, fire[i].remote, fire[i].local, m);
        }
    }
    free(fire);
}
