/* loop: the libuv bridge. The one documented way for a transport (pg, http, blob...) to turn
 * libuv callbacks into messages to actors, and for actors to ask a transport for I/O without
 * blocking (DESIGN.md: an actor never blocks).
 *
 * A ds_loop_t is a libuv loop running on a thread of its own, owned by one transport. Three
 * things cross into it:
 *
 *   - Ports. ds_loop_port() spawns an actor whose turns run on the loop thread instead of a
 *     worker. A transport is such an actor: other actors ds_send() or ds_ask() it like any
 *     other (its id is location-transparent), and its receive() runs on the loop thread, where
 *     it may call uv_* on ds_loop_uv() and start I/O. When the I/O completes (a uv callback, on
 *     the loop thread again), it delivers the result as a message with ds_send_from(), or
 *     answers a kept ask with ds_reply_from() (runtime/rt.h); replies are never refused for a
 *     full mailbox. receive() borrows *msgp; to answer later it keeps the ask by taking it
 *     (*msgp = NULL) and frees it after replying.
 *   - Calls. ds_loop_call() queues a function to run on the loop thread, from any thread.
 *   - Work. ds_loop_work() runs blocking or CPU-heavy work on libuv's thread pool
 *     (uv_queue_work) and sends the message its done() builds to an actor. This is the bare
 *     primitive: the bounded pool shared fairly between tenants (DESIGN.md, "work pool") comes
 *     later and will sit on top of it. libuv's pool is process-wide (UV_THREADPOOL_SIZE
 *     threads, 4 by default) and also runs uv_fs_* and uv_getaddrinfo requests.
 *
 * Scheduling. A port becomes runnable when a message arrives; the sender pushes it on the
 * loop's run queue (lock-free, runtime/mpsc.h) and wakes the loop (uv_async_send). The wake
 * callback runs at most DS_LOOP_TURNS_PER_WAKE port turns and DS_LOOP_CALLS_PER_WAKE calls,
 * then wakes the loop again if more remain, so sockets and timers on the same loop are never
 * starved by a busy port. Each turn handles at most the runtime's `batch` messages.
 *
 * Threads. ds_loop_call(), ds_loop_work(), ds_loop_port(), ds_loop_rt() and
 * ds_loop_on_thread() are safe from any thread (actors included) until ds_loop_free() begins;
 * after that only the loop's own callbacks may call them (and get DS_ESHUTDOWN). ds_loop_uv() and
 * every uv_* call on its loop belong to the loop thread (before ds_loop_start(), to the thread
 * that created the loop). ds_loop_new(), ds_loop_start() and ds_loop_free() belong to the
 * transport's owner and block: never call them from an actor or a callback of the loop.
 * A port's init() runs on the thread that called ds_loop_port() (see runtime/rt.h): it may
 * touch the uv loop only when that thread is the loop thread (call ds_loop_port() from a
 * ds_loop_call() function); otherwise start handles in receive().
 *
 * Lifetime. Stop a loop before its runtime: ds_rt_drain() (optional), then ds_loop_free(),
 * then ds_rt_free(). ds_loop_free() sends a stop (DS_EXIT_SHUTDOWN) to every port still alive
 * and lets their turns run until they are gone: a port's terminate() runs on the loop thread
 * and is where it closes its handles and answers the asks it kept (ds_reply_error(), or freeing
 * them). Then it runs the calls still queued, cancels queued work (its done() gets
 * -ECANCELED), closes every handle still open (uv_walk + uv_close) and joins the thread once
 * the work already running has finished and every close callback has run.
 *
 * Errors and ownership follow STYLE.md: a call that fails never calls back; one that succeeds
 * calls back exactly once (calls and work are run even when the loop stops: work by
 * done(arg, -ECANCELED)). Nothing the caller passes as arg is freed here.
 *
 * Worked example: a "sleep" transport. An actor asks it with a message whose payload is a
 * delay in milliseconds (a u64); it starts a uv_timer and answers the kept ask when the timer
 * fires. tests/unit/test_loop.c builds and runs exactly this port.
 *
 *     typedef struct nap {
 *         uv_timer_t timer; // timer.data = the nap
 *         ds_rt_t *rt;
 *         ds_msg_t *ask; // kept until we reply
 *     } nap_t;
 *
 *     static void nap_closed(uv_handle_t *h)
 *     {
 *         nap_t *n = h->data;
 *         ds_msg_free(&n->ask);
 *         free(n);
 *     }
 *
 *     static void nap_fired(uv_timer_t *t) // the loop thread, outside any turn
 *     {
 *         nap_t *n = t->data;
 *         ds_msg_t *reply;
 *         if (ds_msg_new(MT_WOKE, NULL, 0, &reply) == 0 &&
 *             ds_reply_from(n->rt, n->ask, &reply) < 0) {
 *             ds_msg_free(&reply); // the asker is gone: still ours
 *         }
 *         uv_close((uv_handle_t *)t, nap_closed);
 *     }
 *
 *     static int sleep_receive(ds_ctx_t *ctx, ds_msg_t **msgp) // the loop thread, in a turn
 *     {
 *         ds_loop_t *l = ds_ctx_state(ctx); // init stored the loop passed as arg
 *         uint64_t ms;
 *         if ((*msgp)->len != sizeof(ms) || ((*msgp)->flags & DS_MSG_F_ASK) == 0) {
 *             return 0; // input is validated, never asserted
 *         }
 *         memcpy(&ms, (*msgp)->data, sizeof(ms));
 *         nap_t *n = ds_xmalloc(sizeof(*n));
 *         n->rt = ds_ctx_rt(ctx);
 *         n->ask = *msgp; // take the ask: the runtime will not free it
 *         *msgp = NULL;
 *         uv_timer_init(ds_loop_uv(l), &n->timer);
 *         n->timer.data = n;
 *         uv_timer_start(&n->timer, nap_fired, ms, 0);
 *         return 0;
 *     }
 *
 *     // The owner:  ds_loop_new(rt, "sleep", &l); ds_loop_start(l);
 *     //             ds_loop_port(l, &sleep_behaviour, l, NULL, &sleep_id);
 *     // Any actor:  ds_ask(ctx, sleep_id, &msg, timeout_ns, &corr): the reply (or an error
 *     //             reply, or a timeout) comes back to it as a message; it never waits.
 *
 * A real transport also keeps its naps in its state, so that terminate() can stop their timers
 * and answer their asks with ds_reply_error(ctx, ask, DS_ESHUTDOWN) (the test does). */
#pragma once

#include <stdbool.h>

#include <uv.h>

#include "runtime/id.h"
#include "runtime/msg.h"
#include "runtime/rt.h"

typedef struct ds_loop ds_loop_t;

enum {
    DS_LOOP_TURNS_PER_WAKE = 64,  /* port turns per wake-up before other loop work runs */
    DS_LOOP_CALLS_PER_WAKE = 256, /* queued calls per wake-up */
    DS_LOOP_NAME_MAX = 15,        /* bytes of the name kept (a Linux thread name) */
};

/* A called function: runs on the loop thread with the arg given to ds_loop_call(). */
typedef void (*ds_loop_fn_t)(ds_loop_t *l, void *arg);
/* Work: runs on a thread of libuv's pool. It may block; it must not touch the loop. */
typedef void (*ds_loop_work_fn_t)(void *arg);
/* After work, on the loop thread: status is 0, or -ECANCELED when the loop stopped before the
 * work began (work() did not run). Returns the message to send, or NULL to send nothing; it
 * is the place to free arg. */
typedef ds_msg_t *(*ds_loop_done_fn_t)(void *arg, int status);

/* A new loop for rt (not yet running), its thread named name (cut to DS_LOOP_NAME_MAX bytes;
 * NULL: "ds-loop"). 0 and *out, -EINVAL for a NULL rt, or libuv's error (-errno) if the loop
 * could not be set up. Free with ds_loop_free(). */
int ds_loop_new(ds_rt_t *rt, const char *name, ds_loop_t **out);

/* Starts the loop thread. 0, -EALREADY if it runs already, or -errno if the thread could not
 * start. Ports, calls and work accepted before the start wait for it. */
int ds_loop_start(ds_loop_t *l);

/* Stops and frees the loop (see "Lifetime" above): stops its ports, runs the queued calls,
 * cancels queued work, closes every handle, joins the thread. A loop that never started is
 * shut down the same way on the calling thread. Blocks until done; never call it from the loop
 * thread or from an actor. Accepts NULL; sets *lp to NULL. */
void ds_loop_free(ds_loop_t **lp);

/* The libuv loop, for uv_*_init() and friends. Valid only on the loop thread (or, before
 * ds_loop_start(), on the thread that created the loop). Owned by the ds_loop_t. */
uv_loop_t *ds_loop_uv(ds_loop_t *l);

/* The runtime the loop delivers to. */
ds_rt_t *ds_loop_rt(const ds_loop_t *l);

/* True when the calling thread is l's loop thread. Safe from any thread. */
bool ds_loop_on_thread(const ds_loop_t *l);

/* Spawns a port: an actor whose init runs on the calling thread and whose turns (receive and
 * terminate) run on the loop thread. Arguments as ds_spawn(); opts may be NULL. 0 and the id
 * in *out; DS_ESHUTDOWN once ds_loop_free() began (or, outside an actor, while the runtime
 * drains); -EINVAL for a behaviour without receive(); any error of ds_spawn() or of b->init.
 * b must outlive the port. Safe from any thread and from actors. */
int ds_loop_port(ds_loop_t *l, const ds_behaviour_t *b, void *arg, const ds_spawn_opts_t *opts,
                 ds_actor_id_t *out);

/* Queues fn(l, arg) to run on the loop thread, after the calls queued before it (FIFO: two
 * calls from one thread run in the order made; calls from different threads in the order
 * they were queued). Always queued, even from the loop thread, so it never runs inside the
 * caller. 0 (fn will run exactly once, even if the loop begins to stop), -EINVAL for a NULL fn,
 * or DS_ESHUTDOWN once ds_loop_free() began (fn will not run). */
int ds_loop_call(ds_loop_t *l, ds_loop_fn_t fn, void *arg);

/* Runs work(arg) on libuv's thread pool, then done(arg, status) on the loop thread, and sends
 * the message done returns to `to` with ds_send_from() (from DS_ID_NIL). A send that fails
 * (`to` is gone, its mailbox is full, the runtime drains) frees the message and logs at debug
 * level: a requester that must hear back should ask a port, whose replies are never refused.
 * 0 (done will be called exactly once), -EINVAL for a NULL work or done, or DS_ESHUTDOWN once
 * ds_loop_free() began (neither will be called). Safe from any thread. */
int ds_loop_work(ds_loop_t *l, ds_actor_id_t to, ds_loop_work_fn_t work, ds_loop_done_fn_t done,
                 void *arg);
