/* loop: the libuv bridge (runtime/loop.h).
 *
 * One uv_async_t, `wake`, is the only door into the loop thread. Two lock-free MPSC queues sit
 * behind it: `runq` holds port actors made runnable by senders (linked through the actor's
 * `run` node, as worker inboxes are in sched.c), `calls` holds ds_loop_call() records. A
 * producer pushes, then calls uv_async_send(); libuv guarantees a wake callback after that
 * send returns, and the callback pops what it finds. ds_mpsc_pop() can miss a push that is
 * half done; that producer's own uv_async_send() comes after its push completes, so the node
 * is seen by the next callback.
 *
 * Ports are actors with an executor (rt_int.h): a->exec points at the loop's `ex`, whose
 * schedule() pushes on `runq`. The port's behaviour is a copy of the caller's with init and
 * terminate wrapped, held in a port_t the actor's `beh` points at: init records the port's id
 * (so ds_loop_free() can stop it), terminate counts it gone.
 *
 * Shutdown races. ds_loop_free() frees the memory that producers touch (the queues, `wake`).
 * A producer therefore counts itself in `users` before it looks at `stopping` and out after its
 * uv_async_send(); the loop thread closes `wake` only once `stopping` is set, every port is
 * dead (no sender can schedule a dead actor: its sched flag stays 1) and `users` is zero. The
 * count and the flag are a Dekker pair: a producer either sees `stopping`, or the loop thread
 * sees it counted and waits.
 *
 * Threads: every field under "loop thread" is touched only by the thread running the uv loop
 * (the loop thread, or ds_loop_free()'s caller for a loop that never started). */
#define _GNU_SOURCE
#include "runtime/loop.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "runtime/catalog.h"
#include "runtime/err.h"
#include "runtime/log.h"
#include "runtime/mem.h"
#include "runtime/mpsc.h"
#include "runtime/rt_int.h"

typedef struct port port_t;

/* A queued ds_loop_call(). */
typedef struct call {
    struct ds_qnode node; /* must stay first: the queue's link */
    ds_loop_fn_t fn;
    void *arg;
} call_t;

/* A ds_loop_work() request, from its call until done() ran. */
typedef struct work {
    uv_work_t req;
    ds_loop_t *loop;
    ds_actor_id_t to;
    ds_loop_work_fn_t work;
    ds_loop_done_fn_t done;
    void *arg;
    struct work *prev, *next; /* the loop's requests in the pool (loop thread) */
} work_t;

/* A live port. The actor's beh points at `beh`, so the wrappers find the port from the ctx. */
struct port {
    ds_behaviour_t beh; /* the caller's, with init and terminate wrapped */
    const ds_behaviour_t *user;
    ds_loop_t *loop;
    ds_actor_id_t id; /* set by init (ports_mu); nil until then */
    port_t *prev, *next;
};

struct ds_loop {
    ds__executor_t ex; /* must stay first: a port's a->exec points here */
    ds_rt_t *rt;
    char name[DS_LOOP_NAME_MAX + 1];
    pthread_t thread;
    atomic_bool started;
    /* Producers' side, shared. */
    ds_mpsc_t runq;       /* runnable ports */
    ds_mpsc_t calls;      /* queued call_t */
    atomic_uint users;    /* producers between their `stopping` check and their wake-up */
    atomic_bool stopping; /* ds_loop_free() began: calls, work and ports are refused */
    uv_async_t wake;
    /* Ports: any thread spawns, the loop thread retires. */
    pthread_mutex_t ports_mu;
    port_t *ports;      /* live ports (ports_mu) */
    atomic_uint nports; /* live ports, including those whose init has not run */
    bool shutting;      /* stops were sent (ports_mu; then no new port may start) */
    /* Loop thread. */
    uv_loop_t uv;
    bool in_wake;  /* inside on_wake(): pushes need not wake the loop */
    bool closed;   /* every handle was closed: only completions and close callbacks remain */
    work_t *works; /* requests handed to the pool */
};

static _Thread_local const ds_loop_t *tl_loop;

/* ---- waking the loop ---- */

/* Counts a producer in; false (and counted out again) once the loop is stopping. */
static bool enter(ds_loop_t *l)
{
    /* seq_cst add then load: pairs with the seq_cst store of `stopping` in ds_loop_free() and
     * the load of `users` in quiesce() (Dekker). */
    atomic_fetch_add(&l->users, 1);
    if (atomic_load(&l->stopping)) {
        atomic_fetch_sub_explicit(&l->users, 1, memory_order_release);
        return false;
    }
    return true;
}

static void leave(ds_loop_t *l)
{
    /* Release pairs with the acquire load in quiesce(): our push and send happen before the
     * loop thread closes `wake`. */
    atomic_fetch_sub_explicit(&l->users, 1, memory_order_release);
}

/* Wakes the loop after a push. Inside on_wake() the callback's own re-check covers it. */
static void signal_loop(ds_loop_t *l)
{
    if (tl_loop == l && l->in_wake) {
        return;
    }
    int rc = uv_async_send(&l->wake);
    (void)rc; /* fails only on a handle that is not an async handle */
}

/* The executor's schedule(): any thread, when a port becomes runnable (its sched flag went
 * 0 -> 1, or its turn left messages queued). A dead port is never scheduled, so the loop
 * cannot have closed `wake` while a port is live; `users` covers the push-to-send window. */
static void port_schedule(ds__executor_t *ex, ds__actor_t *a)
{
    ds_loop_t *l = (ds_loop_t *)ex;
    /* seq_cst: ordered before the push, so the loop thread that pops the port (and may see it
     * die) sees us counted in quiesce(). */
    atomic_fetch_add(&l->users, 1);
    ds_mpsc_push(&l->runq, &a->run);
    signal_loop(l);
    leave(l);
}

/* ---- the loop thread ---- */

static void run_calls(ds_loop_t *l, unsigned max)
{
    for (unsigned i = 0; i < max; i++) {
        call_t *c = (call_t *)ds_mpsc_pop(&l->calls);
        if (c == NULL) {
            return;
        }
        ds_loop_fn_t fn = c->fn;
        void *arg = c->arg;
        free(c);
        fn(l, arg);
    }
}

static void run_ports(ds_loop_t *l, unsigned max)
{
    for (unsigned i = 0; i < max; i++) {
        struct ds_qnode *n = ds_mpsc_pop(&l->runq);
        if (n == NULL) {
            return;
        }
        ds__actor_t *a = (ds__actor_t *)((char *)n - offsetof(ds__actor_t, run));
        ds__run_external(l->rt, a);
    }
}

/* Sends a stop to every live port; from here on no new port may start (port_init fails). */
static void stop_ports(ds_loop_t *l)
{
    pthread_mutex_lock(&l->ports_mu);
    l->shutting = true;
    for (port_t *p = l->ports; p != NULL; p = p->next) {
        if (ds_id_is_nil(p->id)) {
            continue; /* its init has not run: it will see `shutting` and fail */
        }
        ds_msg_t *m;
        if (ds_stop_new(&(ds_stop_t){.reason = DS_EXIT_SHUTDOWN}, &m) < 0) {
            continue;
        }
        m->flags |= DS_MSG_F_SYSTEM; /* never refused */
        m->from = DS_ID_NIL;
        if (ds__deliver(l->rt, NULL, p->id, &m) < 0) {
            ds_msg_free(&m); /* dying already: its terminate is on its way */
        }
    }
    pthread_mutex_unlock(&l->ports_mu);
}

/* Waits out producers still between their `stopping` check and their uv_async_send(). */
static void quiesce(ds_loop_t *l)
{
    /* Acquire pairs with the release in leave(). Producers hold no lock and never wait here,
     * so this spin is a few instructions of theirs long. */
    while (atomic_load_explicit(&l->users, memory_order_acquire) != 0) {
        sched_yield();
    }
}

static void close_one(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) {
        uv_close(h, NULL);
    }
}

/* Every port is gone: run the calls left, cancel queued work, close every handle. After this
 * the loop only finishes the work already running and the close callbacks. */
static void finish(ds_loop_t *l)
{
    quiesce(l);
    while (!ds_mpsc_empty(&l->calls)) {
        run_calls(l, UINT32_MAX);
    }
    for (work_t *w = l->works; w != NULL; w = w->next) {
        /* Fails with UV_EBUSY for work already running: its done() comes with status 0. */
        (void)uv_cancel((uv_req_t *)&w->req);
    }
    l->closed = true;
    uv_walk(&l->uv, close_one, NULL);
}

static void on_wake(uv_async_t *h)
{
    ds_loop_t *l = h->data;
    l->in_wake = true;
    if (!l->shutting && atomic_load(&l->stopping)) {
        stop_ports(l);
    }
    run_calls(l, DS_LOOP_CALLS_PER_WAKE);
    run_ports(l, DS_LOOP_TURNS_PER_WAKE);
    l->in_wake = false;
    if (l->shutting && atomic_load(&l->nports) == 0) {
        finish(l);
        return;
    }
    if (!ds_mpsc_empty(&l->runq) || !ds_mpsc_empty(&l->calls)) {
        (void)uv_async_send(&l->wake); /* more than one wake's share: let other I/O run first */
    }
}

/* Runs the loop until finish() closed everything, then whatever a late callback opened. */
static void loop_run(ds_loop_t *l)
{
    const ds_loop_t *saved = tl_loop;
    tl_loop = l;
    while (!l->closed) {
        (void)uv_run(&l->uv, UV_RUN_DEFAULT);
    }
    while (uv_loop_alive(&l->uv) != 0) {
        uv_walk(&l->uv, close_one, NULL);
        (void)uv_run(&l->uv, UV_RUN_DEFAULT);
    }
    /* Unreferenced handles do not keep uv_run going; close them too. */
    uv_walk(&l->uv, close_one, NULL);
    (void)uv_run(&l->uv, UV_RUN_NOWAIT);
    tl_loop = saved;
}

static void *loop_main(void *arg)
{
    ds_loop_t *l = arg;
    (void)pthread_setname_np(pthread_self(), l->name);
    loop_run(l);
    return NULL;
}

/* ---- lifecycle ---- */

int ds_loop_new(ds_rt_t *rt, const char *name, ds_loop_t **out)
{
    if (rt == NULL || out == NULL) {
        return -EINVAL;
    }
    ds_loop_t *l = ds_xcalloc(1, sizeof(*l));
    l->ex.schedule = port_schedule;
    l->rt = rt;
    const char *n = name != NULL ? name : "ds-loop";
    size_t len = strnlen(n, DS_LOOP_NAME_MAX);
    memcpy(l->name, n, len);
    l->name[len] = '\0';
    ds_mpsc_init(&l->runq);
    ds_mpsc_init(&l->calls);
    atomic_init(&l->users, 0);
    atomic_init(&l->stopping, false);
    atomic_init(&l->started, false);
    atomic_init(&l->nports, 0);
    int rc = uv_loop_init(&l->uv);
    if (rc < 0) {
        free(l);
        return rc;
    }
    rc = uv_async_init(&l->uv, &l->wake, on_wake);
    if (rc < 0) {
        (void)uv_loop_close(&l->uv);
        free(l);
        return rc;
    }
    l->wake.data = l;
    pthread_mutex_init(&l->ports_mu, NULL);
    *out = l;
    return 0;
}

int ds_loop_start(ds_loop_t *l)
{
    if (atomic_exchange(&l->started, true)) {
        return -EALREADY;
    }
    int rc = pthread_create(&l->thread, NULL, loop_main, l);
    if (rc != 0) {
        atomic_store(&l->started, false);
        return -rc;
    }
    return 0;
}

void ds_loop_free(ds_loop_t **lp)
{
    ds_loop_t *l = *lp;
    if (l == NULL) {
        return;
    }
    *lp = NULL;
    assert(!ds_loop_on_thread(l)); /* it would join itself */
    /* seq_cst: pairs with the add then load in enter() (Dekker). */
    atomic_store(&l->stopping, true);
    /* Our own wake-up is a producer's too: the loop must not close `wake` under it. */
    atomic_fetch_add(&l->users, 1);
    (void)uv_async_send(&l->wake);
    leave(l);
    if (atomic_load(&l->started)) {
        pthread_join(l->thread, NULL);
    } else {
        loop_run(l); /* never started: shut down here, the same way */
    }
    int rc = uv_loop_close(&l->uv);
    assert(rc == 0); /* loop_run() closed every handle and waited for every request */
    (void)rc;
    assert(l->ports == NULL && l->works == NULL);
    pthread_mutex_destroy(&l->ports_mu);
    free(l);
}

uv_loop_t *ds_loop_uv(ds_loop_t *l)
{
    assert(!atomic_load_explicit(&l->started, memory_order_relaxed) || ds_loop_on_thread(l));
    return &l->uv;
}

ds_rt_t *ds_loop_rt(const ds_loop_t *l)
{
    return l->rt;
}

bool ds_loop_on_thread(const ds_loop_t *l)
{
    return l != NULL && tl_loop == l;
}

/* ---- ports ---- */

static port_t *port_of(ds_ctx_t *ctx)
{
    /* beh is the first member of port_t: the behaviour the actor runs is its port. */
    return (port_t *)(uintptr_t)ctx->a->beh;
}

static void port_unlink(ds_loop_t *l, port_t *p)
{
    if (p->prev != NULL) {
        p->prev->next = p->next;
    } else {
        l->ports = p->next;
    }
    if (p->next != NULL) {
        p->next->prev = p->prev;
    }
}

static int port_init(ds_ctx_t *ctx, void *arg)
{
    port_t *p = port_of(ctx);
    ds_loop_t *l = p->loop;
    pthread_mutex_lock(&l->ports_mu);
    bool shutting = l->shutting;
    if (!shutting) {
        p->id = ds_self(ctx);
    }
    pthread_mutex_unlock(&l->ports_mu);
    if (shutting) {
        return DS_ESHUTDOWN; /* stop_ports() has passed: nobody would stop this port */
    }
    return p->user->init != NULL ? p->user->init(ctx, arg) : 0;
}

/* Runs on the loop thread, when the port dies in a turn. The runtime does not read the
 * behaviour of a dead actor again, so the port record goes with it. */
static void port_terminate(ds_ctx_t *ctx, int reason)
{
    port_t *p = port_of(ctx);
    ds_loop_t *l = p->loop;
    if (p->user->terminate != NULL) {
        p->user->terminate(ctx, reason);
    }
    pthread_mutex_lock(&l->ports_mu);
    port_unlink(l, p);
    pthread_mutex_unlock(&l->ports_mu);
    free(p);
    /* Release pairs with the load in on_wake(): what terminate did comes before finish(). */
    atomic_fetch_sub_explicit(&l->nports, 1, memory_order_release);
}

int ds_loop_port(ds_loop_t *l, const ds_behaviour_t *b, void *arg, const ds_spawn_opts_t *opts,
                 ds_actor_id_t *out)
{
    if (b == NULL || b->receive == NULL) {
        return -EINVAL;
    }
    port_t *p = ds_xcalloc(1, sizeof(*p));
    p->beh = *b;
    p->beh.init = port_init;
    p->beh.terminate = port_terminate;
    p->user = b;
    p->loop = l;
    p->id = DS_ID_NIL;
    pthread_mutex_lock(&l->ports_mu);
    if (l->shutting || atomic_load(&l->stopping)) {
        pthread_mutex_unlock(&l->ports_mu);
        free(p);
        return DS_ESHUTDOWN;
    }
    p->next = l->ports;
    if (l->ports != NULL) {
        l->ports->prev = p;
    }
    l->ports = p;
    atomic_fetch_add_explicit(&l->nports, 1, memory_order_relaxed);
    pthread_mutex_unlock(&l->ports_mu);
    /* From here the port may run and die on the loop thread before we return: p is not ours
     * to touch after a successful spawn. */
    ds_actor_id_t id;
    int rc = ds__spawn_ex(l->rt, &p->beh, arg, opts, &l->ex, NULL, &id);
    if (rc < 0) {
        /* init failed or never ran: no turn, no terminate. */
        pthread_mutex_lock(&l->ports_mu);
        port_unlink(l, p);
        pthread_mutex_unlock(&l->ports_mu);
        free(p);
        /* If the loop is shutting down, on_wake() may have waited for this port: wake it to
         * look again. Counted in `users` first (seq_cst, before the decrement), so finish()
         * cannot close `wake` before our send. */
        atomic_fetch_add(&l->users, 1);
        atomic_fetch_sub(&l->nports, 1);
        signal_loop(l);
        leave(l);
        return rc;
    }
    *out = id;
    return 0;
}

/* ---- calls ---- */

int ds_loop_call(ds_loop_t *l, ds_loop_fn_t fn, void *arg)
{
    if (fn == NULL) {
        return -EINVAL;
    }
    if (!enter(l)) {
        return DS_ESHUTDOWN;
    }
    call_t *c = ds_xmalloc(sizeof(*c));
    c->fn = fn;
    c->arg = arg;
    ds_mpsc_push(&l->calls, &c->node);
    signal_loop(l);
    leave(l);
    return 0;
}

/* ---- work ---- */

static void work_run(uv_work_t *req)
{
    work_t *w = req->data;
    w->work(w->arg);
}

static void work_unlink(ds_loop_t *l, work_t *w)
{
    if (w->prev != NULL) {
        w->prev->next = w->next;
    } else {
        l->works = w->next;
    }
    if (w->next != NULL) {
        w->next->prev = w->prev;
    }
}

/* The loop thread: calls done and sends what it returns. status is 0 or -ECANCELED. */
static void work_finish(ds_loop_t *l, work_t *w, int status)
{
    ds_msg_t *m = w->done(w->arg, status);
    if (m != NULL) {
        int rc = ds_send_from(l->rt, w->to, &m);
        if (rc < 0) {
            ds_log_debug("could not deliver work result", DS_LOG_STR("loop", l->name),
                         DS_LOG_U64("type", m->type), DS_LOG_STR("error", ds_errname(rc)),
                         DS_LOG_END);
            ds_msg_free(&m);
        }
    }
    free(w);
}

static void work_after(uv_work_t *req, int status)
{
    work_t *w = req->data;
    ds_loop_t *l = w->loop;
    work_unlink(l, w);
    work_finish(l, w, status == UV_ECANCELED ? -ECANCELED : status);
}

/* A ds_loop_call() function: hands the request to the pool, or cancels it if the loop is
 * stopping (stops were sent: the ports that wanted the result are going away). */
static void work_submit(ds_loop_t *l, void *arg)
{
    work_t *w = arg;
    if (l->shutting) {
        work_finish(l, w, -ECANCELED);
        return;
    }
    w->prev = NULL;
    w->next = l->works;
    if (l->works != NULL) {
        l->works->prev = w;
    }
    l->works = w;
    int rc = uv_queue_work(&l->uv, &w->req, work_run, work_after);
    assert(rc == 0); /* fails only for a NULL work callback */
    (void)rc;
}

int ds_loop_work(ds_loop_t *l, ds_actor_id_t to, ds_loop_work_fn_t work, ds_loop_done_fn_t done,
                 void *arg)
{
    if (work == NULL || done == NULL) {
        return -EINVAL;
    }
    work_t *w = ds_xcalloc(1, sizeof(*w));
    w->req.data = w;
    w->loop = l;
    w->to = to;
    w->work = work;
    w->done = done;
    w->arg = arg;
    /* Through the call queue even on the loop thread: one path, and FIFO with the calls. */
    int rc = ds_loop_call(l, work_submit, w);
    if (rc < 0) {
        free(w);
        return rc;
    }
    return 0;
}
