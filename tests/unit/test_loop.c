/* test_loop: the libuv bridge (runtime/loop.h). Ports are real transports here: a sleep port
 * (the header's worked example, on uv_timer) and a file port (uv_fs_* on a temporary file).
 * Actors on the workers ask them and record what comes back in a harness under a mutex; waits
 * are bounded only to catch a hang, never to time anything. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <uv.h>

#include "runtime/err.h"
#include "runtime/id.h"
#include "runtime/loop.h"
#include "runtime/mem.h"
#include "runtime/msg.h"
#include "runtime/rt.h"

enum {
    T_NAP = DS_MSG_USER_BASE + 1, /* ask the sleep port: payload a u64 of milliseconds */
    T_WOKE = DS_MSG_USER_BASE + 2,
    T_GO = DS_MSG_USER_BASE + 3,        /* tells an asker or a sink to start */
    T_FILE = DS_MSG_USER_BASE + 4,      /* ask the file port: payload the bytes to store */
    T_FILE_DATA = DS_MSG_USER_BASE + 5, /* its reply: the bytes read back */
    T_FILE_FAIL = DS_MSG_USER_BASE + 6, /* its reply when I/O failed: an int64 code */
    T_RESULT = DS_MSG_USER_BASE + 7,    /* a work result */
    T_CRASH = DS_MSG_USER_BASE + 8,     /* the sleep port fails on it */
};

#define MS      INT64_C(1000000)
#define SEC     INT64_C(1000000000)
#define HANG_NS (120 * SEC) /* a wait this long means a hang, not a slow machine */
#define HOUR_MS UINT64_C(3600000)

/* ---- the harness: what the actors and callbacks saw ---- */

typedef struct result {
    unsigned replies; /* replies and timeouts received for this slot's ask */
    int err;          /* an error reply's code, DS_ETIMEDOUT, or an ask error */
    bool on_loop;     /* the asker's receive ran on the loop thread (it must not) */
    ds_msg_t *reply;  /* the first reply, taken */
} result_t;

typedef struct work_rec {
    unsigned dones;
    int status;
    bool work_on_loop; /* work() ran on the loop thread (it must not) */
    bool done_off_loop;
    uint64_t sum;
    unsigned results; /* result messages the sink received */
} work_rec_t;

typedef struct harness {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    ds_loop_t *loop;
    result_t *slots;
    size_t nslots;
    size_t done; /* slots with a reply */
    /* the ports */
    atomic_uint off_thread;     /* port callbacks that ran off the loop thread */
    atomic_uint port_turns;     /* receive() calls of ports */
    atomic_uint replies_out;    /* successful ds_reply_from() calls */
    atomic_uint naps;           /* naps started */
    atomic_uint terminated;     /* port terminate() calls */
    atomic_int call_after_stop; /* ds_loop_call() from a terminate during ds_loop_free() */
    atomic_uint init_on_loop;   /* port init() calls that ran on the loop thread */
    /* work */
    work_rec_t *work;
    size_t nwork;
    size_t work_done;    /* done() calls */
    size_t work_results; /* result messages received */
} harness_t;

static void h_init(harness_t *h, size_t nslots, size_t nwork)
{
    memset(h, 0, sizeof(*h));
    pthread_condattr_t ca;
    assert_int_equal(pthread_condattr_init(&ca), 0);
    assert_int_equal(pthread_condattr_setclock(&ca, CLOCK_MONOTONIC), 0);
    assert_int_equal(pthread_cond_init(&h->cv, &ca), 0);
    pthread_condattr_destroy(&ca);
    assert_int_equal(pthread_mutex_init(&h->mu, NULL), 0);
    h->nslots = nslots;
    h->slots = calloc(nslots + 1, sizeof(result_t));
    h->nwork = nwork;
    h->work = calloc(nwork + 1, sizeof(work_rec_t));
    assert_non_null(h->slots);
    assert_non_null(h->work);
    atomic_init(&h->call_after_stop, 1);
}

static void h_fini(harness_t *h)
{
    for (size_t i = 0; i < h->nslots; i++) {
        ds_msg_free(&h->slots[i].reply);
    }
    free(h->slots);
    free(h->work);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
}

static void h_signal(harness_t *h)
{
    pthread_cond_broadcast(&h->cv);
}

/* Waits (bounded) until *counter >= want; fails the test on a hang. */
static void h_wait(harness_t *h, const size_t *counter, size_t want)
{
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += HANG_NS / SEC;
    pthread_mutex_lock(&h->mu);
    while (*counter < want) {
        if (pthread_cond_timedwait(&h->cv, &h->mu, &dl) == ETIMEDOUT) {
            break;
        }
    }
    size_t got = *counter;
    pthread_mutex_unlock(&h->mu);
    if (got < want) {
        fail_msg("hang: %zu of %zu", got, want);
    }
}

/* Waits (bounded) for an atomic counter that nobody signals. */
static void spin_wait(atomic_uint *counter, unsigned want)
{
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    while (atomic_load(counter) < want) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - start.tv_sec > HANG_NS / SEC) {
            fail_msg("hang: %u of %u", atomic_load(counter), want);
        }
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
}

static ds_rt_t *rt_up(void)
{
    ds_rt_t *rt;
    assert_int_equal(ds_rt_new(&(ds_rt_cfg_t){.workers = 4}, &rt), 0);
    assert_int_equal(ds_rt_start(rt), 0);
    return rt;
}

static ds_loop_t *loop_up(ds_rt_t *rt, harness_t *h)
{
    ds_loop_t *l;
    assert_int_equal(ds_loop_new(rt, "test-loop", &l), 0);
    assert_int_equal(ds_loop_start(l), 0);
    h->loop = l;
    return l;
}

static void note_thread(harness_t *h, ds_loop_t *l)
{
    if (!ds_loop_on_thread(l)) {
        atomic_fetch_add(&h->off_thread, 1);
    }
}

/* ---- the sleep port: the worked example of runtime/loop.h, with a terminate ---- */

typedef struct sleeper sleeper_t;

typedef struct nap {
    uv_timer_t timer; /* timer.data = the nap */
    ds_rt_t *rt;
    ds_msg_t *ask; /* kept until we reply */
    sleeper_t *s;
    struct nap *prev, *next;
} nap_t;

struct sleeper {
    ds_loop_t *loop;
    harness_t *h;
    nap_t *naps; /* live naps, so that terminate can answer them */
};

typedef struct port_arg {
    ds_loop_t *loop;
    harness_t *h;
} port_arg_t;

static void nap_unlink(nap_t *n)
{
    if (n->prev != NULL) {
        n->prev->next = n->next;
    } else {
        n->s->naps = n->next;
    }
    if (n->next != NULL) {
        n->next->prev = n->prev;
    }
}

static void nap_closed(uv_handle_t *hd)
{
    nap_t *n = hd->data;
    ds_msg_free(&n->ask);
    free(n);
}

static void nap_fired(uv_timer_t *t)
{
    nap_t *n = t->data;
    note_thread(n->s->h, n->s->loop);
    ds_msg_t *reply;
    if (ds_msg_new(T_WOKE, NULL, 0, &reply) == 0) {
        if (ds_reply_from(n->rt, n->ask, &reply) == 0) {
            atomic_fetch_add(&n->s->h->replies_out, 1);
        } else {
            ds_msg_free(&reply); /* the asker is gone: still ours */
        }
    }
    nap_unlink(n);
    uv_close((uv_handle_t *)t, nap_closed);
}

static int sleep_init(ds_ctx_t *ctx, void *arg)
{
    const port_arg_t *pa = arg;
    sleeper_t *s = ds_xcalloc(1, sizeof(*s));
    s->loop = pa->loop;
    s->h = pa->h;
    if (ds_loop_on_thread(pa->loop)) {
        atomic_fetch_add(&pa->h->init_on_loop, 1);
    }
    ds_ctx_set_state(ctx, s);
    return 0;
}

static int sleep_receive(ds_ctx_t *ctx, ds_msg_t **msgp)
{
    sleeper_t *s = ds_ctx_state(ctx);
    note_thread(s->h, s->loop);
    atomic_fetch_add(&s->h->port_turns, 1);
    const ds_msg_t *m = *msgp;
    if (m->type == T_CRASH) {
        return -EIO;
    }
    uint64_t ms;
    if (m->type != T_NAP || m->len != sizeof(ms) || (m->flags & DS_MSG_F_ASK) == 0) {
        return 0; /* input is validated, never asserted */
    }
    memcpy(&ms, m->data, sizeof(ms));
    nap_t *n = ds_xcalloc(1, sizeof(*n));
    n->rt = ds_ctx_rt(ctx);
    n->s = s;
    n->ask = *msgp; /* take the ask: the runtime will not free it */
    *msgp = NULL;
    assert_int_equal(uv_timer_init(ds_loop_uv(s->loop), &n->timer), 0);
    n->timer.data = n;
    assert_int_equal(uv_timer_start(&n->timer, nap_fired, ms, 0), 0);
    n->next = s->naps;
    if (s->naps != NULL) {
        s->naps->prev = n;
    }
    s->naps = n;
    atomic_fetch_add(&s->h->naps, 1);
    return 0;
}

static void noop_call(ds_loop_t *l, void *arg)
{
    (void)l;
    (void)arg;
}

static void sleep_terminate(ds_ctx_t *ctx, int reason)
{
    (void)reason;
    sleeper_t *s = ds_ctx_state(ctx);
    note_thread(s->h, s->loop);
    /* Stop every nap and answer its ask: the asker hears DS_ESHUTDOWN instead of waiting for
     * its timeout. */
    for (nap_t *n = s->naps; n != NULL; n = n->next) {
        (void)ds_reply_error(ctx, n->ask, DS_ESHUTDOWN);
        (void)uv_timer_stop(&n->timer);
        uv_close((uv_handle_t *)&n->timer, nap_closed);
    }
    atomic_store(&s->h->call_after_stop, ds_loop_call(s->loop, noop_call, NULL));
    atomic_fetch_add(&s->h->terminated, 1);
    free(s);
}

static const ds_behaviour_t sleep_behaviour = {
    .name = "test.sleep",
    .init = sleep_init,
    .receive = sleep_receive,
    .terminate = sleep_terminate,
};

/* ---- the file port: writes a temporary file, reads it back, replies with the bytes ---- */

typedef struct fsop {
    uv_fs_t req;
    harness_t *h;
    ds_loop_t *loop;
    ds_rt_t *rt;
    ds_msg_t *ask;
    uv_file fd;
    char path[64];
    size_t done;     /* bytes written, then bytes read */
    ds_msg_t *out;   /* the reply being filled */
    uint8_t *outbuf; /* its payload */
    int err;
} fsop_t;

static void fs_step_written(uv_fs_t *req);
static void fs_step_opened(uv_fs_t *req);
static void fs_step_read(uv_fs_t *req);

static void fs_reply(fsop_t *op)
{
    ds_msg_t *reply = NULL;
    if (op->err == 0) {
        ds_msg_seal(op->out, op->done);
        reply = op->out;
        op->out = NULL;
    } else {
        int64_t code = op->err;
        if (ds_msg_new(T_FILE_FAIL, &code, sizeof(code), &reply) < 0) {
            reply = NULL;
        }
    }
    if (reply != NULL) {
        if (ds_reply_from(op->rt, op->ask, &reply) == 0) {
            atomic_fetch_add(&op->h->replies_out, 1);
        } else {
            ds_msg_free(&reply);
        }
    }
    if (op->out != NULL) {
        ds_msg_seal(op->out, 0);
        ds_msg_free(&op->out);
    }
    ds_msg_free(&op->ask);
    free(op);
}

static void fs_step_unlinked(uv_fs_t *req)
{
    fsop_t *op = req->data;
    note_thread(op->h, op->loop);
    if (req->result < 0 && op->err == 0) {
        op->err = (int)req->result;
    }
    uv_fs_req_cleanup(req);
    fs_reply(op);
}

static void fs_unlink(fsop_t *op)
{
    op->req.data = op;
    assert_int_equal(uv_fs_unlink(ds_loop_uv(op->loop), &op->req, op->path, fs_step_unlinked), 0);
}

static void fs_step_closed_read(uv_fs_t *req)
{
    fsop_t *op = req->data;
    note_thread(op->h, op->loop);
    uv_fs_req_cleanup(req);
    fs_unlink(op);
}

static void fs_read_more(fsop_t *op)
{
    size_t len = op->ask->len;
    uv_buf_t b = uv_buf_init((char *)op->outbuf + op->done, (unsigned)(len - op->done));
    op->req.data = op;
    assert_int_equal(
        uv_fs_read(ds_loop_uv(op->loop), &op->req, op->fd, &b, 1, (int64_t)op->done, fs_step_read),
        0);
}

static void fs_close_then(fsop_t *op, uv_fs_cb cb)
{
    op->req.data = op;
    assert_int_equal(uv_fs_close(ds_loop_uv(op->loop), &op->req, op->fd, cb), 0);
}

static void fs_step_read(uv_fs_t *req)
{
    fsop_t *op = req->data;
    note_thread(op->h, op->loop);
    ssize_t r = req->result;
    uv_fs_req_cleanup(req);
    if (r < 0) {
        op->err = (int)r;
    } else if (r > 0) {
        op->done += (size_t)r;
        if (op->done < op->ask->len) {
            fs_read_more(op);
            return;
        }
    }
    fs_close_then(op, fs_step_closed_read);
}

static void fs_step_opened(uv_fs_t *req)
{
    fsop_t *op = req->data;
    note_thread(op->h, op->loop);
    ssize_t r = req->result;
    uv_fs_req_cleanup(req);
    if (r < 0) {
        op->err = (int)r;
        fs_unlink(op);
        return;
    }
    op->fd = (uv_file)r;
    op->done = 0;
    if (ds_msg_alloc(T_FILE_DATA, op->ask->len, &op->outbuf, &op->out) < 0) {
        op->err = -ENOMEM;
        fs_close_then(op, fs_step_closed_read);
        return;
    }
    if (op->ask->len == 0) {
        fs_close_then(op, fs_step_closed_read);
        return;
    }
    fs_read_more(op);
}

static void fs_step_closed_written(uv_fs_t *req)
{
    fsop_t *op = req->data;
    note_thread(op->h, op->loop);
    ssize_t r = req->result;
    uv_fs_req_cleanup(req);
    if (r < 0 || op->err != 0) {
        op->err = op->err != 0 ? op->err : (int)r;
        fs_unlink(op);
        return;
    }
    op->req.data = op;
    assert_int_equal(
        uv_fs_open(ds_loop_uv(op->loop), &op->req, op->path, UV_FS_O_RDONLY, 0, fs_step_opened), 0);
}

static void fs_write_more(fsop_t *op)
{
    const ds_msg_t *a = op->ask;
    uv_buf_t b =
        uv_buf_init((char *)(uintptr_t)(a->data + op->done), (unsigned)(a->len - op->done));
    op->req.data = op;
    assert_int_equal(uv_fs_write(ds_loop_uv(op->loop), &op->req, op->fd, &b, 1, (int64_t)op->done,
                                 fs_step_written),
                     0);
}

static void fs_step_written(uv_fs_t *req)
{
    fsop_t *op = req->data;
    note_thread(op->h, op->loop);
    ssize_t r = req->result;
    uv_fs_req_cleanup(req);
    if (r < 0) {
        op->err = (int)r;
    } else {
        op->done += (size_t)r;
        if (op->done < op->ask->len && r > 0) {
            fs_write_more(op);
            return;
        }
    }
    fs_close_then(op, fs_step_closed_written);
}

static void fs_step_made(uv_fs_t *req)
{
    fsop_t *op = req->data;
    note_thread(op->h, op->loop);
    ssize_t r = req->result;
    if (r < 0) {
        op->err = (int)r;
        uv_fs_req_cleanup(req);
        fs_reply(op);
        return;
    }
    op->fd = (uv_file)r;
    (void)snprintf(op->path, sizeof(op->path), "%s", req->path);
    uv_fs_req_cleanup(req);
    op->done = 0;
    if (op->ask->len == 0) {
        fs_close_then(op, fs_step_closed_written);
        return;
    }
    fs_write_more(op);
}

static int file_init(ds_ctx_t *ctx, void *arg)
{
    port_arg_t *pa = ds_xmalloc(sizeof(*pa));
    *pa = *(const port_arg_t *)arg;
    ds_ctx_set_state(ctx, pa);
    return 0;
}

static int file_receive(ds_ctx_t *ctx, ds_msg_t **msgp)
{
    port_arg_t *pa = ds_ctx_state(ctx);
    note_thread(pa->h, pa->loop);
    atomic_fetch_add(&pa->h->port_turns, 1);
    if ((*msgp)->type != T_FILE || ((*msgp)->flags & DS_MSG_F_ASK) == 0) {
        return 0;
    }
    fsop_t *op = ds_xcalloc(1, sizeof(*op));
    op->h = pa->h;
    op->loop = pa->loop;
    op->rt = ds_ctx_rt(ctx);
    op->ask = *msgp;
    *msgp = NULL;
    op->req.data = op;
    assert_int_equal(
        uv_fs_mkstemp(ds_loop_uv(pa->loop), &op->req, "/tmp/ds_test_loop_XXXXXX", fs_step_made), 0);
    return 0;
}

static void file_terminate(ds_ctx_t *ctx, int reason)
{
    (void)reason;
    port_arg_t *pa = ds_ctx_state(ctx);
    note_thread(pa->h, pa->loop);
    atomic_fetch_add(&pa->h->terminated, 1);
    free(pa);
}

static const ds_behaviour_t file_behaviour = {
    .name = "test.file",
    .init = file_init,
    .receive = file_receive,
    .terminate = file_terminate,
};

/* ---- an asker: on T_GO, asks a port once and records the reply ---- */

typedef struct asker {
    harness_t *h;
    ds_actor_id_t port;
    uint32_t type;
    const void *data;
    size_t len;
    size_t slot;
    uint64_t corr;
} asker_t;

static int asker_init(ds_ctx_t *ctx, void *arg)
{
    asker_t *a = ds_xmalloc(sizeof(*a));
    *a = *(const asker_t *)arg;
    ds_ctx_set_state(ctx, a);
    return 0;
}

static void asker_record(asker_t *a, int err, ds_msg_t **msgp)
{
    harness_t *h = a->h;
    pthread_mutex_lock(&h->mu);
    result_t *r = &h->slots[a->slot];
    r->replies++;
    r->err = err;
    r->on_loop = r->on_loop || ds_loop_on_thread(h->loop);
    if (msgp != NULL && r->reply == NULL) {
        r->reply = *msgp;
        *msgp = NULL;
    }
    if (r->replies == 1) {
        h->done++;
    }
    h_signal(h);
    pthread_mutex_unlock(&h->mu);
}

static int asker_receive(ds_ctx_t *ctx, ds_msg_t **msgp)
{
    asker_t *a = ds_ctx_state(ctx);
    ds_msg_t *m = *msgp;
    if (m->type == T_GO) {
        ds_msg_t *q;
        assert_int_equal(ds_msg_new(a->type, a->data, a->len, &q), 0);
        int rc = ds_ask(ctx, a->port, &q, 60 * SEC, &a->corr);
        if (rc < 0) {
            ds_msg_free(&q);
            asker_record(a, rc, NULL);
        }
        return 0;
    }
    if (m->corr != a->corr) {
        return 0; /* not ours: counted as nothing */
    }
    if ((m->flags & DS_MSG_F_ERROR) != 0) {
        asker_record(a, ds_msg_error(m), NULL);
    } else if ((m->flags & DS_MSG_F_REPLY) != 0) {
        asker_record(a, 0, msgp);
    } else {
        asker_record(a, DS_ETIMEDOUT, NULL);
    }
    return 0;
}

static void asker_terminate(ds_ctx_t *ctx, int reason)
{
    (void)reason;
    free(ds_ctx_state(ctx));
}

static const ds_behaviour_t asker_behaviour = {
    .name = "test.asker",
    .init = asker_init,
    .receive = asker_receive,
    .terminate = asker_terminate,
};

static ds_actor_id_t spawn_asker(ds_rt_t *rt, harness_t *h, ds_actor_id_t port, uint32_t type,
                                 const void *data, size_t len, size_t slot)
{
    asker_t a = {.h = h, .port = port, .type = type, .data = data, .len = len, .slot = slot};
    ds_actor_id_t id;
    assert_int_equal(ds_spawn(rt, &asker_behaviour, &a, NULL, &id), 0);
    return id;
}

static void go(ds_rt_t *rt, ds_actor_id_t to)
{
    ds_msg_t *m;
    assert_int_equal(ds_msg_new(T_GO, NULL, 0, &m), 0);
    assert_int_equal(ds_send_from(rt, to, &m), 0);
}

static ds_actor_id_t spawn_sleep(ds_loop_t *l, harness_t *h)
{
    port_arg_t pa = {.loop = l, .h = h};
    ds_actor_id_t id;
    assert_int_equal(ds_loop_port(l, &sleep_behaviour, &pa, NULL, &id), 0);
    return id;
}

static void shut(ds_rt_t **rtp, ds_loop_t **lp)
{
    assert_int_equal(ds_rt_drain(*rtp, 30 * SEC), 0);
    ds_loop_free(lp);
    assert_null(*lp);
    ds_rt_free(rtp);
}

/* ---- tests ---- */

/* An actor asks the sleep port; the port starts a uv_timer on the loop thread and answers
 * with ds_reply_from() when it fires: one reply, exactly once, to the right ask. */
static void test_sleep_port_replies_once(void **state)
{
    (void)state;
    harness_t h;
    h_init(&h, 2, 0);
    ds_rt_t *rt = rt_up();
    ds_loop_t *l = loop_up(rt, &h);
    ds_actor_id_t port = spawn_sleep(l, &h);
    assert_int_equal(atomic_load(&h.init_on_loop), 0); /* init ran here, on the test thread */
    uint64_t ms[2] = {5, 0};
    ds_actor_id_t a0 = spawn_asker(rt, &h, port, T_NAP, &ms[0], sizeof(ms[0]), 0);
    ds_actor_id_t a1 = spawn_asker(rt, &h, port, T_NAP, &ms[1], sizeof(ms[1]), 1);
    go(rt, a0);
    go(rt, a1);
    h_wait(&h, &h.done, 2);
    /* A ping through the port after both replies: FIFO from one sender means any duplicate
     * reply would have been queued before this one came back. */
    ds_actor_id_t a2 = spawn_asker(rt, &h, port, T_NAP, &ms[1], sizeof(ms[1]), 1);
    go(rt, a2);
    spin_wait(&h.replies_out, 3);
    shut(&rt, &l);
    pthread_mutex_lock(&h.mu);
    assert_int_equal(h.slots[0].replies, 1);
    assert_int_equal(h.slots[0].err, 0);
    assert_non_null(h.slots[0].reply);
    assert_int_equal(h.slots[0].reply->type, T_WOKE);
    assert_true((h.slots[0].reply->flags & DS_MSG_F_REPLY) != 0);
    assert_true(ds_id_eq(h.slots[0].reply->from, port));
    assert_false(h.slots[0].on_loop);
    assert_int_equal(h.slots[1].replies, 2); /* a1's and a2's: one each */
    pthread_mutex_unlock(&h.mu);
    assert_int_equal(atomic_load(&h.replies_out), 3);
    assert_int_equal(atomic_load(&h.off_thread), 0);
    assert_int_equal(atomic_load(&h.terminated), 1);
    h_fini(&h);
}

/* A port doing real file I/O with uv_fs_*: the bytes sent come back in the reply. */
static void test_file_port_round_trip(void **state)
{
    (void)state;
    enum {
        N = 4,
        LEN = 100000
    };
    harness_t h;
    h_init(&h, N, 0);
    ds_rt_t *rt = rt_up();
    ds_loop_t *l = loop_up(rt, &h);
    port_arg_t pa = {.loop = l, .h = &h};
    ds_actor_id_t port;
    assert_int_equal(ds_loop_port(l, &file_behaviour, &pa, NULL, &port), 0);
    uint8_t *data = malloc((size_t)N * LEN);
    assert_non_null(data);
    uint32_t x = 12345;
    for (size_t i = 0; i < (size_t)N * LEN; i++) {
        x = x * 1103515245u + 12345u;
        data[i] = (uint8_t)(x >> 16);
    }
    size_t lens[N] = {LEN, 1, 0, 4096};
    for (size_t i = 0; i < N; i++) {
        go(rt, spawn_asker(rt, &h, port, T_FILE, data + i * LEN, lens[i], i));
    }
    h_wait(&h, &h.done, N);
    pthread_mutex_lock(&h.mu);
    for (size_t i = 0; i < N; i++) {
        result_t *r = &h.slots[i];
        assert_int_equal(r->replies, 1);
        assert_int_equal(r->err, 0);
        assert_non_null(r->reply);
        assert_int_equal(r->reply->type, T_FILE_DATA);
        assert_int_equal(r->reply->len, lens[i]);
        assert_memory_equal(r->reply->data, data + i * LEN, lens[i]);
    }
    pthread_mutex_unlock(&h.mu);
    shut(&rt, &l);
    assert_int_equal(atomic_load(&h.off_thread), 0);
    assert_int_equal(atomic_load(&h.terminated), 1);
    free(data);
    h_fini(&h);
}

/* ds_loop_call from 4 threads: each thread's calls run in the order made, all on the loop
 * thread, each exactly once. */
enum {
    CALL_THREADS = 4,
    CALLS_EACH = 20000
};

typedef struct call_log {
    ds_loop_t *loop;
    uint32_t next[CALL_THREADS]; /* the loop thread's view: next sequence expected */
    unsigned out_of_order;
    unsigned off_loop;
    atomic_uint ran;
} call_log_t;

typedef struct call_thread {
    call_log_t *log;
    unsigned id;
} call_thread_t;

static call_log_t *g_log; /* call_record()'s log: one test at a time */

static void call_record(ds_loop_t *l, void *arg)
{
    uintptr_t v = (uintptr_t)arg;
    unsigned t = (unsigned)(v >> 32);
    uint32_t seq = (uint32_t)v;
    if (!ds_loop_on_thread(l)) {
        g_log->off_loop++;
    }
    if (seq != g_log->next[t]) {
        g_log->out_of_order++;
    }
    g_log->next[t] = seq + 1;
    atomic_fetch_add_explicit(&g_log->ran, 1, memory_order_release);
}

static void *call_thread_main(void *arg)
{
    call_thread_t *ct = arg;
    for (uint32_t i = 0; i < CALLS_EACH; i++) {
        uintptr_t v = ((uintptr_t)ct->id << 32) | i;
        if (ds_loop_call(ct->log->loop, call_record, (void *)v) != 0) {
            return (void *)1;
        }
    }
    return NULL;
}

static void test_call_fifo_from_threads(void **state)
{
    (void)state;
    harness_t h;
    h_init(&h, 0, 0);
    ds_rt_t *rt = rt_up();
    ds_loop_t *l = loop_up(rt, &h);
    call_log_t log = {.loop = l};
    atomic_init(&log.ran, 0);
    g_log = &log;
    assert_int_equal(ds_loop_call(l, NULL, NULL), -EINVAL);
    pthread_t th[CALL_THREADS];
    call_thread_t ct[CALL_THREADS];
    for (unsigned i = 0; i < CALL_THREADS; i++) {
        ct[i] = (call_thread_t){.log = &log, .id = i};
        assert_int_equal(pthread_create(&th[i], NULL, call_thread_main, &ct[i]), 0);
    }
    for (unsigned i = 0; i < CALL_THREADS; i++) {
        void *ret;
        pthread_join(th[i], &ret);
        assert_null(ret);
    }
    spin_wait(&log.ran, CALL_THREADS * CALLS_EACH);
    /* Acquire in spin_wait's load pairs with the release in call_record(). */
    assert_int_equal(log.out_of_order, 0);
    assert_int_equal(log.off_loop, 0);
    for (unsigned i = 0; i < CALL_THREADS; i++) {
        assert_int_equal(log.next[i], CALLS_EACH);
    }
    shut(&rt, &l);
    assert_int_equal(atomic_load(&log.ran), CALL_THREADS * CALLS_EACH);
    g_log = NULL;
    h_fini(&h);
}

/* ds_loop_work: work runs on libuv's pool, off the loop thread; done runs on the loop thread
 * and its message reaches the actor. Requests come from an actor and from the test thread. */
typedef struct job {
    harness_t *h;
    size_t i;
    uint64_t sum;
    bool on_loop;
} job_t;

static void job_work(void *arg)
{
    job_t *j = arg;
    j->on_loop = ds_loop_on_thread(j->h->loop);
    uint64_t s = 0;
    for (uint64_t k = 0; k <= 1000 * (uint64_t)j->i; k++) {
        s += k;
    }
    j->sum = s;
}

static ds_msg_t *job_done(void *arg, int status)
{
    job_t *j = arg;
    harness_t *h = j->h;
    pthread_mutex_lock(&h->mu);
    work_rec_t *w = &h->work[j->i];
    w->dones++;
    w->status = status;
    w->work_on_loop = j->on_loop;
    w->done_off_loop = !ds_loop_on_thread(h->loop);
    w->sum = j->sum;
    h->work_done++;
    h_signal(h);
    pthread_mutex_unlock(&h->mu);
    uint64_t payload[2] = {j->i, j->sum};
    free(j);
    if (status != 0) {
        return NULL;
    }
    ds_msg_t *m;
    assert_int_equal(ds_msg_new(T_RESULT, payload, sizeof(payload), &m), 0);
    return m;
}

static job_t *job_new(harness_t *h, size_t i)
{
    job_t *j = ds_xcalloc(1, sizeof(*j));
    j->h = h;
    j->i = i;
    return j;
}

typedef struct sink {
    harness_t *h;
    size_t from, to; /* jobs it requests on T_GO */
} sink_t;

static int sink_init(ds_ctx_t *ctx, void *arg)
{
    sink_t *s = ds_xmalloc(sizeof(*s));
    *s = *(const sink_t *)arg;
    ds_ctx_set_state(ctx, s);
    return 0;
}

static int sink_receive(ds_ctx_t *ctx, ds_msg_t **msgp)
{
    sink_t *s = ds_ctx_state(ctx);
    harness_t *h = s->h;
    const ds_msg_t *m = *msgp;
    if (m->type == T_GO) {
        for (size_t i = s->from; i < s->to; i++) {
            job_t *j = job_new(h, i);
            assert_int_equal(ds_loop_work(h->loop, ds_self(ctx), job_work, job_done, j), 0);
        }
        return 0;
    }
    if (m->type == T_RESULT && m->len == 2 * sizeof(uint64_t)) {
        uint64_t p[2];
        memcpy(p, m->data, sizeof(p));
        pthread_mutex_lock(&h->mu);
        if (p[0] < h->nwork) {
            h->work[p[0]].results++;
            h->work_results++;
        }
        h_signal(h);
        pthread_mutex_unlock(&h->mu);
    }
    return 0;
}

static void sink_terminate(ds_ctx_t *ctx, int reason)
{
    (void)reason;
    free(ds_ctx_state(ctx));
}

static const ds_behaviour_t sink_behaviour = {
    .name = "test.sink",
    .init = sink_init,
    .receive = sink_receive,
    .terminate = sink_terminate,
};

static void test_work_delivers_done_message(void **state)
{
    (void)state;
    enum {
        N = 200
    };
    harness_t h;
    h_init(&h, 0, N);
    ds_rt_t *rt = rt_up();
    ds_loop_t *l = loop_up(rt, &h);
    ds_actor_id_t sink;
    sink_t sa = {.h = &h, .from = 0, .to = N / 2};
    assert_int_equal(ds_spawn(rt, &sink_behaviour, &sa, NULL, &sink), 0);
    assert_int_equal(ds_loop_work(l, sink, NULL, job_done, NULL), -EINVAL);
    assert_int_equal(ds_loop_work(l, sink, job_work, NULL, NULL), -EINVAL);
    go(rt, sink); /* the actor asks for the first half */
    for (size_t i = N / 2; i < N; i++) {
        assert_int_equal(ds_loop_work(l, sink, job_work, job_done, job_new(&h, i)), 0);
    }
    h_wait(&h, &h.work_results, N);
    shut(&rt, &l);
    for (size_t i = 0; i < N; i++) {
        work_rec_t *w = &h.work[i];
        assert_int_equal(w->dones, 1);
        assert_int_equal(w->status, 0);
        assert_false(w->work_on_loop);
        assert_false(w->done_off_loop);
        assert_int_equal(w->results, 1);
        uint64_t n = 1000 * (uint64_t)i;
        assert_int_equal(w->sum, n * (n + 1) / 2);
    }
    h_fini(&h);
}

/* 1,000 actors ask the port at once: every one gets its reply, once. */
static void test_many_askers(void **state)
{
    (void)state;
    enum {
        N = 1000
    };
    harness_t h;
    h_init(&h, N, 0);
    ds_rt_t *rt = rt_up();
    ds_loop_t *l = loop_up(rt, &h);
    ds_actor_id_t port = spawn_sleep(l, &h);
    static const uint64_t ms[3] = {0, 1, 2};
    ds_actor_id_t *ids = calloc(N, sizeof(*ids));
    assert_non_null(ids);
    for (size_t i = 0; i < N; i++) {
        ids[i] = spawn_asker(rt, &h, port, T_NAP, &ms[i % 3], sizeof(ms[0]), i);
    }
    for (size_t i = 0; i < N; i++) {
        go(rt, ids[i]);
    }
    h_wait(&h, &h.done, N);
    shut(&rt, &l);
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(h.slots[i].replies, 1);
        assert_int_equal(h.slots[i].err, 0);
        assert_false(h.slots[i].on_loop);
    }
    assert_int_equal(atomic_load(&h.replies_out), N);
    assert_int_equal(atomic_load(&h.off_thread), 0);
    free(ids);
    h_fini(&h);
}

/* ds_loop_free with everything in flight: naps of an hour with their asks kept, work queued
 * far beyond the pool's threads, calls queued, and handles nobody closed. The ports answer
 * their asks from terminate, every call runs, every done runs once, every handle is closed;
 * ASan finds no leak and TSan no race. */
typedef struct stray {
    uv_timer_t timer;
    uv_check_t check;
    uv_idle_t idle;
    atomic_uint armed;
} stray_t;

static void stray_tick(uv_timer_t *t)
{
    (void)t;
}

static void stray_check(uv_check_t *c)
{
    (void)c;
}

static void stray_idle(uv_idle_t *i)
{
    uv_idle_stop(i);
}

static void stray_open(ds_loop_t *l, void *arg)
{
    stray_t *s = arg;
    uv_loop_t *uv = ds_loop_uv(l);
    assert_int_equal(uv_timer_init(uv, &s->timer), 0);
    assert_int_equal(uv_timer_start(&s->timer, stray_tick, HOUR_MS, HOUR_MS), 0);
    assert_int_equal(uv_check_init(uv, &s->check), 0);
    assert_int_equal(uv_check_start(&s->check, stray_check), 0);
    uv_unref((uv_handle_t *)&s->check); /* unreferenced handles get closed too */
    assert_int_equal(uv_idle_init(uv, &s->idle), 0);
    assert_int_equal(uv_idle_start(&s->idle, stray_idle), 0);
    atomic_store(&s->armed, 1);
}

static void slow_work(void *arg)
{
    job_t *j = arg;
    j->on_loop = ds_loop_on_thread(j->h->loop);
    struct timespec ts = {0, 2000000};
    nanosleep(&ts, NULL);
}

static atomic_uint g_calls_run;

static void count_call(ds_loop_t *l, void *arg)
{
    (void)arg;
    if (ds_loop_on_thread(l)) {
        atomic_fetch_add(&g_calls_run, 1);
    }
}

static void test_free_with_work_in_flight(void **state)
{
    (void)state;
    enum {
        NAPS = 50,
        JOBS = 64,
        CALLS = 1000
    };
    harness_t h;
    h_init(&h, NAPS, JOBS);
    ds_rt_t *rt = rt_up();
    ds_loop_t *l = loop_up(rt, &h);
    ds_actor_id_t port = spawn_sleep(l, &h);
    static const uint64_t hour = HOUR_MS;
    for (size_t i = 0; i < NAPS; i++) {
        go(rt, spawn_asker(rt, &h, port, T_NAP, &hour, sizeof(hour), i));
    }
    spin_wait(&h.naps, NAPS); /* every ask is kept by the port, its timer armed */
    stray_t stray;
    atomic_init(&stray.armed, 0);
    assert_int_equal(ds_loop_call(l, stray_open, &stray), 0);
    spin_wait(&stray.armed, 1);
    ds_actor_id_t sink;
    sink_t sa = {.h = &h};
    assert_int_equal(ds_spawn(rt, &sink_behaviour, &sa, NULL, &sink), 0);
    for (size_t i = 0; i < JOBS; i++) {
        assert_int_equal(ds_loop_work(l, sink, slow_work, job_done, job_new(&h, i)), 0);
    }
    atomic_store(&g_calls_run, 0);
    for (unsigned i = 0; i < CALLS; i++) {
        assert_int_equal(ds_loop_call(l, count_call, NULL), 0);
    }
    ds_loop_free(&l); /* the loop first this time: the runtime is not draining */
    assert_null(l);
    assert_int_equal(atomic_load(&g_calls_run), CALLS);
    assert_int_equal(atomic_load(&h.terminated), 1);
    assert_int_equal(atomic_load(&h.call_after_stop), DS_ESHUTDOWN);
    assert_int_equal(atomic_load(&h.off_thread), 0);
    pthread_mutex_lock(&h.mu);
    assert_int_equal(h.work_done, JOBS);
    for (size_t i = 0; i < JOBS; i++) {
        assert_int_equal(h.work[i].dones, 1);
        assert_true(h.work[i].status == 0 || h.work[i].status == -ECANCELED);
        assert_false(h.work[i].done_off_loop);
        assert_false(h.work[i].work_on_loop);
    }
    pthread_mutex_unlock(&h.mu);
    /* The port answered every kept ask from its terminate. */
    h_wait(&h, &h.done, NAPS);
    pthread_mutex_lock(&h.mu);
    for (size_t i = 0; i < NAPS; i++) {
        assert_int_equal(h.slots[i].replies, 1);
        assert_int_equal(h.slots[i].err, DS_ESHUTDOWN);
    }
    pthread_mutex_unlock(&h.mu);
    assert_int_equal(ds_rt_drain(rt, 30 * SEC), 0);
    ds_rt_free(&rt);
    h_fini(&h);
}

/* Port turns run on the loop thread, never on a worker; a port that fails dies there too, and
 * a loop that never started is shut down on the caller's thread the same way. */
static int failing_init(ds_ctx_t *ctx, void *arg)
{
    (void)ctx;
    (void)arg;
    return -EIO;
}

static int never_receive(ds_ctx_t *ctx, ds_msg_t **msgp)
{
    (void)ctx;
    (void)msgp;
    return 0;
}

static const ds_behaviour_t failing_behaviour = {
    .name = "test.failing",
    .init = failing_init,
    .receive = never_receive,
};

static void test_port_turns_on_loop_thread(void **state)
{
    (void)state;
    harness_t h;
    h_init(&h, 1, 0);
    ds_rt_t *rt = rt_up();
    ds_loop_t *l = loop_up(rt, &h);
    assert_false(ds_loop_on_thread(l));
    assert_int_equal(ds_loop_port(l, &failing_behaviour, NULL, NULL, &(ds_actor_id_t){0}), -EIO);
    assert_int_equal(ds_loop_port(l, NULL, NULL, NULL, &(ds_actor_id_t){0}), -EINVAL);
    ds_actor_id_t port = spawn_sleep(l, &h);
    ds_actor_id_t doomed = spawn_sleep(l, &h);
    /* Many messages, from many threads (the workers): every turn is on the loop thread. */
    static const uint64_t zero = 0;
    go(rt, spawn_asker(rt, &h, port, T_NAP, &zero, sizeof(zero), 0));
    for (unsigned i = 0; i < 500; i++) {
        ds_msg_t *m;
        assert_int_equal(ds_msg_new(T_WOKE, NULL, 0, &m), 0); /* ignored by the port */
        assert_int_equal(ds_send_from(rt, port, &m), 0);
    }
    h_wait(&h, &h.done, 1);
    spin_wait(&h.port_turns, 501);
    /* A port whose receive fails dies on the loop thread (its terminate runs there). */
    ds_msg_t *m;
    assert_int_equal(ds_msg_new(T_CRASH, NULL, 0, &m), 0);
    assert_int_equal(ds_send_from(rt, doomed, &m), 0);
    spin_wait(&h.terminated, 1);
    shut(&rt, &l);
    assert_int_equal(atomic_load(&h.off_thread), 0);
    assert_int_equal(atomic_load(&h.terminated), 2);
    assert_int_equal(h.slots[0].replies, 1);
    h_fini(&h);
}

static void init_port_from_loop(ds_loop_t *l, void *arg)
{
    harness_t *h = arg;
    port_arg_t pa = {.loop = l, .h = h};
    ds_actor_id_t id;
    assert_int_equal(ds_loop_port(l, &sleep_behaviour, &pa, NULL, &id), 0);
}

static void test_never_started_loop(void **state)
{
    (void)state;
    harness_t h;
    h_init(&h, 0, 2);
    ds_rt_t *rt = rt_up();
    ds_loop_t *l;
    assert_int_equal(ds_loop_new(rt, "a-name-longer-than-fifteen-bytes", &l), 0);
    h.loop = l;
    assert_int_equal(ds_loop_new(NULL, NULL, &l), -EINVAL);
    l = h.loop;
    (void)spawn_sleep(l, &h);
    atomic_store(&g_calls_run, 0);
    assert_int_equal(ds_loop_call(l, count_call, NULL), 0);
    ds_actor_id_t sink;
    sink_t sa = {.h = &h};
    assert_int_equal(ds_spawn(rt, &sink_behaviour, &sa, NULL, &sink), 0);
    assert_int_equal(ds_loop_work(l, sink, job_work, job_done, job_new(&h, 0)), 0);
    ds_loop_free(&l);
    assert_int_equal(atomic_load(&g_calls_run), 1);
    assert_int_equal(atomic_load(&h.terminated), 1); /* stopped, on this thread as its loop */
    assert_int_equal(atomic_load(&h.off_thread), 0);
    assert_int_equal(h.work[0].dones, 1);
    assert_int_equal(h.work[0].status, -ECANCELED);
    assert_int_equal(ds_rt_drain(rt, 30 * SEC), 0);
    ds_rt_free(&rt);
    h_fini(&h);
}

/* A port spawned from the loop thread runs its init there, so init may open handles. */
static void test_port_spawned_on_loop(void **state)
{
    (void)state;
    harness_t h;
    h_init(&h, 1, 0);
    ds_rt_t *rt = rt_up();
    ds_loop_t *l = loop_up(rt, &h);
    assert_int_equal(ds_loop_call(l, init_port_from_loop, &h), 0);
    spin_wait(&h.init_on_loop, 1);
    shut(&rt, &l);
    assert_int_equal(atomic_load(&h.terminated), 1);
    assert_int_equal(atomic_load(&h.off_thread), 0);
    h_fini(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sleep_port_replies_once),
        cmocka_unit_test(test_file_port_round_trip),
        cmocka_unit_test(test_call_fifo_from_threads),
        cmocka_unit_test(test_work_delivers_done_message),
        cmocka_unit_test(test_many_askers),
        cmocka_unit_test(test_free_with_work_in_flight),
        cmocka_unit_test(test_port_turns_on_loop_thread),
        cmocka_unit_test(test_never_started_loop),
        cmocka_unit_test(test_port_spawned_on_loop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
