/* rt: the actor runtime — actors, groups, the weighted fair scheduler, sends and asks, links
 * and monitors. docs/runtime.md tells the model; this header is the reference.
 *
 * Model. An actor is a behaviour (a table of callbacks), private state and a bounded mailbox;
 * it belongs to one group (a tenant, or the system group 0) and is named by a ds_actor_id_t.
 * Worker threads (one per core by default) run actors: a turn hands an actor at most `batch`
 * messages, one at a time, and no new one once the turn has run `slice_ns`; then the actor
 * yields. Groups are picked by weighted fair queueing
 * over virtual time, charged with the time their turns really ran (runtime/sched.c).
 *
 * Guarantees. Messages from one sender to one receiver arrive in the order sent. A send either
 * enqueues the message (0) or fails at once without blocking: DS_EFULL when the receiver's
 * mailbox is at its group's limit, DS_ECAP when the group's bytes in flight are at their cap,
 * DS_ENOACTOR when the id names no live actor, DS_ESHUTDOWN while the runtime drains (sends
 * from outside any actor only). System messages (exit signals, monitors firing, stop) are never
 * refused: at most one is due per link, monitor or stop request, so their number is bounded by
 * what the actors set up. An ask gets exactly one of: the reply, an error reply (the receiver
 * stopped or crashed with the ask unanswered), or a timeout.
 *
 * Threads. ds_rt_* calls and ds_send_from() are safe from any thread. ds_ctx_t calls are valid
 * only inside the callback that was handed the context, on the worker running the actor. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/id.h"
#include "runtime/msg.h"

typedef struct ds_rt ds_rt_t;
typedef struct ds_ctx ds_ctx_t;

/* Exit reasons. Any negative error code is also a reason (the actor failed with it). */
enum ds_exit_reason {
    DS_EXIT_NORMAL = 0,   /* stopped on purpose: linked actors are not taken down */
    DS_EXIT_SHUTDOWN = 1, /* stopped by its supervisor or by the drain: not restarted */
    DS_EXIT_KILL = 2,     /* sent with ds_exit() to kill: untrappable */
    DS_EXIT_KILLED = 3,   /* the reason of an actor that was killed, as its links see it */
};

/* What an actor does. init and terminate may be NULL. */
typedef struct ds_behaviour {
    const char *name; /* for logs and metrics */
    /* Runs once, before any message, on the thread that spawned the actor. Set state with
     * ds_ctx_set_state(). A negative return fails the spawn with that code. */
    int (*init)(ds_ctx_t *ctx, void *arg);
    /* Handles one message. *msgp is lent: the runtime frees it after the call unless the
     * behaviour took it (a consuming call such as ds_send() nulls *msgp). A negative return is
     * a failure: the actor terminates with that reason (its supervisor may restart it). */
    int (*receive)(ds_ctx_t *ctx, ds_msg_t **msgp);
    /* Runs once when the actor stops, with its reason; frees its state. */
    void (*terminate)(ds_ctx_t *ctx, int reason);
} ds_behaviour_t;

/* Runtime configuration. Zeroed fields take the defaults in brackets. */
typedef struct ds_rt_cfg {
    uint16_t node;           /* this node's id in actor ids [1] */
    unsigned workers;        /* worker threads [one per online core] */
    unsigned batch;          /* messages per turn before an actor yields [64] */
    uint32_t max_actors;     /* live actors at once [4,194,304]; at most DS_ID_INDEX_MAX */
    uint32_t max_groups;     /* groups, including the system group [65,536] */
    uint32_t max_payload;    /* largest payload a send accepts [16 MiB] */
    uint64_t quantum_ns;     /* credit of a group that wakes up, in its own CPU time [200 us] */
    uint64_t slice_ns;       /* a turn ends after the message that passes this time [50 us] */
    uint32_t system_mailbox; /* mailbox limit of the system group [65,536] */
    uint64_t system_bytes;   /* bytes-in-flight cap of the system group [1 GiB] */
} ds_rt_cfg_t;

/* Creates a runtime (not yet running). 0 and *out, or -EINVAL for a bad config. Free with
 * ds_rt_free(). */
int ds_rt_new(const ds_rt_cfg_t *cfg, ds_rt_t **out);
/* Starts the worker and timer threads. 0, or -errno if a thread could not start. */
int ds_rt_start(ds_rt_t *rt);
/* Drains: refuses new sends from outside actors (DS_ESHUTDOWN), delivers what is queued, then
 * stops actors children first (each gets terminate(DS_EXIT_SHUTDOWN)). Returns 0 when every
 * actor stopped within timeout_ns, DS_ETIMEDOUT when some had to be stopped without their
 * queue delivered. Call from a thread that is not a worker. */
int ds_rt_drain(ds_rt_t *rt, int64_t timeout_ns);
/* Stops the threads and frees everything (actors still alive are terminated with
 * DS_EXIT_SHUTDOWN first). Accepts NULL; sets *rtp to NULL. */
void ds_rt_free(ds_rt_t **rtp);
/* True once ds_rt_drain() or ds_rt_free() began (supervisors stop restarting then). */
bool ds_rt_draining(ds_rt_t *rt);
/* This runtime's node id. */
uint16_t ds_rt_node(const ds_rt_t *rt);
/* Number of live actors. */
uint32_t ds_rt_actor_count(ds_rt_t *rt);

/* Groups: tenants (and the system group 0) with a weight, a mailbox limit for each of their
 * actors and a cap on bytes in flight for all of them together. */
typedef struct ds_group_cfg {
    uint32_t weight;        /* share of CPU against other groups; >= 1 */
    uint32_t mailbox_limit; /* messages queued per actor; >= 1 */
    uint64_t bytes_cap;     /* bytes of queued messages, all actors of the group; >= 4096 */
} ds_group_cfg_t;

enum {
    DS_GROUP_SYSTEM = 0
};

/* A new group. 0 and its id in *out; -EINVAL for a bad config; -ENOSPC past max_groups. */
int ds_group_new(ds_rt_t *rt, const ds_group_cfg_t *cfg, uint32_t *out);
/* Changes a group's weight and limits at run time; they apply to the next send and turn. */
int ds_group_update(ds_rt_t *rt, uint32_t gid, const ds_group_cfg_t *cfg);

/* Metrics of one group, summed over workers at the time of the call. */
typedef struct ds_group_metrics {
    uint64_t delivered;      /* messages handed to receive() */
    uint64_t refused;        /* sends refused (full mailbox or byte cap) */
    uint64_t queued;         /* messages waiting in the group's mailboxes */
    uint64_t bytes;          /* bytes of those messages */
    uint64_t cpu_ns;         /* time spent in the group's turns */
    uint64_t turns;          /* turns that handled a message */
    uint32_t actors;         /* live actors */
    uint64_t delay_hist[16]; /* scheduling delay: bucket i counts delays < 2^(i+10) ns
                                (the last bucket takes everything above) */
} ds_group_metrics_t;

/* 0 and *out, or -ENOENT for an unknown group. */
int ds_group_metrics(ds_rt_t *rt, uint32_t gid, ds_group_metrics_t *out);

/* Spawning. */
typedef struct ds_spawn_opts {
    uint32_t group;       /* the actor's group [the spawner's, or the system group] */
    ds_actor_id_t link;   /* if not nil, linked to this actor atomically with the spawn */
    ds_actor_id_t parent; /* stopped after this actor during the drain [the spawner] */
    bool trap_exit;       /* exit signals arrive as DS_MT_EXIT messages instead of killing */
} ds_spawn_opts_t;

/* Spawns an actor; opts may be NULL. Runs b->init(ctx, arg) on the calling thread before it
 * returns. 0 and the id in *out; -EAGAIN past max_actors; -ENOENT for an unknown group;
 * DS_ESHUTDOWN while draining; or init's error. Safe from any thread and from actors. */
int ds_spawn(ds_rt_t *rt, const ds_behaviour_t *b, void *arg, const ds_spawn_opts_t *opts,
             ds_actor_id_t *out);

/* Sends from outside any actor (main thread, a transport's loop, a timer). Errors as above. */
int ds_send_from(ds_rt_t *rt, ds_actor_id_t to, ds_msg_t **msgp);

/* Actor context: valid only inside the callback that received it. */
ds_actor_id_t ds_self(const ds_ctx_t *ctx);
ds_rt_t *ds_ctx_rt(const ds_ctx_t *ctx);
uint32_t ds_ctx_group(const ds_ctx_t *ctx);
void *ds_ctx_state(const ds_ctx_t *ctx);
void ds_ctx_set_state(ds_ctx_t *ctx, void *state);
/* Asks the runtime to stop this actor with reason after the current callback returns. */
void ds_ctx_stop(ds_ctx_t *ctx, int reason);
/* Turns trapping of exit signals on or off. */
void ds_ctx_trap_exit(ds_ctx_t *ctx, bool on);

/* Sends msg to `to`, from this actor. 0 (message taken) or an error (still the caller's). */
int ds_send(ds_ctx_t *ctx, ds_actor_id_t to, ds_msg_t **msgp);
/* Sends msg as an ask: the reply, an error reply or a DS_MT_TIMEOUT message carrying the same
 * corr comes back to this actor, exactly one of them, within timeout_ns. 0 and *corr, or a
 * send error (no reply will come). */
int ds_ask(ds_ctx_t *ctx, ds_actor_id_t to, ds_msg_t **msgp, int64_t timeout_ns, uint64_t *corr);
/* Answers an ask (req must carry DS_MSG_F_ASK): reply gets DS_MSG_F_REPLY and req's corr.
 * Replies are never refused for a full mailbox: the asker made room for them by asking. */
int ds_reply(ds_ctx_t *ctx, const ds_msg_t *req, ds_msg_t **replyp);
/* Answers an ask with an error code (negative). */
int ds_reply_error(ds_ctx_t *ctx, const ds_msg_t *req, int code);
/* Answers an ask from outside any actor (a transport's loop thread that kept the request). */
int ds_reply_from(ds_rt_t *rt, const ds_msg_t *req, ds_msg_t **replyp);
/* Answers an ask with an error code (negative) from outside any actor. */
int ds_reply_error_from(ds_rt_t *rt, const ds_msg_t *req, int code);

/* Links and monitors (Erlang semantics). A link is two-way: when either side stops with a
 * reason other than DS_EXIT_NORMAL, the other gets an exit signal and stops with the same
 * reason unless it traps exits. A monitor is one-way: when the target stops (or its node goes
 * down) the watcher gets one DS_MT_DOWN message with the monitor's reference and the reason.
 * Linking to or monitoring a dead id fires at once with reason DS_ENOACTOR. */
int ds_link(ds_ctx_t *ctx, ds_actor_id_t other);
int ds_unlink(ds_ctx_t *ctx, ds_actor_id_t other);
int ds_monitor(ds_ctx_t *ctx, ds_actor_id_t target, uint64_t *ref);
int ds_demonitor(ds_ctx_t *ctx, uint64_t ref);
/* Sends an exit signal with reason to `to` (DS_EXIT_KILL cannot be trapped). */
int ds_exit(ds_ctx_t *ctx, ds_actor_id_t to, int reason);

/* Timers deliver messages. `to` gets msg after delay_ns (once) or every period_ns (a clone of
 * msg each time) until cancelled or until `to` is gone. The timer takes *msgp on success.
 * 0 and a timer id in *tid (tid may be NULL), -EINVAL for a zero period. */
int ds_timer_after(ds_rt_t *rt, ds_actor_id_t to, int64_t delay_ns, ds_msg_t **msgp, uint64_t *tid);
int ds_timer_every(ds_rt_t *rt, ds_actor_id_t to, int64_t period_ns, ds_msg_t **msgp,
                   uint64_t *tid);
/* Cancels a timer: 0 if it will not fire again, -ENOENT if it already fired or never was. */
int ds_timer_cancel(ds_rt_t *rt, uint64_t tid);

/* Remote delivery. A transport that links nodes (transports/nng) installs a router: sends to
 * ids of another node go to route(), which returns 0 (taken), DS_EFULL (link queue full: back
 * pressure) or DS_ENODEDOWN. monitor_node() registers interest in a node's going down. */
typedef struct ds_router {
    int (*route)(void *arg, ds_msg_t **msgp);
    void *arg;
} ds_router_t;
void ds_rt_set_router(ds_rt_t *rt, const ds_router_t *router);
/* Called by a transport when a peer node is lost: every monitor of an actor on that node, and
 * every link to one, fires with DS_ENODEDOWN. Safe from any thread. */
void ds_rt_node_down(ds_rt_t *rt, uint16_t node);
/* Delivers a message that arrived from another node (decoded by a transport with
 * ds_wire_decode()) to the local actor m->to, keeping its header: from, corr, flags, deadline
 * and group are the remote sender's, so replies, exit and down signals find their way back
 * through the router. 0: taken, *msgp set to NULL. On failure *msgp is still the caller's, and
 * the sender has been answered as a local send would have told it where an answer exists: an
 * ask gets an error reply carrying the code; a LINK or MONITOR signal to a dead actor gets its
 * EXIT or DOWN with DS_ENOACTOR. Errors: DS_ENOACTOR (no such live actor, or m->to is not on
 * this node: nothing is forwarded), DS_EFULL, DS_ECAP, DS_ESHUTDOWN (while draining, for
 * messages that are neither system signals nor replies), -EMSGSIZE (payload past the
 * runtime's max_payload). Safe from any thread (a transport's I/O threads). */
int ds_rt_deliver_remote(ds_rt_t *rt, ds_msg_t **msgp);
