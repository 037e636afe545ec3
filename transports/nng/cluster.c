/* cluster: node-to-node links over nng. cluster.h is the reference; this file keeps the state
 * machine of a peer and the threads' rules.
 *
 * A peer (another node) has: our outgoing connection (a conn: a push socket dialling its URL
 * and the one aio that writes to it), the incoming pipe on our listener that carried its HELLO,
 * a bounded ring of encoded frames, and the flags up / down_pending, all under its mutex.
 *
 *   dialling --out pipe added--> HELLO queued first; up once in_pipe is known too
 *   any --HELLO on an incoming pipe--> in_pipe = that pipe; up once the out pipe is there
 *   up --out pipe or in_pipe closed, heartbeat timeout, HELLO on another pipe--> down:
 *        queue dropped, conn moved to `dead`, in_pipe queued for closing, down_pending set
 *   the thread: closes `dead`, calls ds_rt_node_down(), clears down_pending, and after
 *        reconnect_min_ms opens a new conn (nng redials it with backoff from then on)
 *
 * Why a new socket after each down: a push socket hands a frame that could not be written to
 * the next pipe it gets, which would deliver a frame queued before the down after the peer is
 * up again. Closing the socket cancels everything queued in it. Since only the thread opens
 * connections, and only after it ran ds_rt_node_down() for the previous down, a peer can never
 * be up again before the monitors of its previous life fired.
 *
 * Locks: a peer's mu, then the cluster's mu, never the other way round. nng calls made under
 * a lock (nng_send_aio, nng_pipe_close) never wait for our callbacks; nng_close() and
 * nng_aio_free(), which do, run only on the cluster's thread or in stop, with no lock held.
 * Callbacks of a connection that is no longer its peer's current one change nothing but free
 * what they hold; nng_close() returns after the last pipe event of its socket ran and
 * nng_aio_free() after the aio's callback ran, so a conn is freed only when nothing can call
 * back with it. */
#include "transports/nng/cluster.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/protocol/pipeline0/pull.h>
#include <nng/protocol/pipeline0/push.h>

#include "runtime/clock.h"
#include "runtime/err.h"
#include "runtime/id.h"
#include "runtime/log.h"
#include "runtime/mem.h"
#include "runtime/msg.h"
#include "runtime/rt.h"
#include "runtime/wire.h"
#include "transports/nng/cluster_int.h"

#define MS INT64_C(1000000)

enum {
    NODE_SLOTS = 1 << 16,
    DEF_QUEUE = 1024,
    DEF_HEARTBEAT_MS = 250,
    DEF_RECONN_MIN_MS = 100,
    DEF_RECONN_MAX_MS = 2000,
    DEF_MAX_BAD = 16,
    DEF_MAX_PAYLOAD = 16 << 20,
    PIPES_SLACK = 16, /* incoming connections allowed beyond two per peer */
};

typedef struct peer peer_t;

/* One outgoing connection: a push socket dialling the peer, and the aio that writes to it. */
typedef struct conn {
    peer_t *p;
    nng_socket sock;
    nng_aio *aio;
    bool sock_open;
    bool sending;      /* a frame is in flight on aio (under p->mu) */
    uint32_t inflight; /* its bytes (under p->mu) */
} conn_t;

struct peer {
    ds_cluster_t *c;
    uint16_t node;
    char *url;
    pthread_mutex_t mu;
    /* under mu */
    conn_t *conn;      /* the current connection; NULL until the thread opens one */
    conn_t *dead;      /* a connection taken down, for the thread to close */
    uint32_t out_pipe; /* conn's connected pipe; 0 while dialling */
    uint32_t in_pipe;  /* the incoming pipe that carried this node's HELLO; 0 if none */
    bool up;
    bool down_pending; /* went down; the thread has not yet called ds_rt_node_down() */
    bool hb_queued;    /* a heartbeat waits in the ring */
    int64_t reopen_at; /* no new conn before this ds_clock_now() time */
    nng_msg **q;       /* ring of c->qcap encoded frames */
    uint32_t qhead, qn;
    /* Written by the receive loop, read by the thread: a clock reading, relaxed is enough. */
    _Atomic int64_t last_rx;
};

typedef struct inpipe {
    uint32_t id;
    uint16_t node; /* 0 until its HELLO */
    bool closing;  /* queued for nng_pipe_close() */
    uint32_t bad;  /* bad frames in a row */
    int64_t since; /* when it connected */
} inpipe_t;

struct ds_cluster {
    ds_rt_t *rt;
    uint16_t self;
    char *listen_url;
    uint32_t max_frame, queue_limit, qcap, max_bad;
    int64_t hb_ns, timeout_ns, reconn_min_ns, reconn_max_ns;
    int reconn_min_ms, reconn_max_ms;
    /* Peers by node, published with a release store under mu; never freed before the cluster. */
    _Atomic(peer_t *) *peers;
    pthread_mutex_t mu; /* everything below; taken after a peer's mu, never before */
    pthread_cond_t cv;  /* CLOCK_MONOTONIC; wakes the thread */
    peer_t **plist;
    uint32_t npeers, plist_cap;
    inpipe_t *pipes;
    uint32_t npipes, pipes_cap;
    uint32_t *to_close; /* incoming pipes for the thread to close */
    uint32_t nclose, close_cap;
    bool started, stopping, work;
    bool halted;  /* its thread stopped by ds_cluster_halt(), its connections still open */
    bool routing; /* installed as the runtime's router */
    uint64_t incarnation;
    char bound_url[DS_CLUSTER_URL_MAX];
    pthread_t thread;
    nng_socket in_sock;
    nng_aio *rx_aio;
    /* counters: relaxed, read only for ds_cluster_stats() */
    _Atomic uint64_t n_sent, n_recv, b_sent, b_recv, n_bad, n_oversized, n_full, n_undeliv, n_up,
        n_down, n_pipes_closed;
};

static void cnt(_Atomic uint64_t *x, uint64_t n)
{
    atomic_fetch_add_explicit(x, n, memory_order_relaxed);
}

static uint64_t rd(_Atomic uint64_t *x)
{
    return atomic_load_explicit(x, memory_order_relaxed);
}

static int nng_errno(int rv)
{
    if ((rv & NNG_ESYSERR) != 0) {
        return -(rv & ~NNG_ESYSERR);
    }
    switch (rv) {
    case NNG_ENOMEM:
        return -ENOMEM;
    case NNG_EINVAL:
    case NNG_EADDRINVAL:
        return -EINVAL;
    case NNG_EADDRINUSE:
        return -EADDRINUSE;
    case NNG_ENOTSUP:
        return -ENOTSUP;
    case NNG_EPERM:
        return -EPERM;
    case NNG_ECONNREFUSED:
        return -ECONNREFUSED;
    case NNG_ENOENT:
        return -ENOENT;
    default:
        return -EIO;
    }
}

static peer_t *peer_get(ds_cluster_t *c, uint16_t node)
{
    /* Acquire pairs with the release store in peer_add(): a peer seen is initialised. */
    return atomic_load_explicit(&c->peers[node], memory_order_acquire);
}

/* Wakes the cluster's thread. Call with c->mu held. */
static void wake(ds_cluster_t *c)
{
    c->work = true;
    pthread_cond_signal(&c->cv);
}

/* ---- control frames ---- */

void ds__cluster_ctl_encode(uint8_t out[DS__CTL_SIZE], uint8_t kind, uint16_t node,
                            uint64_t incarnation)
{
    out[0] = 'D';
    out[1] = 'C';
    out[2] = DS__CTL_VERSION;
    out[3] = kind;
    out[4] = (uint8_t)node;
    out[5] = (uint8_t)(node >> 8);
    out[6] = 0;
    out[7] = 0;
    for (int i = 0; i < 8; i++) {
        out[8 + i] = (uint8_t)(incarnation >> (8 * i));
    }
}

static nng_msg *ctl_msg(ds_cluster_t *c, uint8_t kind)
{
    nng_msg *m;
    if (nng_msg_alloc(&m, DS__CTL_SIZE) != 0) {
        return NULL;
    }
    ds__cluster_ctl_encode(nng_msg_body(m), kind, c->self, c->incarnation);
    return m;
}

static bool is_heartbeat(nng_msg *m)
{
    const uint8_t *b = nng_msg_body(m);
    return nng_msg_len(m) == DS__CTL_SIZE && b[0] == 'D' && b[1] == 'C' &&
           b[3] == DS__CTL_HEARTBEAT;
}

/* ---- a peer's ring of frames (under p->mu) ---- */

static bool q_push(ds_cluster_t *c, peer_t *p, nng_msg *m, bool front)
{
    if (p->qn >= c->qcap) {
        return false;
    }
    if (front) {
        p->qhead = (p->qhead + c->qcap - 1) % c->qcap;
        p->q[p->qhead] = m;
    } else {
        p->q[(p->qhead + p->qn) % c->qcap] = m;
    }
    p->qn++;
    return true;
}

static nng_msg *q_pop(ds_cluster_t *c, peer_t *p)
{
    nng_msg *m = p->q[p->qhead];
    p->q[p->qhead] = NULL;
    p->qhead = (p->qhead + 1) % c->qcap;
    p->qn--;
    return m;
}

static void q_drop(ds_cluster_t *c, peer_t *p)
{
    while (p->qn > 0) {
        nng_msg_free(q_pop(c, p));
    }
    p->qhead = 0;
    p->hb_queued = false;
}

/* Starts writing the next frame unless one is in flight. Under p->mu: nng_send_aio() never
 * runs the callback on this thread, and the callback takes p->mu before touching anything. */
static void kick(ds_cluster_t *c, peer_t *p)
{
    conn_t *k = p->conn;
    if (k == NULL || k->sending || p->out_pipe == 0 || p->qn == 0) {
        return;
    }
    nng_msg *m = q_pop(c, p);
    if (is_heartbeat(m)) {
        p->hb_queued = false;
    }
    k->sending = true;
    k->inflight = (uint32_t)nng_msg_len(m);
    nng_aio_set_msg(k->aio, m);
    nng_send_aio(k->sock, k->aio);
}

/* ---- up and down (under p->mu) ---- */

static inpipe_t *pipe_find(ds_cluster_t *c, uint32_t id)
{
    for (uint32_t i = 0; i < c->npipes; i++) {
        if (c->pipes[i].id == id) {
            return &c->pipes[i];
        }
    }
    return NULL;
}

/* Queues an incoming pipe for closing by the thread. Under c->mu. */
static void close_push(ds_cluster_t *c, uint32_t id)
{
    inpipe_t *r = pipe_find(c, id);
    if (r == NULL || r->closing) {
        return;
    }
    r->closing = true;
    if (c->nclose == c->close_cap) {
        c->close_cap = c->close_cap ? c->close_cap * 2 : 16;
        c->to_close = ds_xrealloc(c->to_close, c->close_cap * sizeof(uint32_t));
    }
    c->to_close[c->nclose++] = id;
    wake(c);
}

static void maybe_up(ds_cluster_t *c, peer_t *p)
{
    if (p->up || p->down_pending || p->conn == NULL || p->out_pipe == 0 || p->in_pipe == 0) {
        return;
    }
    p->up = true;
    atomic_store_explicit(&p->last_rx, ds_clock_now(), memory_order_relaxed);
    cnt(&c->n_up, 1);
    ds_log_info("peer node up", DS_LOG_U64("node", p->node), DS_LOG_STR("url", p->url), DS_LOG_END);
}

static void down_locked(ds_cluster_t *c, peer_t *p, const char *why)
{
    p->up = false;
    p->down_pending = true;
    q_drop(c, p);
    p->dead = p->conn;
    p->conn = NULL;
    p->out_pipe = 0;
    uint32_t in = p->in_pipe;
    p->in_pipe = 0;
    p->reopen_at = ds_clock_now() + c->reconn_min_ns;
    cnt(&c->n_down, 1);
    ds_log_warn("peer node down", DS_LOG_U64("node", p->node), DS_LOG_STR("reason", why),
                DS_LOG_STR("url", p->url), DS_LOG_END);
    pthread_mutex_lock(&c->mu);
    if (in != 0) {
        close_push(c, in);
    }
    wake(c);
    pthread_mutex_unlock(&c->mu);
}

/* ---- nng callbacks ---- */

static void send_cb(void *arg)
{
    conn_t *k = arg;
    peer_t *p = k->p;
    ds_cluster_t *c = p->c;
    int rv = nng_aio_result(k->aio);
    if (rv != 0) {
        nng_msg_free(nng_aio_get_msg(k->aio)); /* a failed send leaves the message ours */
    }
    pthread_mutex_lock(&p->mu);
    if (rv == 0) {
        cnt(&c->n_sent, 1);
        cnt(&c->b_sent, k->inflight);
    }
    k->sending = false;
    if (p->conn == k) {
        if (rv != 0) {
            ds_log_warn("could not send frame to peer", DS_LOG_U64("node", p->node),
                        DS_LOG_STR("error", nng_strerror(rv)), DS_LOG_END);
        }
        kick(c, p);
    }
    pthread_mutex_unlock(&p->mu);
}

static void out_pipe_cb(nng_pipe pipe, nng_pipe_ev ev, void *arg)
{
    conn_t *k = arg;
    peer_t *p = k->p;
    ds_cluster_t *c = p->c;
    uint32_t id = (uint32_t)nng_pipe_id(pipe);
    pthread_mutex_lock(&p->mu);
    if (p->conn == k) {
        if (ev == NNG_PIPE_EV_ADD_POST) {
            p->out_pipe = id;
            nng_msg *h = ctl_msg(c, DS__CTL_HELLO);
            if (h != NULL && !q_push(c, p, h, true)) {
                nng_msg_free(h);
            }
            maybe_up(c, p);
            kick(c, p);
        } else if (ev == NNG_PIPE_EV_REM_POST && p->out_pipe == id) {
            p->out_pipe = 0;
            if (p->up) {
                down_locked(c, p, "connection to peer closed");
            } else {
                q_drop(c, p); /* only a HELLO: the next pipe gets its own */
            }
        }
    }
    pthread_mutex_unlock(&p->mu);
}

static inpipe_t *pipe_add(ds_cluster_t *c, uint32_t id)
{
    if (c->npipes >= 2 * c->npeers + PIPES_SLACK) {
        return NULL;
    }
    if (c->npipes == c->pipes_cap) {
        c->pipes_cap = c->pipes_cap ? c->pipes_cap * 2 : 16;
        c->pipes = ds_xrealloc(c->pipes, c->pipes_cap * sizeof(inpipe_t));
    }
    inpipe_t *r = &c->pipes[c->npipes++];
    *r = (inpipe_t){.id = id, .since = ds_clock_now()};
    return r;
}

static void in_pipe_cb(nng_pipe pipe, nng_pipe_ev ev, void *arg)
{
    ds_cluster_t *c = arg;
    uint32_t id = (uint32_t)nng_pipe_id(pipe);
    if (ev == NNG_PIPE_EV_ADD_PRE) {
        pthread_mutex_lock(&c->mu);
        bool ok = pipe_find(c, id) != NULL || pipe_add(c, id) != NULL;
        uint32_t limit = 2 * c->npeers + PIPES_SLACK;
        pthread_mutex_unlock(&c->mu);
        if (!ok) {
            /* Closing in ADD_PRE is allowed: the socket never sees the pipe. */
            (void)nng_pipe_close(pipe);
            cnt(&c->n_pipes_closed, 1);
            ds_log_warn("too many incoming connections, closing one", DS_LOG_U64("limit", limit),
                        DS_LOG_END);
        }
        return;
    }
    if (ev != NNG_PIPE_EV_REM_POST) {
        return;
    }
    pthread_mutex_lock(&c->mu);
    inpipe_t *r = pipe_find(c, id);
    uint16_t node = 0;
    if (r != NULL) {
        node = r->node;
        *r = c->pipes[--c->npipes];
    }
    pthread_mutex_unlock(&c->mu);
    peer_t *p = node != 0 ? peer_get(c, node) : NULL;
    if (p == NULL) {
        return;
    }
    pthread_mutex_lock(&p->mu);
    if (p->in_pipe == id) {
        p->in_pipe = 0;
        if (p->up) {
            down_locked(c, p, "connection from peer closed");
        }
    }
    pthread_mutex_unlock(&p->mu);
}

/* ---- input: bytes in, then decode and deliver, or reject ---- */

static uint16_t rd16(const uint8_t *b)
{
    return (uint16_t)(b[0] | (b[1] << 8));
}

static void touch(peer_t *p)
{
    if (p != NULL) {
        atomic_store_explicit(&p->last_rx, ds_clock_now(), memory_order_relaxed);
    }
}

static void peer_hello(ds_cluster_t *c, peer_t *p, uint32_t pipe)
{
    pthread_mutex_lock(&p->mu);
    if (p->in_pipe != 0 && p->in_pipe != pipe) {
        if (p->up) {
            down_locked(c, p, "peer connected again"); /* a restart we had not seen yet */
        } else {
            pthread_mutex_lock(&c->mu);
            close_push(c, p->in_pipe);
            pthread_mutex_unlock(&c->mu);
        }
    }
    p->in_pipe = pipe;
    touch(p);
    maybe_up(c, p);
    pthread_mutex_unlock(&p->mu);
}

static int ctl_in(ds_cluster_t *c, uint32_t pipe, uint16_t node, const uint8_t *b, size_t n)
{
    if (n != DS__CTL_SIZE || b[2] != DS__CTL_VERSION || b[6] != 0 || b[7] != 0) {
        return DS_EDECODE;
    }
    uint16_t from = rd16(b + 4);
    switch (b[3]) {
    case DS__CTL_HELLO: {
        peer_t *p = from == c->self ? NULL : peer_get(c, from);
        if (p == NULL) {
            return -EPROTO; /* node 0, ourselves, or a node we do not know */
        }
        if (node != 0) {
            return node == from ? 0 : -EPROTO; /* a repeated HELLO is harmless */
        }
        pthread_mutex_lock(&c->mu);
        inpipe_t *r = pipe_find(c, pipe);
        if (r != NULL && r->node == 0) {
            r->node = from;
        }
        bool ok = r != NULL && r->node == from;
        pthread_mutex_unlock(&c->mu);
        if (!ok) {
            return -EPROTO;
        }
        peer_hello(c, p, pipe);
        return 0;
    }
    case DS__CTL_HEARTBEAT:
        if (node == 0 || from != node) {
            return -EPROTO;
        }
        touch(peer_get(c, node));
        return 0;
    default:
        return DS_EDECODE;
    }
}

static int frame_in(ds_cluster_t *c, uint32_t pipe, uint16_t node, const uint8_t *b, size_t n)
{
    if (n >= 2 && b[0] == 'D' && b[1] == 'C') {
        return ctl_in(c, pipe, node, b, n);
    }
    if (node == 0) {
        return -EPROTO; /* data before HELLO */
    }
    if (n > c->max_frame) {
        return -EMSGSIZE;
    }
    ds_msg_t *m;
    int rc = ds_wire_decode(b, n, c->max_frame - DS_WIRE_HEADER, ds_clock_now(), &m);
    if (rc < 0) {
        return rc;
    }
    if (ds_id_node(m->to) != c->self || (!ds_id_is_nil(m->from) && ds_id_node(m->from) != node)) {
        ds_msg_free(&m);
        return -EPROTO;
    }
    touch(peer_get(c, node));
    rc = ds_rt_deliver_remote(c->rt, &m);
    if (rc < 0) {
        cnt(&c->n_undeliv, 1);
        ds_log_debug("remote message not delivered", DS_LOG_U64("node", node),
                     DS_LOG_U64("type", m->type), DS_LOG_STR("error", ds_errname(rc)), DS_LOG_END);
        ds_msg_free(&m);
    }
    return 0;
}

static int input(ds_cluster_t *c, uint32_t pipe, const uint8_t *b, size_t n, bool create)
{
    cnt(&c->n_recv, 1);
    cnt(&c->b_recv, n);
    pthread_mutex_lock(&c->mu);
    inpipe_t *r = pipe_find(c, pipe);
    if (r == NULL && create) {
        r = pipe_add(c, pipe);
    }
    if (r == NULL) {
        pthread_mutex_unlock(&c->mu);
        return create ? -ENOSPC : -ENOENT; /* the pipe is gone: its last frames go with it */
    }
    uint16_t node = r->node;
    pthread_mutex_unlock(&c->mu);

    int rc = frame_in(c, pipe, node, b, n);

    uint32_t streak = 0;
    bool closing = false;
    pthread_mutex_lock(&c->mu);
    r = pipe_find(c, pipe);
    if (r != NULL && rc < 0) {
        streak = ++r->bad;
        /* Before its HELLO a connection gets no second chance: whatever it sent, the peer
         * (if it is one: say a HELLO that came before we knew its node) redials and starts
         * over with a HELLO, which it would never send again on this connection. */
        if ((streak >= c->max_bad || r->node == 0) && !r->closing) {
            close_push(c, pipe);
            closing = true;
        }
    } else if (r != NULL) {
        r->bad = 0;
    }
    pthread_mutex_unlock(&c->mu);
    if (rc < 0) {
        cnt(&c->n_bad, 1);
        if (rc == -EMSGSIZE) {
            cnt(&c->n_oversized, 1);
        }
        ds_log(streak <= 1 ? DS_LOG_WARN : DS_LOG_DEBUG, "bad frame from link dropped",
               DS_LOG_U64("node", node), DS_LOG_U64("pipe", pipe), DS_LOG_U64("bytes", n),
               DS_LOG_STR("error", ds_errname(rc)), DS_LOG_END);
        if (closing) {
            cnt(&c->n_pipes_closed, 1);
            ds_log_warn("closing connection after bad frames", DS_LOG_U64("node", node),
                        DS_LOG_U64("pipe", pipe), DS_LOG_U64("bad", streak), DS_LOG_END);
        }
    }
    return rc;
}

int ds__cluster_input(ds_cluster_t *c, uint32_t pipe, const uint8_t *p, size_t n)
{
    return input(c, pipe, p, n, true);
}

static void recv_cb(void *arg)
{
    ds_cluster_t *c = arg;
    int rv = nng_aio_result(c->rx_aio);
    if (rv == NNG_ECLOSED || rv == NNG_ECANCELED) {
        /* Only ds_cluster_stop() closes the socket, and it says so first. Otherwise the error
         * came from one pipe we closed (a peer that sent bad frames) while its message was in
         * transfer: the socket still works, and returning without a new receive here would
         * stop every frame from every peer for good. */
        pthread_mutex_lock(&c->mu);
        bool stopping = c->stopping;
        pthread_mutex_unlock(&c->mu);
        if (stopping) {
            return;
        }
    }
    if (rv == 0) {
        nng_msg *m = nng_aio_get_msg(c->rx_aio);
        uint32_t pipe = (uint32_t)nng_pipe_id(nng_msg_get_pipe(m));
        (void)input(c, pipe, nng_msg_body(m), nng_msg_len(m), false);
        nng_msg_free(m);
    }
    nng_recv_aio(c->in_sock, c->rx_aio);
}

/* ---- the router ---- */

static int route(void *arg, ds_msg_t **msgp)
{
    ds_cluster_t *c = arg;
    ds_msg_t *m = *msgp;
    peer_t *p = peer_get(c, ds_id_node(m->to));
    if (p == NULL) {
        return DS_ENODEDOWN;
    }
    size_t size = ds_wire_size(m);
    if (size > c->max_frame) {
        return -EMSGSIZE;
    }
    bool privileged = (m->flags & (DS_MSG_F_SYSTEM | DS_MSG_F_REPLY)) != 0;
    uint32_t limit = privileged ? c->qcap : c->queue_limit;
    /* Checked before encoding, so that a refused send costs no copy, and again after. */
    pthread_mutex_lock(&p->mu);
    int rc = !p->up ? DS_ENODEDOWN : p->qn >= limit ? DS_EFULL : 0;
    pthread_mutex_unlock(&p->mu);
    if (rc < 0) {
        if (rc == DS_EFULL) {
            cnt(&c->n_full, 1);
        }
        return rc;
    }
    nng_msg *f;
    if (nng_msg_alloc(&f, size) != 0) {
        return -ENOMEM;
    }
    size_t len;
    rc = ds_wire_encode(m, ds_clock_now(), nng_msg_body(f), size, &len);
    if (rc < 0) {
        nng_msg_free(f);
        return rc;
    }
    pthread_mutex_lock(&p->mu);
    rc = !p->up ? DS_ENODEDOWN : p->qn >= limit ? DS_EFULL : 0;
    if (rc == 0) {
        (void)q_push(c, p, f, false); /* qn < limit <= qcap */
        kick(c, p);
    }
    pthread_mutex_unlock(&p->mu);
    if (rc < 0) {
        if (rc == DS_EFULL) {
            cnt(&c->n_full, 1);
        }
        nng_msg_free(f);
        return rc;
    }
    ds_msg_free(msgp);
    return 0;
}

/* ---- connections (the cluster's thread, and stop) ---- */

static void conn_close(conn_t *k)
{
    if (k == NULL) {
        return;
    }
    if (k->sock_open) {
        (void)nng_close(k->sock); /* returns after the socket's last pipe event ran */
    }
    if (k->aio != NULL) {
        nng_aio_free(k->aio); /* waits for a running callback; frees nothing of ours */
    }
    free(k);
}

static void conn_open(ds_cluster_t *c, peer_t *p, int64_t now)
{
    conn_t *k = ds_xcalloc(1, sizeof(*k));
    k->p = p;
    int rv = nng_push0_open(&k->sock);
    k->sock_open = rv == 0;
    if (rv == 0) {
        rv = nng_socket_set_ms(k->sock, NNG_OPT_RECONNMINT, c->reconn_min_ms);
    }
    if (rv == 0) {
        rv = nng_socket_set_ms(k->sock, NNG_OPT_RECONNMAXT, c->reconn_max_ms);
    }
    if (rv == 0) {
        rv = nng_pipe_notify(k->sock, NNG_PIPE_EV_ADD_POST, out_pipe_cb, k);
    }
    if (rv == 0) {
        rv = nng_pipe_notify(k->sock, NNG_PIPE_EV_REM_POST, out_pipe_cb, k);
    }
    if (rv == 0) {
        rv = nng_aio_alloc(&k->aio, send_cb, k);
    }
    if (rv == 0) {
        /* Published before dialling, so that the first pipe event finds it current. */
        pthread_mutex_lock(&p->mu);
        p->conn = k;
        p->out_pipe = 0;
        pthread_mutex_unlock(&p->mu);
        rv = nng_dial(k->sock, p->url, NULL, NNG_FLAG_NONBLOCK);
        if (rv != 0) {
            pthread_mutex_lock(&p->mu);
            p->conn = NULL;
            pthread_mutex_unlock(&p->mu);
        }
    }
    if (rv != 0) {
        ds_log_error("could not dial peer", DS_LOG_U64("node", p->node), DS_LOG_STR("url", p->url),
                     DS_LOG_STR("error", nng_strerror(rv)), DS_LOG_END);
        pthread_mutex_lock(&p->mu);
        p->reopen_at = now + c->reconn_max_ns;
        pthread_mutex_unlock(&p->mu);
        conn_close(k);
    }
}

/* The thread's work for one peer: heartbeat and timeout, the aftermath of a down, redialling.
 * Returns when it next needs attention (INT64_MAX: at the next heartbeat). */
static int64_t peer_service(ds_cluster_t *c, peer_t *p, int64_t now, bool beat)
{
    pthread_mutex_lock(&p->mu);
    if (beat && p->up) {
        int64_t last = atomic_load_explicit(&p->last_rx, memory_order_relaxed);
        if (now - last > c->timeout_ns) {
            down_locked(c, p, "no frame from peer within the timeout");
        } else if (!p->hb_queued) {
            nng_msg *h = ctl_msg(c, DS__CTL_HEARTBEAT);
            if (h != NULL && q_push(c, p, h, false)) {
                p->hb_queued = true;
                kick(c, p);
            } else if (h != NULL) {
                nng_msg_free(h);
            }
        }
    }
    conn_t *dead = p->dead;
    p->dead = NULL;
    bool fire = p->down_pending;
    pthread_mutex_unlock(&p->mu);

    conn_close(dead);
    if (fire) {
        ds_rt_node_down(c->rt, p->node);
        pthread_mutex_lock(&p->mu);
        p->down_pending = false;
        /* The peer may have come back meanwhile: its pipes and HELLO arrived while the down
         * was pending, so maybe_up() declined then and no later event would call it again. */
        maybe_up(c, p);
        pthread_mutex_unlock(&p->mu);
    }
    pthread_mutex_lock(&p->mu);
    bool open = p->conn == NULL && now >= p->reopen_at;
    pthread_mutex_unlock(&p->mu);
    if (open) {
        conn_open(c, p, now);
    }
    pthread_mutex_lock(&p->mu);
    int64_t next = p->conn == NULL ? p->reopen_at : INT64_MAX;
    pthread_mutex_unlock(&p->mu);
    return next;
}

/* Incoming pipes that never said HELLO within the timeout are closed. Under c->mu. */
static void pipes_sweep(ds_cluster_t *c, int64_t now)
{
    for (uint32_t i = 0; i < c->npipes; i++) {
        inpipe_t *r = &c->pipes[i];
        if (r->node == 0 && !r->closing && now - r->since > c->timeout_ns) {
            cnt(&c->n_pipes_closed, 1);
            ds_log_warn("closing connection that sent no hello", DS_LOG_U64("pipe", r->id),
                        DS_LOG_END);
            close_push(c, r->id);
        }
    }
}

static void *cluster_main(void *arg)
{
    ds_cluster_t *c = arg;
    peer_t **snap = NULL;
    uint32_t *closes = NULL;
    uint32_t snap_cap = 0, closes_cap = 0;
    int64_t next_hb = ds_clock_now();
    pthread_mutex_lock(&c->mu);
    while (!c->stopping) {
        c->work = false;
        uint32_t n = c->npeers, nclose = c->nclose;
        if (n > snap_cap) {
            snap_cap = n;
            snap = ds_xrealloc(snap, snap_cap * sizeof(peer_t *));
        }
        if (nclose > closes_cap) {
            closes_cap = nclose;
            closes = ds_xrealloc(closes, closes_cap * sizeof(*closes));
        }
        if (n > 0) {
            memcpy(snap, c->plist, n * sizeof(peer_t *));
        }
        if (nclose > 0) {
            memcpy(closes, c->to_close, nclose * sizeof(*closes));
        }
        c->nclose = 0;
        pthread_mutex_unlock(&c->mu);

        for (uint32_t i = 0; i < nclose; i++) {
            (void)nng_pipe_close((nng_pipe){.id = closes[i]}); /* NNG_ENOENT if gone already */
        }
        int64_t now = ds_clock_now();
        bool beat = now >= next_hb;
        if (beat) {
            next_hb = now + c->hb_ns;
        }
        int64_t wake_at = next_hb;
        for (uint32_t i = 0; i < n; i++) {
            int64_t t = peer_service(c, snap[i], now, beat);
            wake_at = t < wake_at ? t : wake_at;
        }

        pthread_mutex_lock(&c->mu);
        if (beat) {
            pipes_sweep(c, now);
        }
        if (!c->stopping && !c->work) {
            int64_t at = wake_at > now ? wake_at : now + MS;
            struct timespec ts = {.tv_sec = at / 1000000000, .tv_nsec = at % 1000000000};
            (void)pthread_cond_timedwait(&c->cv, &c->mu, &ts);
        }
    }
    pthread_mutex_unlock(&c->mu);
    free(snap);
    free(closes);
    return NULL;
}

/* ---- lifecycle ---- */

static int url_check(const char *url)
{
    if (url == NULL || strlen(url) >= DS_CLUSTER_URL_MAX) {
        return -EINVAL;
    }
    nng_url *u;
    if (nng_url_parse(&u, url) != 0) {
        return -EINVAL;
    }
    nng_url_free(u);
    return 0;
}

static int peer_add(ds_cluster_t *c, uint16_t node, const char *url)
{
    if (node == 0 || node == c->self || url_check(url) < 0) {
        return -EINVAL;
    }
    peer_t *p = ds_xcalloc(1, sizeof(*p));
    p->c = c;
    p->node = node;
    p->url = ds_xstrdup(url);
    p->q = ds_xcalloc(c->qcap, sizeof(nng_msg *));
    pthread_mutex_init(&p->mu, NULL);
    pthread_mutex_lock(&c->mu);
    if (peer_get(c, node) != NULL) {
        pthread_mutex_unlock(&c->mu);
        pthread_mutex_destroy(&p->mu);
        free(p->q);
        free(p->url);
        free(p);
        return -EEXIST;
    }
    if (c->npeers == c->plist_cap) {
        c->plist_cap = c->plist_cap ? c->plist_cap * 2 : 8;
        c->plist = ds_xrealloc(c->plist, c->plist_cap * sizeof(peer_t *));
    }
    c->plist[c->npeers++] = p;
    /* Release pairs with the acquire load in peer_get(). */
    atomic_store_explicit(&c->peers[node], p, memory_order_release);
    wake(c);
    pthread_mutex_unlock(&c->mu);
    return 0;
}

int ds_cluster_new(ds_rt_t *rt, const ds_cluster_cfg_t *cfg, ds_cluster_t **out)
{
    if (rt == NULL || cfg == NULL || url_check(cfg->listen_url) < 0 ||
        (cfg->npeers > 0 && cfg->peers == NULL)) {
        return -EINVAL;
    }
    uint32_t hb = cfg->heartbeat_ms ? cfg->heartbeat_ms : DEF_HEARTBEAT_MS;
    uint32_t timeout = cfg->timeout_ms ? cfg->timeout_ms : 4 * hb;
    uint32_t rmin = cfg->reconnect_min_ms ? cfg->reconnect_min_ms : DEF_RECONN_MIN_MS;
    uint32_t rmax = cfg->reconnect_max_ms ? cfg->reconnect_max_ms : DEF_RECONN_MAX_MS;
    uint32_t max_frame = cfg->max_frame ? cfg->max_frame : DS_WIRE_HEADER + DEF_MAX_PAYLOAD;
    uint32_t limit = cfg->queue_limit ? cfg->queue_limit : DEF_QUEUE;
    if (timeout <= hb || rmax < rmin || rmax > INT32_MAX || timeout > INT32_MAX ||
        max_frame <= DS_WIRE_HEADER || max_frame > DS_WIRE_HEADER + DS_MSG_PAYLOAD_MAX ||
        limit > (1u << 24)) {
        return -EINVAL;
    }
    ds_cluster_t *c = ds_xcalloc(1, sizeof(*c));
    c->rt = rt;
    c->self = ds_rt_node(rt);
    c->listen_url = ds_xstrdup(cfg->listen_url);
    c->max_frame = max_frame;
    c->queue_limit = limit;
    c->qcap = 2 * limit + 64;
    c->max_bad = cfg->max_bad_frames ? cfg->max_bad_frames : DEF_MAX_BAD;
    c->hb_ns = (int64_t)hb * MS;
    c->timeout_ns = (int64_t)timeout * MS;
    c->reconn_min_ns = (int64_t)rmin * MS;
    c->reconn_max_ns = (int64_t)rmax * MS;
    c->reconn_min_ms = (int)rmin;
    c->reconn_max_ms = (int)rmax;
    c->peers = ds_xcalloc(NODE_SLOTS, sizeof(_Atomic(peer_t *)));
    pthread_mutex_init(&c->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cv, &ca);
    pthread_condattr_destroy(&ca);
    for (size_t i = 0; i < cfg->npeers; i++) {
        int rc = peer_add(c, cfg->peers[i].node, cfg->peers[i].url);
        if (rc < 0) {
            ds_cluster_free(&c);
            return rc;
        }
    }
    ds_rt_set_router(rt, &(ds_router_t){.route = route, .arg = c});
    c->routing = true;
    *out = c;
    return 0;
}

int ds_cluster_add_peer(ds_cluster_t *c, uint16_t node, const char *url)
{
    return peer_add(c, node, url);
}

bool ds_cluster_peer_up(ds_cluster_t *c, uint16_t node)
{
    peer_t *p = peer_get(c, node);
    if (p == NULL) {
        return false;
    }
    pthread_mutex_lock(&p->mu);
    bool up = p->up;
    pthread_mutex_unlock(&p->mu);
    return up;
}

/* The listen URL with the bound port in place of a tcp port 0. */
static void bound_url(ds_cluster_t *c, nng_listener l)
{
    const char *u = c->listen_url;
    size_t n = strlen(u);
    int port = 0;
    if (strncmp(u, "tcp", 3) == 0 && n >= 2 && strcmp(u + n - 2, ":0") == 0 &&
        nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port) == 0) {
        (void)snprintf(c->bound_url, sizeof(c->bound_url), "%.*s:%d", (int)(n - 2), u, port);
    } else {
        (void)snprintf(c->bound_url, sizeof(c->bound_url), "%s", u);
    }
}

int ds_cluster_start(ds_cluster_t *c)
{
    pthread_mutex_lock(&c->mu);
    bool started = c->started;
    pthread_mutex_unlock(&c->mu);
    if (started) {
        return -EALREADY;
    }
    uint64_t inc = 0;
    if (getrandom(&inc, sizeof(inc), 0) != (ssize_t)sizeof(inc)) {
        inc = (uint64_t)ds_clock_now();
    }
    nng_socket s;
    nng_listener l;
    int rv = nng_pull0_open(&s);
    if (rv != 0) {
        return nng_errno(rv);
    }
    /* nng refuses larger frames before allocating them; those in between reach the decoder
     * and are counted as oversized. */
    size_t recvmax = (size_t)c->max_frame * 2;
    if ((rv = nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, recvmax)) != 0 ||
        (rv = nng_pipe_notify(s, NNG_PIPE_EV_ADD_PRE, in_pipe_cb, c)) != 0 ||
        (rv = nng_pipe_notify(s, NNG_PIPE_EV_REM_POST, in_pipe_cb, c)) != 0 ||
        (rv = nng_listen(s, c->listen_url, &l, 0)) != 0) {
        (void)nng_close(s);
        ds_log_error("could not listen for peers", DS_LOG_STR("url", c->listen_url),
                     DS_LOG_STR("error", nng_strerror(rv)), DS_LOG_END);
        return nng_errno(rv);
    }
    nng_aio *aio;
    if ((rv = nng_aio_alloc(&aio, recv_cb, c)) != 0) {
        (void)nng_close(s);
        return nng_errno(rv);
    }
    pthread_mutex_lock(&c->mu);
    c->in_sock = s;
    c->rx_aio = aio;
    c->incarnation = inc;
    c->stopping = false;
    c->started = true;
    bound_url(c, l);
    for (uint32_t i = 0; i < c->npeers; i++) {
        c->plist[i]->reopen_at = 0;
    }
    int err = pthread_create(&c->thread, NULL, cluster_main, c);
    if (err != 0) {
        c->started = false;
        pthread_mutex_unlock(&c->mu);
        (void)nng_close(s);
        nng_aio_free(aio);
        return -err;
    }
    ds_log_info("cluster listening", DS_LOG_STR("url", c->bound_url), DS_LOG_U64("node", c->self),
                DS_LOG_U64("peers", c->npeers), DS_LOG_END);
    pthread_mutex_unlock(&c->mu);
    nng_recv_aio(s, aio);
    return 0;
}

void ds_cluster_halt(ds_cluster_t *c)
{
    pthread_mutex_lock(&c->mu);
    if (!c->started || c->halted) {
        pthread_mutex_unlock(&c->mu);
        return;
    }
    c->stopping = true;
    c->halted = true;
    wake(c);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
}

void ds_cluster_stop(ds_cluster_t *c)
{
    pthread_mutex_lock(&c->mu);
    if (!c->started) {
        pthread_mutex_unlock(&c->mu);
        return;
    }
    bool joined = c->halted;
    c->stopping = true;
    wake(c);
    pthread_mutex_unlock(&c->mu);
    if (!joined) {
        pthread_join(c->thread, NULL);
    }

    /* The listener first: no frame arrives after this. */
    (void)nng_close(c->in_sock);
    nng_aio_free(c->rx_aio);
    c->rx_aio = NULL;

    pthread_mutex_lock(&c->mu);
    uint32_t n = c->npeers;
    peer_t **snap = ds_xmalloc((n ? n : 1) * sizeof(peer_t *));
    if (n > 0) {
        memcpy(snap, c->plist, n * sizeof(peer_t *));
    }
    pthread_mutex_unlock(&c->mu);
    for (uint32_t i = 0; i < n; i++) {
        peer_t *p = snap[i];
        pthread_mutex_lock(&p->mu);
        bool fire = p->up || p->down_pending;
        if (p->up) {
            cnt(&c->n_down, 1);
            ds_log_warn("peer node down", DS_LOG_U64("node", p->node),
                        DS_LOG_STR("reason", "cluster stopped"), DS_LOG_END);
        }
        p->up = false;
        p->down_pending = false;
        q_drop(c, p);
        conn_t *k = p->conn, *dead = p->dead;
        p->conn = p->dead = NULL;
        p->out_pipe = p->in_pipe = 0;
        p->reopen_at = 0;
        pthread_mutex_unlock(&p->mu);
        conn_close(k);
        conn_close(dead);
        if (fire) {
            ds_rt_node_down(c->rt, p->node);
        }
    }
    free(snap);

    pthread_mutex_lock(&c->mu);
    c->npipes = 0;
    c->nclose = 0;
    c->started = false;
    c->stopping = false;
    c->halted = false;
    c->bound_url[0] = '\0';
    pthread_mutex_unlock(&c->mu);
}

void ds_cluster_free(ds_cluster_t **cp)
{
    ds_cluster_t *c = *cp;
    if (c == NULL) {
        return;
    }
    *cp = NULL;
    ds_cluster_stop(c);
    if (c->routing) {
        ds_rt_set_router(c->rt, NULL);
    }
    for (uint32_t i = 0; i < c->npeers; i++) {
        peer_t *p = c->plist[i];
        pthread_mutex_destroy(&p->mu);
        free(p->q);
        free(p->url);
        free(p);
    }
    free(c->plist);
    free(c->pipes);
    free(c->to_close);
    free(c->peers);
    free(c->listen_url);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

int ds_cluster_listen_url(ds_cluster_t *c, char *buf, size_t cap)
{
    pthread_mutex_lock(&c->mu);
    int rc = 0;
    size_t n = strlen(c->bound_url);
    if (!c->started) {
        rc = -ENOTCONN;
    } else if (n + 1 > cap) {
        rc = -ENOSPC;
    } else {
        memcpy(buf, c->bound_url, n + 1);
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

void ds_cluster_stats(ds_cluster_t *c, ds_cluster_stats_t *out)
{
    ds_cluster_stats_t s = {
        .frames_sent = rd(&c->n_sent),
        .frames_received = rd(&c->n_recv),
        .bytes_sent = rd(&c->b_sent),
        .bytes_received = rd(&c->b_recv),
        .frames_bad = rd(&c->n_bad),
        .frames_oversized = rd(&c->n_oversized),
        .queue_full = rd(&c->n_full),
        .undeliverable = rd(&c->n_undeliv),
        .node_up = rd(&c->n_up),
        .node_down = rd(&c->n_down),
        .pipes_closed = rd(&c->n_pipes_closed),
    };
    pthread_mutex_lock(&c->mu);
    s.peers = c->npeers;
    peer_t **snap = ds_xmalloc((c->npeers ? c->npeers : 1) * sizeof(peer_t *));
    uint32_t n = c->npeers;
    if (n > 0) {
        memcpy(snap, c->plist, n * sizeof(peer_t *));
    }
    pthread_mutex_unlock(&c->mu);
    for (uint32_t i = 0; i < n; i++) {
        pthread_mutex_lock(&snap[i]->mu);
        s.peers_up += snap[i]->up ? 1u : 0u;
        pthread_mutex_unlock(&snap[i]->mu);
    }
    free(snap);
    *out = s;
}
