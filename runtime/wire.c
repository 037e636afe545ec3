/* wire: message frames. See runtime/wire.h. */
#include "runtime/wire.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "runtime/catalog.h"
#include "runtime/err.h"
#include "runtime/id.h"

enum {
    WIRE_FLAGS_KNOWN = DS_MSG_F_SYSTEM | DS_MSG_F_ASK | DS_MSG_F_REPLY | DS_MSG_F_ERROR,
    OFF_MAGIC = 0,
    OFF_VERSION = 2,
    OFF_FLAGS = 3,
    OFF_TYPE = 4,
    OFF_FROM = 8,
    OFF_TO = 16,
    OFF_CORR = 24,
    OFF_TTL = 32,
    OFF_GROUP = 40,
    OFF_LEN = 44,
};

_Static_assert(OFF_LEN + 4 == DS_WIRE_HEADER, "the header ends with the payload length");

static void le_put(uint8_t *p, uint64_t v, unsigned width)
{
    for (unsigned k = 0; k < width; k++) {
        p[k] = (uint8_t)(v >> (8 * k));
    }
}

static uint64_t le_get(const uint8_t *p, unsigned width)
{
    uint64_t v = 0;
    for (unsigned k = width; k > 0; k--) {
        v = (v << 8) | p[k - 1];
    }
    return v;
}

/* Flags a frame may carry: the known bits, and ERROR only on a REPLY. */
static bool flags_valid(uint32_t flags)
{
    if ((flags & ~(uint32_t)WIRE_FLAGS_KNOWN) != 0) {
        return false;
    }
    return (flags & DS_MSG_F_ERROR) == 0 || (flags & DS_MSG_F_REPLY) != 0;
}

size_t ds_wire_size(const ds_msg_t *m)
{
    return DS_WIRE_HEADER + (size_t)m->len;
}

/* Time left to deadline at now; 0 for no deadline and at least 1 for one already past. */
static int64_t ttl_of(int64_t deadline, int64_t now)
{
    if (deadline == 0) {
        return 0;
    }
    int64_t ttl;
    if (__builtin_sub_overflow(deadline, now, &ttl)) {
        ttl = deadline > now ? INT64_MAX : 1;
    }
    return ttl > 0 ? ttl : 1;
}

int ds_wire_encode(const ds_msg_t *m, int64_t now, uint8_t *out, size_t cap, size_t *len)
{
    if (!flags_valid(m->flags)) {
        return -EINVAL;
    }
    size_t size = ds_wire_size(m);
    if (cap < size) {
        return -EMSGSIZE;
    }
    out[OFF_MAGIC] = 'D';
    out[OFF_MAGIC + 1] = 'S';
    out[OFF_VERSION] = DS_WIRE_VERSION;
    out[OFF_FLAGS] = (uint8_t)m->flags;
    le_put(out + OFF_TYPE, m->type, 4);
    le_put(out + OFF_FROM, m->from.v, 8);
    le_put(out + OFF_TO, m->to.v, 8);
    le_put(out + OFF_CORR, m->corr, 8);
    le_put(out + OFF_TTL, (uint64_t)ttl_of(m->deadline, now), 8);
    le_put(out + OFF_GROUP, m->group, 4);
    le_put(out + OFF_LEN, m->len, 4);
    if (m->len > 0) {
        memcpy(out + DS_WIRE_HEADER, m->data, m->len);
    }
    *len = size;
    return 0;
}

/* The header checks that need no catalog: 0, DS_EDECODE or -EMSGSIZE. */
static int check_header(const uint8_t *p, size_t n, size_t max_payload)
{
    if (n < DS_WIRE_HEADER) {
        return DS_EDECODE;
    }
    if (p[OFF_MAGIC] != 'D' || p[OFF_MAGIC + 1] != 'S' || p[OFF_VERSION] != DS_WIRE_VERSION ||
        !flags_valid(p[OFF_FLAGS])) {
        return DS_EDECODE;
    }
    uint64_t len = le_get(p + OFF_LEN, 4);
    if (max_payload > DS_MSG_PAYLOAD_MAX) {
        max_payload = DS_MSG_PAYLOAD_MAX;
    }
    if (len > max_payload) {
        return -EMSGSIZE;
    }
    if (n - DS_WIRE_HEADER != len) {
        return DS_EDECODE;
    }
    return 0;
}

int ds_wire_decode(const uint8_t *p, size_t n, size_t max_payload, int64_t now, ds_msg_t **out)
{
    int rc = check_header(p, n, max_payload);
    if (rc < 0) {
        return rc;
    }
    int64_t ttl = (int64_t)le_get(p + OFF_TTL, 8);
    int64_t deadline = 0;
    if (ttl < 0 || (ttl > 0 && __builtin_add_overflow(now, ttl, &deadline))) {
        return DS_EDECODE;
    }
    uint32_t type = (uint32_t)le_get(p + OFF_TYPE, 4);
    size_t len = n - DS_WIRE_HEADER;
    rc = ds_catalog_validate(type, p + DS_WIRE_HEADER, len);
    if (rc < 0) {
        return rc;
    }
    ds_msg_t *m;
    rc = ds_msg_new(type, p + DS_WIRE_HEADER, len, &m);
    if (rc < 0) {
        return rc;
    }
    m->flags = p[OFF_FLAGS];
    m->from.v = le_get(p + OFF_FROM, 8);
    m->to.v = le_get(p + OFF_TO, 8);
    m->corr = le_get(p + OFF_CORR, 8);
    m->deadline = deadline;
    m->group = (uint32_t)le_get(p + OFF_GROUP, 4);
    *out = m;
    return 0;
}
