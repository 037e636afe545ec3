/* pool: the asynchronous libpq pool, a port actor on a libuv loop. transports/pg/pool.h tells
 * what it promises; this file is how.
 *
 * Connections. Each slot of `conns` is EMPTY, CONNECTING (PQconnectStartParams, then
 * PQconnectPoll driven by a uv_poll on its socket), SETUP (connected, in pipeline mode and
 * non-blocking; the session's statement_timeout being set) or READY. A poll handle lives in a
 * box of its own that is freed by its close callback, which is also where PQfinish() runs: the
 * socket stays open until libuv has stopped watching it, so its number cannot be reused under
 * a live watcher. While connecting, the box is replaced after every PQconnectPoll() step, as
 * libpq may have moved to another socket (another host, an SSL retry).
 *
 * Requests on a connection. A request is sent whole (the prologue, the statements, then a
 * pipeline sync) and flushed without blocking (PQflush, waiting for writability when the
 * socket is full); its expected results are listed as items (a prepare, an internal statement,
 * a user statement, the sync) and matched one by one as PQgetResult() yields them. Each request
 * is one transaction of the extended protocol: it begins with its first message and ends at
 * its sync, committed, or rolled back after an error (the server skips to the sync), so no
 * BEGIN, COMMIT or ROLLBACK is ever sent and a failed request leaves nothing behind for the
 * next. A connection serves one tenant at a time (its owner, the system counting as one):
 * while it has requests in flight, more of the same tenant's may follow them, up to
 * pipeline_depth in flight, as long as no other tenant waits under its cap (a "hungry" one)
 * and some connection is owned by nobody, so that a tenant arriving finds one rather than wait
 * behind a batch -- or the tenant owns them all, alone on the pool; the connection returns to
 * the pool when its last request completes. Sent back to
 * back, a tenant's transactions share system calls and wake-ups on both sides of the socket; its
 * cap on connections (and so on server processes working for it at once) is unchanged.
 *
 * Waiting. Requests wait per tenant (FIFO) and tenants wait in a binary heap keyed by virtual
 * time (start-time fair queueing; the idea is in pool.h). A tenant is in the heap exactly when
 * it has requests waiting and either holds fewer connections than its cap or has room on one of
 * its connections; dispatch() sets aside, for its turn, a tenant that could only pipeline
 * when free_conn() does not let it. All waiting requests are
 * also on one list, swept by a 50 ms tick for deadlines; the tick also times out connection
 * attempts and retries with backoff after a failed one. It runs only while it has work.
 *
 * Threads: everything here runs on the loop thread (the port's turns and libuv callbacks). */
#include "transports/pg/pool.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>
#include <openssl/crypto.h>
#include <uv.h>

#include "runtime/catalog.h"
#include "runtime/clock.h"
#include "runtime/err.h"
#include "runtime/id.h"
#include "runtime/log.h"
#include "runtime/loop.h"
#include "runtime/mem.h"
#include "runtime/mpack.h"
#include "runtime/msg.h"
#include "runtime/rt.h"
#include "transports/pg/pg_msgs.h"
#include "transports/pg/pool_int.h"

#define MS_NS INT64_C(1000000)

enum {
    TICK_MS = 50,
    VT_SCALE = 1 << 20, /* virtual time of one transaction at weight 1 */
    NAME_MAX_LEN = 16,
};

#define NO_SLOT UINT32_MAX /* an item run without a prepared statement */

static const char tx_prologue[] =
    "SELECT set_config('app.tenant_id', $1, true), set_config('statement_timeout', $2, true)";
static const char sys_prologue[] = "SELECT set_config('statement_timeout', $1, true)";
static const char session_setup[] = "SELECT set_config('statement_timeout', $1, false)";

typedef struct pool pool_t;
typedef struct pconn pconn_t;
typedef struct tenant tenant_t;

/* ---- requests ---- */

typedef enum req_kind {
    R_TX,     /* a tenant transaction */
    R_SYSTEM, /* a system request */
    R_SETUP,  /* internal: a new connection's session settings */
} req_kind_t;

typedef enum item_kind {
    I_PREPARE,  /* a Parse of a statement cached on the connection */
    I_INTERNAL, /* the prologue, the session setup */
    I_USER,     /* one of the request's statements */
    I_SYNC,     /* the pipeline sync that ends the request */
} item_kind_t;

typedef struct item {
    uint8_t kind;
    uint32_t slot; /* the cache slot of its prepared statement, or NO_SLOT */
    uint32_t stmt; /* the user statement it belongs to, or DS_PG_STMT_NONE */
} item_t;

typedef struct preq {
    struct preq *next, *prev;   /* the tenant's wait queue, or the connection's in-flight list */
    struct preq *gnext, *gprev; /* the pool's list of waiting requests */
    ds_msg_t *ask;              /* the kept ask; NULL for internal requests */
    tenant_t *tenant;           /* NULL for internal requests */
    req_kind_t kind;
    ds__pg_stmt_t *stmts;
    uint32_t nstmts;
    void *arena; /* the statements' strings */
    char tenant_text[DS_PG_UUID_LEN + 1];
    char timeout_text[12];
    uint32_t req_timeout_ms;
    uint32_t max_bytes;
    int64_t deadline;
    item_t *items;
    uint32_t nitems, cap_items, cur;
    bool cur_has_result;
    ds__pg_buf_t out; /* encoded results */
    uint32_t nout;
    int err; /* the first error, 0 while none */
    uint32_t err_stmt;
    char sqlstate[6];
    char message[DS_PG_MESSAGE_MAX + 1];
} preq_t;

/* ---- tenants ---- */

struct tenant {
    tenant_t *hnext;
    tenant_t *anext; /* set aside by dispatch() */
    uint8_t key[16];
    char text[DS_PG_UUID_LEN + 1];
    ds_pg_limits_t lim;
    bool registered;
    bool system;
    bool hungry;     /* waiting, and under its cap (counted in pool.hungry) */
    uint32_t active; /* connections it owns */
    uint32_t inflight, waiting, peak, peak_inflight;
    uint64_t served;
    preq_t *qhead, *qtail;
    uint64_t vtime;
    uint64_t seq;     /* tie-breaker in the heap: order of entry */
    int64_t heap_pos; /* -1 when not in the heap */
};

/* ---- connections ---- */

typedef enum conn_state {
    C_EMPTY,
    C_CONNECTING,
    C_SETUP,
    C_READY,
} conn_state_t;

typedef struct pbox {
    uv_poll_t h;
    pool_t *pool;
    pconn_t *conn;  /* NULL once closing */
    PGconn *finish; /* PQfinish()ed by the close callback */
} pbox_t;

typedef struct centry {
    char *sql; /* NULL: a free slot */
    uint64_t hash;
    bool ready; /* its Parse succeeded (else it is in flight) */
    char name[NAME_MAX_LEN];
} centry_t;

struct pconn {
    pool_t *pool;
    uint32_t idx;
    conn_state_t state;
    PGconn *pg;
    pbox_t *box;
    int events;
    int64_t connect_deadline;
    preq_t *ihead, *itail; /* requests in flight, in the order sent */
    uint32_t ninflight;
    tenant_t *owner; /* whose requests are in flight; NULL when none (or the session setup) */
    centry_t *cache;
    uint32_t ncache;
    uint32_t next_name;
};

struct pool {
    ds_rt_t *rt;
    ds_loop_t *loop;
    ds_pg_pool_config_t cfg;
    char *conninfo;
    char sys_timeout_text[12];
    pconn_t *conns;
    tenant_t **buckets;
    uint32_t nbuckets, ntenants;
    tenant_t system;
    tenant_t **heap;
    uint32_t heap_len, heap_cap;
    uint64_t vnow, seq;
    uint32_t hungry;       /* tenants waiting under their cap */
    uint32_t owned;        /* connections with requests of a tenant in flight */
    preq_t *whead, *wtail; /* every waiting request */
    uint32_t waiting;
    uv_timer_t *tick; /* NULL until the first turn on the loop thread */
    bool tick_on;
    uint32_t open, connecting;
    bool failing; /* the last connection attempt failed */
    uint32_t backoff_ms;
    int64_t next_attempt;
    uint32_t to_replace; /* connections lost or failed, not yet replaced */
    bool stopping;
    uint32_t handles; /* open uv handles: the pool is freed when the last one closed */
    uint64_t served, errors, connects, reconnects, disconnects, connect_failures, refused, expired;
};

static void dispatch(pool_t *p);
static void conn_fail(pconn_t *c, int code, const char *why);
static void tick_arm(pool_t *p);

/* ---- small helpers ---- */

static uint32_t or_default(uint32_t v, uint32_t dflt)
{
    return v != 0 ? v : dflt;
}

static ds_pg_limits_t limits_resolve(const ds_pg_limits_t *in, const ds_pg_limits_t *dflt)
{
    return (ds_pg_limits_t){
        .weight = or_default(in->weight, dflt->weight),
        .max_conns = or_default(in->max_conns, dflt->max_conns),
        .max_waiting = or_default(in->max_waiting, dflt->max_waiting),
        .statement_timeout_ms = or_default(in->statement_timeout_ms, dflt->statement_timeout_ms),
    };
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    return (c | 0x20) - 'a' + 10;
}

/* Parses a valid UUID text into 16 bytes and its lower-case text. */
static void uuid_parse(const char *s, uint8_t key[16], char text[DS_PG_UUID_LEN + 1])
{
    static const char digits[] = "0123456789abcdef";
    size_t k = 0;
    for (size_t i = 0; i < DS_PG_UUID_LEN; i++) {
        if (s[i] == '-') {
            text[i] = '-';
            continue;
        }
        int v = hexval(s[i]);
        text[i] = digits[v];
        if ((k & 1) == 0) {
            key[k / 2] = (uint8_t)(v << 4);
        } else {
            key[k / 2] |= (uint8_t)v;
        }
        k++;
    }
    text[DS_PG_UUID_LEN] = '\0';
}

static uint64_t fnv1a(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint64_t h = UINT64_C(14695981039346656037);
    for (size_t i = 0; i < n; i++) {
        h = (h ^ b[i]) * UINT64_C(1099511628211);
    }
    return h;
}

/* ---- the tenant table ---- */

static tenant_t *tenant_find(pool_t *p, const uint8_t key[16])
{
    tenant_t *t = p->buckets[fnv1a(key, 16) & (p->nbuckets - 1)];
    while (t != NULL && memcmp(t->key, key, 16) != 0) {
        t = t->hnext;
    }
    return t;
}

static void tenant_table_grow(pool_t *p)
{
    uint32_t n = p->nbuckets * 2;
    tenant_t **b = ds_xcalloc(n, sizeof(tenant_t *));
    for (uint32_t i = 0; i < p->nbuckets; i++) {
        tenant_t *t = p->buckets[i];
        while (t != NULL) {
            tenant_t *next = t->hnext;
            uint64_t h = fnv1a(t->key, 16) & (n - 1);
            t->hnext = b[h];
            b[h] = t;
            t = next;
        }
    }
    free(p->buckets);
    p->buckets = b;
    p->nbuckets = n;
}

static tenant_t *tenant_get(pool_t *p, const char *text)
{
    uint8_t key[16];
    char norm[DS_PG_UUID_LEN + 1];
    uuid_parse(text, key, norm);
    tenant_t *t = tenant_find(p, key);
    if (t != NULL) {
        return t;
    }
    if (p->ntenants >= p->nbuckets) {
        tenant_table_grow(p);
    }
    t = ds_xcalloc(1, sizeof(*t));
    memcpy(t->key, key, 16);
    memcpy(t->text, norm, sizeof(norm));
    t->lim = p->cfg.tenant;
    t->heap_pos = -1;
    uint64_t h = fnv1a(key, 16) & (p->nbuckets - 1);
    t->hnext = p->buckets[h];
    p->buckets[h] = t;
    p->ntenants++;
    return t;
}

/* Forgets a tenant nobody registered once it holds and awaits nothing: its virtual time would
 * be lifted to the pool's on its return anyway. t is freed: do not use it after. */
static void tenant_maybe_evict(pool_t *p, tenant_t *t)
{
    if (t->system || t->registered || t->active > 0 || t->inflight > 0 || t->waiting > 0) {
        return;
    }
    tenant_t **pp = &p->buckets[fnv1a(t->key, 16) & (p->nbuckets - 1)];
    while (*pp != t) {
        pp = &(*pp)->hnext;
    }
    *pp = t->hnext;
    p->ntenants--;
    free(t);
}

/* ---- the heap of eligible tenants (min virtual time, then order of entry) ---- */

static bool heap_less(const tenant_t *a, const tenant_t *b)
{
    return a->vtime != b->vtime ? a->vtime < b->vtime : a->seq < b->seq;
}

static void heap_set(pool_t *p, uint32_t i, tenant_t *t)
{
    p->heap[i] = t;
    t->heap_pos = i;
}

static void heap_up(pool_t *p, uint32_t i)
{
    tenant_t *t = p->heap[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (!heap_less(t, p->heap[parent])) {
            break;
        }
        heap_set(p, i, p->heap[parent]);
        i = parent;
    }
    heap_set(p, i, t);
}

static void heap_down(pool_t *p, uint32_t i)
{
    tenant_t *t = p->heap[i];
    for (;;) {
        uint32_t l = 2 * i + 1;
        if (l >= p->heap_len) {
            break;
        }
        uint32_t m = l + 1 < p->heap_len && heap_less(p->heap[l + 1], p->heap[l]) ? l + 1 : l;
        if (!heap_less(p->heap[m], t)) {
            break;
        }
        heap_set(p, i, p->heap[m]);
        i = m;
    }
    heap_set(p, i, t);
}

static void heap_push(pool_t *p, tenant_t *t)
{
    if (p->heap_len == p->heap_cap) {
        p->heap_cap = p->heap_cap == 0 ? 16 : p->heap_cap * 2;
        p->heap = ds_xrealloc(p->heap, p->heap_cap * sizeof(tenant_t *));
    }
    heap_set(p, p->heap_len++, t);
    heap_up(p, p->heap_len - 1);
}

static void heap_remove(pool_t *p, tenant_t *t)
{
    uint32_t i = (uint32_t)t->heap_pos;
    t->heap_pos = -1;
    tenant_t *last = p->heap[--p->heap_len];
    if (i == p->heap_len) {
        return;
    }
    heap_set(p, i, last);
    heap_up(p, i);
    heap_down(p, (uint32_t)last->heap_pos);
}

/* Puts t in the heap exactly when it is eligible, and fixes its place after a charge. A tenant
 * entering joins at no less than the pool's virtual time, so waiting later banks no credit. */
static void tenant_update(pool_t *p, tenant_t *t)
{
    bool hungry = t->waiting > 0 && t->active < t->lim.max_conns;
    if (hungry != t->hungry) {
        t->hungry = hungry;
        p->hungry += hungry ? 1u : UINT32_MAX; /* -1 */
    }
    bool want = hungry || (t->waiting > 0 && t->active <= t->lim.max_conns &&
                           t->inflight < t->active * p->cfg.pipeline_depth);
    if (want && t->heap_pos < 0) {
        if (t->vtime < p->vnow) {
            t->vtime = p->vnow;
        }
        t->seq = ++p->seq;
        heap_push(p, t);
    } else if (!want && t->heap_pos >= 0) {
        heap_remove(p, t);
    } else if (want) {
        heap_down(p, (uint32_t)t->heap_pos);
        heap_up(p, (uint32_t)t->heap_pos);
    }
}

/* ---- replies ---- */

static void req_free(preq_t *r)
{
    if (r == NULL) {
        return;
    }
    ds_msg_free(&r->ask);
    free(r->arena);
    free(r->items);
    ds__pg_buf_free(&r->out);
    free(r);
}

/* Copies at most DS_PG_MESSAGE_MAX bytes of s, cut at a character boundary; "" unless UTF-8. */
static void copy_message(char *dst, const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' ')) {
        n--;
    }
    if (n > DS_PG_MESSAGE_MAX) {
        n = DS_PG_MESSAGE_MAX;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) {
            n--;
        }
    }
    if (n > 0 && ds_mp_utf8_valid(s, n)) {
        memcpy(dst, s, n);
    } else {
        n = 0;
    }
    dst[n] = '\0';
}

/* Answers ask (borrowed) with a FAIL. */
static void reply_fail(pool_t *p, const ds_msg_t *ask, int code, const char *sqlstate,
                       const char *message, uint32_t stmt)
{
    char msg[DS_PG_MESSAGE_MAX + 1];
    copy_message(msg, message);
    ds_pg_fail_t f = {
        .code = code,
        .sqlstate = {sqlstate, (uint32_t)strnlen(sqlstate, 5)},
        .message = {msg, (uint32_t)strlen(msg)},
        .stmt = stmt,
    };
    ds_msg_t *m;
    p->errors++;
    if (ds_pg_fail_new(&f, &m) < 0) {
        f.sqlstate.len = 0; /* not UTF-8: PostgreSQL's states are ASCII, so it was garbage */
        if (ds_pg_fail_new(&f, &m) < 0) {
            return;
        }
    }
    if (ds_reply_from(p->rt, ask, &m) < 0) {
        ds_msg_free(&m); /* the asker is gone */
    }
}

/* Answers r (if it is an ask) with its results, or with its error (code). */
static void req_reply(pool_t *p, preq_t *r, int code)
{
    if (r->ask == NULL) {
        return;
    }
    if (code != 0) {
        reply_fail(p, r->ask, code, r->sqlstate, r->message, r->err_stmt);
        return;
    }
    size_t len;
    const uint8_t *bin = ds__pg_buf_framed(&r->out, r->nout, &len);
    ds_msg_t *m;
    int rc = ds_pg_result_new(&(ds_pg_result_t){.results = {bin, (uint32_t)len}}, &m);
    if (rc < 0) {
        reply_fail(p, r->ask, rc, "", "could not encode the results", DS_PG_STMT_NONE);
        return;
    }
    p->served++;
    if (ds_reply_from(p->rt, r->ask, &m) < 0) {
        ds_msg_free(&m);
    }
}

/* Records r's first error. */
static void req_error(preq_t *r, int code, const char *sqlstate, const char *message, uint32_t stmt)
{
    if (r->err != 0) {
        return;
    }
    r->err = code;
    r->err_stmt = stmt;
    (void)snprintf(r->sqlstate, sizeof(r->sqlstate), "%s", sqlstate != NULL ? sqlstate : "");
    copy_message(r->message, message);
}

/* ---- the wait queues ---- */

static void wait_push(pool_t *p, preq_t *r)
{
    tenant_t *t = r->tenant;
    r->prev = t->qtail;
    r->next = NULL;
    if (t->qtail != NULL) {
        t->qtail->next = r;
    } else {
        t->qhead = r;
    }
    t->qtail = r;
    r->gprev = p->wtail;
    r->gnext = NULL;
    if (p->wtail != NULL) {
        p->wtail->gnext = r;
    } else {
        p->whead = r;
    }
    p->wtail = r;
    t->waiting++;
    p->waiting++;
}

static void wait_remove(pool_t *p, preq_t *r)
{
    tenant_t *t = r->tenant;
    *(r->prev != NULL ? &r->prev->next : &t->qhead) = r->next;
    *(r->next != NULL ? &r->next->prev : &t->qtail) = r->prev;
    *(r->gprev != NULL ? &r->gprev->gnext : &p->whead) = r->gnext;
    *(r->gnext != NULL ? &r->gnext->gprev : &p->wtail) = r->gprev;
    r->next = r->prev = r->gnext = r->gprev = NULL;
    t->waiting--;
    p->waiting--;
}

/* Answers a waiting request with code and forgets it. */
static void wait_fail(pool_t *p, preq_t *r, int code, const char *message)
{
    tenant_t *t = r->tenant;
    wait_remove(p, r);
    req_error(r, code, "", message, DS_PG_STMT_NONE);
    req_reply(p, r, code);
    req_free(r);
    tenant_update(p, t);
    tenant_maybe_evict(p, t);
}

static void wait_fail_all(pool_t *p, int code, const char *message)
{
    while (p->whead != NULL) {
        wait_fail(p, p->whead, code, message);
    }
}

/* ---- the poll boxes ---- */

static void pool_free(pool_t *p)
{
    if (p->conninfo != NULL) {
        OPENSSL_cleanse(p->conninfo, strlen(p->conninfo));
        free(p->conninfo);
    }
    for (uint32_t i = 0; i < p->cfg.size; i++) {
        free(p->conns[i].cache);
    }
    free(p->conns);
    free(p->buckets);
    free(p->heap);
    free(p);
}

static void handle_closed(pool_t *p)
{
    p->handles--;
    if (p->stopping && p->handles == 0) {
        pool_free(p);
    }
}

static void box_closed(uv_handle_t *h)
{
    pbox_t *b = h->data;
    if (b->finish != NULL) {
        PQfinish(b->finish);
    }
    pool_t *p = b->pool;
    free(b);
    handle_closed(p);
}

/* Stops watching; finish (may be NULL) is PQfinish()ed once libuv let go of the socket. */
static void box_close(pbox_t *b, PGconn *finish)
{
    if (b == NULL) {
        if (finish != NULL) {
            PQfinish(finish);
        }
        return;
    }
    b->conn = NULL;
    b->finish = finish;
    uv_close((uv_handle_t *)&b->h, box_closed);
}

static void on_poll(uv_poll_t *h, int status, int events);

/* Watches c's current socket for events with a new box (the old one, if any, closes). */
static int conn_watch_new(pconn_t *c, int events)
{
    pool_t *p = c->pool;
    box_close(c->box, NULL);
    c->box = NULL;
    int fd = PQsocket(c->pg);
    if (fd < 0) {
        return -EBADF;
    }
    pbox_t *b = ds_xcalloc(1, sizeof(*b));
    int rc = uv_poll_init_socket(ds_loop_uv(p->loop), &b->h, fd);
    if (rc < 0) {
        free(b);
        return rc;
    }
    b->h.data = b;
    b->pool = p;
    b->conn = c;
    p->handles++;
    c->box = b;
    c->events = events;
    return uv_poll_start(&b->h, events, on_poll);
}

static int conn_watch(pconn_t *c, int events)
{
    if (c->events == events) {
        return 0;
    }
    c->events = events;
    return uv_poll_start(&c->box->h, events, on_poll);
}

/* ---- the statement cache ---- */

static void cache_reset(pconn_t *c)
{
    for (uint32_t i = 0; i < c->pool->cfg.stmt_cache; i++) {
        free(c->cache[i].sql);
        c->cache[i] = (centry_t){0};
    }
    c->ncache = 0;
}

static int64_t cache_find(const pconn_t *c, const char *sql, uint64_t h)
{
    for (uint32_t i = 0; i < c->pool->cfg.stmt_cache; i++) {
        const centry_t *e = &c->cache[i];
        if (e->sql != NULL && e->hash == h && strcmp(e->sql, sql) == 0) {
            return i;
        }
    }
    return -1;
}

static int64_t cache_add(pconn_t *c, const char *sql, uint64_t h)
{
    if (c->ncache >= c->pool->cfg.stmt_cache) {
        return -1;
    }
    for (uint32_t i = 0; i < c->pool->cfg.stmt_cache; i++) {
        centry_t *e = &c->cache[i];
        if (e->sql == NULL) {
            e->sql = ds_xstrdup(sql);
            e->hash = h;
            e->ready = false;
            (void)snprintf(e->name, sizeof(e->name), "ds_%u", c->next_name++);
            c->ncache++;
            return i;
        }
    }
    return -1;
}

static void cache_drop(pconn_t *c, uint32_t slot)
{
    centry_t *e = &c->cache[slot];
    if (e->sql != NULL) {
        free(e->sql);
        *e = (centry_t){0};
        c->ncache--;
    }
}

/* ---- sending ---- */

static void item_push(preq_t *r, item_kind_t kind, uint32_t slot, uint32_t stmt)
{
    if (r->nitems == r->cap_items) {
        r->cap_items = r->cap_items == 0 ? 8 : r->cap_items * 2;
        r->items = ds_xrealloc(r->items, r->cap_items * sizeof(*r->items));
    }
    r->items[r->nitems++] = (item_t){(uint8_t)kind, slot, stmt};
}

/* Queues one statement (prepared once per connection when the cache has room). 0 or -1 when
 * libpq refused it (the connection is broken). */
static int send_stmt(pconn_t *c, preq_t *r, const char *sql, uint32_t n, const char *const *params,
                     item_kind_t kind, uint32_t stmt)
{
    uint64_t h = fnv1a(sql, strlen(sql));
    int64_t slot = cache_find(c, sql, h);
    if (slot >= 0 && !c->cache[slot].ready) {
        slot = -1; /* its Parse is in flight and may yet fail: run this one unnamed */
    } else if (slot < 0) {
        slot = cache_add(c, sql, h);
        if (slot >= 0) {
            if (PQsendPrepare(c->pg, c->cache[slot].name, sql, 0, NULL) != 1) {
                cache_drop(c, (uint32_t)slot);
                return -1;
            }
            item_push(r, I_PREPARE, (uint32_t)slot, stmt);
        }
    }
    int ok = slot >= 0
                 ? PQsendQueryPrepared(c->pg, c->cache[slot].name, (int)n, params, NULL, NULL, 0)
                 : PQsendQueryParams(c->pg, sql, (int)n, NULL, params, NULL, NULL, 0);
    if (ok != 1) {
        return -1;
    }
    item_push(r, kind, slot >= 0 ? (uint32_t)slot : NO_SLOT, stmt);
    return 0;
}

/* Sends what libpq buffered; watches for writability while some is left. 0, or -1 after the
 * connection failed. */
static int conn_flush(pconn_t *c)
{
    int rc = PQflush(c->pg);
    if (rc < 0) {
        conn_fail(c, -ECONNRESET, PQerrorMessage(c->pg));
        return -1;
    }
    if (conn_watch(c, UV_READABLE | (rc == 1 ? UV_WRITABLE : 0)) < 0) {
        conn_fail(c, -ECONNRESET, "could not watch the socket");
        return -1;
    }
    return 0;
}

static int send_statements(pconn_t *c, preq_t *r)
{
    pool_t *p = c->pool;
    if (r->kind == R_TX) {
        const char *pro[2] = {r->tenant_text, r->timeout_text};
        if (send_stmt(c, r, tx_prologue, 2, pro, I_INTERNAL, DS_PG_STMT_NONE) < 0) {
            return -1;
        }
    } else if (r->kind == R_SYSTEM && strcmp(r->timeout_text, p->sys_timeout_text) != 0) {
        const char *pro[1] = {r->timeout_text};
        if (send_stmt(c, r, sys_prologue, 1, pro, I_INTERNAL, DS_PG_STMT_NONE) < 0) {
            return -1;
        }
    }
    for (uint32_t i = 0; i < r->nstmts; i++) {
        const ds__pg_stmt_t *s = &r->stmts[i];
        item_kind_t k = r->ask != NULL ? I_USER : I_INTERNAL;
        if (send_stmt(c, r, s->sql, s->nparams, s->params, k,
                      r->ask != NULL ? i : DS_PG_STMT_NONE) < 0) {
            return -1;
        }
    }
    if (PQpipelineSync(c->pg) != 1) {
        return -1;
    }
    item_push(r, I_SYNC, 0, DS_PG_STMT_NONE);
    return 0;
}

/* Puts r in flight on c, whole, and flushes. On a libpq failure the connection fails and r
 * with it (it is answered). */
static void conn_send(pconn_t *c, preq_t *r)
{
    r->next = NULL;
    r->prev = c->itail;
    if (c->itail != NULL) {
        c->itail->next = r;
    } else {
        c->ihead = r;
    }
    c->itail = r;
    c->ninflight++;
    if (send_statements(c, r) < 0) {
        conn_fail(c, -ECONNRESET, PQerrorMessage(c->pg));
        return;
    }
    (void)conn_flush(c);
}

/* An internal request of one statement without parameters. */
static preq_t *internal_req(req_kind_t kind, const char *sql, const char *param)
{
    preq_t *r = ds_xcalloc(1, sizeof(*r));
    r->kind = kind;
    r->err_stmt = DS_PG_STMT_NONE;
    ds__pg_stmt_t *st = ds_xcalloc(1, sizeof(*st) + sizeof(const char *));
    const char **pv = (const char **)(st + 1);
    st->sql = sql;
    if (param != NULL) {
        pv[0] = param;
        st->nparams = 1;
        st->params = pv;
    }
    r->stmts = st;
    r->arena = st;
    r->nstmts = 1;
    return r;
}

/* ---- connecting ---- */

static void notice_receiver(void *arg, const PGresult *res)
{
    (void)arg;
    ds_log_debug(
        "database notice", DS_LOG_STR("sqlstate", PQresultErrorField(res, PG_DIAG_SQLSTATE)),
        DS_LOG_STR("message", PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)), DS_LOG_END);
}

/* A connection attempt failed (or a connection lost before it was ready): backs off; with no
 * connection left, the waiting requests fail now rather than at their deadlines. */
static void connect_failed(pool_t *p, const char *why)
{
    p->connect_failures++;
    p->failing = true;
    p->backoff_ms = p->backoff_ms == 0 ? p->cfg.backoff_min_ms : p->backoff_ms * 2;
    if (p->backoff_ms > p->cfg.backoff_max_ms) {
        p->backoff_ms = p->cfg.backoff_max_ms;
    }
    p->next_attempt = ds_clock_now() + (int64_t)p->backoff_ms * MS_NS;
    ds_log_warn("could not connect to the database", DS_LOG_STR("error", why),
                DS_LOG_U64("retry_ms", p->backoff_ms), DS_LOG_END);
    if (p->open == 0 && p->connecting == 0) {
        wait_fail_all(p, -ECONNREFUSED, "could not connect to the database");
    }
    tick_arm(p);
}

static void conn_connected(pconn_t *c)
{
    pool_t *p = c->pool;
    if (PQsetnonblocking(c->pg, 1) != 0 || PQenterPipelineMode(c->pg) != 1) {
        conn_fail(c, -ECONNREFUSED, PQerrorMessage(c->pg));
        return;
    }
    PQsetNoticeReceiver(c->pg, notice_receiver, NULL);
    c->state = C_SETUP;
    if (conn_watch(c, UV_READABLE) < 0) {
        conn_fail(c, -ECONNREFUSED, "could not watch the socket");
        return;
    }
    conn_send(c, internal_req(R_SETUP, session_setup, p->sys_timeout_text));
}

/* One step of PQconnectPoll(). */
static void connect_step(pconn_t *c)
{
    PostgresPollingStatusType st = PQconnectPoll(c->pg);
    int rc = 0;
    switch (st) {
    case PGRES_POLLING_OK:
        conn_connected(c);
        return;
    case PGRES_POLLING_READING:
        rc = conn_watch_new(c, UV_READABLE);
        break;
    case PGRES_POLLING_WRITING:
        rc = conn_watch_new(c, UV_WRITABLE);
        break;
    default:
        conn_fail(c, -ECONNREFUSED, PQerrorMessage(c->pg));
        return;
    }
    if (rc < 0) {
        conn_fail(c, -ECONNREFUSED, "could not watch the socket");
    }
}

static void conn_start(pool_t *p, pconn_t *c)
{
    static const char *const keys[] = {"dbname", "fallback_application_name", "client_encoding",
                                       NULL};
    const char *vals[] = {p->conninfo, "dossier", "UTF8", NULL};
    PGconn *pg = PQconnectStartParams(keys, vals, 1);
    if (pg == NULL || PQstatus(pg) == CONNECTION_BAD) {
        char why[256];
        (void)snprintf(why, sizeof(why), "%s", pg != NULL ? PQerrorMessage(pg) : "out of memory");
        PQfinish(pg);
        connect_failed(p, why);
        return;
    }
    c->pg = pg;
    c->state = C_CONNECTING;
    c->connect_deadline = ds_clock_now() + (int64_t)p->cfg.connect_timeout_ms * MS_NS;
    p->connecting++;
    tick_arm(p);
    if (conn_watch_new(c, UV_WRITABLE) < 0) {
        conn_fail(c, -ECONNREFUSED, "could not watch the socket");
    }
}

/* Opens connections for waiting requests that no connection can take, within size. */
static void maybe_open(pool_t *p)
{
    if (p->stopping || p->failing) {
        return; /* after a failure, the tick retries with backoff */
    }
    for (uint32_t i = 0;
         i < p->cfg.size && p->heap_len > 0 && p->connecting < p->waiting && !p->failing; i++) {
        if (p->conns[i].state == C_EMPTY) {
            conn_start(p, &p->conns[i]);
        }
    }
}

/* ---- results ---- */

/* Maps a server error to our code (pool.h). */
static int sql_code(const PGconn *pg, const char *state)
{
    if (PQstatus(pg) == CONNECTION_BAD || state == NULL || strncmp(state, "08", 2) == 0 ||
        strncmp(state, "57P0", 4) == 0) {
        return -ECONNRESET;
    }
    if (strcmp(state, "57014") == 0) {
        return -ETIMEDOUT;
    }
    if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0) {
        return -EAGAIN;
    }
    return -EIO;
}

static void result_error(pconn_t *c, preq_t *r, const PGresult *res, uint32_t stmt)
{
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    ds_log_debug("statement failed", DS_LOG_STR("tenant", r->tenant_text),
                 DS_LOG_STR("sqlstate", state), DS_LOG_U64("stmt", stmt),
                 DS_LOG_STR("detail", PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL)),
                 DS_LOG_STR("hint", PQresultErrorField(res, PG_DIAG_MESSAGE_HINT)), DS_LOG_END);
    req_error(r, sql_code(c->pg, state), state,
              primary != NULL ? primary : PQresultErrorMessage(res), stmt);
}

/* Bytes of res in the reply's encoding. */
static size_t result_size(const PGresult *res, int ncols, int nrows)
{
    size_t n = ds_mp_size_array(3) + ds_mp_size_array((uint32_t)ncols) +
               ds_mp_size_array((uint32_t)nrows) + ds_mp_size_u64(UINT64_MAX);
    for (int j = 0; j < ncols; j++) {
        n += ds_mp_size_str(strlen(PQfname(res, j)));
    }
    for (int i = 0; i < nrows; i++) {
        n += ds_mp_size_array((uint32_t)ncols);
        for (int j = 0; j < ncols; j++) {
            n += PQgetisnull(res, i, j) ? 1 : ds_mp_size_str((size_t)PQgetlength(res, i, j));
        }
    }
    return n;
}

/* Appends a statement's result to r's reply, within its max_bytes. */
static void result_encode(preq_t *r, PGresult *res, uint32_t stmt)
{
    int ncols = PQnfields(res);
    int nrows = PQntuples(res);
    size_t need = result_size(res, ncols, nrows);
    if (need > r->max_bytes || r->out.len > r->max_bytes - need) {
        req_error(r, -EMSGSIZE, "", "results exceed the reply size limit", stmt);
        return;
    }
    ds_mp_writer_t w;
    ds_mp_writer_init(&w, ds__pg_buf_reserve(&r->out, need), need);
    (void)ds_mp_put_array(&w, 3);
    (void)ds_mp_put_array(&w, (uint32_t)ncols);
    for (int j = 0; j < ncols; j++) {
        const char *f = PQfname(res, j);
        (void)ds_mp_put_str(&w, f, strlen(f));
    }
    (void)ds_mp_put_array(&w, (uint32_t)nrows);
    for (int i = 0; i < nrows; i++) {
        (void)ds_mp_put_array(&w, (uint32_t)ncols);
        for (int j = 0; j < ncols; j++) {
            if (PQgetisnull(res, i, j)) {
                (void)ds_mp_put_nil(&w);
            } else {
                (void)ds_mp_put_str(&w, PQgetvalue(res, i, j), (size_t)PQgetlength(res, i, j));
            }
        }
    }
    (void)ds_mp_put_u64(&w, strtoull(PQcmdTuples(res), NULL, 10));
    r->out.len += ds_mp_writer_len(&w);
    r->nout++;
}

/* Handles one result of the item in hand. -1 when the connection cannot go on. */
static int on_result(pconn_t *c, preq_t *r, const item_t *it, PGresult *res)
{
    ExecStatusType st = PQresultStatus(res);
    bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY;
    if (!ok && st != PGRES_FATAL_ERROR && st != PGRES_PIPELINE_ABORTED) {
        return -1; /* COPY and the like: never sent by us, not allowed in a pipeline */
    }
    switch ((item_kind_t)it->kind) {
    case I_PREPARE:
        if (ok) {
            c->cache[it->slot].ready = true;
        } else {
            if (st == PGRES_FATAL_ERROR) {
                result_error(c, r, res, it->stmt);
            }
            cache_drop(c, it->slot);
        }
        break;
    case I_INTERNAL:
    case I_USER:
        if (st == PGRES_FATAL_ERROR) {
            result_error(c, r, res, it->stmt);
            const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
            if (it->slot != NO_SLOT && state != NULL &&
                (strcmp(state, "0A000") == 0 || strcmp(state, "26000") == 0)) {
                cache_drop(c, it->slot); /* a stale plan, or deallocated: prepare it anew */
            }
        } else if (ok && it->kind == I_USER && r->err == 0) {
            result_encode(r, res, it->stmt);
        }
        break;
    default:
        return -1;
    }
    return 0;
}

/* The head request's sync arrived: it is done. */
static void conn_complete_head(pconn_t *c)
{
    pool_t *p = c->pool;
    preq_t *r = c->ihead;
    c->ihead = r->next;
    *(c->ihead != NULL ? &c->ihead->prev : &c->itail) = NULL;
    c->ninflight--;
    if (r->kind == R_SETUP) {
        int err = r->err;
        req_free(r);
        if (err != 0) {
            conn_fail(c, err, "could not set up the session");
        } else {
            c->state = C_READY;
            p->connecting--;
            p->open++;
            p->connects++;
            p->failing = false;
            p->backoff_ms = 0;
            if (p->to_replace > 0) {
                p->to_replace--;
                p->reconnects++;
            }
        }
        return;
    }
    tenant_t *t = r->tenant;
    t->inflight--;
    if (c->ninflight == 0) {
        c->owner = NULL; /* back to the pool */
        t->active--;
        p->owned--;
    }
    t->served += r->err == 0 ? 1 : 0;
    req_reply(p, r, r->err);
    req_free(r);
    tenant_update(p, t);
    tenant_maybe_evict(p, t);
}

/* Reads every result libpq has parsed, in order. Returns -1 after the connection failed. */
static int conn_process(pconn_t *c)
{
    int stray = 0;
    while (c->ihead != NULL && c->state != C_EMPTY) {
        if (PQisBusy(c->pg)) {
            break;
        }
        preq_t *r = c->ihead;
        PGresult *res = PQgetResult(c->pg);
        if (res == NULL) {
            if (r->cur_has_result) {
                r->cur++;
                r->cur_has_result = false;
                continue;
            }
            if (++stray > 1) {
                break;
            }
            continue;
        }
        stray = 0;
        if (r->cur >= r->nitems) {
            PQclear(res);
            conn_fail(c, -EPROTO, "more results than statements");
            return -1;
        }
        const item_t *it = &r->items[r->cur];
        if (PQresultStatus(res) == PGRES_PIPELINE_SYNC) {
            PQclear(res);
            if (it->kind != I_SYNC) {
                conn_fail(c, -EPROTO, "results out of step with the requests");
                return -1;
            }
            conn_complete_head(c);
            continue;
        }
        if (it->kind == I_SYNC && PQresultStatus(res) == PGRES_FATAL_ERROR &&
            PQstatus(c->pg) == CONNECTION_OK) {
            /* The commit at the sync failed (a deferred constraint, a serialization failure):
             * the request's error; a NULL and then the sync follow. */
            result_error(c, r, res, DS_PG_STMT_NONE);
            PQclear(res);
            continue;
        }
        int rc = it->kind == I_SYNC || r->cur_has_result ? -1 : on_result(c, r, it, res);
        if (rc < 0) {
            /* A FATAL out of turn is the server going away (admin shutdown, a killed backend):
             * it belongs to the request in hand, and the connection is lost. */
            bool lost =
                PQresultStatus(res) == PGRES_FATAL_ERROR || PQstatus(c->pg) == CONNECTION_BAD;
            if (lost) {
                result_error(c, r, res, DS_PG_STMT_NONE);
            }
            PQclear(res);
            conn_fail(c, lost ? -ECONNRESET : -EPROTO,
                      lost ? "connection to the database lost"
                           : "unexpected result from the database");
            return -1;
        }
        PQclear(res);
        r->cur_has_result = true;
    }
    return c->state == C_EMPTY ? -1 : 0;
}

/* ---- failures ---- */

/* The connection is gone (or never came up): its requests are answered with code (or with
 * the error they already had), its socket closed. */
static void conn_fail(pconn_t *c, int code, const char *why)
{
    pool_t *p = c->pool;
    conn_state_t was = c->state;
    if (was == C_EMPTY) {
        return;
    }
    char reason[256];
    (void)snprintf(reason, sizeof(reason), "%s", why != NULL ? why : "");
    c->state = C_EMPTY;
    box_close(c->box, c->pg);
    c->box = NULL;
    c->pg = NULL;
    c->events = 0;
    cache_reset(c);
    if (c->owner != NULL) {
        c->owner->active--; /* kept from eviction by its requests until the last is answered */
        c->owner = NULL;
        p->owned--;
    }
    while (c->ihead != NULL) {
        preq_t *r = c->ihead;
        c->ihead = r->next;
        if (r->tenant != NULL) {
            tenant_t *t = r->tenant;
            t->inflight--;
            req_error(r, code, "", "connection to the database lost", DS_PG_STMT_NONE);
            req_reply(p, r, r->err);
            req_free(r);
            tenant_update(p, t);
            tenant_maybe_evict(p, t);
        } else {
            req_free(r);
        }
    }
    c->itail = NULL;
    c->ninflight = 0;
    if (p->stopping) {
        *(was == C_READY ? &p->open : &p->connecting) -= 1;
        return;
    }
    if (p->to_replace < p->cfg.size) {
        p->to_replace++;
    }
    if (was == C_READY) {
        p->open--;
        p->disconnects++;
        ds_log_warn("database connection lost", DS_LOG_U64("conn", c->idx),
                    DS_LOG_STR("error", reason), DS_LOG_END);
    } else {
        p->connecting--;
        connect_failed(p, reason);
    }
}

/* ---- libuv callbacks ---- */

static void on_poll(uv_poll_t *h, int status, int events)
{
    pbox_t *b = h->data;
    pconn_t *c = b->conn;
    if (c == NULL) {
        return;
    }
    pool_t *p = c->pool;
    if (status < 0) {
        conn_fail(c, -ECONNRESET, uv_strerror(status));
        dispatch(p);
        return;
    }
    if (c->state == C_CONNECTING) {
        connect_step(c);
        dispatch(p);
        return;
    }
    if ((events & UV_WRITABLE) != 0 && conn_flush(c) < 0) {
        dispatch(p);
        return;
    }
    if ((events & UV_READABLE) != 0) {
        if (PQconsumeInput(c->pg) != 1) {
            /* What the server said before it closed (admin shutdown...) may be parsed still. */
            (void)conn_process(c);
            conn_fail(c, -ECONNRESET, PQerrorMessage(c->pg));
        } else if (conn_process(c) == 0 && c->ihead == NULL && PQstatus(c->pg) == CONNECTION_BAD) {
            conn_fail(c, -ECONNRESET, PQerrorMessage(c->pg));
        }
    }
    dispatch(p);
}

static void on_tick(uv_timer_t *h)
{
    pool_t *p = h->data;
    int64_t now = ds_clock_now();
    for (preq_t *r = p->whead, *next; r != NULL; r = next) {
        next = r->gnext;
        if (r->deadline != 0 && now >= r->deadline) {
            p->expired++;
            wait_fail(p, r, DS_ETIMEDOUT, "deadline passed while waiting for a connection");
        }
    }
    for (uint32_t i = 0; i < p->cfg.size; i++) {
        pconn_t *c = &p->conns[i];
        if ((c->state == C_CONNECTING || c->state == C_SETUP) && now >= c->connect_deadline) {
            conn_fail(c, -ECONNREFUSED, "connection attempt timed out");
        }
    }
    if (p->failing && p->connecting == 0 && now >= p->next_attempt && p->open < p->cfg.size &&
        (p->open == 0 || p->waiting > 0)) {
        for (uint32_t i = 0; i < p->cfg.size; i++) {
            if (p->conns[i].state == C_EMPTY) {
                conn_start(p, &p->conns[i]);
                break;
            }
        }
    }
    dispatch(p);
    if (p->waiting == 0 && p->connecting == 0 && !p->failing) {
        uv_timer_stop(h);
        p->tick_on = false;
    }
}

static void tick_arm(pool_t *p)
{
    if (!p->tick_on && p->tick != NULL && !p->stopping) {
        p->tick_on = true;
        (void)uv_timer_start(p->tick, on_tick, TICK_MS, TICK_MS);
    }
}

static void tick_closed(uv_handle_t *h)
{
    pool_t *p = h->data;
    free(h);
    handle_closed(p);
}

/* ---- dispatching ---- */

/* A connection that can take a request of tenant t now, or NULL: an idle one while t is under
 * its cap, else the least loaded of t's own with room -- only while no other tenant is hungry
 * and either some connection is left for whoever comes next (idle, or not open yet), so that a
 * tenant arriving does not wait behind another's batch, or t is the only one using the pool
 * (then one arriving waits for the first of t's batches to end, no more is added to them). */
static pconn_t *free_conn(pool_t *p, const tenant_t *t)
{
    pconn_t *own = NULL;
    for (uint32_t i = 0; i < p->cfg.size; i++) {
        pconn_t *c = &p->conns[i];
        if (c->state != C_READY) {
            continue;
        }
        if (c->ninflight == 0) {
            if (t->active < t->lim.max_conns) {
                return c;
            }
        } else if (c->owner == t && c->ninflight < p->cfg.pipeline_depth &&
                   (own == NULL || c->ninflight < own->ninflight)) {
            own = c;
        }
    }
    bool may_pipeline = p->hungry == (t->hungry ? 1u : 0u) &&
                        (p->owned < p->cfg.size || p->owned == t->active) &&
                        t->active <= t->lim.max_conns; /* a lowered cap: let them drain */
    return may_pipeline ? own : NULL;
}

/* Puts back the tenants dispatch() set aside, with their virtual times and places in line. */
static void heap_restore(pool_t *p, tenant_t *aside)
{
    while (aside != NULL) {
        tenant_t *t = aside;
        aside = t->anext;
        t->anext = NULL;
        if (t->heap_pos < 0) {
            heap_push(p, t); /* as it was: its virtual time and its seq */
        }
        tenant_update(p, t);
    }
}

/* t pipelines while under its cap: opens a connection that it (or a tenant after it) may take
 * next, rather than leave its transactions one behind the other on one server process. */
static void open_for(pool_t *p, const tenant_t *t)
{
    if (p->stopping || p->failing || t->active + p->connecting >= t->lim.max_conns) {
        return;
    }
    for (uint32_t i = 0; i < p->cfg.size; i++) {
        if (p->conns[i].state == C_EMPTY) {
            conn_start(p, &p->conns[i]);
            return;
        }
    }
}

/* Sends r, taken off t's queue, on c: charges t's virtual time, takes c for t if it was idle,
 * sets the statement timeout (pool.h, "Timeouts"). */
static void give(pool_t *p, tenant_t *t, pconn_t *c, preq_t *r, int64_t now)
{
    if (t->vtime > p->vnow) {
        p->vnow = t->vtime; /* never back: a tenant set aside may be behind */
    }
    t->vtime += VT_SCALE / t->lim.weight;
    bool pipelined = c->ninflight > 0;
    if (!pipelined) {
        c->owner = t;
        p->owned++;
        t->active++;
        if (t->active > t->peak) {
            t->peak = t->active;
        }
    }
    t->inflight++;
    if (t->inflight > t->peak_inflight) {
        t->peak_inflight = t->inflight;
    }
    tenant_update(p, t);
    uint32_t ms = t->lim.statement_timeout_ms;
    if (r->req_timeout_ms != 0 && r->req_timeout_ms < ms) {
        ms = r->req_timeout_ms;
    }
    if (r->deadline != 0) {
        int64_t left = (r->deadline - now) / MS_NS;
        left = left < 1 ? 1 : left;
        ms = left < (int64_t)ms ? (uint32_t)left : ms;
    }
    (void)snprintf(r->timeout_text, sizeof(r->timeout_text), "%u", ms);
    conn_send(c, r);
    if (pipelined && t->active < t->lim.max_conns) {
        open_for(p, t);
    }
}

/* Gives free connections to waiting tenants, least virtual time first. */
static void dispatch(pool_t *p)
{
    int64_t now = ds_clock_now();
    tenant_t *aside = NULL;
    while (p->heap_len > 0 && !p->stopping) {
        tenant_t *t = p->heap[0];
        preq_t *r = t->qhead;
        if (r->deadline != 0 && now >= r->deadline) {
            p->expired++;
            wait_fail(p, r, DS_ETIMEDOUT, "deadline passed while waiting for a connection");
            continue;
        }
        pconn_t *c = free_conn(p, t);
        if (c == NULL) {
            if (t->hungry) {
                break; /* no idle connection: nobody else can be given one or pipeline now */
            }
            heap_remove(p, t); /* it could only pipeline, and a hungry tenant waits */
            t->anext = aside;
            aside = t;
            continue;
        }
        wait_remove(p, r);
        give(p, t, c, r, now);
    }
    heap_restore(p, aside);
    maybe_open(p);
}

/* ---- the port ---- */

/* Takes an ask for a transaction (or a system request) and queues it. */
static void on_request(pool_t *p, ds_msg_t **msgp, bool system)
{
    const ds_msg_t *m = *msgp;
    if ((m->flags & DS_MSG_F_ASK) == 0) {
        return; /* nobody to answer: a request must be an ask */
    }
    ds_pg_tx_t tx = {0};
    ds_pg_system_t sys;
    int rc = system ? ds_pg_system_decode(m, &sys) : ds_pg_tx_decode(m, &tx);
    if (rc < 0 || (!system && !ds_pg_uuid_valid(tx.tenant.ptr, tx.tenant.len))) {
        reply_fail(p, m, -EINVAL, "", "malformed request", DS_PG_STMT_NONE);
        return;
    }
    if (system) {
        tx = (ds_pg_tx_t){
            .timeout_ms = sys.timeout_ms, .max_bytes = sys.max_bytes, .stmts = sys.stmts};
    }
    preq_t *r = ds_xcalloc(1, sizeof(*r));
    r->err_stmt = DS_PG_STMT_NONE;
    if (ds__pg_stmts_decode(tx.stmts.ptr, tx.stmts.len, &r->stmts, &r->nstmts, &r->arena) < 0) {
        free(r);
        reply_fail(p, m, -EINVAL, "", "malformed statements", DS_PG_STMT_NONE);
        return;
    }
    int code = 0;
    const char *why = NULL;
    if (p->failing && p->open == 0) {
        code = -ECONNREFUSED;
        why = "could not connect to the database";
    } else if (m->deadline != 0 && ds_clock_now() >= m->deadline) {
        code = DS_ETIMEDOUT;
        why = "deadline passed";
    }
    tenant_t *t = system ? &p->system : tenant_get(p, tx.tenant.ptr);
    if (code == 0 && (t->waiting >= t->lim.max_waiting || p->waiting >= p->cfg.max_waiting)) {
        code = DS_EFULL;
        why = "too many requests waiting for a database connection";
        p->refused++;
    }
    if (code != 0) {
        req_free(r);
        reply_fail(p, m, code, "", why, DS_PG_STMT_NONE);
        tenant_maybe_evict(p, t);
        return;
    }
    r->kind = system ? R_SYSTEM : R_TX;
    r->tenant = t;
    memcpy(r->tenant_text, t->text, sizeof(r->tenant_text));
    r->req_timeout_ms = tx.timeout_ms;
    r->max_bytes = tx.max_bytes != 0 && tx.max_bytes < p->cfg.max_result_bytes
                       ? tx.max_bytes
                       : p->cfg.max_result_bytes;
    r->deadline = m->deadline;
    r->ask = *msgp; /* kept until answered */
    *msgp = NULL;
    wait_push(p, r);
    tenant_update(p, t);
    tick_arm(p);
    dispatch(p);
}

static void on_tenant(pool_t *p, const ds_msg_t *m)
{
    ds_pg_tenant_t v;
    if (ds_pg_tenant_decode(m, &v) < 0 || !ds_pg_uuid_valid(v.tenant.ptr, v.tenant.len)) {
        ds_log_warn("malformed tenant limits", DS_LOG_END);
        return;
    }
    tenant_t *t = tenant_get(p, v.tenant.ptr);
    ds_pg_limits_t in = {v.weight, v.max_conns, v.max_waiting, v.timeout_ms};
    t->lim = limits_resolve(&in, &p->cfg.tenant);
    t->registered = true;
    tenant_update(p, t);
    dispatch(p);
}

static void on_stats(pool_t *p, const ds_msg_t *m)
{
    ds_pg_stats_get_t q;
    if ((m->flags & DS_MSG_F_ASK) == 0 || ds_pg_stats_get_decode(m, &q) < 0) {
        return;
    }
    const tenant_t *t = NULL;
    if (q.tenant.len == 6 && memcmp(q.tenant.ptr, "system", 6) == 0) {
        t = &p->system;
    } else if (ds_pg_uuid_valid(q.tenant.ptr, q.tenant.len)) {
        uint8_t key[16];
        char norm[DS_PG_UUID_LEN + 1];
        uuid_parse(q.tenant.ptr, key, norm);
        t = tenant_find(p, key);
    }
    uint32_t busy = 0;
    for (uint32_t i = 0; i < p->cfg.size; i++) {
        busy += p->conns[i].state == C_READY && p->conns[i].ninflight > 0 ? 1 : 0;
    }
    ds_pg_stats_t s = {
        .size = p->cfg.size,
        .open = p->open,
        .connecting = p->connecting,
        .busy = busy,
        .waiting = p->waiting,
        .served = p->served,
        .errors = p->errors,
        .connects = p->connects,
        .reconnects = p->reconnects,
        .disconnects = p->disconnects,
        .connect_failures = p->connect_failures,
        .refused = p->refused,
        .expired = p->expired,
        .tenant_active = t != NULL ? t->active : 0,
        .tenant_waiting = t != NULL ? t->waiting : 0,
        .tenant_peak = t != NULL ? t->peak : 0,
        .tenant_peak_inflight = t != NULL ? t->peak_inflight : 0,
        .tenant_served = t != NULL ? t->served : 0,
    };
    ds_msg_t *r;
    if (ds_pg_stats_new(&s, &r) == 0 && ds_reply_from(p->rt, m, &r) < 0) {
        ds_msg_free(&r);
    }
}

/* The first turn, on the loop thread: the tick's timer. */
static void pool_uv_init(pool_t *p)
{
    p->tick = ds_xcalloc(1, sizeof(*p->tick));
    (void)uv_timer_init(ds_loop_uv(p->loop), p->tick);
    p->tick->data = p;
    p->handles++;
}

static int pool_receive(ds_ctx_t *ctx, ds_msg_t **msgp)
{
    pool_t *p = ds_ctx_state(ctx);
    if (p->tick == NULL) {
        pool_uv_init(p);
    }
    switch ((*msgp)->type) {
    case DS_MT_PG_TX:
        on_request(p, msgp, false);
        break;
    case DS_MT_PG_SYSTEM:
        on_request(p, msgp, true);
        break;
    case DS_MT_PG_TENANT:
        on_tenant(p, *msgp);
        break;
    case DS_MT_PG_STATS_GET:
        on_stats(p, *msgp);
        break;
    default:
        if (((*msgp)->flags & DS_MSG_F_ASK) != 0) {
            reply_fail(p, *msgp, -EINVAL, "", "not a request of the pool", DS_PG_STMT_NONE);
        }
        break;
    }
    return 0;
}

static void pool_terminate(ds_ctx_t *ctx, int reason)
{
    (void)reason;
    pool_t *p = ds_ctx_state(ctx);
    wait_fail_all(p, DS_ESHUTDOWN, "the database pool stopped");
    p->stopping = true;
    for (uint32_t i = 0; i < p->cfg.size; i++) {
        conn_fail(&p->conns[i], DS_ESHUTDOWN, "the database pool stopped");
    }
    for (uint32_t i = 0; i < p->nbuckets; i++) {
        while (p->buckets[i] != NULL) {
            tenant_t *t = p->buckets[i];
            p->buckets[i] = t->hnext;
            free(t);
        }
    }
    if (p->tick != NULL) {
        uv_close((uv_handle_t *)p->tick, tick_closed);
        p->tick = NULL;
    }
    if (p->handles == 0) {
        pool_free(p);
    }
}

static int pool_init(ds_ctx_t *ctx, void *arg)
{
    ds_ctx_set_state(ctx, arg);
    return 0;
}

static const ds_behaviour_t pool_behaviour = {
    .name = "pg.pool",
    .init = pool_init,
    .receive = pool_receive,
    .terminate = pool_terminate,
};

static int config_resolve(const ds_pg_pool_config_t *in, ds_pg_pool_config_t *out)
{
    if (in == NULL || in->conninfo == NULL) {
        return -EINVAL;
    }
    ds_pg_pool_config_t c = *in;
    c.size = or_default(c.size, 8);
    c.connect_timeout_ms = or_default(c.connect_timeout_ms, 5000);
    c.backoff_min_ms = or_default(c.backoff_min_ms, 100);
    c.backoff_max_ms = or_default(c.backoff_max_ms, 5000);
    c.max_result_bytes = or_default(c.max_result_bytes, 1u << 20);
    c.max_waiting = or_default(c.max_waiting, 4096);
    c.pipeline_depth = or_default(c.pipeline_depth, 1);
    c.stmt_cache = or_default(c.stmt_cache, 64);
    if (c.backoff_min_ms > c.backoff_max_ms || c.max_result_bytes > DS_PG_RESULT_BYTES_MAX ||
        c.size > 4096 || c.pipeline_depth > 1024 || c.stmt_cache > 4096) {
        return -EINVAL;
    }
    ds_pg_limits_t tdef = {1, c.size / 2 > 0 ? c.size / 2 : 1, 64, 30000};
    ds_pg_limits_t sdef = {1, c.size, 1024, 30000};
    c.tenant = limits_resolve(&c.tenant, &tdef);
    c.system = limits_resolve(&c.system, &sdef);
    if (c.tenant.weight > VT_SCALE || c.system.weight > VT_SCALE) {
        return -EINVAL;
    }
    *out = c;
    return 0;
}

int ds_pg_pool_start(ds_loop_t *loop, const ds_pg_pool_config_t *cfg, ds_actor_id_t *out)
{
    ds_pg_pool_config_t c;
    if (loop == NULL || config_resolve(cfg, &c) < 0) {
        return -EINVAL;
    }
    pool_t *p = ds_xcalloc(1, sizeof(*p));
    p->rt = ds_loop_rt(loop);
    p->loop = loop;
    p->cfg = c;
    p->conninfo = ds_xstrdup(c.conninfo);
    p->cfg.conninfo = NULL;
    (void)snprintf(p->sys_timeout_text, sizeof(p->sys_timeout_text), "%u",
                   c.system.statement_timeout_ms);
    p->conns = ds_xcalloc(c.size, sizeof(*p->conns));
    for (uint32_t i = 0; i < c.size; i++) {
        p->conns[i].pool = p;
        p->conns[i].idx = i;
        p->conns[i].cache = ds_xcalloc(c.stmt_cache, sizeof(centry_t));
    }
    p->nbuckets = 64;
    p->buckets = ds_xcalloc(p->nbuckets, sizeof(tenant_t *));
    p->system = (tenant_t){.system = true, .lim = c.system, .heap_pos = -1};
    memcpy(p->system.text, "system", sizeof("system"));
    int rc = ds_loop_port(loop, &pool_behaviour, p, NULL, out);
    if (rc < 0) {
        p->stopping = true;
        pool_free(p);
    }
    return rc;
}
