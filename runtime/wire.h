/* wire: the frame of a message that leaves the process (nng links between nodes and plug-ins).
 *
 * A frame is a fixed 48-byte little-endian header, then the payload:
 *   offset size field
 *        0    2 magic "DS"
 *        2    1 version (1)
 *        3    1 flags (enum ds_msg_flag; other bits are refused)
 *        4    4 type
 *        8    8 from (actor id)
 *       16    8 to (actor id)
 *       24    8 corr
 *       32    8 ttl_ns: time left to the deadline when encoded; 0: no deadline
 *       40    4 group
 *       44    4 payload length
 *       48    - payload (msgpack, as the catalog declares for type)
 * Deadlines are clock readings of one process, so they travel as time left: the sender writes
 * deadline - now (1 when already past, so an expired deadline stays a deadline), and the
 * receiver sets deadline = its now + ttl. Both clocks are ds_clock_now() readings (>= 0).
 *
 * Decoding trusts nothing: every length is checked against the bytes received and the
 * caller's limit before anything is allocated, and the payload must be valid for its type in
 * the catalog (runtime/catalog.h).
 * Threads: pure functions of their arguments, safe from any thread once catalogs are
 * registered. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "runtime/msg.h"

enum {
    DS_WIRE_HEADER = 48, /* bytes before the payload */
    DS_WIRE_VERSION = 1,
};

/* Bytes of m's frame: DS_WIRE_HEADER + m->len. */
size_t ds_wire_size(const ds_msg_t *m);

/* Writes m's frame into out[0..cap). 0 and its length in *len; -EMSGSIZE when cap is smaller
 * than ds_wire_size(m); -EINVAL when m has flag bits the wire cannot carry. now is the
 * sender's ds_clock_now(). */
int ds_wire_encode(const ds_msg_t *m, int64_t now, uint8_t *out, size_t cap, size_t *len);

/* Reads the frame p[0..n), which must be exactly one frame. 0 and a new message in *out
 * (free with ds_msg_free()), its deadline converted with the receiver's now. Errors:
 * DS_EDECODE for a short or truncated frame, trailing bytes, a bad magic or version, unknown
 * flag bits, ERROR without REPLY, a negative or out-of-range ttl, or a payload that is not
 * valid for its type; -EMSGSIZE when the payload is longer than max_payload (or than
 * DS_MSG_PAYLOAD_MAX); DS_EUNKNOWN when no catalog declares the type. */
int ds_wire_decode(const uint8_t *p, size_t n, size_t max_payload, int64_t now, ds_msg_t **out);
