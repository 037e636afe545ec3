/* msg: message and buffer allocation. See runtime/msg.h.
 *
 * Small messages (header and payload within SMALL_SIZE bytes: every signal and most requests)
 * come from a per-thread cache. A message is typically allocated by the sender's worker and
 * freed by the receiver's, which defeats malloc's per-thread caches (a measured quarter of the
 * time of a many-tenant run went to malloc's slow paths); here a thread whose cache grows
 * past LOCAL_MAX hands a batch to a global exchange, and a thread whose cache is empty takes
 * one, so the mutex is taken once per BATCH messages. A thread's cache goes to the exchange
 * when it exits; the exchange keeps at most GLOBAL_MAX batches and frees the rest. */
#include "runtime/msg.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/mem.h"

enum {
    SMALL_SIZE = 128,
    BATCH = 128,
    LOCAL_MAX = 2 * BATCH,
    GLOBAL_MAX = 512,
    CLASS_MALLOC = 0,
    CLASS_SMALL = 1,
};

typedef struct free_node {
    struct free_node *next;
} free_node_t;

typedef struct cache {
    free_node_t *head;
    uint32_t n;
    bool registered;
} cache_t;

static _Thread_local cache_t tl_cache;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static free_node_t *g_batches[GLOBAL_MAX];
static uint32_t g_nbatches;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static pthread_key_t g_key;

static void put_batch(free_node_t *batch)
{
    pthread_mutex_lock(&g_lock);
    if (g_nbatches < GLOBAL_MAX) {
        g_batches[g_nbatches++] = batch;
        batch = NULL;
    }
    pthread_mutex_unlock(&g_lock);
    while (batch != NULL) {
        free_node_t *next = batch->next;
        free(batch);
        batch = next;
    }
}

static void cache_flush(void *arg)
{
    cache_t *c = arg;
    /* Only whole batches go to the exchange: small_alloc() takes each as BATCH nodes. */
    while (c->n >= BATCH) {
        free_node_t *batch = c->head;
        free_node_t *cut = batch;
        for (uint32_t i = 1; i < BATCH; i++) {
            cut = cut->next;
        }
        c->head = cut->next;
        cut->next = NULL;
        c->n -= BATCH;
        put_batch(batch);
    }
    while (c->head != NULL) {
        free_node_t *next = c->head->next;
        free(c->head);
        c->head = next;
    }
    c->n = 0;
}

static void key_create(void)
{
    (void)pthread_key_create(&g_key, cache_flush);
}

static void cache_register(cache_t *c)
{
    if (!c->registered) {
        (void)pthread_once(&g_once, key_create);
        (void)pthread_setspecific(g_key, c);
        c->registered = true;
    }
}

static void *small_alloc(void)
{
    cache_t *c = &tl_cache;
    if (c->n == 0) {
        /* A thread that only allocates (the timer thread) may hold a batch when it exits. */
        cache_register(c);
        pthread_mutex_lock(&g_lock);
        if (g_nbatches > 0) {
            c->head = g_batches[--g_nbatches];
            c->n = BATCH;
        }
        pthread_mutex_unlock(&g_lock);
        if (c->n == 0) {
            return ds_xmalloc(SMALL_SIZE);
        }
    }
    free_node_t *f = c->head;
    c->head = f->next;
    c->n--;
    return f;
}

static void small_free(void *p)
{
    cache_t *c = &tl_cache;
    cache_register(c);
    free_node_t *f = p;
    f->next = c->head;
    c->head = f;
    if (++c->n < LOCAL_MAX) {
        return;
    }
    /* Keep BATCH here; the older BATCH go to the exchange. */
    free_node_t *cut = c->head;
    for (uint32_t i = 1; i < BATCH; i++) {
        cut = cut->next;
    }
    free_node_t *batch = cut->next;
    cut->next = NULL;
    c->n = BATCH;
    put_batch(batch);
}

struct ds_buf {
    atomic_uint refs;
    uint32_t len;
    uint8_t data[];
};

static ds_msg_t *msg_alloc_inline(uint32_t type, size_t len)
{
    bool small = sizeof(ds_msg_t) + len <= SMALL_SIZE;
    ds_msg_t *m = small ? small_alloc() : ds_xmalloc(sizeof(ds_msg_t) + len);
    memset(m, 0, sizeof(*m));
    m->ds__pad = small ? CLASS_SMALL : CLASS_MALLOC;
    m->type = type;
    m->len = (uint32_t)len;
    m->data = (const uint8_t *)(m + 1);
    return m;
}

int ds_buf_new(const void *data, size_t len, ds_buf_t **out)
{
    if (len > DS_MSG_PAYLOAD_MAX) {
        return -EMSGSIZE;
    }
    ds_buf_t *b = ds_xmalloc(sizeof(ds_buf_t) + len);
    atomic_init(&b->refs, 1);
    b->len = (uint32_t)len;
    if (len > 0) {
        memcpy(b->data, data, len);
    }
    *out = b;
    return 0;
}

ds_buf_t *ds_buf_ref(ds_buf_t *buf)
{
    /* Relaxed: a new reference is taken from one the caller already holds. */
    atomic_fetch_add_explicit(&buf->refs, 1, memory_order_relaxed);
    return buf;
}

void ds_buf_unref(ds_buf_t **bufp)
{
    ds_buf_t *b = *bufp;
    if (b == NULL) {
        return;
    }
    *bufp = NULL;
    /* Release pairs with the acquire fence below, so the last owner sees every use done. */
    if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_release) == 1) {
        atomic_thread_fence(memory_order_acquire);
        free(b);
    }
}

const uint8_t *ds_buf_data(const ds_buf_t *buf)
{
    return buf->data;
}

size_t ds_buf_len(const ds_buf_t *buf)
{
    return buf->len;
}

int ds_msg_new(uint32_t type, const void *data, size_t len, ds_msg_t **out)
{
    uint8_t *p;
    int rc = ds_msg_alloc(type, len, &p, out);
    if (rc == 0 && len > 0) {
        memcpy(p, data, len);
    }
    return rc;
}

int ds_msg_alloc(uint32_t type, size_t cap, uint8_t **payload, ds_msg_t **out)
{
    if (cap > DS_MSG_PAYLOAD_MAX) {
        return -EMSGSIZE;
    }
    ds_msg_t *m;
    if (cap <= DS_MSG_INLINE_MAX) {
        m = msg_alloc_inline(type, cap);
        *payload = (uint8_t *)(m + 1);
    } else {
        ds_buf_t *b = ds_xmalloc(sizeof(ds_buf_t) + cap);
        atomic_init(&b->refs, 1);
        b->len = (uint32_t)cap;
        m = msg_alloc_inline(type, 0);
        m->buf = b;
        m->data = b->data;
        m->len = (uint32_t)cap;
        *payload = b->data;
    }
    *out = m;
    return 0;
}

void ds_msg_seal(ds_msg_t *msg, size_t len)
{
    if (len < msg->len) {
        msg->len = (uint32_t)len;
        if (msg->buf != NULL) {
            msg->buf->len = (uint32_t)len;
        }
    }
}

int ds_msg_new_buf(uint32_t type, ds_buf_t *buf, ds_msg_t **out)
{
    ds_msg_t *m = msg_alloc_inline(type, 0);
    m->buf = ds_buf_ref(buf);
    m->data = buf->data;
    m->len = buf->len;
    *out = m;
    return 0;
}

int ds_msg_clone(const ds_msg_t *msg, ds_msg_t **out)
{
    ds_msg_t *m;
    if (msg->buf != NULL) {
        ds_msg_new_buf(msg->type, msg->buf, &m);
    } else {
        m = msg_alloc_inline(msg->type, msg->len);
        memcpy(m + 1, msg->data, msg->len);
    }
    m->flags = msg->flags;
    m->corr = msg->corr;
    m->deadline = msg->deadline;
    m->group = msg->group;
    m->from = msg->from;
    *out = m;
    return 0;
}

void ds_msg_free(ds_msg_t **msgp)
{
    ds_msg_t *m = *msgp;
    if (m == NULL) {
        return;
    }
    *msgp = NULL;
    ds_buf_unref(&m->buf);
    if (m->ds__pad == CLASS_SMALL) {
        small_free(m);
    } else {
        free(m);
    }
}

size_t ds_msg_footprint(const ds_msg_t *msg)
{
    return sizeof(ds_msg_t) + msg->len;
}
