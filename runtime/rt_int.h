/* rt_int: the runtime's private structures, shared by rt.c, sched.c, link.c, registry.c and
 * loop.c. Nothing outside runtime/ includes this file.
 *
 * Memory: actors live inline in a slot table of fixed-size chunks that are never returned to
 * the system while the runtime lives (type-stable memory), so a sender that read a slot may
 * always touch it; whether it still holds the actor the sender meant is told by the slot's
 * state word (generation + flags). A dead actor's slot is reused only after a grace period:
 * every worker has passed a turn boundary since it died (quiescent-state reclamation) and no
 * foreign sender holds a pin on it. */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "runtime/id.h"
#include "runtime/mpsc.h"
#include "runtime/msg.h"
#include "runtime/rt.h"
#include "runtime/timer.h"

enum {
    DS__CHUNK_BITS = 14, /* 16,384 actors (2 MiB) a chunk: one huge page */
    DS__CHUNK_SIZE = 1 << DS__CHUNK_BITS,
    DS__HIST_BUCKETS = 16,
    DS__CACHELINE = 64,
};

/* The state word of a slot: generation << 32 | flags | foreign pins (low 24 bits). */
#define DS__ST_ALIVE   ((uint64_t)1 << 31)
#define DS__ST_DEAD    ((uint64_t)1 << 30)
#define DS__ST_PINS    ((uint64_t)0xffffff)
#define DS__ST_GEN(st) ((uint32_t)((st) >> 32))

enum ds__actor_flag {
    DS__A_TRAP = 1 << 0,     /* exit signals arrive as messages */
    DS__A_EXTERNAL = 1 << 1, /* turns run on an executor outside the workers (loop.c) */
    DS__A_VIRTUAL = 1 << 2,  /* activated by the registry; passivates when idle */
    DS__A_DRAIN = 1 << 3,    /* stopped by the drain: links are not taken down */
};

typedef struct ds__ext ds__ext_t;
typedef struct ds__executor ds__executor_t;

/* An actor: 128 bytes, two cache lines. The first is written by senders, the second only by
 * the thread running the actor. */
typedef struct ds__actor {
    /* line 0: senders */
    ds_mpsc_t mb;            /* 24 bytes: tail, head (consumer), sentinel */
    atomic_uint depth;       /* queued messages (user, reply and system) */
    atomic_uint sched;       /* 1 while queued to run or running, 0 when idle */
    _Atomic uint64_t st;     /* generation, ALIVE/DEAD, foreign pins */
    struct ds_qnode run;     /* link in a worker inbox or executor queue */
    struct ds__actor *rnext; /* link in a worker's per-group FIFO (owner only) */
    atomic_uint nchildren;   /* live actors whose parent this is */
    uint32_t gid;            /* group, fixed for the actor's life */
    /* line 1: the running thread */
    const ds_behaviour_t *beh;
    void *state;
    ds__ext_t *ext;       /* links, monitors, asks, registry key: allocated on first use */
    ds__executor_t *exec; /* NULL: scheduled on the workers */
    ds_actor_id_t parent;
    uint64_t enq_tick; /* when it became runnable (scheduling delay) */
    uint32_t index;
    uint16_t home;  /* the worker it last ran on */
    uint16_t flags; /* enum ds__actor_flag */
    int32_t stop_reason;
    uint32_t pad_;
} ds__actor_t;

_Static_assert(sizeof(ds__actor_t) == 128, "an actor is two cache lines");

/* An external executor runs turns of actors outside the workers (a transport's loop thread).
 * schedule() is called from any thread when such an actor becomes runnable; the executor later
 * calls ds__run_external() on its own thread. */
struct ds__executor {
    void (*schedule)(ds__executor_t *ex, ds__actor_t *a);
};

/* A group's per-worker part: the FIFO of its runnable actors on that worker, its virtual time
 * there, and counters written only by that worker (read by metrics with relaxed loads). */
typedef struct ds__wgroup {
    ds__actor_t *head, *tail;
    uint64_t vt;
    uint32_t heap_pos; /* index in the worker's heap + 1; 0 when not in it */
    uint32_t count;
    uint32_t wload; /* the weight it added to the worker's load while in the heap */
    _Atomic uint64_t delivered, sent, cpu_ns, turns, refused;
    _Atomic uint64_t hist[DS__HIST_BUCKETS];
} __attribute__((aligned(DS__CACHELINE))) ds__wgroup_t;

typedef struct ds__group {
    uint32_t id;
    atomic_uint weight;
    atomic_uint vmul; /* virtual time per ns, 2^20 / weight */
    atomic_uint mailbox_limit;
    _Atomic uint64_t bytes_cap;
    _Atomic uint64_t bytes;      /* bytes in flight, all actors of the group */
    _Atomic uint64_t refused;    /* sends refused */
    _Atomic uint64_t fsent;      /* sends from outside the workers */
    _Atomic uint64_t xdelivered; /* messages run by external executors */
    _Atomic uint64_t dropped;    /* messages a dead actor's mailbox still held (answered) */
    atomic_uint actors;
    ds__wgroup_t w[]; /* one per worker */
} ds__group_t;

typedef struct ds__worker ds__worker_t;

struct ds_ctx {
    ds_rt_t *rt;
    ds__worker_t *w; /* NULL on an external executor */
    ds__actor_t *a;
    ds_actor_id_t self;
    bool stop;
    int reason;
};

typedef struct ds__limbo {
    uint32_t *idx;
    uint64_t *epoch;
    uint32_t n, cap;
} ds__limbo_t;

struct ds__worker {
    ds_rt_t *rt;
    unsigned id;
    pthread_t thread;
    ds_mpsc_t inbox; /* actors made runnable by other threads */
    _Atomic uint32_t wake_seq;
    atomic_bool parked;
    _Atomic uint64_t seen_epoch; /* quiescent-state epoch; UINT64_MAX while offline */
    /* owner only */
    ds__wgroup_t **heap; /* groups with runnable actors here, by virtual time */
    uint32_t nheap;
    uint32_t nrunnable;
    uint64_t vnow;     /* virtual time of the last group picked */
    uint64_t tick_now; /* tick at the start of the current turn */
    uint64_t seq;      /* correlation ids and monitor references */
    uint32_t since_reclaim;
    uint32_t since_balance;
    uint32_t load_local; /* sum of the weights of the groups in the heap */
    atomic_uint load;    /* load_local, published for the other workers */
    atomic_uint state;   /* enum ds__wstate */
} __attribute__((aligned(DS__CACHELINE)));

enum ds__wstate {
    DS__W_RUNNING = 0,   /* has work, or was handed some */
    DS__W_SEARCHING = 1, /* idle, spinning on its inbox */
    DS__W_PARKED = 2,    /* idle, asleep on wake_seq */
};

typedef struct ds__remote_watch {
    uint16_t node;
    bool is_link;
    ds_actor_id_t local, remote;
    uint64_t ref;
} ds__remote_watch_t;

struct ds_rt {
    ds_rt_cfg_t cfg;
    uint64_t slice_ticks; /* cfg.slice_ns in ds_clock_ticks() units */
    unsigned nworkers;
    ds__worker_t *workers;
    _Atomic(ds__actor_t *) *chunks; /* cfg.max_actors / DS__CHUNK_SIZE pointers */
    uint32_t nchunks;
    pthread_mutex_t slot_lock; /* free list and chunk growth */
    uint32_t *free_idx;
    uint32_t nfree, free_cap;
    atomic_uint hwm;        /* highest index handed out + 1 */
    atomic_uint live;       /* live actors */
    atomic_uint rr;         /* round-robin home for new actors */
    _Atomic uint64_t epoch; /* quiescent-state epoch */
    atomic_uint searching;  /* workers looking for work or parked */
    atomic_bool draining;
    atomic_bool stopping;
    atomic_bool started;
    ds__limbo_t limbo; /* dead slots waiting for their grace period (slot_lock) */
    atomic_uint nlimbo;
    _Atomic(ds__group_t *) *groups;
    pthread_mutex_t group_lock;
    uint32_t ngroups;
    ds_timers_t *timers;
    ds_router_t router;
    pthread_mutex_t remote_lock;
    ds__remote_watch_t *remote;
    uint32_t nremote, remote_cap;
    void *registry; /* registry.c */
};

/* Slot lookup: the actor at index i, or NULL if its chunk was never allocated. */
static inline ds__actor_t *ds__slot(ds_rt_t *rt, uint32_t i)
{
    uint32_t c = i >> DS__CHUNK_BITS;
    if (c >= rt->nchunks) {
        return NULL;
    }
    /* Acquire pairs with the release store that published the chunk (rt.c). */
    ds__actor_t *chunk = atomic_load_explicit(&rt->chunks[c], memory_order_acquire);
    return chunk == NULL ? NULL : &chunk[i & (DS__CHUNK_SIZE - 1)];
}

static inline ds__group_t *ds__group(ds_rt_t *rt, uint32_t gid)
{
    if (gid >= rt->cfg.max_groups) {
        return NULL;
    }
    /* Acquire pairs with the release store in ds_group_new(). */
    return atomic_load_explicit(&rt->groups[gid], memory_order_acquire);
}

/* The running context of this thread, or NULL outside a turn. */
ds_ctx_t *ds__current(void);

/* sched.c */
int ds__sched_start(ds_rt_t *rt);
void ds__sched_stop(ds_rt_t *rt);
/* Queues a runnable actor (its sched flag just went 0 -> 1). From a worker: on that worker;
 * from elsewhere: to its home worker's inbox, waking it if it sleeps. */
void ds__schedule(ds_rt_t *rt, ds__actor_t *a);
/* Runs one turn of an actor outside the workers (loop.c). Returns with the actor re-queued on
 * its executor if it has more to do. */
void ds__run_external(ds_rt_t *rt, ds__actor_t *a);
/* True when no worker runs a turn and none has anything queued. */
bool ds__sched_quiet(ds_rt_t *rt);

/* rt.c: the send path shared with sched.c and link.c. */
int ds__deliver(ds_rt_t *rt, ds_ctx_t *ctx, ds_actor_id_t to, ds_msg_t **msgp);
/* Runs up to `batch` messages of a; returns the number run. */
unsigned ds__turn(ds_rt_t *rt, ds_ctx_t *ctx, unsigned batch);
/* After a turn: re-queue, go idle, or finish dying. Returns true if it must be re-queued. */
bool ds__after_turn(ds_rt_t *rt, ds_ctx_t *ctx, unsigned ran);
/* Reuses the slots of dead actors whose grace period passed (all of them when force). */
void ds__reclaim(ds_rt_t *rt, bool force);
ds_ctx_t *ds__set_current(ds_ctx_t *ctx);
/* ds_spawn() for the runtime's own kinds: an external executor (loop.c) and a registry entry
 * (registry.c) are set before init runs. */
int ds__spawn_ex(ds_rt_t *rt, const ds_behaviour_t *b, void *arg, const ds_spawn_opts_t *opts,
                 ds__executor_t *exec, void *vreg, ds_actor_id_t *out);
void **ds__ext_reg(ds__actor_t *a);
/* registry.c */
void ds__registry_forget(ds_rt_t *rt, ds__actor_t *a, ds_actor_id_t self);
bool ds__registry_passivate(ds_ctx_t *ctx);
void ds__registry_free(ds_rt_t *rt);

/* link.c: signals and bookkeeping of links, monitors and asks. */
/* Handles a system message or a reply; true if it was consumed (not for receive()). */
bool ds__system(ds_ctx_t *ctx, ds_msg_t **msgp);
/* Sends the exit and down signals of a dying actor and frees its ext. */
void ds__signals_on_death(ds_ctx_t *ctx, int reason);
/* Answers what a dead actor's mailbox still held (error replies, noproc signals). */
void ds__answer_dead(ds_rt_t *rt, ds_actor_id_t self, ds_msg_t **msgp);
void ds__ext_free(ds__actor_t *a);
