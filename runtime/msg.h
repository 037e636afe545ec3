/* msg: messages, the only thing actors share.
 *
 * A message is a header (type, sender, receiver, correlation id, deadline, sender's group) and a
 * msgpack payload. The payload is immutable once the message is sealed: it lives inline in the
 * message (one allocation) or in a reference-counted ds_buf_t that many messages may share, so a
 * local send moves a pointer and copies nothing.
 *
 * Ownership: a message has one owner at a time. ds_send() and friends take a ds_msg_t ** and
 * set the caller's pointer to NULL only when they took the message (nng's rule); on failure the
 * message is still the caller's. A behaviour's receive() borrows the message it is handed unless
 * it takes it (see runtime/rt.h). Free with ds_msg_free(), which accepts NULL.
 *
 * Types: every type number is declared once in a catalog under schema/ (runtime/catalog.h);
 * numbers below DS_MSG_USER_BASE belong to the runtime.
 *
 * Threads: a message belongs to one thread at a time (its owner); sealed payloads and ds_buf_t
 * reference counts are safe to share across threads. */
#pragma once

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/id.h"

typedef struct ds_buf ds_buf_t;
typedef struct ds_msg ds_msg_t;

/* private: the link of an intrusive lock-free queue (runtime/mpsc.h). */
struct ds_qnode {
    _Atomic(struct ds_qnode *) next;
};

enum {
    DS_MSG_USER_BASE = 256,       /* first type number outside the runtime's own */
    DS_MSG_INLINE_MAX = 192,      /* payloads up to this size live inside the message */
    DS_MSG_PAYLOAD_MAX = 1 << 26, /* 64 MiB: a hard ceiling; configured limits are lower */
};

enum ds_msg_flag {
    DS_MSG_F_SYSTEM = 1 << 0, /* a runtime signal (exit, down, stop...): never refused */
    DS_MSG_F_ASK = 1 << 1,    /* the sender waits for exactly one reply carrying corr */
    DS_MSG_F_REPLY = 1 << 2,  /* an answer to an ask; corr names the ask */
    DS_MSG_F_ERROR = 1 << 3,  /* with REPLY: the ask failed; ds_msg_error() has the code */
};

/* The layout is public so that the hot paths can read headers inline; the fields marked
 * private are the runtime's. Receivers treat every field as read-only. */
struct ds_msg {
    /* private */
    struct ds_qnode ds__node; /* mailbox link; must stay first (runtime/mpsc.h) */
    uint32_t ds__charge;      /* bytes charged to the receiver's group */
    uint32_t ds__gid;         /* the group charged, set when the send succeeds */
    /* public, read-only */
    uint32_t type;
    uint16_t flags;     /* enum ds_msg_flag */
    uint16_t ds__pad;   /* private: allocation class */
    ds_actor_id_t from; /* the sender, or DS_ID_NIL from outside any actor */
    ds_actor_id_t to;
    uint64_t corr;    /* correlation id of an ask and its reply, else 0 */
    int64_t deadline; /* ds_clock_now() time after which nobody waits for it; 0: none */
    uint32_t group;   /* the sender's group (tenant); 0 is the system group */
    uint32_t len;     /* payload bytes */
    const uint8_t *data;
    ds_buf_t *buf; /* private: shared payload, or NULL when inline */
    /* private: inline payload follows */
};

/* A new message of the given type whose payload is a copy of data[0..len). Copying happens
 * here, at creation, never at send. 0, or -EMSGSIZE past DS_MSG_PAYLOAD_MAX. */
int ds_msg_new(uint32_t type, const void *data, size_t len, ds_msg_t **out);

/* A new message of the given type whose payload will be written in place: *payload receives a
 * writable area of cap bytes, and the caller seals it with ds_msg_seal(msg, len), len <= cap,
 * before it sends or reads it. 0, or -EMSGSIZE past DS_MSG_PAYLOAD_MAX. */
int ds_msg_alloc(uint32_t type, size_t cap, uint8_t **payload, ds_msg_t **out);
void ds_msg_seal(ds_msg_t *msg, size_t len);

/* A new message of the given type sharing buf as its payload (buf gains a reference). */
int ds_msg_new_buf(uint32_t type, ds_buf_t *buf, ds_msg_t **out);

/* A new message with the same type, flags, corr, deadline and payload (shared, or copied when
 * inline and small). Used to send one payload to several actors. */
int ds_msg_clone(const ds_msg_t *msg, ds_msg_t **out);

/* Frees *msgp (and drops its payload reference) and sets it to NULL. Accepts NULL. */
void ds_msg_free(ds_msg_t **msgp);

/* The error code an error reply carries (DS_MSG_F_REPLY|DS_MSG_F_ERROR), 0 for any other
 * message, or DS_EDECODE for an error reply whose payload is not a negative code. */
int ds_msg_error(const ds_msg_t *msg);

/* Bytes a message holds against its group's cap: the header plus its payload. */
size_t ds_msg_footprint(const ds_msg_t *msg);

/* Buffers: immutable, reference-counted bytes. */

/* A buffer holding a copy of data[0..len). 0, or -EMSGSIZE past DS_MSG_PAYLOAD_MAX. */
int ds_buf_new(const void *data, size_t len, ds_buf_t **out);
/* Adds a reference; returns buf. */
ds_buf_t *ds_buf_ref(ds_buf_t *buf);
/* Drops a reference (freeing the buffer with the last) and sets *bufp to NULL. Accepts NULL. */
void ds_buf_unref(ds_buf_t **bufp);
const uint8_t *ds_buf_data(const ds_buf_t *buf);
size_t ds_buf_len(const ds_buf_t *buf);
