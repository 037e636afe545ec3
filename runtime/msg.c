/* msg: message and buffer allocation. See runtime/msg.h. */
#include "runtime/msg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/mem.h"

struct ds_buf {
    atomic_uint refs;
    uint32_t len;
    uint8_t data[];
};

static ds_msg_t *msg_alloc_inline(uint32_t type, size_t len)
{
    ds_msg_t *m = ds_xmalloc(sizeof(ds_msg_t) + len);
    memset(m, 0, sizeof(*m));
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
    free(m);
}

size_t ds_msg_footprint(const ds_msg_t *msg)
{
    return sizeof(ds_msg_t) + msg->len;
}
