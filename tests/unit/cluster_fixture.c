/* cluster_fixture: see cluster_fixture.h. */
#include "tests/unit/cluster_fixture.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/catalog.h"
#include "runtime/clock.h"
#include "runtime/err.h"
#include "runtime/mem.h"
#include "runtime/msg.h"
#include "runtime/rt.h"

#define DS_CATALOG_FILE    "tests/unit/cluster_fixture.msgs.h"
#define DS_CATALOG_PREFIX  ct_
#define DS_CATALOG_UPREFIX CT_
#define DS_CATALOG_SYMBOL  ct_catalog
#define DS_CATALOG_NAME    "cluster-tests"
#include "runtime/catalog_def.inc"

#define ASK_TIMEOUT (10 * CT_SEC)

int ct_msgs_register(void)
{
    static int done;
    if (done) {
        return 0;
    }
    int rc = ds_catalog_register(&ct_catalog);
    done = rc == 0;
    return rc;
}

void ct_probe_init(ct_probe_t *p)
{
    memset(p, 0, sizeof(*p));
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
}

void ct_probe_fini(ct_probe_t *p)
{
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
}

uint64_t ct_get(ct_probe_t *p, const uint64_t *field)
{
    pthread_mutex_lock(&p->mu);
    uint64_t v = *field;
    pthread_mutex_unlock(&p->mu);
    return v;
}

bool ct_wait(ct_probe_t *p, const uint64_t *field, uint64_t want, int64_t timeout_ns)
{
    int64_t end = ds_clock_now() + timeout_ns;
    pthread_mutex_lock(&p->mu);
    while (*field < want) {
        if (ds_clock_now() >= end) {
            break;
        }
        struct timespec ts = {.tv_sec = end / CT_SEC, .tv_nsec = end % CT_SEC};
        (void)pthread_cond_timedwait(&p->cv, &p->mu, &ts);
    }
    bool ok = *field >= want;
    pthread_mutex_unlock(&p->mu);
    return ok;
}

/* Adds n to a counter of p (NULL: nothing) and wakes the waiters. */
static void bump(ct_probe_t *p, uint64_t *field, uint64_t n)
{
    if (p == NULL) {
        return;
    }
    pthread_mutex_lock(&p->mu);
    *field += n;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static void note(ct_probe_t *p, uint64_t *field, int64_t *value, int64_t v)
{
    pthread_mutex_lock(&p->mu);
    *value = v;
    *field += 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

bool ct_wait_peer(ds_cluster_t *c, uint16_t node, bool up, int64_t timeout_ns)
{
    int64_t end = ds_clock_now() + timeout_ns;
    while (ds_cluster_peer_up(c, node) != up) {
        if (ds_clock_now() >= end) {
            return false;
        }
        ct_sleep_ms(5);
    }
    return true;
}

void ct_sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ---- echo ---- */

typedef struct echo_state {
    ct_probe_t *probe;
    uint64_t next_seq;
} echo_state_t;

static int echo_init(ds_ctx_t *ctx, void *arg)
{
    echo_state_t *s = ds_xcalloc(1, sizeof(*s));
    s->probe = arg;
    ds_ctx_set_state(ctx, s);
    return 0;
}

static int echo_receive(ds_ctx_t *ctx, ds_msg_t **msgp)
{
    echo_state_t *s = ds_ctx_state(ctx);
    ds_msg_t *m = *msgp;
    if (m->type == DS_MT_CT_PING) {
        ds_ct_ping_t ping = {0};
        if (ds_ct_ping_decode(m, &ping) < 0) {
            return 0;
        }
        bump(s->probe, s->probe ? &s->probe->pings : NULL, 1);
        if ((m->flags & DS_MSG_F_ASK) != 0) {
            ds_msg_t *r;
            if (ds_ct_pong_new(&(ds_ct_pong_t){.seq = ping.seq}, &r) == 0) {
                (void)ds_reply(ctx, m, &r);
                ds_msg_free(&r);
            }
        }
    } else if (m->type == DS_MT_CT_SEQ) {
        ds_ct_seq_t q = {0};
        if (ds_ct_seq_decode(m, &q) < 0) {
            return 0;
        }
        bool in_order = q.seq == s->next_seq;
        s->next_seq = q.seq + 1;
        if (s->probe != NULL) {
            bump(s->probe, in_order ? &s->probe->seq_recv : &s->probe->misorder, 1);
        }
    }
    return 0;
}

static void echo_terminate(ds_ctx_t *ctx, int reason)
{
    (void)reason;
    free(ds_ctx_state(ctx));
}

const ds_behaviour_t ct_echo = {
    .name = "ct_echo", .init = echo_init, .receive = echo_receive, .terminate = echo_terminate};

/* ---- client ---- */

typedef struct client_state {
    ct_probe_t *probe;
    uint64_t ask_corr, ask_seq;
    ds_actor_id_t stream_to;
    uint64_t stream_next, stream_n;
    bool cont_pending;
} client_state_t;

static int client_init(ds_ctx_t *ctx, void *arg)
{
    client_state_t *s = ds_xcalloc(1, sizeof(*s));
    s->probe = arg;
    ds_ctx_set_state(ctx, s);
    return 0;
}

/* Sends the stream on until done or the link pushes back; then retries on a timer. */
static void stream_on(ds_ctx_t *ctx, client_state_t *s)
{
    while (s->stream_next < s->stream_n) {
        ds_msg_t *m;
        if (ds_ct_seq_new(&(ds_ct_seq_t){.seq = s->stream_next}, &m) < 0) {
            bump(s->probe, &s->probe->stream_lost, 1);
            return;
        }
        int rc = ds_send(ctx, s->stream_to, &m);
        if (rc == DS_EFULL && m != NULL) {
            ds_msg_free(&m);
            bump(s->probe, &s->probe->stream_full, 1);
            if (!s->cont_pending) {
                ds_msg_t *t = NULL;
                if (ds_ct_cont_new(NULL, &t) == 0 &&
                    ds_timer_after(ds_ctx_rt(ctx), ds_self(ctx), 1000000, &t, NULL) == 0) {
                    s->cont_pending = true;
                }
                ds_msg_free(&t);
            }
            return;
        }
        if (rc < 0 || m != NULL) {
            ds_msg_free(&m);
            bump(s->probe, &s->probe->stream_lost, 1);
            return;
        }
        s->stream_next++;
        bump(s->probe, &s->probe->stream_sent, 1);
    }
}

static int client_receive(ds_ctx_t *ctx, ds_msg_t **msgp)
{
    client_state_t *s = ds_ctx_state(ctx);
    ct_probe_t *p = s->probe;
    ds_msg_t *m = *msgp;
    if ((m->flags & DS_MSG_F_REPLY) != 0) {
        if ((m->flags & DS_MSG_F_ERROR) != 0) {
            note(p, &p->errors, &p->last_error, ds_msg_error(m));
            return 0;
        }
        ds_ct_pong_t pong = {0};
        bool ok =
            m->corr == s->ask_corr && ds_ct_pong_decode(m, &pong) == 0 && pong.seq == s->ask_seq;
        bump(p, ok ? &p->replies : &p->bad_replies, 1);
        return 0;
    }
    switch (m->type) {
    case DS_MT_TIMEOUT:
        bump(p, &p->timeouts, 1);
        break;
    case DS_MT_DOWN: {
        ds_down_t d = {0};
        if (ds_down_decode(m, &d) == 0) {
            note(p, &p->downs, &p->last_down_reason, d.reason);
        }
        break;
    }
    case DS_MT_CT_CMD_ASK: {
        ds_ct_cmd_ask_t c = {0};
        ds_msg_t *q = NULL;
        if (ds_ct_cmd_ask_decode(m, &c) < 0 ||
            ds_ct_ping_new(&(ds_ct_ping_t){.seq = c.seq}, &q) < 0) {
            break;
        }
        s->ask_seq = c.seq;
        int rc = ds_ask(ctx, c.target, &q, ASK_TIMEOUT, &s->ask_corr);
        if (rc < 0) {
            ds_msg_free(&q);
            note(p, &p->asks_refused, &p->last_refusal, rc);
        }
        break;
    }
    case DS_MT_CT_CMD_MONITOR: {
        ds_ct_cmd_monitor_t c = {0};
        uint64_t ref;
        if (ds_ct_cmd_monitor_decode(m, &c) == 0 && ds_monitor(ctx, c.target, &ref) == 0) {
            bump(p, &p->monitors, 1);
        }
        break;
    }
    case DS_MT_CT_CMD_STREAM: {
        ds_ct_cmd_stream_t c = {0};
        if (ds_ct_cmd_stream_decode(m, &c) == 0) {
            s->stream_to = c.target;
            s->stream_next = 0;
            s->stream_n = c.n;
            stream_on(ctx, s);
        }
        break;
    }
    case DS_MT_CT_CONT:
        s->cont_pending = false;
        stream_on(ctx, s);
        break;
    default:
        break;
    }
    return 0;
}

static void client_terminate(ds_ctx_t *ctx, int reason)
{
    (void)reason;
    free(ds_ctx_state(ctx));
}

const ds_behaviour_t ct_client = {.name = "ct_client",
                                  .init = client_init,
                                  .receive = client_receive,
                                  .terminate = client_terminate};

static int cmd(ds_rt_t *rt, ds_actor_id_t client, int made, ds_msg_t *m)
{
    if (made < 0) {
        return made;
    }
    int rc = ds_send_from(rt, client, &m);
    ds_msg_free(&m);
    return rc;
}

int ct_cmd_ask(ds_rt_t *rt, ds_actor_id_t client, ds_actor_id_t target, uint64_t seq)
{
    ds_msg_t *m = NULL;
    int rc = ds_ct_cmd_ask_new(&(ds_ct_cmd_ask_t){.target = target, .seq = seq}, &m);
    return cmd(rt, client, rc, m);
}

int ct_cmd_monitor(ds_rt_t *rt, ds_actor_id_t client, ds_actor_id_t target)
{
    ds_msg_t *m = NULL;
    int rc = ds_ct_cmd_monitor_new(&(ds_ct_cmd_monitor_t){.target = target}, &m);
    return cmd(rt, client, rc, m);
}

int ct_cmd_stream(ds_rt_t *rt, ds_actor_id_t client, ds_actor_id_t target, uint64_t n)
{
    ds_msg_t *m = NULL;
    int rc = ds_ct_cmd_stream_new(&(ds_ct_cmd_stream_t){.target = target, .n = n}, &m);
    return cmd(rt, client, rc, m);
}
